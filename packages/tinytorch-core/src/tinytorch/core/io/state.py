"""The state a checkpoint holds: nesting, typed metadata look-ups, and checks against a model.

:func:`flatten_state` and :func:`unflatten_state` convert between nested dicts and the flat
dotted names a safetensors file stores; :func:`require` reads one metadata entry of an expected
type; :func:`check_state` compares loaded arrays with the names and shapes a model expects.
Every problem with a file or a state is a :class:`CheckpointError` naming the file.

>>> flatten_state({"model": {"w": 1}, "step": 2})
{'model.w': 1, 'step': 2}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .atomic import PathLike


class CheckpointError(ValueError):
    """A checkpoint file that is not a valid safetensors file, or a state that does not match.

    It is a ``ValueError``; the message names the file and what is wrong (truncated, foreign,
    missing or unexpected keys, shape mismatches).

    >>> import tempfile, pathlib
    >>> from tinytorch.core.io import load
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.safetensors"
    >>> _ = bad.write_bytes(b"not a checkpoint")
    >>> try:
    ...     load(bad)
    ... except CheckpointError as err:
    ...     print("CheckpointError")
    CheckpointError
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
