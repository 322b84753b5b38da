"""Weight-only quantization (int8 per row, int4 Q4_0), quantize_, and quantized checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import Tensor, io, nn, no_grad
from tinytorch.core.quantization import (
    QUANTIZATION_KEY,
    Int4WeightOnlyConfig,
    Int4WeightOnlyEmbedding,
    Int4WeightOnlyLinear,
    Int8WeightOnlyConfig,
    Int8WeightOnlyEmbedding,
    Int8WeightOnlyLinear,
    dequantize_int8_rows,
    dequantize_q4_0,
    load_quantized,
    quantize_,
    quantize_int8_rows,
    quantize_q4_0,
    save_quantized,
    weight_only,
)
from tito.main import cli


def _weights(rows, cols, seed=0):
    return (np.random.default_rng(seed).standard_normal((rows, cols)) * 0.1).astype(np.float32)


# ----------------------------------------------------------------------------- formats


def test_int8_rows_closed_form():
    w = _weights(5, 40)
    w[2] = 0.0  # an all-zero row: scale 0, values 0
    w[3, 7] = -1.5  # the row's extreme maps to -127 exactly
    q, s = quantize_int8_rows(w)
    expected_s = np.abs(w).max(axis=1) / 127
    np.testing.assert_array_equal(s, expected_s.astype(np.float32))
    for r in (0, 1, 3, 4):
        np.testing.assert_array_equal(q[r], np.clip(np.rint(w[r] / s[r]), -127, 127).astype(np.int8))
    assert q[3, 7] == -127 and s[2] == 0 and not q[2].any()
    error = np.abs(dequantize_int8_rows(q, s) - w)
    assert (error <= s[:, None] / 2 + 1e-7).all()


def _q4_0_reference(w):
    """llama.cpp's quantize_row_q4_0_ref, element by element in plain Python."""
    rows, cols = w.shape
    packed = np.zeros((rows, cols // 2), np.uint8)
    scales = np.zeros((rows, cols // 32), np.float16)
    for r in range(rows):
        for b in range(cols // 32):
            x = [float(v) for v in w[r, 32 * b: 32 * b + 32]]
            m = max(x, key=abs)
            d = np.float32(m) / np.float32(-8)
            inv = np.float32(1) / d if d else np.float32(0)
            q = [min(15, int(np.float32(v) * inv + np.float32(8.5))) for v in x]
            scales[r, b] = d
            for j in range(16):
                packed[r, 16 * b + j] = q[j] | (q[j + 16] << 4)
    return packed, scales


def test_q4_0_matches_llama_cpp_reference():
    w = _weights(3, 96, seed=1)
    w[2, 32:64] = np.arange(32) / 2 - 8  # d = 1 and halves: llama.cpp rounds ties up (x + 8.5, truncated)
    packed, scales = quantize_q4_0(w)
    ref_packed, ref_scales = _q4_0_reference(w)
    np.testing.assert_array_equal(packed, ref_packed)
    np.testing.assert_array_equal(scales, ref_scales)


def test_q4_0_nibble_order_element_j_low_j_plus_16_high():
    # d = 1 (the block's largest magnitude is -8); element j = j - 8 for j < 16, element
    # j + 16 = 7 - j: byte j must be (j) | (15 - j) << 4.
    w = np.zeros((1, 32), np.float32)
    w[0, :16] = np.arange(16) - 8
    w[0, 16:] = 7 - np.arange(16)
    packed, scales = quantize_q4_0(w)
    assert float(scales[0, 0]) == 1.0
    assert packed[0].tolist() == [j | (15 - j) << 4 for j in range(16)]
    np.testing.assert_array_equal(dequantize_q4_0(packed, scales), w)


def test_dequantize_q4_0_of_hand_packed_bytes():
    packed = np.array([[0x1F] + [0x88] * 15], np.uint8)  # byte 0: low 0xF (element 0), high 0x1 (element 16)
    scales = np.array([[0.5]], np.float16)
    w = dequantize_q4_0(packed, scales)[0]
    assert w[0] == (15 - 8) * 0.5 and w[16] == (1 - 8) * 0.5
    assert (w[1:16] == 0).all() and (w[17:] == 0).all()


def test_q4_0_group_sizes_and_bad_width():
    w = _weights(2, 128)
    for g in (32, 64, 128):
        packed, scales = quantize_q4_0(w, g)
        assert packed.shape == (2, 64) and scales.shape == (2, 128 // g)
        assert np.abs(dequantize_q4_0(packed, scales) - w).max() <= np.abs(scales.astype(np.float32)).max() + 1e-6
    with pytest.raises(ValueError, match=r"in_features \(40\) must be a multiple of group_size \(32\)"):
        quantize_q4_0(_weights(2, 40))
    with pytest.raises(ValueError, match="group_size must be one of"):
        quantize_q4_0(w, 48)
    with pytest.raises(ValueError, match="non-finite"):
        quantize_q4_0(np.full((1, 32), np.nan, np.float32))


# ----------------------------------------------------------------------------- the blockwise product


@pytest.mark.parametrize("cls", [Int8WeightOnlyLinear, Int4WeightOnlyLinear])
@pytest.mark.parametrize("out_features", [1, 7, 10, 24])
def test_blockwise_product_equals_float_reference(monkeypatch, cls, out_features):
    in_features = 64
    # 3 rows a block: 10 rows are blocks of 3, 3, 3 and 1; 1 row is one short block.
    monkeypatch.setattr(weight_only, "BLOCK_BYTES", 3 * 4 * in_features)
    monkeypatch.setattr(weight_only._local, "buffer", None, raising=False)
    linear = nn.Linear(in_features, out_features)
    layer = cls.from_float(linear)
    x = np.random.default_rng(2).standard_normal((2, 5, in_features)).astype(np.float32)
    with no_grad():
        y = layer(Tensor(x)).numpy()
    w = layer.dequantize().astype(np.float64)
    expected = x.astype(np.float64) @ w.T + linear.bias.data
    assert y.shape == (2, 5, out_features)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_dequantize_is_the_stored_values_not_the_float_weights():
    linear = nn.Linear(32, 6)
    int8 = Int8WeightOnlyLinear.from_float(linear)
    np.testing.assert_array_equal(int8.dequantize(), dequantize_int8_rows(int8.qweight.data, int8.scale.data))
    int4 = Int4WeightOnlyLinear.from_float(linear)
    np.testing.assert_array_equal(int4.dequantize(), dequantize_q4_0(int4.qweight.data, int4.scales.data))


def test_a_row_wider_than_the_buffer(monkeypatch):
    monkeypatch.setattr(weight_only, "BLOCK_BYTES", 64)  # less than one row: one row per block
    monkeypatch.setattr(weight_only._local, "buffer", None, raising=False)
    layer = Int8WeightOnlyLinear.from_float(nn.Linear(96, 5, bias=False))
    x = np.random.default_rng(3).standard_normal((1, 96)).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), x @ layer.dequantize().T, rtol=1e-5, atol=1e-6)


def test_inference_only_and_shape_errors():
    layer = Int8WeightOnlyLinear.from_float(nn.Linear(8, 4))
    with pytest.raises(RuntimeError, match="no_grad"):
        layer(Tensor(np.ones((1, 8), np.float32), requires_grad=True))
    with pytest.raises(ValueError, match="expected last dim 8"):
        layer(np.ones((1, 9), np.float32))
    with pytest.raises(ValueError, match="in_features \\(40\\)"):
        Int4WeightOnlyLinear.from_float(nn.Linear(40, 4))


# ----------------------------------------------------------------------------- quantize_


class TiedLM(nn.Module):
    """An embedding tied to the output head, as GPT-2's wte and lm_head."""

    def __init__(self, vocab=20, width=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.fc = nn.Linear(width, width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        return self.lm_head(self.fc(self.wte(ids)).relu())


@pytest.mark.parametrize("config, linear, embedding", [
    (Int8WeightOnlyConfig(), Int8WeightOnlyLinear, Int8WeightOnlyEmbedding),
    (Int4WeightOnlyConfig(group_size=32), Int4WeightOnlyLinear, Int4WeightOnlyEmbedding),
])
def test_quantize_keeps_tied_embedding_tied(config, linear, embedding):
    model = TiedLM()
    table = model.wte.weight.data.copy()
    quantize_(model, config)
    assert type(model.lm_head) is linear and type(model.fc) is linear and type(model.wte) is embedding
    assert model.wte.qweight is model.lm_head.qweight  # one storage for both uses
    ids = np.array([[3, 0, 19]])
    rows = model.wte(ids).numpy()[0]
    np.testing.assert_array_equal(rows, model.lm_head.dequantize()[[3, 0, 19]])
    assert np.abs(rows - table[[3, 0, 19]]).max() < 0.5
    assert not [name for name, _ in model.named_parameters() if name.endswith("weight")]


def test_quantize_filter_fn_and_errors():
    model = TiedLM(width=40)  # 40 is not a multiple of 32
    with pytest.raises(ValueError, match=r"fc \(in_features 40\).*filter_fn"):
        quantize_(model, Int4WeightOnlyConfig())
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, name: name != "lm_head")
    assert type(model.fc) is Int8WeightOnlyLinear
    assert type(model.lm_head) is nn.Linear and type(model.wte) is nn.Embedding  # the tie stays float
    assert model.lm_head.weight is model.wte.weight
    with pytest.raises(TypeError, match="config must be"):
        quantize_(model, "int8")
    with pytest.raises(TypeError, match="itself a Linear"):
        quantize_(nn.Linear(32, 2), Int8WeightOnlyConfig())
    with pytest.raises(ValueError, match="group_size must be one of"):
        Int4WeightOnlyConfig(group_size=33)


def test_quantize_keeps_module_list_order():
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.Linear(32, 4))
    x = np.random.default_rng(4).standard_normal((3, 32)).astype(np.float32)
    before = model(Tensor(x)).numpy()
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, name: name != "2")
    assert [type(m).__name__ for m in model] == ["Int8WeightOnlyLinear", "ReLU", "Linear", "Int8WeightOnlyLinear"]
    with no_grad():
        assert np.abs(model(Tensor(x)).numpy() - before).max() < 0.02


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), Int4WeightOnlyConfig()])
def test_save_load_gives_identical_outputs(tmp_path, config):
    model = TiedLM()
    quantize_(model, config)
    path = tmp_path / "q.safetensors"
    save_quantized(path, model, metadata={"note": "kept"})
    info = io.inspect(path)
    dtypes = {t.name: t.dtype for t in info.tensors}
    assert dtypes["model.wte.qweight"] == ("int8" if isinstance(config, Int8WeightOnlyConfig) else "uint8")
    assert info.aliases["model.lm_head.qweight"] == "model.wte.qweight"  # the tied table, stored once
    with nn.init.no_init():
        fresh = TiedLM()
    loaded = load_quantized(fresh, path)
    assert loaded is fresh and not fresh.training
    assert fresh.wte.qweight.data is fresh.lm_head.qweight.data
    ids = np.array([[1, 5, 7, 19]])
    with no_grad():
        np.testing.assert_array_equal(fresh(ids).numpy(), model(ids).numpy())
    assert io.load_metadata(path)["note"] == "kept"


