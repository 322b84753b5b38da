"""Checkpoints in the safetensors format: arrays plus JSON metadata, and no pickle anywhere.

A checkpoint is one ``.safetensors`` file: an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the raw little-endian bytes. Loading one
never executes code, unlike ``torch.load`` on a pickle. This module reads and writes the format
itself (the header is validated before any data is read), so it also reads what other writers
(PyTorch through ``safetensors``, ``transformers``) produce:

- **Every dtype of the format** (:data:`SAFETENSORS_DTYPES`) is understood from the header alone
  by :func:`inspect` and :func:`tensor_shapes`: shape, dtype, bytes, parameter count.
- :func:`load` returns NumPy's own dtypes as they are (``F16`` as float16), widens ``BF16`` and
  the 8-bit floats (``F8_E4M3``, ``F8_E5M2``, their ``FNUZ`` variants, ``F8_E8M0``) to float32
  exactly, or hands their raw bits over (``bf16="raw"``, ``f8="raw"``). Each tensor is read
  straight into its own array, so loading needs the memory of the arrays, not of the file too;
  ``keys=`` reads only some tensors. The 4- and 6-bit floats are refused by name.
- :func:`save` writes atomically (temp file in the same directory, fsync, ``os.replace``, fsync
  of the directory), so a crash or an exception mid-save leaves the previous checkpoint intact.
  ``float_dtype="bfloat16"`` (or ``"float16"``) stores floating arrays narrowed, rounded to
  nearest even.
- **Tied weights** (two names holding the same array, as ``TinyGPT``'s ``wte.weight`` and
  ``lm_head.weight``) are stored once; the other name is recorded in the metadata key
  ``tinytorch.aliases``, and :func:`load` gives both names the same array. The format forbids
  two tensors sharing bytes, so other writers drop the second name (``transformers``) or record
  it as a metadata entry ``{dropped name: kept name}`` (``safetensors.torch.save_model``), which
  :func:`load` resolves too.
- Metadata values are any JSON-serialisable objects. safetensors only stores ``dict[str, str]``,
  so each value is stored JSON-encoded under its key, next to two automatic keys:
  ``tinytorch.format_version`` and ``tinytorch.versions`` (the installed TinyTorch distributions).
  A file without ``tinytorch.format_version`` comes from another writer: its metadata values are
  returned as the strings they are (``{"format": "pt"}``), never JSON-decoded.

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
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

FORMAT_VERSION = 1
"""Version of the TinyTorch checkpoint layout written into ``tinytorch.format_version``."""

FORMAT_VERSION_KEY = "tinytorch.format_version"
VERSIONS_KEY = "tinytorch.versions"
ALIASES_KEY = "tinytorch.aliases"
"""Metadata key of a file written by :func:`save`: JSON ``{alias: stored tensor name}``."""

_MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces


class _StoredDtype(NamedTuple):
    name: str  # what inspect() reports: NumPy's name, else the ml_dtypes/PyTorch name
    bits: int  # per element; the 4- and 6-bit floats are packed
    numpy: np.dtype | None  # loads as this NumPy dtype unchanged (None: no NumPy dtype)


# Every dtype of the safetensors format (safetensors 0.8.0's list, in its order).
_STORED: dict[str, _StoredDtype] = {
    "BOOL": _StoredDtype("bool", 8, np.dtype(np.bool_)),
    "F4": _StoredDtype("float4_e2m1fn", 4, None),
    "F6_E2M3": _StoredDtype("float6_e2m3fn", 6, None),
    "F6_E3M2": _StoredDtype("float6_e3m2fn", 6, None),
    "U8": _StoredDtype("uint8", 8, np.dtype(np.uint8)),
    "I8": _StoredDtype("int8", 8, np.dtype(np.int8)),
    "F8_E5M2": _StoredDtype("float8_e5m2", 8, None),
    "F8_E4M3": _StoredDtype("float8_e4m3fn", 8, None),
    "F8_E8M0": _StoredDtype("float8_e8m0fnu", 8, None),
    "F8_E4M3FNUZ": _StoredDtype("float8_e4m3fnuz", 8, None),
    "F8_E5M2FNUZ": _StoredDtype("float8_e5m2fnuz", 8, None),
    "I16": _StoredDtype("int16", 16, np.dtype(np.int16)),
    "U16": _StoredDtype("uint16", 16, np.dtype(np.uint16)),
    "F16": _StoredDtype("float16", 16, np.dtype(np.float16)),
    "BF16": _StoredDtype("bfloat16", 16, None),
    "I32": _StoredDtype("int32", 32, np.dtype(np.int32)),
    "U32": _StoredDtype("uint32", 32, np.dtype(np.uint32)),
    "F32": _StoredDtype("float32", 32, np.dtype(np.float32)),
    "C64": _StoredDtype("complex64", 64, np.dtype(np.complex64)),
    "F64": _StoredDtype("float64", 64, np.dtype(np.float64)),
    "I64": _StoredDtype("int64", 64, np.dtype(np.int64)),
    "U64": _StoredDtype("uint64", 64, np.dtype(np.uint64)),
}

SAFETENSORS_DTYPES: dict[str, str] = {tag: kind.name for tag, kind in _STORED.items()}
"""Every safetensors dtype tag -> the dtype name :func:`inspect` reports for it.

