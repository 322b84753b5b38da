"""Tokenizers: round trips (hypothesis and edge cases), BPE training, special tokens, files."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.language import (
    BasicBPETokenizer,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    WordTokenizer,
    load_shakespeare,
)
from tinytorch.language.tokenizers import GPT2_SPLIT_PATTERN
from tinytorch.language.tokenizers.bpe import _merge, train_merges

EDGE_CASES = ["", "a", "é", "日本語", "🙂", "👩‍👩‍👧", "hello world", "  spaces\t\nand\r\n",
              "it's 1,234.5 — ½ ²", "a_b__c", "\u0301combining"]
CORPUS = "The quick brown fox jumps over the lazy dog. It's 12:34! 日本語 🙂 naïve café " * 5


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer(vocab_size=300, special_tokens=["<|endoftext|>"]).fit(CORPUS)


def test_bpe_minbpe_example():
    for cls in (BasicBPETokenizer, BPETokenizer):
        tok = cls(vocab_size=256 + 3).fit("aaabdaaabac")
        assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
        assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def _naive_merges(pieces: dict[bytes, int], num_merges: int):
    """minbpe's recount-everything training, with the same tie-break (count, then smallest pair)."""
    words = {tuple(p): n for p, n in pieces.items()}
    words = [(list(w), n) for w, n in words.items()]
    merges = []
    for i in range(num_merges):
        stats = Counter()
        for w, n in words:
            for pair in zip(w, w[1:]):
                stats[pair] += n
        if not stats:
            break
        best = min(stats, key=lambda p: (-stats[p], p))
        merges.append(best)
        words = [(_merge(w, best, 256 + i), n) for w, n in words]
    return merges


def test_incremental_training_equals_naive_recount():
    tok = BPETokenizer()
    pieces = tok._pieces(CORPUS + "aaaa bbbb abab " * 3)
    assert train_merges(pieces, 60) == _naive_merges(pieces, 60)


@pytest.mark.parametrize("text", EDGE_CASES)
def test_bpe_round_trip_edge_cases(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_bpe_round_trip_arbitrary_unicode(text):
    tok = _HYPO_TOK
    assert tok.decode(tok.encode(text)) == text


_HYPO_TOK = BPETokenizer(vocab_size=320).fit(CORPUS)


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_bpe_trained_on_arbitrary_text_round_trips(text):
    tok = BPETokenizer(vocab_size=270).fit(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text + "x🙂")) == text + "x🙂"


def test_bpe_special_tokens_refused_unless_allowed(bpe):
    text = "hello<|endoftext|>world"
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>' at position 5"):
        bpe.encode(text)
    ids = bpe.encode(text, allowed_special="all")
    assert bpe.special_tokens["<|endoftext|>"] in ids
    assert bpe.decode(ids) == text
    assert bpe.encode(text, allowed_special={"<|endoftext|>"}) == ids
    assert bpe.encode_ordinary(text) != ids  # as plain text it is split into bytes/merges
    with pytest.raises(ValueError, match="not special tokens"):
        bpe.encode("x", allowed_special={"<|nope|>"})


def test_bpe_special_tokens_match_the_longest_first():
    # "<s>" is a prefix of "<s>x": the longer token wins wherever both match, whatever the order
    # the tokenizer was given them in (as Hugging Face's added tokens, leftmost-longest).
    for specials in (["<s>", "<s>x"], ["<s>x", "<s>"]):
        tok = BPETokenizer(special_tokens=specials)
        s, sx = tok.special_tokens["<s>"], tok.special_tokens["<s>x"]
        assert tok.encode("<s>x", allowed_special="all") == [sx]
        assert tok.encode("a<s>xb<s>", allowed_special="all") == [ord("a"), sx, ord("b"), s]
        assert tok.encode("<s>x", allowed_special={"<s>"}, disallowed_special=()) == [s, ord("x")]
        assert tok.decode(tok.encode("<s><s>x<s>", allowed_special="all")) == "<s><s>x<s>"


def test_bpe_shakespeare_512_compresses():
    text = load_shakespeare()[:200_000]
    tok = BPETokenizer(vocab_size=512).fit(text)
    ids = tok.encode(text)
    assert tok.vocab_size == 512 and max(ids) < 512
    assert len(text) / len(ids) > 1.7
    assert tok.decode(ids) == text


