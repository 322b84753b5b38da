"""tinytorch.perf's matmul/conv FLOP counts against PyTorch's FlopCounterMode, shape by shape.

For every case the closed form (and, where the layer exists in TinyTorch, the tracer on a real
forward) must equal ``torch.utils.flop_counter.FlopCounterMode``'s total on the same shapes.
FlopCounterMode counts no bias adds or elementwise ops, so the comparison uses our
``matmul_flops`` only. The PyTorch side runs under ``$TINYTORCH_REFERENCE_PYTHON``
(default ``~/.venvs/ref/bin/python`` when it exists).

Usage: uv run python benchmarks/perf_flops_vs_torch.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from _common import emit, run_reference

from tinytorch.core import Tensor, nn, randn
from tinytorch.core import functional as F
from tinytorch.perf import FLOPsCounter
from tinytorch.perf.flop_formulas import attention_flops, conv2d_flops, linear_flops, matmul_flops

LINEAR = [(32, 784, 128), (1, 3072, 10), (256, 256, 1024)]
# (B, Cin, H, W, Cout, k, stride, padding, dilation, groups)
CONV = [(1, 3, 32, 32, 64, 3, 1, 1, 1, 1), (8, 16, 32, 32, 32, 3, 2, 1, 1, 1),
        (4, 32, 17, 17, 64, 5, 1, 2, 2, 1), (2, 32, 28, 28, 64, 3, 1, 1, 1, 4),
        (2, 32, 14, 14, 32, 3, 2, 1, 1, 32), (4, 64, 8, 8, 128, 1, 1, 0, 1, 1),
        (1, 3, 224, 224, 64, 7, 2, 3, 1, 1)]
MATMUL = [((8, 64, 32), (8, 32, 48)), ((4, 1, 16, 8), (3, 8, 5)), ((128, 256), (256, 64))]
# (B, L, d, heads)
ATTENTION = [(1, 128, 256, 8), (4, 64, 128, 4), (2, 32, 64, 1)]
# fused attention alone, (B, heads, L, head_size), causal
SDPA = [(2, 4, 16, 8), (1, 8, 64, 32), (4, 1, 33, 16)]

TORCH_CODE = """
import json, torch
from torch.utils.flop_counter import FlopCounterMode
LINEAR, CONV, MATMUL, ATTENTION, SDPA = {cases}
def count(fn):
    with FlopCounterMode(display=False) as m:
        fn()
    return m.get_total_flops()
out = {{"torch": torch.__version__, "linear": [], "conv": [], "matmul": [], "attention": [],
        "mha_module": [], "sdpa": []}}
for b, h, L, e in SDPA:
    q, k, v = (torch.randn(b, h, L, e) for _ in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):  # the CPU flash kernel has no FLOP formula in torch
        out["sdpa"].append(count(lambda: sdpa(q, k, v, is_causal=True)))
for n, i, o in LINEAR:
    layer = torch.nn.Linear(i, o); x = torch.randn(n, i)
    out["linear"].append(count(lambda: layer(x)))
for b, c, h, w, co, k, s, p, d, g in CONV:
    conv = torch.nn.Conv2d(c, co, k, stride=s, padding=p, dilation=d, groups=g)
    x = torch.randn(b, c, h, w)
    out["conv"].append(count(lambda: conv(x)))
for a, bb in MATMUL:
    x, y = torch.randn(*a), torch.randn(*bb)
    out["matmul"].append(count(lambda: x @ y))
