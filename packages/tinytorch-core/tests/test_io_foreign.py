"""safetensors as others write it (issue 14 item 4): every dtype, BF16/F8 widening, tied-weight
aliases, other writers' metadata, memory of loading, strict headers.

Files are written here by hand in the exact byte format (8-byte little-endian header length,
JSON header padded with spaces to 8 bytes as safetensors pads it, then the data), never with
the safetensors package; one file was written by PyTorch + safetensors and is embedded as hex.
"""

import hashlib
import json
import struct
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import io, nn
from tinytorch.core.checkpoint import load_model_state, save_model_state
from tinytorch.core.io import CheckpointError


def write_safetensors(path, tensors, metadata=None, pad=True):
    """tensors: (name, dtype tag, shape, raw bytes) in data order; returns the header dict."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, tag, shape, data in tensors:
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header).encode()
    if pad:
        encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(t[3] for t in tensors))
    return header


def bf16_closed_form(bits):
    """The value of each bfloat16 bit pattern from sign, exponent and mantissa (float64)."""
    bits = bits.astype(np.int64)
    sign = np.where(bits & 0x8000, -1.0, 1.0)
    exponent, mantissa = (bits >> 7) & 0xFF, bits & 0x7F
    value = np.where(exponent == 0, np.ldexp(mantissa / 128.0, -126),
                     np.ldexp(1 + mantissa / 128.0, exponent - 127))
    value = np.where(exponent == 0xFF, np.where(mantissa == 0, np.inf, np.nan), value)
    return sign * value


# ---------------------------------------------------------------------------------- BF16


def test_every_bf16_pattern_widens_to_its_exact_value(tmp_path):
    bits = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    path = tmp_path / "bf16.safetensors"
    write_safetensors(path, [("w", "BF16", (256, 256), bits.astype("<u2").tobytes())])
    state, _ = io.load(path)
    got = state["w"]
    assert got.dtype == np.float32 and got.shape == (256, 256) and got.flags.writeable
    want = bf16_closed_form(bits)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].astype(np.float64), want[~nan])
    assert np.array_equal(np.signbit(got), bits >= 0x8000)  # -0.0 and negative NaNs keep the sign


def test_bf16_raw_gives_the_stored_bits(tmp_path):
    bits = np.array([0x3F80, 0xC020, 0x0001, 0x7F80, 0xFFC1], dtype=np.uint16)
    path = tmp_path / "bf16.safetensors"
    write_safetensors(path, [("w", "BF16", (5,), bits.tobytes())])
    raw = io.load(path, bf16="raw")[0]["w"]
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, bits)
    widened = io.bfloat16_to_float32(raw)
    np.testing.assert_array_equal(widened[:4], [1.0, -2.5, 2.0**-133, np.inf])
    assert np.isnan(widened[4])


def test_bf16_widening_spans_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(io.safetensors, "_CHUNK", 1000)  # 2,500 elements: chunks of 1000, 1000, 500
    bits = np.random.default_rng(0).integers(0, 1 << 16, 2500).astype(np.uint16)
    bits[(bits & 0x7F80) == 0x7F80] = 0x3F80  # no NaNs: compare exactly below
    path = tmp_path / "bf16.safetensors"
    write_safetensors(path, [("a", "U8", (3,), b"\1\2\3"), ("w", "BF16", (50, 50), bits.tobytes())])
    got = io.load(path)[0]["w"]
    np.testing.assert_array_equal(got.reshape(-1).astype(np.float64), bf16_closed_form(bits))


def _nearest_bf16_reference(x):
    """Round-to-nearest-even of float values to bfloat16, by comparing the two neighbours."""
    x64 = np.asarray(x, dtype=np.float64)
    down = (x64.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    # the two bf16 values bracketing x: truncation of float32(x) may be above x, so look around
    cands = np.stack([down - 1, down, down + 1]).astype(np.uint16)
    values = bf16_closed_form(cands)
    err = np.abs(values - x64)
    best = err.min(axis=0)
    tied = err == best
    even = (cands & 1) == 0
    pick = np.where(tied.sum(axis=0) > 1, np.argmax(tied & even, axis=0), np.argmin(err, axis=0))
    return cands[pick, np.arange(x64.size)]


def test_bf16_and_f8_scalars_and_empty_tensors(tmp_path):
    path = tmp_path / "edge.safetensors"
    write_safetensors(path, [("s", "BF16", (), b"\x80\x3f"), ("e", "BF16", (0, 3), b""),
                             ("q", "F8_E5M2", (), b"\x3c"), ("z", "F8_E4M3", (2, 0), b"")])
    state, _ = io.load(path)
    assert state["s"].shape == () and state["s"] == 1.0 and state["s"].dtype == np.float32
    assert state["e"].shape == (0, 3) and state["e"].dtype == np.float32
    assert state["q"] == 1.0 and state["z"].shape == (2, 0)
    raw, _ = io.load(path, bf16="raw", f8="raw")
    assert raw["s"] == 0x3F80 and raw["e"].dtype == np.uint16 and raw["q"] == 0x3C
    io.save({"s": np.float32(3.0), "e": np.zeros((0, 2), np.float32)}, path, float_dtype="bfloat16")
    state, _ = io.load(path)
    assert state["s"] == 3.0 and state["s"].shape == () and state["e"].shape == (0, 2)


def test_saving_bf16_rounds_to_nearest_even():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(20000) * np.exp(rng.uniform(-30, 30, 20000))).astype(np.float32)
    np.testing.assert_array_equal(io.float32_to_bfloat16(x), _nearest_bf16_reference(x))
    # float64 is rounded once: float32(1 + 2**-8 + 2**-30) is a bf16 tie, x itself is above it
    x64 = np.array([1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-8, -(1 + 2.0**-8 + 2.0**-30)])
    got = io.bfloat16_to_float32(io.float32_to_bfloat16(x64))
    np.testing.assert_array_equal(got, [1 + 2.0**-7, 1.0, -(1 + 2.0**-7)])
    np.testing.assert_array_equal(io.float32_to_bfloat16(x64), _nearest_bf16_reference(x64))
    special = np.array([np.inf, -np.inf, np.nan, np.finfo(np.float32).max, -0.0], np.float32)
    out = io.bfloat16_to_float32(io.float32_to_bfloat16(special))
    assert out[0] == np.inf and out[1] == -np.inf and np.isnan(out[2])
    assert out[3] == np.inf  # beyond bf16's largest finite 3.39e38: IEEE rounds to inf
    assert out[4] == 0 and np.signbit(out[4])


def test_bf16_float64_exact_ties_round_to_even_and_nan_payloads_stay_nan():
    # 1 + 3*2**-8 is exactly half way between the bfloat16 neighbours 1 + 2**-7 (odd mantissa)
    # and 1 + 2**-6 (even): float32 holds it exactly, so it is a true tie and goes to the even one.
    x64 = np.array([1 + 3 * 2.0**-8, -(1 + 3 * 2.0**-8), 1 + 2.0**-8])
    got = io.bfloat16_to_float32(io.float32_to_bfloat16(x64))
    np.testing.assert_array_equal(got, [1.015625, -1.015625, 1.0])
    # NaNs whose payload sits in the low 16 bits: truncation would give inf (0x7F80) or, after
    # rounding up 0x7FFF, the sign bit alone (-0.0); they must stay NaN with their sign.
    bits = np.array([0x7F800001, 0x7FFFFFFF, 0xFF800001, 0xFFFFFFFF], dtype=np.uint32)
    out = io.float32_to_bfloat16(bits.view(np.float32))
    assert np.isnan(io.bfloat16_to_float32(out)).all(), [hex(b) for b in out]
    np.testing.assert_array_equal(out >> 15, [0, 0, 1, 1])


def test_save_float_dtype_bfloat16_round_trips_through_the_header(tmp_path):
    path = tmp_path / "b.safetensors"
    w = np.array([[1.0, 1.00390625], [3.0e38, -7.25]], np.float32)
    io.save({"w": w, "step": np.array(3, np.int64)}, path, float_dtype="bfloat16")
    info = io.inspect(path)
    assert {t.name: (t.dtype, t.safetensors_dtype, t.nbytes) for t in info.tensors} == {
        "w": ("bfloat16", "BF16", 8), "step": ("int64", "I64", 8)}
    state, _ = io.load(path)
    np.testing.assert_array_equal(state["w"], io.bfloat16_to_float32(io.float32_to_bfloat16(w)))
    assert state["step"].dtype == np.int64 and state["step"] == 3  # integers never converted


def test_save_float_dtype_is_checked(tmp_path):
    with pytest.raises(ValueError, match="float_dtype.*'bf16'"):
        io.save({"w": np.zeros(2, np.float32)}, tmp_path / "a.safetensors", float_dtype="bf16")


# ---------------------------------------------------------------------------------- F16


def test_f16_loads_as_float16_and_round_trips(tmp_path):
    values = np.array([1.0, -2.5, 65504.0, 6e-8, np.inf, -0.0], np.float16)
    path = tmp_path / "h.safetensors"
    write_safetensors(path, [("h", "F16", (2, 3), values.astype("<f2").tobytes())], {"format": "pt"})
    got = io.load(path)[0]["h"]
    assert got.dtype == np.float16 and got.tobytes() == values.reshape(2, 3).tobytes()
    io.save({"h": got}, tmp_path / "again.safetensors")
    assert io.load(tmp_path / "again.safetensors")[0]["h"].tobytes() == values.tobytes()
    io.save({"w": np.array([0.1, 1e5], np.float32)}, tmp_path / "n.safetensors", float_dtype="float16")
    narrowed = io.load(tmp_path / "n.safetensors")[0]["w"]
    assert narrowed.dtype == np.float16
    np.testing.assert_array_equal(narrowed, np.array([0.1, np.inf], np.float16))


# ---------------------------------------------------------------------------------- F8


def f8_closed_form(code, tag):
    """One byte's value, straight from the definitions of the formats (Python floats)."""
    if tag == "F8_E8M0":
        return float("nan") if code == 0xFF else 2.0 ** (code - 127)
    e_bits, m_bits, bias = {"F8_E4M3": (4, 3, 7), "F8_E5M2": (5, 2, 15),
                            "F8_E4M3FNUZ": (4, 3, 8), "F8_E5M2FNUZ": (5, 2, 16)}[tag]
    sign = -1.0 if code & 0x80 else 1.0
    e, m = (code >> m_bits) & ((1 << e_bits) - 1), code & ((1 << m_bits) - 1)
    if tag.endswith("FNUZ") and code == 0x80:
        return float("nan")
    if tag == "F8_E5M2" and e == 31:
        return sign * float("inf") if m == 0 else float("nan")
    if tag == "F8_E4M3" and e == 15 and m == 7:
        return float("nan")
    if e == 0:
        return sign * m / 2**m_bits * 2.0 ** (1 - bias)
    return sign * (1 + m / 2**m_bits) * 2.0 ** (e - bias)


