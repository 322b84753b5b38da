"""Stand-in vision/language layers built on core Functions, with PyTorch's attribute names.

They let perf's tests run without tinytorch-vision or tinytorch-language installed; where those
are installed, tests also check the real layers.
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.core import Function, Tensor, nn
from tinytorch.core import functional as F
from tinytorch.core.nn import Parameter


class Conv2dFunction(Function, op="conv2d"):
    """NCHW convolution by shifted slices (forward and backward), groups supported."""

    def forward(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        B, C, H, W = x.shape
        O, Cg, kh, kw = w.shape
        g = groups
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
        wo = (W + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
        cols = np.empty((B, C, kh, kw, ho, wo), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xp[:, :, i * dilation: i * dilation + stride * ho: stride,
                                      j * dilation: j * dilation + stride * wo: stride]
        cg = cols.reshape(B, g, Cg, kh, kw, ho, wo)
        wg = w.reshape(g, O // g, Cg, kh, kw)
        out = np.einsum("bgckluv,gockl->bgouv", cg, wg).reshape(B, O, ho, wo)
        if b is not None:
            out += b[None, :, None, None]
        self.cols, self.w, self.xshape = cg, w, xp.shape
        self.geo = (stride, padding, dilation, g, ho, wo)
        return out

    def backward(self, grad):
        stride, padding, dilation, g, ho, wo = self.geo
        O, Cg, kh, kw = self.w.shape
        B = grad.shape[0]
        gg = grad.reshape(B, g, O // g, ho, wo)
        wg = self.w.reshape(g, O // g, Cg, kh, kw)
        dw = np.einsum("bgouv,bgckluv->gockl", gg, self.cols).reshape(self.w.shape)
        if not self.needs_input_grad[0]:  # like a real layer: no input gradient unless needed
            return None, dw, grad.sum(axis=(0, 2, 3))
        dcols = np.einsum("bgouv,gockl->bgckluv", gg, wg).reshape(B, g * Cg, kh, kw, ho, wo)
        dxp = np.zeros(self.xshape, dtype=grad.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i * dilation: i * dilation + stride * ho: stride,
                    j * dilation: j * dilation + stride * wo: stride] += dcols[:, :, i, j]
        H, W = self.xshape[2] - 2 * padding, self.xshape[3] - 2 * padding
        dx = dxp[:, :, padding: padding + H, padding: padding + W]
        return dx, dw, grad.sum(axis=(0, 2, 3))


class Conv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kernel_size, kernel_size), stride, padding
        self.dilation, self.groups = dilation, groups
        rng = np.random.default_rng(0)
        fan_in = in_channels // groups * kernel_size * kernel_size
        self.weight = Parameter((rng.standard_normal(
            (out_channels, in_channels // groups, kernel_size, kernel_size)) / math.sqrt(fan_in)
        ).astype(np.float32))
        self.bias = Parameter(np.zeros(out_channels, np.float32)) if bias else None

    def forward(self, x):
        args = (x, self.weight) + ((self.bias,) if self.bias is not None else ())
        return Conv2dFunction.apply(*args, stride=self.stride, padding=self.padding,
                              dilation=self.dilation, groups=self.groups)


class MaxPool2d(nn.Module):
    """2x2 (or k x k) non-overlapping max pooling from core ops: reshape + max."""

    def __init__(self, kernel_size=2):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, kernel_size, 0

    def forward(self, x):
        b, c, h, w = x.shape
        k = self.kernel_size
        return x.reshape(b, c, h // k, k, w // k, k).max(axis=(3, 5))


class SmallCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            Conv2d(3, 8, 3, padding=1), nn.ReLU(), MaxPool2d(2),
            Conv2d(8, 16, 3, stride=1, padding=1, groups=2), nn.ReLU(), MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        return self.fc(self.flatten(self.features(x)))


class MultiHeadAttention(nn.Module):
    """Causal self-attention from core ops: the composition attention_flops describes."""

    def __init__(self, d_model, num_heads):
        super().__init__()
        self.d_model, self.num_heads, self.causal = d_model, num_heads, True
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x):
        b, L, d = x.shape
        h = self.num_heads

        def split(t):
            return t.reshape(b, L, h, d // h).permute(0, 2, 1, 3)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = (q @ k.permute(0, 1, 3, 2)) * float(1 / math.sqrt(d // h))
        scores = scores.masked_fill(np.triu(np.ones((L, L), bool), 1), -1e9)
        y = F.softmax(scores, -1) @ v
        return self.out_proj(y.permute(0, 2, 1, 3).reshape(b, L, d))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), MultiHeadAttention(d, heads)
        self.ln2, self.fc, self.act, self.proj = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.proj(self.act(self.fc(self.ln2(x))))


class TinyGPTLike(nn.Module):
    def __init__(self, vocab=20, d=16, heads=4, layers=2, seq=8):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.wte(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def small_cnn_factory():
    return SmallCNN(), Tensor(np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32))


def gpt_factory():
    return TinyGPTLike(), np.random.default_rng(2).integers(0, 20, size=(2, 8))


class FakeProbe:
    """A ContentionProbe that reports what the test says (the real machine may be busy): set
    ``others_cores`` on a subclass (``type("P", (FakeProbe,), {"others_cores": 1.4})``)."""

    others_cores = 0.0

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        from tinytorch.core.contention import CONTENDED_CORES

        self.result = {"wall_s": 1.0, "own_cpu_s": 2.0, "others_cpu_s": self.others_cores,
                       "others_cores": self.others_cores, "own_cpu_per_wall": 2.0,
                       "load_1min": 0.5 + self.others_cores,
                       "contended": self.others_cores > CONTENDED_CORES}
        return False
