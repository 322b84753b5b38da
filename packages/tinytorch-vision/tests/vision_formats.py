"""Writers for tiny data files in exactly the real formats (used by the loader and CLI tests)."""

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0x00000800 | ndim, big-endian int32 sizes, raw uint8 bytes; then gzip."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mnist_like(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    """A tiny MNIST/Fashion-MNIST folder: four IDX gzip files with 28x28 images, labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        # Make the classes learnable: a bright block whose row encodes the label.
        for i, y in enumerate(labels):
            images[i, 2 * y:2 * y + 4, 4:24] = 255
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        data[prefix] = (images, labels)
    return data


def _short_string(b: bytes) -> bytes:
    """Python 2 `str` as cPickle writes it: SHORT_BINSTRING (< 256 bytes) or BINSTRING."""
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<i", len(b)) + b


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def cifar_python_pickle(images: np.ndarray, labels, batch_label: str = "testing batch 1 of 1") -> bytes:
    """A CIFAR-10 python batch byte for byte as the originals were written: Python 2 cPickle,
    protocol 2, a dict of py2 strings, a list of ints and a NumPy uint8 array pickled through
    numpy.core.multiarray._reconstruct."""
    n = len(images)
    data = np.ascontiguousarray(images, dtype=np.uint8).reshape(n, 3072)
    out = [b"\x80\x02}(", _short_string(b"batch_label"), _short_string(batch_label.encode())]
    out += [_short_string(b"labels"), b"](", *[_int(int(v)) for v in labels], b"e"]
    out += [_short_string(b"data"),
            b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n", _int(0), b"\x85",
            _short_string(b"b"), b"\x87R(", _int(1), _int(n), _int(3072), b"\x86",
            b"cnumpy\ndtype\n", _short_string(b"u1"), _int(0), _int(1), b"\x87R(", _int(3),
            _short_string(b"|"), b"NNN", b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff", _int(0), b"tb",
            b"\x89", _short_string(data.tobytes()), b"tb"]
    out += [_short_string(b"filenames"), b"](",
            *[_short_string(f"img_{i}.png".encode()) for i in range(n)], b"e", b"u."]
    return b"".join(out)


def write_cifar(folder: Path, kind: str, n_per_batch: int = 6, seed: int = 0) -> dict:
    """A tiny cifar10/ folder in the python (`py`) or binary (`bin`) layout."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    sub = folder / ("cifar-10-batches-py" if kind == "py" else "cifar-10-batches-bin")
    sub.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names:
        images = rng.integers(0, 256, size=(n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch)
        if kind == "py":
            (sub / name).write_bytes(cifar_python_pickle(images, labels))
        else:
            records = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(n_per_batch, -1)], axis=1)
            (sub / f"{name}.bin").write_bytes(records.tobytes())
        written[name] = (images, labels)
    return written