# sha256 of the 256 float32 values (NaN written as 12345.0) that PyTorch 2.13 gives, from:
# /root/.venvs/ref/bin/python -c "import torch,numpy as np,hashlib; t=torch.arange(256,
#   dtype=torch.uint8).view(torch.float8_e4m3fn).float().numpy(); print(hashlib.sha256(np.where(
#   np.isnan(t),np.float32(12345),t).astype('<f4').tobytes()).hexdigest())"  (and the other dtypes)
TORCH_F8_TABLES = {
    "F8_E4M3": "60efb1d40706a18a8834b00445a3e025c9f2bc953f6acbf3dc1d3caa17950418",
    "F8_E5M2": "b4685286a46b100946d038bd06a9cf8977d074f22482e5879c0b7beebdead0de",
    "F8_E4M3FNUZ": "c48de4101485a47b602dd84af4534675961d470f8e3ce4f88b56f3da32f69f31",
    "F8_E5M2FNUZ": "c907f923be29a5ca0cc09d91c98cb490846042e5b6f266c4727c7c421b569ce5",
    "F8_E8M0": "1783ab309d1e67a0a07690d06d9056e561df8a01af1a094ea84d420603e58ee8",
}


@pytest.mark.parametrize("tag", list(TORCH_F8_TABLES))
def test_every_f8_byte_widens_to_its_exact_value(tmp_path, tag):
    path = tmp_path / "f8.safetensors"
    write_safetensors(path, [("x", tag, (16, 16), bytes(range(256)))])
    got = io.load(path)[0]["x"].reshape(-1)
    assert got.dtype == np.float32
    for code in range(256):
        want = f8_closed_form(code, tag)
        if want != want:
            assert np.isnan(got[code]), (tag, hex(code))
        else:
            assert got[code] == want and np.signbit(got[code]) == (want < 0 or str(want) == "-0.0"), (tag, hex(code))
    canon = np.where(np.isnan(got), np.float32(12345.0), got).astype("<f4")
    assert hashlib.sha256(canon.tobytes()).hexdigest() == TORCH_F8_TABLES[tag]
    raw = io.load(path, f8="raw")[0]["x"]
    assert raw.dtype == np.uint8 and raw.tobytes() == bytes(range(256))
    np.testing.assert_array_equal(io.float8_to_float32(raw, tag).reshape(-1), got)


