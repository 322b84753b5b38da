"""Spatial layers: `Conv1d`, `Conv2d`, `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, `BatchNorm2d`.

Constructor arguments, parameter names, initialisation and state-dict keys follow ``torch.nn``,
so a PyTorch CNN's state dict (converted to NumPy) loads one to one.
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.core import Tensor
from tinytorch.core.checks import is_int
from tinytorch.core.nn import Module, Parameter, init
from tinytorch.core.nn.batchnorm import _BatchNorm
from tinytorch.core.nn.utils import prune

from . import functional as VF
from .functional import IntPair, _pair


def _positive(owner: str, **values: int) -> None:
    for name, v in values.items():
        if not is_int(v) or v <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {v!r}")


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What Conv1d and Conv2d share, as PyTorch's ``_ConvNd``: checks, weight and bias (init
    U(-1/√fan_in, 1/√fan_in), fan_in = Cin/groups·prod(kernel)) and ``padding_mode``.

    With ``padding_mode`` other than ``"zeros"`` the input is first padded by ``functional.pad``
    in that mode and the convolution itself pads nothing, exactly as PyTorch does. ``padding``
    is kept as given (an int tuple, or ``"same"``/``"valid"``); ``_mode_padding`` is the
    (before, after) pairs per spatial axis that the padding mode applies.

    Args:
        in_channels: Cin.
        out_channels: Cout.
        kernel_size: one int per spatial axis.
        stride: one int per spatial axis.
        padding: ints per spatial axis, or ``"same"``/``"valid"``.
        dilation: one int per spatial axis.
        groups: independent channel groups.
        bias: learn a per-output-channel bias.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        dtype: dtype of the weight and bias.

    >>> Conv1d(2, 4, 3, padding=1, padding_mode="circular")._mode_padding
    [(1, 1)]
    """

    def __init__(self, in_channels, out_channels, kernel_size: tuple[int, ...], stride, padding,
                 dilation, groups, bias, padding_mode, dtype):
        super().__init__()
        owner = type(self).__name__
        _positive(owner, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{owner}: in_channels {in_channels} and out_channels {out_channels} must both be "
                f"divisible by groups {groups}"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{owner}: padding_mode must be one of {', '.join(PADDING_MODES)}, "
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{owner}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
            if padding == "same" and any(st != 1 for st in stride):
                raise ValueError(f"{owner}: padding='same' needs stride 1, got stride {stride}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.padding_mode = padding_mode
        if padding == "same":
            self._mode_padding = VF._same_padding(kernel_size, dilation)
        elif padding == "valid":
            self._mode_padding = [(0, 0)] * len(kernel_size)
        else:
            self._mode_padding = [(p, p) for p in padding]
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, *kernel_size), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
            bound = 1 / math.sqrt(in_channels // groups * math.prod(kernel_size))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def _padded(self, x: Tensor) -> tuple[Tensor, tuple[int, ...] | str]:
        """The input and the padding the convolution applies, after any non-zero padding mode."""
        pad = tuple(p for pair in reversed(self._mode_padding) for p in pair)  # last axis first
        if self.padding_mode == "zeros" or not any(pad):
            return x, self.padding
        return VF.pad(x, pad, mode=self.padding_mode), (0,) * len(self.kernel_size)

    def _check_input(self, x: Tensor, layout: str) -> None:
        if not isinstance(x, Tensor) or x.ndim != 2 + len(self.kernel_size) or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"{type(self).__name__} expected input (N, {self.in_channels}, {layout}), got {got}")

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != "valid" and (isinstance(self.padding, str) or any(self.padding)):
            s += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over an (N, C, L) batch, as ``torch.nn.Conv1d`` (``functional.conv1d``:
    the Conv2d im2col + GEMM on an (N, C, 1, L) view).

    Initialised as PyTorch: weight and bias ~ U(-1/√fan_in, 1/√fan_in), fan_in = Cin/groups·k.
    The weight is (out_channels, in_channels/groups, kernel_size), so a PyTorch state dict loads
    one to one.

    Args:
        in_channels: Cin.
        out_channels: Cout.
        kernel_size: k (an int or a 1-tuple).
        stride: step between windows.
        padding: padding on each side (an int), ``"same"`` (keeps L, stride 1 only; an even
            dilated kernel pads one more on the right, as PyTorch) or ``"valid"`` (none).
        dilation: spacing between kernel taps.
        groups: independent channel groups (both channel counts must divide by it).
        bias: learn a per-output-channel bias.
        padding_mode: what the padding holds: ``"zeros"``, ``"reflect"`` (mirror, pad < L),
            ``"replicate"`` (the edge value) or ``"circular"`` (wrap around, pad <= L).
        dtype: dtype of the weight and bias.

    Shape: (N, Cin, L) -> (N, Cout, Lo), Lo = (L + 2·padding - dilation·(k - 1) - 1) // stride + 1.

    >>> conv = Conv1d(16, 32, 3, padding=1, padding_mode="reflect")
    >>> conv(Tensor(np.zeros((4, 16, 50), dtype=np.float32))).shape
    (4, 32, 50)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: int | tuple[int] | str = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype=np.float32):
        one = VF._single
        padding = padding if isinstance(padding, str) else (one("padding", "Conv1d", padding, 0),)
        super().__init__(in_channels, out_channels, (one("kernel_size", "Conv1d", kernel_size, 1),),
                         (one("stride", "Conv1d", stride, 1),), padding,
                         (one("dilation", "Conv1d", dilation, 1),), groups, bias, padding_mode, dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, "L")
        x, padding = self._padded(x)
        return VF.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


