"""The safetensors format, read and written by TinyTorch itself: header, load, save, aliases.

The header is parsed and validated completely (dtypes, shapes, byte ranges that tile the data
section exactly) before any tensor data is read; each tensor is then read straight into its own
array. :func:`save` stores tied weights once and records their other names in the metadata;
:func:`write_safetensors` writes other tools' layouts with their metadata as given.

>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
>>> save({"w": np.zeros((2, 3), dtype=np.float32)}, path)
>>> tensor_shapes(path), load(path)[0]["w"].dtype
({'w': (2, 3)}, dtype('float32'))
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .atomic import PathLike, _open_regular_file, check_destination, write_atomic
from .dtypes import (
    _FLOAT8_TAGS,
    _FLOAT_DTYPES,
    _SAVABLE_KINDS,
    _STORED,
    _TAG_OF_NAME,
    _float8_table,
    float32_to_bfloat16,
)
from .state import CheckpointError, flatten_state

FORMAT_VERSION = 1
"""Version of the TinyTorch checkpoint layout written into ``tinytorch.format_version``."""

FORMAT_VERSION_KEY = "tinytorch.format_version"
VERSIONS_KEY = "tinytorch.versions"
ALIASES_KEY = "tinytorch.aliases"
"""Metadata key of a file written by :func:`save`: JSON ``{alias: stored tensor name}``."""

_MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces
# What a header may declare. Beyond these, the values break something after parsing: NumPy's
# array limits, Python's int-to-string guard, or a recursive consumer of the metadata (printing
# it, checking it), so they are refused first, naming the file.
_MAX_INT_DIGITS = 4300  # Python's default int/str guard, kept even where a program lifts it
_MAX_JSON_DEPTH = 64  # a header is 3 deep; a training checkpoint's metadata 4 (optimizer)
_MAX_OFFSET = 2**64 - 1  # offsets are unsigned 64-bit in the format
_MAX_ARRAY_BYTES = int(np.iinfo(np.intp).max)  # NumPy: size * itemsize of one array

_WIDEN_CHOICES = ("float32", "raw")
_CHUNK = 1 << 20  # elements converted at a time: bounds the scratch memory of widening
_BIG_ENDIAN_HOST = sys.byteorder == "big"

_WIDENED_TAGS = ("BF16", *_FLOAT8_TAGS)


def _numpy_max_dims() -> int:
    """NumPy's NPY_MAXDIMS, found by asking: 64 from NumPy 2 on, 32 before."""
    try:
        np.empty((0,) * 64)
    except ValueError:
        return 32
    return 64


_MAX_DIMS = _numpy_max_dims()


def _array_itemsize(tag: str, widen: bool) -> int:
    """Bytes per element of the array :func:`load` makes for a tensor of dtype ``tag``."""
    kind = _STORED[tag]
    if tag in _WIDENED_TAGS:
        return 4 if widen else kind.bits // 8
    return kind.numpy.itemsize if kind.numpy is not None else 1  # 4/6-bit floats: never loaded


def _short_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxstring, shown.maxother, shown.maxlong, shown.maxlevel = 60, 60, 40, 2
    shown.maxlist = shown.maxtuple = shown.maxdict = 6
    return shown


_shown = _short_repr().repr
"""A value from a file, quoted in a message at a bounded length (names, shapes, dtypes)."""


