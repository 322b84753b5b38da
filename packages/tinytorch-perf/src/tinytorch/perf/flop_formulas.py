"""FLOP and byte formulas: closed forms per layer type, and the table that counts each op.

This module is the one source of every FLOP count in TinyTorch. The closed forms
(``linear_flops``, ``conv2d_flops``, ...) give a layer's cost from its shapes and settings;
``FLOP_FORMULAS`` maps each op name (``Function.op``) to the closed form that counts it from the
op's arrays and keyword settings; ``count_forward_op`` and ``count_backward_op`` apply the table
to an op that ran. The tracer (``tinytorch.perf.flops.FLOPsCounter``) only attributes these
counts to modules.

Convention: **1 multiply-add = 2 FLOPs**. Matrix-multiply and convolution FLOPs
(``matmul_flops``) are reported apart from elementwise FLOPs (bias adds, activations, norms,
softmax...), so the matmul/conv figure can be compared one to one with PyTorch's
``torch.utils.flop_counter.FlopCounterMode`` (which counts no bias adds or elementwise ops).

Closed forms (B batch, N rows, I/O features, L sequence, d model width, h heads):

* Linear: 2·N·I·O matmul, + N·O bias.
* Conv2d: 2·B·Cout·Hout·Wout·(Cin/groups)·kh·kw, + B·Cout·Hout·Wout bias, with
  Hout = floor((H + 2·pad - dil·(kh-1) - 1)/stride) + 1.
* Attention (Q, K, V and output projections + the two batched products):
  8·B·L·d² + 4·B·L²·d matmul; elementwise: 4·B·L·d bias + B·h·L²·(1 scale + 1 causal mask
  + 5 softmax).
* Elementwise costs per output element (documented, not hardware facts): add, sub, mul, div,
  neg, abs, relu, clamp, where, masked_fill, dropout, pow: 1; exp, log, sqrt, tanh: 1 (one
  transcendental = 1 FLOP); sigmoid 4; GELU 5 (erf form) or 9 (tanh form); softmax and
  log_softmax 5; reductions (sum, mean, max) 1 per input element, var 3; fake quantization 6
  (scale, round, add the zero point, clamp, subtract it, scale back).
* LayerNorm over rows of D: 5 per element + 1 per element each for weight and bias + 2 per row.
* BatchNorm (1d, 2d, sync): 8 per element in training (statistics + normalize + affine), 4 in
  eval; 2 fewer per element without the affine part.
* GroupNorm with G groups: LayerNorm's 5 per element + 1 each for weight and bias + 2 per
  (sample, group).
* RMSNorm over rows of D: 3 per element (square, sum, scale) + 1 for the weight + 3 per row
  (mean, eps, reciprocal square root).
* Pooling: one op per window element, Cout·Hout·Wout·kh·kw per image; adaptive average
  pooling: one add per input element.
* Cross-entropy over (N, C): 5·N·C + N.
* Embedding, padding, reshape, permute, indexing, concat: 0 FLOPs (they only move bytes).

Bytes are the compulsory traffic of the op: every input array read once and the output written
once (no cache reuse is assumed inside an op, no write-allocate); this is what "arithmetic
intensity = FLOPs / bytes" uses. For backward, matmul-like ops cost one forward's matmul per
input gradient produced (2x forward when both operands need one), and elementwise backward
costs one FLOP per element of each input gradient produced.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinytorch.core.checks import is_int

__all__ = [
    "OpCount", "conv2d_output_size",
    "linear_flops", "conv2d_flops", "attention_flops", "pool2d_flops",
    "adaptive_avg_pool2d_flops", "batchnorm2d_flops", "layernorm_flops", "groupnorm_flops",
    "rmsnorm_flops", "activation_flops",
    "softmax_flops", "embedding_flops", "cross_entropy_flops", "matmul_flops",
    "sdpa_flops", "reduction_flops", "ELEMENTWISE_COST", "REDUCTION_COST", "CONVENTION",
    "FLOP_FORMULAS", "MOVEMENT_OPS", "OpFormula", "register_flop_formula", "count_forward_op",
    "count_backward_op",
]

CONVENTION = "1 multiply-add = 2 FLOPs; matmul/conv FLOPs are counted apart from elementwise FLOPs"


@dataclass
class OpCount:
    """FLOPs split into matmul/conv and elementwise, plus compulsory bytes moved.

    Attributes:
        matmul_flops: matrix-multiply and convolution FLOPs (1 multiply-add = 2), comparable with
            PyTorch's ``FlopCounterMode``.
        elementwise_flops: bias adds, activations, norms, softmax, ...
        bytes: every input read once and the output written once.

    Counts add up: ``a + b``. ``flops`` is the total and ``intensity`` = flops / bytes.

    >>> c = OpCount(matmul_flops=100, elementwise_flops=10, bytes=55)
    >>> c.flops, c.intensity, (c + c).bytes
    (110, 2.0, 110)
    """

    matmul_flops: int = 0
    elementwise_flops: int = 0
    bytes: int = 0

    @property
    def flops(self) -> int:
        return self.matmul_flops + self.elementwise_flops

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte (0 when nothing moves)."""
        return self.flops / self.bytes if self.bytes else 0.0

    def __add__(self, other: OpCount) -> OpCount:
        return OpCount(self.matmul_flops + other.matmul_flops,
                       self.elementwise_flops + other.elementwise_flops, self.bytes + other.bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"flops": self.flops, "matmul_flops": self.matmul_flops,
                "elementwise_flops": self.elementwise_flops, "bytes": self.bytes,
                "intensity": self.intensity}

    def _repr_html_(self) -> str:
        """The counts as a one-row table (Jupyter)."""
        from tinytorch.core.viz import html_table

        return html_table(("FLOPs", "matmul/conv FLOPs", "elementwise FLOPs", "bytes", "FLOP/byte"),
                          [(f"{self.flops:,}", f"{self.matmul_flops:,}", f"{self.elementwise_flops:,}",
                            f"{self.bytes:,}", f"{self.intensity:.2f}")], CONVENTION, right=range(5))


