"""Checkpoints in the safetensors format: arrays plus JSON metadata, and no pickle anywhere.

A checkpoint is one ``.safetensors`` file: an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the raw little-endian bytes. Loading one
never executes code, unlike ``torch.load`` on a pickle.

- :func:`save` writes atomically (temp file in the same directory, fsync, ``os.replace``, fsync of
  the directory), so a crash or an exception mid-save leaves the previous checkpoint intact.
- :func:`load` validates the header itself before handing the file to ``safetensors``, so a
  truncated or foreign file gives a :class:`CheckpointError` that names the file and the problem.
- Metadata values are any JSON-serialisable objects. safetensors only stores ``dict[str, str]``,
  so each value is stored JSON-encoded under its key, next to two automatic keys:
  ``tinytorch.format_version`` and ``tinytorch.versions`` (the installed TinyTorch distributions).

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> save({"w": np.eye(2, dtype=np.float32)}, path, metadata={"epoch": 3, "config": {"d": 2}})
>>> state, meta = load(path)
>>> state["w"].dtype, meta["epoch"], meta["config"]
(dtype('float32'), 3, {'d': 2})
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

FORMAT_VERSION = 1
"""Version of the TinyTorch checkpoint layout written into ``tinytorch.format_version``."""

FORMAT_VERSION_KEY = "tinytorch.format_version"
VERSIONS_KEY = "tinytorch.versions"

_MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces

# safetensors dtype tag -> NumPy dtype (the tags NumPy can represent).
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
}
_SAVABLE_KINDS = {np.dtype(d).name for d in _DTYPES.values()}

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint file that is not a valid safetensors file, or a state that does not match.

    It is a ``ValueError``; the message names the file and what is wrong (truncated, foreign,
    missing or unexpected keys, shape mismatches).

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.safetensors"
    >>> _ = bad.write_bytes(b"not a checkpoint")
    >>> try:
    ...     load(bad)
    ... except CheckpointError as err:
    ...     print("CheckpointError")
    CheckpointError
    """


class DestinationError(ValueError):
    """A path that cannot receive a file: a directory, device, FIFO or socket, a parent that is a
    file or missing, or a directory that is not writable. The message names the path.

    >>> try:
    ...     check_destination("/dev/null", what="--out")
    ... except DestinationError as err:
    ...     print(err)
    --out /dev/null: is a character device, not a regular file; give the path of a file
    """


# ---------------------------------------------------------------------------------- nesting


def flatten_state(nested: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Flatten nested dicts into one level with ``sep``-joined keys.

    >>> flatten_state({"model": {"w": 1, "b": 2}, "step": 3})
    {'model.w': 1, 'model.b': 2, 'step': 3}
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, nested, "", sep)
    return flat


def _flatten_into(flat: dict[str, Any], mapping: Mapping[str, Any], prefix: str, sep: str) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str):
            where = f" under {prefix[: -len(sep)]!r}" if prefix else ""
            raise TypeError(
                f"state keys must be strings, got {type(key).__name__} key {key!r}{where}"
            )
        if isinstance(value, Mapping):
            _flatten_into(flat, value, prefix + key + sep, sep)
        else:
            _put(flat, prefix + key, value)


def _put(flat: dict[str, Any], key: str, value: Any) -> None:
    if key in flat:
        raise ValueError(f"flatten_state: key {key!r} occurs twice after flattening")
    flat[key] = value


