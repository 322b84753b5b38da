"""Weight-only quantization of GPT models: decoding speed, greedy agreement, peak RSS, validation loss.

Measures, in one run:

- **GPT-2 124M** (GPT-2's config; its trained weights are not available offline here, so the
  weights are random, GPT-2's initialisation, seed 0, and the JSON says so), batch 1, greedy,
  64 new tokens after an 8-token prompt with the KV cache: float32 (``TinyGPT.from_pretrained``
  of a Hugging Face directory) against int8 weight-only (and int4 Q4_0 for information).
- **Peak RSS**: each model loads and generates in its own fresh process, so each VmHWM is that
  process's own. The quantized processes build the model without initialising it
  (``init_weights=False``: its float arrays are never touched) and load the quantized file
  written beforehand by another process (``quantize_`` + ``save_quantized``): the float32
  model is never materialised in them.
- **Speed**: one more process holds all three models and times them in turn, repeat after
  repeat (median of repeats), on one BLAS thread and with ``generate``'s own thread choice, so
  the machine's changing load falls on all of them alike.
- **The prompt** for the greedy comparison is chosen on the float32 model alone, before any
  quantized run: among ``--candidates`` random 8-token prompts, the one whose greedy
  continuation has the largest minimum top-1/top-2 logit margin. The JSON gives every
  candidate's minimum margin, and the quantized runs' max |logit difference| from float32 on
  the float32 continuation, and at how many of the 64 positions the difference reaches half
  the float32 margin there (below that it cannot change a greedy token: 0 makes the equality
  a guarantee rather than an observation).
- **Layers alone** (``--skip-layers`` leaves them out): GPT-2's matrices one at a time, float32
  against the int8 path and the int8 path's widening and GEMV halves apart (see `layers`).
- **TinyGPT** (the 10-minute recipe's checkpoint, ``--tinygpt``): validation loss of float32,
  int8 weight-only and int4 groups of 32 on the whole validation split the recipe held out.

Targets (issue 20): int8 ≥ 1.3x float32 tokens/s in the same run; greedy tokens of the 64-token
continuation equal; int8 peak RSS ≤ 60 % of float32's; TinyGPT int8 validation loss within 0.01
of float32, int4 g32 within 0.05. The machine is shared: the JSON records the load average.
Usage: uv run python benchmarks/quantization_gpt.py [--repeats N] [--tinygpt CHECKPOINT]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

GPT2 = {"vocab_size": 50257, "d_model": 768, "num_heads": 12, "num_layers": 12, "max_seq_len": 1024}
if os.environ.get("QUANTIZATION_GPT_SMOKE"):  # a quick check of the script itself, not a figure
    GPT2 = {"vocab_size": 500, "d_model": 64, "num_heads": 4, "num_layers": 2, "max_seq_len": 128}
PROMPT, NEW_TOKENS = 8, 64
SCHEMES = ("int8", "int4")


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _config(name: str):
    from tinytorch.core.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig

    return {"int8": Int8WeightOnlyConfig(), "int4": Int4WeightOnlyConfig(group_size=32)}[name]


def build(directory: str) -> None:
    """GPT-2 124M with random weights (GPT-2's initialisation, seed 0) in Hugging Face's layout."""
    from tinytorch.core import manual_seed
    from tinytorch.language import TinyGPT

    manual_seed(0)
    TinyGPT(**GPT2).save_pretrained(directory)


def convert(directory: str) -> None:
    """Write the int8 and int4 weight-only files of the float32 directory (its own process)."""
    from tinytorch.core.quantization import quantize_, save_quantized
    from tinytorch.language import TinyGPT

    for scheme in SCHEMES:
        model = TinyGPT.from_pretrained(directory)
        quantize_(model, _config(scheme))
        save_quantized(Path(directory) / f"{scheme}.safetensors", model, metadata={"config": model.config.to_dict()})
        del model


def _load(directory: str, scheme: str):
    from tinytorch.core import io
    from tinytorch.core.quantization import load_quantized
    from tinytorch.language import TinyGPT

    if scheme == "float32":
        return TinyGPT.from_pretrained(directory)
    path = Path(directory) / f"{scheme}.safetensors"
    config = io.load_metadata(path)["config"]
    return load_quantized(TinyGPT(**config, init_weights=False), path)


def _margins(model, sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits that chose each generated token (one forward over the whole sequence) and their
    top-1 minus top-2 margins."""
    from tinytorch.core import no_grad

    with no_grad():
        logits = model(sequence[None, :-1]).data[0, PROMPT - 1:]  # (new, V)
    top2 = np.sort(logits, axis=1)[:, -2:]
    return logits, top2[:, 1] - top2[:, 0]


def child(directory: str, scheme: str, candidates: int) -> None:
    """A fresh process: load one model, pick (float32) or reuse the prompt, generate, report its peak RSS."""
    t0 = time.perf_counter()
    model = _load(directory, scheme)
    load_seconds = time.perf_counter() - t0
    rss_after_load = _vm_hwm_mb()
    prompt_file, logits_file = Path(directory) / "prompt.json", Path(directory) / "float32_logits.npy"
    report: dict = {"scheme": scheme, "load_seconds": load_seconds, "vm_hwm_mb_after_load": rss_after_load}
    if scheme == "float32":  # choose the prompt on float32 alone
        rng = np.random.default_rng(0)
        tried = []
        for _ in range(candidates):
            prompt = rng.integers(0, GPT2["vocab_size"], (1, PROMPT))
            out = model.generate(prompt, NEW_TOKENS, temperature=0)[0]
            tried.append((float(_margins(model, out)[1].min()), prompt[0].tolist(), out))
        best = max(tried, key=lambda t: t[0])
        prompt = np.array([best[1]])
        logits, margins = _margins(model, best[2])
        np.save(logits_file, logits)
        prompt_file.write_text(json.dumps({"prompt": best[1], "tokens": best[2].tolist()}))
        report.update(candidate_min_margins=[round(t[0], 6) for t in tried], min_margin=float(margins.min()),
                      median_margin=float(np.median(margins)))
    else:
        chosen = json.loads(prompt_file.read_text())
        prompt = np.array([chosen["prompt"]])
        logits, _ = _margins(model, np.array(chosen["tokens"]))
        reference = np.load(logits_file)
        diff = np.abs(logits - reference).max(axis=1)  # (new,): the largest change at each position
        top2 = np.sort(reference, axis=1)[:, -2:]
        # a change below half the float32 margin cannot flip that position's greedy choice
        report.update(max_abs_logit_diff_vs_float32=float(diff.max()),
                      positions_that_could_flip=int((diff >= (top2[:, 1] - top2[:, 0]) / 2).sum()))

    out = model.generate(prompt, NEW_TOKENS, temperature=0)
    report.update(tokens=out[0, PROMPT:].tolist(), vm_hwm_mb=_vm_hwm_mb(), load_average_after=_load_average())
    print(json.dumps(report))


def speed(directory: str, repeats: int) -> None:
    """Every model in one process, timed in turn (float32, int8, int4, float32, ...): the load of
    a shared machine changes by the minute, and interleaving gives each ratio the same load."""
    from tinytorch.core.threads import get_num_threads, thread_limit

    prompt = np.array([json.loads((Path(directory) / "prompt.json").read_text())["prompt"]])
    models = {scheme: _load(directory, scheme) for scheme in ("float32", *SCHEMES)}
    report: dict = {"blas_threads": get_num_threads()}
    for label, threads in (("one_thread", 1), ("default_threads", None)):
        times: dict[str, list[float]] = {scheme: [] for scheme in models}
        with contextlib.nullcontext() if threads is None else thread_limit(threads):
            for model in models.values():
                model.generate(prompt, NEW_TOKENS, temperature=0)  # warm-up
            for _ in range(repeats):
                for scheme, model in models.items():
                    t = time.perf_counter()
                    model.generate(prompt, NEW_TOKENS, temperature=0)
                    times[scheme].append(time.perf_counter() - t)
        report[label] = {scheme: {"tokens_per_sec": NEW_TOKENS / statistics.median(t), "seconds": t}
                         for scheme, t in times.items()}
    report["load_average_after"] = _load_average()
    print(json.dumps(report))


LAYERS = {"attn.qkv": (768, 2304), "mlp.fc": (768, 3072), "mlp.proj": (3072, 768), "attn.proj": (768, 768),
          "lm_head": (768, 50257)}
STREAM_BYTES = 256 * 2**20  # each layer's copies of its weights, well past the 32 MiB L3: read from memory


def layers(repeats: int) -> dict:
    """GPT-2's matrices alone, batch 1, one BLAS thread: float32 against the int8 path, with the
    int8 path's two halves timed apart (widening the int8 rows into the float32 buffer, and the
    GEMVs on the widened blocks), to show where its time goes.

    Each layer cycles through enough copies of its weights that every call reads them from
    memory, as decoding does (GPT-2's 124M weights cannot stay in any cache). Variants alternate
    within every repeat; the medians are per call.

    - ``float32``: ``x @ W.T`` with W laid out as `TinyGPT.eval` lays it out (`decode_layout`):
      the baseline of the model run.
    - ``float32_row_major``: the same with W row-major (out, in), nn.Linear's own layout, which
      OpenBLAS multiplies with another GEMV kernel (what decoding used before `decode_layout`).
    - ``int8``: `Int8WeightOnlyLinear` (int8 rows widened a block at a time into a reused
      float32 buffer of `BLOCK_BYTES`, BLAS on each block, the row scales on the output).
    - ``int8_widen``: only the widening of all blocks; ``int8_gemv``: only the GEMVs, each on a
      block already widened (in the cache).
    """
    from tinytorch.core.quantization import BLOCK_BYTES

    rng = np.random.default_rng(0)
    out: dict = {"block_bytes": BLOCK_BYTES, "stream_bytes_per_layer": STREAM_BYTES, "repeats": repeats}
    for name, (k, n) in LAYERS.items():
        out[name] = _layer(k, n, rng, repeats)
    out["baseline"] = "float32 (decode layout) in the same run; float32_row_major for comparison"
    out["load_average_after"] = _load_average()
    return out


def _layer(k: int, n: int, rng: np.random.Generator, repeats: int) -> dict:
    """One (k -> n) matrix of `layers`: the medians of its variants and their ratios."""
    from tinytorch.core import no_grad
    from tinytorch.core.quantization import BLOCK_BYTES, Int8WeightOnlyLinear, quantize_int8_rows
    from tinytorch.core.threads import thread_limit
    from tinytorch.language.model import decode_layout

    copies = max(1, -(-STREAM_BYTES // (4 * k * n)))
    row_major = [(rng.standard_normal((n, k), dtype=np.float32) * 0.02) for _ in range(copies)]
    decode = [decode_layout(w) for w in row_major]
    int8 = [Int8WeightOnlyLinear(*quantize_int8_rows(w)) for w in row_major]
    x = rng.standard_normal((1, k), dtype=np.float32)
    rows = max(1, BLOCK_BYTES // (4 * k))
    buffer = np.empty(min(rows, n) * k, np.float32)
    y = np.empty((1, n), np.float32)
    blocks = [(start, min(n, start + rows)) for start in range(0, n, rows)]

    def widen(layer):
        for start, stop in blocks:
            layer._widen(start, stop, buffer[: (stop - start) * k].reshape(stop - start, k))

    def gemv(_):
        for start, stop in blocks:
            np.matmul(x, buffer[: (stop - start) * k].reshape(stop - start, k).T, out=y[:, start:stop])

    variants = {"float32": (decode, lambda w: x @ w.T), "float32_row_major": (row_major, lambda w: x @ w.T),
                "int8": (int8, lambda layer: layer(x)), "int8_widen": (int8, widen), "int8_gemv": (int8, gemv)}
    times: dict[str, list[float]] = {v: [] for v in variants}
    with thread_limit(1), no_grad():
        for i in range(repeats + 1):  # the first round warms up
            for v, (weights, call) in variants.items():
                t = time.perf_counter()
                for w in weights:
                    call(w)
                if i:
                    times[v].append((time.perf_counter() - t) / copies)
    ms = {v: 1e3 * statistics.median(t) for v, t in times.items()}
    return {"in_features": k, "out_features": n, "copies": copies, "ms": ms,
            "int8_speedup_vs_float32": ms["float32"] / ms["int8"],
            "int8_speedup_vs_float32_row_major": ms["float32_row_major"] / ms["int8"],
            "float32_GBps": 4 * k * n / ms["float32"] / 1e6,
            "int8_widen_Gelem_per_s": k * n / ms["int8_widen"] / 1e6,
            "int8_gemv_Gelem_per_s": k * n / ms["int8_gemv"] / 1e6}


def _load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _run(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"quantization_gpt: {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}


def gpt2(repeats: int, candidates: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        _run("--build", directory)
        _run("--convert", directory)
        sizes = {"float32": (Path(directory) / "model.safetensors").stat().st_size,
                 **{s: (Path(directory) / f"{s}.safetensors").stat().st_size for s in SCHEMES}}
        runs = {scheme: _run("--child", directory, "--scheme", scheme, "--candidates", str(candidates))
                for scheme in ("float32", *SCHEMES)}
        timing = _run("--speed", directory, "--repeats", str(repeats))
    base = runs["float32"]
    result: dict = {"model": {**GPT2,
                              "weights": "random (GPT-2's initialisation, seed 0): GPT-2's trained weights "
                                         "are not available offline on this machine"},
                    "generate": {"batch": 1, "prompt_tokens": PROMPT, "new_tokens": NEW_TOKENS, "greedy": True,
                                 "kv_cache": True, "repeats": repeats},
                    "prompt_choice": f"of {candidates} random prompts, the one whose float32 greedy continuation "
                                     "has the largest minimum top-1/top-2 margin (chosen before any quantized run)",
                    "file_bytes": sizes, "runs": {k: {x: y for x, y in v.items() if x != "tokens"} for k, v in runs.items()},
                    "speed": timing}
    for scheme in SCHEMES:
        run = runs[scheme]
        same = [a == b for a, b in zip(run["tokens"], base["tokens"])]
        result[scheme] = {
            "baseline": "float32 in the same run",
            "speedup_one_thread": (timing["one_thread"][scheme]["tokens_per_sec"]
                                   / timing["one_thread"]["float32"]["tokens_per_sec"]),
            "speedup_default_threads": (timing["default_threads"][scheme]["tokens_per_sec"]
                                        / timing["default_threads"]["float32"]["tokens_per_sec"]),
            "peak_rss_ratio": run["vm_hwm_mb"] / base["vm_hwm_mb"],
            "greedy_tokens_equal": f"{sum(same)}/{len(same)}",
            "first_differing_token": same.index(False) if not all(same) else None,
            "max_abs_logit_diff_vs_float32": run["max_abs_logit_diff_vs_float32"],
            "positions_where_the_difference_could_flip_the_choice": run["positions_that_could_flip"],
            "float32_min_margin": base["min_margin"],
            "file_size_ratio": sizes[scheme] / sizes["float32"],
        }
    result["targets"] = {"int8_speedup": 1.3, "int8_peak_rss_ratio": 0.6, "greedy_tokens_equal": f"{NEW_TOKENS}/{NEW_TOKENS}"}
    return result


def tinygpt(checkpoint: str) -> dict:
    with tempfile.TemporaryDirectory() as directory:  # one snapshot: a training run may still rewrite the file
        snapshot = Path(directory) / "tinygpt.safetensors"
        shutil.copyfile(checkpoint, snapshot)
        return _tinygpt(str(snapshot), checkpoint, hashlib.sha256(snapshot.read_bytes()).hexdigest())


def _tinygpt(checkpoint: str, shown: str, sha256: str) -> dict:
    from tinytorch.core import io
    from tinytorch.core.data import DataLoader
    from tinytorch.core.quantization import quantize_
    from tinytorch.core.training import Trainer
    from tinytorch.language import load_checkpoint, load_shakespeare
    from tinytorch.language.data import TokenWindows, split_tokens
    from tinytorch.language.training import lm_loss

    train = io.load_metadata(checkpoint)["tinytorch.language"]["train"]
    out: dict = {"checkpoint": shown, "sha256": sha256, "validation": f"the last {train['val_fraction']:.0%} of Tiny Shakespeare's "
                 f"tokens (the recipe's split), windows of {train['seq_len']}"}
    for scheme in ("float32", *SCHEMES):
        model, tokenizer, _ = load_checkpoint(checkpoint)
        if scheme != "float32":
            quantize_(model, _config(scheme))
        _, val = split_tokens(np.asarray(tokenizer.encode(load_shakespeare()), np.int64), train["val_fraction"])
        loader = DataLoader(TokenWindows(val, train["seq_len"]), batch_size=64)
        t = time.perf_counter()
        out[scheme] = {"val_loss": Trainer(model, None, lm_loss, progress=False).evaluate(loader)["loss"],
                       "seconds": time.perf_counter() - t}
    for scheme in SCHEMES:
        out[scheme]["val_loss_minus_float32"] = out[scheme]["val_loss"] - out["float32"]["val_loss"]
    out["targets"] = {"int8_within": 0.01, "int4_within": 0.05}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--tinygpt", default=None, help="a TinyGPT checkpoint (the 10-minute recipe's)")
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument("--skip-layers", action="store_true", help="skip GPT-2's matrices timed alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scheme", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    parser.add_argument("--convert", help=argparse.SUPPRESS)
    parser.add_argument("--speed", help=argparse.SUPPRESS)
    parser.add_argument("--layers", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.layers:
        return print(json.dumps(layers(args.repeats)))
    if args.child:
        return child(args.child, args.scheme, args.candidates)
    if args.speed:
        return speed(args.speed, args.repeats)
    if args.build:
        return build(args.build)
    if args.convert:
        return convert(args.convert)
    result: dict = {"load_average_before": _load_average()}
    if args.tinygpt:
        result["tinygpt"] = tinygpt(args.tinygpt)
    if not args.skip_layers:
        result["layers"] = _run("--layers", "1", "--repeats", str(args.repeats))  # its own process: its memory is freed
    if not args.skip_gpt2:
        result["gpt2"] = gpt2(args.repeats, args.candidates)
    result["load_average_after"] = _load_average()
    emit("quantization_gpt", result)


if __name__ == "__main__":
    main()
