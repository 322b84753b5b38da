"""GPT-2 tokenizer: TinyTorch's ``BPETokenizer.from_gpt2`` against tiktoken's ``gpt2`` encoding.

Both are built from the same files ($TINYTORCH_DATA/gpt2: encoder.json + vocab.bpe; tiktoken
through ``data_gym_to_mergeable_bpe_ranks`` with the checksums it uses for its download, so no
network is needed). Reports whether the ids are identical on all of Tiny Shakespeare, on a
multilingual sample and on random strings, and the encode throughput of both (median of
repeats; TinyTorch cold = its piece cache emptied before each run, warm = kept). A hostile case
too: N random letters without a space are one pre-split piece, which the old merge loop took
O(N²) for (40,000 letters: > 15 s, 100,000: 58 s); ``long_piece`` gives both encoders' times.
tiktoken runs in the interpreter named by TINYTORCH_REFERENCE_PYTHON; unset, that half is skipped.

Usage: uv run python benchmarks/tokenizer_gpt2.py [--repeats N] [--random N] [--long 10000,40000,100000]
       uv run python benchmarks/tokenizer_gpt2.py --print-expected   # the literals of the tests
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, median_time, run_reference

import tinytorch.language as language
from tinytorch.language import BPETokenizer


def _test_texts() -> tuple[dict[str, str], str]:
    """SAMPLES and ALLOWED of the tokenizer tests, whose expected ids ``--print-expected`` prints:
    one list of texts, read from the test module, so the two cannot drift apart."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "packages/tinytorch-language/tests/test_tokenizer_gpt2.py"
    spec = importlib.util.spec_from_file_location("_tokenizer_gpt2_tests", path)
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    return tests.SAMPLES, tests.ALLOWED


SAMPLES, ALLOWED = _test_texts()

REFERENCE = r"""
import json, sys, time, statistics, hashlib, tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str
data, texts_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
ranks = data_gym_to_mergeable_bpe_ranks(
    data + "/vocab.bpe", data + "/encoder.json",
    vocab_bpe_hash="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    encoder_json_hash="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783")
enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                        special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
texts = json.load(open(texts_path))
shakespeare = enc.encode_ordinary(texts["shakespeare"])
times = []
for _ in range(repeats):
    start = time.perf_counter(); enc.encode_ordinary(texts["shakespeare"]); times.append(time.perf_counter() - start)
long_piece = {}
for text in texts["long"]:
    long_times = []
    for _ in range(3):
        start = time.perf_counter(); ids = enc.encode_ordinary(text); long_times.append(time.perf_counter() - start)
    long_piece[str(len(text))] = {"seconds": statistics.median(long_times), "ids": ids}
print(json.dumps({
    "tiktoken": tiktoken.__version__,
    "long_piece": long_piece,
    "shakespeare": shakespeare,
    "samples": {k: enc.encode_ordinary(v) for k, v in texts["samples"].items()},
    "allowed": enc.encode(texts["allowed"], allowed_special="all"),
    "random": [enc.encode_ordinary(t) for t in texts["random"]],
    "encode_s": statistics.median(times)}))
"""