def _pair(v: Any, name: str, minimum: int = 1) -> tuple[int, int]:
    try:
        a, b = (v, v) if is_int(v) else v
    except (TypeError, ValueError):
        a = b = None
    if not (is_int(a) and is_int(b)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    pair = int(a), int(b)
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return pair


def _positive(name: str, value: int) -> int:
    if not is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------ closed forms


def matmul_flops(a_shape: Sequence[int], b_shape: Sequence[int], itemsize: int = 4) -> OpCount:
    """a @ b with NumPy broadcasting: 2·(batch)·M·K·N FLOPs.

    Args:
        a_shape: (..., M, K) (or (K,)).
        b_shape: (..., K, N) (or (K,)).
        itemsize: bytes per element (4 for float32).

    >>> matmul_flops((8, 64, 32), (32, 16)).matmul_flops == 2 * 8 * 64 * 32 * 16
    True
    """
    a2 = (1, *a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = (*b_shape, 1) if len(b_shape) == 1 else tuple(b_shape)
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: shapes {tuple(a_shape)} and {tuple(b_shape)} are not aligned")
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    out = math.prod(batch) * a2[-2] * b2[-1]
    return OpCount(2 * out * a2[-1], 0,
                   itemsize * (math.prod(a_shape) + math.prod(b_shape) + out))


def linear_flops(n: int, in_features: int, out_features: int, bias: bool = True,
                 itemsize: int = 4) -> OpCount:
    """Linear on (n, in) -> (n, out): 2·n·I·O matmul + n·O bias.

    Args:
        n: rows (batch x any leading dimensions).
        in_features: I.
        out_features: O.
        bias: whether a bias is added (n·O elementwise FLOPs).
        itemsize: bytes per element; bytes = itemsize·(n·I + O·I + O + n·O).

    >>> c = linear_flops(32, 784, 128)
    >>> c.matmul_flops, c.elementwise_flops
    (6422528, 4096)
    """
    n, i, o = (_positive(k, v) for k, v in (("rows", n), ("in_features", in_features),
                                            ("out_features", out_features)))
    params = o * i + (o if bias else 0)
    return OpCount(2 * n * i * o, n * o if bias else 0, itemsize * (n * i + params + n * o))


def conv2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1) -> int:
    """One spatial output size of a convolution or pooling window:
    floor((size + 2·padding - dilation·(kernel - 1) - 1) / stride) + 1.

    Raises:
        ValueError: the input is too small for the window.

    >>> conv2d_output_size(32, 3, stride=1, padding=1), conv2d_output_size(32, 3, stride=2)
    (32, 15)
    """
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out <= 0:
        raise ValueError(
            f"conv2d: input size {size} is too small for kernel {kernel} (stride {stride}, "
            f"padding {padding}, dilation {dilation})")
    return out


def conv2d_flops(input_shape: Sequence[int], out_channels: int, kernel_size: Any = 3,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True, itemsize: int = 4) -> tuple[OpCount, tuple[int, ...]]:
    """Conv2d on ``input_shape`` (B, C, H, W) or (C, H, W): (count, output shape).

    2·B·Cout·Hout·Wout·(Cin/groups)·kh·kw matmul FLOPs, plus B·Cout·Hout·Wout for the bias.

    Args:
        input_shape: (B, C, H, W), or (C, H, W) for a batch of one.
        out_channels: Cout.
        kernel_size: an int or (kh, kw); ``stride``, ``padding`` and ``dilation`` likewise.
        groups: channel groups (Cin and Cout must be divisible by it).
        bias: count the bias add.
        itemsize: bytes per element.

    >>> count, shape = conv2d_flops((3, 32, 32), 64, kernel_size=3, padding=1)
    >>> count.matmul_flops, count.elementwise_flops, shape
    (3538944, 65536, (1, 64, 32, 32))
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"conv2d input_shape must be (C, H, W) or (B, C, H, W), got {input_shape}")
    b, c, h, w = shape
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding", minimum=0)
    dh, dw = _pair(dilation, "dilation")
    _positive("out_channels", out_channels)
    _positive("groups", groups)
    if c % groups or out_channels % groups:
        raise ValueError(f"conv2d: groups={groups} must divide in_channels={c} and "
                         f"out_channels={out_channels}")
    ho = conv2d_output_size(h, kh, sh, ph, dh)
    wo = conv2d_output_size(w, kw, sw, pw, dw)
    out = b * out_channels * ho * wo
    weights = out_channels * (c // groups) * kh * kw + (out_channels if bias else 0)
    count = OpCount(2 * out * (c // groups) * kh * kw, out if bias else 0,
                    itemsize * (b * c * h * w + weights + out))
    return count, (b, out_channels, ho, wo)


def attention_flops(batch: int, seq_len: int, d_model: int, num_heads: int = 1,
                    causal: bool = True, bias: bool = True, itemsize: int = 4) -> OpCount:
    """Multi-head self-attention (projections included): 8·B·L·d² + 4·B·L²·d matmul FLOPs.

    Four ``linear_flops`` projections of d to d plus ``sdpa_flops`` of the h heads: the FLOPs
    are exactly those the tracer counts for a layer built that way. Bytes: the four projections
    (input, weights, outputs) plus the score matrix written and read once per product and
    softmax (an unfused layer). Elementwise: the biases, and per score a scale, the causal mask
    (if ``causal``) and 5 for softmax.

    Args:
        batch: B.
        seq_len: L.
        d_model: d (divisible by ``num_heads``).
        num_heads: h.
        causal: count the mask.
        bias: count the projection biases.
        itemsize: bytes per element.

    >>> attention_flops(1, 128, 256, num_heads=8).matmul_flops == 8 * 128 * 256**2 + 4 * 128**2 * 256
    True
    """
    b, L, d, h = (_positive(k, v) for k, v in (("batch", batch), ("seq_len", seq_len),
                                                ("d_model", d_model), ("num_heads", num_heads)))
    if d % h:
        raise ValueError(f"attention: d_model={d} must be divisible by num_heads={h}")
    projection = linear_flops(b * L, d, d, bias=bias, itemsize=itemsize)
    per_head = (b, h, L, d // h)
    core = sdpa_flops(per_head, per_head, per_head, masked=causal, itemsize=itemsize)
    # Unfused, the score matrix also travels: Q·Kᵀ writes it, softmax reads and writes it,
    # the product with V reads it (sdpa_flops counts only q, k, v and the output).
    scores = b * h * L * L
    return projection + projection + projection + projection + core + OpCount(
        0, 0, itemsize * 4 * scores)


def _pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                      ceil_mode: bool) -> int:
    out = conv2d_output_size(size, kernel, stride, padding, dilation)
    if ceil_mode and (size + 2 * padding - dilation * (kernel - 1) - 1) % stride:
        out += 1
        if (out - 1) * stride >= size + padding:  # the last window would start in the padding
            out -= 1
    return out


def pool2d_flops(input_shape: Sequence[int], kernel_size: Any, stride: Any = None,
                 padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False, itemsize: int = 4
                 ) -> tuple[OpCount, tuple[int, ...]]:
    """Max/avg pooling: one op per window element; returns (count, output shape).

    Args:
        input_shape: (B, C, H, W) or (C, H, W).
        kernel_size: an int or (kh, kw); ``stride`` (default: the kernel), ``padding`` and
            ``dilation`` likewise.
        ceil_mode: round the output size up, as PyTorch (a window must start inside the
            padded input).
        itemsize: bytes per element.

    >>> count, shape = pool2d_flops((1, 16, 8, 8), kernel_size=2)
    >>> count.elementwise_flops, shape
    (1024, (1, 16, 4, 4))
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    b, c, h, w = shape
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride if stride is not None else kernel_size, "stride")
    ph, pw = _pair(padding, "padding", minimum=0)
    dh, dw = _pair(dilation, "dilation")
    ho = _pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    wo = _pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    out = b * c * ho * wo
    return OpCount(0, out * kh * kw, itemsize * (b * c * h * w + out)), (b, c, ho, wo)


