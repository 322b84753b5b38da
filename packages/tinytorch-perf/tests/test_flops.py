"""Closed-form FLOP/byte counts per layer type, and traced totals equal to the analytic sums."""

from __future__ import annotations

import numpy as np
import pytest
from perf_standins import Conv2d, gpt_factory, small_cnn_factory

from tinytorch.core import functional as F
from tinytorch.core import nn, randn
from tinytorch.perf import FLOPsCounter
from tinytorch.perf import flops as fl


def test_linear_closed_form():
    c = fl.linear_flops(32, 784, 128)
    assert c.matmul_flops == 2 * 32 * 784 * 128 == 6_422_528
    assert c.elementwise_flops == 32 * 128
    assert c.bytes == 4 * (32 * 784 + 128 * 784 + 128 + 32 * 128)
    assert fl.linear_flops(1, 10, 5, bias=False).elementwise_flops == 0


@pytest.mark.parametrize("shape,cout,k,s,p,d,g,out_hw,mm", [
    ((1, 3, 32, 32), 64, 3, 1, 1, 1, 1, (32, 32), 3_538_944),    # the seed's example
    ((8, 16, 32, 32), 32, 3, 2, 1, 1, 1, (16, 16), 18_874_368),
    ((4, 32, 17, 17), 64, 5, 1, 2, 2, 1, (13, 13), 69_222_400),   # dilation 2
    ((2, 32, 28, 28), 64, 3, 1, 1, 1, 4, (28, 28), 14_450_688),   # groups 4
    ((2, 32, 14, 14), 32, 3, 2, 1, 1, 32, (7, 7), 56_448),        # depthwise
])
def test_conv2d_closed_form(shape, cout, k, s, p, d, g, out_hw, mm):
    c, out = fl.conv2d_flops(shape, cout, k, s, p, d, g)
    b, cin, h, w = shape
    assert out == (b, cout, *out_hw)
    assert c.matmul_flops == mm == 2 * b * cout * out_hw[0] * out_hw[1] * (cin // g) * k * k
    assert c.elementwise_flops == b * cout * out_hw[0] * out_hw[1]
    weights = cout * (cin // g) * k * k + cout
    assert c.bytes == 4 * (b * cin * h * w + weights + b * cout * out_hw[0] * out_hw[1])


def test_conv2d_seed_example_bytes_and_intensity():
    c, _ = fl.conv2d_flops((3, 32, 32), 64, 3, 1, 1)
    assert c.flops == 3_604_480 and c.bytes == 281_600
    assert c.intensity == pytest.approx(12.8)


def test_conv2d_rejects_bad_settings():
    with pytest.raises(ValueError, match="groups"):
        fl.conv2d_flops((3, 8, 8), 8, groups=2)
    with pytest.raises(ValueError, match="too small"):
        fl.conv2d_flops((3, 2, 2), 8, kernel_size=5)
    for kernel in (True, (2.5, 2.5), (3, False)):  # never rounded or read as 1
        with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints"):
            fl.conv2d_flops((3, 8, 8), 8, kernel_size=kernel)
    with pytest.raises(ValueError, match="out_features must be a positive integer, got True"):
        fl.linear_flops(4, 8, True)


def test_attention_closed_form():
    b, L, d, h = 2, 16, 32, 4
    c = fl.attention_flops(b, L, d, h)
    assert c.matmul_flops == 8 * b * L * d * d + 4 * b * L * L * d
    assert c.elementwise_flops == 4 * b * L * d + b * h * L * L * 7
    no_mask = fl.attention_flops(b, L, d, h, causal=False, bias=False)
    assert no_mask.elementwise_flops == b * h * L * L * 6


def test_matmul_pool_norm_activation_embedding_loss():
    assert fl.matmul_flops((8, 64, 32), (8, 32, 48)).matmul_flops == 2 * 8 * 64 * 32 * 48
    assert fl.matmul_flops((4, 1, 16, 8), (3, 8, 5)).matmul_flops == 2 * 12 * 16 * 8 * 5
    c, out = fl.pool2d_flops((2, 4, 8, 8), 2)
    assert out == (2, 4, 4, 4) and c.elementwise_flops == 2 * 4 * 16 * 4
    assert c.bytes == 4 * (2 * 4 * 64 + 2 * 4 * 16)
    c, out = fl.pool2d_flops((1, 1, 7, 7), 3, stride=2, padding=1)
    assert out == (1, 1, 4, 4) and c.elementwise_flops == 16 * 9
    c, out = fl.adaptive_avg_pool2d_flops((2, 8, 4, 4), 1)
    assert out == (2, 8, 1, 1) and c.elementwise_flops == 256
    assert fl.batchnorm2d_flops((2, 8, 4, 4)).elementwise_flops == 8 * 256
    assert fl.batchnorm2d_flops((2, 8, 4, 4), training=False).elementwise_flops == 4 * 256
    ln = fl.layernorm_flops((4, 10, 16), 16)
    assert ln.elementwise_flops == 640 * 7 + 40 * 2 and ln.bytes == 4 * (2 * 640 + 32)
    assert fl.activation_flops("relu", 100).flops == 100
    assert fl.activation_flops("gelu", 100).flops == 500
    assert fl.activation_flops("gelu_tanh", 100).flops == 900
    assert fl.activation_flops("sigmoid", 100).flops == 400
    assert fl.softmax_flops(100).flops == 500
    e = fl.embedding_flops(10, 16)
    assert e.flops == 0 and e.bytes == 8 * 10 + 2 * 4 * 160
    assert fl.cross_entropy_flops(4, 10).flops == 5 * 40 + 4
    with pytest.raises(ValueError, match="unknown activation"):
        fl.activation_flops("swishy", 10)


def test_trace_single_ops_match_closed_forms():
    counter = FLOPsCounter()
    t = counter.trace(nn.Linear(784, 128), randn(32, 784))
    assert t.forward.to_dict() == fl.linear_flops(32, 784, 128).to_dict()
    conv = Conv2d(3, 64, 3, padding=1)
    t = counter.trace(conv, randn(1, 3, 32, 32))
    assert t.forward.to_dict() == fl.conv2d_flops((1, 3, 32, 32), 64, 3, 1, 1)[0].to_dict()
    t = counter.trace(nn.LayerNorm(16), randn(4, 10, 16))
    assert t.forward.to_dict() == fl.layernorm_flops((4, 10, 16), 16).to_dict()
    t = counter.trace(nn.GELU(), randn(10, 10))
    assert t.forward.flops == 500 and t.forward.bytes == 800


def test_trace_backward_counts_two_matmuls_per_linear():
    x = randn(8, 32, requires_grad=True)
    t = FLOPsCounter().trace(nn.Linear(32, 16), x, backward=True)
    assert t.backward.matmul_flops == 2 * t.forward.matmul_flops
    assert t.backward.elementwise_flops == 8 * 16  # the bias gradient sums the output grad


def test_analyze_is_the_forward_of_trace_per_layer():
    model, x = small_cnn_factory()
    trace = FLOPsCounter().trace(model, x)
    assert FLOPsCounter().analyze(model, x) == {k: lc.forward for k, lc in trace.layers.items()}


def test_small_cnn_layers_equal_their_closed_forms():
    model, x = small_cnn_factory()
    trace = FLOPsCounter().trace(model, x)
    assert list(trace.layers) == ["features.0", "features.1", "features.2", "features.3",
                                  "features.4", "features.5", "flatten", "fc"]
    c1 = fl.conv2d_flops((2, 3, 16, 16), 8, 3, 1, 1)[0]
    c2 = fl.conv2d_flops((2, 8, 8, 8), 16, 3, 1, 1, groups=2)[0]
    fc = fl.linear_flops(2, 256, 10)
    for name, closed in (("features.0", c1), ("features.3", c2), ("fc", fc)):  # bytes too
        assert trace.layers[name].forward == closed, name
    assert trace.layers["features.1"].forward.elementwise_flops == 2 * 8 * 16 * 16  # ReLU
    assert trace.forward.matmul_flops == c1.matmul_flops + c2.matmul_flops + 2 * 2 * 256 * 10
    assert trace.unknown_ops == {}


def test_small_gpt_layers_equal_their_closed_forms():
    model, ids = gpt_factory()
    trace = FLOPsCounter().trace(model, ids)
    b, L, d, h, V, layers = 2, 8, 16, 4, 20, 2
    attention = sum((lc.forward for k, lc in trace.layers.items()
                     if k == "blocks.0.attn" or k.startswith("blocks.0.attn.")), fl.OpCount())
    closed = fl.attention_flops(b, L, d, h)  # the stand-in is built of core ops, unfused
    assert attention.matmul_flops == closed.matmul_flops == 8 * b * L * d * d + 4 * b * L * L * d
    assert attention.elementwise_flops == closed.elementwise_flops
    assert trace.layers["blocks.0.ln1"].forward == fl.layernorm_flops((b, L, d), d)
    assert trace.layers["blocks.0.fc"].forward == fl.linear_flops(b * L, d, 4 * d)
    assert trace.layers["blocks.0.act"].forward.elementwise_flops == 5 * b * L * 4 * d
    assert trace.layers["blocks.0"].forward.elementwise_flops == 2 * b * L * d  # residual adds
    assert trace.forward.matmul_flops == layers * (
        8 * b * L * d * d + 4 * b * L * L * d + 2 * 2 * b * L * d * 4 * d) + 2 * b * L * d * V


def test_trace_attributes_backward_to_layers():
    model, x = small_cnn_factory()
    trace = FLOPsCounter().trace(model, x, backward=True)
    assert trace.layers["features.0"].backward.matmul_flops == trace.layers["features.0"].forward.matmul_flops
    assert trace.layers["features.3"].backward.matmul_flops == 2 * trace.layers["features.3"].forward.matmul_flops
    assert trace.backward.matmul_flops > trace.forward.matmul_flops


def test_unknown_function_is_reported():
    from tinytorch.core import Function

    class MysteryFunction(Function, op="mystery"):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            return grad * 2

    class M(nn.Module):
        def forward(self, x):
            return MysteryFunction.apply(x)

    t = FLOPsCounter().trace(M(), randn(3, 4))
    assert t.unknown_ops == {"mystery": 1} and t.forward.elementwise_flops == 12


def test_fused_attention_function_counted_from_shapes_and_settings():
    from tinytorch.core import Function

    class ScaledDotProductAttentionFunction(Function, op="scaled_dot_product_attention"):
        def forward(self, q, k, v, bias=None, dropout_p=0.0):
            s = q @ np.swapaxes(k, -1, -2)
            return (s if bias is None else s + bias) @ v

    class M(nn.Module):
        def __init__(self, masked):
            super().__init__()
            self.masked = masked

        def forward(self, x):
            bias = np.triu(np.full((8, 8), -1e9, np.float32), 1) if self.masked else None
            return ScaledDotProductAttentionFunction.apply(x, x, x, bias=bias)

    scores = 2 * 4 * 8 * 8
    for masked, per_score in ((True, 7), (False, 6)):  # scale + (mask) + 5 softmax
        t = FLOPsCounter().trace(M(masked), randn(2, 4, 8, 16))
        assert t.forward.matmul_flops == 4 * scores * 16
        assert t.forward.elementwise_flops == scores * per_score


def test_formula_missing_a_setting_is_an_error_naming_it():
    from tinytorch.core import Function

    class PoolFunction(Function, op="max_pool2d"):
        def forward(self, x, *, window):  # a renamed setting must not fall back silently
            return x[..., ::window, ::window]

    class M(nn.Module):
        def forward(self, x):
            return PoolFunction.apply(x, window=2)

    with pytest.raises(ValueError, match="max_pool2d.*needs setting 'kernel'"):
        FLOPsCounter().trace(M(), randn(1, 1, 4, 4))


def test_every_table_formula_kind_is_known():
    kinds = {"matmul", "conv", "attention", "norm", "pool", "loss", "reduction", "elementwise",
             "movement"}
    assert {f.kind for f in fl.FLOP_FORMULAS.values()} <= kinds
    assert all(fl.FLOP_FORMULAS[op].kind == "movement" for op in fl.MOVEMENT_OPS)


def test_ceil_mode_pool_output_matches_pytorch_rule():
    # torch: MaxPool2d(3, 2, ceil_mode=True) on 8x8 -> 4x4 (floor gives 3x3); 7x7 pad 1 -> 4x4
    assert fl.pool2d_flops((1, 1, 8, 8), 3, 2, ceil_mode=True)[1] == (1, 1, 4, 4)
    assert fl.pool2d_flops((1, 1, 8, 8), 3, 2)[1] == (1, 1, 3, 3)
    assert fl.pool2d_flops((1, 1, 7, 7), 3, 2, 1, ceil_mode=True)[1] == (1, 1, 4, 4)
    assert fl.pool2d_flops((1, 1, 5, 5), 2, 2, 1, ceil_mode=True)[1] == (1, 1, 3, 3)


def test_registered_models_trace_every_op():
    from tinytorch.perf import available_models, load_model

    names = [n for n in available_models() if not n.startswith("test_")]
    if not names:
        pytest.skip("no vision/language models registered")
    for name in names:
        model, x = load_model(name)
        trace = FLOPsCounter().trace(model, x)
        assert trace.unknown_ops == {}, name
        if name == "tinygpt":  # vocab 65, d 256, 4 layers, T 128 (the seed's configuration)
            b, L, d, V, n = 1, 128, 256, 65, 4
            assert trace.forward.matmul_flops == n * (8 * b * L * d * d + 4 * b * L * L * d
                                                      + 16 * b * L * d * d) + 2 * b * L * d * V


def test_functional_cross_entropy_traced():
    class M(nn.Module):
        def forward(self, x):
            return F.cross_entropy(x, np.array([1, 2, 3, 0]))

    t = FLOPsCounter().trace(M(), randn(4, 10))
    assert t.forward.elementwise_flops == fl.cross_entropy_flops(4, 10).flops


def test_kl_div_is_counted_per_broadcast_element_with_its_reduction():
    formula = fl.FLOP_FORMULAS["kl_div"]
    x, p = np.zeros((4, 5), np.float32), np.zeros((1, 5), np.float32)  # p broadcast over 4 rows
    summed = formula.count((x, p), np.zeros((), np.float32), {"reduction": "sum"})
    pointwise = formula.count((x, p), np.zeros((4, 5), np.float32), {"reduction": "none"})
    assert formula.kind == "loss"
    assert summed.elementwise_flops == 5 * 20 and pointwise.elementwise_flops == 4 * 20
    assert summed.bytes == 4 * (20 + 5 + 1) and pointwise.bytes == 4 * (20 + 5 + 20)


def test_saved_bytes_are_what_backward_keeps_beyond_the_inputs():
    from types import SimpleNamespace

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Tanh(), nn.LayerNorm(8))
    layers = FLOPsCounter().trace(model, randn(3, 4)).layers
    # Linear keeps x and W, its inputs: nothing new; ReLU a bool mask (3·8 bytes); tanh its float32
    # output (3·8·4); LayerNorm x̂ (3·8·4) and 1/σ per row (3·4)
    assert {name: layer.saved_bytes for name, layer in layers.items()} == {"0": 0, "1": 24, "2": 96, "3": 108}
    inp, base = np.zeros((3, 4)), np.zeros((4, 5))
    fn = SimpleNamespace(view=inp[1:], own=base, again=base[2:], pair=(base.T, np.ones(3)), n=7)
    assert fl._saved_bytes(fn, (inp,)) == base.nbytes + 3 * 8  # views of one buffer count once


def test_trace_holds_no_activation_past_its_use():
    """Tracing GPT-2 124M on 64 x 128 tokens held 10.6 GB (every call's output and every op's
    saved arrays kept to the end) where its forward needs 2.2 GB: by the last layer, no earlier
    layer's output may still be alive."""
    import gc
    import weakref

    from tinytorch.core import no_grad

    class Probe(nn.Module):
        def forward(self, x):
            gc.collect()
            alive.extend(name for name, ref in outputs if ref() is not None)
            return x

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), Probe())
    outputs, alive = [], []
    for name in ("0", "1"):  # consumed by the next layer, then needed by nothing
        model[int(name)].register_forward_hook(
            lambda m, args, out, name=name: outputs.append((name, weakref.ref(out.data))))
    with no_grad():
        trace = FLOPsCounter().trace(model, randn(32, 8))
    assert [name for name, _ in outputs] == ["0", "1"] and alive == []
    assert trace.layers["1"].output_shape == (32, 16) and trace.layers["1"].output_bytes == 32 * 16 * 4