def unflatten_state(flat: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Inverse of :func:`flatten_state`: split every key on ``sep`` into nested dicts.

    >>> unflatten_state({"model.w": 1, "model.b": 2, "step": 3})
    {'model': {'w': 1, 'b': 2}, 'step': 3}
    """
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if not isinstance(key, str):
            raise TypeError(f"state keys must be strings, got {type(key).__name__} key {key!r}")
        parts = key.split(sep)
        node = nested
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(
                    f"unflatten_state: key {key!r} needs {sep.join(parts[: depth + 1])!r} to be a "
                    "group, but it holds a value"
                )
            node = child
        if parts[-1] in node:
            raise ValueError(
                f"unflatten_state: key {key!r} is both a value and a group of other keys"
            )
        node[parts[-1]] = value
    return nested


# ---------------------------------------------------------------------------------- metadata


@lru_cache(maxsize=1)
def _installed_versions() -> str:
    """JSON of {distribution: version} for every installed tinytorch-* and tito-cli."""
    import importlib.metadata as md

    versions: dict[str, str] = {}
    for dist in md.distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata.get("Name") or "")).lower()
        if name.startswith("tinytorch-") or name == "tito-cli":
            versions[name] = dist.version
    return json.dumps(versions, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def _encode_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    encoded: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            raise TypeError(
                f"save: metadata keys must be strings, got {type(key).__name__} key {key!r}"
            )
        if key in (FORMAT_VERSION_KEY, VERSIONS_KEY):
            continue  # written fresh below: they describe this writer, not the file read earlier
        try:
            encoded[key] = json.dumps(value, default=_json_default, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"save: metadata[{key!r}] must be JSON-serialisable, "
                f"got {type(value).__name__}: {e}"
            ) from None
    encoded[FORMAT_VERSION_KEY] = str(FORMAT_VERSION)
    encoded[VERSIONS_KEY] = _installed_versions()
    return encoded


def _decode_metadata(raw: Mapping[str, str], path: Path | None = None) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value  # a safetensors file from elsewhere: plain strings stay strings
        except RecursionError:
            raise CheckpointError(
                f"{path if path is not None else 'checkpoint'}: metadata {key!r} is JSON nested too "
                "deeply to read (a corrupt or hostile file)"
            ) from None
    return decoded


# ---------------------------------------------------------------------------------- save


def _as_savable_array(key: str, value: Any) -> np.ndarray:
    data = getattr(value, "data", None)
    if not isinstance(value, np.ndarray) and isinstance(data, np.ndarray):
        value = data  # Tensor, Parameter
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"save: state[{key!r}] must be a NumPy array or a Tensor, got {type(value).__name__}"
        )
    if value.dtype.name not in _SAVABLE_KINDS:
        raise TypeError(
            f"save: state[{key!r}] has dtype {value.dtype}, which safetensors cannot store "
            f"(numeric and bool dtypes only: {', '.join(sorted(_SAVABLE_KINDS))})"
        )
    # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    array = value if value.flags.c_contiguous else value.copy(order="C")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)  # elsewhere: set and restore (briefly visible to other threads)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still done
        pass
    finally:
        os.close(fd)


_FILE_KINDS = [
    (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
]


def _kind_of(mode: int) -> str:
    for test, kind in _FILE_KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def check_destination(path: PathLike, what: str = "destination", create_parents: bool = True) -> Path:
    """Check that a file can be written at ``path`` without harming what is there; the real path.

    Call it before long work (training) so a bad ``--out`` fails at once, not after an epoch.
    :func:`save` and :func:`write_atomic` call it too. Nothing is created.

    - An existing ``path`` must be a regular file: a directory, device (``/dev/null``), FIFO or
      socket is refused, because the atomic rename would replace it with a regular file.
    - A symlink is followed: its target is checked and returned, so the file it points to is
      replaced and the link itself stays.
    - The parent directory must exist (or, with ``create_parents``, its nearest existing ancestor
      must be a directory) and be writable.

    Args:
        path: the file to write.
        what: how the caller names the path in messages, e.g. ``"--out"`` or ``"checkpoint"``.
        create_parents: accept missing parent directories (the writer will create them);
            False refuses them.

    Returns:
        The path to write: ``path`` itself, or the target of a symlink.

    Raises:
        DestinationError: the message starts with ``what`` and ``path`` and says what is wrong.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_destination(folder / "runs" / "model.safetensors") == folder / "runs" / "model.safetensors"
    True
    >>> try:
    ...     check_destination(folder, what="--out")
    ... except DestinationError as err:
    ...     print(str(err).split(": ")[1])
    is a directory, not a regular file; give the path of a file
    """
    original = Path(path)
    label = f"{what} {original}"
    target, via = original, ""
    if original.is_symlink():
        target = Path(os.path.realpath(original))
        via = f" (the symlink points to {target})"
    try:
        mode: int | None = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as e:
        raise DestinationError(f"{label}: cannot be checked{via} ({e.strerror or e})") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise DestinationError(
            f"{label}: is {_kind_of(mode)}, not a regular file{via}; give the path of a file"
        )
    parent = target.parent
    ancestor = parent
    while not os.path.exists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not os.path.isdir(ancestor):
        raise DestinationError(f"{label}: {ancestor} is a file, not a directory{via}")
    if ancestor != parent and not create_parents:
        raise DestinationError(f"{label}: the directory {parent} does not exist{via}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DestinationError(f"{label}: {ancestor} is not writable{via}")
    return target


_STALE_LEGACY_SECONDS = 3600


def _temp_prefix(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a pid we cannot ask about: keep its file
    return True


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Remove temp files an earlier, killed writer of ``directory/name`` left behind.

    Only names this module creates are touched: ``.<name>.tmp-<pid>-<8 chars>`` whose process is
    gone, and ``.<name>.<8 chars>.tmp`` (the previous naming, without a pid) older than an hour.
    """
    if os.name == "nt":  # os.kill(pid, 0) terminates the process on Windows
        return
    current = re.compile(rf"\.{re.escape(name)}\.tmp-(\d+)-[a-z0-9_]{{8}}")
    legacy = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = current.fullmatch(entry.name)
        if match is None and not legacy.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                continue
            if match is not None:
                pid = int(match.group(1))
                if pid == os.getpid() or _process_alive(pid):
                    continue
            elif now - info.st_mtime < _STALE_LEGACY_SECONDS:
                continue
            os.unlink(entry.path)
        except OSError:
            pass  # another writer removed it first, or we may not: not our business


def _write_error(label: str, error: OSError) -> OSError:
    reason = error.strerror or str(error)
    wrapped = type(error)(f"{label}: could not write it ({reason}); the previous file, if any, "
                          "is unchanged")
    wrapped.errno = error.errno
    return wrapped


def write_atomic(path: PathLike, payload: bytes, what: str = "file") -> Path:
    """Write ``payload`` to ``path`` so that ``path`` is either the old file or the new one.

    The bytes go to a temp file ``.<name>.tmp-<pid>-<random>`` in the same directory, which is
    fsynced and renamed over ``path``; the directory is fsynced too. Temp files that killed
    writers of the same ``path`` left behind are removed first. Errors (disk full, read-only
    directory, ...) name ``path``; the previous file is intact and the temp file removed.

    Args:
        path: the file to write (checked by :func:`check_destination`; a symlink's target is
            written); missing parent directories are created.
        payload: the bytes.
        what: how ``path`` is named in error messages.

    Returns:
        The path written (the target if ``path`` is a symlink).

    Raises:
        DestinationError: ``path`` is not a regular file or its directory cannot hold one.
        OSError: writing failed; the message names ``path``.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.json"
    >>> write_atomic(path, b'{"a": 1}') == path, path.read_bytes()
    (True, b'{"a": 1}')
    """
    label = f"{what} {path}"
    target = check_destination(path, what)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(label, e) from e
    _remove_stale_temps(directory, target.name)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=_temp_prefix(target.name), suffix="", delete=False
        ) as f:
            tmp_name = f.name
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_directory(directory)
    except OSError as e:
        raise _write_error(label, e) from e
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target


