"""`tito performance ...` through click's CliRunner on the real tito group, and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tito.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["performance", *args])


def test_flops_conv2d_seed_example():
    r = run("flops", "conv2d", "--input-size", "3,32,32", "--output-size", "64")
    assert r.exit_code == 0, r.output
    assert "kernel_size=3, stride=1, padding=1" in " ".join(r.output.split())  # wraps at 80
    assert "3,538,944" in r.output and "1 multiply-add = 2 FLOPs" in r.output
    assert "37,748,736" not in r.output  # the seed's figure was wrong
    assert "64x32x32" in r.output


def test_flops_json_linear_and_attention():
    r = run("flops", "linear", "--input-size", "784", "--output-size", "128", "--batch-size", "32",
            "--json")
    d = json.loads(r.output)
    assert d["matmul_flops"] == 6_422_528 and d["elementwise_flops"] == 4096
    r = run("flops", "attention", "--input-size", "128,256", "--heads", "8", "--json")
    d = json.loads(r.output)
    assert d["matmul_flops"] == 8 * 128 * 256**2 + 4 * 128**2 * 256
    assert d["settings"]["num_heads"] == 8 and d["bound"] in ("memory-bound", "compute-bound")
    r = run("flops", "conv2d", "--input-size", "16,32,32", "--output-size", "32", "--stride", "2",
            "--groups", "4", "--json")
    d = json.loads(r.output)
    assert d["output_shape"] == [1, 32, 16, 16]
    assert d["matmul_flops"] == 2 * 32 * 16 * 16 * 4 * 9


@pytest.mark.parametrize("args,expected", [
    (["flops", "convolution", "--input-size", "3,32,32"], "layers: attention, avgpool2d"),
    (["flops", "conv2d", "--input-size", "3,x,32", "--output-size", "64"], "C,H,W"),
    (["flops", "conv2d", "--input-size", "3,32", "--output-size", "64"], "malformed --input-size"),
    (["flops", "conv2d", "--input-size", "3,32,32"], "--output-size"),
    (["profile", "no_such_model"], "registered models:"),
    (["compare", "no_such_model"], "registered models:"),
])
def test_bad_input_is_one_line_exit_1(args, expected):
    r = run(*args)
    assert r.exit_code == 1
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and expected in lines[0], r.output


def test_cifar10_without_vision_models(monkeypatch):
    from tinytorch.perf import models

    monkeypatch.setattr(models, "available_models", lambda: ["tinygpt"])
    r = run("cifar10")
    assert r.exit_code == 1
    assert "needs tinytorch-vision" in r.output and len(r.output.strip().splitlines()) == 1


def test_profile_roofline_compare_registered_models(registered_models, tmp_path):
    r = run("profile", "test_cnn", "--repeats", "1", "--warmup", "0",
            "--csv", str(tmp_path / "p.csv"), "--trace", str(tmp_path / "t.json"))
    assert r.exit_code == 0, r.output
    assert "features.0" in r.output and "overhead" in r.output
    assert (tmp_path / "p.csv").exists() and json.loads((tmp_path / "t.json").read_text())
    r = run("profile", "test_gpt", "--repeats", "1", "--json")
    assert json.loads(r.output)["model"] == "test_gpt"
    out = tmp_path / "plot.png"
    r = run("roofline", "test_cnn", "--out", str(out), "--svg", str(tmp_path / "p.svg"),
            "--repeats", "1")
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "p.svg").exists()
    r = run("compare", "test_cnn", "test_gpt", "--repeats", "1", "--json")
    d = json.loads(r.output)
    assert [m["name"] for m in d["models"]] == ["test_cnn", "test_gpt"]
    r = run("flops", "test_cnn", "--json")
    assert json.loads(r.output)["forward"]["matmul_flops"] > 0


def test_hardware_quick_json():
    r = run("hardware", "--quick", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["quick"] and d["measured_peak_gflops"] > 0 and d["ridge_point"] > 0
    r = run("hardware", "--quick")
    assert "ridge point" in r.output


def test_subprocess_tito_performance_flops():
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "tito", "performance", "flops", "conv2d",
                           "--input-size", "3,32,32", "--output-size", "64", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["matmul_flops"] == 3_538_944
    proc = subprocess.run([sys.executable, "-m", "tito", "performance", "flops", "nope"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("layer,args,option", [
    ("conv2d", ["--output-size", "-4"], "--output-size"),
    ("conv2d", ["--output-size", "0"], "--output-size"),
    ("conv2d", ["--kernel-size", "0"], "--kernel-size"),
    ("conv2d", ["--kernel-size", "-3"], "--kernel-size"),
    ("conv2d", ["--stride", "0"], "--stride"),
    ("conv2d", ["--stride", "-2"], "--stride"),
    ("conv2d", ["--dilation", "0"], "--dilation"),
    ("conv2d", ["--groups", "0"], "--groups"),
    ("conv2d", ["--padding", "-1"], "--padding"),
    ("maxpool2d", ["--kernel-size", "0"], "--kernel-size"),
    ("linear", ["--output-size", "-4"], "--output-size"),
    ("attention", ["--heads", "0"], "--heads"),
    ("relu", ["--batch-size", "0"], "--batch-size"),
])
def test_flops_rejects_non_positive_settings_in_one_line(layer, args, option):
    size = {"conv2d": "3,32,32", "maxpool2d": "3,32,32", "linear": "784",
            "attention": "16,32", "relu": "10"}[layer]
    base = ["--output-size", "64"] if layer in ("conv2d", "linear") else []
    r = run("flops", layer, "--input-size", size, *base, *args)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in r.output, r.output
    assert args[1] in lines[0]  # and the value it got


def test_flops_library_rejects_zero_kernel_stride_groups():
    from tinytorch.perf import flops as fl

    for kwargs, name in ((dict(kernel_size=0), "kernel_size"), (dict(stride=0), "stride"),
                         (dict(groups=0), "groups"), (dict(dilation=0), "dilation"),
                         (dict(padding=-1), "padding")):
        with pytest.raises(ValueError, match=name):
            fl.conv2d_flops((3, 8, 8), 8, **kwargs)
    with pytest.raises(ValueError, match="out_channels"):
        fl.conv2d_flops((3, 8, 8), -4)
    with pytest.raises(ValueError, match="stride"):
        fl.pool2d_flops((3, 8, 8), 2, stride=0)