def test_int8_file_is_a_quarter_of_float32(tmp_path):
    model = nn.Sequential(nn.Linear(256, 256, bias=False))
    io.save(model.state_dict(), tmp_path / "f.safetensors")
    quantize_(model, Int8WeightOnlyConfig())
    save_quantized(tmp_path / "q.safetensors", model)
    float_bytes = io.inspect(tmp_path / "f.safetensors").nbytes
    assert io.inspect(tmp_path / "q.safetensors").nbytes == float_bytes // 4 + 256 * 4


def _quantized_file(tmp_path, edit=None, tensors_edit=None):
    model = nn.Sequential(nn.Linear(32, 8))
    quantize_(model, Int8WeightOnlyConfig())
    path = tmp_path / "q.safetensors"
    save_quantized(path, model)
    tensors, meta = io.load(path)
    if edit:
        edit(meta[QUANTIZATION_KEY])
    if tensors_edit:
        tensors_edit(tensors)
    io.save(tensors, path, metadata={k: v for k, v in meta.items() if not k.startswith("tinytorch.")
                                     or k == QUANTIZATION_KEY})
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["layers"]["0"].update(scheme="int2_magic"), "scheme 'int2_magic', which is not one of"),
    (lambda s: s.update(version=2), "version 2; this TinyTorch reads version 1"),
    (lambda s: s["layers"]["0"].update(in_features="32"), "in_features must be a positive integer"),
    (lambda s: s["layers"]["0"].update(out_features=10**12), "the file's 32 -> 1000000000000"),
    (lambda s: s["layers"]["0"].update(extra=1), "unknown \\['extra'\\]"),
    (lambda s: s["layers"].update({"7": s["layers"]["0"]}), "layer '7', which the model"),
    (lambda s: s.pop("layers"), "expected an object with 'version' and 'layers'"),
])
def test_hostile_scheme_metadata_is_a_clear_error(tmp_path, edit, message):
    path = _quantized_file(tmp_path, edit=edit)
    with pytest.raises(io.CheckpointError, match=message) as info:
        load_quantized(nn.Sequential(nn.Linear(32, 8)), path)
    assert str(path) in str(info.value)


