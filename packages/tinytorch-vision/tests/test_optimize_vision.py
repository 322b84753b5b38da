"""`tito performance optimize` on a tiny vision checkpoint, and QuantizedConv2d through the scheme registry."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import Tensor, io, no_grad
from tinytorch.core import quantization as Q
from tinytorch.vision import Conv2d, QuantizedConv2d
from tinytorch.vision.train import benchmark_target, load_trained_model
from tito.main import cli


@pytest.mark.parametrize("static", [False, True])
def test_quantized_conv2d_round_trip(tmp_path, static):
    from tinytorch.core import nn

    rng = np.random.default_rng(0)
    model = nn.Sequential(Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), Conv2d(8, 4, 3, padding=(0, 1)))
    x = Tensor(rng.normal(size=(2, 3, 9, 9)).astype(np.float32))
    config = Q.Int8StaticActivationInt8WeightConfig([x]) if static else Q.Int8DynamicActivationInt8WeightConfig()
    Q.quantize_(model, config)
    assert isinstance(model[0], QuantizedConv2d)
    Q.save_quantized(tmp_path / "conv.safetensors", model)
    fresh = nn.Sequential(Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), Conv2d(8, 4, 3, padding=(0, 1)))
    loaded = Q.load_quantized(fresh, tmp_path / "conv.safetensors")
    assert loaded[2].padding == model[2].padding and loaded[0].stride == (2, 2)
    with no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    # the file's geometry is checked against the model before a tensor is read
    other = nn.Sequential(Conv2d(3, 8, 5, stride=2, padding=1), nn.ReLU(), Conv2d(8, 4, 3, padding=(0, 1)))
    with pytest.raises(io.CheckpointError, match="3 -> 8 with a 5x5 kernel, the file's 3 -> 8 with 3x3"):
        Q.load_quantized(other, tmp_path / "conv.safetensors")


@pytest.fixture
def checkpoint(trained_checkpoint, fashion_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_DATA", str(fashion_root))
    monkeypatch.setenv("TINYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "250")  # every column of the tables
    return trained_checkpoint


FAST = ["--min-queries", "4", "--min-duration", "0", "--batch-size", "8", "--layer-repeats", "1"]


def _ratio(output: str, metric: str) -> float:
    line = next(line for line in output.splitlines() if line.lstrip("│┃ ").startswith(metric))
    return float(re.findall(r"([0-9.]+)x", line)[-1])


@pytest.mark.parametrize("extra, layer_type", [
    (["--quantize", "int8"], "QuantizedConv2d"),
    (["--quantize", "w8a8", "--prune", "0.5", "--finetune-steps", "2"], "QuantizedConv2d"),
])
def test_optimize_cli_writes_a_smaller_checkpoint_that_loads_and_benchmarks(checkpoint, tmp_path, extra, layer_type):
    out, report = tmp_path / "opt.safetensors", tmp_path / "opt.json"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(checkpoint), *extra, *FAST,
                                      "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    model, _ = load_trained_model(out)
    assert type(model.features[0]).__name__ == layer_type
    assert out.stat().st_size < checkpoint.stat().st_size / 3
    data = json.loads(report.read_text())
    before, after = data["before"], data["after"]
    assert after["model"]["checkpoint"] == str(out)
    # the printed ratios are the reports' own numbers
    assert _ratio(result.output, "Offline throughput") == pytest.approx(
        after["offline"]["samples_per_s"] / before["offline"]["samples_per_s"], abs=6e-4)
    assert _ratio(result.output, "model tensors on disk") == pytest.approx(
        after["model"]["disk_model_bytes"] / before["model"]["disk_model_bytes"], abs=6e-4)
    assert _ratio(result.output, "accuracy") == pytest.approx(
        after["accuracy"]["value"] / before["accuracy"]["value"], abs=6e-4)
    # the accuracy after is the saved file's, measured again by the benchmark loader
    target = benchmark_target(str(out))
    assert target["evaluate"](target["model"], None)["value"] == after["accuracy"]["value"]
    assert data["flops"][0] == data["flops"][1] > 0  # int8 in float32 GEMMs: the same multiply-adds
    convs = [c for c in data["layers"] if c["type_after"] == "QuantizedConv2d"]
    assert convs and all(c["verdict"]["verdict"] in ("confirmed", "not confirmed") for c in convs)
    if "--prune" in extra:
        assert data["done"]["finetune"]["steps"] == 2
        weights = [m.weight_int8.data for m in model.modules() if hasattr(m, "weight_int8")]
        zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
        assert zeros >= 0.5  # global pruning's zeros survive fine-tuning (masks held) and int8
    # and the saved file benchmarks on its own
    again = CliRunner().invoke(cli, ["performance", "benchmark", str(out), "--min-queries", "2",
                                     "--min-duration", "0", "--batch-size", "4", "--warmup", "0"])
    assert again.exit_code == 0, again.output


def test_optimize_measures_accuracy_on_accuracy_limit_samples(checkpoint, tmp_path):
    """The Python API's ``accuracy_limit`` reaches the benchmark (it measured the whole test set)."""
    from tinytorch.perf.benchmark import BenchmarkSettings
    from tinytorch.perf.optimize import optimize

    settings = BenchmarkSettings(batch_size=8, min_queries=4, min_duration_s=0.0, warmup_queries=0)
    result = optimize(str(checkpoint), str(tmp_path / "opt.safetensors"), "int8", settings=settings,
                      accuracy_limit=7, layer_repeats=1)
    assert result.before.accuracy["samples"] == result.after.accuracy["samples"] == 7
    assert settings.accuracy_limit is None  # the caller's settings are left as they were


