"""FLOP and byte counting: closed-form formulas per layer, and a tracer of what really runs.

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
  log_softmax 5; reductions (sum, mean, max) 1 per input element, var 3.
* LayerNorm over rows of D: 5 per element + 1 per element each for weight and bias + 2 per row.
* BatchNorm2d: 8 per element in training (statistics + normalize + affine), 4 in eval.
* Pooling: one op per window element, Cout·Hout·Wout·kh·kw per image; adaptive average
  pooling: one add per input element.
* Cross-entropy over (N, C): 5·N·C + N.
* Embedding, reshape, permute, indexing, concat: 0 FLOPs (they only move bytes).

Bytes are the compulsory traffic of the op: every input array read once and the output written
once (no cache reuse is assumed inside an op, no write-allocate); this is what "arithmetic
intensity = FLOPs / bytes" uses. For backward, matmul-like ops cost one forward's matmul per
input gradient produced (2x forward when both operands need one), and elementwise backward
costs one FLOP per element of each input gradient produced.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "OpCount", "FLOPsCounter", "TraceResult", "LayerCount", "conv2d_output_size",
    "linear_flops", "conv2d_flops", "attention_flops", "pool2d_flops",
    "adaptive_avg_pool2d_flops", "batchnorm2d_flops", "layernorm_flops", "activation_flops",
    "softmax_flops", "embedding_flops", "cross_entropy_flops", "matmul_flops",
    "ELEMENTWISE_COST", "CONVENTION",
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


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = v
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None


def _positive(name: str, value: int) -> int:
    if not isinstance(value, (int, np.integer)) or value <= 0:
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
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
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

    Bytes: the four projections (input, weights, outputs) plus the score matrix written and
    read once per product and softmax. Elementwise: the biases, and per score a scale, the causal
    mask (if ``causal``) and 5 for softmax.

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
    b, L, d, h = batch, seq_len, d_model, num_heads
    if d % h:
        raise ValueError(f"attention: d_model={d} must be divisible by num_heads={h}")
    mm = 8 * b * L * d * d + 4 * b * L * L * d
    scores = b * h * L * L
    elem = (4 * b * L * d if bias else 0) + scores * (1 + (1 if causal else 0) + 5)
    proj_bytes = 4 * (b * L * d + d * d + (d if bias else 0) + b * L * d)
    # QK^T reads q, k writes scores; softmax reads/writes scores; AV reads scores, v writes out
    core_bytes = (2 * b * L * d + scores) + 2 * scores + (scores + 2 * b * L * d)
    return OpCount(mm, elem, itemsize * (proj_bytes + core_bytes))


def pool2d_flops(input_shape: Sequence[int], kernel_size: Any, stride: Any = None,
                 padding: Any = 0, dilation: Any = 1, itemsize: int = 4
                 ) -> tuple[OpCount, tuple[int, ...]]:
    """Max/avg pooling: one op per window element; returns (count, output shape).

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
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    ho, wo = conv2d_output_size(h, kh, sh, ph, dh), conv2d_output_size(w, kw, sw, pw, dw)
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


#: FLOPs per output element of elementwise ops, by (lower-case) op name
ELEMENTWISE_COST: dict[str, int] = {
    "add": 1, "sub": 1, "mul": 1, "div": 1, "neg": 1, "abs": 1, "relu": 1, "clamp": 1,
    "where": 1, "maskedfill": 1, "dropout": 1, "pow": 1, "powscalar": 1,
    "exp": 1, "log": 1, "sqrt": 1, "tanh": 1, "sigmoid": 4, "gelu": 5, "gelu_tanh": 9,
    "softmax": 5, "logsoftmax": 5,
}


def activation_flops(name: str, numel: int, itemsize: int = 4) -> OpCount:
    """Elementwise activation (relu, gelu, gelu_tanh, sigmoid, tanh, ...) on ``numel`` elements.

    Costs per element come from ``ELEMENTWISE_COST`` (relu 1, sigmoid 4, gelu 5, gelu_tanh 9);
    bytes are one read and one write per element.

    >>> activation_flops("gelu", 1000).elementwise_flops
    5000
    """
    key = name.lower().replace("_", "") if name.lower() != "gelu_tanh" else "gelu_tanh"
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


# ------------------------------------------------------------------------------ tracer