NumPy's names where NumPy has the type, else the names ``ml_dtypes`` and PyTorch use
(``"BF16"`` -> ``"bfloat16"``, ``"F8_E4M3"`` -> ``"float8_e4m3fn"``).

>>> SAFETENSORS_DTYPES["BF16"], SAFETENSORS_DTYPES["F8_E5M2"], SAFETENSORS_DTYPES["F32"]
('bfloat16', 'float8_e5m2', 'float32')
"""

_TAG_OF_NAME = {kind.name: tag for tag, kind in _STORED.items()}
_SAVABLE_KINDS = {kind.numpy.name for kind in _STORED.values() if kind.numpy is not None}
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_WIDEN_CHOICES = ("float32", "raw")
_CHUNK = 1 << 20  # elements converted at a time: bounds the scratch memory of widening
_BIG_ENDIAN_HOST = sys.byteorder == "big"

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------- narrow floats


def bfloat16_to_float32(bits: Any) -> np.ndarray:
    """Widen bfloat16 values, given as their 16-bit patterns, to float32 exactly.

    bfloat16 is the top half of a float32 (sign, 8 exponent bits, 7 mantissa bits), so widening
    shifts the bits into the high half; every value (zeros, subnormals, inf, NaN) is kept.

    Args:
        bits: a ``uint16`` array (e.g. from ``load(path, bf16="raw")``), any shape.

    Returns:
        A float32 array of the same shape.

    Raises:
        TypeError: ``bits`` is not of dtype uint16.

    >>> bfloat16_to_float32(np.array([0x3F80, 0xC040, 0x7F80], dtype=np.uint16))
    array([ 1., -3., inf], dtype=float32)
    """
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"bfloat16_to_float32: bits must be a uint16 array, got dtype {bits.dtype}")
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16(values: Any) -> np.ndarray:
    """Round float values to bfloat16, to nearest even, as their 16-bit patterns.

    A float64 input is rounded once, correctly (not through float32, which could round twice);
    values beyond bfloat16's range become inf as IEEE rounding says; NaN stays a quiet NaN.

    Args:
        values: a float16, float32 or float64 array, any shape.

    Returns:
        A ``uint16`` array of the same shape; :func:`bfloat16_to_float32` widens it back.

    Raises:
        TypeError: ``values`` is not a floating-point array.

    >>> bits = float32_to_bfloat16(np.array([1.0, 1.00390625, 1.01171875, 3.0], dtype=np.float32))
    >>> bfloat16_to_float32(bits)  # the ties round to the even neighbour
    array([1.      , 1.      , 1.015625, 3.      ], dtype=float32)
    """
    values = np.asarray(values)
    if values.dtype.kind != "f":
        raise TypeError(
            f"float32_to_bfloat16: values must be a floating-point array, got dtype {values.dtype}"
        )
    with np.errstate(over="ignore"):  # beyond float32 is beyond bfloat16 too: inf, as IEEE says
        single = np.ascontiguousarray(values, dtype=np.float32)
    bits = single.view(np.uint32)
    lower = bits & 0xFFFF
    rounded = (bits >> 16) + ((lower > 0x8000) | ((lower == 0x8000) & ((bits >> 16) & 1 == 1)))
    if values.dtype == np.float64:
        # float32 rounded x to a bfloat16 tie: decide the tie from x itself (one rounding).
        tie = (lower == 0x8000) & (single != values)
        if tie.any():
            away = np.abs(values) > np.abs(single)
            rounded = np.where(tie, (bits >> 16) + away, rounded)
    nan = np.isnan(single)
    if nan.any():
        rounded = np.where(nan, (bits >> 16) | 0x0040, rounded)
    return rounded.astype(np.uint16).reshape(values.shape)


@cache
def _float8_table(tag: str) -> np.ndarray:
    """The float32 value of each of the 256 bytes of an 8-bit float, from its definition."""
    codes = np.arange(256)
    if tag == "F8_E8M0":  # a bare biased exponent, no sign (the scales of the MX formats)
        table = np.ldexp(1.0, codes - 127)
        table[0xFF] = np.nan
        return table.astype(np.float32)
    exponent_bits, mantissa_bits, bias = {
        "F8_E4M3": (4, 3, 7), "F8_E5M2": (5, 2, 15),
        "F8_E4M3FNUZ": (4, 3, 8), "F8_E5M2FNUZ": (5, 2, 16),
    }[tag]
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent = (codes >> mantissa_bits) & ((1 << exponent_bits) - 1)
    fraction = (codes & ((1 << mantissa_bits) - 1)) / (1 << mantissa_bits)
    normal = np.ldexp(1.0 + fraction, exponent - bias)
    subnormal = np.ldexp(fraction, 1 - bias)
    table = sign * np.where(exponent == 0, subnormal, normal)
    top = exponent == (1 << exponent_bits) - 1
    if tag == "F8_E5M2":  # IEEE-like: the top exponent is inf (mantissa 0) or NaN
        table[top] = np.where(fraction[top] == 0, sign[top] * np.inf, np.nan)
    elif tag == "F8_E4M3":  # "fn": finite, no inf; only S.1111.111 is NaN
        table[top & (fraction == 1 - 2.0**-mantissa_bits)] = np.nan
    else:  # "fnuz": finite, unsigned zero; the pattern of -0 is the one NaN
        table[0x80] = np.nan
    return table.astype(np.float32)


_FLOAT8_TAGS = ("F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0")


def float8_to_float32(bits: Any, dtype: str) -> np.ndarray:
    """Widen 8-bit floats, given as their bytes, to float32 exactly (a 256-entry table).

    Args:
        bits: a ``uint8`` array (e.g. from ``load(path, f8="raw")``), any shape.
        dtype: the safetensors tag: ``"F8_E4M3"`` (E4M3FN: max 448, no inf), ``"F8_E5M2"``
            (IEEE-like, max 57344, inf), ``"F8_E4M3FNUZ"``, ``"F8_E5M2FNUZ"`` (no negative zero,
            0x80 is NaN) or ``"F8_E8M0"`` (powers of two, 2**-127 .. 2**127).

    Returns:
        A float32 array of the same shape.

    Raises:
        TypeError: ``bits`` is not of dtype uint8.
        ValueError: ``dtype`` is not one of the tags above.

    >>> float8_to_float32(np.array([0x38, 0x7E, 0xB0], dtype=np.uint8), "F8_E4M3")
    array([  1. , 448. ,  -0.5], dtype=float32)
    """
    if dtype not in _FLOAT8_TAGS:
        raise ValueError(f"float8_to_float32: dtype must be one of {', '.join(_FLOAT8_TAGS)}, "
                         f"got {dtype!r}")
    bits = np.asarray(bits)
    if bits.dtype != np.uint8:
        raise TypeError(f"float8_to_float32: bits must be a uint8 array, got dtype {bits.dtype}")
    return _float8_table(dtype)[bits]


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
        if key in (FORMAT_VERSION_KEY, VERSIONS_KEY, ALIASES_KEY):
            continue  # written fresh: they describe this writer and file, not one read earlier
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
    if FORMAT_VERSION_KEY not in raw:  # another writer's metadata: arbitrary strings, kept so
        return dict(raw)
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value  # a string someone added to our file with another tool
        except RecursionError:
            raise CheckpointError(
                f"{path if path is not None else 'checkpoint'}: metadata {key!r} is JSON nested too "
                "deeply to read (a corrupt or hostile file)"
            ) from None
    return decoded


# ---------------------------------------------------------------------------------- save


def _as_array(key: str, value: Any) -> np.ndarray:
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
    return value


def _storage_identity(array: np.ndarray) -> tuple | None:
    """Equal for two arrays that are the same values in the same memory (tied weights)."""
    if array.size == 0:
        return None
    return (array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str)


def _stored_form(array: np.ndarray, float_dtype: str | None) -> tuple[str, np.ndarray]:
    """The safetensors tag and the C-contiguous little-endian array whose bytes are written."""
    if float_dtype is not None and array.dtype.kind == "f" and array.dtype.name != float_dtype:
        if float_dtype == "bfloat16":
            return "BF16", float32_to_bfloat16(array)
        with np.errstate(over="ignore"):  # beyond float16's range is inf, as IEEE rounds it
            array = array.astype(float_dtype)
    # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and _BIG_ENDIAN_HOST):
        array = array.astype(array.dtype.newbyteorder("<"))
    return _TAG_OF_NAME[array.dtype.name], array


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


def write_atomic(path: PathLike, payload: bytes | Iterable[Any], what: str = "file") -> Path:
    """Write ``payload`` to ``path`` so that ``path`` is either the old file or the new one.

    The bytes go to a temp file ``.<name>.tmp-<pid>-<random>`` in the same directory, which is
    fsynced and renamed over ``path``; the directory is fsynced too. Temp files that killed
    writers of the same ``path`` left behind are removed first. Errors (disk full, read-only
    directory, ...) name ``path``; the previous file is intact and the temp file removed.

    Args:
        path: the file to write (checked by :func:`check_destination`; a symlink's target is
            written); missing parent directories are created.
        payload: the bytes, or an iterable of bytes-like chunks written in order (so a large
            file is never assembled in memory).
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
            chunks = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
            for chunk in chunks:
                f.write(chunk)
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
    state: Mapping[str, Any],
    path: PathLike,
    metadata: Mapping[str, Any] | None = None,
    *,
    float_dtype: str | None = None,
) -> None:
    """Save arrays (and JSON metadata) to a safetensors file, atomically.

    Two names holding the same array (tied weights: the same ndarray object, or views of the
    same memory with the same shape and strides) are stored once: the first name keeps the
    bytes and the others are recorded in the metadata key ``tinytorch.aliases``, which
    :func:`load` resolves back to one shared array. The bytes are streamed from the arrays into
    the file, so saving needs no second copy of the state.

    Args:
        state: name -> ``np.ndarray`` or ``Tensor``. Nested dicts are flattened with ``"."``
            (see :func:`flatten_state`); :func:`load` returns the flat form.
        path: the file to write; parent directories are created. It must be a regular file or
            absent (see :func:`check_destination`; a symlink's target is written).
        metadata: JSON-serialisable values (config, epoch, optimizer hyper-parameters...).
            Tuples come back as lists. Keys ``tinytorch.format_version``, ``tinytorch.versions``
            and ``tinytorch.aliases`` are always written by this function.
        float_dtype: store every floating-point array as ``"float16"``, ``"bfloat16"``,
            ``"float32"`` or ``"float64"`` (rounded to nearest even); None (the default) keeps
            each array's dtype. Integer and bool arrays are never converted.

    Raises:
        TypeError: a non-string key, a value that is not an array, an array with a dtype
            safetensors cannot store (object, str, ...), or metadata that is not JSON-serialisable.
        ValueError: ``float_dtype`` is not one of the names above.
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

    Tied weights come back as one array; ``float_dtype`` narrows the stored floats:

    >>> embedding = np.arange(6, dtype=np.float32).reshape(3, 2)
    >>> save({"wte.weight": embedding, "lm_head.weight": embedding}, path, float_dtype="bfloat16")
    >>> state, _ = load(path)
    >>> state["wte.weight"] is state["lm_head.weight"], inspect(path).tensors[0].dtype
    (True, 'bfloat16')
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save: state must be a dict of arrays, got {type(state).__name__}")
    if float_dtype is not None and float_dtype not in _FLOAT_DTYPES:
        raise ValueError(f"save: float_dtype must be None or one of {', '.join(_FLOAT_DTYPES)}, "
                         f"got {float_dtype!r}")
    check_destination(path, "checkpoint")  # before the work of serialising
    flat = flatten_state(state)
    stored: dict[str, tuple[str, np.ndarray]] = {}
    aliases: dict[str, str] = {}
    owner_of: dict[tuple, str] = {}
    for key, value in flat.items():
        if key == "__metadata__":
            raise ValueError("save: '__metadata__' is reserved by safetensors and cannot be a key")
        array = _as_array(key, value)
        identity = _storage_identity(array)
        if identity is not None and identity in owner_of:
            aliases[key] = owner_of[identity]
            continue
        if identity is not None:
            owner_of[identity] = key
        stored[key] = _stored_form(array, float_dtype)
    header_metadata = _encode_metadata(metadata)
    if aliases:
        header_metadata[ALIASES_KEY] = json.dumps(aliases)
    write_atomic(path, _serialize(stored, header_metadata), "checkpoint")


def write_safetensors(
    path: PathLike,
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
    *,
    float_dtype: str | None = None,
) -> Path:
    """Write a plain safetensors file for other readers: the metadata exactly as given.

    Use it for files in another tool's layout (``save_pretrained`` writes ``{"format": "pt"}``
    for transformers); :func:`save` is for TinyTorch's own checkpoints (JSON metadata, versions,
    tied-weight records). The arrays are streamed into the file (no copy of the whole file in
    memory) and the write is atomic, like :func:`save`. Every name is written with its own bytes,
    even when two names hold the same array (leave a tied copy out, as transformers does).

    Args:
        path: the file to write (see :func:`check_destination`).
        tensors: name -> ``np.ndarray`` or ``Tensor`` (flat names).
        metadata: ``__metadata__`` strings, written as they are; None writes none.
        float_dtype: as in :func:`save`: store floating arrays as ``"float16"``, ``"bfloat16"``,
            ``"float32"`` or ``"float64"``; None keeps their dtypes.

    Returns:
        The path written (a symlink's target).

    Raises:
        TypeError: a value that is not an array or has a dtype safetensors cannot store, or
            metadata that does not map strings to strings.
        ValueError: ``float_dtype`` is not one of the names above, or a name is ``__metadata__``.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> _ = write_safetensors(path, {"wte.weight": np.zeros((2, 2), np.float32)}, {"format": "pt"})
    >>> load_metadata(path)
    {'format': 'pt'}
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"write_safetensors: tensors must be a dict of arrays, got {type(tensors).__name__}")
    if float_dtype is not None and float_dtype not in _FLOAT_DTYPES:
        raise ValueError(f"write_safetensors: float_dtype must be None or one of "
                         f"{', '.join(_FLOAT_DTYPES)}, got {float_dtype!r}")
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"write_safetensors: metadata must map strings to strings, got "
                            f"{type(key).__name__} {key!r}: {type(value).__name__}")
    check_destination(path, "checkpoint")
    stored: dict[str, tuple[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"write_safetensors: names must be strings, got {type(key).__name__} {key!r}")
        if key == "__metadata__":
            raise ValueError("write_safetensors: '__metadata__' is reserved by safetensors")
        stored[key] = _stored_form(_as_array(key, value), float_dtype)
    return write_atomic(path, _serialize(stored, metadata), "checkpoint")


def _serialize(tensors: Mapping[str, tuple[str, np.ndarray]], metadata: Mapping[str, str]) -> list:
    """The chunks of a safetensors file: header length, header, then each tensor's bytes.

    The data is laid out widest dtype first (as safetensors does), so every tensor starts at a
    multiple of its item size and readers that map the file can use it in place; the header lists
    the tensors in the caller's order and is padded with spaces to a multiple of 8 bytes.
    """
    layout = sorted(tensors, key=lambda name: -_STORED[tensors[name][0]].bits)  # stable
    offsets: dict[str, list[int]] = {}
    position = 0
    for name in layout:
        nbytes = tensors[name][1].nbytes
        offsets[name] = [position, position + nbytes]
        position += nbytes
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    for name, (tag, array) in tensors.items():
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": offsets[name]}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    chunks: list[Any] = [len(encoded).to_bytes(8, "little"), encoded]
    for name in layout:
        array = tensors[name][1]
        if array.size:
            chunks.append(memoryview(array.reshape(-1).view(np.uint8)))
    return chunks


# ---------------------------------------------------------------------------------- load


@dataclass
class _Header:
    tensors: dict[str, tuple[str, tuple[int, ...], int, int]]  # name -> (tag, shape, begin, end)
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


def _refuse_duplicate_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: a name given twice would be silently resolved to the last one."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateName(key)
        seen[key] = value
    return seen


class _DuplicateName(ValueError):
    pass


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
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicate_names)
    except _DuplicateName as e:
        raise _fail(path, f"corrupt header: the name {e.args[0]!r} occurs twice") from None
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
    tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise _fail(path, f"corrupt header: entry for tensor {name!r} is not an object")
        tag, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(tag, str) or tag not in _STORED:
            raise _fail(
                path,
                f"tensor {name!r} has dtype {tag!r}, which is not a safetensors dtype "
                f"(the format has: {', '.join(_STORED)})",
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
        bits = math.prod(shape) * _STORED[tag].bits
        if bits % 8:
            raise _fail(
                path,
                f"corrupt header: tensor {name!r} of shape {tuple(shape)} and dtype {tag} holds "
                f"{bits} bits, which is not a whole number of bytes",
            )
        if end - begin != bits // 8:
            raise _fail(
                path,
                f"corrupt header: tensor {name!r} of shape {tuple(shape)} and dtype {tag} needs "
                f"{bits // 8} bytes, but its data_offsets span {end - begin}",
            )
        if end > data_size:
            raise _fail(
                path,
                f"truncated file: tensor {name!r} needs bytes {begin}..{end} of the data section, "
                f"but only {data_size} are present (file size {size})",
            )
        tensors[name] = (tag, tuple(shape), begin, end)

    position, previous = 0, None
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: kv[1][2:]):
        if begin != position:
            if previous is not None and begin == tensors[previous][2] and end > begin:
                raise _fail(
                    path,
                    f"corrupt header: tensors {previous!r} and {name!r} share bytes {begin}..{end} "
                    "of the data section; safetensors does not allow shared storage (a tied "
                    "weight is stored once and its other name recorded in the metadata)",
                )
            raise _fail(
                path,
                f"corrupt header: tensor {name!r} starts at byte {begin} of the data section, "
                f"expected {position} (tensors overlap or leave a gap)",
            )
        position, previous = end, name
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