def test_tensor_shapes_are_checked_against_the_scheme_before_reading(tmp_path):
    def narrow(tensors):
        tensors["model.0.qweight"] = np.zeros((8, 16), np.int8)

    path = _quantized_file(tmp_path, tensors_edit=narrow)
    with pytest.raises(io.CheckpointError, match=r"'model.0.qweight' is int8 \(8, 16\); .* needs int8 \(8, 32\)"):
        load_quantized(nn.Sequential(nn.Linear(32, 8)), path)


def test_non_finite_scale_and_wrong_model_are_refused(tmp_path):
    def poison(tensors):
        tensors["model.0.scale"][3] = np.inf

    path = _quantized_file(tmp_path, tensors_edit=poison)
    with pytest.raises(io.CheckpointError, match="model.0.scale holds 1 non-finite"):
        load_quantized(nn.Sequential(nn.Linear(32, 8)), path)
    path = _quantized_file(tmp_path)
    with pytest.raises(io.CheckpointError, match="Linear is 16 -> 8, the file's 32 -> 8"):
        load_quantized(nn.Sequential(nn.Linear(16, 8)), path)
    with pytest.raises(io.CheckpointError, match="not a quantized checkpoint"):
        io.save({"model.0.weight": np.zeros((8, 32), np.float32)}, tmp_path / "f.safetensors")
        load_quantized(nn.Sequential(nn.Linear(32, 8)), tmp_path / "f.safetensors")


