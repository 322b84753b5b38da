"""GPT-2's tokenizer: ``BPETokenizer.from_gpt2`` / ``from_tiktoken`` give tiktoken's ``gpt2`` ids.

The expected ids are tiktoken 0.14.0's, recorded as literals (tests never import tiktoken):
they were printed by
    TINYTORCH_DATA=/work/shared/data TINYTORCH_REFERENCE_PYTHON=/root/.venvs/ref/bin/python \\
        python3 -m uv run python benchmarks/tokenizer_gpt2.py --print-expected
which builds tiktoken's encoding from the same files ($TINYTORCH_DATA/gpt2) and encodes SAMPLES
(the benchmark reads them from this module) and Tiny Shakespeare.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.language import BPETokenizer, Tokenizer, TokenizerError, load_shakespeare
from tinytorch.language.tokenizers import GPT2_SPLIT_PATTERN, bytes_to_unicode

GPT2_DIR = Path(os.environ.get("TINYTORCH_DATA", "")) / "gpt2"
pytestmark = pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA") or not (GPT2_DIR / "vocab.bpe").exists(),
                                reason="GPT-2's tokenizer files not found under $TINYTORCH_DATA/gpt2")

SAMPLES = {
    "empty": "",
    "one_char": "a",
    "superscripts": "x² + y³ = z½, H₂O, 10⁻³",
    "info_separators": "a\x1cb\x1dc\x1ed\x1fe \x1c\x1d",
    "contractions": "It's 't 're 've 'm 'll 'd, don't we're they've I'm you'll he'd IT'S",
    "whitespace": "a  b   c\n\n\td \t \n  \u00a0\u3000e \r\n   ",
    "digits": "123 4567 3.14159 1,000,000 ٣٤٥ ௫ 2024-12-02",
    "emoji": "🙂 👩‍👩‍👧 🇫🇷 ❤️ 🫠🫨",
    "cjk": "日本語のテキスト、中文文本。한국어 텍스트",
    "arabic": "مرحبا بالعالم، كيف حالك؟",
    "combining": "e\u0301 a\u0308 n\u0303o Z\u0324\u0354\u0367\u0311a\u0316\u032d",
    "mixed": "Привет, мир! Ωμέγα naïve café — “quotes” «guillemets» x_y=1+2*3 #$%&@^`~|\\/<>",
    "newer_than_python_3_11": "\U0001e030\U0001e031 \U00011f04\U00011f05 \u0cf3",  # Unicode 15
    "endoftext_as_text": "hello<|endoftext|>world",
    # where an emulation of \p{L}/\p{N}/\s (stdlib re or regex) changes the ids, not only the pieces
    "apostrophe_after": "²'s ½'s e\u0301's \x1c's \x1f's \u200d's \U0001e030's \u0cf3's",
}
ALLOWED = "Hello<|endoftext|>World <|endoftext|>"  # encoded with allowed_special="all"

# Printed by the command in the module docstring.
EXPECTED = {
    'empty': [],
    'one_char': [64],
    'superscripts': [87, 31185, 1343, 331, 126, 111, 796, 1976, 23141, 11, 367, 158, 224, 224, 46, 11, 838, 46256, 119, 126, 111],
    'info_separators': [64, 216, 65, 217, 66, 218, 67, 219, 68, 220, 216, 217],
    'contractions': [1026, 338, 705, 83, 705, 260, 705, 303, 705, 76, 705, 297, 705, 67, 11, 836, 470, 356, 821, 484, 1053, 314, 1101, 345, 1183, 339, 1549, 7283, 6, 50],
    'whitespace': [64, 220, 275, 220, 220, 269, 628, 197, 67, 220, 197, 220, 198, 220, 5624, 5099, 222, 68, 220, 201, 198, 220, 220, 220],
    'digits': [10163, 4153, 3134, 513, 13, 1415, 19707, 352, 11, 830, 11, 830, 18923, 96, 149, 97, 149, 98, 220, 156, 107, 104, 48609, 12, 1065, 12, 2999],
    'emoji': [8582, 25081, 50169, 102, 447, 235, 41840, 102, 447, 235, 41840, 100, 12520, 229, 104, 8582, 229, 115, 43074, 97, 37929, 12520, 104, 254, 8582, 104, 101],
    'cjk': [33768, 98, 17312, 105, 45739, 252, 5641, 24336, 25084, 43302, 23513, 40792, 23877, 229, 23877, 229, 17312, 105, 16764, 47991, 250, 166, 113, 255, 168, 244, 112, 220, 169, 227, 235, 168, 232, 97, 169, 232, 116],
    'arabic': [25405, 26897, 148, 255, 39848, 12919, 17550, 101, 23525, 44690, 23525, 25405, 148, 234, 18923, 225, 22654, 149, 223, 17550, 255, 23525, 149, 225, 148, 253],
    'combining': [68, 136, 223, 257, 136, 230, 299, 136, 225, 78, 1168, 136, 97, 137, 242, 137, 100, 136, 239, 64, 136, 244, 136, 255],
    'mixed': [140, 253, 21169, 18849, 38857, 16843, 20375, 11, 12466, 120, 18849, 21169, 0, 7377, 102, 34703, 138, 255, 42063, 17394, 41492, 40304, 851, 564, 250, 421, 6421, 447, 251, 21110, 5162, 8270, 76, 1039, 17730, 2124, 62, 88, 28, 16, 10, 17, 9, 18, 1303, 3, 4, 5, 31, 61, 63, 93, 91, 11139, 27, 29],
    'newer_than_python_3_11': [172, 252, 222, 108, 172, 252, 222, 109, 220, 172, 239, 120, 226, 172, 239, 120, 227, 220, 156, 111, 111],
    'endoftext_as_text': [31373, 27, 91, 437, 1659, 5239, 91, 29, 6894],
    'apostrophe_after': [31185, 338, 25208, 338, 304, 136, 223, 6, 82, 220, 216, 6, 82, 220, 219, 6, 82, 564, 235, 6, 82, 220, 172, 252, 222, 108, 338, 220, 156, 111, 111, 6, 82],
}

EXPECTED_ALLOWED = [15496, 50256, 10603, 220, 50256]

SHAKESPEARE_TOKENS, SHAKESPEARE_SHA256 = 338025, '44b84e03fcb25a4f6cd8133bc48074518c033cb4f9ba12b3d8dd9faeccdc3748'


@pytest.fixture(scope="module")
def gpt2():
    return BPETokenizer.from_gpt2(GPT2_DIR / "encoder.json", GPT2_DIR / "vocab.bpe")


def _digest(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_gpt2_ids_equal_tiktoken_on_multilingual_samples(gpt2, name):
    assert gpt2.encode(SAMPLES[name], disallowed_special=()) == EXPECTED[name]
    assert gpt2.decode(EXPECTED[name]) == SAMPLES[name]


def test_gpt2_ids_equal_tiktoken_on_all_of_tiny_shakespeare(gpt2):
    text = load_shakespeare()
    ids = gpt2.encode(text)
    assert (len(ids), _digest(ids)) == (SHAKESPEARE_TOKENS, SHAKESPEARE_SHA256)
    assert gpt2.decode(ids) == text


def test_gpt2_layout_and_endoftext(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2.pattern == GPT2_SPLIT_PATTERN
    assert gpt2.vocab[0] == b"!" and gpt2.vocab[188] == b"\x00" and gpt2.vocab[220] == b" "
    assert gpt2.encode(ALLOWED, allowed_special="all") == EXPECTED_ALLOWED
    assert gpt2.encode(ALLOWED, allowed_special={"<|endoftext|>"}) == EXPECTED_ALLOWED
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>' at position 5"):
        gpt2.encode(ALLOWED)  # tiktoken's default: special tokens in text are refused
    assert gpt2.encode_ordinary(SAMPLES["endoftext_as_text"]) == EXPECTED["endoftext_as_text"]
    assert gpt2.decode([50256]) == "<|endoftext|>"
    assert gpt2.decode(EXPECTED["emoji"][:1]) == "\ufffd"  # b"\xf0\x9f\x99": errors="replace", as tiktoken
    with pytest.raises(TypeError, match="allowed_special must be 'all' or a set"):
        gpt2.encode("x", allowed_special="<|endoftext|>")


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert [table[b] for b in (0, 10, 32, 33, 126, 127, 160, 161, 172, 173, 174, 255)] == [
        "Ā", "Ċ", "Ġ", "!", "~", "ġ", "ł", "¡", "¬", "Ń", "®", "ÿ"]


def test_hugging_face_names_and_a_directory_give_the_same_tokenizer(gpt2, tmp_path):
    shutil.copy(GPT2_DIR / "encoder.json", tmp_path / "vocab.json")
    # merges.txt with Windows line ends must read the same
    (tmp_path / "merges.txt").write_bytes((GPT2_DIR / "vocab.bpe").read_bytes().replace(b"\n", b"\r\n"))
    for tok in (BPETokenizer.from_gpt2(tmp_path), BPETokenizer.from_gpt2(str(GPT2_DIR)),
                BPETokenizer.from_gpt2(tmp_path / "vocab.json", tmp_path / "merges.txt")):
        assert tok.merges == gpt2.merges and tok.byte_order == gpt2.byte_order
        assert tok.special_tokens == gpt2.special_tokens
        assert tok.encode(SAMPLES["mixed"]) == EXPECTED["mixed"]


def _write_tiktoken(path: Path) -> None:
    """GPT-2's ranks in tiktoken's format, straight from encoder.json: base64(token bytes) rank."""
    byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
    encoder = json.loads((GPT2_DIR / "encoder.json").read_text(encoding="utf-8"))
    lines = [base64.b64encode(bytes(byte_of_char[c] for c in token)).decode() + f" {rank}"
             for token, rank in encoder.items() if token != "<|endoftext|>"]
    path.write_text("\n".join(lines) + "\n")


def test_from_tiktoken_equals_from_gpt2(gpt2, tmp_path):
    path = tmp_path / "r50k_base.tiktoken"
    _write_tiktoken(path)
    tok = BPETokenizer.from_tiktoken(path, special_tokens={"<|endoftext|>": 50256})
    assert tok.merges == gpt2.merges and tok.byte_order == gpt2.byte_order and tok.vocab_size == 50257
    for name in SAMPLES:
        assert tok.encode_ordinary(SAMPLES[name]) == EXPECTED[name], name
    assert tok.encode(ALLOWED, allowed_special="all") == EXPECTED_ALLOWED


def test_from_tiktoken_takes_the_pattern_by_name_and_checks_special_ids(tmp_path):
    path = tmp_path / "tiny.tiktoken"  # the 256 bytes and one merge, b" h"
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)) + "IGg= 256\n")
    assert BPETokenizer.from_tiktoken(path, pattern="r50k_base").pattern == GPT2_SPLIT_PATTERN
    assert BPETokenizer.from_tiktoken(path).encode("hi hi") == [104, 105, 256, 105]  # GPT-2: "hi", " hi"
    assert BPETokenizer.from_tiktoken(path, pattern=r"\S+|\s+").encode("hi hi") == [104, 105, 32, 104, 105]
    with pytest.raises(ValueError, match="ids must be 257, 258, ... \\(right after the 257 ranks"):
        BPETokenizer.from_tiktoken(path, special_tokens={"<|endoftext|>": 300})
    with pytest.raises(TypeError, match="special_tokens must be a dict"):
        BPETokenizer.from_tiktoken(path, special_tokens=["<|endoftext|>"])


def test_gpt2_tokenizer_saves_and_loads_as_version_2(gpt2, tmp_path):
    path = tmp_path / "gpt2.json"
    gpt2.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["version"] == 2 and saved["byte_order"] == gpt2.byte_order
    loaded = Tokenizer.load(path)
    assert isinstance(loaded, BPETokenizer) and loaded.vocab_size == 50257
    assert loaded.encode(SAMPLES["cjk"]) == EXPECTED["cjk"]
    assert loaded.encode(ALLOWED, allowed_special="all") == EXPECTED_ALLOWED


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_gpt2_round_trips_any_text_and_its_bytes(text):
    tok = _GPT2
    ids = tok.encode(text, disallowed_special=())
    assert tok.decode(ids) == text and tok.decode_bytes(ids) == text.encode("utf-8")
    assert tok.encode(tok.decode(ids), disallowed_special=()) == ids  # encoding is canonical


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50256), max_size=12))
def test_gpt2_decode_then_encode_keeps_the_text(ids):
    tok = _GPT2
    text = tok.decode(ids)  # invalid UTF-8 becomes U+FFFD, as in tiktoken's decode
    assert tok.decode_bytes(ids) == b"".join(tok.vocab[i] if i < 50256 else b"<|endoftext|>" for i in ids)
    assert tok.decode(tok.encode(text, disallowed_special=())) == text


_GPT2 = BPETokenizer.from_gpt2(GPT2_DIR) if (GPT2_DIR / "vocab.bpe").exists() else None


# ------------------------------------------------------------------------------- malformed files


def _gpt2_files(tmp_path, encoder=None, merges=None):
    enc, mer = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    enc.write_text(encoder if encoder is not None else (GPT2_DIR / "encoder.json").read_text(encoding="utf-8"),
                   encoding="utf-8")
    mer.write_text(merges if merges is not None else (GPT2_DIR / "vocab.bpe").read_text(encoding="utf-8"),
                   encoding="utf-8")
    return enc, mer


def _merge_lines():
    return (GPT2_DIR / "vocab.bpe").read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize("case, match", [
    ("encoder_not_json", r"encoder.json line 1 column 2: not valid JSON"),
    ("encoder_a_list", r"encoder.json: expected a JSON object of token -> id, got a list"),
    ("encoder_id_str", r"encoder.json: the id of token 'the' must be a non-negative int, got '1'"),
    ("unknown_part", r"vocab.bpe line 3: 'Ġzzzqqq' is not a token of .*encoder.json"),
    ("three_parts", r"vocab.bpe line 2: expected two tokens separated by one space, got 'Ġ t x'"),
    ("out_of_order", r"vocab.bpe line 2: merge 0 \('h' 71 \+ 'e' 68\) must make id 256"),
])
def test_malformed_gpt2_files_name_the_file_and_line(tmp_path, case, match):
    lines = _merge_lines()
    encoder, merges = None, None
    if case == "encoder_not_json":
        encoder = "{x"
    elif case == "encoder_a_list":
        encoder = "[1, 2]"
    elif case == "encoder_id_str":
        encoder = json.dumps({"the": "1"})
    elif case == "unknown_part":
        merges = "\n".join(lines[:2] + ["Ġzzzqqq t"] + lines[3:])
    elif case == "three_parts":
        merges = "\n".join(lines[:1] + ["Ġ t x"] + lines[2:])
    elif case == "out_of_order":
        merges = "\n".join(lines[:1] + ["h e"] + lines[1:])
    enc, mer = _gpt2_files(tmp_path, encoder, merges)
    with pytest.raises(TokenizerError, match=match):
        BPETokenizer.from_gpt2(enc, mer)


@pytest.mark.parametrize("content, match", [
    ("IQ== 0\nnot-base64! 1\n", r"bad.tiktoken line 2: 'not-base64!' is not base64"),
    ("IQ== 0\nIg==\n", r"bad.tiktoken line 2: expected 'base64 rank'"),
    ("IQ== 0\nIg== 0\n", r"bad.tiktoken line 2: rank 0 is also on line 1"),
    ("IQ== 0\nIg== 2\n", r"bad.tiktoken: ranks must be 0, 1, 2, .*; rank 1 is missing"),
    ("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(255)) + "aGk= 255\n",
     r"bad.tiktoken line 256: rank 255 is b'hi'; byte-level BPE has the 256 single bytes"),
    ("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)) + "aGkh 256\n",
     r"bad.tiktoken line 257: token b'hi!' \(rank 256\) is not the merge of two tokens"),
])
def test_malformed_tiktoken_files_name_the_file_and_line(tmp_path, content, match):
    path = tmp_path / "bad.tiktoken"
    path.write_text(content)
    with pytest.raises(TokenizerError, match=match):
        BPETokenizer.from_tiktoken(path)


def test_wrong_argument_types_and_missing_files_name_the_argument(tmp_path):
    with pytest.raises(TypeError, match="from_gpt2: encoder_json must be a path .*got int"):
        BPETokenizer.from_gpt2(123)
    with pytest.raises(TypeError, match="from_gpt2: vocab_bpe must be a path .*got list"):
        BPETokenizer.from_gpt2(GPT2_DIR / "encoder.json", [GPT2_DIR / "vocab.bpe"])
    with pytest.raises(TypeError, match="from_tiktoken: path must be a path .*got bytes"):
        BPETokenizer.from_tiktoken(b"x.tiktoken")
    with pytest.raises(ValueError, match="vocab_bpe is missing"):
        BPETokenizer.from_gpt2(GPT2_DIR / "encoder.json")
    with pytest.raises(FileNotFoundError, match="neither encoder.json \\+ vocab.bpe .* nor vocab.json \\+ merges.txt"):
        BPETokenizer.from_gpt2(tmp_path)
