"""Fixtures of the vision tests; the file writers live in vision_formats.py."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import vision_formats (importlib mode)

from vision_formats import write_mnist_like  # noqa: E402


@pytest.fixture
def fashion_root(tmp_path):
    """A data root holding a tiny Fashion-MNIST in the real format."""
    write_mnist_like(tmp_path / "fashion-mnist", n_train=200, n_test=50)
    return tmp_path


@pytest.fixture
def trained_checkpoint(fashion_root, tmp_path):
    """A SmallCNN checkpoint of one epoch on that Fashion-MNIST, written by `tito vision train`."""
    from click.testing import CliRunner

    from tito.main import cli

    ckpt = tmp_path / "cnn.safetensors"
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root),
                                      "--epochs", "1", "--batch-size", "50", "--limit", "100",
                                      "--out", str(ckpt), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    return ckpt


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    """One OpenBLAS thread for the tests: on a shared 2-core machine, 2 spinning BLAS threads
    competing with other processes are many times slower than one (see tinytorch.core.threads)."""
    from tinytorch.core.threads import get_num_threads, set_num_threads

    before = get_num_threads()
    set_num_threads(1)
    yield
    if before:
        set_num_threads(before)