def adaptive_avg_pool2d_flops(input_shape: Sequence[int], output_size: Any = 1,
                              itemsize: int = 4) -> tuple[OpCount, tuple[int, ...]]:
    """Adaptive average pooling to ``output_size``: one add per input element.

    Returns (count, output shape).

    >>> count, shape = adaptive_avg_pool2d_flops((2, 64, 7, 7))
    >>> count.elementwise_flops, shape
    (6272, (2, 64, 1, 1))
    """
    shape = tuple(int(s) for s in input_shape)
    b, c = shape[0], shape[1]
    oh, ow = _pair(output_size, "output_size")
    n_in = math.prod(shape)
    out = b * c * oh * ow
    return OpCount(0, n_in, itemsize * (n_in + out)), (b, c, oh, ow)


def batchnorm2d_flops(input_shape: Sequence[int], training: bool = True, affine: bool = True,
                      itemsize: int = 4) -> OpCount:
    """BatchNorm2d over (B, C, H, W): 8 FLOPs per element in training (statistics,
    normalize, affine), 4 in eval (6 and 2 without the affine part).

    >>> batchnorm2d_flops((1, 2, 2, 2)).elementwise_flops, batchnorm2d_flops((1, 2, 2, 2), training=False).elementwise_flops
    (64, 32)
    """
    n = math.prod(int(s) for s in input_shape)
    c = int(input_shape[1])
    per = (6 if training else 2) + (2 if affine else 0)
    return OpCount(0, per * n, itemsize * (2 * n + (2 * c if affine else 0) + 2 * c))


