"""Loaders on tiny files written in the real formats, corrupted files, and the real Fashion-MNIST."""

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from vision_formats import cifar_python_pickle, write_cifar, write_idx_gz, write_mnist_like

from tinytorch.core.data import DataLoader
from tinytorch.vision import CIFAR10, MNIST, FashionMNIST, data_root, dataset_status, read_idx
from tinytorch.vision import datasets as D
from tinytorch.vision.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip


def test_mnist_reads_idx_gzip(tmp_path):
    written = write_mnist_like(tmp_path / "mnist", n_train=30, n_test=10)
    train, test = MNIST(tmp_path, train=True), MNIST(tmp_path, train=False)
    assert len(train) == 30 and len(test) == 10
    x, y = train[3]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y == 3
    np.testing.assert_array_equal(train.data[:, 0], written["train"][0])
    np.testing.assert_array_equal(test.targets, written["t10k"][1])
    assert train.targets.dtype == np.int64 and x.max() <= 1.0
    xb, yb = next(iter(DataLoader(train, batch_size=8)))  # batched through __getitems__
    assert xb.shape == (8, 1, 28, 28) and xb.dtype == np.float32 and yb.tolist() == list(range(8))


def test_fashion_mnist_uses_its_own_folder_and_classes(fashion_root, monkeypatch):
    monkeypatch.setenv("TINYTORCH_DATA", str(fashion_root))
    ds = FashionMNIST(train=False)  # root from $TINYTORCH_DATA
    assert ds.folder == fashion_root / "fashion-mnist" and len(ds) == 50
    assert ds.classes[9] == "Ankle boot" and data_root() == fashion_root


def test_missing_files_error_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(tmp_path)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "fashion-mnist") in msg and "download" in msg
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        CIFAR10(tmp_path)


def test_truncated_and_corrupted_idx_files_are_reported_with_path_and_expectation(tmp_path):
    folder = tmp_path / "fashion-mnist"
    write_mnist_like(folder, n_train=20, n_test=5)
    images = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(raw[:-100]))  # valid gzip, truncated IDX payload
    with pytest.raises(ValueError) as err:
        FashionMNIST(tmp_path)
    assert str(images) in str(err.value) and "truncated" in str(err.value)
    assert "26,421,856 bytes" in str(err.value)  # the real file's size, from the registry
    images.write_bytes(gzip.compress(raw)[:-30])  # truncated gzip stream
    with pytest.raises(ValueError, match="corrupted or truncated gzip"):
        FashionMNIST(tmp_path)
    blob = bytearray(gzip.compress(raw))
    blob[len(blob) // 2] ^= 0xFF  # a flipped byte: gzip's CRC (or inflate) catches it
    images.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=str(images).replace("\\", "\\\\")):
        FashionMNIST(tmp_path)
    images.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + raw[4:]))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(images)