def save(
    state: Mapping[str, Any], path: PathLike, metadata: Mapping[str, Any] | None = None
) -> None:
    """Save arrays (and JSON metadata) to a safetensors file, atomically.

    Args:
        state: name -> ``np.ndarray`` or ``Tensor``. Nested dicts are flattened with ``"."``
            (see :func:`flatten_state`); :func:`load` returns the flat form.
        path: the file to write; parent directories are created. It must be a regular file or
            absent (see :func:`check_destination`; a symlink's target is written).
        metadata: JSON-serialisable values (config, epoch, optimizer hyper-parameters...).
            Tuples come back as lists. Keys ``tinytorch.format_version`` and
            ``tinytorch.versions`` are always written by this function.

    Raises:
        TypeError: a non-string key, a value that is not an array, an array with a dtype
            safetensors cannot store (object, str, ...), or metadata that is not JSON-serialisable.
        DestinationError: ``path`` is a directory, device or FIFO, or its directory is a file or
            not writable.
        OSError: writing failed (disk full, ...); the message names ``path``, the previous file
            is unchanged and no temp file is left.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> save({"w": np.ones((2, 2), dtype=np.float32)}, path, metadata={"epoch": 3})
    >>> state, meta = load(path)
    >>> state["w"].shape, meta["epoch"]
    ((2, 2), 3)
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save: state must be a dict of arrays, got {type(state).__name__}")
    check_destination(path, "checkpoint")  # before the work of serialising
    flat = flatten_state(state)
    arrays: dict[str, np.ndarray] = {}
    for key, value in flat.items():
        if key == "__metadata__":
            raise ValueError("save: '__metadata__' is reserved by safetensors and cannot be a key")
        arrays[key] = _as_savable_array(key, value)
    header_metadata = _encode_metadata(metadata)

    import safetensors.numpy

    payload = safetensors.numpy.save(arrays, metadata=header_metadata)
    write_atomic(path, payload, "checkpoint")


# ---------------------------------------------------------------------------------- load


@dataclass
class _Header:
    tensors: dict[str, tuple[np.dtype, tuple[int, ...], int, int]]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def _fail(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}")


def _open_checked(path: PathLike):
    path = Path(path)
    try:
        return path, open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise FileNotFoundError(2, "checkpoint file not found", str(path)) from None


def _read_header(path: Path, f) -> _Header:
    """Parse and validate the header of an open safetensors file."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise _fail(path, "not a safetensors file: the file is empty (0 bytes)")
    if size < 8:
        raise _fail(
            path, f"not a safetensors file: {size} bytes is too short for the 8-byte header length"
        )
    n = int.from_bytes(f.read(8), "little")
    if n > size - 8:
        raise _fail(
            path,
            f"not a safetensors file (or truncated): header length {n} exceeds file size {size}",
        )
    if n > _MAX_HEADER_BYTES:
        raise _fail(path, f"not a safetensors file: header length {n} exceeds the 100 MB limit")
    raw = f.read(n)
    if not raw.lstrip().startswith(b"{"):
        raise _fail(path, "not a safetensors file: the header is not a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"not a safetensors file: the header is not valid JSON ({e})") from None
    except RecursionError:
        raise _fail(path, "corrupt header: its JSON is nested too deeply to read") from None
    if not isinstance(header, dict):
        raise _fail(path, "not a safetensors file: the header is not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _fail(path, "corrupt header: __metadata__ must map strings to strings")

    data_size = size - 8 - n
    tensors: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise _fail(path, f"corrupt header: entry for tensor {name!r} is not an object")
        tag, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if tag not in _DTYPES:
            raise _fail(
                path,
                f"tensor {name!r} has dtype {tag!r}, which NumPy cannot load "
                f"(supported: {', '.join(_DTYPES)})",
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _fail(path, f"corrupt header: tensor {name!r} has invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise _fail(
                path, f"corrupt header: tensor {name!r} has invalid data_offsets {offsets!r}"
            )
        begin, end = offsets
        dtype = _DTYPES[tag]
        expected = math.prod(shape) * dtype.itemsize
        if end - begin != expected:
            raise _fail(
                path,
                f"corrupt header: tensor {name!r} of shape {tuple(shape)} and dtype {tag} needs "
                f"{expected} bytes, but its data_offsets span {end - begin}",
            )
        if end > data_size:
            raise _fail(
                path,
                f"truncated file: tensor {name!r} needs bytes {begin}..{end} of the data section, "
                f"but only {data_size} are present (file size {size})",
            )
        tensors[name] = (dtype, tuple(shape), begin, end)

    position = 0
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: kv[1][2:]):
        if begin != position:
            raise _fail(
                path,
                f"corrupt header: tensor {name!r} starts at byte {begin} of the data section, "
                f"expected {position} (tensors overlap or leave a gap)",
            )
        position = end
    if position != data_size:
        raise _fail(
            path,
            f"corrupt file: {data_size - position} bytes after the last tensor's data "
            f"(the data section should be {position} bytes)",
        )
    return _Header(tensors, metadata, 8 + n, size)


def _check_format_version(path: Path, metadata: Mapping[str, Any]) -> None:
    version = metadata.get(FORMAT_VERSION_KEY)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise _fail(
            path,
            f"written with checkpoint format version {version}, but this TinyTorch reads "
            f"version {FORMAT_VERSION} and below; upgrade tinytorch-core",
        )


def load(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a safetensors file written by :func:`save` (or any safetensors file).

    Returns:
        ``(state, metadata)``: name -> ``np.ndarray`` (writable, in the saved dtype), and the
        metadata with JSON-decoded values.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated, not a safetensors file, or corrupt; the message
            names the file and what is wrong.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.safetensors"
    >>> save({"layer": {"bias": np.zeros(3, dtype=np.float32)}}, path)
    >>> sorted(load(path)[0])
    ['layer.bias']
    """
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
        metadata = _decode_metadata(header.metadata, path)
        _check_format_version(path, metadata)
        f.seek(0)
        payload = f.read()
    if len(payload) != header.file_size:
        raise _fail(path, "the file changed size while it was being read")

    import safetensors.numpy

    try:
        loaded = safetensors.numpy.load(payload)
    except Exception as e:  # the header was checked above, so this is unexpected corruption
        raise _fail(path, f"corrupt safetensors file: {e}") from e
    state: dict[str, np.ndarray] = {}
    for name in header.tensors:  # header order, not safetensors' alphabetical order
        array = loaded[name]
        state[name] = array if array.flags.writeable else array.copy()
    return state, metadata


def load_metadata(path: PathLike) -> dict[str, Any]:
    """Read only the header of a checkpoint and return its JSON-decoded metadata.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
    >>> save({"w": np.zeros(1, dtype=np.float32)}, path, metadata={"config": {"width": 8}})
    >>> load_metadata(path)["config"]
    {'width': 8}
    """
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
    return _decode_metadata(header.metadata, path)


def tensor_shapes(path: PathLike) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a checkpoint, read from the header alone.

    Use it to check a stored config against the stored weights before building a model from the
    config (an edited ``max_seq_len`` must not allocate gigabytes before the mismatch is found).

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.safetensors"
    >>> save({"wte": {"weight": np.zeros((5, 2), dtype=np.float32)}}, path)
    >>> tensor_shapes(path)
    {'wte.weight': (5, 2)}
    """
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
    return {name: shape for name, (_, shape, _, _) in header.tensors.items()}


_MISSING: Any = object()
_TYPE_NAMES = {dict: "a dict", list: "a list", str: "a str", int: "an int", float: "a float",
               bool: "a bool", type(None): "null"}


def _type_name(t: type) -> str:
    return _TYPE_NAMES.get(t, f"a {t.__name__}")


def _matches(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in expected:
        return False  # JSON true is not a number
    if float in expected and isinstance(value, int):
        return True  # JSON writes 2.0 as 2.0, but a hand-written 2 is the same number
    return isinstance(value, expected)


def require(
    metadata: Mapping[str, Any],
    key: str,
    expected: type | tuple[type, ...],
    path: PathLike,
    default: Any = _MISSING,
    what: str = "checkpoint metadata",
) -> Any:
    """``metadata[key]``, checked to be of type ``expected``; else an error naming the file.

    A key that is not in ``metadata`` as written may be a dotted path into nested dicts
    (``"history.loss"``). ``bool`` never passes for ``int`` or ``float``; an ``int`` passes for
    ``float``.

    Args:
        metadata: the metadata, as :func:`load` or :func:`load_metadata` returns it.
        key: the key (or dotted path).
        expected: a type or a tuple of types, e.g. ``dict`` or ``(int, float)``.
        path: the file the metadata came from, named in the error.
        default: returned when the key is missing; without it a missing key is an error.
        what: how the metadata is named in the message.

    Returns:
        The value.

    Raises:
        CheckpointError: ``"<path>: checkpoint metadata 'optimizer' is missing (expected a
            dict)"`` or ``"... is a str ('adam'), expected a dict"``.

    >>> require({"epoch": 3}, "epoch", int, "ckpt.safetensors")
    3
    >>> try:
    ...     require({"epoch": "3"}, "epoch", int, "ckpt.safetensors")
    ... except CheckpointError as err:
    ...     print(err)
    ckpt.safetensors: checkpoint metadata 'epoch' is a str ('3'), expected an int
    """
    types = expected if isinstance(expected, tuple) else (expected,)
    wanted = " or ".join(_type_name(t) for t in types)
    value: Any = metadata
    if isinstance(metadata, Mapping) and key in metadata:
        value = metadata[key]
    else:
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                if default is not _MISSING:
                    return default
                raise CheckpointError(f"{path}: {what} {key!r} is missing (expected {wanted})")
            value = value[part]
    if not _matches(value, types):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise CheckpointError(
            f"{path}: {what} {key!r} is {_type_name(type(value))} ({shown}), expected {wanted}"
        )
    return value


class TensorInfo(NamedTuple):
    """Name, shape and dtype (a NumPy dtype name) of one tensor in a checkpoint.

    >>> TensorInfo("w", (2, 3), "float32").shape
    (2, 3)
    """
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class CheckpointInfo:
    """What :func:`inspect` reports about a checkpoint, without loading its arrays.

    Attributes:
        path: the file.
        tensors: one ``TensorInfo`` per tensor, in natural order (``layers.2`` before ``layers.10``).
        metadata: the JSON-decoded metadata.
        num_parameters: total number of elements over all tensors.
        file_size: bytes on disk.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> save({"w": np.zeros((2, 3), dtype=np.float32)}, path)
    >>> info = inspect(path)
    >>> info.tensors[0], info.num_parameters
    (TensorInfo(name='w', shape=(2, 3), dtype='float32'), 6)
    """

    path: str
    tensors: list[TensorInfo]
    metadata: dict[str, Any] = field(default_factory=dict)
    num_parameters: int = 0
    file_size: int = 0

    @property
    def nbytes(self) -> int:
        return sum(math.prod(t.shape) * np.dtype(t.dtype).itemsize for t in self.tensors)


def _natural_key(name: str) -> list:
    """Sort "layers.2" before "layers.10".

    The odd parts of the split are exactly the runs ``\\d+`` matched (decimal digits, which
    ``int`` reads); ``str.isdigit`` would also accept "²", which ``int`` refuses.
    """
    parts = re.split(r"(\d+)", name)
    return [(0, int(p), p) if i % 2 else (1, 0, p) for i, p in enumerate(parts)]


def inspect(path: PathLike) -> CheckpointInfo:
    """Names, shapes and dtypes of a checkpoint's tensors, its metadata and parameter count.

    Only the header is read, so this is instant even for a large checkpoint (``tito core summary``).

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "i.safetensors"
    >>> save({"w": np.zeros((4, 5), dtype=np.float32)}, path)
    >>> inspect(path).num_parameters
    20
    """
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
    tensors = [
        TensorInfo(name, shape, dtype.name)
        for name, (dtype, shape, _, _) in sorted(
            header.tensors.items(), key=lambda kv: _natural_key(kv[0])
        )
    ]
    return CheckpointInfo(
        path=str(path),
        tensors=tensors,
        metadata=_decode_metadata(header.metadata, path),
        num_parameters=sum(math.prod(t.shape) for t in tensors),
        file_size=header.file_size,
    )


# ---------------------------------------------------------------------------------- checking


class StateCheck(NamedTuple):
    """Keys that did not match in :func:`check_state` (empty lists when everything matched).

    >>> import numpy as np
    >>> check_state({"w": (2,)}, {"w": np.zeros(2), "extra": np.zeros(1)}, strict=False)
    StateCheck(missing=[], unexpected=['extra'])
    """

    missing: list[str]
    unexpected: list[str]


def _shape_of(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return tuple(int(d) for d in shape)
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    if isinstance(value, Iterable):
        return tuple(int(d) for d in value)
    raise TypeError(f"check_state: expected a shape or an array, got {type(value).__name__}")


def check_state(
    expected: Mapping[str, Any],
    loaded: Mapping[str, Any],
    strict: bool = True,
    source: str | None = None,
) -> StateCheck:
    """Compare a loaded state with the names and shapes a model expects.

    Args:
        expected: name -> shape (tuple) or anything with ``.shape`` (array, Tensor, Parameter).
        loaded: name -> array (or Tensor) as returned by :func:`load`.
        strict: when False, missing and unexpected keys are reported in the result instead of
            raising; shape mismatches always raise.
        source: what ``loaded`` came from (a path), named in the error.

    Raises:
        CheckpointError: listing every missing key, unexpected key and shape mismatch (with the
            expected and actual shapes).

    >>> import numpy as np
    >>> try:
    ...     check_state({"w": (2, 3)}, {"w": np.zeros((3, 2))})
    ... except CheckpointError as err:
    ...     print("shape mismatch")
    shape mismatch
    """
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    mismatched = []
    for key in expected:
        if key in loaded:
            want, got = _shape_of(expected[key]), _shape_of(loaded[key])
            if want != got:
                mismatched.append(f"  {key!r}: expected shape {want}, got {got}")
    problems = []
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): " + ", ".join(map(repr, missing)))
    if strict and unexpected:
        problems.append(
            f"unexpected keys ({len(unexpected)}): " + ", ".join(map(repr, unexpected))
        )
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}):\n" + "\n".join(mismatched))
    if problems:
        origin = f" from {source}" if source else ""
        raise CheckpointError(f"state{origin} does not match the model:\n" + "\n".join(problems))
    return StateCheck(missing, unexpected)


__all__ = [
    "CheckpointError", "CheckpointInfo", "TensorInfo", "StateCheck", "save", "load",
    "load_metadata", "inspect", "check_state", "flatten_state", "unflatten_state",
    "FORMAT_VERSION", "DestinationError", "check_destination", "write_atomic", "require",
    "tensor_shapes",
]