def test_f8_landmarks():
    table = {tag: io.float8_to_float32(np.arange(256, dtype=np.uint8), tag) for tag in TORCH_F8_TABLES}
    assert table["F8_E4M3"][0x7E] == 448 and table["F8_E4M3"][0x01] == 2.0**-9
    assert table["F8_E5M2"][0x7B] == 57344 and table["F8_E5M2"][0x7C] == np.inf
    assert table["F8_E5M2"][0x01] == 2.0**-16 and table["F8_E5M2"][0xFC] == -np.inf
    assert table["F8_E4M3FNUZ"][0x7F] == 240 and np.isnan(table["F8_E4M3FNUZ"][0x80])
    assert table["F8_E5M2FNUZ"][0x01] == 2.0**-17
    assert table["F8_E8M0"][0x7F] == 1.0 and table["F8_E8M0"][0] == 2.0**-127


# A file PyTorch 2.13 + safetensors 0.8.0 wrote, with the values torch read back, from:
# /root/.venvs/ref/bin/python -c "import torch; from safetensors.torch import save;
#   v=torch.tensor([1.0,-2.5,3.14159,1e-3,300.0,-0.0,1e-6]); print(save({'bf':v.bfloat16(),
#   'h':v.half(),'e4':v.to(torch.float8_e4m3fn),'e5':v.to(torch.float8_e5m2).reshape(7,1)},
#   metadata={'format':'pt'}).hex())"   (values: t.float().flatten().tolist())
TORCH_FILE = bytes.fromhex(
    "10010000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074227d2c226266223a7b"
    "226474797065223a2242463136222c227368617065223a5b375d2c22646174615f6f666673657473223a5b302c31"
    "345d7d2c2268223a7b226474797065223a22463136222c227368617065223a5b375d2c22646174615f6f66667365"
    "7473223a5b31342c32385d7d2c226534223a7b226474797065223a2246385f45344d33222c227368617065223a5b"
    "375d2c22646174615f6f666673657473223a5b32382c33355d7d2c226535223a7b226474797065223a2246385f45"
    "354d32222c227368617065223a5b372c315d2c22646174615f6f666673657473223a5b33352c34325d7d7d202020"
    "20202020803f20c04940833a964300808635003c00c148421914b05c0080110038c245017980003cc142145d8000"
)
TORCH_VALUES = {
    "bf": [1.0, -2.5, 3.140625, 0.00099945068359375, 300.0, -0.0, 9.98377799987793e-07],
    "h": [1.0, -2.5, 3.140625, 0.0010004043579101562, 300.0, -0.0, 1.0132789611816406e-06],
    "e4": [1.0, -2.5, 3.25, 0.001953125, 288.0, -0.0, 0.0],
    "e5": [1.0, -2.5, 3.0, 0.0009765625, 320.0, -0.0, 0.0],
}