def test_label_and_image_counts_must_agree(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist_like(folder, n_train=20, n_test=5)
    write_idx_gz(folder / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(ValueError, match="20 images but .* 19 labels"):
        MNIST(tmp_path)


@pytest.mark.parametrize("kind", ["py", "bin"])
def test_cifar10_reads_python_and_binary_batches(tmp_path, kind):
    written = write_cifar(tmp_path / "cifar10", kind, n_per_batch=4)
    train, test = CIFAR10(tmp_path, train=True), CIFAR10(tmp_path, train=False)
    assert len(train) == 20 and len(test) == 4
    x, y = train[5]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(train.data[4:8], written["data_batch_2"][0])
    np.testing.assert_array_equal(test.targets, written["test_batch"][1])
    assert train.classes[0] == "airplane"


def test_cifar_python_batch_refuses_arbitrary_globals(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(tmp_path / "cifar10", "py", n_per_batch=2)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global (posix|nt|os).system"):
        CIFAR10(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_cifar_python_pickle_helper_is_the_py2_format():
    blob = cifar_python_pickle(np.zeros((1, 3, 32, 32), dtype=np.uint8), [3])
    assert blob.startswith(b"\x80\x02}") and b"cnumpy.core.multiarray\n_reconstruct\n" in blob
    assert b"X" not in blob[:20]  # py2 strings (U/T opcodes), not py3 unicode


def test_cifar_binary_truncated_is_reported(tmp_path):
    write_cifar(tmp_path / "cifar10", "bin", n_per_batch=3)
    bad = tmp_path / "cifar10" / "cifar-10-batches-bin" / "data_batch_3.bin"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(ValueError) as err:
        CIFAR10(tmp_path)
    assert str(bad) in str(err.value) and "3073" in str(err.value) and "30,730,000" in str(err.value)


def test_download_verifies_sha256_then_renames(tmp_path, monkeypatch):
    payload = gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03")
    source = tmp_path / "remote.gz"
    source.write_bytes(payload)
    good = D.RemoteFile("labels.gz", (source.as_uri(),), (hashlib.sha256(payload).hexdigest(),), len(payload))
    out = D.download(good, tmp_path / "dest")
    assert out.read_bytes() == payload and list((tmp_path / "dest").iterdir()) == [out]
    bad = D.RemoteFile("other.gz", (source.as_uri(),), ("0" * 64,), len(payload))
    with pytest.raises(OSError, match="checksum mismatch") as err:
        D.download(bad, tmp_path / "dest")
    assert "Offline?" in str(err.value)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["labels.gz"]  # no partial file


def test_download_flag_fetches_missing_files(tmp_path, monkeypatch):
    source = tmp_path / "server"
    write_mnist_like(source, n_train=10, n_test=10)

    def fake_download(spec, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / spec.name).write_bytes((source / spec.name).read_bytes())
        return folder / spec.name

    monkeypatch.setattr(D, "download_file", fake_download)
    root = tmp_path / "root"
    assert len(MNIST(root, train=False, download=True)) == 10
    assert (root / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_dataset_status_reports_presence_and_checksums(tmp_path):
    write_mnist_like(tmp_path / "fashion-mnist", n_train=5, n_test=5)
    status = dataset_status("fashion-mnist", tmp_path)
    assert status.present and not status.verified
    assert {f.status for f in status.files} == {"corrupt"}  # tiny files don't match the real ones
    assert not dataset_status("mnist", tmp_path).present
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_status("imagenet", tmp_path)


def test_batch_transforms_are_vectorised_and_seedable():
    x = np.random.default_rng(0).random((16, 3, 8, 8), dtype=np.float32)
    t = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), Normalize([0.5] * 3, [0.25] * 3)])
    a, b = t(x, np.random.default_rng(1)), t(x, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == np.float32
    flipped = RandomHorizontalFlip(p=1.0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    crop = RandomCrop(8, padding=0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(crop, x)
    shifted = RandomCrop((4, 4), padding=0)(x, np.random.default_rng(3))
    assert shifted.shape == (16, 3, 4, 4)
    with pytest.raises(ValueError, match="NCHW"):
        Normalize([0.5], [0.5])(x[0])


# ------------------------------------------------------------------------------- real data

SHARED = Path(os.environ.get("TINYTORCH_DATA", "")) / "fashion-mnist"
REAL_SHA256 = {  # from ../shared/data/fashion-mnist/SOURCE.md
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


@pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA") or not (SHARED / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="real Fashion-MNIST not found under $TINYTORCH_DATA")
def test_real_fashion_mnist():
    for name, sha in REAL_SHA256.items():
        assert hashlib.sha256((SHARED / name).read_bytes()).hexdigest() == sha, name
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    assert train.data.shape == (60000, 1, 28, 28) and test.data.shape == (10000, 1, 28, 28)
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    assert np.bincount(train.targets).tolist() == [6000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert 0.28 < train.data.mean() / 255 < 0.29  # the published mean 0.2860
    status = dataset_status("fashion-mnist")
    assert status.verified, status.to_dict()
