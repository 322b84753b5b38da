"""One entry point: quantize_ with the W8A8 configs, and W8A8 layers saved and loaded through the
scheme registry, also after pruning."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tinytorch.core import Tensor, io, nn, no_grad
from tinytorch.core import quantization as Q
from tinytorch.core.nn.utils import prune


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 5))
    for m in (model[0], model[2]):
        m.weight.data[...] = rng.normal(size=m.weight.shape).astype(np.float32) * 0.3
        m.bias.data[...] = rng.normal(size=m.bias.shape).astype(np.float32) * 0.1
    return model.eval()


def _x(n=16, seed=1):
    return Tensor(np.random.default_rng(seed).normal(size=(n, 40)).astype(np.float32) * 2)


def _out(model, x):
    with no_grad():
        return model(x).numpy()


def test_dynamic_config_is_quantize_dynamic():
    model, x = _mlp(), _x()
    reference = Q.quantize_dynamic(copy.deepcopy(model), {nn.Linear})
    Q.quantize_(model, Q.Int8DynamicActivationInt8WeightConfig())
    assert [type(m).__name__ for m in model] == ["QuantizedLinear", "ReLU", "QuantizedLinear"]
    assert model[0].dynamic
    np.testing.assert_array_equal(_out(model, x), _out(reference, x))


def test_static_config_is_prepare_calibrate_convert():
    model, x = _mlp(), _x()
    batches = [_x(8, seed=s) for s in (2, 3, 4)]
    prepared = Q.prepare(copy.deepcopy(model))
    for b in batches:
        prepared(b)
    reference = Q.convert(prepared)
    Q.quantize_(model, Q.Int8StaticActivationInt8WeightConfig(batches))
    assert not model[0].dynamic and not model.training
    # the first layer's input range is the calibration batches' min and max (uint8 affine)
    lo = min(float(b.numpy().min()) for b in batches)
    hi = max(float(b.numpy().max()) for b in batches)
    scale, zero = Q.choose_qparams(lo, hi, "uint8")
    assert float(model[0].input_scale.data) == pytest.approx(float(scale), rel=1e-6)
    assert int(model[0].input_zero_point.data) == int(zero)
    np.testing.assert_array_equal(_out(model, x), _out(reference, x))


def test_static_config_needs_batches_and_filter_fn_picks_layers():
    with pytest.raises(ValueError, match="calibration must be a non-empty sequence"):
        Q.Int8StaticActivationInt8WeightConfig([])
    model = _mlp()
    Q.quantize_(model, Q.Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda m, fqn: fqn == "2")
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "QuantizedLinear"]
    with pytest.raises(TypeError, match="config must be"):
        Q.quantize_(_mlp(), "int8")


@pytest.mark.parametrize("static", [False, True])
def test_w8a8_linear_round_trip_through_the_scheme_registry(tmp_path, static):
    model, x = _mlp(), _x()
    config = (Q.Int8StaticActivationInt8WeightConfig([_x(8, 5)]) if static
              else Q.Int8DynamicActivationInt8WeightConfig())
    Q.quantize_(model, config)
    path = tmp_path / "w8a8.safetensors"
    Q.save_quantized(path, model)
    stored = {t.name: t.dtype for t in io.inspect(path).tensors}
    assert stored["model.0.weight_int8"] == "int8" and stored["model.0.weight_scale"] == "float32"
    assert ("model.0.input_zero_point" in stored) == static
    with nn.init.no_init():
        fresh = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 5))
    loaded = Q.load_quantized(fresh, path)
    assert type(loaded[2]).__name__ == "QuantizedLinear" and loaded[2].dynamic == (not static)
    np.testing.assert_array_equal(loaded[0].weight_int8.data, model[0].weight_int8.data)
    np.testing.assert_array_equal(_out(loaded, x), _out(model, x))
    summary = Q.quantization_summary(io.inspect(path))
    # what the two layers' weights and biases take in float32: (40·24 + 24 + 24·5 + 5) · 4
    assert summary["float32_bytes"] == (40 * 24 + 24 + 24 * 5 + 5) * 4
    assert summary["schemes"]["int8_w8a8_linear"]["layers"] == ["0", "2"]


def test_a_tampered_static_zero_point_is_refused(tmp_path):
    model = _mlp()
    Q.quantize_(model, Q.Int8StaticActivationInt8WeightConfig([_x(8, 5)]))
    tensors, metadata = io.load(_saved(tmp_path, model))
    tensors["model.0.input_zero_point"] = np.array(300, np.int32)  # outside uint8
    io.save(tensors, tmp_path / "bad.safetensors", metadata=metadata)
    with pytest.raises(io.CheckpointError, match="bad.safetensors: layer '0'.*input_zero_point 300 is outside uint8"):
        Q.load_quantized(_mlp(), tmp_path / "bad.safetensors")


def _saved(tmp_path, model):
    path = tmp_path / "static.safetensors"
    Q.save_quantized(path, model)
    return path


def test_pruned_then_quantized_saves_and_loads_with_its_zeros(tmp_path):
    model, x = _mlp(), _x()
    prune.global_unstructured([(model[0], "weight"), (model[2], "weight")], prune.L1Unstructured, amount=0.6)
    for m in (model[0], model[2]):
        prune.remove(m, "weight")
    zeros = model[0].weight.data == 0
    assert zeros.mean() > 0.3
    Q.quantize_(model, Q.Int8DynamicActivationInt8WeightConfig())
    assert (model[0].weight_int8.data[zeros] == 0).all()  # a pruned weight stays exactly 0 in int8
    path = _saved(tmp_path, model)
    loaded = Q.load_quantized(_mlp(seed=9), path)
    assert (loaded[0].weight_int8.data[zeros] == 0).all()
    np.testing.assert_array_equal(_out(loaded, x), _out(model, x))


def test_a_w8a8_file_refuses_a_model_of_other_sizes(tmp_path):
    model = _mlp()
    Q.quantize_(model, Q.Int8DynamicActivationInt8WeightConfig())
    path = _saved(tmp_path, model)
    other = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 6))
    with pytest.raises(io.CheckpointError, match="the model's Linear is 24 -> 6, the file's 24 -> 5"):
        Q.load_quantized(other, path)