def layernorm_flops(input_shape: Sequence[int], normalized_size: int, weight: bool = True,
                    bias: bool = True, itemsize: int = 4) -> OpCount:
    """LayerNorm over rows of ``normalized_size``: 5 per element, +1 each for weight and bias,
    +2 per row.

    >>> layernorm_flops((4, 8), 8).elementwise_flops == 4 * 8 * 7 + 2 * 4
    True
    """
    n = math.prod(int(s) for s in input_shape)
    rows = n // normalized_size
    elem = n * (5 + int(weight) + int(bias)) + 2 * rows
    params = normalized_size * (int(weight) + int(bias))
    return OpCount(0, elem, itemsize * (2 * n + params))


def groupnorm_flops(input_shape: Sequence[int], num_groups: int, weight: bool = True,
                    bias: bool = True, itemsize: int = 4) -> OpCount:
    """GroupNorm over (N, C, *) in ``num_groups`` groups: 5 per element, +1 each for weight and
    bias, +2 per (sample, group).

    >>> groupnorm_flops((2, 4, 3), 2).elementwise_flops == 24 * 7 + 2 * 2 * 2
    True
    """
    n = math.prod(int(s) for s in input_shape)
    c, groups = int(input_shape[1]), _positive("num_groups", num_groups)
    elem = n * (5 + int(weight) + int(bias)) + 2 * int(input_shape[0]) * groups
    return OpCount(0, elem, itemsize * (2 * n + c * (int(weight) + int(bias))))


def rmsnorm_flops(input_shape: Sequence[int], normalized_size: int, weight: bool = True,
                  itemsize: int = 4) -> OpCount:
    """RMSNorm over rows of ``normalized_size``: 3 per element (square, sum, scale), +1 for the
    weight, +3 per row (mean, eps, reciprocal square root).

    >>> rmsnorm_flops((4, 8), 8).elementwise_flops == 4 * 8 * 4 + 3 * 4
    True
    """
    n = math.prod(int(s) for s in input_shape)
    rows = n // _positive("normalized_size", normalized_size)
    return OpCount(0, n * (3 + int(weight)) + 3 * rows,
                   itemsize * (2 * n + (normalized_size if weight else 0)))


#: FLOPs per output element of elementwise ops, by (lower-case) op name
ELEMENTWISE_COST: dict[str, int] = {
    "add": 1, "sub": 1, "mul": 1, "div": 1, "neg": 1, "abs": 1, "relu": 1, "clamp": 1,
    "where": 1, "masked_fill": 1, "dropout": 1, "pow": 1, "pow_scalar": 1,
    "exp": 1, "log": 1, "sqrt": 1, "tanh": 1, "sigmoid": 4, "gelu": 5, "gelu_tanh": 9,
    "softmax": 5, "log_softmax": 5, "fake_quantize": 6,
}


