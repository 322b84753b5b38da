"""Image data sets read from their original files: `MNIST`, `FashionMNIST` (IDX gzip), `CIFAR10`.

Files live under the data root (`tinytorch.core.datafiles.data_root`: ``root`` if given, else
``$TINYTORCH_DATA``, else the user cache folder); each data set has its own folder
(``fashion-mnist/``, ``mnist/``, ``cifar10/``). ``tito data download NAME`` (or ``download=True``)
fetches missing files from the official locations with core's resumable, sha256-checked
`download`, which renames a file into place only once it verifies. Without the files, the error
says which files are expected where and prints the download command.

Formats:

- IDX (MNIST, Fashion-MNIST): a big-endian header (magic ``0x0000 08 0D``: unsigned bytes, D
  dimensions; then D sizes) followed by the raw bytes; gzip-compressed.
- CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
- CIFAR-10 python batches: pickled dicts. They are never unpickled: the pickle opcodes are read
  with ``pickletools`` and must describe exactly what those files contain (a dict holding a NumPy
  uint8 array and a list of ints), whose bytes are then taken as they are; a malicious file can
  neither run code nor make NumPy read memory.

A dataset returns float32 images in [0, 1] with shape (C, H, W) and int64 labels; batches are
fetched with one vectorised index (``__getitems__``), which the core ``DataLoader`` uses.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core.checks import is_int
from tinytorch.core.data import Dataset
from tinytorch.core.datafiles import (
    DatasetFiles,
    MissingDataError,
    RemoteFile,
    data_root,
    download,
    sha256_of,
    verify,
)

_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")

# Fashion-MNIST: the gzip files' checksums are those of the copy in ../shared/data (Debian's
# dataset-fashion-mnist, see its SOURCE.md); Zalando's originals have other gzip wrappers around
# the same IDX bytes, so a download is verified by the decompressed checksum.
FASHION_MNIST_FILES = {
    "train-images": RemoteFile(
        "train-images-idx3-ubyte.gz", (_FASHION_URL + "train-images-idx3-ubyte.gz",),
        ("b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",), 26421856,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels": RemoteFile(
        "train-labels-idx1-ubyte.gz", (_FASHION_URL + "train-labels-idx1-ubyte.gz",),
        ("0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",), 29491,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test-images": RemoteFile(
        "t10k-images-idx3-ubyte.gz", (_FASHION_URL + "t10k-images-idx3-ubyte.gz",),
        ("cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",), 4422079,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test-labels": RemoteFile(
        "t10k-labels-idx1-ubyte.gz", (_FASHION_URL + "t10k-labels-idx1-ubyte.gz",),
        ("8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",), 5125,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

MNIST_FILES = {
    key: RemoteFile(name, tuple(u + name for u in _MNIST_URLS), (sha,), size)
    for key, name, sha, size in [
        ("train-images", "train-images-idx3-ubyte.gz",
         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        ("train-labels", "train-labels-idx1-ubyte.gz",
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        ("test-images", "t10k-images-idx3-ubyte.gz",
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        ("test-labels", "t10k-labels-idx1-ubyte.gz",
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    ]
}

CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    ("6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",), 170498071)
CIFAR10_RECORD = 1 + 3 * 32 * 32  # label byte + R, G, B planes
CIFAR10_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST_BATCHES = ["test_batch"]


def _missing_error(dataset: str, folder: Path, names: Sequence[str], hint: str = "") -> MissingDataError:
    return MissingDataError(DATASET_FILES[dataset], folder, list(names),
                            f"{hint} (or pass download=True)")


# ------------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike, spec: RemoteFile | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed if it ends in .gz) into a uint8 array.

    Args:
        path: an IDX file, e.g. ``t10k-images-idx3-ubyte.gz``.
        spec: the file's ``RemoteFile``, to quote its expected size and checksum in errors.

    Returns:
        A uint8 array shaped as the header says, e.g. (N, 28, 28) images or (N,) labels.

    Raises:
        ValueError: a bad magic number, or a truncated or corrupted file; the message names
            the path (and the expected size/checksum when ``spec`` is known).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_idx(Path(tmp) / "images.gz", np.zeros((5, 28, 28), dtype=np.uint8))
    ...     read_idx(Path(tmp) / "images.gz").shape
    (5, 28, 28)
    """
    path = Path(path)
    expected = f"; expected {spec.describe()}" if spec is not None else ""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            # Never more than the header announces, plus one byte to detect trailing data: a
            # small .gz that inflates to gigabytes is refused after reading what was promised.
            head = _read_up_to(f, 4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise ValueError(
                    f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'}){expected}")
            if head[2] != 0x08:
                raise ValueError(f"{path}: IDX element type 0x{head[2]:02x} is not unsigned bytes (0x08)")
            ndim = head[3]
            sizes = _read_up_to(f, 4 * ndim)
            header = 4 + 4 * ndim
            if len(sizes) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header ({4 + len(sizes)} bytes){expected}")
            dims = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
            count = math.prod(dims)
            limit = _inflated_limit(path, opener is gzip.open)
            if count > limit:  # more than the file could possibly hold: no need to read it
                raise ValueError(
                    f"{path}: truncated: the IDX header says {'x'.join(map(str, dims))} "
                    f"({header + count:,} bytes), more than this {path.stat().st_size:,}-byte file "
                    f"can hold{expected}")
            body = np.empty(count + 1, dtype=np.uint8)
            got = _read_into(f, body)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: corrupted or truncated gzip file ({err}){expected}") from None
    if got != count:
        what = "truncated" if got < count else "has trailing bytes"
        held = f"{header + got:,}" if got < count else f"more than {header + count:,}"
        raise ValueError(
            f"{path}: {what}: the IDX header says {'x'.join(map(str, dims))} ({header + count:,} "
            f"bytes), the file holds {held}{expected}"
        )
    return body[:count].reshape(dims)


_MAX_DEFLATE_RATIO = 1100  # deflate never inflates more than 1032:1


def _inflated_limit(path: Path, compressed: bool) -> int:
    size = path.stat().st_size
    return size * _MAX_DEFLATE_RATIO + 1024 if compressed else size


def _read_up_to(f, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining > 0:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_into(f, buffer: np.ndarray, chunk: int = 1 << 20) -> int:
    """Fill ``buffer`` from ``f`` in chunks; the number of bytes read (less at end of file)."""
    view, filled = memoryview(buffer).cast("B"), 0
    while filled < len(view):
        n = f.readinto(view[filled:filled + chunk])
        if not n:
            break
        filled += n
    return filled


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as gzip IDX (the MNIST format); used by tests and tools.

    Args:
        path: the file to write (gzip-compressed whatever its name).
        array: any shape; converted to uint8.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_idx(Path(tmp) / "labels.gz", np.array([3, 1, 4], dtype=np.uint8))
    ...     read_idx(Path(tmp) / "labels.gz")
    array([3, 1, 4], dtype=uint8)
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


# ------------------------------------------------------------------------------- CIFAR-10 readers

# A CIFAR-10 python batch is a pickled dict. Unpickling runs whatever the file names, and even the
# NumPy constructors alone (ndarray with a negative offset, a dtype whose object flags are cleared
# by __setstate__) are enough to read process memory or crash. So the file is never unpickled: its
# opcodes are walked with pickletools.genops into inert Python values (globals and calls are only
# recorded, never looked up or run), and the result must have exactly the structure CIFAR-10's
# writers produce; the pixel bytes are then taken from it as they are.

_CIFAR_MAX_FILE_BYTES = 64 << 20  # a real batch is 31 MB; nothing legitimate is twice that
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
_CIFAR_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1",
    "TUPLE2", "TUPLE3", "SETITEM", "SETITEMS", "APPEND", "APPENDS", "PUT", "BINPUT", "LONG_BINPUT",
    "MEMOIZE", "GET", "BINGET", "LONG_BINGET", "BININT", "BININT1", "BININT2", "LONG1", "NONE",
    "NEWTRUE", "NEWFALSE", "BINFLOAT", "SHORT_BINSTRING", "BINSTRING", "SHORT_BINUNICODE",
    "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "GLOBAL",
    "STACK_GLOBAL", "REDUCE", "BUILD",
}
_U1_DTYPE_STATE = (3, "|", None, None, None, -1, -1, 0)  # np.dtype("u1").__reduce__()[2]


@dataclass(eq=False)
class _Global:
    module: str
    name: str


@dataclass(eq=False)
class _Call:
    func: Any
    args: tuple
    state: Any = None


class _Mark:
    pass


class _Refused(ValueError):
    pass


def _walk_pickle(payload: bytes) -> Any:
    """The value a pickle describes, built from inert parts: no global is imported, nothing runs."""
    import io as _io
    import pickletools

    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        for k in range(len(stack) - 1, -1, -1):
            if isinstance(stack[k], _Mark):
                items = stack[k + 1:]
                del stack[k:]
                return items
        raise ValueError("MARK missing")

    for op, arg, pos in pickletools.genops(_io.BytesIO(payload)):
        name = op.name
        if name not in _CIFAR_OPCODES:
            raise ValueError(f"opcode {name} at byte {pos} does not occur in CIFAR-10 batches")
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise ValueError("the pickle does not end with exactly one value")
            return stack[0]
        if name == "MARK":
            stack.append(_Mark())
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise ValueError(f"{name} at byte {pos} on a short stack")
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = stack[-2:] if name == "SETITEM" else pop_mark()
            if name == "SETITEM":
                del stack[-2:]
            target = stack[-1] if stack else None
            if not isinstance(target, dict) or len(items) % 2:
                raise ValueError(f"{name} at byte {pos} without a dict and key/value pairs")
            for key, value in zip(items[::2], items[1::2]):
                if not isinstance(key, str):
                    raise ValueError(f"a dict key of type {type(key).__name__} at byte {pos}")
                target[key] = value
        elif name in ("APPEND", "APPENDS"):
            items = [stack.pop()] if name == "APPEND" else pop_mark()
            if not stack or not isinstance(stack[-1], list):
                raise ValueError(f"{name} at byte {pos} without a list")
            stack[-1].extend(items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in memo:
                raise ValueError(f"{name} {arg} at byte {pos} refers to nothing")
            stack.append(memo[int(arg)])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                module, attr = stack[-2], stack[-1]
                del stack[-2:]
            if (module, attr) not in _CIFAR_GLOBALS:
                raise _Refused(f"refusing to load global {module}.{attr}: CIFAR-10 batches "
                                   "contain only NumPy arrays")
            stack.append(_Global(module, attr))
        elif name == "REDUCE":
            args = stack.pop()
            if not isinstance(stack[-1], _Global) or not isinstance(args, tuple):
                raise ValueError(f"REDUCE at byte {pos} does not call a global with a tuple")
            stack[-1] = _Call(stack[-1], args)
        elif name == "BUILD":
            state = stack.pop()
            if not isinstance(stack[-1], _Call) or stack[-1].state is not None:
                raise ValueError(f"BUILD at byte {pos} on something other than a fresh object")
            stack[-1].state = state
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        else:  # ints, floats, str (Python 2 strings come as latin-1 str), bytes: plain values
            stack.append(arg)
    raise ValueError("the pickle has no STOP opcode")


def _as_bytes(value: Any) -> bytes | None:
    """Pixel bytes as a pickle stores them: bytes, a Python 2 str (latin-1), or Python 3's
    protocol-2 spelling ``_codecs.encode(str, "latin1")``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("latin1")
        except UnicodeEncodeError:
            return None
    if (isinstance(value, _Call) and value.state is None and isinstance(value.func, _Global)
            and (value.func.module, value.func.name) == ("_codecs", "encode")
            and len(value.args) == 2 and isinstance(value.args[0], str) and value.args[1] == "latin1"):
        return _as_bytes(value.args[0])
    return None


def _is_global(value: Any, *names: str) -> bool:
    return isinstance(value, _Global) and value.name in names


def _cifar_pixels(data: Any) -> np.ndarray:
    """The (N, 3072) uint8 array that ``data`` (as walked by _walk_pickle) describes, or ValueError.

    Only NumPy's own pickle of a C-ordered uint8 array is accepted:
    ``_reconstruct(ndarray, (0,), b"b")`` with state ``(1, (N, 3072), dtype("u1"), False, bytes)``.
    """
    want = "'data' must be a uint8 array of shape (N, 3072), pickled by NumPy"
    if not (isinstance(data, _Call) and _is_global(data.func, "_reconstruct") and len(data.args) == 3
            and _is_global(data.args[0], "ndarray") and data.args[1] == (0,)
            and _as_bytes(data.args[2]) == b"b"):
        raise ValueError(f"{want}; got {_describe(data)}")
    state = data.state
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
        raise ValueError(f"{want}; its array state is {_describe(state)}")
    _, shape, dtype, fortran, raw = state
    if not (isinstance(shape, tuple) and len(shape) == 2
            and all(is_int(d) and d >= 0 for d in shape)
            and shape[1] == 3072):
        raise ValueError(f"{want}; got shape {shape!r}")
    if not (isinstance(dtype, _Call) and _is_global(dtype.func, "dtype") and len(dtype.args) == 3
            and dtype.args[0] == "u1" and dtype.args[1] in (0, False) and dtype.args[2] in (1, True)
            and dtype.state == _U1_DTYPE_STATE):
        raise ValueError(f"{want}; its dtype is not uint8 ({_describe(dtype)})")
    if fortran not in (0, False):
        raise ValueError(f"{want}; got a Fortran-ordered array")
    pixels = _as_bytes(raw)
    if pixels is None or len(pixels) != shape[0] * 3072:
        size = "no bytes" if pixels is None else f"{len(pixels):,} bytes"
        raise ValueError(f"{want}; shape {shape} needs {shape[0] * 3072:,} bytes, the file holds {size}")
    return np.frombuffer(pixels, dtype=np.uint8).reshape(shape).copy()


def _cifar_labels(labels: Any, n: int) -> np.ndarray:
    if not isinstance(labels, list):
        raise ValueError(f"'labels' must be a list of ints in 0..9, got {_describe(labels)}")
    for i, label in enumerate(labels):
        if not is_int(label):
            raise ValueError(f"'labels' must be a list of ints in 0..9, but labels[{i}] is a "
                             f"{type(label).__name__} ({_describe(label)})")
        if not 0 <= label <= 9:
            raise ValueError(f"'labels' must be ints in 0..9, but labels[{i}] is {label}")
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    return np.asarray(labels, dtype=np.int64).reshape(n)


def _describe(value: Any) -> str:
    if isinstance(value, _Call):
        return f"a call of {value.func.module}.{value.func.name}" if isinstance(value.func, _Global) else "a call"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_cifar_python_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from a CIFAR-10 python batch file.

    The file is a pickled dict, but it is never unpickled: its opcodes are read with
    ``pickletools`` into inert values and must have exactly the structure CIFAR-10 batches have
    (a dict whose ``data`` is NumPy's pickle of a uint8 (N, 3072) array and whose ``labels`` is a
    list of ints); the pixel bytes are then taken as they are. Nothing in the file can run code,
    read memory or crash the process.

    Args:
        path: a batch file such as ``cifar-10-batches-py/test_batch``.

    Returns:
        The images, (N, 3, 32, 32) uint8, and the labels, (N,) int64.

    Raises:
        ValueError: the file is not a CIFAR-10 python batch (names a global other than the NumPy
            array constructors, uses other opcodes, has non-int or nested labels, holds no
            images), or is corrupted or truncated; the message names the file.

    >>> import pickle, tempfile
    >>> batch = {"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [3, 5]}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    ...     images, labels = read_cifar_python_batch(Path(tmp) / "test_batch")
    >>> images.shape, labels
    ((2, 3, 32, 32), array([3, 5]))
    """
    path = Path(path)
    size = path.stat().st_size
    if size > _CIFAR_MAX_FILE_BYTES:
        raise ValueError(f"{path}: {size:,} bytes is too large for a CIFAR-10 python batch (31 MB)")
    payload = path.read_bytes()
    try:
        batch = _walk_pickle(payload)
    except _Refused as err:
        raise ValueError(f"{path}: {err}") from None
    except (ValueError, IndexError, TypeError) as err:
        raise ValueError(f"{path}: corrupted or truncated CIFAR-10 python batch ({err})") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 batch (expected a dict with 'data' and 'labels')")
    try:
        data = _cifar_pixels(batch["data"])
        labels = _cifar_labels(batch["labels"], len(data))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if len(data) == 0:
        raise ValueError(f"{path}: the batch holds no images")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_binary_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from a CIFAR-10 binary batch file.

    Args:
        path: a batch file such as ``cifar-10-batches-bin/test_batch.bin``: records of 1 label
            byte + 3072 pixel bytes (R, G, B planes of 32x32).

    Returns:
        The images, (N, 3, 32, 32) uint8, and the labels, (N,) int64.

    Raises:
        ValueError: the size is not a whole number of records, or a label is not in 0..9.

    >>> import tempfile
    >>> records = np.zeros((2, CIFAR10_RECORD), dtype=np.uint8)
    >>> records[:, 0] = [7, 2]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     records.tofile(Path(tmp) / "test_batch.bin")
    ...     images, labels = read_cifar_binary_batch(Path(tmp) / "test_batch.bin")
    >>> images.shape, labels
    ((2, 3, 32, 32), array([7, 2]))
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR10_RECORD:
        raise ValueError(
            f"{path}: truncated or corrupted CIFAR-10 binary batch: {raw.size:,} bytes is not a "
            f"multiple of the {CIFAR10_RECORD}-byte record (a full batch is 10,000 records = "
            f"{10000 * CIFAR10_RECORD:,} bytes)"
        )
    records = raw.reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"{path}: label byte {labels.max()} is not a CIFAR-10 class (0..9)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


# ------------------------------------------------------------------------------- datasets


class ImageDataset(Dataset):
    """Images (N, C, H, W) uint8 and labels (N,) int64 held in memory.

    ``ds[i]`` is (float32 (C, H, W) in [0, 1], int label); ``ds.__getitems__(idx)`` a batch
    (float32 (B, C, H, W), int64 (B,)) with one fancy index. ``transform`` (optional) maps a float
    batch to a batch, e.g. ``transforms.Normalize``.

    Args:
        data: uint8 images, (N, C, H, W), or (N, H, W) for one channel.
        targets: the N integer labels.
        transform: a batch transform ``t(x) -> x`` on float32 (B, C, H, W) arrays, or None.

    Attributes:
        data: uint8 images, (N, C, H, W).
        targets: int64 labels.
        classes: the class names, index = label.

    >>> ds = ImageDataset(np.full((4, 28, 28), 255, dtype=np.uint8), np.arange(4))
    >>> x, y = ds[1]
    >>> x.shape, x.dtype, y
    ((1, 28, 28), dtype('float32'), 1)
    >>> ds.__getitems__([0, 2])[0].shape
    (2, 1, 28, 28)
    """

    classes: list[str] = []
    name = "images"
    sources: list[Path] = []  # the files the data was read from, for error messages

    def __init__(self, data: np.ndarray, targets: np.ndarray, transform=None):
        if data.ndim == 3:
            data = data[:, None]
        if len(data) != len(targets):
            raise ValueError(f"{type(self).__name__}: {len(data)} images but {len(targets)} labels")
        self.data, self.targets, self.transform = data, np.asarray(targets, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.data)

    def _batch(self, index) -> np.ndarray:
        x = self.data[index].astype(np.float32) * np.float32(1 / 255)
        return self.transform(x) if self.transform is not None else x

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self._batch(np.asarray([index]))[0], int(self.targets[index])

    def __getitems__(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.intp)
        return self._batch(idx), self.targets[idx]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All images as float32 (N, C, H, W) in [0, 1] (untransformed) and the labels.

        >>> x, y = ImageDataset(np.zeros((3, 2, 2), dtype=np.uint8), [0, 1, 0]).arrays()
        >>> x.shape, x.dtype, y
        ((3, 1, 2, 2), dtype('float32'), array([0, 1, 0]))
        """
        return self.data.astype(np.float32) * np.float32(1 / 255), self.targets

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])

    def __repr__(self) -> str:
        split = {True: "train", False: "test"}.get(getattr(self, "train", None), "?")
        return f"{type(self).__name__}(split={split}, n={len(self)}, folder={getattr(self, 'folder', None)})"


def _describe_sources(dataset: ImageDataset) -> str:
    sources = getattr(dataset, "sources", None) or []
    if not sources:
        return f"the {type(dataset).__name__}"
    if len(sources) <= 2:
        return " and ".join(map(str, sources))
    return f"{sources[0]} and {len(sources) - 1} more files in {sources[0].parent}"


def check_train_test(train: ImageDataset, test: ImageDataset | None = None) -> None:
    """Check before training that the splits can be used together: both hold images, and the
    test images have the shape of the training images (found today only after an epoch).

    Args:
        train: the training split.
        test: the evaluation split, or None to check ``train`` alone.

    Raises:
        ValueError: a split is empty, or the image shapes differ; the message names the files
            each split was read from.

    >>> a = ImageDataset(np.zeros((2, 28, 28), dtype=np.uint8), [0, 1])
    >>> b = ImageDataset(np.zeros((2, 3, 32, 32), dtype=np.uint8), [0, 1])
    >>> check_train_test(a, a)
    >>> check_train_test(a, b)
    Traceback (most recent call last):
    ...
    ValueError: the training images ((1, 28, 28), from the ImageDataset) and the test images ((3, 32, 32), from the ImageDataset) differ in shape; use the train and test files of one data set
    """
    for split, ds in (("training", train), ("test", test)):
        if ds is not None and len(ds) == 0:
            raise ValueError(f"the {split} split holds no images (read from {_describe_sources(ds)})")
    if test is not None and tuple(train.image_shape) != tuple(test.image_shape):
        raise ValueError(
            f"the training images ({tuple(train.image_shape)}, from {_describe_sources(train)}) and the "
            f"test images ({tuple(test.image_shape)}, from {_describe_sources(test)}) differ in shape; "
            "use the train and test files of one data set"
        )


class MNIST(ImageDataset):
    """MNIST handwritten digits (60,000 train / 10,000 test, 1x28x28), from the IDX gzip files.

    Args:
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder); files are
            read from ``root/mnist/``.
        train: the training split (else the test split).
        download: fetch missing files (sha256-checked).
        transform: a batch transform applied to float images.

    Raises:
        FileNotFoundError: the files are missing and ``download`` is False; the message says
            which files are expected where.

    Shape: ``ds[i]`` is a float32 (1, 28, 28) image and an int label; a batch of B is
    (B, 1, 28, 28) and (B,).

    >>> ds = MNIST(train=False)  # doctest: +SKIP
    >>> ds[0][0].shape, len(ds)  # doctest: +SKIP
    ((1, 28, 28), 10000)

    Any folder with the four (here two) IDX files works, e.g. a tiny fake test split:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = Path(tmp) / "mnist"
    ...     folder.mkdir()
    ...     write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), dtype=np.uint8))
    ...     write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    ...     ds = MNIST(tmp, train=False)
    >>> len(ds), ds[0][0].shape, ds[3][1]
    (5, (1, 28, 28), 3)
    """

    folder_name = "mnist"
    display_name = "MNIST"
    files = MNIST_FILES
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
                 transform=None):
        self.root, self.train = data_root(root), train
        self.folder = self.root / self.folder_name
        split = "train" if train else "test"
        specs = [self.files[f"{split}-images"], self.files[f"{split}-labels"]]
        missing = [s for s in specs if not (self.folder / s.name).exists()]
        if missing and download:
            for spec in missing:
                download_file(spec, self.folder)
        elif missing:
            raise _missing_error(self.folder_name, self.folder, [s.name for s in specs])
        images = read_idx(self.folder / specs[0].name, specs[0])
        labels = read_idx(self.folder / specs[1].name, specs[1])
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(
                f"{self.folder / specs[0].name}: expected images (N, H, W) and labels (N,), got "
                f"{images.shape} and {labels.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{self.folder}: {specs[0].name} has {len(images)} images but {specs[1].name} "
                f"has {len(labels)} labels"
            )
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(f"{self.folder / specs[1].name}: label {labels.max()} is out of range 0..9")
        if len(images) == 0:
            raise ValueError(f"{self.folder / specs[0].name}: the file holds no images (0x{images.shape[1]}x"
                             f"{images.shape[2]}); a {split} split needs at least one")
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{self.folder / specs[0].name}: {self.display_name} images are 28x28, this "
                             f"file holds {images.shape[1]}x{images.shape[2]}")
        super().__init__(images, labels, transform)
        self.sources = [self.folder / s.name for s in specs]


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (60,000 train / 10,000 test, 1x28x28, 10 clothing classes).

    Same format and arguments as `MNIST`; files are read from ``root/fashion-mnist/``.

    Args:
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).
        train: the training split (else the test split).
        download: fetch missing files (checked against their decompressed sha256).
        transform: a batch transform applied to float images.

    Shape: ``ds[i]`` is a float32 (1, 28, 28) image and an int label in 0..9.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = Path(tmp) / "fashion-mnist"
    ...     folder.mkdir()
    ...     write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), dtype=np.uint8))
    ...     write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([9, 1, 0], dtype=np.uint8))
    ...     ds = FashionMNIST(tmp, train=False)
    >>> len(ds), ds.classes[ds[1][1]]
    (3, 'Trouser')
    """

    folder_name = "fashion-mnist"
    display_name = "Fashion-MNIST"
    files = FASHION_MNIST_FILES
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot"]


