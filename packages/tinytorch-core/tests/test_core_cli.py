"""`tito core`: through click's CliRunner on the real tito group. `python -m tito core demo` runs
as a subprocess in test_progress.py (its output to a file, with and without --no-progress)."""

import json

import numpy as np
from click.testing import CliRunner

from tinytorch.core import io
from tito.main import cli


def test_core_summary_table_and_json(tmp_path):
    path = tmp_path / "m.safetensors"
    io.save({"layer.weight": np.zeros((3, 4), dtype=np.float32), "layer.bias": np.zeros(3, dtype=np.float32)},
            path, metadata={"config": {"hidden": 4}})
    result = CliRunner().invoke(cli, ["core", "summary", str(path)])
    assert result.exit_code == 0, result.output
    assert "layer.weight" not in result.output  # by default, layers: "layer" holds both tensors
    assert any(line.split()[:3] == ["layer", "2", "15"] for line in result.output.splitlines())
    assert "metadata: config, tinytorch.versions (--all shows the values)" in result.output
    result = CliRunner().invoke(cli, ["core", "summary", "--all", str(path)])
    assert "layer.weight" in result.output and "(3, 4)" in result.output and 'config: {"hidden": 4}' in result.output
    result = CliRunner().invoke(cli, ["core", "summary", str(path), "--json"])
    info = json.loads(result.output)
    assert info["parameters"] == 15 and info["metadata"]["config"] == {"hidden": 4}


def test_core_summary_bad_file_is_one_line_exit_1(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    result = CliRunner().invoke(cli, ["core", "summary", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert str(path) in result.output


def test_core_demo_json():
    result = CliRunner().invoke(cli, ["core", "demo", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["train_accuracy"] >= 0.95


def test_core_demo_bad_option_is_usage_error():
    result = CliRunner().invoke(cli, ["core", "demo", "--epochs", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