_MOVEMENT = {"reshape", "permute", "expand", "getitem", "concat", "stack", "cast", "embedding",
             "transpose", "pad", "copy", "view", "flatten", "squeeze", "unsqueeze"}
_REDUCTION_COST = {"sum": 1, "mean": 1, "max": 1, "min": 1, "var": 3}


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


def count_forward_op(fn: Any, inputs: tuple, output: Any) -> tuple[OpCount, str]:
    """The FLOPs and bytes of one executed Function, and how it was classified.

    Dispatch is on the Function's class name, so ops defined by other packages (a vision
    ``Conv2d`` Function, a language fused attention Function) are counted from their shapes
    without importing those packages.
    """
    name = type(fn).__name__
    key = name.lower().removesuffix("function").removesuffix("fn").removesuffix("backward")
    arrays = [a for a in inputs if isinstance(a, np.ndarray)]
    out = _first_array(output)
    out_n = out.size if out is not None else 0
    nbytes = sum(a.nbytes for a in arrays) + _nbytes(output)
    if key == "matmul":
        c = matmul_flops(arrays[0].shape, arrays[1].shape)
        return OpCount(c.matmul_flops, 0, nbytes), "matmul"
    if key == "linear":
        x, w = arrays[0], arrays[1]
        mm = 2 * out_n * w.shape[1]
        return OpCount(mm, out_n if len(arrays) > 2 else 0, nbytes), "matmul"
    if "conv" in key and len(arrays) >= 2 and arrays[1].ndim >= 3:
        w = arrays[1]  # (Cout, Cin/groups, kh, kw): each output element is w[0].size MACs
        mm = 2 * out_n * math.prod(w.shape[1:])
        return OpCount(mm, out_n if len(arrays) > 2 and arrays[2].ndim == 1 else 0, nbytes), "conv"
    if "attention" in key or "sdpa" in key or "scaleddotproduct" in key:
        causal = bool(getattr(fn, "is_causal", getattr(fn, "causal", True)))
        if len(arrays) >= 3:  # q (..., L, E), k (..., S, E)
            q, k = arrays[0], arrays[1]
            scores = math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2]
            mm = 4 * scores * q.shape[-1]
        elif len(arrays) == 1 and arrays[0].ndim == 3:  # packed qkv (B, T, 3C)
            b, t, c3 = arrays[0].shape
            shape = getattr(fn, "shape", None)  # (B, T, heads, head_dim) if the op saves it
            heads = shape[2] if isinstance(shape, tuple) and len(shape) == 4 else 1
            scores, mm = b * heads * t * t, 4 * b * t * t * (c3 // 3)
        else:
            return OpCount(0, out_n, nbytes), "unknown"
        return OpCount(mm, scores * (1 + int(causal) + 5), nbytes), "attention"
    if key == "layernorm":
        x = arrays[0]
        d = math.prod(x.shape[x.ndim - len(getattr(fn, "axes", (0,))):])
        c = layernorm_flops(x.shape, d, weight=len(arrays) > 1, bias=len(arrays) > 2)
        return OpCount(0, c.elementwise_flops, nbytes), "norm"
    if "batchnorm" in key or "batch_norm" in key:
        affine = getattr(fn, "has_affine", len(arrays) > 1)
        per = (6 if getattr(fn, "training", True) else 2) + (2 if affine else 0)
        return OpCount(0, per * arrays[0].size, nbytes), "norm"
    if key == "crossentropy":
        logits = arrays[0]
        rows = logits.size // logits.shape[-1]
        return OpCount(0, 5 * logits.size + rows, nbytes), "loss"
    if "adaptive" in key and "pool" in key:
        return OpCount(0, arrays[0].size, nbytes), "pool"
    if "pool" in key:
        k = getattr(fn, "kernel_size", None)
        geometry = getattr(fn, "geometry", None)  # (padded shape, out hw, kernel, ...)
        if k is None and isinstance(geometry, tuple) and len(geometry) > 2:
            k = geometry[2]
        if k is not None:
            kh, kw = _pair(k, "kernel_size")
            return OpCount(0, out_n * kh * kw, nbytes), "pool"
        return OpCount(0, arrays[0].size, nbytes), "pool"
    if key in _REDUCTION_COST:
        return OpCount(0, _REDUCTION_COST[key] * arrays[0].size, nbytes), "reduction"
    if key == "gelu":
        cost = ELEMENTWISE_COST["gelu_tanh" if getattr(fn, "approximate", "none") == "tanh"
                                else "gelu"]
        return OpCount(0, cost * out_n, nbytes), "elementwise"
    if key in ELEMENTWISE_COST:
        return OpCount(0, ELEMENTWISE_COST[key] * out_n, nbytes), "elementwise"
    if key in _MOVEMENT or any(m in key for m in ("reshape", "permute", "pad", "im2col",
                                                  "col2im", "index", "gather")):
        return OpCount(0, 0, nbytes), "movement"
    return OpCount(0, out_n, nbytes), "unknown"


def count_backward_op(fn: Any, forward: OpCount, kind: str, grad: Any, input_grads: Any
                      ) -> OpCount:
    """Backward cost given the forward count: one forward matmul per matmul-operand gradient."""
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


@dataclass
class LayerCount:
    """What one module executed (ops attributed to the innermost module that ran them).

    Attributes:
        name: the module's dotted name in the model (``"0"``, ``"blocks.1.attn"``).
        type: its class name.
        forward: the ops it ran in the forward pass.
        backward: the ops of its backward pass (when traced with ``backward=True``).
        ops: executed op counts by Function name.
        output_shape: shape of its output; ``output_bytes`` its size.
        params: parameters registered directly on it.

    >>> from tinytorch.core import nn, randn
    >>> layer = FLOPsCounter().trace(nn.Sequential(nn.Linear(8, 4)), randn(2, 8)).layers["0"]
    >>> layer.type, layer.forward.matmul_flops, layer.params
    ('Linear', 128, 36)
    """

    name: str
    type: str
    forward: OpCount = field(default_factory=OpCount)
    backward: OpCount = field(default_factory=OpCount)
    ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    output_shape: tuple[int, ...] | None = None
    output_bytes: int = 0
    saved_bytes: int = 0
    params: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "forward": self.forward.to_dict(),
                "backward": self.backward.to_dict(), "ops": dict(self.ops),
                "output_shape": list(self.output_shape) if self.output_shape else None,
                "output_bytes": self.output_bytes, "saved_bytes": self.saved_bytes,
                "params": self.params}


