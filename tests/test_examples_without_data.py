"""The image examples without their data (issue 22 §4): one line that prints the download
command and exit code 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script, dataset", [("cifar10_cnn.py", "cifar10"),
                                             ("fashion_mnist_cnn.py", "fashion-mnist")])
def test_example_without_data_prints_the_download_command(tmp_path, script, dataset):
    pytest.importorskip("tinytorch.vision")
    env = dict(os.environ, TINYTORCH_DATA=str(tmp_path / "empty"))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--out", str(tmp_path / "o.safetensors")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"tito data download {dataset}" in proc.stderr and str(tmp_path / "empty") in proc.stderr
    assert not (tmp_path / "o.safetensors").exists()