def activation_flops(name: str, numel: int, itemsize: int = 4) -> OpCount:
    """Elementwise activation (relu, gelu, gelu_tanh, sigmoid, tanh, ...) on ``numel`` elements.

    Costs per element come from ``ELEMENTWISE_COST`` (relu 1, sigmoid 4, gelu 5, gelu_tanh 9);
    bytes are one read and one write per element. Names are op names, case-insensitive.

    >>> activation_flops("gelu", 1000).elementwise_flops
    5000
    """
    key = name.lower()
    if key not in ELEMENTWISE_COST:
        raise ValueError(f"unknown activation {name!r}; expected one of "
                         f"{', '.join(sorted(ELEMENTWISE_COST))}")
    return OpCount(0, ELEMENTWISE_COST[key] * numel, itemsize * 2 * numel)


def softmax_flops(numel: int, itemsize: int = 4) -> OpCount:
    """Softmax over ``numel`` elements: 5 FLOPs per element (max, subtract, exp, sum, divide).

    >>> softmax_flops(10).elementwise_flops
    50
    """
    return OpCount(0, 5 * numel, itemsize * 2 * numel)


def embedding_flops(num_ids: int, dim: int, itemsize: int = 4, id_itemsize: int = 8) -> OpCount:
    """A gather: no FLOPs; reads the ids and the picked rows, writes the output.

    >>> embedding_flops(16, 32).flops, embedding_flops(16, 32).bytes
    (0, 4224)
    """
    return OpCount(0, 0, id_itemsize * num_ids + 2 * itemsize * num_ids * dim)


def cross_entropy_flops(n: int, classes: int, itemsize: int = 4, id_itemsize: int = 8) -> OpCount:
    """Fused softmax + negative log-likelihood over (n, classes): 5·n·C + n FLOPs.

    >>> cross_entropy_flops(4, 10).elementwise_flops
    204
    """
    return OpCount(0, 5 * n * classes + n, itemsize * n * classes + id_itemsize * n + itemsize)


def sdpa_flops(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int],
               masked: bool = False, dropout: bool = False, itemsize: int = 4) -> OpCount:
    """Scaled dot-product attention softmax(Q·Kᵀ·scale + mask)·V, without projections.

    Matmul: 2·L·S·E (Q·Kᵀ) + 2·L·S·Ev (weights·V) per batch-and-head; elementwise per score:
    1 scale, 1 mask add (if ``masked``), 5 softmax, 1 dropout (if ``dropout``).

    Args:
        q_shape: (..., L, E); ``k_shape`` (..., S, E); ``v_shape`` (..., S, Ev).
        masked: an additive mask (causal or given) is applied.
        dropout: dropout on the attention weights.
        itemsize: bytes per element; bytes = q, k, v read and the output written.

    >>> c = sdpa_flops((2, 4, 8, 16), (2, 4, 8, 16), (2, 4, 8, 16), masked=True)
    >>> c.matmul_flops == 4 * 2 * 4 * 8 * 8 * 16, c.elementwise_flops == 2 * 4 * 8 * 8 * 7
    (True, True)
    """
    batch = math.prod(q_shape[:-2])
    L, E, S, Ev = q_shape[-2], q_shape[-1], k_shape[-2], v_shape[-1]
    scores = batch * L * S
    elem = scores * (1 + int(masked) + 5 + int(dropout))
    nbytes = itemsize * (math.prod(q_shape) + math.prod(k_shape) + math.prod(v_shape)
                         + batch * L * Ev)
    return OpCount(2 * scores * E + 2 * scores * Ev, elem, nbytes)


#: FLOPs per input element of reductions, by op name
REDUCTION_COST: dict[str, int] = {"sum": 1, "mean": 1, "max": 1, "var": 3}


def reduction_flops(op: str, numel: int, itemsize: int = 4) -> OpCount:
    """sum, mean, max (1 per input element) or var (3) over ``numel`` input elements.

    >>> reduction_flops("var", 100).elementwise_flops
    300
    """
    if op not in REDUCTION_COST:
        raise ValueError(f"unknown reduction {op!r}; expected one of {', '.join(REDUCTION_COST)}")
    return OpCount(0, REDUCTION_COST[op] * numel, itemsize * numel)