@dataclass
class TraceResult:
    """Per-layer and total counts of one traced forward (and optionally backward).

    Attributes:
        layers: name -> ``LayerCount``, in module order.
        forward: total of the forward pass; ``backward`` of the backward pass; ``total`` both.
        unknown_ops: Functions the tracer has no formula for (counted as data movement), by name.

    >>> from tinytorch.core import nn, randn
    >>> trace = FLOPsCounter().trace(nn.Linear(8, 4), randn(2, 8), backward=True)
    >>> trace.forward.matmul_flops, trace.backward.matmul_flops   # the input needs no gradient: dW only
    (128, 128)
    """

    layers: dict[str, LayerCount]
    forward: OpCount
    backward: OpCount
    unknown_ops: dict[str, int]

    @property
    def total(self) -> OpCount:
        return self.forward + self.backward

    def to_dict(self) -> dict[str, Any]:
        return {"convention": CONVENTION, "forward": self.forward.to_dict(),
                "backward": self.backward.to_dict(),
                "layers": [lc.to_dict() for lc in self.layers.values()],
                "unknown_ops": self.unknown_ops}


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _saved_bytes(fn: Any, inputs: tuple) -> int:
    """Bytes of arrays a Function kept for backward that are not (views of) its inputs."""
    seen = {id(_root(a)) for a in inputs if isinstance(a, np.ndarray)}
    total = 0
    for v in getattr(fn, "__dict__", {}).values():
        values = v if isinstance(v, tuple) else (v,)
        for a in values:
            if isinstance(a, np.ndarray) and id(_root(a)) not in seen:
                seen.add(id(_root(a)))
                total += a.nbytes
    return total


class _ModuleTracker:
    """Module hooks that keep a stack of the modules currently running forward."""

    def __init__(self, model: Any):
        self.stack: list[str] = []
        self.handles = []
        self.outputs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        self.modules: dict[str, Any] = {}
        for name, module in model.named_modules():
            label = name or "(model)"
            self.modules[label] = module
            self.handles.append(module.register_forward_pre_hook(self._pre(label)))
            self.handles.append(module.register_forward_hook(self._post(label)))

    def _pre(self, label: str):
        def hook(module, args):
            self.stack.append(label)
            self.inputs.setdefault(label, args)

        return hook

    def _post(self, label: str):
        def hook(module, args, output):
            if self.stack and self.stack[-1] == label:
                self.stack.pop()
            self.outputs.setdefault(label, output)

        return hook

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else "(model)"

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _shape_of(x: Any) -> tuple[int, ...] | None:
    if hasattr(x, "shape"):
        return tuple(x.shape)
    if isinstance(x, (tuple, list)) and x:
        return _shape_of(x[0])
    return None