def test_file_written_by_pytorch_and_safetensors(tmp_path):
    path = tmp_path / "torch.safetensors"
    path.write_bytes(TORCH_FILE)
    state, meta = io.load(path)
    assert meta == {"format": "pt"}
    assert state["h"].dtype == np.float16 and state["e5"].shape == (7, 1)
    for name, want in TORCH_VALUES.items():
        got = state[name].astype(np.float64).reshape(-1)
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
    assert [(t.name, t.dtype) for t in io.inspect(path).tensors] == [
        ("bf", "bfloat16"), ("e4", "float8_e4m3fn"), ("e5", "float8_e5m2"), ("h", "float16")]


# ---------------------------------------------------------------------------------- every dtype


def test_inspect_understands_every_safetensors_dtype_from_the_header(tmp_path):
    bits = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8,
            "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16,
            "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64,
            "I64": 64, "U64": 64}
    assert set(io.SAFETENSORS_DTYPES) == set(bits)  # safetensors 0.8.0's list
    tensors = [(f"t.{tag}", tag, (4, 2), b"\0" * (8 * b // 8)) for tag, b in bits.items()]
    path = tmp_path / "all.safetensors"
    write_safetensors(path, tensors, {"format": "pt"})
    info = io.inspect(path)
    by_name = {t.name: t for t in info.tensors}
    for tag, b in bits.items():
        t = by_name[f"t.{tag}"]
        assert t.shape == (4, 2) and t.dtype == io.SAFETENSORS_DTYPES[tag] and t.nbytes == b
        assert t.safetensors_dtype == tag
    assert info.num_parameters == 8 * len(bits)
    assert info.nbytes == sum(bits.values()) == info.file_size - 8 - (info.file_size - 8 - info.nbytes)
    assert io.tensor_shapes(path)["t.F4"] == (4, 2)
    assert by_name["t.BF16"].dtype == "bfloat16" and by_name["t.F8_E4M3"].dtype == "float8_e4m3fn"


def test_packed_4_and_6_bit_floats_are_refused_by_name_but_other_keys_load(tmp_path):
    path = tmp_path / "f4.safetensors"
    write_safetensors(path, [("packed", "F4", (4,), b"\x12\x34"), ("w", "F32", (1,), b"\0\0\x80\x3f")])
    with pytest.raises(CheckpointError) as err:
        io.load(path)
    message = str(err.value)
    assert str(path) in message and "'packed'" in message and "F4" in message
    assert io.load(path, keys=["w"])[0] == {"w": np.array([1.0], np.float32)}


def test_bool_and_complex_and_unsigned_load_natively(tmp_path):
    path = tmp_path / "n.safetensors"
    c = np.array([1 + 2j, -3j], np.complex64)
    u = np.array([2**64 - 1], np.uint64)
    write_safetensors(path, [("c", "C64", (2,), c.tobytes()), ("u", "U64", (1,), u.tobytes()),
                             ("b", "BOOL", (3,), b"\0\1\1")])
    state, _ = io.load(path)
    np.testing.assert_array_equal(state["c"], c)
    assert state["u"][0] == 2**64 - 1 and state["b"].tolist() == [False, True, True]
    write_safetensors(path, [("b", "BOOL", (3,), b"\0\2\1")])
    with pytest.raises(CheckpointError, match="BOOL tensor 'b'"):
        io.load(path)


# ---------------------------------------------------------------------------------- metadata


def test_other_writers_metadata_stays_strings_with_space_padding(tmp_path):
    path = tmp_path / "hf.safetensors"
    metadata = {"format": "pt", "n_layer": "12", "flag": "true", "list": "[1, 2]", "none": "null"}
    write_safetensors(path, [("wte.weight", "F32", (2,), np.ones(2, "<f4").tobytes())], metadata)
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert header_length % 8 == 0 and path.read_bytes()[8 + header_length - 1:8 + header_length] == b" "
    for meta in (io.load(path)[1], io.load_metadata(path), io.inspect(path).metadata):
        assert meta == metadata  # "12" is not 12, "true" is not True, "null" is not None


def test_our_metadata_is_json_and_our_keys_are_rewritten(tmp_path):
    path = tmp_path / "ours.safetensors"
    io.save({"w": np.zeros(1, np.float32)}, path, metadata={"n": 12, "s": "12", "flag": True})
    meta = io.load_metadata(path)
    assert meta["n"] == 12 and meta["s"] == "12" and meta["flag"] is True
    assert meta["tinytorch.format_version"] == io.FORMAT_VERSION


def test_gpt2_style_file_without_lm_head_loads_and_keys_selects(tmp_path):
    # transformers records GPT-2's tied head by leaving lm_head.weight out of the file.
    path = tmp_path / "model.safetensors"
    wte = np.arange(12, dtype="<f4").reshape(4, 3)
    write_safetensors(path, [("wte.weight", "F32", (4, 3), wte.tobytes()),
                             ("h.0.attn.bias", "F32", (1, 1, 2, 2), np.ones(4, "<f4").tobytes()),
                             ("ln_f.weight", "F32", (3,), np.ones(3, "<f4").tobytes())],
                      {"format": "pt"})
    state, _ = io.load(path)
    assert "lm_head.weight" not in state and list(state) == ["wte.weight", "h.0.attn.bias", "ln_f.weight"]
    some, _ = io.load(path, keys=["ln_f.weight", "wte.weight"])
    assert list(some) == ["ln_f.weight", "wte.weight"]
    np.testing.assert_array_equal(some["wte.weight"], wte)
    with pytest.raises(CheckpointError) as err:
        io.load(path, keys=["wte.weight", "lm_head.weight"])
    assert str(path) in str(err.value) and "'lm_head.weight'" in str(err.value)
    with pytest.raises(TypeError, match="keys"):
        io.load(path, keys="wte.weight")
    with pytest.raises(ValueError, match="bf16"):
        io.load(path, bf16="bfloat16")
    with pytest.raises(ValueError, match="f8"):
        io.load(path, f8=None)


def test_our_files_are_laid_out_as_safetensors_lays_them(tmp_path):
    path = tmp_path / "layout.safetensors"
    io.save({"flag": np.ones(3, np.int8), "w": np.arange(3.0), "h": np.ones(1, np.float16)}, path)
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    assert n % 8 == 0 and blob[8 + n - 1:8 + n] in (b" ", b"}")  # padded with spaces to 8
    header = json.loads(blob[8:8 + n])
    assert list(header) == ["__metadata__", "flag", "w", "h"]  # the caller's order
    # data widest first, so each tensor starts at a multiple of its item size
    assert header["w"]["data_offsets"] == [0, 24] and header["h"]["data_offsets"] == [24, 26]
    assert header["flag"]["data_offsets"] == [26, 29] and len(blob) == 8 + n + 29
    assert np.frombuffer(blob[8 + n:8 + n + 24], "<f8").tolist() == [0.0, 1.0, 2.0]


def test_write_safetensors_keeps_metadata_exactly_and_streams(tmp_path):
    path = tmp_path / "hf.safetensors"
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    io.write_safetensors(path, {"wte.weight": w, "h.0.bias": np.ones(3, np.float32)}, {"format": "pt"})
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    assert json.loads(blob[8:8 + n])["__metadata__"] == {"format": "pt"}  # nothing of ours added
    state, meta = io.load(path)
    assert meta == {"format": "pt"} and list(state) == ["wte.weight", "h.0.bias"]
    np.testing.assert_array_equal(state["wte.weight"], w)
    io.write_safetensors(path, {"a": w, "b": w}, float_dtype="bfloat16")  # no alias records
    assert [t.name for t in io.inspect(path).tensors] == ["a", "b"] and io.load_metadata(path) == {}
    with pytest.raises(TypeError, match="strings to strings"):
        io.write_safetensors(path, {"a": w}, {"n_layer": 12})
    big = {f"w{i}": np.full(1 << 20, i, np.float32) for i in range(10)}  # 40 MB
    tracemalloc.start()
    io.write_safetensors(tmp_path / "big.safetensors", big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.1 * 40 * (1 << 20), f"peak {peak / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------- tied weights


class TiedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight


def test_tied_weights_are_stored_once_and_load_as_one_array(tmp_path):
    model = TiedModel()
    path = tmp_path / "tied.safetensors"
    save_model_state(path, model)
    info = io.inspect(path)
    assert [t.name for t in info.tensors] == ["model.embed.weight"]
    assert info.aliases == {"model.head.weight": "model.embed.weight"}
    assert info.num_parameters == 15 and info.nbytes == 60
    from tito.main import cli

    shown = CliRunner().invoke(cli, ["core", "summary", str(path)]).output
    assert "model.head.weight: the same array as model.embed.weight (tied)" in shown
    assert "model parameters: 15" in shown
    assert io.tensor_shapes(path) == {"model.embed.weight": (5, 3), "model.head.weight": (5, 3)}
    state, meta = load_model_state(path)
    assert state["head.weight"] is state["embed.weight"]  # one array, no copy
    np.testing.assert_array_equal(state["embed.weight"], model.embed.weight.data)
    fresh = TiedModel()
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.head.weight.data, model.embed.weight.data)
    assert fresh.head.weight is fresh.embed.weight
    only_head, _ = io.load(path, keys=["model.head.weight"])
    np.testing.assert_array_equal(only_head["model.head.weight"], model.embed.weight.data)
    # resaving what was loaded keeps one copy and a fresh alias record
    state, meta = io.load(path)
    io.save(state, tmp_path / "again.safetensors", meta)
    assert io.inspect(tmp_path / "again.safetensors").aliases == info.aliases


def test_distinct_arrays_with_equal_values_are_not_aliased(tmp_path):
    a = np.ones((2, 2), np.float32)
    path = tmp_path / "two.safetensors"
    io.save({"a": a, "b": a.copy(), "row": a[0], "empty": np.zeros(0), "empty2": np.zeros(0)}, path)
    assert io.inspect(path).aliases == {}
    state, _ = io.load(path)
    assert state["a"] is not state["b"] and state["row"].shape == (2,)


def test_safetensors_torch_save_model_alias_metadata_is_resolved(tmp_path):
    # safetensors.torch.save_model drops a shared tensor's second name and records
    # {dropped: kept} in the metadata (its source, safetensors 0.8.0).
    path = tmp_path / "st.safetensors"
    wte = np.arange(6, dtype="<f4").reshape(3, 2)
    write_safetensors(path, [("transformer.wte.weight", "F32", (3, 2), wte.tobytes())],
                      {"lm_head.weight": "transformer.wte.weight", "format": "pt"})
    state, meta = io.load(path)
    assert state["lm_head.weight"] is state["transformer.wte.weight"]
    assert meta == {"lm_head.weight": "transformer.wte.weight", "format": "pt"}
    assert io.inspect(path).aliases == {"lm_head.weight": "transformer.wte.weight"}


def test_shared_byte_ranges_are_refused_as_the_format_says(tmp_path):
    path = tmp_path / "shared.safetensors"
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"\0" * 8)
    with pytest.raises(CheckpointError) as err:
        io.load(path)
    assert str(path) in str(err.value) and "'a' and 'b' share bytes 0..8" in str(err.value)


def test_corrupt_alias_records_are_refused(tmp_path):
    path = tmp_path / "alias.safetensors"
    base = {"tinytorch.format_version": "1"}
    for aliases, fragment in [({"b": "missing"}, "'missing'"), ({"a": "a"}, "also a stored"),
                              (["a"], "JSON object")]:
        write_safetensors(path, [("a", "F32", (1,), b"\0" * 4)],
                          {**base, "tinytorch.aliases": json.dumps(aliases)})
        with pytest.raises(CheckpointError, match=fragment):
            io.load(path)


# ---------------------------------------------------------------------------------- strict headers


@pytest.mark.parametrize("tensors, fragments", [
    ([("w", "BF16", (3,), b"\0" * 4)], ["'w'", "BF16", "needs 6 bytes", "span 4"]),
    ([("w", "F8_E4M3", (2, 2), b"\0" * 5)], ["'w'", "needs 4 bytes", "span 5"]),
    ([("w", "F4", (3,), b"\0" * 2)], ["'w'", "12 bits", "whole number of bytes"]),
    ([("w", "F6_E2M3", (4,), b"\0" * 4)], ["'w'", "needs 3 bytes"]),
    ([("w", "bf16", (2,), b"\0" * 4)], ["'w'", "'bf16'", "not a safetensors dtype"]),
])
def test_bad_headers_name_the_file_tensor_expected_and_actual(tmp_path, tensors, fragments):
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, tensors)
    for reader in (io.load, io.inspect, io.tensor_shapes):
        with pytest.raises(CheckpointError) as err:
            reader(path)
        for fragment in [str(path), *fragments]:
            assert fragment in str(err.value), (fragment, str(err.value))


def test_a_name_given_twice_in_the_header_is_refused(tmp_path):
    path = tmp_path / "dup.safetensors"
    entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    encoded = ('{"w":' + entry + ',"w":' + entry + "}").encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"\1")
    with pytest.raises(CheckpointError, match="'w' occurs twice"):
        io.inspect(path)