# ------------------------------------------------------------------------------ op table
#
# One formula per op name (as torch.utils.flop_counter registers one per aten op). The tracer
# looks up ``fn.op`` and calls the formula with the op's input arrays, its output and the
# keyword settings it was applied with (completed with the defaults of the op's ``forward``).
# A formula reads only shapes and those settings: never a Function's private attributes.


@dataclass(frozen=True)
class OpFormula:
    """How one op is counted: its ``kind`` (how its backward is costed) and its ``count``.

    Attributes:
        kind: see ``register_flop_formula``.
        count: ``count(inputs, output, settings) -> OpCount`` from the op's input arrays, its
            output array and its keyword settings.

    >>> formula = FLOP_FORMULAS["max_pool2d"]
    >>> settings = dict(kernel=(3, 3), stride=(1, 1), padding=(0, 0), dilation=(1, 1), ceil_mode=False)
    >>> formula.kind, formula.count((np.ones((1, 4, 8, 8)),), None, settings).elementwise_flops
    ('pool', 1296)
    """

    kind: str  # matmul, conv, attention, norm, pool, loss, reduction, elementwise, movement
    count: Callable[[tuple, Any, Mapping[str, Any]], OpCount]


#: op name -> OpFormula; every op declared by a Function in core, vision and language is here
FLOP_FORMULAS: dict[str, OpFormula] = {}


def register_flop_formula(*ops: str, kind: str):
    """Decorator: ``formula(inputs, output, settings) -> OpCount`` counts the ops ``ops``.

    Args:
        ops: op names (``Function.op``), e.g. ``"max_pool2d"``.
        kind: ``"matmul"``, ``"conv"`` or ``"attention"`` (backward costs one forward matmul per
            operand gradient), or ``"norm"``, ``"pool"``, ``"loss"``, ``"reduction"``,
            ``"elementwise"``, ``"movement"`` (backward: one FLOP per input-gradient element,
            none for movement).

    >>> @register_flop_formula("doc_square", kind="elementwise")
    ... def _square(inputs, output, settings):
    ...     return OpCount(0, output.size, 0)
    >>> FLOP_FORMULAS["doc_square"].kind
    'elementwise'
    >>> del FLOP_FORMULAS["doc_square"]
    """
    def decorate(formula):
        for op in ops:
            if op in FLOP_FORMULAS:
                raise ValueError(f"register_flop_formula: op {op!r} already has a formula")
            FLOP_FORMULAS[op] = OpFormula(kind, formula)
        return formula
    return decorate


@register_flop_formula("matmul", kind="matmul")
def _matmul(inputs, output, settings):
    return matmul_flops(inputs[0].shape, inputs[1].shape)


@register_flop_formula("linear", kind="matmul")
def _linear(inputs, output, settings):
    x, weight = inputs[0], inputs[1]  # weight (out_features, in_features)
    return linear_flops(x.size // x.shape[-1], weight.shape[1], weight.shape[0],
                        bias=len(inputs) > 2)


@register_flop_formula("conv2d", kind="conv")
def _conv2d(inputs, output, settings):
    x, weight = inputs[0], inputs[1]  # weight (Cout, Cin/groups, kh, kw)
    count, _ = conv2d_flops(x.shape, weight.shape[0], tuple(weight.shape[2:]),
                            settings["stride"], settings["padding"], settings["dilation"],
                            settings["groups"], bias=len(inputs) > 2)
    return count


@register_flop_formula("max_pool2d", kind="pool")
def _max_pool2d(inputs, output, settings):
    count, _ = pool2d_flops(inputs[0].shape, settings["kernel"], settings["stride"],
                            settings["padding"], settings["dilation"], settings["ceil_mode"])
    return count


@register_flop_formula("avg_pool2d", kind="pool")
def _avg_pool2d(inputs, output, settings):
    count, _ = pool2d_flops(inputs[0].shape, settings["kernel"], settings["stride"],
                            settings["padding"], 1, settings["ceil_mode"])
    return count


@register_flop_formula("adaptive_avg_pool2d", kind="pool")
def _adaptive_avg_pool2d(inputs, output, settings):
    return adaptive_avg_pool2d_flops(inputs[0].shape, settings["output_size"])[0]


@register_flop_formula("batch_norm2d", "batch_norm", kind="norm")
def _batch_norm(inputs, output, settings):
    return batchnorm2d_flops(inputs[0].shape, training=bool(settings["training"]),
                             affine=len(inputs) > 1)


@register_flop_formula("sync_batch_norm", kind="norm")
def _sync_batch_norm(inputs, output, settings):
    # Always batch statistics (it exists only for training); the Allreduce of the per-channel
    # sums moves 3 numbers per channel and is no arithmetic worth counting.
    return batchnorm2d_flops(inputs[0].shape, training=True, affine=len(inputs) > 1)


