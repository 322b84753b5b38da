"""Hostile tokenizer files and inputs cost bounded time and fail naming the file (issue 21 §3, §4).

No test here times anything: "bounded" is asserted by counting the work (rank look-ups of the
merge loop, set look-ups of the special-token finder), and a pattern that would hang runs in a
subprocess with a generous timeout as a guard.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import regex

from tinytorch.language import BPETokenizer, Tokenizer, TokenizerError
from tinytorch.language.tokenizers.bpe import _bpe, _SpecialFinder

GPT2_DIR = Path(os.environ.get("TINYTORCH_DATA", "")) / "gpt2"
needs_gpt2 = pytest.mark.skipif(not (GPT2_DIR / "vocab.bpe").exists(),
                                reason="GPT-2's tokenizer files not found under $TINYTORCH_DATA/gpt2")


def reference_bpe(ids: list[int], ranks: dict[tuple[int, int], int]) -> list[int]:
    """The plain O(n²) loop the heap replaced: merge every occurrence of the lowest-ranked pair,
    left to right, until no pair has a rank."""
    while len(ids) >= 2:
        best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(ids):
            if i < len(ids) - 1 and (ids[i], ids[i + 1]) == best:
                out.append(ranks[best])
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


def _random_bytes(rng: random.Random, alphabet: bytes, n: int) -> list[int]:
    return [rng.choice(alphabet) for _ in range(rng.randint(0, n))]


def test_heap_merge_equals_the_plain_loop_on_a_trained_vocabulary():
    rng = random.Random(0)
    text = "".join(rng.choice(["aa", "a", "ab", "b", "ba", "aaa", "c"]) for _ in range(3000))
    tok = BPETokenizer(vocab_size=256 + 60, pattern=r"\S+|\s+").fit(text)
    assert len(tok.merges) == 60
    for _ in range(500):  # runs of equal letters: overlapping pairs of the same rank
        ids = _random_bytes(rng, b"abc", 40)
        assert _bpe(list(ids), tok.ranks) == reference_bpe(ids, tok.ranks), ids


@needs_gpt2
def test_heap_merge_equals_the_plain_loop_on_gpt2s_ranks():
    tok = BPETokenizer.from_gpt2(GPT2_DIR)
    rng = random.Random(1)
    for _ in range(300):
        text = "".join(rng.choice("etaoin shrdlu\n'0123456789,.é日🙂") for _ in range(rng.randint(0, 60)))
        ids = list(text.encode("utf-8").translate(tok._byte_ids))
        assert _bpe(list(ids), tok.ranks) == reference_bpe(ids, tok.ranks), text


class CountingRanks(dict):
    """The ranks, counting how often the merge loop looks one up."""

    lookups = 0

    def get(self, key, default=None):
        CountingRanks.lookups += 1
        return super().get(key, default)


@needs_gpt2
def test_one_long_piece_costs_linear_rank_lookups():
    # 40,000 letters without a space took > 15 s: the old loop looked up every pair of the piece
    # after every merge (about n²/2 = 4.5e6 look-ups for these 3,000 letters).
    tok = BPETokenizer.from_gpt2(GPT2_DIR)
    ranks = CountingRanks(tok.ranks)
    rng = random.Random(2)
    letters = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(3000))
    ids = list(letters.translate(tok._byte_ids))
    CountingRanks.lookups = 0
    merged = _bpe(ids, ranks)
    assert merged == reference_bpe(ids, tok.ranks)
    assert CountingRanks.lookups <= 6 * len(ids)  # n initial pairs, then <= 3 per merge or stale entry


# ------------------------------------------------------------------------------- special tokens


def test_special_finder_is_leftmost_then_longest_like_an_alternation():
    rng = random.Random(3)
    for _ in range(300):
        tokens = frozenset("".join(rng.choice("ab<") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 6)))
        text = "".join(rng.choice("ab<c") for _ in range(rng.randint(0, 30)))
        alternation = regex.compile("|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)))
        expected = [(m.start(), m.group()) for m in alternation.finditer(text)]
        assert list(_SpecialFinder(tokens).finditer(text)) == expected, (tokens, text)


class CountingSet(frozenset):
    lookups = 0

    def __contains__(self, item):
        CountingSet.lookups += 1
        return super().__contains__(item)


def test_many_special_tokens_cost_lookups_per_position_not_per_token():
    # 500k extra ids in vocab.json made every 10 KB of encoding take 3.3 s: each token was searched
    # for separately. The finder's work is bounded by positions x distinct lengths.
    tokens = CountingSet(f"<|extra_{i}|>" for i in range(20_000))
    lengths = len({len(t) for t in tokens})
    text = "<|extra_7|> and <|extra_19999|> <|nope|> " * 50
    CountingSet.lookups = 0
    found = list(_SpecialFinder(tokens).finditer(text))
    assert [t for _, t in found[:2]] == ["<|extra_7|>", "<|extra_19999|>"] and len(found) == 100
    assert CountingSet.lookups <= text.count("<") * lengths


def test_encode_with_many_special_tokens_splits_and_refuses_as_before():
    specials = [f"<|extra_{i}|>" for i in range(5000)]
    tok = BPETokenizer(vocab_size=256, special_tokens=specials)
    assert tok.encode("a<|extra_4999|>b<|extra_1|>", allowed_special="all") == [97, 256 + 4999, 98, 257]
    with pytest.raises(ValueError, match=r"special token '<\|extra_3\|>' at position 2"):
        tok.encode("ab<|extra_3|>")
    with pytest.raises(ValueError, match=r"special token '<\|extra_2\|>' at position 1"):  # not allowed
        tok.encode("a<|extra_2|><|extra_3|>", allowed_special={"<|extra_3|>"})
    assert tok.encode("<|extra_2|>", disallowed_special=()) == list(b"<|extra_2|>")


# ------------------------------------------------------------------------------- pre-split patterns

HANGING_PATTERN = "(?:[^\n]|[^\n][^\n])+\x00|\\s+|\\S"


def test_a_catastrophically_backtracking_pattern_is_refused_not_run():
    with pytest.raises(ValueError, match="backtracks catastrophically"):
        BPETokenizer(pattern=HANGING_PATTERN)


def test_a_tokenizer_file_with_a_hanging_pattern_fails_to_load_instead_of_hanging(tmp_path):
    path = tmp_path / "tok.json"
    BPETokenizer(vocab_size=256).fit("ab").save(path)
    d = json.loads(path.read_text())
    d["pattern"] = HANGING_PATTERN
    path.write_text(json.dumps(d))
    code = ("import sys; from tinytorch.language import Tokenizer\n"
            "try:\n    Tokenizer.load(sys.argv[1])\nexcept ValueError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=120)  # a hang guard: the old probe ran for hours
    assert done.returncode == 0, done.stderr
    assert str(path) in done.stdout and "field 'pattern'" in done.stdout and "backtracks" in done.stdout


# ------------------------------------------------------------------------------- hostile files


def test_deeply_nested_or_long_numbers_in_a_tokenizer_file_name_the_file(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text("[" * 200_000)
    with pytest.raises(TokenizerError, match=f"{path}: its JSON is nested too deeply"):
        Tokenizer.load(path)
    path.write_text('{"format": "tinytorch.tokenizer", "version": 2, "type": "bpe_basic", "vocab_size": '
                    + "9" * 5000 + ', "merges": []}')
    with pytest.raises(TokenizerError, match=f"{path}.*field 'vocab_size' must be an int, got .*5000-digit"):
        Tokenizer.load(path)


@needs_gpt2
@pytest.mark.parametrize("case", ["nested", "long_id"])
def test_hostile_vocab_json_names_the_file(tmp_path, case):
    encoder = tmp_path / "vocab.json"
    merges = tmp_path / "merges.txt"
    merges.write_text("#version: 0.2\n")
    if case == "nested":
        encoder.write_text('{"a": ' + "[" * 200_000)
        match = f"{encoder}: its JSON is nested too deeply"
    else:
        encoder.write_text('{"a": ' + "7" * 5000 + "}")
        match = f"{encoder}: the id of token 'a' must be a non-negative int, got a 5000-digit number"
    with pytest.raises(TokenizerError, match=regex.escape(match)):
        BPETokenizer.from_gpt2(encoder, merges)


def test_a_5000_digit_rank_in_a_tiktoken_file_names_the_line(tmp_path):
    path = tmp_path / "r.tiktoken"
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256))
                    + "aGk= " + "1" * 5000 + "\n")
    with pytest.raises(TokenizerError, match=f"{path} line 257: the rank is a 5000-digit number"):
        BPETokenizer.from_tiktoken(path)


@needs_gpt2
def test_merges_cut_short_are_an_error_naming_the_merges_file(tmp_path):
    # 999 of 50,000 merges used to load, turning 49,002 ordinary tokens into "special tokens".
    lines = (GPT2_DIR / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    merges = tmp_path / "merges.txt"
    merges.write_text("\n".join(lines[:1000]) + "\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"merges.txt holds 999 merges, but .*encoder.json has 49002 tokens "
                                             r"after them, and token 1255 'Ġresult' is 'Ġres' \+ 'ult'"):
        BPETokenizer.from_gpt2(GPT2_DIR / "encoder.json", merges)


@pytest.mark.parametrize("command", [["tokenize", "--load", "{fifo}", "--text", "{text}"],
                                     ["generate", "--checkpoint", "{fifo}", "--prompt", "a"]])
def test_a_fifo_given_as_a_file_is_refused_in_one_line_not_waited_on(tmp_path, command):
    """Reading a FIFO blocks until a writer comes: every reader refuses it before opening."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    text = tmp_path / "t.txt"
    text.write_text("hi there")
    args = [a.replace("{fifo}", str(fifo)).replace("{text}", str(text)) for a in command]
    code = "import sys; from tito.main import main; sys.argv = ['tito', 'language'] + sys.argv[1:]; main()"
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)  # a hang guard: before the check this waited forever
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "FIFO" in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_tokenizer_readers_refuse_a_fifo(tmp_path):
    fifo = tmp_path / "vocab.json"
    os.mkfifo(fifo)
    # each reader in a subprocess: a regression would block on the FIFO, and the timeout ends it
    code = ("import sys\nfrom tinytorch.core.io import NotRegularFileError\n"
            "from tinytorch.language import BPETokenizer, Tokenizer\n"
            "for read in (lambda: Tokenizer.load(sys.argv[1]), lambda: BPETokenizer.from_tiktoken(sys.argv[1]),\n"
            "             lambda: BPETokenizer.from_gpt2(sys.argv[1], sys.argv[1])):\n"
            "    try:\n        read()\n    except NotRegularFileError as e:\n        print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(str(fifo) in line and "FIFO" in line for line in lines), lines
