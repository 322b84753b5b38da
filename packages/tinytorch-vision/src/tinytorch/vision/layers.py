"""Spatial layers: `Conv2d`, `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, `BatchNorm2d`.

Constructor arguments, parameter names, initialisation and state-dict keys follow ``torch.nn``,
so a PyTorch CNN's state dict (converted to NumPy) loads one to one.
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.core import Tensor
from tinytorch.core.nn import Module, Parameter, init
from tinytorch.core.nn.batchnorm import _BatchNorm

from . import functional as VF
from .functional import IntPair, _pair


def _positive(owner: str, **values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {v!r}")


class Conv2d(Module):
    """2-D convolution over an NCHW batch (im2col + one GEMM; see ``functional.conv2d``).

    Initialised as PyTorch: weight and bias ~ U(-1/√fan_in, 1/√fan_in), fan_in = Cin/groups·kh·kw.

    Args:
        in_channels: Cin, the number of input channels.
        out_channels: Cout, the number of output channels (filters).
        kernel_size: an int or (kh, kw).
        stride: step between windows, an int or an (sh, sw) pair.
        padding: zero padding on each side, an int, a (ph, pw) pair, ``"same"`` (keeps H x W,
            stride 1 only) or ``"valid"`` (no padding).
        dilation: spacing between kernel taps, an int or a (dh, dw) pair.
        groups: independent channel groups (both channel counts must divide by it).
        bias: learn a per-output-channel bias.
        dtype: dtype of the weight and bias (float32; float64 for gradient checks).

    Shape: (N, Cin, H, W) -> (N, Cout, Ho, Wo).

    >>> conv = Conv2d(3, 16, 3, padding=1)
    >>> conv(Tensor(np.zeros((8, 3, 32, 32), dtype=np.float32))).shape
    (8, 16, 32, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 dtype=np.float32):
        super().__init__()
        _positive("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must both be "
                f"divisible by groups {groups}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair("kernel_size", "Conv2d", kernel_size, 1)
        self.stride = _pair("stride", "Conv2d", stride, 1)
        self.dilation = _pair("dilation", "Conv2d", dilation, 1)
        self.padding = padding if isinstance(padding, str) else _pair("padding", "Conv2d", padding, 0)
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, kh, kw), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
            bound = 1 / math.sqrt(in_channels // groups * kh * kw)
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"Conv2d expected input (N, {self.in_channels}, H, W), got {got}")
        return VF.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


Conv2D = Conv2d


class MaxPool2d(Module):
    """Max pooling (``functional.max_pool2d``); 2x2 stride 2 takes a reshape fast path.

    Args:
        kernel_size: window size, an int or (kh, kw).
        stride: step between windows; default ``kernel_size``.
        padding: implicit -inf padding on each side (at most half the kernel).
        dilation: spacing between window taps.
        ceil_mode: round the output size up instead of down.

    Shape: (N, C, H, W) -> (N, C, Ho, Wo).

    >>> MaxPool2d(2)(Tensor(np.zeros((1, 4, 28, 28), dtype=np.float32))).shape
    (1, 4, 14, 14)
    """

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 dilation: IntPair = 1, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = _pair("kernel_size", "MaxPool2d", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair("stride", "MaxPool2d", stride, 1)
        self.padding = _pair("padding", "MaxPool2d", padding, 0)
        self.dilation = _pair("dilation", "MaxPool2d", dilation, 1)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return VF.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


MaxPool2D = MaxPool2d


class AvgPool2d(Module):
    """Average pooling (``functional.avg_pool2d``).

    Args:
        kernel_size: window size, an int or (kh, kw).
        stride: step between windows; default ``kernel_size``.
        padding: implicit zero padding on each side (at most half the kernel).
        ceil_mode: round the output size up instead of down.
        count_include_pad: divide by the full window size, zero padding included.

    Shape: (N, C, H, W) -> (N, C, Ho, Wo).

    >>> AvgPool2d(2)(Tensor(np.ones((1, 3, 8, 8), dtype=np.float32))).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _pair("kernel_size", "AvgPool2d", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair("stride", "AvgPool2d", stride, 1)
        self.padding = _pair("padding", "AvgPool2d", padding, 0)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    def forward(self, x: Tensor) -> Tensor:
        return VF.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


AvgPool2D = AvgPool2d


class AdaptiveAvgPool2d(Module):
    """Average-pool to a fixed output size; ``AdaptiveAvgPool2d(1)`` is global average pooling.

    Args:
        output_size: an int or (oh, ow); ``None`` in a pair keeps that input size.

    Shape: (N, C, H, W) -> (N, C, oh, ow).

    >>> AdaptiveAvgPool2d(1)(Tensor(np.ones((2, 8, 7, 7), dtype=np.float32))).shape
    (2, 8, 1, 1)
    """

    def __init__(self, output_size: IntPair):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return VF.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C).

    Takes no arguments; the same as ``AdaptiveAvgPool2d(1)`` followed by a flatten.

    >>> GlobalAvgPool2d()(Tensor(np.ones((2, 8, 7, 7), dtype=np.float32))).shape
    (2, 8)
    """

    def forward(self, x: Tensor) -> Tensor:
        return VF.adaptive_avg_pool2d(x, 1).reshape(x.shape[0], x.shape[1])


class BatchNorm2d(_BatchNorm):
    """Batch normalization per channel of an NCHW batch (one fused Function, analytic backward).

    Training mode normalizes with the batch statistics and updates ``running_mean`` /
    ``running_var`` (momentum 0.1, unbiased variance, as PyTorch); eval mode uses the running
    statistics. State-dict keys match PyTorch: weight, bias, running_mean, running_var,
    num_batches_tracked. Checks, parameters, buffers and the running-statistics schedule are
    core's BatchNorm base (``tinytorch.core.nn.batchnorm._BatchNorm``), shared with
    ``BatchNorm1d`` and ``SyncBatchNorm``.

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: weight of each new batch in the running statistics; None for a cumulative
            average over all batches.
        affine: learn a per-channel scale (weight, init 1) and shift (bias, init 0).
        track_running_stats: keep running statistics (otherwise batch statistics always).
        dtype: dtype of the parameters and running statistics.
        bias: with ``affine``, learn the shift too (keyword-only, as PyTorch).

    Shape: (N, C, H, W) -> (N, C, H, W).

    >>> bn = BatchNorm2d(4)
    >>> y = bn(Tensor(np.random.default_rng(0).normal(3, 2, (8, 4, 5, 5)).astype(np.float32)))
    >>> bool(abs(y.numpy().mean()) < 1e-5)
    True
    """

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.num_features:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"BatchNorm2d expected input (N, {self.num_features}, H, W), got {got}")

    def _normalize(self, x, running_mean, running_var, training, momentum):
        bias = self.bias
        if self.weight is not None and bias is None:  # bias=False: a constant zero shift
            bias = Tensor(np.zeros_like(self.weight.data))
        return VF.batch_norm2d(x, running_mean, running_var, self.weight, bias, training=training,
                               momentum=momentum, eps=self.eps)


BatchNorm2D = BatchNorm2d
