"""Quantized values and the integer kernels: ``quantize_per_tensor``, ``quantize_per_channel``,
``dequantize``, ``choose_qparams``, int4 packing and ``int_mm``, as ``torch.ao``'s quantized tensors.

An affine quantization maps a real x to an integer q of a small range [qmin, qmax]::

    q = clamp(round(x / scale) + zero_point, qmin, qmax)        x̂ = (q - zero_point) · scale

``round`` is round-half-to-even (NumPy's, and PyTorch's ``nearbyint``). *Symmetric* quantization
is the case zero_point = 0 (signed types) or the middle of the range (unsigned); *affine* picks
the zero point so that [min, max] fills the range. Either way 0.0 is exactly representable, so
zero padding and ReLU's zeros cost no error.

Dtypes (PyTorch's in brackets): ``"int8"`` [-128, 127] (qint8), ``"uint8"`` [0, 255] (quint8),
``"int4"`` [-8, 7] and ``"uint4"`` [0, 15] (quint4x2). 4-bit values are stored two per byte:
element 2i in the **low** nibble and element 2i+1 in the high nibble of byte i, as PyTorch's
quint4x2 (an odd count leaves the last high nibble zero).

NumPy has no integer BLAS: ``np.matmul`` on int8/int32 arrays runs 6-40x slower than float32
sgemm. ``int_mm`` therefore multiplies int8 values *held in float32* with sgemm: every product
is an integer of magnitude at most 128·128 = 2^14 and every partial sum stays an integer within
2^24 while K ≤ 1,024, and float32 represents all such integers exactly, so the result is the
exact integer product whatever order BLAS adds in. Longer K is one GEMM too when the data's own
bound allows it (every row's Σ|a|·128 within 2^24), else cut into chunks of 1,024 whose results
are summed exactly (in float64; ``int_mm`` returns int32 as ``torch._int_mm``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..tensor import Tensor

# dtype name -> (qmin, qmax); the 4-bit ones are stored packed two per byte.
QDTYPES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7), "uint4": (0, 15),
}
QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric")
_STORAGE = {"int8": np.int8, "uint8": np.uint8, "int4": np.uint8, "uint4": np.uint8}

# int_mm's chunk: the largest K whose partial sums of int8·int8 products (|p| ≤ 128·128) all
# stay within 2^24, below which float32 holds every integer exactly.
INT8_PRODUCT_BOUND = 128 * 128
EXACT_FLOAT32 = 1 << 24
INT_MM_CHUNK = EXACT_FLOAT32 // INT8_PRODUCT_BOUND  # 1,024


def check_qdtype(owner: str, dtype: Any) -> str:
    """``dtype`` as one of ``QDTYPES``'s names, else a ValueError naming it.

    Accepts the names and the matching NumPy dtypes (``np.int8``, ``np.uint8``).

    >>> check_qdtype("quantize_per_tensor", np.int8)
    'int8'
    >>> check_qdtype("quantize_per_tensor", "float16")
    Traceback (most recent call last):
        ...
    ValueError: quantize_per_tensor: dtype must be one of int8, uint8, int4, uint4, got 'float16'
    """
    name = dtype if isinstance(dtype, str) else None
    if name is None:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
    if name not in QDTYPES:
        raise ValueError(f"{owner}: dtype must be one of {', '.join(QDTYPES)}, got {dtype!r}")
    return name


def _finite_array(owner: str, name: str, x: Any) -> np.ndarray:
    arr = x.data if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{owner}: {name} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{owner}: {name} must be finite, got {bad} non-finite value(s)")
    return arr


def _check_scales(owner: str, name: str, scale: Any) -> np.ndarray:
    s = _finite_array(owner, name, scale).astype(np.float64)
    if (s <= 0).any():
        raise ValueError(f"{owner}: {name} must be > 0, got {s[s <= 0].ravel()[:4].tolist()}")
    return s


def _check_zero_points(owner: str, name: str, zero_point: Any, dtype: str) -> np.ndarray:
    z = np.asarray(zero_point)
    qmin, qmax = QDTYPES[dtype]
    if z.dtype.kind not in "iu" and not (z.dtype.kind == "f" and np.array_equal(z, np.round(z))):
        raise ValueError(f"{owner}: {name} must be integers, got {zero_point!r}")
    if ((z < qmin) | (z > qmax)).any():
        raise ValueError(f"{owner}: {name} must lie in [{qmin}, {qmax}] for {dtype}, got {z.ravel()[:4].tolist()}")
    return z.astype(np.int64)


def _check_axis(owner: str, axis: Any, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -ndim <= axis < ndim:
        raise ValueError(f"{owner}: axis must be an integer in [{-ndim}, {ndim - 1}] for a {ndim}-d input, got {axis!r}")
    return int(axis) % ndim


# ------------------------------------------------------------------------------- int4 packing


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Pack 4-bit integers (int4 in [-8, 7] or uint4 in [0, 15]) two per byte.

    Element 2i goes to the low nibble of byte i, element 2i+1 to the high nibble (PyTorch's
    quint4x2 order); the input is flattened and an odd count leaves the last high nibble zero.

    >>> pack_int4(np.array([1, 2, 3])).tolist()      # 0x21, 0x03
    [33, 3]
    >>> unpack_int4(pack_int4(np.array([-8, 7, -1])), 3, signed=True).tolist()
    [-8, 7, -1]
    """
    nibbles = (np.asarray(values).ravel().astype(np.int64) & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_int4(packed: np.ndarray, count: int, signed: bool) -> np.ndarray:
    """The first ``count`` 4-bit values of ``packed`` (see `pack_int4`), as int8.

    >>> unpack_int4(np.array([0x21, 0x03], dtype=np.uint8), 3, signed=False).tolist()
    [1, 2, 3]
    """
    packed = np.asarray(packed, dtype=np.uint8).ravel()
    out = np.empty(packed.size * 2, dtype=np.int8)
    out[0::2] = packed & 0xF
    out[1::2] = packed >> 4
    out = out[:count]
    if signed:
        out[out > 7] -= 16  # two's complement of a nibble
    return out


# ------------------------------------------------------------------------------- quantized tensor


@dataclass
class QTensor:
    """A quantized tensor: integer ``data`` with its ``scale`` and ``zero_point``.

    Per-tensor when ``axis`` is None (``scale`` a float, ``zero_point`` an int), per-channel
    along ``axis`` otherwise (one scale and zero point per index of that axis), as PyTorch's
    per_tensor_affine / per_channel_affine qtensors. 4-bit dtypes keep ``data`` packed (see
    `pack_int4`); ``int_repr()`` gives the integers unpacked, in ``shape``.

    Args:
        data: the stored integers: int8 or uint8 of ``shape``, or packed uint8 for 4-bit dtypes.
        scale: float (per tensor) or float32 array (per channel).
        zero_point: int (per tensor) or int64 array (per channel).
        axis: the channel axis, or None.
        dtype: ``"int8"``, ``"uint8"``, ``"int4"`` or ``"uint4"``.
        shape: the logical shape.

    >>> q = quantize_per_tensor(np.array([-1.0, 0.0, 0.5, 2.0]), 0.5, 2, "uint8")
    >>> q.int_repr().tolist(), dequantize(q).numpy().tolist()
    ([0, 2, 3, 6], [-1.0, 0.0, 0.5, 2.0])
    """

    data: np.ndarray
    scale: float | np.ndarray
    zero_point: int | np.ndarray
    axis: int | None
    dtype: str
    shape: tuple[int, ...]

    @property
    def qscheme(self) -> str:
        return "per_tensor_affine" if self.axis is None else "per_channel_affine"

    def int_repr(self) -> np.ndarray:
        """The integers, unpacked to int8 (or uint8) of ``shape``."""
        if self.dtype in ("int4", "uint4"):
            count = math.prod(self.shape)
            return unpack_int4(self.data, count, signed=self.dtype == "int4").reshape(self.shape)
        return self.data

    def dequantize(self) -> Tensor:
        """(q - zero_point) · scale as a float32 Tensor."""
        return dequantize(self)

    @property
    def nbytes(self) -> int:
        """Bytes of the integers (packed for 4-bit), not counting the scales."""
        return int(self.data.nbytes)

    def __repr__(self) -> str:
        per = "per_tensor" if self.axis is None else f"per_channel(axis={self.axis})"
        return f"QTensor(shape={self.shape}, dtype={self.dtype}, {per})"


def _channel_view(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """(C,) -> shape broadcasting along ``axis`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def round_clamp(x: np.ndarray, inv_scale: Any, zero_point: Any, qmin: int, qmax: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """clamp(round(x · inv_scale) + zero_point, qmin, qmax) in x's float dtype: the one rounding
    step of every quantizer here (the quantized layers quantize activations with it straight into
    a float32 buffer, ready for `int_mm`).

    >>> round_clamp(np.array([0.24, 0.26, 9.0], dtype=np.float32), 10.0, 0, -8, 7).tolist()
    [2.0, 3.0, 7.0]
    """
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    out = np.multiply(x, inv_scale, out=out, dtype=dtype)  # inv_scale cast to dtype first
    np.rint(out, out=out)  # half to even, as np.round
    # a pass saved where the zero point is 0 (centred activations); a plain 0 skips np.any's cost
    if not (isinstance(zero_point, int) and zero_point == 0) and np.any(zero_point):
        out += np.asarray(zero_point, dtype=dtype)
    return out.clip(qmin, qmax, out=out)  # the method: np.clip's dispatch costs a small layer 3 us


def _round_clamp(x: np.ndarray, inv_scale: np.ndarray, zero_point: np.ndarray, dtype: str) -> np.ndarray:
    return round_clamp(x, inv_scale, zero_point, *QDTYPES[dtype])


def _store(q: np.ndarray, dtype: str) -> np.ndarray:
    if dtype in ("int4", "uint4"):
        return pack_int4(q)
    return q.astype(_STORAGE[dtype])


def quantize_per_tensor(x: Any, scale: float, zero_point: int, dtype: Any = "int8") -> QTensor:
    """Quantize with one scale and zero point: q = clamp(round(x / scale) + zero_point, qmin, qmax).

    Args:
        x: a Tensor or array of finite reals.
        scale: the step between representable values, > 0.
        zero_point: the integer that represents 0.0, within the dtype's range.
        dtype: ``"int8"``, ``"uint8"``, ``"int4"`` or ``"uint4"`` (or ``np.int8``/``np.uint8``).

    Returns:
        A `QTensor`.

    Raises:
        ValueError: naming the argument: a bad dtype, scale ≤ 0 or non-finite, a zero point out
            of range, non-finite input.

    >>> q = quantize_per_tensor(np.array([-300.0, -1.2, 0.26, 300.0]), 0.1, 0, "int8")
    >>> q.int_repr().tolist()      # clamped at both ends; 2.6 rounds to 3
    [-128, -12, 3, 127]
    >>> quantize_per_tensor(np.ones(2), 0.0, 0)
    Traceback (most recent call last):
        ...
    ValueError: quantize_per_tensor: scale must be > 0, got [0.0]
    """
    owner = "quantize_per_tensor"
    dtype = check_qdtype(owner, dtype)
    arr = _finite_array(owner, "x", x)
    s = _check_scales(owner, "scale", scale)
    if s.size != 1:
        raise ValueError(f"{owner}: scale must be one number, got shape {s.shape}; use quantize_per_channel")
    z = _check_zero_points(owner, "zero_point", zero_point, dtype)
    if z.size != 1:
        raise ValueError(f"{owner}: zero_point must be one integer, got shape {z.shape}")
    s, z = float(s.ravel()[0]), int(z.ravel()[0])
    q = _round_clamp(arr, 1.0 / s, z, dtype)
    return QTensor(_store(q, dtype), s, z, None, dtype, arr.shape)


def quantize_per_channel(x: Any, scales: Any, zero_points: Any, axis: int, dtype: Any = "int8") -> QTensor:
    """Quantize with a scale and zero point per index of ``axis`` (per output channel for weights).

    Args:
        x: a Tensor or array of finite reals.
        scales: one step per channel, each > 0; shape (x.shape[axis],).
        zero_points: one integer per channel, within the dtype's range.
        axis: the channel axis (negative counts from the end).
        dtype: ``"int8"``, ``"uint8"``, ``"int4"`` or ``"uint4"``.

    Returns:
        A `QTensor` with ``axis`` set.

    >>> w = np.array([[0.1, -0.2], [4.0, 8.0]])
    >>> q = quantize_per_channel(w, [0.1, 4.0], [0, 0], axis=0, dtype="int8")
    >>> q.int_repr().tolist()
    [[1, -2], [1, 2]]
    >>> quantize_per_channel(w, [0.1, 4.0], [0, 0], axis=2)
    Traceback (most recent call last):
        ...
    ValueError: quantize_per_channel: axis must be an integer in [-2, 1] for a 2-d input, got 2
    """
    owner = "quantize_per_channel"
    dtype = check_qdtype(owner, dtype)
    arr = _finite_array(owner, "x", x)
    axis = _check_axis(owner, axis, arr.ndim)
    channels = arr.shape[axis]
    s = _check_scales(owner, "scales", scales).ravel()
    z = _check_zero_points(owner, "zero_points", zero_points, dtype).ravel()
    for name, v in (("scales", s), ("zero_points", z)):
        if v.size != channels:
            raise ValueError(f"{owner}: {name} must have x.shape[{axis}] = {channels} entries, got {v.size}")
    q = _round_clamp(arr, _channel_view(1.0 / s, axis, arr.ndim), _channel_view(z, axis, arr.ndim), dtype)
    return QTensor(_store(q, dtype), s.astype(np.float32), z, axis, dtype, arr.shape)


def dequantize(q: QTensor) -> Tensor:
    """(q - zero_point) · scale, a float32 Tensor of ``q.shape``.

    >>> q = quantize_per_channel(np.array([[1.0, -1.0], [3.0, 6.0]]), [0.5, 3.0], [0, 0], axis=0)
    >>> dequantize(q).numpy().tolist()
    [[1.0, -1.0], [3.0, 6.0]]
    """
    if not isinstance(q, QTensor):
        raise TypeError(f"dequantize: q must be a QTensor, got {type(q).__name__}")
    ints = q.int_repr().astype(np.float32)
    ndim = len(q.shape)
    if q.axis is None:
        return Tensor((ints - np.float32(q.zero_point)) * np.float32(q.scale))
    scale = _channel_view(np.asarray(q.scale, dtype=np.float32), q.axis, ndim)
    zero = _channel_view(np.asarray(q.zero_point, dtype=np.float32), q.axis, ndim)
    return Tensor((ints - zero) * scale)


# ------------------------------------------------------------------------------- qparams


def choose_qparams(min_val: Any, max_val: Any, dtype: Any = "int8", symmetric: bool = False,
                   eps: float = float(np.finfo(np.float32).eps)) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point that map [min_val, max_val] onto the dtype's range, as torch.ao's
    observers compute them (``calculate_qparams``).

    The range is first widened to include 0 (so 0.0 is exact). Affine::

        scale = (max - min) / (qmax - qmin),   zero_point = clamp(qmin - round(min / scale), qmin, qmax)

    Symmetric: scale = max(|min|, |max|) / ((qmax - qmin) / 2), zero_point 0 for signed types and
    (qmin + qmax + 1) / 2 for unsigned ones. A scale below ``eps`` (an all-zero input) becomes
    ``eps``.

    Args:
        min_val: the smallest observed value (a number, or an array for per-channel).
        max_val: the largest (same shape).
        dtype: the quantized dtype.
        symmetric: symmetric instead of affine.
        eps: the smallest scale.

    Returns:
        (scale float32 array, zero_point int64 array), each of ``min_val``'s shape.

    >>> s, z = choose_qparams(-1.0, 3.0, "uint8")
    >>> round(float(s) * 255, 5), int(z)     # scale 4/255; -1.0 / (4/255) = -63.75 -> zero point 64
    (4.0, 64)
    >>> s, z = choose_qparams(-1.0, 3.0, "int8", symmetric=True)
    >>> round(float(s) * 127.5, 5), int(z)
    (3.0, 0)
    """
    owner = "choose_qparams"
    dtype = check_qdtype(owner, dtype)
    lo = _finite_array(owner, "min_val", min_val).astype(np.float64)
    hi = _finite_array(owner, "max_val", max_val).astype(np.float64)
    if lo.shape != hi.shape:
        raise ValueError(f"{owner}: min_val and max_val must have one shape, got {lo.shape} and {hi.shape}")
    if (lo > hi).any():
        raise ValueError(f"{owner}: min_val must be <= max_val, got {lo.ravel()[:4].tolist()} > {hi.ravel()[:4].tolist()}")
    qmin, qmax = QDTYPES[dtype]
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    if symmetric:
        scale = np.maximum(np.maximum(-lo, hi) / ((qmax - qmin) / 2), eps)
        zero = np.full(lo.shape, 0 if qmin < 0 else (qmin + qmax + 1) // 2, dtype=np.int64)
    else:
        scale = np.maximum((hi - lo) / (qmax - qmin), eps)
        zero = np.clip(qmin - np.round(lo / scale), qmin, qmax).astype(np.int64)
    return scale.astype(np.float32), zero


# ------------------------------------------------------------------------------- integer GEMM


def one_gemm_is_exact(a_bound: int, b_l1: int) -> bool:
    """Whether one float32 GEMM of integers is exact whatever order BLAS adds in: every partial
    sum of column n is at most Σₖ |a[m, k]|·|b[k, n]| ≤ ``a_bound``·Σₖ |b[k, n]| in magnitude,
    so the largest column L1 norm ``b_l1`` times ``a_bound`` within 2^24 keeps every partial sum
    an integer float32 holds. The worst case, b_l1 = 128·K, is `INT_MM_CHUNK` for int8 × int8.

    >>> one_gemm_is_exact(128, 128 * 1024), one_gemm_is_exact(128, 128 * 1025)
    (True, False)
    >>> one_gemm_is_exact(255, 3136 * 20)   # a weight whose rows average |w| = 20 over K = 3,136
    True
    """
    return int(a_bound) * int(b_l1) <= EXACT_FLOAT32


def int_mm_exact(a: np.ndarray, b: np.ndarray, a_bound: int = 128, nonnegative: bool = False,
                 b_l1: int | None = None) -> np.ndarray:
    """The exact integer product of integer matrices (M, K) @ (K, N), as floats, at sgemm speed.

    Every partial sum BLAS forms for row m and column n is at most Σₖ |a[m, k]|·|b[k, n]| in
    magnitude, so when that stays within 2^24, one float32 GEMM over all of K is exact in any
    summation order. Two bounds need no look at ``a``'s data (`one_gemm_is_exact`): the worst
    case, every |a| at ``a_bound`` and every |b| at 128, allows K ≤ 2^24 // (a_bound·128)
    (`INT_MM_CHUNK`, 1,024, for int8 × int8); a known weight's largest column L1 norm ``b_l1``
    (a quantized layer computes it once) allows any K with a_bound·b_l1 ≤ 2^24. Otherwise K is
    checked against the data, the rows' L1 norms times 128 (one GEMV; a ``nonnegative`` ``a``
    needs no ``abs`` pass first): post-ReLU activations are mostly small, so the CNN's
    3,136-long fc1 is one GEMM. Where the data could overflow, K is cut into chunks of the
    worst-case length, each one exact GEMM, summed in float64 (exact to 2^53). The quantized
    layers take the float32 result as it is and dequantize it in place: casting to int32 and
    back would cost two passes.

    Args:
        a: (M, K) int8, or float32 holding integers of magnitude ≤ ``a_bound`` (the quantized
            layers pass activations minus their zero point, within ±255).
        b: (K, N) int8, or float32 holding int8 values. An int8 ``b`` is widened into float32
            in its own memory order (a transposed view of a (N, K) weight widens its contiguous
            rows, and sgemm takes the transpose for free): whole for one GEMM, a chunk at a time
            into a reused buffer otherwise.
        a_bound: the largest magnitude in ``a`` (``b``'s is 128).
        nonnegative: ``a`` holds no negative value (its L1 norms need no ``abs``); the quantized
            layers know it from their clamping range (z at the bottom of it).
        b_l1: the largest Σₖ |b[k, n]| over b's columns, if known (default 128·K, the worst case).

    Returns:
        (M, N) C-contiguous, float32 (one GEMM) or float64 (chunks), holding the exact integers.

    >>> a = np.full((1, 2048), -128, dtype=np.int8)
    >>> r = int_mm_exact(a, a.T)
    >>> r.dtype, int(r[0, 0]) == 2048 * 128 * 128
    (dtype('float64'), True)
    >>> small = np.ones((1, 2048), dtype=np.int8)       # Σ|a|·128 = 2^18: one GEMM is exact
    >>> int_mm_exact(small, small.T, nonnegative=True).dtype
    dtype('float32')
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"int_mm: needs (M, K) @ (K, N), got {a.shape} @ {b.shape}")
    for name, v in (("a", a), ("b", b)):
        if v.dtype not in (np.int8, np.float32):
            raise ValueError(f"int_mm: {name} must be int8 or float32 holding int8 values, got {v.dtype}")
    if not isinstance(a_bound, (int, np.integer)) or not 1 <= a_bound <= EXACT_FLOAT32 // 128:
        raise ValueError(f"int_mm: a_bound must be an integer in [1, {EXACT_FLOAT32 // 128}], got {a_bound!r}")
    a = a.astype(np.float32, copy=False)
    if one_gemm_is_exact(a_bound, 128 * a.shape[1] if b_l1 is None else b_l1) or rows_fit_one_gemm(a, nonnegative):
        return a @ b.astype(np.float32, copy=False)  # an int8 b widened whole, in its memory order
    return chunked_mm(a, b, a_bound)


def rows_fit_one_gemm(a: np.ndarray, nonnegative: bool = False) -> bool:
    """Whether one float32 GEMM of the integers ``a`` (M, K) by any int8 matrix is exact: every
    row's L1 norm times 128 within 2^24. The norms are one GEMV (twice as fast as
    ``a.sum(axis=1)``), exact below 2^24; a ``nonnegative`` ``a`` needs no ``abs`` pass first.

    >>> rows_fit_one_gemm(np.full((2, 3000), 40, np.float32), nonnegative=True)   # 128·120,000
    True
    >>> rows_fit_one_gemm(np.full((2, 3000), 255, np.float32), nonnegative=True)
    False
    """
    m, k = a.shape
    l1 = (a if nonnegative else np.abs(a)) @ np.ones(k, np.float32)
    return bool(m) and float(l1.max()) <= EXACT_FLOAT32 // 128


def chunked_mm(a: np.ndarray, b: np.ndarray, a_bound: int) -> np.ndarray:
    """(M, K) float32 integers of magnitude ≤ ``a_bound`` @ (K, N) int8 values (int8, or float32
    holding them), exact whatever the data: K cut into equal chunks of at most
    2^24 // (a_bound·128), each one exact float32 GEMM, summed in float64 (exact to 2^53).

    >>> a = np.full((1, 2048), 255, np.float32)
    >>> int(chunked_mm(a, np.full((2048, 1), -128, np.int8), 255)[0, 0]) == -255 * 128 * 2048
    True
    """
    m, k = a.shape
    n = b.shape[1]
    limit = EXACT_FLOAT32 // (int(a_bound) * 128)
    transposed = b.flags.f_contiguous and not b.flags.c_contiguous
    # equal chunks (a multiple of 16 floats, so every chunk starts 64-byte aligned) rather than
    # full ones and a sliver: 3,136 = 7 x 448 instead of 6 x 514 + 52
    chunk = min(limit, -(-k // -(-k // limit) // 16) * 16)
    if b.dtype != np.int8:
        buf = None
    elif transposed:
        buf = np.empty((n, chunk), dtype=np.float32)  # widened rows of the (N, K) original
    else:
        buf = np.empty((chunk, n), dtype=np.float32)

    def widened(k0: int, k1: int) -> np.ndarray:
        if buf is None:
            return b[k0:k1]
        if transposed:
            np.copyto(buf[:, : k1 - k0], b.T[:, k0:k1], casting="unsafe")
            return buf[:, : k1 - k0].T
        np.copyto(buf[: k1 - k0], b[k0:k1], casting="unsafe")
        return buf[: k1 - k0]

    acc = np.zeros((m, n), dtype=np.float64)
    part = np.empty((m, n), dtype=np.float32)
    for k0 in range(0, k, chunk):
        k1 = min(k0 + chunk, k)
        np.matmul(a[:, k0:k1], widened(k0, k1), out=part)
        acc += part
    return acc


def int_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact int32 product of int8 matrices (M, K) @ (K, N), at float32 sgemm speed, as
    ``torch._int_mm`` (through `int_mm_exact`; NumPy's integer matmul is 6-40x slower).

    Args:
        a: (M, K) int8, or float32 holding int8 values.
        b: (K, N) int8, or float32 holding int8 values.

    Returns:
        (M, N) int32.

    >>> a = np.array([[127, -128]], dtype=np.int8)
    >>> int_mm(a, np.array([[127], [-128]], dtype=np.int8)).tolist()
    [[32513]]
    """
    if a.ndim == 2 and a.shape[1] * INT8_PRODUCT_BOUND >= 1 << 31:
        raise ValueError(f"int_mm: K = {a.shape[1]} could overflow int32 (K must be < 131,072)")
    return int_mm_exact(a, b, 128).astype(np.int32)


__all__ = [
    "QDTYPES", "QSCHEMES", "QTensor", "quantize_per_tensor", "quantize_per_channel", "dequantize",
    "choose_qparams", "round_clamp", "pack_int4", "unpack_int4", "int_mm", "int_mm_exact", "one_gemm_is_exact",
    "rows_fit_one_gemm", "chunked_mm", "check_qdtype", "INT_MM_CHUNK",
]