Conv1D = Conv1d


class Conv2d(_ConvNd):
    """2-D convolution over an NCHW batch (im2col + one GEMM; see ``functional.conv2d``).

    Initialised as PyTorch: weight and bias ~ U(-1/√fan_in, 1/√fan_in), fan_in = Cin/groups·kh·kw.

    Args:
        in_channels: Cin, the number of input channels.
        out_channels: Cout, the number of output channels (filters).
        kernel_size: an int or (kh, kw).
        stride: step between windows, an int or an (sh, sw) pair.
        padding: padding on each side, an int, a (ph, pw) pair, ``"same"`` (keeps H x W,
            stride 1 only; an even dilated kernel pads one more at the bottom/right, as
            PyTorch) or ``"valid"`` (no padding).
        dilation: spacing between kernel taps, an int or a (dh, dw) pair.
        groups: independent channel groups (both channel counts must divide by it).
        bias: learn a per-output-channel bias.
        padding_mode: what the padding holds: ``"zeros"``, ``"reflect"`` (mirror without the
            edge; each pad smaller than its side), ``"replicate"`` (the edge value) or
            ``"circular"`` (wrap around; each pad at most its side), as PyTorch.
        dtype: dtype of the weight and bias (float32; float64 for gradient checks).

    Shape: (N, Cin, H, W) -> (N, Cout, Ho, Wo).

    >>> conv = Conv2d(3, 16, 3, padding=1)
    >>> conv(Tensor(np.zeros((8, 3, 32, 32), dtype=np.float32))).shape
    (8, 16, 32, 32)
    >>> Conv2d(3, 16, 3, padding=1, padding_mode="circular")(Tensor(np.zeros((1, 3, 8, 8), dtype=np.float32))).shape
    (1, 16, 8, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype=np.float32):
        padding = padding if isinstance(padding, str) else _pair("padding", "Conv2d", padding, 0)
        super().__init__(in_channels, out_channels, _pair("kernel_size", "Conv2d", kernel_size, 1),
                         _pair("stride", "Conv2d", stride, 1), padding,
                         _pair("dilation", "Conv2d", dilation, 1), groups, bias, padding_mode, dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, "H, W")
        x, padding = self._padded(x)
        return VF.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


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


# How these layers take part in structured shrinking (core's prune.shrink knows no vision):
# a convolution produces channels from its weight's axis 0 and reads them on axis 1 (groups
# of one only), BatchNorm2d holds one entry per channel, pooling keeps the channels and maps
# zeros to zeros.
_CONV_RULE = prune.LayerRule("linear", channel_axis=1, outputs=(("weight", 0), ("bias", 0)),
                             inputs=(("weight", 1),), out_size="out_channels", in_size="in_channels",
                             usable=lambda conv: conv.groups == 1)
prune.register_layer(_ConvNd, _CONV_RULE)
prune.register_layer(BatchNorm2d, prune.LayerRule(
    "norm", 1, outputs=prune.NORM_TENSORS, inputs=prune.NORM_TENSORS, out_size="num_features",
    in_size="num_features"))
for _pool in (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d):
    prune.register_layer(_pool, prune.LayerRule("elementwise", channel_axis=1))