@pytest.mark.parametrize("text", ["", "a", "ab", "é", "🙂", "hello"])
def test_char_round_trip_edge_cases(text):
    tok = CharTokenizer().fit("hello abé🙂")
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1))
def test_char_round_trip_on_training_alphabet(text):
    tok = CharTokenizer().fit(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.get_vocab_size() == len(set(text))


def test_char_unknown_character_policy():
    tok = CharTokenizer().fit("abc")
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at position 2"):
        tok.encode("abz")
    unk = CharTokenizer(unk_token="?").fit("abc")
    assert unk.vocab_size == 4
    assert unk.encode("abz") == [0, 1, 3]
    assert unk.decode(unk.encode("abz")) == "ab?"


def test_char_shakespeare_vocab_is_65():
    assert CharTokenizer().fit(load_shakespeare()).get_vocab_size() == 65


@pytest.mark.parametrize("text", ["", "a", "hello, world!", "naïve  café\n", "🙂🙂 x"])
def test_word_round_trip_on_training_text(text):
    tok = WordTokenizer().fit("hello, world! naïve  café\n🙂🙂 x a")
    assert tok.decode(tok.encode(text)) == text


def test_word_unknown_maps_to_unk():
    tok = WordTokenizer().fit("to be or not to be")
    assert tok.decode(tok.encode("to sleep")) == "to <unk>"


def test_word_max_vocab_keeps_most_frequent():
    tok = WordTokenizer(max_vocab_size=3).fit("a a a b b c")
    assert tok.itos == ["<unk>", " ", "a"]  # " " occurs 5 times


@pytest.mark.parametrize("tok", [
    CharTokenizer().fit("hello"), CharTokenizer(unk_token="�").fit("hi"),
    WordTokenizer().fit("a b c"), BPETokenizer(300, special_tokens=["<s>"]).fit(CORPUS),
    BasicBPETokenizer(270).fit(CORPUS),
], ids=lambda t: type(t).__name__)
def test_save_load_round_trip(tmp_path, tok):
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = Tokenizer.load(path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    sample = "hello" if isinstance(tok, CharTokenizer) else "a b"
    assert loaded.encode(sample) == tok.encode(sample)
    assert type(tok).load(path).vocab_size == tok.vocab_size


def test_tokenizer_file_of_another_version_is_refused(tmp_path):
    path = tmp_path / "tok.json"
    CharTokenizer().fit("abc").save(path)
    d = json.loads(path.read_text())
    d["version"] = 99
    path.write_text(json.dumps(d))
    with pytest.raises(TokenizerError, match="version 99.*reads versions 1, 2"):
        Tokenizer.load(path)


@pytest.mark.parametrize("content, match", [
    ("not json", "not valid JSON"),
    ('{"format": "other"}', "not a TinyTorch tokenizer"),
    ('{"format": "tinytorch.tokenizer", "version": 1, "type": "sentencepiece"}', "unknown tokenizer type"),
    ('{"format": "tinytorch.tokenizer", "version": 1, "type": "bpe", "vocab_size": 300, '
     '"pattern": "x", "merges": [[999, 1]]}', "corrupt bpe"),
])
def test_foreign_or_corrupt_tokenizer_files(tmp_path, content, match):
    path = tmp_path / "tok.json"
    path.write_text(content)
    with pytest.raises(TokenizerError, match=match):
        Tokenizer.load(path)


def test_load_checks_the_requested_class(tmp_path):
    path = tmp_path / "tok.json"
    CharTokenizer().fit("abc").save(path)
    with pytest.raises(TokenizerError, match="not a BPETokenizer"):
        BPETokenizer.load(path)


def test_decode_rejects_out_of_range_ids():
    tok = CharTokenizer().fit("ab")
    with pytest.raises(ValueError, match="id 5 is out of range for vocab_size=2"):
        tok.decode([0, 5])


def test_unfitted_tokenizer_error():
    with pytest.raises(ValueError, match="not fitted"):
        CharTokenizer().encode("a")


# ---------------------------------------------------------------------------------- hostile files (issue 13)


def _file(kind: str, **fields) -> dict:
    good = {
        "char": {"chars": "abc", "unk_token": None},
        "word": {"unk_token": "<unk>", "max_vocab_size": None, "min_freq": 1, "vocab": ["<unk>", " ", "a"]},
        "bpe_basic": {"vocab_size": 258, "merges": [[97, 98], [256, 99]]},
        "bpe": {"vocab_size": 258, "merges": [[97, 98], [256, 99]], "pattern": r"\S+|\s+",
                "special_tokens": ["<s>"]},
    }[kind]
    return {"format": "tinytorch.tokenizer", "version": 1, "type": kind, **good, **fields}


WRONG_TYPES = [
    ("char", "chars", ["a", "b"]), ("char", "chars", 5), ("char", "unk_token", 5), ("char", "unk_token", "a"),
    ("word", "vocab", "<unk>ab"), ("word", "vocab", ["<unk>", 1, 2]), ("word", "vocab", {"<unk>": 0}),
    ("word", "min_freq", 1.5), ("word", "max_vocab_size", "10"), ("word", "unk_token", ["<unk>"]),
    ("bpe_basic", "vocab_size", 300.7), ("bpe_basic", "vocab_size", "300"), ("bpe_basic", "vocab_size", True),
    ("bpe_basic", "merges", [[97.9, 98], [256, 99]]), ("bpe_basic", "merges", [["97", "98"], [256, 99]]),
    ("bpe_basic", "merges", [[True, 98], [256, 99]]), ("bpe_basic", "merges", "ab"),
    ("bpe_basic", "merges", [[97, 98], [97, 98]]), ("bpe_basic", "vocab_size", 257),
    ("bpe", "pattern", 5), ("bpe", "special_tokens", "<s>"), ("bpe", "special_tokens", [1]),
    ("bpe", "pattern", r"[a-z]+"),  # drops everything else: encode would silently lose text
    ("bpe", "byte_order", list(range(255))), ("bpe", "byte_order", [0] * 256), ("bpe", "byte_order", "abc"),
    ("bpe_basic", "byte_order", [*range(1, 256), 256]),
]


@pytest.mark.parametrize("kind, field, value", WRONG_TYPES, ids=[f"{k}-{f}-{v!r}" for k, f, v in WRONG_TYPES])
def test_tokenizer_file_with_a_wrong_field_is_refused_naming_file_and_field(tmp_path, kind, field, value):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(_file(kind)))
    Tokenizer.load(path)  # the honest file loads
    path.write_text(json.dumps(_file(kind, **{field: value})))
    with pytest.raises(TokenizerError) as err:
        Tokenizer.load(path)
    assert str(path) in str(err.value) and repr(field) in str(err.value), str(err.value)


def test_tokenizer_file_missing_a_field_names_it(tmp_path):
    path = tmp_path / "tok.json"
    d = _file("bpe")
    del d["merges"]
    path.write_text(json.dumps(d))
    with pytest.raises(TokenizerError, match=r"'merges' is missing") as err:
        Tokenizer.load(path)
    assert str(path) in str(err.value)


def test_deeply_nested_tokenizer_file_is_a_clear_error(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text('{"format": "tinytorch.tokenizer", "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(TokenizerError, match="nested") as err:
        Tokenizer.load(path)
    assert str(path) in str(err.value)


def test_encode_never_silently_drops_text_the_pattern_does_not_cover():
    tok = BPETokenizer(vocab_size=256, pattern=r"[^\x00]+")  # covers everything but NUL
    assert tok.decode(tok.encode("a b")) == "a b"
    with pytest.raises(TokenizerError, match=r"position 1"):
        tok.encode("a\x00b")
    with pytest.raises(TokenizerError, match=r"position 1"):
        tok.fit("a\x00b")
    with pytest.raises(ValueError, match="pattern"):
        BPETokenizer(pattern=r"\w+")  # drops spaces and punctuation of ordinary text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_bpe_encode_is_lossless_or_an_error_for_any_text(text):
    tok = BPETokenizer(vocab_size=256, pattern=r"[^\x00\x85]+|\x85")
    try:
        ids = tok.encode(text)
    except TokenizerError:
        assert "\x00" in text
        return
    assert tok.decode(ids) == text


@pytest.mark.parametrize("tok", [CharTokenizer(), WordTokenizer(), BPETokenizer(vocab_size=260),
                                 BasicBPETokenizer(vocab_size=260)], ids=lambda t: type(t).__name__)
def test_fit_refuses_lone_surrogates(tok):
    with pytest.raises(TokenizerError) as err:
        tok.fit("ab\ud800cd")
    message = str(err.value)
    assert message.startswith(f"{type(tok).__name__}.fit:") and "surrogate" in message and "position 2" in message


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from tinytorch.core import io as core_io

    path = tmp_path / "tok.json"
    CharTokenizer().fit("old").save(path)

    def crash(*args):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(core_io.os, "replace", crash)
    import os as _os

    monkeypatch.setattr(_os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash") as err:
        CharTokenizer().fit("new text").save(path)
    monkeypatch.undo()
    assert str(path) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.json"], "a temp file was left behind"
    assert Tokenizer.load(path).chars == ["d", "l", "o"]


def test_save_refuses_a_destination_that_is_not_a_regular_file(tmp_path):
    import os as _os
    import stat

    _os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="FIFO"):
        CharTokenizer().fit("abc").save(tmp_path / "pipe")
    assert stat.S_ISFIFO(_os.lstat(tmp_path / "pipe").st_mode)


# ---------------------------------------------------------------------------------- exact pre-split (issue 14)


def test_trained_bpe_pre_splits_with_gpt2s_exact_pattern():
    # \p{N} joins "²3"; U+001C is not whitespace; a combining mark is not a letter; U+1E030
    # (Unicode 15, newer than Python 3.11's tables) is a letter: the stdlib re emulation got each wrong.
    text = "x²3 a\x1cb e\u0301's \U0001e030's"
    pieces = ["x", "²3", " a", "\x1c", "b", " e", "\u0301'", "s", " \U0001e030", "'s"]
    tok = BPETokenizer(vocab_size=256)
    assert tok.pattern == GPT2_SPLIT_PATTERN and tok._split(text, "test") == pieces
    assert set(tok._pieces(text)) == {p.encode() for p in pieces}  # fit learns inside the same pieces


def test_version_1_bpe_file_still_loads_and_is_saved_as_version_2(tmp_path):
    old_default = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(_file("bpe", pattern=old_default)))
    tok = Tokenizer.load(path)
    assert tok.byte_order == list(range(256)) and tok.pattern == old_default  # split as when it was trained
    assert tok.encode("abc ab<s>", allowed_special="all") == [257, 32, 256, 258]
    tok.save(path)
    saved = json.loads(path.read_text())
    assert saved["version"] == 2 and saved["byte_order"] == list(range(256))
    assert Tokenizer.load(path).encode("abc ab") == [257, 32, 256]
