"""One FLOP source: per layer type, ``analyze`` and ``trace`` give the same count, and it is the
closed form worked out by hand here. The fused attention's backward costs twice its forward's
matmul FLOPs.

Root-level because it builds core, vision and language layers together (perf never imports
vision or language).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, nn
from tinytorch.language import MultiHeadAttention
from tinytorch.perf import FLOPsCounter
from tinytorch.perf import flop_formulas as ff
from tinytorch.vision import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv1d, Conv2d, MaxPool2d


def _x(*shape: int) -> Tensor:
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def _ids(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape) % 10


# (layer, input, matmul FLOPs, elementwise FLOPs), every figure by hand:
LAYERS = {
    # 2·N·I·O = 2·4·16·8; bias N·O = 32
    "Linear": (lambda: nn.Linear(16, 8), lambda: _x(4, 16), 1024, 32),
    # (4, 8): 32 elements x (5 + weight + bias) + 2 per row x 4 rows
    "LayerNorm": (lambda: nn.LayerNorm(8), lambda: _x(4, 8), 0, 232),
    # (4, 8) in 2 groups: 32 x 7 + 2 per (sample, group) x 8 = 240 (issue 19's figure)
    "GroupNorm": (lambda: nn.GroupNorm(2, 8), lambda: _x(4, 8), 0, 240),
    # rows of 8: 32 x (3 + weight) + 3 per row x 4 = 140 (issue 19's figure)
    "RMSNorm": (lambda: nn.RMSNorm(8), lambda: _x(4, 8), 0, 140),
    # training: 8 per element x 32 = 256 (issue 19's figure)
    "BatchNorm1d": (lambda: nn.BatchNorm1d(8), lambda: _x(4, 8), 0, 256),
    "BatchNorm1d eval": (lambda: nn.BatchNorm1d(8).eval(), lambda: _x(4, 8), 0, 128),
    # 8 per element x 2·3·4·4
    "BatchNorm2d": (lambda: BatchNorm2d(3), lambda: _x(2, 3, 4, 4), 0, 768),
    # Lout = (9 + 4 - 2 - 1) // 2 + 1 = 6; 2·B·Cout·Lout·(Cin/groups)·k = 2·2·6·6·2·3; bias 2·6·6
    "Conv1d": (lambda: Conv1d(4, 6, 3, stride=2, padding=2, groups=2), lambda: _x(2, 4, 9), 864, 72),
    # 8x8 out: 2·5·64·3·9 = 17280; bias 5·64
    "Conv2d": (lambda: Conv2d(3, 5, 3, padding=1), lambda: _x(1, 3, 8, 8), 17280, 320),
    # 2·4·3·3 windows of 4
    "MaxPool2d": (lambda: MaxPool2d(2), lambda: _x(2, 4, 6, 6), 0, 288),
    # 3x3 windows at stride 2, padding 1 on 7x7: 4x4 outputs x 9, 2·3 channels
    "AvgPool2d": (lambda: AvgPool2d(3, stride=2, padding=1), lambda: _x(2, 3, 7, 7), 0, 864),
    # one add per input element
    "AdaptiveAvgPool2d": (lambda: AdaptiveAvgPool2d(1), lambda: _x(2, 3, 4, 4), 0, 96),
    "Embedding": (lambda: nn.Embedding(10, 4), lambda: _ids(2, 3), 0, 0),
    "ReLU": (lambda: nn.ReLU(), lambda: _x(5, 6), 0, 30),
    "GELU": (lambda: nn.GELU(), lambda: _x(5, 6), 0, 150),
    "GELU tanh": (lambda: nn.GELU(approximate="tanh"), lambda: _x(5, 6), 0, 270),
    "Sigmoid": (lambda: nn.Sigmoid(), lambda: _x(5, 6), 0, 120),
    "Tanh": (lambda: nn.Tanh(), lambda: _x(5, 6), 0, 30),
    "Softmax": (lambda: nn.Softmax(-1), lambda: _x(5, 6), 0, 150),
    "Dropout": (lambda: nn.Dropout(0.5), lambda: _x(5, 6), 0, 30),
    "Flatten": (lambda: nn.Flatten(), lambda: _x(2, 3, 4), 0, 0),
}


@pytest.mark.parametrize("name", LAYERS)
def test_analyze_equals_trace_equals_the_closed_form(name):
    make_layer, make_input, matmul, elementwise = LAYERS[name]
    model = nn.Sequential(make_layer())
    analyzed = FLOPsCounter().analyze(model, make_input())
    traced = FLOPsCounter().trace(model, make_input())
    assert traced.unknown_ops == {}
    assert analyzed == {label: layer.forward for label, layer in traced.layers.items()}
    assert (analyzed["0"].matmul_flops, analyzed["0"].elementwise_flops) == (matmul, elementwise)


def test_linear_and_the_three_norms_of_issue_19_count_in_both_views():
    # analyze once saw only the Linear here; trace also counted the norms.
    model = nn.Sequential(nn.Linear(16, 8), nn.GroupNorm(2, 8), nn.RMSNorm(8), nn.BatchNorm1d(8))
    counts = FLOPsCounter().analyze(model, _x(4, 16))
    assert {k: c.flops for k, c in counts.items()} == {"0": 1024 + 32, "1": 240, "2": 140, "3": 256}
    assert sum(counts.values(), ff.OpCount()) == FLOPsCounter().trace(model, _x(4, 16)).forward


def test_attention_layer_counts_the_attention_closed_form():
    # MultiHeadAttention runs a QKV Linear, the fused attention op and an output Linear;
    # together they are attention_flops: 8·B·L·d² + 4·B·L²·d matmul, 4·B·L·d bias adds and
    # per score a scale, the causal mask and 5 for softmax.
    b, t, d, h = 2, 5, 16, 4
    counts = FLOPsCounter().analyze(nn.Sequential(MultiHeadAttention(d, h)), _x(b, t, d))
    layer = sum((c for k, c in counts.items() if k == "0" or k.startswith("0.")), ff.OpCount())
    assert layer.matmul_flops == 8 * b * t * d * d + 4 * b * t * t * d == 23680
    assert layer.elementwise_flops == 4 * b * t * d + b * h * t * t * 7 == 2040
    closed = ff.attention_flops(b, t, d, h)
    assert (layer.matmul_flops, layer.elementwise_flops) == (closed.matmul_flops,
                                                             closed.elementwise_flops)
    # the fused op alone: Q·Kᵀ and weights·V, 2·B·L²·d each
    assert counts["0"].matmul_flops == 4 * b * t * t * d


def test_fused_attention_backward_is_twice_its_forward_matmul():
    # dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dY and dP = dY·Vᵀ: four B·h·L·L·(d/h) products against the
    # forward's two, so 8·B·L²·d matmul FLOPs against 4·B·L²·d.
    b, t, d, h = 2, 5, 16, 4
    model = nn.Sequential(MultiHeadAttention(d, h, causal=False))
    x = _x(b, t, d)
    x.requires_grad = True
    trace = FLOPsCounter().trace(model, x, backward=True)
    fused = trace.layers["0"]
    assert fused.ops == {"packed_self_attention": 1}
    assert fused.forward.matmul_flops == 4 * b * t * t * d == 3200
    assert fused.backward.matmul_flops == 8 * b * t * t * d == 6400
    # the projections follow the Linear rule: dX and dW, one forward matmul each
    qkv = trace.layers["0.qkv"]
    assert qkv.backward.matmul_flops == 2 * qkv.forward.matmul_flops == 2 * 2 * b * t * d * 3 * d


def test_cached_attention_counts_every_cached_key():
    """A chunk of T queries after cached tokens sees S = cached + T keys: 4·B·nh·T·S·hs matmul
    FLOPs; a single query needs no causal mask."""
    from tinytorch.core import no_grad, register_op_observer
    from tinytorch.language import KVCache
    from tinytorch.language.functional import packed_self_attention

    B, nh, hs = 2, 2, 4
    C = nh * hs
    cache = KVCache(B, nh, 16, hs)
    counts = []

    def observer(phase, fn, inputs, output, seconds, settings):
        if fn.op == "packed_self_attention":
            counts.append(ff.count_forward_op(fn, inputs, output, settings)[0])

    with no_grad():
        packed_self_attention(_x(B, 5, 3 * C), nh, kv_cache=cache)
        with register_op_observer(observer):
            packed_self_attention(_x(B, 3, 3 * C), nh, kv_cache=cache)  # T = 3, S = 8
            packed_self_attention(_x(B, 1, 3 * C), nh, kv_cache=cache)  # T = 1, S = 9
    chunk, one = counts
    assert chunk.matmul_flops == 4 * B * nh * 3 * 8 * hs
    assert chunk.elementwise_flops == B * nh * 3 * 8 * 7  # scale, causal mask, softmax's 5
    assert one.matmul_flops == 4 * B * nh * 1 * 9 * hs
    assert one.elementwise_flops == B * nh * 9 * 6