def digest(ids: list[int]) -> str:
    """sha256 of the ids written as decimal numbers joined by commas (as the tests compute it)."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Short strings mixing ASCII, whitespace, apostrophes, Latin/Greek/Cyrillic and any code point."""
    rng = random.Random(seed)
    common = [chr(c) for c in [*range(0x250), *range(0x370, 0x530), *range(0x2000, 0x2070), 0x3000, 0x85]]
    texts = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 16)):
            r = rng.random()
            if r < 0.5:
                chars.append(rng.choice(common))
            elif r < 0.8:
                chars.append(rng.choice(" \n\t'sdtmlvre0123"))
            else:
                c = rng.randint(0, 0x10FFFF)
                chars.append(chr(c if not 0xD800 <= c < 0xE000 else 0x41))
        texts.append("".join(chars))
    return texts


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--random", type=int, default=20000, help="random strings to compare")
    parser.add_argument("--long", default="10000,40000,100000",
                        help="lengths of the random-letter strings without a space (one piece each)")
    parser.add_argument("--print-expected", action="store_true",
                        help="print tiktoken's ids of SAMPLES and Shakespeare's digest as Python literals")
    args = parser.parse_args()
    data = Path(os.environ.get("TINYTORCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    shakespeare = (data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    randoms = random_texts(args.random)
    letters = random.Random(1)
    longs = ["".join(letters.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(int(n)))
             for n in args.long.split(",") if n]

    start = time.perf_counter()
    tok = BPETokenizer.from_gpt2(data / "gpt2")
    load_s = time.perf_counter() - start
    ours = tok.encode(shakespeare)

    def cold():
        tok._cache.clear()
        tok.encode(shakespeare)

    result = {"tinytorch_language": language.__file__, "chars": len(shakespeare),
              "load_s": load_s, "shakespeare_tokens": len(ours), "shakespeare_sha256": digest(ours),
              "tinytorch_encode_cold_s": median_time(cold, repeats=args.repeats, warmup=1),
              "tinytorch_encode_warm_s": median_time(lambda: tok.encode(shakespeare), repeats=args.repeats)}
    long_ids = {}
    result["long_piece"] = {}
    for text in longs:
        long_ids[str(len(text))] = tok.encode(text)
        result["long_piece"][str(len(text))] = {
            "tinytorch_s": median_time(lambda text=text: tok.encode(text), repeats=3, warmup=0)}

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump({"shakespeare": shakespeare, "samples": SAMPLES, "allowed": ALLOWED, "random": randoms,
                   "long": longs}, f)
    try:
        ref = run_reference(REFERENCE.replace("sys.argv[1], sys.argv[2], int(sys.argv[3])",
                                              f"{str(data / 'gpt2')!r}, {f.name!r}, {args.repeats}"))
    finally:
        os.unlink(f.name)
    if "skipped" in ref:
        result["reference"] = {"skipped": ref["skipped"].replace("with torch", "with tiktoken")}
        if args.print_expected:
            sys.exit("--print-expected needs TINYTORCH_REFERENCE_PYTHON (a Python with tiktoken)")
        emit("tokenizer_gpt2", result)
        return
    if args.print_expected:
        print("EXPECTED = {")
        for name, ids in ref["samples"].items():
            print(f"    {name!r}: {ids},")
        print("}")
        print(f"EXPECTED_ALLOWED = {ref['allowed']}")
        print(f"SHAKESPEARE_TOKENS, SHAKESPEARE_SHA256 = {len(ref['shakespeare'])}, {digest(ref['shakespeare'])!r}")
        return
    sample_ok = {name: tok.encode_ordinary(text) == ref["samples"][name] for name, text in SAMPLES.items()}
    differing = [t for t, ids in zip(randoms, ref["random"]) if tok.encode_ordinary(t) != ids]
    result["reference"] = {
        "tiktoken": ref["tiktoken"],
        "shakespeare_identical": ours == ref["shakespeare"],
        "shakespeare_first_difference": first_difference(ours, ref["shakespeare"]),
        "samples_identical": sum(sample_ok.values()), "samples": len(SAMPLES),
        "samples_differing": [name for name, ok in sample_ok.items() if not ok],
        "allowed_special_identical": tok.encode(ALLOWED, allowed_special="all") == ref["allowed"],
        "random_identical": len(randoms) - len(differing), "random": len(randoms),
        "random_differing": [[hex(ord(c)) for c in t] for t in differing[:5]],
        "tiktoken_encode_s": ref["encode_s"],
    }
    result["tinytorch_over_tiktoken_time_cold"] = result["tinytorch_encode_cold_s"] / ref["encode_s"]
    for n, theirs in ref["long_piece"].items():
        ours_long = result["long_piece"][n]
        ours_long.update({"tiktoken_s": theirs["seconds"], "identical": long_ids[n] == theirs["ids"],
                          "tinytorch_over_tiktoken": ours_long["tinytorch_s"] / theirs["seconds"]})
    emit("tokenizer_gpt2", result)


if __name__ == "__main__":
    main()
