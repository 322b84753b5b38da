"""Structurally pruned vision models round-trip through checkpoints: the file records the sizes
the layers have now, `load_trained_model` rebuilds them, and a file whose tensors do not fit its
config is refused with the file, the tensor and both shapes named."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tinytorch.core import Tensor, io, manual_seed, no_grad
from tinytorch.core.checkpoint import save_model_state
from tinytorch.core.nn.utils import prune
from tinytorch.core.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
from tinytorch.vision.layers import BatchNorm2d
from tinytorch.vision.models import build_model
from tinytorch.vision.train import (
    FORMAT_VERSION,
    TrainConfig,
    checkpoint_metadata,
    load_trained_model,
    save_optimized,
)

SHAPE = (1, 16, 16)


def _trained_like(name: str, **kwargs):
    """A model with random BatchNorm state (a wrong channel kept or dropped would show)."""
    manual_seed(0)
    model = build_model(name, SHAPE, 10, **kwargs)
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.running_mean.data[...] = rng.normal(size=m.num_features)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, size=m.num_features)
            m.bias.data[...] = rng.normal(size=m.num_features)
    return model.eval()


def _source(tmp_path, model):
    """A training checkpoint of ``model`` (what `tito vision train` writes)."""
    path = tmp_path / "source.safetensors"
    save_model_state(path, model, checkpoint_metadata(TrainConfig(model=type(model).__name__), model))
    return path


@pytest.mark.parametrize("name, kwargs, sizes", [
    ("small_cnn", {"widths": (8, 12), "hidden": 10}, {"widths": [4, 6], "hidden": 5}),
    ("deep_cnn", {"widths": (4, 4, 6, 6, 8)}, {"widths": [2, 2, 3, 3, 4]}),
    ("mlp", {"hidden": (12, 8)}, {"hidden": [6, 4]}),
])
def test_a_shrunk_model_saves_and_loads_at_its_new_size(tmp_path, name, kwargs, sizes):
    model = _trained_like(name, **kwargs)
    x = Tensor(np.random.default_rng(1).normal(size=(3, *SHAPE)).astype(np.float32))
    source = _source(tmp_path, model)
    prune.shrink(model, x, amount=0.5)
    assert {k: model.config[k] for k in sizes} == sizes  # the config reads the layers as they are now
    out = tmp_path / "shrunk.safetensors"
    save_optimized(out, model, source)
    loaded, info = load_trained_model(out)
    assert info["model"] == model.config and info["format_version"] == FORMAT_VERSION
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    with no_grad():
        np.testing.assert_array_equal(loaded.eval()(x).numpy(), model(x).numpy())


def test_a_shrunk_and_quantized_cnn_round_trips(tmp_path):
    model = _trained_like("small_cnn", widths=(8, 12), hidden=10)
    x = Tensor(np.random.default_rng(1).normal(size=(3, *SHAPE)).astype(np.float32))
    source = _source(tmp_path, model)
    prune.shrink(model, x, amount=0.5)
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    out = tmp_path / "shrunk_int8.safetensors"
    save_optimized(out, model, source)
    loaded, _ = load_trained_model(out)
    assert type(loaded.features[0]).__name__ == "QuantizedConv2d" and loaded.widths == (4, 6)
    with no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_a_file_whose_tensors_do_not_fit_its_config_is_refused(tmp_path):
    model = _trained_like("small_cnn", widths=(8, 12), hidden=10)
    source = _source(tmp_path, model)
    small = copy.deepcopy(model)
    prune.shrink(small, Tensor(np.zeros((1, *SHAPE), dtype=np.float32)), amount=0.5)
    # the shrunk tensors under the unshrunk config: what an edited or mixed-up file holds
    bad = tmp_path / "bad.safetensors"
    save_model_state(bad, small, {"vision": io.load_metadata(source)["vision"]})
    with pytest.raises(io.CheckpointError) as err:
        load_trained_model(bad)
    message = str(err.value)
    assert str(bad) in message and "'features.0.weight': expected shape (8, 1, 3, 3), got (4, 1, 3, 3)" in message
    assert "'widths': [8, 12]" in message


def test_an_invalid_config_or_a_newer_format_is_one_clear_error(tmp_path):
    model = _trained_like("small_cnn", widths=(8, 12), hidden=10)
    meta = io.load_metadata(_source(tmp_path, model))["vision"]
    odd = tmp_path / "odd.safetensors"
    save_model_state(odd, model, {"vision": {**meta, "model": {**meta["model"], "widths": [8, 12, 4]}}})
    with pytest.raises(ValueError, match=r"odd.safetensors: checkpoint metadata vision.model is not a valid model config"):
        load_trained_model(odd)
    newer = tmp_path / "newer.safetensors"
    save_model_state(newer, model, {"vision": {**meta, "format_version": FORMAT_VERSION + 1}})
    with pytest.raises(ValueError, match=rf"newer.safetensors is a tinytorch-vision checkpoint of format version "
                                         rf"{FORMAT_VERSION + 1}; .* reads format {FORMAT_VERSION}"):
        load_trained_model(newer)
    old = tmp_path / "old.safetensors"  # written before the version was recorded: format 1
    save_model_state(old, model, {"vision": {k: v for k, v in meta.items() if k != "format_version"}})
    assert load_trained_model(old)[0].widths == (8, 12)
