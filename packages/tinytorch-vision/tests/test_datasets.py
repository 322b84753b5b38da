"""Loaders on tiny files written in the real formats, corrupted files, and the real Fashion-MNIST."""

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
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


# ------------------------------------------------------------------------------- hostile files (issue 13)


class _Op:
    """Just enough of a pickle writer to craft hostile CIFAR-10 batches opcode by opcode."""

    @staticmethod
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"X" + len(raw).to_bytes(4, "little") + raw

    @staticmethod
    def b(raw: bytes) -> bytes:
        return b"B" + len(raw).to_bytes(4, "little") + raw

    @staticmethod
    def i(v: int) -> bytes:
        return b"J" + int(v).to_bytes(4, "little", signed=True)

    @staticmethod
    def tup(*items: bytes) -> bytes:
        return b"(" + b"".join(items) + b"t"

    @staticmethod
    def glob(module: str, name: str) -> bytes:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    @staticmethod
    def dtype(name: str, state: bytes) -> bytes:
        return (_Op.glob("numpy", "dtype") + _Op.tup(_Op.s(name), b"\x89", b"\x88") + b"R"
                + state + b"b")

    @staticmethod
    def batch(data: bytes, labels: bytes = b"](K\x03e") -> bytes:
        return b"\x80\x02}(" + _Op.s("data") + data + _Op.s("labels") + labels + b"u."


def _run_reader_in_subprocess(path: Path) -> subprocess.CompletedProcess:
    """A crash (segfault) must show as a failed test, not kill the test run."""
    code = ("import sys\nfrom tinytorch.vision.datasets import read_cifar_python_batch\n"
            "try:\n    x, y = read_cifar_python_batch(sys.argv[1])\n"
            "    print('LOADED', x.shape, bytes(x.reshape(-1)[:64]).hex())\n"
            "except ValueError as e:\n    print('VALUEERROR', e)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)


def test_cifar_python_batch_with_object_dtype_state_is_an_error_not_a_segfault(tmp_path):
    u1_state = _Op.tup(_Op.i(3), _Op.s("|"), b"N", b"N", b"N", _Op.i(-1), _Op.i(-1), _Op.i(0))
    object_dtype = _Op.dtype("O", _Op.tup(_Op.i(3), _Op.s("|"), b"N", b"N", b"N", _Op.i(-1), _Op.i(-1),
                                          _Op.i(63)))
    # np.dtype("V8") whose fields hold an object at offset 0, but whose flags say "no objects".
    evil_state = _Op.tup(_Op.i(3), _Op.s("|"), b"N", _Op.tup(_Op.s("a")),
                         b"}" + _Op.s("a") + _Op.tup(object_dtype, _Op.i(0)) + b"s",
                         _Op.i(8), _Op.i(1), _Op.i(0))

    def array(shape: tuple[int, ...], dtype: bytes, raw: bytes) -> bytes:
        return (_Op.glob("numpy.core.multiarray", "_reconstruct")
                + _Op.tup(_Op.glob("numpy", "ndarray"), _Op.tup(_Op.i(0)), _Op.b(b"b")) + b"R"
                + _Op.tup(_Op.i(1), _Op.tup(*map(_Op.i, shape)), dtype, b"\x89", _Op.b(raw)) + b"b")

    data = array((2, 3072), _Op.dtype("u1", u1_state), bytes(2 * 3072))
    labels = array((2,), _Op.dtype("V8", evil_state), b"\x41" * 16)  # 0x4141... read as a PyObject*
    path = tmp_path / "data_batch_1"
    path.write_bytes(_Op.batch(data, labels))
    result = _run_reader_in_subprocess(path)
    assert result.returncode == 0, f"reader crashed with exit {result.returncode}: {result.stderr[-500:]}"
    assert result.stdout.startswith("VALUEERROR") and str(path) in result.stdout


def test_cifar_python_batch_with_negative_buffer_offset_does_not_read_the_heap(tmp_path):
    u1 = _Op.dtype("u1", _Op.tup(_Op.i(3), _Op.s("|"), b"N", b"N", b"N", _Op.i(-1), _Op.i(-1), _Op.i(0)))
    # np.ndarray((1, 3072), np.dtype("u1"), b"\0" * 16, -4096): a view 4 KB before a 16-byte buffer.
    array = _Op.glob("numpy", "ndarray") + _Op.tup(_Op.tup(_Op.i(1), _Op.i(3072)), u1, _Op.b(b"\0" * 16),
                                                    _Op.i(-4096)) + b"R"
    path = tmp_path / "data_batch_1"
    path.write_bytes(_Op.batch(array))
    result = _run_reader_in_subprocess(path)
    assert result.returncode == 0, f"reader crashed with exit {result.returncode}: {result.stderr[-500:]}"
    assert result.stdout.startswith("VALUEERROR") and str(path) in result.stdout


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_cifar_python_batch_written_by_python3_pickle_still_reads(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"batch_label": "b", "labels": [3, 9], "data": data,
                                   "filenames": ["a.png", "b.png"]}, protocol=protocol))
    images, labels = D.read_cifar_python_batch(path)
    np.testing.assert_array_equal(images.reshape(2, 3072), data)
    assert labels.tolist() == [3, 9] and labels.dtype == np.int64


