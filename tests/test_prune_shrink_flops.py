"""Structured shrinking makes a model as cheap as one built that size: perf's FLOP tracer counts
the shrunk model exactly as a fresh model of the smaller widths (matmul and elementwise, layer
by layer), and a shrunk attention layer as fewer heads of the same size.

Root-level because it uses core's prune with vision's, language's and perf's pieces together.
"""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor, manual_seed, no_grad
from tinytorch.core.nn.utils import prune
from tinytorch.language import MultiHeadAttention
from tinytorch.perf import FLOPsCounter
from tinytorch.perf import flop_formulas as ff
from tinytorch.vision import MLP, SmallCNN


def _trace(model, x):
    model.eval()
    with no_grad():
        return FLOPsCounter().trace(model, x)


def _per_layer(trace):
    return {name: (layer.type, layer.forward.matmul_flops, layer.forward.elementwise_flops)
            for name, layer in trace.layers.items()}


def test_a_shrunk_cnn_counts_as_a_fresh_cnn_of_half_the_width():
    manual_seed(0)
    x = Tensor(np.random.default_rng(0).normal(size=(4, 1, 28, 28)).astype(np.float32))
    model = SmallCNN((1, 28, 28), widths=(32, 64), hidden=128)
    before = _trace(model, x).forward
    prune.shrink(model, x, amount=0.5)
    shrunk, fresh = _trace(model, x), _trace(SmallCNN((1, 28, 28), widths=(16, 32), hidden=64), x)
    assert _per_layer(shrunk) == _per_layer(fresh)
    assert shrunk.forward.matmul_flops == fresh.forward.matmul_flops
    # conv2 (the bulk) is a quarter: both its channel counts halved
    assert before.matmul_flops / shrunk.forward.matmul_flops > 3.5


def test_a_shrunk_mlp_counts_as_a_fresh_mlp():
    manual_seed(0)
    x = Tensor(np.random.default_rng(0).normal(size=(8, 1, 28, 28)).astype(np.float32))
    model = MLP((1, 28, 28), hidden=(64, 32))
    prune.shrink(model, x, amount=0.25)
    assert _per_layer(_trace(model, x)) == _per_layer(_trace(MLP((1, 28, 28), hidden=(48, 24)), x))


def test_removing_heads_removes_their_attention_flops():
    x = Tensor(np.random.default_rng(0).normal(size=(2, 6, 16)).astype(np.float32))
    attn = MultiHeadAttention(d_model=16, num_heads=4, causal=False)
    prune.shrink(attn, x, amount=0.5)  # 2 heads of size 4 remain
    got = _trace(attn, x).forward.matmul_flops
    B, T, C, kept = 2, 6, 16, 8  # kept = 2 heads x 4
    want = (ff.linear_flops(B * T, C, 3 * kept).matmul_flops       # qkv
            + 2 * 2 * B * T * T * kept                             # q·kᵀ and att·v over the kept heads
            + ff.linear_flops(B * T, kept, C).matmul_flops)        # proj
    assert got == want
