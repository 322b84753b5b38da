"""The dtypes of the safetensors format, and exact conversions of the narrow floats.

Every dtype tag of the format is known here (:data:`SAFETENSORS_DTYPES`), with its bits per
element and the NumPy dtype it loads as, if NumPy has one. bfloat16 and the 8-bit floats have
no NumPy dtype: they are widened to float32 exactly (:func:`bfloat16_to_float32`,
:func:`float8_to_float32`), and floats are narrowed to bfloat16 rounding to nearest even
(:func:`float32_to_bfloat16`).

>>> bfloat16_to_float32(float32_to_bfloat16(np.array([1.0, -3.0], dtype=np.float32)))
array([ 1., -3.], dtype=float32)
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

import numpy as np


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