def test_file_truncated_after_the_header_was_read(tmp_path, monkeypatch):
    path = tmp_path / "t.safetensors"
    write_safetensors(path, [("w", "BF16", (1 << 16,), b"\0" * (1 << 17))])  # beyond read-ahead
    real = io.safetensors._read_header

    def then_truncate(p, f):
        header = real(p, f)
        with open(path, "r+b") as g:
            g.truncate(header.data_start + 3)
        return header

    monkeypatch.setattr(io.safetensors, "_read_header", then_truncate)
    with pytest.raises(CheckpointError, match="'w' ends early"):
        io.load(path)


# ---------------------------------------------------------------------------------- memory


def _write_big_f32(path, megabytes):
    n = megabytes * (1 << 20) // 4 // 4
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(n).astype("<f4") for _ in range(4)]
    write_safetensors(path, [(f"layer.{i}", "F32", (n,), p.tobytes()) for i, p in enumerate(parts)])
    return parts


def test_loading_a_40_mb_file_needs_about_the_arrays_not_the_file_too(tmp_path):
    path = tmp_path / "big.safetensors"
    parts = _write_big_f32(path, 40)
    size = path.stat().st_size
    tracemalloc.start()
    state, _ = io.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1.3 * size, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"
    assert peak > 0.9 * size  # the arrays themselves are traced: the measurement is real
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(state[f"layer.{i}"], p)
    del state
    tracemalloc.start()
    some, _ = io.load(path, keys=["layer.1"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.3 * size  # one tensor of four
    np.testing.assert_array_equal(some["layer.1"], parts[1])


def test_widening_bf16_needs_the_float32_arrays_plus_a_bounded_scratch(tmp_path):
    path = tmp_path / "big_bf16.safetensors"
    n = 5 * (1 << 20)  # 10 MB of BF16 -> 20 MB of float32
    bits = np.random.default_rng(0).integers(0, 0x7F00, n).astype("<u2")
    write_safetensors(path, [("a", "BF16", (n // 2,), bits[: n // 2].tobytes()),
                             ("b", "BF16", (n // 2,), bits[n // 2:].tobytes())])
    tracemalloc.start()
    state, _ = io.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out_bytes = 4 * n
    assert peak < 1.15 * out_bytes, f"peak {peak / 1e6:.1f} MB for {out_bytes / 1e6:.1f} MB of arrays"
    np.testing.assert_array_equal(state["b"][:1000].view(np.uint32) >> 16, bits[n // 2: n // 2 + 1000])


def test_saving_streams_the_arrays_without_a_copy_of_the_file(tmp_path):
    arrays = {f"w{i}": np.full(1 << 20, i, np.float32) for i in range(10)}  # 40 MB
    tracemalloc.start()
    io.save(arrays, tmp_path / "s.safetensors")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.1 * 40 * (1 << 20), f"peak {peak / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------- CLI


def test_tito_core_summary_on_bf16_and_f8_files_and_a_broken_one(tmp_path):
    from tito.main import cli

    path = tmp_path / "mixed.safetensors"
    write_safetensors(path, [("wte.weight", "BF16", (4, 3), b"\0" * 24),
                             ("scales", "F8_E4M3", (4,), b"\x38" * 4),
                             ("packed", "F4", (6,), b"\0" * 3)], {"format": "pt"})
    result = CliRunner().invoke(cli, ["core", "summary", "--all", str(path)])
    assert result.exit_code == 0, result.output
    for fragment in ("wte.weight", "bfloat16", "float8_e4m3fn", "float4_e2m1fn", "(4, 3)", "format: pt"):
        assert fragment in result.output, fragment
    result = CliRunner().invoke(cli, ["core", "summary", str(path), "--json"])
    info = json.loads(result.output)
    assert info["bytes"] == 24 + 4 + 3 and info["elements"] == 12 + 4 + 6
    assert {t["name"]: t["dtype"] for t in info["tensors"]}["wte.weight"] == "bfloat16"
    assert CliRunner().invoke(cli, ["core", "inspect", str(path)]).output == CliRunner().invoke(
        cli, ["core", "summary", "--all", str(path)]).output
    write_safetensors(path, [("wte.weight", "BF16", (4, 3), b"\0" * 20)])
    for command in ("summary", "inspect"):
        result = CliRunner().invoke(cli, ["core", command, str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and "'wte.weight'" in result.output
        assert "needs 24 bytes" in result.output