def download_file(spec: RemoteFile, folder: Path) -> Path:
    """Download one file (module-level so tests can replace the network).

    Args:
        spec: the file to fetch.
        folder: where to put it.

    Returns:
        The downloaded file's path (see `download`).

    >>> path = download_file(MNIST_FILES["test-labels"], data_root() / "mnist")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    't10k-labels-idx1-ubyte.gz'
    """
    return download(spec, folder)


def _safe_extract(archive: Path, folder: Path, prefix: str) -> None:
    """Extract the regular files under ``prefix/`` only; no links, no paths leaving ``folder``."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts or name.parts[0] != prefix:
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


class CIFAR10(ImageDataset):
    """CIFAR-10 (50,000 train / 10,000 test, 3x32x32, 10 classes).

    Reads ``root/cifar10/cifar-10-batches-bin/*.bin`` (the binary version) if present, else
    ``root/cifar10/cifar-10-batches-py/`` (the python version, read without unpickling).
    ``download=True`` fetches the python archive (sha256-checked) and extracts it.

    Args:
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder); files are
            read from ``root/cifar10/``.
        train: the training split (``data_batch_1`` .. ``data_batch_5``), else ``test_batch``.
        download: fetch and extract the python archive if the batches are missing.
        transform: a batch transform applied to float images.

    Shape: ``ds[i]`` is a float32 (3, 32, 32) image and an int label in 0..9.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = Path(tmp) / "cifar10" / "cifar-10-batches-bin"
    ...     folder.mkdir(parents=True)
    ...     records = np.zeros((4, CIFAR10_RECORD), dtype=np.uint8)
    ...     records[:, 0] = [0, 1, 2, 3]
    ...     records.tofile(folder / "test_batch.bin")
    ...     ds = CIFAR10(tmp, train=False)
    >>> len(ds), ds[0][0].shape, ds.classes[ds[3][1]]
    (4, (3, 32, 32), 'cat')
    """

    folder_name = "cifar10"
    display_name = "CIFAR-10"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
                 transform=None):
        self.root, self.train = data_root(root), train
        self.folder = self.root / self.folder_name
        names = CIFAR10_TRAIN_BATCHES if train else CIFAR10_TEST_BATCHES
        bin_dir, py_dir = self.folder / "cifar-10-batches-bin", self.folder / "cifar-10-batches-py"
        if all((bin_dir / f"{n}.bin").exists() for n in names):
            parts = [read_cifar_binary_batch(bin_dir / f"{n}.bin") for n in names]
            sources = [bin_dir / f"{n}.bin" for n in names]
        else:
            if not all((py_dir / n).exists() for n in names):
                if not download:
                    raise _missing_error(
                        self.folder_name, self.folder,
                        [f"cifar-10-batches-py/{{{','.join(names)}}}"],
                        f" (or the binary version in {bin_dir}/ as {names[0]}.bin, ...)")
                archive = download_file(CIFAR10_ARCHIVE, self.folder)
                _safe_extract(archive, self.folder, "cifar-10-batches-py")
            parts = [read_cifar_python_batch(py_dir / n) for n in names]
            sources = [py_dir / n for n in names]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        super().__init__(images, labels, transform)
        self.sources = sources


DATASETS: dict[str, type[ImageDataset]] = {"fashion-mnist": FashionMNIST, "mnist": MNIST, "cifar10": CIFAR10}


def _unpack_cifar10(folder: Path) -> None:
    _safe_extract(folder / CIFAR10_ARCHIVE.name, folder, "cifar-10-batches-py")


def _cifar10_ready(folder: Path) -> bool:
    names = CIFAR10_TRAIN_BATCHES + CIFAR10_TEST_BATCHES
    return (all((folder / "cifar-10-batches-bin" / f"{n}.bin").is_file() for n in names)
            or all((folder / "cifar-10-batches-py" / n).is_file() for n in names))


# What `tito data download NAME` fetches; registered in the `tinytorch.datasets` entry-point group.
FASHION_MNIST_DATA = DatasetFiles(
    "fashion-mnist", FashionMNIST.folder_name, tuple(FASHION_MNIST_FILES.values()),
    "Fashion-MNIST: 70,000 28x28 clothing images, 10 classes (30 MB)")
MNIST_DATA = DatasetFiles(
    "mnist", MNIST.folder_name, tuple(MNIST_FILES.values()),
    "MNIST: 70,000 28x28 handwritten digits (12 MB)")
CIFAR10_DATA = DatasetFiles(
    "cifar10", CIFAR10.folder_name, (CIFAR10_ARCHIVE,),
    "CIFAR-10: 60,000 32x32 colour images, 10 classes (170 MB archive, unpacked)",
    unpack=_unpack_cifar10, ready=_cifar10_ready)
DATASET_FILES = {d.name: d for d in (FASHION_MNIST_DATA, MNIST_DATA, CIFAR10_DATA)}


def get_dataset(name: str) -> type[ImageDataset]:
    """The dataset class registered as ``name`` (fashion-mnist, mnist, cifar10).

    Args:
        name: a key of ``DATASETS``.

    Returns:
        The dataset class (call it with ``root``, ``train``, ``download``, ``transform``).

    Raises:
        ValueError: ``name`` is not a registered data set.

    >>> get_dataset("cifar10").__name__
    'CIFAR10'
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


@dataclass
class FileStatus:
    """One file of a data set on disk, as `dataset_status` reports it.

    Args:
        name: the file name.
        path: its full path.
        status: ``verified``, ``unverified``, ``missing`` or ``corrupt``.
        detail: what was checked, or what was expected.
        size: its size in bytes (None if missing).

    >>> FileStatus("a.gz", "/data/mnist/a.gz", "missing", "expected 10 bytes").status
    'missing'
    """

    name: str
    path: str
    status: str  # verified | unverified | missing | corrupt
    detail: str
    size: int | None = None


@dataclass
class DatasetStatus:
    """The files of one data set on disk, as `dataset_status` reports them.

    Args:
        name: the data set (fashion-mnist, mnist, cifar10).
        folder: where its files are expected.
        files: one `FileStatus` per expected file.

    >>> status = DatasetStatus("mnist", "/data/mnist", [FileStatus("a.gz", "/data/mnist/a.gz",
    ...                                                            "verified", "sha256 matches")])
    >>> status.present, status.verified, sorted(status.to_dict())
    (True, True, ['files', 'folder', 'name', 'present', 'verified'])
    """

    name: str
    folder: str
    files: list[FileStatus] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return all(f.status != "missing" for f in self.files)

    @property
    def verified(self) -> bool:
        return all(f.status == "verified" for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "folder": self.folder, "present": self.present,
                "verified": self.verified, "files": [f.__dict__ for f in self.files]}


def dataset_status(name: str, root: str | os.PathLike | None = None, check: bool = True) -> DatasetStatus:
    """What of data set ``name`` is on disk, where, and whether each file checks out.

    Args:
        name: fashion-mnist, mnist or cifar10.
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).
        check: verify checksums (reads every file); False only looks for them.

    Returns:
        A `DatasetStatus`; ``.present``, ``.verified`` and ``.to_dict()`` summarise it.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     status = dataset_status("mnist", tmp)
    >>> status.present, [f.status for f in status.files]
    (False, ['missing', 'missing', 'missing', 'missing'])
    """
    cls = get_dataset(name)
    folder = data_root(root) / cls.folder_name
    result = DatasetStatus(name, str(folder))

    def add(path: Path, spec: RemoteFile | None) -> None:
        if not path.exists():
            status, detail = "missing", f"expected {spec.describe()}" if spec else "expected"
        elif spec is None or not check:
            status, detail = "unverified", "no published checksum for extracted files" if spec is None else "not checked"
        else:
            status, detail = verify(path, spec)
        size = path.stat().st_size if path.exists() else None
        result.files.append(FileStatus(path.name, str(path), status, detail, size))

    if cls is CIFAR10:
        bin_dir, py_dir = folder / "cifar-10-batches-bin", folder / "cifar-10-batches-py"
        names = CIFAR10_TRAIN_BATCHES + CIFAR10_TEST_BATCHES
        if all((bin_dir / f"{n}.bin").exists() for n in names):
            for n in names:
                p = bin_dir / f"{n}.bin"
                ok = p.stat().st_size == 10000 * CIFAR10_RECORD
                result.files.append(FileStatus(
                    p.name, str(p), "unverified" if ok else "corrupt",
                    "size matches 10,000 records" if ok else
                    f"expected {10000 * CIFAR10_RECORD:,} bytes, got {p.stat().st_size:,}", p.stat().st_size))
        else:
            archive = folder / CIFAR10_ARCHIVE.name
            if archive.exists():
                add(archive, CIFAR10_ARCHIVE)
            for n in names:
                add(py_dir / n, None)
    else:
        for spec in cls.files.values():
            add(folder / spec.name, spec)
    return result


__all__ = [
    "MNIST", "FashionMNIST", "CIFAR10", "ImageDataset", "data_root", "read_idx", "write_idx",
    "read_cifar_binary_batch", "read_cifar_python_batch", "dataset_status", "get_dataset", "DATASETS",
    "RemoteFile", "verify", "download", "sha256_of", "check_train_test", "MissingDataError",
    "FASHION_MNIST_DATA", "MNIST_DATA", "CIFAR10_DATA",
]