class _LongNumber(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    """json's parse_int: Python's int() is quadratic in the digits, and its guard can be lifted."""
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise _LongNumber(len(digits.lstrip("-")))
    return int(digits)




_JSON_LEAVES = frozenset({str, int, float, bool, type(None)})


def _nesting_exceeds(value: Any, limit: int = _MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON, or metadata :func:`save` turns into JSON: mappings, lists,
    tuples, arrays) nests more than ``limit`` levels. Iterative: a recursive walk would fail on
    exactly the values it looks for. A tokenizer's vocabulary and merges are ~100,000 strings:
    leaves are skipped by their exact type before any (slow, abstract) ``isinstance`` test."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            children = node.values()
        elif kind is list or kind is tuple:
            children = node
        elif isinstance(node, np.ndarray):
            if depth + node.ndim > limit:
                return True
            continue
        elif isinstance(node, Mapping):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((c, depth) for c in children if type(c) not in _JSON_LEAVES)
    return False


def _memory_limit() -> int | None:
    """Bytes of RAM plus swap of this machine, or None where the OS does not tell."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            sizes = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo
                     if line.startswith(("MemTotal:", "SwapTotal:"))}
        return sizes["MemTotal"] + sizes.get("SwapTotal", 0)
    except (OSError, ValueError, KeyError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


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
        if _nesting_exceeds(value):
            raise ValueError(f"save: metadata[{key!r}] is nested more than {_MAX_JSON_DEPTH} levels "
                             "deep, which load() refuses to read")
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
    origin = path if path is not None else "checkpoint"
    decoded: dict[str, Any] = {}
    for key, text in raw.items():
        try:
            value = json.loads(text, parse_int=_bounded_int)
        except _LongNumber as e:
            raise CheckpointError(
                f"{origin}: metadata {_shown(key)} holds a number of {e.args[0]:,} digits "
                f"(a checkpoint holds none longer than {_MAX_INT_DIGITS:,})"
            ) from None
        except ValueError:
            value = text  # a string someone added to our file with another tool
        except RecursionError:
            raise _nested_too_deep(origin, key) from None
        if _nesting_exceeds(value):
            raise _nested_too_deep(origin, key)
        decoded[key] = value
    return decoded


def _nested_too_deep(origin: Any, key: str) -> CheckpointError:
    return CheckpointError(f"{origin}: metadata {_shown(key)} is JSON nested more than "
                           f"{_MAX_JSON_DEPTH} levels deep (a corrupt or hostile file)")


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
    return _open_regular_file(path, "checkpoint file")  # closed by the caller


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
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicate_names,
                            parse_int=_bounded_int)
    except _DuplicateName as e:
        raise _fail(path, f"corrupt header: the name {_shown(e.args[0])} occurs twice") from None
    except _LongNumber as e:
        raise _fail(path, f"corrupt header: a number of {e.args[0]:,} digits (a header holds none "
                          f"longer than {_MAX_INT_DIGITS:,})") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"not a safetensors file: the header is not valid JSON ({e})") from None
    except RecursionError:
        raise _fail(path, "corrupt header: its JSON is nested too deeply to read") from None
    if not isinstance(header, dict):
        raise _fail(path, "not a safetensors file: the header is not a JSON object")
    if _nesting_exceeds(header):
        raise _fail(path, f"corrupt header: its JSON is nested more than {_MAX_JSON_DEPTH} levels "
                          "deep (a header is 3)")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _fail(path, "corrupt header: __metadata__ must map strings to strings")

    data_size = size - 8 - n
    tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        shown = _shown(name)
        if not isinstance(info, dict):
            raise _fail(path, f"corrupt header: entry for tensor {shown} is not an object")
        tag, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(tag, str) or tag not in _STORED:
            raise _fail(
                path,
                f"tensor {shown} has dtype {_shown(tag)}, which is not a safetensors dtype "
                f"(the format has: {', '.join(_STORED)})",
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _fail(path, f"corrupt header: tensor {shown} has invalid shape {_shown(shape)}")
        _check_array_shape(path, shown, shape, tag)
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= _MAX_OFFSET
        ):
            raise _fail(
                path, f"corrupt header: tensor {shown} has invalid data_offsets {_shown(offsets)}"
            )
        begin, end = offsets
        bits = math.prod(shape) * _STORED[tag].bits
        if bits % 8:
            raise _fail(
                path,
                f"corrupt header: tensor {shown} of shape {tuple(shape)} and dtype {tag} holds "
                f"{bits} bits, which is not a whole number of bytes",
            )
        if end - begin != bits // 8:
            raise _fail(
                path,
                f"corrupt header: tensor {shown} of shape {tuple(shape)} and dtype {tag} needs "
                f"{bits // 8} bytes, but its data_offsets span {end - begin}",
            )
        if end > data_size:
            raise _fail(
                path,
                f"truncated file: tensor {shown} needs bytes {begin}..{end} of the data section, "
                f"but only {data_size} are present (file size {size})",
            )
        tensors[name] = (tag, tuple(shape), begin, end)

    position, previous = 0, None
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: kv[1][2:]):
        if begin != position:
            if previous is not None and begin == tensors[previous][2] and end > begin:
                raise _fail(
                    path,
                    f"corrupt header: tensors {_shown(previous)} and {_shown(name)} share bytes "
                    f"{begin}..{end} "
                    "of the data section; safetensors does not allow shared storage (a tied "
                    "weight is stored once and its other name recorded in the metadata)",
                )
            raise _fail(
                path,
                f"corrupt header: tensor {_shown(name)} starts at byte {begin} of the data section, "
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


def _check_array_shape(path: Path, shown: str, shape: list[int], tag: str) -> None:
    """Refuse a shape no NumPy array can have, before anything computes with or prints it."""
    if len(shape) > _MAX_DIMS:
        raise _fail(path, f"corrupt header: tensor {shown} has {len(shape)} dimensions; NumPy "
                          f"allows at most {_MAX_DIMS}")
    # NumPy bounds the product of the non-zero dimensions times the item size, so a shape with a
    # zero in it (0 bytes, which the byte count accepts) can still be one np.empty refuses.
    if any(d > _MAX_ARRAY_BYTES for d in shape) or (
        math.prod(d for d in shape if d) * _array_itemsize(tag, widen=True) > _MAX_ARRAY_BYTES
    ):
        raise _fail(path, f"corrupt header: tensor {shown} has shape {_shown(tuple(shape))}, "
                          f"more elements than an array can hold ({_MAX_ARRAY_BYTES:,} bytes at most)")


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
        aliases = json.loads(raw[ALIASES_KEY], parse_int=_bounded_int)
    except (ValueError, RecursionError):
        aliases = None
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise _fail(path, f"corrupt metadata: {ALIASES_KEY!r} must be a JSON object of names, "
                          f"got {raw[ALIASES_KEY][:60]!r}")
    for alias, target in aliases.items():
        if alias in header.tensors:
            raise _fail(path, f"corrupt metadata: alias {_shown(alias)} is also a stored tensor")
        if target not in header.tensors:
            raise _fail(path, f"corrupt metadata: alias {_shown(alias)} names tensor {_shown(target)}, "
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
        shown = ", ".join(map(_shown, held[:8])) + (", ..." if len(held) > 8 else "")
        raise _fail(path, f"no tensor named {', '.join(map(repr, missing))} (the file holds "
                          f"{len(held)}: {shown})")
    return names


def _check_memory(path: Path, header: _Header, stored: list[str], bf16: str, f8: str) -> None:
    """Refuse, before allocating anything, tensors larger than this machine's RAM and swap.

    A header can declare any size its file holds, and a sparse file holds a terabyte in no disk
    space: np.empty would raise a bare MemoryError, or under overcommit succeed and then read
    and page in the whole terabyte.
    """
    limit = _memory_limit()
    if limit is None:
        return
    total = 0
    for name in stored:
        tag, shape, _, _ = header.tensors[name]
        nbytes = math.prod(shape) * _array_itemsize(tag, (bf16 if tag == "BF16" else f8) == "float32")
        if nbytes > limit:
            raise _fail(path, f"tensor {_shown(name)} of shape {shape} needs {nbytes:,} bytes in memory, "
                              f"more than this machine's memory ({limit:,} bytes of RAM and swap)")
        total += nbytes
    if total > limit:
        raise _fail(path, f"the {len(stored)} tensors to load need {total:,} bytes in memory, more "
                          f"than this machine's memory ({limit:,} bytes of RAM and swap); read "
                          "fewer at a time with keys=")


def _read_into(f, path: Path, name: str, out: np.ndarray) -> None:
    """Fill ``out`` (C-contiguous) with the next ``out.nbytes`` bytes of ``f``."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    while view.nbytes:
        got = f.readinto(view)
        if not got:
            raise _fail(path, f"truncated file: the data of tensor {_shown(name)} ends early "
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
        raise _fail(path, f"tensor {_shown(name)} has dtype {tag} ({kind.name}, {kind.bits} bits per "
                          "element, packed), which TinyTorch cannot load; inspect() and "
                          "tensor_shapes() read its shape")
    _read_into(f, path, name, array)
    if tag == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise _fail(path, f"corrupt data: BOOL tensor {_shown(name)} holds bytes other than 0 and 1")
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
        NotRegularFileError: ``path`` is a directory, device, FIFO or socket (refused before it
            is opened, so a FIFO never blocks the call).
        CheckpointError: the file is truncated, not a safetensors file, or corrupt, a key in
            ``keys`` is not in it, or a tensor has a dtype NumPy cannot hold even widened (the
            4- and 6-bit floats); the header declares what no array can be (more dimensions or
            elements than NumPy allows, numbers over 4,300 digits, JSON nested over 64 levels);
            or the tensors to load need more memory than the machine's RAM and swap (checked
            before anything is allocated). The message names the file, the tensor and what is
            wrong.
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
        names = _selected(path, header, aliases, keys)
        _check_memory(path, header, list(dict.fromkeys(aliases.get(n, n) for n in names)), bf16, f8)
        state: dict[str, np.ndarray] = {}
        arrays: dict[str, np.ndarray] = {}
        for name in names:
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

    Raises:
        NotRegularFileError: ``path`` is a directory, device, FIFO or socket.
        CheckpointError: the file is not a valid safetensors file (the message names it).

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

    Raises:
        NotRegularFileError: ``path`` is a directory, device, FIFO or socket.
        CheckpointError: the file is not a valid safetensors file (the message names it).

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
        NotRegularFileError: ``path`` is a directory, device, FIFO or socket.
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
