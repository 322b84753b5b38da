"""Quantized layers that compute in integers: int8 weights (a scale per output channel), 8-bit
activations, one exact integer GEMM (`int_mm_exact`), float32 out.

For an output channel n with weight scale wₙ and activation scale s, zero point z::

    y[m, n] = s·wₙ · acc[m, n] + b[n],      acc = (qx - z) @ qwᵀ   (exact integers)

Activations are quantized with the observer's range (static: calibrated before ``convert``) or
each batch's own min and max (dynamic), straight into a float32 buffer of the integers qx - z:
clamping round(x/s) to [qmin - z, qmax - z] is the same as clamping round(x/s) + z to [qmin, qmax]
and subtracting z, and it costs one pass less. Centred so, zero padding is 0 again and the output
needs no zero-point correction (what int8 kernels do with a pass of z·Σₖ qw[n, k] over the
output). The centred values lie within ±255 for uint8 (±128 at z = 0), the weights within ±128,
so a float32 GEMM is exact over K ≤ 2^24 / (255·128) = 514 whatever the data; over any K when
the input bound times the weight's largest row L1 norm stays within 2^24 (`one_gemm_is_exact`,
known when the layer is built); else when every row's Σ|qx - z|·128 does (`rows_fit_one_gemm`,
one GEMV); beyond, K is split and the chunks summed in float64 (`chunked_mm`).

Memory: a layer holds its int8 weight, not a float32 copy of it (which would be 4x the int8
bytes, more than the float32 layer). BLAS multiplies floats, so each call widens the int8 weight
into the thread's shared float32 buffer (the weight-only layers' `BLOCK_BYTES` one), a block of
rows at a time where the weight does not fit it. At batch 64 that widening is what keeps the CNN's
fc1 (3136 -> 128) just under 0.8x its float32 layer's speed (`benchmarks/quantization_cnn.py`
and DESIGN.md §11 give the figures).

Outputs are dequantized to float32 (the layers that follow, ReLU, pooling, BatchNorm, run in
float), so each quantized layer quantizes its own input: what ONNX calls the QDQ form of W8A8.
The layers are inference only: their outputs carry no gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..nn.layers import Linear
from ..nn.module import Module
from ..tensor import Tensor
from .functional import (
    QDTYPES,
    choose_qparams,
    chunked_mm,
    one_gemm_is_exact,
    quantize_per_channel,
    round_clamp,
    rows_fit_one_gemm,
)
from .observers import ObserverBase, PerChannelMinMaxObserver
from .registry import check_linear_target, register_quantized_module
from .weight_only import BLOCK_BYTES, _scratch


def default_weight_observer() -> ObserverBase:
    """int8 symmetric, a scale per output channel: what every quantized layer here expects.

    >>> default_weight_observer()
    PerChannelMinMaxObserver(dtype=int8, qscheme=per_channel_symmetric, min_val=[], max_val=[])
    """
    return PerChannelMinMaxObserver(ch_axis=0, dtype="int8", qscheme="per_channel_symmetric")


class QuantizedGEMM(Module):
    """Base of the layers whose work is one integer GEMM: weight (Cout, K) in int8 with a scale
    per row, optional float bias, and the input's qparams (static) or none (dynamic).

    Subclasses turn their input into the (M, K) matrix of quantized activations (``Linear``: the
    input itself; vision's ``QuantizedConv2d``: im2col of the quantized image) and call
    `quantize_input`, `integer_gemm` and `dequantize_output`.

    Buffers (so ``state_dict`` holds the integers): ``weight_int8`` (Cout, K) int8, ``weight_scale``
    (Cout,) float32, ``bias`` (Cout,) float32 or absent, ``input_scale`` and ``input_zero_point``
    (static only, in the input dtype's range, ``input_dtype``). No float32 copy of the weight: each
    GEMM widens it into the thread's shared buffer (see the module's docstring). What the forward
    derives from the buffers (the weight's L1 bound, the static scales) is computed when the layer
    is built and after ``load_state_dict``: change the integers through ``load_state_dict``, not
    by writing into the buffers.

    Args:
        weight: the float weight as a (Cout, K) matrix, columns in the order of the subclass's GEMM.
        bias: (Cout,) or None.
        weight_observer: an int8 symmetric per-channel observer (it is run on ``weight`` here).
        input_observer: a calibrated observer of the input (static), or None (dynamic).

    >>> layer = QuantizedGEMM(np.array([[0.5, -1.0]]), None, None, None)   # one output, K = 2
    >>> layer.weight_int8.data.tolist(), round(float(layer.weight_scale.data[0]) * 127.5, 4)
    ([[64, -127]], 1.0)
    >>> q, scale, qrange = layer.quantize_input(np.array([[2.0, 1.0]], dtype=np.float32))
    >>> layer.dequantize_output(layer.integer_gemm(q, qrange), scale).round(1).tolist()   # 0.5·2 - 1·1
    [[0.0]]
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, weight_observer: ObserverBase | None,
                 input_observer: ObserverBase | None):
        super().__init__()
        owner = type(self).__name__
        obs = weight_observer if weight_observer is not None else default_weight_observer()
        if obs.dtype != "int8" or obs.qscheme != "per_channel_symmetric" or getattr(obs, "ch_axis", 0) != 0:
            raise ValueError(f"{owner}: weights must be int8 per_channel_symmetric along axis 0, got "
                             f"{obs.dtype} {obs.qscheme}")
        obs.reset_min_max_vals()  # the range of this weight, not of the weights seen in training
        obs(weight)
        scale, zero = obs.calculate_qparams()
        self.register_buffer("weight_int8", quantize_per_channel(weight, scale, zero, axis=0, dtype="int8").data)
        self.register_buffer("weight_scale", scale.astype(np.float32))
        self.register_buffer("bias", None if bias is None else np.asarray(bias, dtype=np.float32))
        self.dynamic = input_observer is None
        if not self.dynamic:
            if input_observer.dtype not in ("int8", "uint8") or input_observer.qscheme.startswith("per_channel"):
                raise ValueError(f"{owner}: the input observer must be int8 or uint8 per tensor, got "
                                 f"{input_observer.dtype} {input_observer.qscheme}")
            s, z = input_observer.calculate_qparams()
            self.input_dtype = input_observer.dtype
            self.register_buffer("input_scale", np.asarray(s, dtype=np.float32).reshape(()))
            self.register_buffer("input_zero_point", np.asarray(z, dtype=np.int32).reshape(()))
        self._attach_gemm()

    # The checkpoint protocol of tinytorch.core.quantization.serialization (see register_scheme):
    # the integers and scales are stored as they are; the layer's geometry goes in the config.
    def scheme_config(self) -> dict[str, Any]:
        """The settings that, with the stored tensors, rebuild this layer."""
        config = {"out_features": int(self.weight_int8.shape[0]), "in_features": int(self.weight_int8.shape[1]),
                  "bias": self.bias is not None, "dynamic": self.dynamic, **self._geometry()}
        if not self.dynamic:
            config["input_dtype"] = self.input_dtype
        return config

    def _geometry(self) -> dict[str, Any]:
        """The subclass's settings beyond the GEMM's (a convolution's kernel, stride...)."""
        return {}

    @classmethod
    def _check_geometry(cls, config: dict) -> None:
        """ValueError unless the subclass's settings in ``config`` are well formed."""

    @classmethod
    def scheme_tensors(cls, config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
        """Tensor name -> (shape, dtype name) a stored ``config`` needs; ValueError if malformed."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be an object, got {type(config).__name__}")
        cls._check_geometry(config)
        sizes = []
        for key in ("out_features", "in_features"):
            value = config.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
            sizes.append(value)
        for key in ("bias", "dynamic"):
            if not isinstance(config.get(key), bool):
                raise ValueError(f"{key} must be true or false, got {config.get(key)!r}")
        out_features, in_features = sizes
        tensors = {"weight_int8": ((out_features, in_features), "int8"), "weight_scale": ((out_features,), "float32")}
        if config["bias"]:
            tensors["bias"] = ((out_features,), "float32")
        if not config["dynamic"]:
            if config.get("input_dtype") not in ("int8", "uint8"):
                raise ValueError(f"input_dtype must be 'int8' or 'uint8', got {config.get('input_dtype')!r}")
            tensors["input_scale"] = ((), "float32")
            tensors["input_zero_point"] = ((), "int32")
        return tensors

    @classmethod
    def from_scheme(cls, config: dict, tensors: dict[str, np.ndarray]) -> QuantizedGEMM:
        """The layer, from a stored config and its loaded tensors (no float weight is needed)."""
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer.register_buffer("weight_int8", tensors["weight_int8"])
        layer.register_buffer("weight_scale", tensors["weight_scale"])
        layer.register_buffer("bias", tensors.get("bias"))
        layer.dynamic = config["dynamic"]
        if not layer.dynamic:
            scale = float(tensors["input_scale"])
            if not scale > 0:
                raise ValueError(f"{cls.__name__}: the stored input_scale must be positive, got {scale}")
            zero, (qmin, qmax) = int(tensors["input_zero_point"]), QDTYPES[config["input_dtype"]]
            if not qmin <= zero <= qmax:
                raise ValueError(f"{cls.__name__}: the stored input_zero_point {zero} is outside "
                                 f"{config['input_dtype']}'s [{qmin}, {qmax}]")
            layer.input_dtype = config["input_dtype"]
            layer.register_buffer("input_scale", tensors["input_scale"])
            layer.register_buffer("input_zero_point", tensors["input_zero_point"])
        layer._set_geometry(config)
        layer._attach_gemm()
        return layer.eval()

    def _set_geometry(self, config: dict) -> None:
        """Set the subclass's attributes from a stored config (after the buffers)."""

    @classmethod
    def float_weight_elements(cls, config: dict) -> int:
        """How many float weights the stored layer stands for (what float32 would take / 4)."""
        return config["out_features"] * config["in_features"]

    # What the forward needs that depends only on the buffers is computed once, here, when the
    # layer is built and again after load_state_dict (its post-hook): at batch 64 a 128 -> 10
    # layer's time is its NumPy calls, and fc1's exactness check would be a pass over the input.
    def _attach_gemm(self) -> None:
        self._derive_gemm()
        self.register_load_state_dict_post_hook(_rederive_gemm)

    def _derive_gemm(self) -> None:
        weight = self._buffers["weight_int8"].data
        cout, k = weight.shape
        # the largest row L1 norm: with it, one GEMM is exact for any K whose a_bound·L1 ≤ 2^24
        self._weight_l1 = int(np.abs(weight.astype(np.int64)).sum(axis=1).max(initial=0))
        # rows of the weight widened per GEMM: all of them when they fit the shared buffer
        self._block_rows = max(1, BLOCK_BYTES // (4 * max(k, 1)))
        self._input_qparams = None
        self._one_block = cout <= self._block_rows  # the whole weight widens into the buffer at once
        if not self.dynamic:
            scale = float(self._buffers["input_scale"].data)
            zero, (qmin, qmax) = int(self._buffers["input_zero_point"].data), QDTYPES[self.input_dtype]
            lo, hi = qmin - zero, qmax - zero
            # 0-d float32 arrays: a ufunc takes them as they are, where a Python or NumPy scalar is
            # converted on every call
            self._input_qparams = (scale, (lo, hi), tuple(np.array(v, np.float32) for v in (1 / scale, lo, hi)))
            self._output_scale = self._row_scale(scale)
            self._one_gemm = one_gemm_is_exact(max(-lo, hi), self._weight_l1)  # whatever the input

    def _row_scale(self, scale: float) -> np.ndarray:
        # scale is a float32 number, so the float32 product is the float64 one rounded once
        return self._buffers["weight_scale"].data.astype(np.float32) * np.float32(scale)

    def quantize_input(self, x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, float, tuple[int, int]]:
        """(qx - z as float32 integers, scale, (lo, hi)) of float input ``x``; [lo, hi] is the
        range qx - z is clamped to (what `int_mm_exact` sizes its chunks by). ``out``: a float32
        array of x's shape to write qx - z into (a convolution's padded buffer), else a new one.

        Static: the calibrated qparams. Dynamic: this batch's range, affine uint8, as PyTorch's
        dynamic quantization.
        """
        if self.dynamic:
            s, z = choose_qparams(x.min(), x.max(), "uint8")
            scale, zero, (qmin, qmax) = float(s), int(z), QDTYPES["uint8"]
            qrange = (qmin - zero, qmax - zero)
            q = round_clamp(x.astype(np.float32, copy=False), np.float32(1 / scale), 0, *qrange, out)
        else:
            scale, qrange, (inv_scale, lo, hi) = self._input_qparams
            q = round_clamp(x.astype(np.float32, copy=False), inv_scale, 0, lo, hi, out)
        return q, scale, qrange

    def integer_gemm(self, q: np.ndarray, qrange: tuple[int, int] = (-255, 255)) -> np.ndarray:
        """acc = (qx - z) @ qwᵀ, (M, K) -> (M, Cout), exact integers held in float32 (one GEMM)
        or float64 (`chunked_mm`'s chunks); ``qrange`` is the (lo, hi) range of qx - z.

        The int8 weight is widened for each call into the thread's shared float32 buffer (the
        weight-only layers' `BLOCK_BYTES` one), a block of rows at a time when it does not fit:
        the layer keeps no float32 copy, which would take 4x the int8 bytes. One GEMM is exact
        when the weight's largest row L1 norm times the input bound stays within 2^24, known
        without a look at ``q``; else when every row of ``q`` passes `rows_fit_one_gemm` (one
        GEMV); else K is cut into chunks.
        """
        lo, hi = qrange
        bound = max(-lo, hi)
        weight = self._buffers["weight_int8"].data
        cout, k = weight.shape
        one = one_gemm_is_exact(bound, self._weight_l1) or rows_fit_one_gemm(q, lo >= 0)
        rows = self._block_rows
        if rows >= cout:
            wide = _scratch(cout * k).reshape(cout, k)
            wide[...] = weight  # int8 -> float32; an item assignment skips np.copyto's dispatch
            return q @ wide.T if one else chunked_mm(q, wide.T, bound)  # (K, Cout): sgemm transposes for free
        acc = np.empty((q.shape[0], cout), np.float32 if one else np.float64)
        for r0 in range(0, cout, rows):
            r1 = min(r0 + rows, cout)
            wide = _scratch((r1 - r0) * k).reshape(r1 - r0, k)
            wide[...] = weight[r0:r1]
            if one:
                np.matmul(q, wide.T, out=acc[:, r0:r1])
            else:
                acc[:, r0:r1] = chunked_mm(q, wide.T, bound)
        return acc

    def dequantize_output(self, acc: np.ndarray, scale: float) -> np.ndarray:
        """s·wₙ·acc + b as float32 (M, Cout); a float32 ``acc`` is overwritten and returned."""
        if acc.dtype == np.float32:  # the static scale's row vector is made once, with the layer
            qparams = self._input_qparams
            row_scale = self._output_scale if qparams is not None and scale == qparams[0] else self._row_scale(scale)
        else:  # chunks summed in float64: the scale too, the product rounded to float32 once
            row_scale = self._buffers["weight_scale"].data * np.float64(scale)
        out = acc if acc.dtype == np.float32 else np.empty(acc.shape, np.float32)
        bias = self._buffers["bias"]
        if out.size < _FOLD_MIN_SIZE:  # a small output's time is its calls: no view, no tiling
            np.multiply(acc, row_scale, out=out)
            if bias is not None:
                out += bias.data
            return out
        r = _fold(out)
        rows = _rows(out, r)
        np.multiply(_rows(acc, r), _tile(row_scale, r), out=rows)
        if bias is not None:
            rows += _tile(bias.data, r)
        return out

    def gemm_forward(self, x2: np.ndarray) -> np.ndarray:
        """The layer on its (M, K) matrix of float inputs: quantize, integer GEMM, dequantize.

        A static layer on float32 input whose weight fits the widening buffer runs the three
        steps' arithmetic inline: the same NumPy calls (multiply, round, clamp, widen, GEMM,
        scale, bias, and the GEMV check where the weight's bound does not settle it), without
        the five Python calls and their checks between them, about 5 µs of a 128 -> 10 layer's
        24 at batch 64. Anything else (dynamic, chunks) takes the three methods.
        """
        qparams = self._input_qparams
        if qparams is None or x2.dtype is not _FLOAT32 or not self._one_block:
            q, scale, qrange = self.quantize_input(x2)
            return self.dequantize_output(self.integer_gemm(q, qrange), scale)
        _, (lo, _), (inv_scale, q_lo, q_hi) = qparams
        q = np.multiply(x2, inv_scale)
        np.rint(q, out=q)
        q.clip(q_lo, q_hi, out=q)
        if not (self._one_gemm or rows_fit_one_gemm(q, lo >= 0)):
            return self.dequantize_output(self.integer_gemm(q, qrange=qparams[1]), qparams[0])
        buffers = self._buffers
        weight = buffers["weight_int8"].data
        wide = _scratch(weight.size).reshape(weight.shape)
        wide[...] = weight
        acc = q @ wide.T
        if acc.size >= _FOLD_MIN_SIZE:  # long rows of few columns: dequantize_output's folded view
            return self.dequantize_output(acc, qparams[0])
        np.multiply(acc, self._output_scale, out=acc)  # the same products as dequantize_output's
        bias = buffers["bias"]
        if bias is not None:
            acc += bias.data
        return acc


def _rederive_gemm(layer: QuantizedGEMM, incompatible_keys: tuple) -> None:
    layer._derive_gemm()  # load_state_dict copied new integers or scales into the buffers


# A per-column operation on an (M, N) output with few columns (a convolution's 32 channels) runs
# as M short inner loops; on the same memory viewed as (M / r, r·N) with the column vector tiled
# r times, it is one long loop (conv1's dequantization: 0.80 -> 0.45 ms). Small outputs skip it:
# their time is the calls.
_FOLD_MIN_SIZE = 1 << 16
_FLOAT32 = np.dtype(np.float32)  # compared by identity: `dtype != np.float32` converts the type per call


def _fold(a: np.ndarray, width: int = 1024, min_size: int = _FOLD_MIN_SIZE) -> int:
    """How many rows of C-contiguous (M, N) ``a`` to view as one (r divides M; 1: as it is)."""
    m, n = a.shape
    return math.gcd(m, max(1, width // n)) if a.size >= min_size else 1


def _rows(a: np.ndarray, r: int) -> np.ndarray:
    return a if r == 1 else a.reshape(a.shape[0] // r, r * a.shape[1])


def _tile(v: np.ndarray, r: int) -> np.ndarray:
    return v if r == 1 else np.tile(v, r)


class QuantizedLinear(QuantizedGEMM):
    """A Linear layer in int8: y = s·wₙ·((qx - z) @ qWᵀ) + b, the integer sum exact (`int_mm_exact`).

    Build it from a float ``nn.Linear`` with `from_float` (what ``convert`` and
    ``quantize_dynamic`` do).

    Shape: (..., in_features) -> (..., out_features).

    >>> from tinytorch.core import nn, Tensor
    >>> float_layer = nn.Linear(16, 4)
    >>> q = QuantizedLinear.from_float(float_layer)          # dynamic: no input observer
    >>> x = Tensor(np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32))
    >>> bool(np.abs(q(x).numpy() - float_layer(x).numpy()).max() < 0.05)
    True
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, weight_observer=None, input_observer=None):
        super().__init__(weight, bias, weight_observer, input_observer)
        self.out_features, self.in_features = self.weight_int8.shape

    scheme = "int8_w8a8_linear"

    def _set_geometry(self, config: dict) -> None:
        self.out_features, self.in_features = self.weight_int8.shape

    check_target = staticmethod(check_linear_target)

    @classmethod
    def from_float(cls, layer: Linear, weight_observer: ObserverBase | None = None,
                   input_observer: ObserverBase | None = None) -> QuantizedLinear:
        """The quantized copy of a float ``nn.Linear`` (static with a calibrated ``input_observer``,
        dynamic without)."""
        if not isinstance(layer, Linear):
            raise TypeError(f"QuantizedLinear.from_float: layer must be an nn.Linear, got {type(layer).__name__}")
        bias = None if layer.bias is None else layer.bias.data
        return cls(layer.weight.data, bias, weight_observer, input_observer)

    def forward(self, x: Tensor) -> Tensor:
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        shape = data.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"QuantizedLinear expected last dim {self.in_features}, got {tuple(shape)}")
        if len(shape) == 2:
            return Tensor(self.gemm_forward(data))  # (M, K) -> (M, Cout)
        out = self.gemm_forward(data.reshape(-1, self.in_features))
        return Tensor(out.reshape(*shape[:-1], self.out_features))

    def extra_repr(self) -> str:
        mode = "dynamic" if self.dynamic else f"static, input scale={float(self.input_scale.data):.4g}"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights, {mode}"


register_quantized_module(Linear, QuantizedLinear)

__all__ = ["QuantizedGEMM", "QuantizedLinear", "default_weight_observer"]
