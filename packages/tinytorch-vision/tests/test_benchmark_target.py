"""The vision checkpoint loader of `tito performance benchmark` (the tinytorch.benchmarks entry point)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.vision.train import benchmark_target, evaluate_checkpoint
from tito.main import cli


@pytest.fixture
def checkpoint(trained_checkpoint):
    return trained_checkpoint


def test_target_feeds_normalized_test_images_and_measures_test_accuracy(checkpoint, fashion_root):
    from tinytorch.vision.datasets import FashionMNIST
    from tinytorch.vision.train import NORMALIZATION

    target = benchmark_target(str(checkpoint), root=fashion_root)
    test = FashionMNIST(fashion_root, train=False)
    assert target["num_samples"] == len(test) == 50
    x = target["inputs"](np.array([3, 7]))
    mean, std = NORMALIZATION["fashion-mnist"]
    expected = (test.data[[3, 7]].astype(np.float32) / 255 - mean[0]) / std[0]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-6)
    full = target["evaluate"](target["model"], None)
    assert full["metric"] == "accuracy" and full["higher_is_better"] and full["samples"] == 50
    assert full["value"] == evaluate_checkpoint(checkpoint, fashion_root).accuracy
    first = target["evaluate"](target["model"], 20)
    predictions = target["model"](target["inputs"](np.arange(20))).numpy().argmax(axis=1)
    assert first["samples"] == 20 and first["value"] == np.mean(predictions == test.targets[:20])


def test_other_files_are_not_claimed(tmp_path):
    from tinytorch.core import nn
    from tinytorch.core.checkpoint import save_model_state

    save_model_state(tmp_path / "w.safetensors", nn.Linear(2, 2), {"kind": "other"})
    assert benchmark_target(str(tmp_path / "w.safetensors")) is None
    assert benchmark_target(str(tmp_path)) is None


def test_tito_performance_benchmark_on_a_vision_checkpoint(checkpoint, fashion_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_DATA", str(fashion_root))
    monkeypatch.setenv("TINYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["performance", "benchmark", str(checkpoint), "--min-queries", "4",
                                      "--min-duration", "0", "--batch-size", "8", "--warmup", "1",
                                      "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["accuracy"]["value"] == evaluate_checkpoint(checkpoint, fashion_root).accuracy
    assert report["single_stream"]["queries"] == 4 and report["offline"]["samples"] == 8
    assert report["model"]["type"] == "SmallCNN" and report["software"]["blas_threads"] == 1