def _data_bytes(x: Any) -> int:
    data = getattr(x, "data", None)
    if isinstance(data, np.ndarray):
        return data.nbytes
    if isinstance(x, (tuple, list)):
        return sum(_data_bytes(v) for v in x)
    return 0


class FLOPsCounter:
    """Count FLOPs and bytes: closed-form per layer, or by tracing a real forward/backward.

    >>> from tinytorch.core import nn, randn
    >>> counter = FLOPsCounter()
    >>> counter.linear(32, 784, 128).matmul_flops   # 2·N·I·O = 2·32·784·128
    6422528
    >>> trace = counter.trace(nn.Linear(784, 128), randn(32, 784))
    >>> trace.forward.matmul_flops
    6422528
    """

    convention = CONVENTION

    # closed forms, also usable as counter.linear(...), counter.conv2d(...)
    linear = staticmethod(linear_flops)
    conv2d = staticmethod(conv2d_flops)
    attention = staticmethod(attention_flops)
    matmul = staticmethod(matmul_flops)
    pool2d = staticmethod(pool2d_flops)
    batchnorm2d = staticmethod(batchnorm2d_flops)
    layernorm = staticmethod(layernorm_flops)
    activation = staticmethod(activation_flops)
    softmax = staticmethod(softmax_flops)
    embedding = staticmethod(embedding_flops)
    cross_entropy = staticmethod(cross_entropy_flops)

    # ------------------------------------------------------------------ tracing
    def trace(self, model: Any, example_input: Any, backward: bool = False) -> TraceResult:
        """Run ``model(example_input)`` (and backward of its output if asked) and count every
        op through core's op observer, attributing each to the innermost running module."""
        from tinytorch.core.autograd import register_op_observer

        tracker = _ModuleTracker(model)
        layers: dict[str, LayerCount] = {}
        fwd_of: dict[int, tuple[str, OpCount, str, Any]] = {}
        unknown: dict[str, int] = defaultdict(int)

        def layer(label: str) -> LayerCount:
            if label not in layers:
                module = tracker.modules.get(label)
                layers[label] = LayerCount(label, type(module).__name__ if module else "?")
            return layers[label]

        def observer(phase, fn, inputs, output, seconds):
            if phase == "forward":
                count, kind = count_forward_op(fn, inputs, output)
                label = tracker.current
                lc = layer(label)
                lc.forward = lc.forward + count
                lc.ops[type(fn).__name__] += 1
                lc.saved_bytes += _saved_bytes(fn, inputs)
                if kind == "unknown":
                    unknown[type(fn).__name__] += 1
                fwd_of[id(fn)] = (label, count, kind, fn)  # keep fn alive: ids stay unique
            else:
                label, count, kind, _ = fwd_of.get(id(fn), ("(model)", OpCount(), "unknown", fn))
                lc = layer(label)
                lc.backward = lc.backward + count_backward_op(fn, count, kind, inputs[0], output)

        try:
            with register_op_observer(observer):
                out = model(example_input)
                if backward:
                    _backward(out)
        finally:
            tracker.remove()
        for label, lc in layers.items():
            module = tracker.modules.get(label)
            if module is not None:
                lc.params = sum(p.size for p in module.parameters(recurse=False))
            lc.output_shape = _shape_of(tracker.outputs.get(label))
            lc.output_bytes = _data_bytes(tracker.outputs.get(label))
        ordered = {k: layers[k] for k in tracker.modules if k in layers}
        fwd = sum((lc.forward for lc in ordered.values()), OpCount())
        bwd = sum((lc.backward for lc in ordered.values()), OpCount())
        return TraceResult(ordered, fwd, bwd, dict(unknown))

    # ------------------------------------------------------------------ analytic per module
    def analyze(self, model: Any, example_input: Any) -> dict[str, OpCount]:
        """Closed-form count of every recognised leaf module, from the shapes a forward sees.

        Layers are recognised by class name and PyTorch's attribute names, so vision and
        language layers are counted without importing those packages.
        """
        tracker = _ModuleTracker(model)
        try:
            from tinytorch.core import no_grad

            with no_grad():
                model(example_input)
        finally:
            tracker.remove()
        counts: dict[str, OpCount] = {}
        for label, module in tracker.modules.items():
            if label not in tracker.inputs or any(label.startswith(p + ".") for p in counts):
                continue  # not run, or inside a layer already counted as a whole
            count = self.module_count(module, tracker.inputs[label], tracker.outputs.get(label))
            if count is not None:
                counts[label] = count
        return counts

    def module_count(self, module: Any, args: tuple, output: Any) -> OpCount | None:
        """The closed-form count of one module call, or None for containers/unknown types."""
        name = type(module).__name__
        x = args[0] if args else None
        shape = tuple(x.shape) if hasattr(x, "shape") else None
        itemsize = getattr(getattr(x, "data", None), "itemsize", 4) if x is not None else 4
        numel = math.prod(shape) if shape else 0
        if name in ("Linear", "Dense"):
            return linear_flops(numel // shape[-1], module.in_features, module.out_features,
                                bias=getattr(module, "bias", None) is not None, itemsize=itemsize)
        if name in ("Conv2d", "Conv2D"):
            c, _ = conv2d_flops(shape, module.out_channels, module.kernel_size, module.stride,
                                module.padding, getattr(module, "dilation", 1),
                                getattr(module, "groups", 1),
                                bias=getattr(module, "bias", None) is not None, itemsize=itemsize)
            return c
        if name in ("MaxPool2d", "MaxPool2D", "AvgPool2d", "AvgPool2D"):
            c, _ = pool2d_flops(shape, module.kernel_size, getattr(module, "stride", None),
                                getattr(module, "padding", 0), getattr(module, "dilation", 1),
                                itemsize=itemsize)
            return c
        if name in ("AdaptiveAvgPool2d", "AdaptiveAvgPool2D", "GlobalAvgPool2d"):
            c, _ = adaptive_avg_pool2d_flops(shape, getattr(module, "output_size", 1), itemsize)
            return c
        if name in ("BatchNorm2d", "BatchNorm2D"):
            return batchnorm2d_flops(shape, module.training,
                                     getattr(module, "weight", None) is not None, itemsize)
        if name == "LayerNorm":
            d = math.prod(module.normalized_shape) if hasattr(module, "normalized_shape") else shape[-1]
            return layernorm_flops(shape, d, getattr(module, "weight", None) is not None,
                                   getattr(module, "bias", None) is not None, itemsize)
        if name in ("ReLU", "Sigmoid", "Tanh"):
            return activation_flops(name, numel, itemsize)
        if name == "GELU":
            return activation_flops("gelu_tanh" if getattr(module, "approximate", "none") == "tanh"
                                    else "gelu", numel, itemsize)
        if name in ("Softmax", "LogSoftmax"):
            return softmax_flops(numel, itemsize)
        if name == "Dropout":
            return (activation_flops("dropout", numel, itemsize) if module.training
                    and getattr(module, "p", 0) > 0 else OpCount())
        if name == "Embedding":
            return embedding_flops(math.prod(shape), module.embedding_dim, itemsize=4)
        if name in ("Flatten", "Identity"):
            return OpCount(0, 0, 2 * itemsize * numel if name == "Flatten" else 0)
        if name in ("MultiHeadAttention", "MultiheadAttention", "CausalSelfAttention",
                    "SelfAttention"):
            d = getattr(module, "d_model", None) or getattr(module, "embed_dim", None) or shape[-1]
            projections = [m for m in module.children() if type(m).__name__ in ("Linear", "Dense")]
            bias = all(getattr(m, "bias", None) is not None for m in projections)
            causal = getattr(module, "causal", getattr(module, "is_causal", True))
            return attention_flops(shape[0], shape[1], d, getattr(module, "num_heads", 1),
                                   causal=bool(causal), bias=bias, itemsize=itemsize)
        return None


def _backward(out: Any) -> None:
    """Backward of a model output (or the first Tensor in a tuple) with an all-ones gradient."""
    t = out[0] if isinstance(out, (tuple, list)) else out
    if getattr(t, "requires_grad", False):
        t.backward(np.ones_like(t.data))


def iter_entries(trace: TraceResult) -> Iterable[LayerCount]:
    """The ``LayerCount`` of every traced module, in module order."""
    return trace.layers.values()