def test_saving_refuses_non_finite_and_unquantized(tmp_path):
    model = nn.Sequential(nn.Linear(32, 8))
    with pytest.raises(ValueError, match="holds no quantized module"):
        save_quantized(tmp_path / "q.safetensors", model)
    quantize_(model, Int8WeightOnlyConfig())
    model[0].scale.data[0] = np.nan
    with pytest.raises(FloatingPointError, match="scale"):
        save_quantized(tmp_path / "q.safetensors", model)
    assert not (tmp_path / "q.safetensors").exists()


def test_tito_core_summary_says_what_is_quantized(tmp_path):
    model = TiedLM()
    quantize_(model, Int4WeightOnlyConfig(), filter_fn=lambda m, name: name == "lm_head")
    path = tmp_path / "q.safetensors"
    save_quantized(path, model)
    text = CliRunner().invoke(cli, ["core", "summary", str(path)], env={"COLUMNS": "100"})
    assert text.exit_code == 0, text.output
    packed, scales = 20 * 64 // 2, 20 * 64 // 32 * 2  # bytes of the head (the embedding shares them)
    assert f"quantized: 2 layers, {packed + scales:,} bytes (their weights in float32: {4 * 20 * 64:,} bytes)" \
        in text.output
    assert "int4_weight_only: 1 layer" in text.output and "lm_head" in text.output
    assert "int4_weight_only_embedding: 1 layer" in text.output
    result = CliRunner().invoke(cli, ["core", "summary", str(path), "--json"])
    summary = json.loads(result.output)["quantization"]
    assert summary["bytes"] == packed + scales and summary["float32_bytes"] == 4 * 20 * 64
    assert summary["schemes"]["int4_weight_only"]["layers"] == ["lm_head"]
