"""Weight-only quantization for decoding, after torchao: int8 per output row, int4 in Q4_0 blocks.

Decoding a token multiplies one row of activations by every weight matrix, so its time is the
time to read the weights: int8 reads a quarter of float32's bytes, int4 an eighth. NumPy has no
integer BLAS, so the weights are widened back to float32 for the product, and *where* they are
widened decides the speed. Widening a whole matrix writes and re-reads a float32 copy as large as
the original (measured 0.14–0.20× of float32 on GPT-2's matrices); widening a block of rows at a
time into one reused float32 buffer of about 2 MiB (:data:`BLOCK_BYTES`) keeps the copy in the
cache, and BLAS multiplies it from there. That widening is NumPy's int8 -> float32 cast, and it
is the limit: on the 2-core development machine it converted 4.7–6.8 G weights/s reading from
memory, while float32 decoding streams its 4-byte weights at 14–23 GB/s (3.5–5.7 G weights/s)
in the layout `TinyGPT.eval` gives them. So the cast alone costs about what the float32 product
does, and GPT-2's matrices ran 0.75–0.90× of float32 (`benchmarks/quantization_gpt.py`, one
thread; against row-major float32 weights, nn.Linear's own layout, 0.72–1.17×). What int8 buys
here is memory: a quarter of the bytes on disk and resident.

Two formats:

- **int8, one float32 scale per output row** (:class:`Int8WeightOnlyLinear`): symmetric,
  ``q = round(w / s)`` with ``s = max|w_row| / 127``, q in [-127, 127]. The scale multiplies
  the output column, after the product: ``y = (x @ qᵀ) · s + b``.
- **int4 in llama.cpp's Q4_0 layout** (:class:`Int4WeightOnlyLinear`): each row is cut into
  blocks of 32 (``group_size``); a block is one float16 scale ``d`` and 16 bytes of nibbles,
  element j in the low nibble and element j + 16 in the high nibble of byte j, each value
  ``q`` in 0..15 meaning ``(q - 8) · d``. As llama.cpp, ``d = m / -8`` where m is the block's
  value of largest magnitude (with its sign), so m itself is stored exactly as q = 0.

:func:`quantize_` replaces a model's ``nn.Linear`` layers in place, as torchao's
``quantize_(model, Int8WeightOnlyConfig())``. The modules are for inference (no gradients).

>>> from tinytorch.core import nn, Tensor, no_grad
>>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))
>>> x = Tensor(np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32))
>>> with no_grad():
...     before = model(x).numpy()
...     quantize_(model, Int8WeightOnlyConfig())
...     after = model(x).numpy()
>>> type(model[0]).__name__, bool(np.abs(after - before).max() < 0.02)
('Int8WeightOnlyLinear', True)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..autograd import is_grad_enabled
from ..checks import is_int, out_of_range
from ..nn import Embedding, Linear, Module, Parameter
from ..tensor import Tensor
from .registry import check_linear_target, get_quantized_module_class

BLOCK_BYTES = 2 * 2**20
"""Bytes of the float32 buffer a block of weight rows is widened into: about an L2 cache."""

INT8_MAX = 127  # symmetric: -127..127, so -q is always representable
Q4_OFFSET = 8  # a Q4_0 nibble q in 0..15 means q - 8
GROUP_SIZES = (32, 64, 128, 256)  # torchao's; 32 is llama.cpp's Q4_0

_local = threading.local()  # one widening buffer per thread


def _scratch(size: int) -> np.ndarray:
    """A float32 buffer of ``size`` elements, reused by every call on this thread."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = _local.buffer = np.empty(max(size, BLOCK_BYTES // 4), np.float32)
    return buffer[:size]


def _float_weight(caller: str, weight: Any) -> np.ndarray:
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.ndim != 2 or w.dtype.kind != "f":
        raise ValueError(f"{caller}: weight must be a 2-D float array (out_features, in_features), "
                         f"got shape {w.shape} dtype {w.dtype}")
    if not np.isfinite(w).all():
        raise ValueError(f"{caller}: weight holds {int(w.size - np.isfinite(w).sum())} non-finite values")
    return w