@register_flop_formula("layer_norm", kind="norm")
def _layer_norm(inputs, output, settings):
    x = inputs[0]
    normalized = math.prod(x.shape[x.ndim - settings["normalized_ndim"]:])
    return layernorm_flops(x.shape, normalized, weight=len(inputs) > 1, bias=len(inputs) > 2)


@register_flop_formula("group_norm", kind="norm")
def _group_norm(inputs, output, settings):
    return groupnorm_flops(inputs[0].shape, settings["num_groups"], weight=len(inputs) > 1,
                           bias=len(inputs) > 2)


@register_flop_formula("rms_norm", kind="norm")
def _rms_norm(inputs, output, settings):
    x = inputs[0]
    normalized = math.prod(x.shape[x.ndim - settings["normalized_ndim"]:])
    return rmsnorm_flops(x.shape, normalized, weight=len(inputs) > 1)


@register_flop_formula("cross_entropy", kind="loss")
def _cross_entropy(inputs, output, settings):
    logits = inputs[0]
    return cross_entropy_flops(logits.size // logits.shape[-1], logits.shape[-1])


@register_flop_formula("kl_div", kind="loss")
def _kl_div(inputs, output, settings):
    x, target = inputs[:2]
    n = math.prod(np.broadcast_shapes(x.shape, target.shape))
    # per element: log p (exp with log_target), log p - input, the product with p, the p > 0
    # select; one more to sum them unless reduction="none"
    per = 4 + (settings["reduction"] != "none")
    return OpCount(0, per * n, x.dtype.itemsize * (x.size + target.size + output.size))


@register_flop_formula("softmax", "log_softmax", kind="elementwise")
def _softmax(inputs, output, settings):
    return softmax_flops(output.size)


@register_flop_formula("gelu", kind="elementwise")
def _gelu(inputs, output, settings):
    return activation_flops("gelu_tanh" if settings["approximate"] == "tanh" else "gelu",
                            output.size)


_ELEMENTWISE_OPS = ("add", "sub", "mul", "div", "neg", "abs", "relu", "clamp", "where",
                    "masked_fill", "dropout", "pow", "pow_scalar", "exp", "log", "sqrt", "tanh",
                    "sigmoid", "fake_quantize")


def _elementwise(op: str):
    def formula(inputs, output, settings):
        return activation_flops(op, output.size)  # ELEMENTWISE_COST[op] per output element
    return formula


def _reduction(op: str):
    def formula(inputs, output, settings):
        return reduction_flops(op, inputs[0].size)
    return formula


for _op in _ELEMENTWISE_OPS:
    register_flop_formula(_op, kind="elementwise")(_elementwise(_op))
for _op in REDUCTION_COST:
    register_flop_formula(_op, kind="reduction")(_reduction(_op))


@register_flop_formula("scaled_dot_product_attention", kind="attention")
def _sdpa(inputs, output, settings):
    q, k, v = inputs[:3]
    return sdpa_flops(q.shape, k.shape, v.shape, masked=settings["bias"] is not None,
                      dropout=settings["dropout_p"] > 0)


@register_flop_formula("packed_self_attention", kind="attention")
def _packed_self_attention(inputs, output, settings):
    b, t, c3 = inputs[0].shape
    heads = settings["num_heads"]
    hs = c3 // 3 // heads
    # Decoding with a KV cache: the T queries see S = cached + T keys. Observers run right after
    # the forward, when the cache already holds the new keys.
    cache = settings.get("kv_cache")
    s = t if cache is None else cache.length
    # A padding mask (key_bias) and the causal mask are combined before the scores: one add
    # either way; a single query needs no causal mask (it sees every key).
    masked = (bool(settings["is_causal"]) and t > 1) or settings.get("key_bias") is not None
    return sdpa_flops((b, heads, t, hs), (b, heads, s, hs), (b, heads, s, hs), masked=masked,
                      dropout=settings["dropout_p"] > 0)


#: ops that only move or pick bytes: 0 FLOPs
MOVEMENT_OPS = ("reshape", "permute", "expand", "getitem", "concat", "stack", "cast", "embedding",
                "pad")


@register_flop_formula(*MOVEMENT_OPS, kind="movement")
def _movement(inputs, output, settings):
    return OpCount()




def _nbytes(x: Any) -> int:
    if isinstance(x, np.ndarray):
        return x.nbytes
    if isinstance(x, (tuple, list)):
        return sum(_nbytes(v) for v in x)
    return 0


def _first_array(x: Any) -> np.ndarray | None:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (tuple, list)):
        for v in x:
            if isinstance(v, np.ndarray):
                return v
    return None