for b, L, d, h in ATTENTION:
    q, k, v, o = (torch.nn.Linear(d, d) for _ in range(4))
    x = torch.randn(b, L, d)
    def attn():
        split = lambda t: t.view(b, L, h, d // h).transpose(1, 2)
        qq, kk, vv = split(q(x)), split(k(x)), split(v(x))
        s = (qq @ kk.transpose(-1, -2)) * (d // h) ** -0.5
        y = torch.softmax(s, -1) @ vv
        return o(y.transpose(1, 2).reshape(b, L, d))
    out["attention"].append(count(attn))
    mha = torch.nn.MultiheadAttention(d, h, batch_first=True)
    # need_weights=True forces the explicit bmm path, which FlopCounterMode counts on CPU
    out["mha_module"].append(count(lambda: mha(x, x, x, need_weights=True)))
print(json.dumps(out))
"""


class _Attention(nn.Module):
    """Reference multi-head attention on core ops (q, k, v, o projections + two matmuls)."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.d, self.h = d, h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        b, L, d, h = *x.shape, self.h

        def split(t):
            return t.reshape(b, L, h, d // h).permute(0, 2, 1, 3)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        s = (q @ k.permute(0, 1, 3, 2)) * float((d // h) ** -0.5)
        y = F.softmax(s, -1) @ v
        return self.o(y.permute(0, 2, 1, 3).reshape(b, L, d))


def main() -> None:
    if not os.environ.get("TINYTORCH_REFERENCE_PYTHON"):
        ref = Path.home() / ".venvs" / "ref" / "bin" / "python"
        if ref.exists():
            os.environ["TINYTORCH_REFERENCE_PYTHON"] = str(ref)
    counter = FLOPsCounter()
    ours: dict[str, list] = {"linear": [], "conv": [], "matmul": [], "attention": [], "sdpa": []}
    traced: dict[str, list] = {"linear": [], "conv": [], "matmul": [], "attention": [], "sdpa": []}
    packed: list[int] = []
    for n, i, o in LINEAR:
        ours["linear"].append(linear_flops(n, i, o).matmul_flops)
        traced["linear"].append(counter.trace(nn.Linear(i, o), randn(n, i)).forward.matmul_flops)
    try:
        from tinytorch.vision import Conv2d  # the real layer, when vision is installed
    except ImportError:
        Conv2d = None
    for b, c, h, w, co, k, s, p, d, g in CONV:
        ours["conv"].append(conv2d_flops((b, c, h, w), co, k, s, p, d, g)[0].matmul_flops)
        if Conv2d is not None:
            layer = Conv2d(c, co, k, stride=s, padding=p, dilation=d, groups=g)
            traced["conv"].append(counter.trace(layer, randn(b, c, h, w)).forward.matmul_flops)
    for a, bb in MATMUL:
        ours["matmul"].append(matmul_flops(a, bb).matmul_flops)
        x, y = Tensor(np.ones(a, np.float32)), Tensor(np.ones(bb, np.float32))
        traced["matmul"].append(counter.trace(_Wrap(), (x, y)).forward.matmul_flops)
    for b, L, d, h in ATTENTION:
        ours["attention"].append(attention_flops(b, L, d, h).matmul_flops)
        traced["attention"].append(counter.trace(_Attention(d, h), randn(b, L, d)).forward.matmul_flops)
    try:  # the fused attention Functions, when language is installed
        from tinytorch.language.functional import (
            packed_self_attention,
            scaled_dot_product_attention,
        )
    except ImportError:
        scaled_dot_product_attention = None
    for b, h, L, e in SDPA:
        ours["sdpa"].append(4 * b * h * L * L * e)  # sdpa_flops(...).matmul_flops
        if scaled_dot_product_attention is not None:
            q = randn(b, h, L, e)
            traced["sdpa"].append(counter.trace(
                _Call(lambda t: scaled_dot_product_attention(t, t, t, is_causal=True)), q
            ).forward.matmul_flops)
            qkv = randn(b, L, 3 * h * e)
            packed.append(counter.trace(
                _Call(lambda t, h=h: packed_self_attention(t, h, is_causal=True)), qkv
            ).forward.matmul_flops)
    cases = json.dumps([LINEAR, CONV, [[list(a), list(b)] for a, b in MATMUL], ATTENTION, SDPA])
    torch = run_reference(TORCH_CODE.format(cases=cases))
    result: dict = {"ours_closed_form": ours, "ours_traced": traced,
                    "ours_packed_attention_traced": packed, "torch": torch}
    if "skipped" not in torch:
        checks = {}
        for kind in ours:
            checks[kind] = ours[kind] == torch[kind]
            if traced[kind]:
                checks[kind + "_traced"] = traced[kind] == torch[kind]
        checks["mha_module"] = ours["attention"] == torch["mha_module"]
        if packed:
            checks["packed_attention_traced"] = packed == torch["sdpa"]
        result["equal"] = checks
        result["all_equal"] = all(checks.values())
    emit("perf_flops_vs_torch", result)


class _Call(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Wrap(nn.Module):
    def forward(self, pair):
        return pair[0] @ pair[1]


if __name__ == "__main__":
    main()
