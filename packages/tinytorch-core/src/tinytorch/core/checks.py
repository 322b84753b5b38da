"""Argument checks every package shares: "is this a count?" and "is this a number?".

Python's ``bool`` is a subclass of ``int``, so ``isinstance(True, int)`` holds and ``Linear(4, True)``
would build a one-output layer. Every public entry point that takes a size, a count or a rate
refuses booleans; these helpers are the one place that says so. NumPy's integer and float
scalars count (``numbers`` registers them), NumPy's ``bool_`` does not.

>>> check_int("Linear", "out_features", 8, minimum=1)
8
>>> check_int("Linear", "out_features", True, minimum=1)
Traceback (most recent call last):
    ...
ValueError: Linear: out_features must be an integer >= 1, got True
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """True for ``int`` and NumPy integer scalars; False for ``bool`` and everything else.

    Args:
        value: anything.

    Returns:
        Whether ``value`` is an integer that is not a boolean.

    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """True for ints and floats (Python's or NumPy's); False for ``bool`` and everything else.

    Args:
        value: anything.

    Returns:
        Whether ``value`` is a real number that is not a boolean.

    >>> is_real(0.5), is_real(2), is_real(np.float32(0.5)), is_real(False), is_real("1")
    (True, True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(owner: str, name: str, value: Any, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) within the bounds, else ``ValueError``.

    Args:
        owner: who checks (a class or function name), the message's first word.
        name: the argument's name.
        value: what the caller gave.
        minimum: the smallest value allowed (None: no bound).
        maximum: the largest value allowed (None: no bound).

    Returns:
        ``int(value)``.

    Raises:
        ValueError: naming the owner, the argument, the bounds and the value given.

    >>> check_int("fit", "epochs", 3, minimum=1)
    3
    >>> check_int("fit", "epochs", 0, minimum=1)
    Traceback (most recent call last):
        ...
    ValueError: fit: epochs must be an integer >= 1, got 0
    """
    if (not is_int(value) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        raise ValueError(f"{owner}: {name} must be an integer{_bounds(minimum, maximum)}, got {value!r}")
    return int(value)


def check_real(owner: str, name: str, value: Any, minimum: float | None = None,
               maximum: float | None = None, *, finite: bool = True) -> float:
    """``value`` as a ``float`` if it is a real number (not a bool) within the bounds, else ``ValueError``.

    Args:
        owner: who checks (a class or function name), the message's first word.
        name: the argument's name.
        value: what the caller gave.
        minimum: the smallest value allowed, inclusive (None: no bound).
        maximum: the largest value allowed, inclusive (None: no bound).
        finite: refuse inf and nan (nan is always refused: it compares false to any bound).

    Returns:
        ``float(value)``.

    Raises:
        ValueError: naming the owner, the argument, the bounds and the value given.

    >>> check_real("SGD", "lr", 0.1, minimum=0.0)
    0.1
    >>> check_real("SGD", "lr", float("nan"), minimum=0.0)
    Traceback (most recent call last):
        ...
    ValueError: SGD: lr must be a finite number >= 0.0, got nan
    """
    ok = is_real(value) and not math.isnan(value) and (not finite or math.isfinite(value))
    if ok and minimum is not None:
        ok = value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"{owner}: {name} must be {kind}{_bounds(minimum, maximum)}, got {value!r}")
    return float(value)


_UNSIGNED = {n: np.dtype(f"u{n}") for n in (1, 2, 4, 8)}  # the same width, seen as unsigned


def out_of_range(indices: np.ndarray, size: int) -> int | None:
    """The first entry of an integer array outside ``[0, size)``, or None when every entry is inside.

    Embedding lookups, class targets and token ids all need this check before indexing. It takes
    ONE reduction: seen as unsigned integers of the same width, a negative index is larger than
    any valid one, so the maximum alone decides (``min()`` and ``max()`` are two passes, and on
    the one-token arrays of decoding each pass costs more than the lookup it guards).

    Args:
        indices: an integer array of any shape.
        size: the number of valid indices.

    Returns:
        The first offending value (in C order), or None.

    >>> out_of_range(np.array([[0, 3], [1, 2]]), 4) is None
    True
    >>> out_of_range(np.array([2, -1, 7]), 4)
    -1
    """
    if indices.size == 0:
        return None
    unsigned = indices.view(_UNSIGNED[indices.itemsize]) if indices.dtype.kind == "i" else indices
    if int(np.maximum.reduce(unsigned, axis=None)) < size:  # the ufunc: .max() adds Python layers
        return None
    return int(indices[(indices < 0) | (indices >= size)].flat[0])


__all__ = ["is_int", "is_real", "check_int", "check_real", "out_of_range"]