def _aliases(path: Path, header: _Header) -> dict[str, str]:
    """Alias -> stored tensor name: ours from ``tinytorch.aliases``, or another writer's.

    ``safetensors.torch.save_model`` drops the second name of a shared tensor and records
    ``{dropped name: kept name}`` in the metadata; in a file not written by TinyTorch, an entry
    whose key is not a tensor and whose value is one is read that way.
    """
    raw = header.metadata
    if FORMAT_VERSION_KEY not in raw:
        return {k: v for k, v in raw.items() if k not in header.tensors and v in header.tensors}
    if ALIASES_KEY not in raw:
        return {}
    try:
        aliases = json.loads(raw[ALIASES_KEY])
    except (ValueError, RecursionError):
        aliases = None
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise _fail(path, f"corrupt metadata: {ALIASES_KEY!r} must be a JSON object of names, "
                          f"got {raw[ALIASES_KEY][:60]!r}")
    for alias, target in aliases.items():
        if alias in header.tensors:
            raise _fail(path, f"corrupt metadata: alias {alias!r} is also a stored tensor")
        if target not in header.tensors:
            raise _fail(path, f"corrupt metadata: alias {alias!r} names tensor {target!r}, "
                              "which the file does not hold")
    return aliases


def _check_choice(argument: str, value: Any) -> None:
    if value not in _WIDEN_CHOICES:
        raise ValueError(f"load: {argument} must be one of {', '.join(map(repr, _WIDEN_CHOICES))}, "
                         f"got {value!r}")