@functools.cache
def _forward_defaults(cls: type) -> dict[str, Any]:
    """Keyword defaults of an op's ``forward`` (the settings ``apply`` may leave out)."""
    try:
        parameters = inspect.signature(cls.forward).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def count_forward_op(fn: Any, inputs: tuple, output: Any,
                     settings: Mapping[str, Any] | None = None) -> tuple[OpCount, str]:
    """The FLOPs and bytes of one executed op, and its kind (``"unknown"`` if not in the table).

    The formula is ``FLOP_FORMULAS[fn.op]``, given the op's settings completed with its
    ``forward``'s defaults; bytes are the arrays really read and written. An op with no formula
    is counted as one FLOP per output element.

    Raises:
        ValueError: the op's formula needs a setting it was not applied with (named).

    >>> from tinytorch.core import Tensor, register_op_observer
    >>> seen = []
    >>> with register_op_observer(lambda phase, fn, i, o, s, settings:
    ...                           seen.append(count_forward_op(fn, i, o, settings))):
    ...     y = Tensor(np.ones((2, 3), np.float32)).gelu(approximate="tanh")
    >>> seen[0][0].elementwise_flops, seen[0][1]   # 9 FLOPs per element for the tanh form
    (54, 'elementwise')
    """
    arrays = tuple(a for a in inputs if isinstance(a, np.ndarray))
    out = _first_array(output)
    nbytes = sum(a.nbytes for a in arrays) + _nbytes(output)
    formula = FLOP_FORMULAS.get(getattr(fn, "op", None))
    if formula is None:
        return OpCount(0, out.size if out is not None else 0, nbytes), "unknown"
    full = {**_forward_defaults(type(fn)), **(settings or {})}
    try:
        count = formula.count(arrays, out, full)
    except KeyError as exc:
        raise ValueError(f"FLOP formula of op {fn.op!r} needs setting {exc.args[0]!r}; the op "
                         f"was applied with {sorted(full)}") from None
    return OpCount(count.matmul_flops, count.elementwise_flops, nbytes), formula.kind


def count_backward_op(fn: Any, forward: OpCount, kind: str, grad: Any, input_grads: Any
                      ) -> OpCount:
    """The FLOPs and bytes of one op's backward, from its forward count and kind.

    Matmul and conv ops cost one forward matmul per operand gradient produced (dX and dW: 2x
    the forward), plus one add per output element for a bias gradient. A fused attention op
    costs twice its forward's matmul FLOPs (dQ, dK, dV and the gradient of the attention
    weights: four products against the forward's two) and its forward's elementwise FLOPs
    again. Other ops cost one FLOP per element of each input gradient produced; movement ops
    none.

    Args:
        fn: the op's Function (unused by the rules; the tracer passes it for context).
        forward: the op's forward count (``count_forward_op``).
        kind: the op's ``OpFormula.kind``.
        grad: the upstream gradient array.
        input_grads: what the op's backward returned (an array, or a tuple with None where an
            input needs no gradient).

    >>> fwd = OpCount(matmul_flops=100, elementwise_flops=8, bytes=40)
    >>> up, dx, dw, db = np.ones((2, 4)), np.ones((2, 3)), np.ones((4, 3)), np.ones(4)
    >>> count_backward_op(None, fwd, "matmul", up, (dx, dw, db)).matmul_flops
    200
    >>> count_backward_op(None, fwd, "matmul", up, (None, dw, db)).matmul_flops   # no dX
    100
    >>> count_backward_op(None, fwd, "attention", up, (dx, dx, dx)).matmul_flops
    200
    """
    grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
    produced = [g for g in grads if isinstance(g, np.ndarray)]
    nbytes = _nbytes(grad) + sum(g.nbytes for g in produced)
    if kind in ("matmul", "conv"):
        operand = [g for g in grads[:2] if isinstance(g, np.ndarray)]
        bias = [g for g in grads[2:] if isinstance(g, np.ndarray)]
        g0 = _first_array(grad)
        return OpCount(forward.matmul_flops * len(operand),
                       g0.size if bias and g0 is not None else 0,
                       nbytes + forward.bytes - _nbytes(grad))
    if kind == "attention":
        return OpCount(2 * forward.matmul_flops, forward.elementwise_flops, nbytes + forward.bytes)
    return OpCount(0, sum(g.size for g in produced) if kind != "movement" else 0, nbytes)
