"""Vision's data sets in core's registry (`tito data download fashion-mnist|mnist|cifar10`): the
errors print the download command, the registered checksums match the real files, and CIFAR-10's
archive is unpacked after its download."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tinytorch.core.datafiles import (
    MissingDataError,
    fetch_dataset,
    registered_datasets,
    sha256_of,
    verify,
)
from tinytorch.vision import datasets
from tinytorch.vision.datasets import CIFAR10, CIFAR10_DATA, FASHION_MNIST_DATA, MNIST, FashionMNIST


@pytest.mark.parametrize("cls, name", [(FashionMNIST, "fashion-mnist"), (MNIST, "mnist"), (CIFAR10, "cifar10")])
def test_missing_files_print_the_download_command(tmp_path, cls, name):
    with pytest.raises(MissingDataError, match=rf"expected .* in {tmp_path / cls.folder_name}.*download "
                                               rf"them with `tito data download {name}`"):
        cls(tmp_path, train=False)


def test_the_registry_is_the_entry_point_group():
    registered = registered_datasets()
    for spec in (FASHION_MNIST_DATA, datasets.MNIST_DATA, CIFAR10_DATA):
        assert registered[spec.name] is spec


def test_registered_fashion_mnist_checksums_match_the_real_files():
    root = os.environ.get("TINYTORCH_DATA")
    if not root or not FASHION_MNIST_DATA.is_present(root):
        pytest.skip("Fashion-MNIST is not in $TINYTORCH_DATA (tito data download fashion-mnist)")
    folder = FASHION_MNIST_DATA.path(root)
    assert [verify(folder / f.name, f)[0] for f in FASHION_MNIST_DATA.files] == ["verified"] * 4


def _tiny_cifar_archive(path: Path) -> None:
    """A cifar-10-python.tar.gz whose batches are binary records (what the reader also accepts
    is not the point here: the unpacking is)."""
    with tarfile.open(path, "w:gz") as tar:
        for name in datasets.CIFAR10_TRAIN_BATCHES + datasets.CIFAR10_TEST_BATCHES:
            payload = np.zeros(4, np.uint8).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        evil = tarfile.TarInfo("../outside")  # never extracted
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))


def test_cifar10_download_is_unpacked(tmp_path, monkeypatch):
    source = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    source.parent.mkdir()
    _tiny_cifar_archive(source)
    archive = dataclasses.replace(CIFAR10_DATA.files[0], urls=(source.as_uri(),), sha256=(sha256_of(source),),
                                  size=source.stat().st_size)
    spec = dataclasses.replace(CIFAR10_DATA, files=(archive,))
    root = tmp_path / "data"
    assert not spec.is_present(root)
    import tinytorch.core.datafiles as datafiles

    monkeypatch.setattr(datafiles, "registered_datasets", lambda: {"cifar10": spec})
    folder = fetch_dataset("cifar10", root)
    assert folder == root / "cifar10" and spec.is_present(root)
    assert sorted(p.name for p in (folder / "cifar-10-batches-py").iterdir()) == sorted(
        datasets.CIFAR10_TRAIN_BATCHES + datasets.CIFAR10_TEST_BATCHES)
    assert not (tmp_path / "outside").exists() and not (root / "outside").exists()