def _selected(path: Path, header: _Header, aliases: Mapping[str, str], keys: Any) -> list[str]:
    if keys is None:
        return [*header.tensors, *aliases]
    if isinstance(keys, str) or not isinstance(keys, Iterable):
        raise TypeError(f"load: keys must be an iterable of tensor names (a list, a set), got "
                        f"{type(keys).__name__} {keys!r}")
    names = list(dict.fromkeys(keys))
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"load: keys must be strings, got {type(name).__name__} {name!r}")
    missing = [name for name in names if name not in header.tensors and name not in aliases]
    if missing:
        held = [*header.tensors, *aliases]
        shown = ", ".join(map(repr, held[:8])) + (", ..." if len(held) > 8 else "")
        raise _fail(path, f"no tensor named {', '.join(map(repr, missing))} (the file holds "
                          f"{len(held)}: {shown})")
    return names


def _read_into(f, path: Path, name: str, out: np.ndarray) -> None:
    """Fill ``out`` (C-contiguous) with the next ``out.nbytes`` bytes of ``f``."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    while view.nbytes:
        got = f.readinto(view)
        if not got:
            raise _fail(path, f"truncated file: the data of tensor {name!r} ends early "
                              "(the file changed while it was being read)")
        view = view[got:]
    if _BIG_ENDIAN_HOST and out.dtype.itemsize > 1:
        out.byteswap(inplace=True)


def _read_widened(f, path: Path, name: str, shape: tuple[int, ...], tag: str) -> np.ndarray:
    """A BF16 or 8-bit float tensor as float32, converted a chunk at a time."""
    out = np.empty(shape, np.float32)
    flat = out.reshape(-1)
    raw_dtype = np.uint16 if tag == "BF16" else np.uint8
    scratch = np.empty(min(flat.size, _CHUNK), raw_dtype)
    for begin in range(0, flat.size, _CHUNK):
        chunk = scratch[: min(_CHUNK, flat.size - begin)]
        _read_into(f, path, name, chunk)
        target = flat[begin : begin + chunk.size]
        if tag == "BF16":
            bits = target.view(np.uint32)
            bits[...] = chunk
            bits <<= 16
        else:
            np.take(_float8_table(tag), chunk, out=target)
    return out


def _read_tensor(f, path: Path, header: _Header, name: str, bf16: str, f8: str) -> np.ndarray:
    tag, shape, begin, _ = header.tensors[name]
    kind = _STORED[tag]
    f.seek(header.data_start + begin)
    if tag == "BF16" and bf16 == "float32" or tag in _FLOAT8_TAGS and f8 == "float32":
        return _read_widened(f, path, name, shape, tag)
    if tag == "BF16" or tag in _FLOAT8_TAGS:
        array = np.empty(shape, np.uint16 if tag == "BF16" else np.uint8)
    elif kind.numpy is not None:
        array = np.empty(shape, kind.numpy)
    else:
        raise _fail(path, f"tensor {name!r} has dtype {tag} ({kind.name}, {kind.bits} bits per "
                          "element, packed), which TinyTorch cannot load; inspect() and "
                          "tensor_shapes() read its shape")
    _read_into(f, path, name, array)
    if tag == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise _fail(path, f"corrupt data: BOOL tensor {name!r} holds bytes other than 0 and 1")
    return array


def load(
    path: PathLike,
    keys: Iterable[str] | None = None,
    *,
    bf16: str = "float32",
    f8: str = "float32",
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a safetensors file written by :func:`save`, or by any other safetensors writer.

    The header is validated first; then each tensor is read from the file straight into its own
    new array, so the memory needed is that of the arrays returned, never the whole file on top
    (widening converts a million elements at a time).

    Args:
        path: the file.
        keys: names of the tensors to read (others are skipped on disk); None reads all.
        bf16: ``"float32"`` (default) widens BF16 tensors to float32, exactly; ``"raw"`` returns
            their 16-bit patterns as ``uint16`` arrays (:func:`bfloat16_to_float32` widens them
            later), for a caller that keeps half the memory.
        f8: the same for the 8-bit floats (``F8_E4M3``, ``F8_E5M2``, ``F8_E4M3FNUZ``,
            ``F8_E5M2FNUZ``, ``F8_E8M0``): float32 exactly, or ``"raw"`` ``uint8`` bytes
            (:func:`float8_to_float32`). :func:`inspect` tells which tensor had which dtype.

    Returns:
        ``(state, metadata)``: name -> writable ``np.ndarray`` in header order, then aliases
        (a tied weight's second name maps to the same array object, not a copy); and the
        metadata, JSON-decoded for a TinyTorch file, the strings as they are for other files.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated, not a safetensors file, or corrupt, a key in
            ``keys`` is not in it, or a tensor has a dtype NumPy cannot hold even widened (the
            4- and 6-bit floats); the message names the file, the tensor and what is wrong.
        ValueError: ``bf16`` or ``f8`` is not ``"float32"`` or ``"raw"``.
        TypeError: ``keys`` is not an iterable of strings.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.safetensors"
    >>> save({"layer": {"bias": np.zeros(3, dtype=np.float32), "weight": np.eye(3)}}, path)
    >>> sorted(load(path)[0])
    ['layer.bias', 'layer.weight']
    >>> list(load(path, keys=["layer.weight"])[0])
    ['layer.weight']
    >>> save({"w": np.array([1.5, -2.0], np.float32)}, path, float_dtype="bfloat16")
    >>> load(path)[0]["w"], load(path, bf16="raw")[0]["w"]
    (array([ 1.5, -2. ], dtype=float32), array([16320, 49152], dtype=uint16))
    """
    _check_choice("bf16", bf16)
    _check_choice("f8", f8)
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
        metadata = _decode_metadata(header.metadata, path)
        _check_format_version(path, metadata)
        aliases = _aliases(path, header)
        state: dict[str, np.ndarray] = {}
        arrays: dict[str, np.ndarray] = {}
        for name in _selected(path, header, aliases, keys):
            stored = aliases.get(name, name)
            if stored not in arrays:
                arrays[stored] = _read_tensor(f, path, header, stored, bf16, f8)
            state[name] = arrays[stored]
    return state, metadata