def test_optimize_cli_errors_are_one_line(checkpoint, tmp_path):
    def run(*args):
        return CliRunner().invoke(cli, ["performance", "optimize", *args])

    same = run(str(checkpoint), "--quantize", "int8", "--out", str(checkpoint))
    assert same.exit_code != 0 and "Traceback" not in same.output and "--out" in same.output
    structured = run(str(checkpoint), "--quantize", "int8", "--structured", "--out", str(tmp_path / "s.safetensors"))
    assert structured.exit_code != 0 and "--structured needs --prune" in structured.output
    assert len(structured.output.strip().splitlines()) == 1
    missing = run(str(tmp_path / "nope.safetensors"), "--quantize", "int8", "--out", str(tmp_path / "o.safetensors"))
    assert missing.exit_code != 0 and "no such file" in missing.output
    assert len(missing.output.strip().splitlines()) == 1


def test_pruning_masks_hold_through_fine_tuning(checkpoint, tmp_path):
    # float32 output: fine-tuning's Adam steps would move every unmasked zero by about lr
    out = tmp_path / "pruned.safetensors"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(checkpoint), "--quantize", "none",
                                      "--prune", "0.5", "--finetune-steps", "2", *FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    model, _ = load_trained_model(out)
    weights = [m.weight.data for m in model.modules() if type(m).__name__ in ("Conv2d", "Linear")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert 0.5 <= zeros < 0.51  # exactly the pruned half, still exactly zero


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_structured_pruning_writes_a_smaller_model_its_loader_rebuilds(checkpoint, tmp_path, quantize):
    from tinytorch.core import nn
    from tinytorch.perf.flops import FLOPsCounter
    from tinytorch.vision import SmallCNN

    out, report = tmp_path / "small.safetensors", tmp_path / "small.json"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(checkpoint), "--quantize", quantize,
                                      "--prune", "0.5", "--structured", "--finetune-steps", "1", *FAST,
                                      "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "features.0 32->16" in result.output
    data = json.loads(report.read_text())
    assert [(g["group"], g["after"]) for g in data["done"]["shrunk"]] == [
        ("features.0", 16), ("features.4", 32), ("classifier.1", 64)]
    model, info = load_trained_model(out)
    assert (model.widths, model.hidden, info["model"]["widths"]) == ((16, 32), 64, [16, 32])
    assert model.num_parameters() < load_trained_model(checkpoint)[0].num_parameters() / 3
    # FLOPs after: the tracer's count of a SmallCNN built at the shrunk size (quantized layers
    # keep their multiply-adds)
    x = Tensor(np.zeros((8, 1, 28, 28), dtype=np.float32))
    with no_grad():
        fresh = FLOPsCounter().trace(SmallCNN((1, 28, 28), widths=(16, 32), hidden=64).eval(), x).forward.flops
    assert data["flops"][1] == fresh < data["flops"][0] / 2
    ratio = _ratio(result.output, "model tensors on disk")
    assert ratio == pytest.approx(data["after"]["model"]["disk_model_bytes"] / data["before"]["model"]["disk_model_bytes"],
                                  abs=6e-4)
    assert ratio < (0.3 if quantize == "none" else 0.1)
    conv2 = next(c for c in data["layers"] if c["name"] == "features.4")
    assert conv2["flops"][0] == 4 * conv2["flops"][1] and conv2["verdict"]["predicted"] > 1
    assert isinstance(model.features[0], nn.Module)