# ----------------------------------------------------------------------------- int8, per row


def quantize_int8_rows(weight: Any) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per row: ``s = max|w_row| / 127``, ``q = round(w / s)``.

    An all-zero row gets scale 0 and zeros.

    Args:
        weight: (out_features, in_features) float array.

    Returns:
        ``(qweight, scale)``: int8 (out, in) and float32 (out,).

    Raises:
        ValueError: ``weight`` is not a 2-D float array, or holds NaN or infinity.

    >>> q, s = quantize_int8_rows(np.array([[0.5, -1.0, 0.25]], dtype=np.float32))
    >>> q.tolist(), s * 127
    ([[64, -127, 32]], array([1.], dtype=float32))
    """
    w = _float_weight("quantize_int8_rows", weight)
    amax = np.abs(w).max(axis=1).astype(np.float32)  # (out,)
    scale = amax / np.float32(INT8_MAX)
    divisor = np.where(scale > 0, scale, np.float32(1))[:, None]
    q = np.clip(np.rint(w / divisor), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


def dequantize_int8_rows(qweight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The float32 weights an int8 per-row tensor stands for: ``q · s`` (row by row).

    >>> dequantize_int8_rows(np.array([[64, -127]], np.int8), np.array([0.5], np.float32))
    array([[ 32. , -63.5]], dtype=float32)
    """
    return qweight.astype(np.float32) * scale.astype(np.float32)[:, None]


# ----------------------------------------------------------------------------- int4, Q4_0

def _check_group_size(caller: str, group_size: Any) -> int:
    if not is_int(group_size) or group_size not in GROUP_SIZES:
        raise ValueError(f"{caller}: group_size must be one of {GROUP_SIZES}, got {group_size!r}")
    return int(group_size)


