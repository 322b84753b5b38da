"""perf's FLOP table covers every op the installed packages declare, and reads their settings.

Root-level because it imports core, vision and language together (perf itself never imports
vision or language).
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import tinytorch.core
import tinytorch.language
import tinytorch.vision
from tinytorch.core import Function, Tensor, nn
from tinytorch.perf import FLOPsCounter
from tinytorch.perf import flops as fl


def _declared_ops() -> dict[str, str]:
    """op name -> Function class, for every Function subclass in core, vision and language."""
    for package in (tinytorch.core, tinytorch.vision, tinytorch.language):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith(("cli", "__main__")):
                importlib.import_module(info.name)
    ops, todo = {}, list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith(("tinytorch.core", "tinytorch.vision", "tinytorch.language")):
            ops[cls.op] = f"{cls.__module__}.{cls.__qualname__}"
    return ops


def test_every_declared_op_has_a_flop_formula():
    ops = _declared_ops()
    assert {"matmul", "conv2d", "max_pool2d", "packed_self_attention", "layer_norm"} <= set(ops)
    missing = {op: where for op, where in ops.items() if op not in fl.FLOP_FORMULAS}
    assert missing == {}, f"ops with no FLOP formula (add one in tinytorch.perf.flop_formulas): {missing}"


def test_traced_max_pool_reads_kernel_and_stride_settings():
    # 4 channels of 8x8, 3x3 windows at stride 1: 6x6 outputs per channel, 9 compares each.
    # Reading the stride from the kernel would give 2x2x4x9 = 144; falling back to one op per
    # input element would give 256.
    model = nn.Sequential(tinytorch.vision.MaxPool2d(3, stride=1))
    trace = FLOPsCounter().trace(model, Tensor(np.ones((1, 4, 8, 8), np.float32)))
    assert trace.unknown_ops == {}
    assert trace.forward.elementwise_flops == 4 * 6 * 6 * 9 == 1296
    assert trace.layers["0"].output_shape == (1, 4, 6, 6)


@pytest.mark.parametrize("kwargs,out_hw", [
    (dict(kernel_size=3, stride=2, padding=1), (4, 4)),
    (dict(kernel_size=2, stride=2, ceil_mode=True), (4, 4)),
    (dict(kernel_size=3, stride=1, dilation=2), (3, 3)),
])
def test_traced_pools_equal_the_closed_form(kwargs, out_hw):
    x = Tensor(np.ones((2, 3, 7, 7), np.float32))
    for layer, dilation in ((tinytorch.vision.MaxPool2d, kwargs.get("dilation", 1)),
                            (tinytorch.vision.AvgPool2d, None)):
        if dilation is None and "dilation" in kwargs:
            continue  # avg pooling has no dilation
        trace = FLOPsCounter().trace(nn.Sequential(layer(**kwargs)), x)
        assert trace.layers["0"].output_shape == (2, 3, *out_hw)
        assert trace.forward.elementwise_flops == 2 * 3 * out_hw[0] * out_hw[1] * kwargs["kernel_size"] ** 2


def test_traced_gelu_reads_approximate_and_batchnorm_reads_training():
    x = Tensor(np.ones((2, 3, 4, 4), np.float32))
    n = x.size
    assert FLOPsCounter().trace(nn.GELU(approximate="tanh"), x).forward.flops == 9 * n
    assert FLOPsCounter().trace(nn.GELU(), x).forward.flops == 5 * n
    bn = tinytorch.vision.BatchNorm2d(3)
    assert FLOPsCounter().trace(bn, x).forward.flops == 8 * n
    bn.eval()
    assert FLOPsCounter().trace(bn, x).forward.flops == 4 * n


def test_traced_packed_attention_reads_heads_and_causal():
    from tinytorch.language.functional import packed_self_attention

    class Attn(nn.Module):
        def __init__(self, heads, causal, padding=None):
            super().__init__()
            self.heads, self.causal, self.padding = heads, causal, padding

        def forward(self, qkv):
            return packed_self_attention(qkv, self.heads, is_causal=self.causal, attention_mask=self.padding)

    b, t, c = 2, 5, 16
    qkv = Tensor(np.ones((b, t, 3 * c), np.float32))
    for heads, causal in ((4, True), (2, False)):
        f = FLOPsCounter().trace(Attn(heads, causal), qkv).forward
        assert f.matmul_flops == 4 * b * t * t * c  # independent of the head split
        assert f.elementwise_flops == b * heads * t * t * (6 + causal)
    # A padding mask is an add per score too, with or without the causal one (combined first).
    padding = np.array([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    for causal in (False, True):
        f = FLOPsCounter().trace(Attn(2, causal, padding), qkv).forward
        assert f.elementwise_flops == b * 2 * t * t * 7