def load_metadata(path: PathLike) -> dict[str, Any]:
    """Read only the header of a checkpoint and return its metadata.

    Values are JSON-decoded for a file written by :func:`save`, and the strings as they are for
    a file from another writer (``{"format": "pt"}``).

    Args:
        path: the file.

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
    """Name -> shape of every tensor in a checkpoint (aliases too), read from the header alone.

    Use it to check a stored config against the stored weights before building a model from the
    config (an edited ``max_seq_len`` must not allocate gigabytes before the mismatch is found).
    Every safetensors dtype is understood, including those :func:`load` cannot widen.

    Args:
        path: the file.

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.safetensors"
    >>> save({"wte": {"weight": np.zeros((5, 2), dtype=np.float32)}}, path)
    >>> tensor_shapes(path)
    {'wte.weight': (5, 2)}
    """
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
        aliases = _aliases(path, header)
    shapes = {name: shape for name, (_, shape, _, _) in header.tensors.items()}
    shapes.update({alias: shapes[target] for alias, target in aliases.items()})
    return shapes


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
    """Name, shape and dtype name of one tensor in a checkpoint.

    ``dtype`` is NumPy's name where NumPy has the type (``"float32"``), else the ``ml_dtypes``
    and PyTorch name (``"bfloat16"``, ``"float8_e4m3fn"``); see :data:`SAFETENSORS_DTYPES`.

    >>> info = TensorInfo("w", (2, 3), "bfloat16")
    >>> info.shape, info.safetensors_dtype, info.nbytes
    ((2, 3), 'BF16', 12)
    """
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def safetensors_dtype(self) -> str:
        """The dtype tag in the file (``"BF16"``, ``"F32"``, ...)."""
        return _TAG_OF_NAME[self.dtype]

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in the file."""
        return math.prod(self.shape) * _STORED[self.safetensors_dtype].bits // 8