def test_cifar_python_batch_is_read_without_running_pickle(tmp_path, monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was used to read a CIFAR-10 batch")

    from numpy._core import multiarray

    monkeypatch.setattr(multiarray, "_reconstruct", no_pickle)  # what an unpickler would call
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    path = tmp_path / "test_batch"
    path.write_bytes(cifar_python_pickle(np.full((2, 3, 32, 32), 7, dtype=np.uint8), [1, 2]))
    images, labels = D.read_cifar_python_batch(path)
    assert images.shape == (2, 3, 32, 32) and int(images.sum()) == 7 * 2 * 3072 and labels.tolist() == [1, 2]


@pytest.mark.parametrize("labels, problem", [([3.0, 5.0], "float"), ([[3], [5]], "list"), ([3, True], "bool")])
def test_cifar_python_batch_labels_must_be_a_flat_list_of_ints(tmp_path, labels, problem):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), dtype=np.uint8), "labels": labels}, protocol=2))
    with pytest.raises(ValueError, match="labels") as err:
        D.read_cifar_python_batch(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_cifar_python_batch_of_zero_images_is_an_error_naming_the_file(tmp_path):
    write_cifar(tmp_path / "cifar10", "py", n_per_batch=2)
    empty = tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch"
    empty.write_bytes(cifar_python_pickle(np.zeros((0, 3, 32, 32), dtype=np.uint8), []))
    with pytest.raises(ValueError, match="no images") as err:
        CIFAR10(tmp_path, train=False)
    assert str(empty) in str(err.value)


class _CountingGzip:
    """Wraps a GzipFile and counts the decompressed bytes handed out."""

    def __init__(self, f):
        self.f, self.bytes_read = f, 0

    def read(self, n=-1):
        out = self.f.read(n)
        self.bytes_read += len(out)
        return out

    def readinto(self, buffer):
        n = self.f.readinto(buffer)
        self.bytes_read += n
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_idx_gzip_bomb_is_refused_after_reading_only_what_the_header_announces(tmp_path, monkeypatch):
    header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:  # 7,840 announced bytes, 64 MiB delivered
        f.write(header + bytes(10 * 28 * 28))
        for _ in range(64):
            f.write(bytes(1 << 20))
    assert bomb.stat().st_size < 200_000
    opened = []
    real_open = gzip.open
    monkeypatch.setattr(D.gzip, "open", lambda *a, **k: opened.append(_CountingGzip(real_open(*a, **k))) or opened[-1])
    with pytest.raises(ValueError, match="trailing bytes") as err:
        read_idx(bomb)
    assert str(bomb) in str(err.value)
    assert opened and opened[0].bytes_read <= len(header) + 10 * 28 * 28 + 1


def test_idx_header_with_absurd_dimensions_is_an_error_not_an_allocation(tmp_path):
    huge = tmp_path / "labels.gz"
    huge.write_bytes(gzip.compress(b"\x00\x00\x08\x04" + b"\xff\xff\xff\xff" * 4 + b"\x01\x02"))
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(huge)
    msg = str(err.value)
    assert str(huge) in msg and "4294967295x4294967295x4294967295x4294967295" in msg
    assert "-" not in msg.split("bytes")[0].split("(")[-1]  # no int64 overflow in the announced size


def test_empty_mnist_split_is_an_error_naming_the_file(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist_like(folder, n_train=20, n_test=5)
    write_idx_gz(folder / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx_gz(folder / "train-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    with pytest.raises(ValueError, match="no images") as err:
        MNIST(tmp_path, train=True)
    assert str(folder / "train-images-idx3-ubyte.gz") in str(err.value)


def test_train_and_test_image_sizes_must_agree_before_training(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist_like(folder, n_train=20, n_test=5)
    train = MNIST(tmp_path, train=True)
    test = MNIST(tmp_path, train=False)
    D.check_train_test(train, test)  # the honest pair passes
    test.data = test.data[:, :, :20, :20]  # as if t10k-images held 20x20 images
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(1, 20, 20\)") as err:
        D.check_train_test(train, test)
    assert "train-images-idx3-ubyte.gz" in str(err.value) and "t10k-images-idx3-ubyte.gz" in str(err.value)
    write_idx_gz(folder / "t10k-images-idx3-ubyte.gz", np.zeros((5, 20, 20), dtype=np.uint8))
    with pytest.raises(ValueError, match="28x28") as err:  # MNIST files are 28x28 by definition
        MNIST(tmp_path, train=False)
    assert str(folder / "t10k-images-idx3-ubyte.gz") in str(err.value)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SMALL_BATCH = cifar_python_pickle(np.arange(2 * 3072).astype(np.uint8).reshape(2, 3, 32, 32), [4, 2])
_PIXELS = _SMALL_BATCH.index(bytes(range(256)))  # edits go to the pickle structure, not the pixels
_STRUCTURE = st.one_of(st.integers(0, _PIXELS - 1), st.integers(_PIXELS + 2 * 3072, len(_SMALL_BATCH) - 1))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(_STRUCTURE, st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(1, len(_SMALL_BATCH)))
def test_corrupted_cifar_python_batch_is_the_batch_or_a_value_error(tmp_path, edits, cut):
    blob = bytearray(_SMALL_BATCH)
    for position, value in edits:
        blob[position] = value
    path = tmp_path / "data_batch_1"
    path.write_bytes(bytes(blob[:cut]))
    try:
        images, labels = D.read_cifar_python_batch(path)
    except ValueError as err:
        assert str(path) in str(err)
        return
    assert images.shape[1:] == (3, 32, 32) and images.dtype == np.uint8 and len(labels) == len(images)
    assert labels.dtype == np.int64 and ((0 <= labels) & (labels <= 9)).all()