def quantize_q4_0(weight: Any, group_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """int4 in llama.cpp's Q4_0 layout: per block of ``group_size`` a float16 scale and packed nibbles.

    For each block, ``d = m / -8`` with m the value of largest magnitude (sign kept), and each
    value becomes ``q = min(15, floor(w / d + 8.5))`` in 0..15, standing for ``(q - 8) · d``
    (llama.cpp's ``quantize_row_q4_0_ref``). Byte j of a block holds element j in its low nibble
    and element j + group_size/2 in its high nibble.

    Args:
        weight: (out_features, in_features) float array; in_features a multiple of group_size.
        group_size: elements per block (32 is Q4_0).

    Returns:
        ``(packed, scales)``: uint8 (out, in // 2) and float16 (out, in // group_size).

    Raises:
        ValueError: bad ``group_size``, in_features not a multiple of it, a non-finite weight,
            or a block whose scale overflows float16 (|w| over 524,256).

    >>> w = np.zeros((1, 32), np.float32); w[0, 0], w[0, 16], w[0, 1] = -8.0, 3.0, 1.0
    >>> packed, scales = quantize_q4_0(w)
    >>> float(scales[0, 0]), hex(packed[0, 0]), hex(packed[0, 1])  # d = -8 / -8 = 1: bytes 0 | 11 << 4, 9 | 8 << 4
    (1.0, '0xb0', '0x89')
    """
    g = _check_group_size("quantize_q4_0", group_size)
    w = _float_weight("quantize_q4_0", weight)
    out_features, in_features = w.shape
    if in_features % g:
        raise ValueError(f"quantize_q4_0: in_features ({in_features}) must be a multiple of group_size ({g})")
    blocks = w.astype(np.float32, copy=False).reshape(out_features, in_features // g, g)  # (N, G, g)
    at = np.abs(blocks).argmax(axis=2)[..., None]
    d = np.take_along_axis(blocks, at, axis=2)[..., 0] / np.float32(-Q4_OFFSET)  # (N, G)
    with np.errstate(over="ignore"):
        scales = d.astype(np.float16)
    if not np.isfinite(scales).all():
        raise ValueError("quantize_q4_0: a block's scale overflows float16 (a weight beyond ±524,256)")
    inverse = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)[..., None]
    q = np.minimum(15, np.floor(blocks * inverse + np.float32(8.5))).astype(np.uint8)  # (N, G, g), 0..15
    half = g // 2
    packed = q[..., :half] | (q[..., half:] << 4)  # (N, G, g/2)
    return packed.reshape(out_features, in_features // 2), scales


def _widen_q4_0(packed: np.ndarray, scales: np.ndarray, out: np.ndarray) -> None:
    """Unpack rows of Q4_0 into ``out`` (rows, in_features) float32: ``(q - 8) · d``.

    The nibbles are split with uint8 arithmetic and widened by two strided copies (a 256-entry
    lookup table with ``np.take`` ran 2.5x slower); the scale is one broadcast multiply.
    """
    rows, groups = scales.shape
    half = packed.shape[1] // groups
    nibbles = packed.reshape(rows, groups, half)  # (R, G, g/2)
    blocks = out.reshape(rows, groups, 2 * half)  # (R, G, g)
    np.copyto(blocks[..., :half], nibbles & 0x0F, casting="unsafe")
    np.copyto(blocks[..., half:], nibbles >> 4, casting="unsafe")
    blocks -= Q4_OFFSET
    blocks *= scales.astype(np.float32)[..., None]


def dequantize_q4_0(packed: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The float32 weights a Q4_0 tensor stands for: ``(q - 8) · d`` per block.

    Args:
        packed: uint8 (out, in // 2).
        scales: float16 (out, in // group_size).

    >>> packed, scales = quantize_q4_0(np.linspace(-1, 1, 32, dtype=np.float32)[None])
    >>> w = dequantize_q4_0(packed, scales)[0]  # d = -1 / -8: -1 is exact, +1 clips to 7 · d
    >>> float(scales[0, 0]), float(w[0]), float(w[-1])
    (0.125, -1.0, 0.875)
    """
    out = np.empty((packed.shape[0], 2 * packed.shape[1]), np.float32)
    _widen_q4_0(packed, scales, out)
    return out


def _positive(config: dict, key: str) -> int:
    value = config.get(key)
    if not is_int(value) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return int(value)


def _exact_keys(config: dict, keys: set[str]) -> None:
    """A stored config has exactly these keys (and ``scheme``): anything else is a corrupt file."""
    extra, missing = sorted(set(config) - keys - {"scheme"}), sorted(keys - set(config))
    if extra or missing:
        found = "; ".join(part for part in (f"unknown {extra}" if extra else "",
                                            f"missing {missing}" if missing else "") if part)
        raise ValueError(f"expected the keys {sorted(keys)}: {found}")


def _stored_group_size(config: dict, width: int) -> int:
    g = config["group_size"]
    if not is_int(g) or g not in GROUP_SIZES or width % g:
        raise ValueError(f"group_size must be one of {GROUP_SIZES} dividing {width}, got {g!r}")
    return int(g)


# ----------------------------------------------------------------------------- modules


def _input(module: Module, x: Any) -> np.ndarray:
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if not data.shape or data.shape[-1] != module.in_features:
        raise ValueError(f"{type(module).__name__} expected last dim {module.in_features}, got {tuple(data.shape)}")
    if isinstance(x, Tensor) and x.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{type(module).__name__} is for inference: it has no gradients; run it under "
                           "no_grad() (train the float model, then quantize)")
    return data


class _WeightOnlyLinear(Module):
    """A Linear whose weight is stored narrow and widened block by block for each product."""

    scheme: ClassVar[str]
    _extra_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, in_features: int, out_features: int, bias: np.ndarray | None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = Parameter(np.asarray(bias, np.float32), requires_grad=False)

    def _widen(self, start: int, stop: int, out: np.ndarray) -> None:
        """Write the float32 values of weight rows ``start:stop`` into ``out`` (rows, in)."""
        raise NotImplementedError

    def _scale_output(self, y: np.ndarray) -> None:
        """Apply whatever scale the widened rows left out (in place on (M, out))."""

    def forward(self, x: Any) -> Tensor:
        data = _input(self, x)
        lead = data.shape[:-1]
        x2 = data.reshape(-1, self.in_features).astype(np.float32, copy=False)  # (M, K)
        y = np.empty((x2.shape[0], self.out_features), np.float32)  # (M, N)
        rows = max(1, BLOCK_BYTES // (4 * self.in_features))
        buffer = _scratch(min(rows, self.out_features) * self.in_features)
        for start in range(0, self.out_features, rows):
            stop = min(self.out_features, start + rows)
            block = buffer[: (stop - start) * self.in_features].reshape(stop - start, self.in_features)
            self._widen(start, stop, block)  # (R, K) float32, in the cache
            np.matmul(x2, block.T, out=y[:, start:stop])  # (M, R)
        self._scale_output(y)
        if self.bias is not None:
            y += self.bias.data
        return Tensor(y.reshape(*lead, self.out_features))

    def dequantize(self) -> np.ndarray:
        """The float32 (out, in) weight the stored values stand for."""
        out = np.empty((self.out_features, self.in_features), np.float32)
        self._widen(0, self.out_features, out)
        scale = np.ones((1, self.out_features), np.float32)
        self._scale_output(scale)
        return out * scale.reshape(-1, 1)

    # The checkpoint protocol of tinytorch.core.quantization.serialization (see register_scheme).
    def scheme_config(self) -> dict[str, Any]:
        """The settings that, with the stored tensors, rebuild this module."""
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None}

    @classmethod
    def scheme_tensors(cls, config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
        """Tensor name -> (shape, dtype name) that a stored ``config`` needs; ValueError if malformed."""
        _exact_keys(config, {"in_features", "out_features", "bias"} | cls._extra_keys)
        out_features, in_features = _positive(config, "out_features"), _positive(config, "in_features")
        if not isinstance(config["bias"], bool):
            raise ValueError(f"bias must be true or false, got {config['bias']!r}")
        tensors = cls._stored(config, out_features, in_features)
        if config["bias"]:
            tensors["bias"] = ((out_features,), "float32")
        return tensors

    @classmethod
    def from_scheme(cls, config: dict, tensors: dict[str, np.ndarray]) -> _WeightOnlyLinear:
        """The module, from a stored config and its loaded tensors (held, not copied)."""
        return cls(*(tensors[name] for name in cls._stored(config, 1, config["in_features"])), tensors.get("bias"))

    check_target = staticmethod(check_linear_target)

    @property
    def weight_nbytes(self) -> int:
        """Bytes of the stored weight and its scales (what decoding reads per token)."""
        return sum(b.data.nbytes for b in self.buffers())


class Int8WeightOnlyLinear(_WeightOnlyLinear):
    """``y = x · (q · s)ᵀ + b`` with int8 ``q`` (out, in) and a float32 scale ``s`` per output row.

    Built from a Linear by :meth:`from_float` (or :func:`quantize_`). The product widens
    :data:`BLOCK_BYTES` of rows at a time into a reused float32 buffer, multiplies it by BLAS and
    scales the output columns. Inference only (under ``no_grad()`` when inputs need gradients).

    Shape: (..., in_features) -> (..., out_features).

    >>> from tinytorch.core import nn
    >>> layer = Int8WeightOnlyLinear.from_float(nn.Linear(16, 4))
    >>> layer.qweight.dtype, layer.scale.shape, layer(np.ones((2, 3, 16), np.float32)).shape
    (dtype('int8'), (4,), (2, 3, 4))
    """

    scheme = "int8_weight_only"

    def __init__(self, qweight: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None) -> None:
        out_features, in_features = qweight.shape
        super().__init__(in_features, out_features, bias)
        self.register_buffer("qweight", np.ascontiguousarray(qweight, np.int8))  # (out, in)
        self.register_buffer("scale", np.asarray(scale, np.float32))  # (out,)

    @classmethod
    def from_float(cls, linear: Linear) -> Int8WeightOnlyLinear:
        """Quantize ``linear``'s weight (its bias stays float32)."""
        qweight, scale = quantize_int8_rows(linear.weight.data)
        return cls(qweight, scale, None if linear.bias is None else linear.bias.data)

    @staticmethod
    def _stored(config: dict, out_features: int, in_features: int) -> dict[str, tuple[tuple[int, ...], str]]:
        return {"qweight": ((out_features, in_features), "int8"), "scale": ((out_features,), "float32")}

    def _widen(self, start: int, stop: int, out: np.ndarray) -> None:
        np.copyto(out, self.qweight.data[start:stop], casting="unsafe")

    def _scale_output(self, y: np.ndarray) -> None:
        y *= self.scale.data

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Int4WeightOnlyLinear(_WeightOnlyLinear):
    """A Linear with int4 weights in llama.cpp's Q4_0 layout (see :func:`quantize_q4_0`).

    ``qweight`` is uint8 (out, in // 2), two values a byte; ``scales`` float16
    (out, in // group_size). Each block of rows is unpacked and scaled into a reused float32
    buffer, then multiplied by BLAS. Inference only.

    Shape: (..., in_features) -> (..., out_features).

    >>> from tinytorch.core import nn
    >>> layer = Int4WeightOnlyLinear.from_float(nn.Linear(64, 4))
    >>> layer.qweight.shape, layer.scales.shape, layer(np.ones((1, 64), np.float32)).shape
    ((4, 32), (4, 2), (1, 4))
    """

    scheme = "int4_weight_only"
    _extra_keys = frozenset({"group_size"})

    def __init__(self, qweight: np.ndarray, scales: np.ndarray, bias: np.ndarray | None = None) -> None:
        out_features, packed_width = qweight.shape
        if scales.ndim != 2 or scales.shape[0] != out_features or not scales.shape[1] \
                or (2 * packed_width) % scales.shape[1]:
            raise ValueError(f"Int4WeightOnlyLinear: scales of shape {scales.shape} do not fit qweight {qweight.shape}")
        super().__init__(2 * packed_width, out_features, bias)
        self.group_size = _check_group_size("Int4WeightOnlyLinear", 2 * packed_width // scales.shape[1])
        self.register_buffer("qweight", np.ascontiguousarray(qweight, np.uint8))  # (out, in/2)
        self.register_buffer("scales", np.ascontiguousarray(scales, np.float16))  # (out, in/group)

    @classmethod
    def from_float(cls, linear: Linear, group_size: int = 32) -> Int4WeightOnlyLinear:
        """Quantize ``linear``'s weight in blocks of ``group_size`` (its bias stays float32)."""
        qweight, scales = quantize_q4_0(linear.weight.data, group_size)
        return cls(qweight, scales, None if linear.bias is None else linear.bias.data)

    @staticmethod
    def _stored(config: dict, out_features: int, in_features: int) -> dict[str, tuple[tuple[int, ...], str]]:
        g = _stored_group_size(config, in_features)
        return {"qweight": ((out_features, in_features // 2), "uint8"), "scales": ((out_features, in_features // g), "float16")}

    def scheme_config(self) -> dict[str, Any]:
        """The settings that, with the stored tensors, rebuild this module."""
        return {**super().scheme_config(), "group_size": self.group_size}

    def _widen(self, start: int, stop: int, out: np.ndarray) -> None:
        _widen_q4_0(self.qweight.data[start:stop], self.scales.data[start:stop], out)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, group_size={self.group_size}")


class _WeightOnlyEmbedding(Module):
    """An embedding that reads its rows from a quantized output head's storage (tied weights)."""

    scheme: ClassVar[str]
    head_class: ClassVar[type[_WeightOnlyLinear]]

    def __init__(self, head: _WeightOnlyLinear, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features
        self.head_config = {k: v for k, v in head.scheme_config().items() if k not in ("in_features", "out_features",
                                                                                        "bias")}
        self.padding_idx = padding_idx
        for name, buffer in head._buffers.items():
            self._buffers[name] = buffer  # the same Tensor: one copy of the table, two uses

    def forward(self, ids: Any) -> Tensor:
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{type(self).__name__} expected integer ids, got dtype {ids.dtype}")
        bad = out_of_range(ids, self.num_embeddings)
        if bad is not None:
            raise IndexError(f"{type(self).__name__}: ids must be in [0, {self.num_embeddings}), got {bad}")
        flat = ids.reshape(-1)
        return Tensor(self._rows(flat).reshape(*ids.shape, self.embedding_dim))

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # The checkpoint protocol (see tinytorch.core.quantization.serialization.register_scheme).
    def scheme_config(self) -> dict[str, Any]:
        """The settings that, with the stored tensors, rebuild this module."""
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, **self.head_config}

    @classmethod
    def _head_config(cls, config: dict) -> dict[str, Any]:
        _exact_keys(config, {"num_embeddings", "embedding_dim", "padding_idx"} | cls.head_class._extra_keys)
        n, k = _positive(config, "num_embeddings"), _positive(config, "embedding_dim")
        padding = config["padding_idx"]
        if padding is not None and not (is_int(padding) and 0 <= padding < n):
            raise ValueError(f"padding_idx must be null or in [0, {n}), got {padding!r}")
        extra = {key: config[key] for key in cls.head_class._extra_keys}
        return {"in_features": k, "out_features": n, "bias": False, **extra}

    @classmethod
    def scheme_tensors(cls, config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
        """Tensor name -> (shape, dtype name): the head's storage, which a tied file stores once."""
        return cls.head_class.scheme_tensors(cls._head_config(config))

    @classmethod
    def from_scheme(cls, config: dict, tensors: dict[str, np.ndarray]) -> _WeightOnlyEmbedding:
        """The module, from a stored config and its loaded tensors (held, not copied)."""
        head = cls.head_class.from_scheme(cls._head_config(config), tensors)
        return cls(head, config["padding_idx"])

    @classmethod
    def check_target(cls, config: dict, module: Any) -> None:
        """ValueError unless ``module`` is the float Embedding this config replaced."""
        if not isinstance(module, Embedding):
            raise ValueError(f"the model has a {type(module).__name__} there, not an Embedding")
        if (module.num_embeddings, module.embedding_dim) != (config["num_embeddings"], config["embedding_dim"]):
            raise ValueError(f"the model's Embedding is {module.num_embeddings} x {module.embedding_dim}, the "
                             f"file's {config['num_embeddings']} x {config['embedding_dim']}")

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim} (tied to a quantized head)"


class Int8WeightOnlyEmbedding(_WeightOnlyEmbedding):
    """The token embedding of a model whose tied output head is an `Int8WeightOnlyLinear`.

    Row i of the head's weight is token i's embedding, and its per-row scale is that
    embedding's scale, so the table is read from the head's int8 storage (no float copy).

    >>> from tinytorch.core import nn
    >>> head = Int8WeightOnlyLinear.from_float(nn.Linear(8, 10, bias=False))
    >>> emb = Int8WeightOnlyEmbedding(head)
    >>> emb(np.array([[1, 2]])).shape, emb.qweight is head.qweight
    ((1, 2, 8), True)
    """

    scheme = "int8_weight_only_embedding"
    head_class = Int8WeightOnlyLinear

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        return dequantize_int8_rows(self.qweight.data[ids], self.scale.data[ids])


class Int4WeightOnlyEmbedding(_WeightOnlyEmbedding):
    """The token embedding of a model whose tied output head is an `Int4WeightOnlyLinear`.

    >>> from tinytorch.core import nn
    >>> head = Int4WeightOnlyLinear.from_float(nn.Linear(32, 10, bias=False))
    >>> Int4WeightOnlyEmbedding(head)(np.array([3])).shape
    (1, 32)
    """

    scheme = "int4_weight_only_embedding"
    head_class = Int4WeightOnlyLinear

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        return dequantize_q4_0(self.qweight.data[ids], self.scales.data[ids])


# ----------------------------------------------------------------------------- quantize_


@dataclass(frozen=True)
class Int8WeightOnlyConfig:
    """torchao's config: int8 weights with one scale per output row (`Int8WeightOnlyLinear`).

    >>> Int8WeightOnlyConfig().linear_class.__name__
    'Int8WeightOnlyLinear'
    """

    linear_class: ClassVar[type] = Int8WeightOnlyLinear
    embedding_class: ClassVar[type] = Int8WeightOnlyEmbedding

    def quantize(self, linear: Linear) -> Int8WeightOnlyLinear:
        """The quantized replacement of ``linear``."""
        return Int8WeightOnlyLinear.from_float(linear)


@dataclass(frozen=True)
class Int4WeightOnlyConfig:
    """torchao's config: int4 weights in blocks of ``group_size`` (32: llama.cpp's Q4_0).

    >>> Int4WeightOnlyConfig(group_size=64).group_size
    64
    """

    group_size: int = 32
    linear_class: ClassVar[type] = Int4WeightOnlyLinear
    embedding_class: ClassVar[type] = Int4WeightOnlyEmbedding

    def __post_init__(self) -> None:
        _check_group_size("Int4WeightOnlyConfig", self.group_size)

    def quantize(self, linear: Linear) -> Int4WeightOnlyLinear:
        """The quantized replacement of ``linear``."""
        return Int4WeightOnlyLinear.from_float(linear, self.group_size)


def _is_linear(module: Module, fqn: str) -> bool:
    return isinstance(module, Linear)


def _replace(model: Module, fqn: str, new: Module) -> None:
    """Put ``new`` where ``fqn`` is, keeping the parent's order (a ModuleList indexes by it)."""
    parent = model
    *path, name = fqn.split(".")
    for part in path:
        parent = parent._modules[part]
    parent._modules[name] = new


def quantize_(model: Module, config: Any,
              filter_fn: Callable[[Module, str], bool] | None = None) -> None:
    """Replace ``model``'s layers by quantized ones, in place (torchao's API): the one entry point.

    Weight-only configs (`Int8WeightOnlyConfig`, `Int4WeightOnlyConfig`) replace Linear layers
    (decoding: the weights' bytes are the time). The W8A8 configs
    (`Int8DynamicActivationInt8WeightConfig`, `Int8StaticActivationInt8WeightConfig` with
    calibration batches) replace every layer in the quantization registry (``nn.Linear`` and
    vision's ``Conv2d``) by layers with exact integer GEMMs (`QuantizedLinear`, ...).

    Tied weights: when a quantized Linear's weight is also an ``nn.Embedding``'s weight (GPT-2's
    ``lm_head`` and ``wte``), the embedding is replaced too, by a module reading the same
    quantized storage (`Int8WeightOnlyEmbedding`, `Int4WeightOnlyEmbedding`): the model stays
    tied, no float copy of the table is kept, and a checkpoint stores it once. To keep the
    embedding in float32, exclude the head with ``filter_fn``; both then stay float32.

    Args:
        model: the model, changed in place (it cannot itself be a Linear).
        config: `Int8WeightOnlyConfig()`, `Int4WeightOnlyConfig(group_size=32)`,
            `Int8DynamicActivationInt8WeightConfig()` or `Int8StaticActivationInt8WeightConfig(batches)`.
        filter_fn: ``filter_fn(module, fully_qualified_name) -> bool`` picks the modules to
            quantize among the candidate layers (default: all of them).

    Raises:
        TypeError: ``config`` is not one of the configs above, or ``model`` is a bare Linear.
        ValueError: with int4, a chosen layer's in_features is not a multiple of group_size
            (named; exclude it with ``filter_fn``); or a weight is not finite.

    >>> from tinytorch.core import nn
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 3))
    >>> quantize_(model, Int4WeightOnlyConfig(group_size=32), filter_fn=lambda m, name: m.out_features > 3)
    >>> [type(m).__name__ for m in model]
    ['Int4WeightOnlyLinear', 'Linear']
    """
    from .api import Int8DynamicActivationInt8WeightConfig, Int8StaticActivationInt8WeightConfig

    w8a8 = (Int8DynamicActivationInt8WeightConfig, Int8StaticActivationInt8WeightConfig)
    if not isinstance(config, (Int8WeightOnlyConfig, Int4WeightOnlyConfig, *w8a8)):
        raise TypeError("quantize_: config must be Int8WeightOnlyConfig(), Int4WeightOnlyConfig(...), "
                        "Int8DynamicActivationInt8WeightConfig() or Int8StaticActivationInt8WeightConfig(batches), "
                        f"got {type(config).__name__}")
    if isinstance(config, w8a8):  # every registered layer (Linear, vision's Conv2d): integer GEMMs
        if not isinstance(model, Module) or get_quantized_module_class(type(model)) is not None:
            raise TypeError(f"quantize_: model must be a Module holding the layers to replace (it cannot be one "
                            f"itself), got {type(model).__name__}")
        config.apply(model, filter_fn)
        return
    if isinstance(model, Linear):
        raise TypeError("quantize_: model is itself a Linear, which cannot be replaced in place; use "
                        f"{config.linear_class.__name__}.from_float(layer)")
    chosen = filter_fn or _is_linear
    targets = [(fqn, m) for fqn, m in model.named_modules() if fqn and isinstance(m, Linear) and chosen(m, fqn)]
    if isinstance(config, Int4WeightOnlyConfig):
        bad = [f"{fqn} (in_features {m.in_features})" for fqn, m in targets if m.in_features % config.group_size]
        if bad:
            raise ValueError(f"quantize_: int4 needs in_features a multiple of group_size {config.group_size}: "
                             f"{', '.join(bad[:5])}; exclude them with filter_fn")
    embeddings: dict[int, list[tuple[str, Embedding]]] = {}
    for fqn, m in model.named_modules():
        if isinstance(m, Embedding):
            embeddings.setdefault(id(m.weight), []).append((fqn, m))
    done: dict[int, _WeightOnlyLinear] = {}  # id(float weight) -> its quantized module
    for fqn, linear in targets:
        key = id(linear.weight)
        first = done.get(key)
        if first is None:
            new = done[key] = config.quantize(linear)
        else:  # two Linears sharing one weight share its quantized arrays too
            new = type(first)(*(b.data for b in first._buffers.values()),
                              None if linear.bias is None else linear.bias.data)
        _replace(model, fqn, new)
        for efqn, embedding in embeddings.pop(key, []):
            _replace(model, efqn, config.embedding_class(new, embedding.padding_idx))


def weight_only_layers(model: Module) -> dict[str, Module]:
    """The weight-only quantized modules of ``model``, by name.

    >>> from tinytorch.core import nn
    >>> model = nn.Sequential(nn.Linear(32, 4))
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> list(weight_only_layers(model))
    ['0']
    """
    return {fqn: m for fqn, m in model.named_modules()
            if isinstance(m, (_WeightOnlyLinear, _WeightOnlyEmbedding))}


__all__ = [
    "BLOCK_BYTES", "Int8WeightOnlyLinear", "Int4WeightOnlyLinear", "Int8WeightOnlyEmbedding",
    "Int4WeightOnlyEmbedding", "Int8WeightOnlyConfig", "Int4WeightOnlyConfig", "quantize_",
    "quantize_int8_rows", "dequantize_int8_rows", "quantize_q4_0", "dequantize_q4_0",
    "weight_only_layers",
]