@dataclass
class CheckpointInfo:
    """What :func:`inspect` reports about a checkpoint, without loading its arrays.

    Attributes:
        path: the file.
        tensors: one ``TensorInfo`` per stored tensor, in natural order (``layers.2`` before
            ``layers.10``).
        metadata: the metadata (JSON-decoded for a TinyTorch file).
        num_parameters: total number of elements over the stored tensors (a tied weight once).
        file_size: bytes on disk.
        aliases: a tied weight's other name -> the stored tensor it shares.

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
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data (the file minus its header)."""
        return sum(t.nbytes for t in self.tensors)


def _natural_key(name: str) -> list:
    """Sort "layers.2" before "layers.10".

    The odd parts of the split are exactly the runs ``\\d+`` matched (decimal digits, which
    ``int`` reads); ``str.isdigit`` would also accept "²", which ``int`` refuses.
    """
    parts = re.split(r"(\d+)", name)
    return [(0, int(p), p) if i % 2 else (1, 0, p) for i, p in enumerate(parts)]


def inspect(path: PathLike) -> CheckpointInfo:
    """Names, shapes and dtypes of a checkpoint's tensors, its metadata and parameter count.

    Only the header is read, so this is instant even for a large checkpoint (``tito core
    summary``), and it works for every safetensors dtype, BF16 and the 4/6/8-bit floats included.

    Args:
        path: the file.

    Raises:
        CheckpointError: the file is not a valid safetensors file (the message names it).

    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "i.safetensors"
    >>> save({"w": np.zeros((4, 5), dtype=np.float32)}, path)
    >>> inspect(path).num_parameters
    20
    """
    path, f = _open_checked(path)
    with f:
        header = _read_header(path, f)
        aliases = _aliases(path, header)
    tensors = [
        TensorInfo(name, shape, _STORED[tag].name)
        for name, (tag, shape, _, _) in sorted(
            header.tensors.items(), key=lambda kv: _natural_key(kv[0])
        )
    ]
    return CheckpointInfo(
        path=str(path),
        tensors=tensors,
        metadata=_decode_metadata(header.metadata, path),
        num_parameters=sum(math.prod(t.shape) for t in tensors),
        file_size=header.file_size,
        aliases=aliases,
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
    "tensor_shapes", "SAFETENSORS_DTYPES", "ALIASES_KEY", "bfloat16_to_float32",
    "float32_to_bfloat16", "float8_to_float32", "write_safetensors",
]
