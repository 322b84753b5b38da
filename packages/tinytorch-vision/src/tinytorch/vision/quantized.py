"""The int8 Conv2d, registered with core's quantization registry when ``tinytorch.vision`` is imported.

A convolution is im2col + one GEMM (``functional.conv2d``), so its quantized form is the same
im2col on the quantized image followed by core's exact integer GEMM (`int_mm`) and the shared
dequantization of `QuantizedGEMM`: the input is quantized once in NHWC (before im2col, so the
kh·kw copies move no more bytes than the float layer's) into the centred integers q - z, so the
zero padding is 0 as in the float layer (it stands for 0.0), and the weight is a
(Cout, kh·kw·Cin) matrix in im2col's column order with a scale per output channel.

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.core.quantization import quantize_dynamic
>>> from tinytorch.vision import Conv2d
>>> conv = Conv2d(3, 8, 3, padding=1)
>>> qconv = quantize_dynamic(conv, {Conv2d})
>>> x = Tensor(np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32))
>>> type(qconv).__name__, bool(np.abs(qconv(x).numpy() - conv(x).numpy()).max() < 0.05)
('QuantizedConv2d', True)
"""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor
from tinytorch.core.memory import keep_freed_memory
from tinytorch.core.quantization import QuantizedGEMM, register_quantized_module, register_scheme
from tinytorch.core.quantization.observers import ObserverBase

from .functional import _im2col, _nchw, _out_size
from .layers import Conv2d


class QuantizedConv2d(QuantizedGEMM):
    """Conv2d in int8 (groups 1, zero padding): im2col of the quantized input, then `int_mm`.

    Build it with `from_float` (what ``convert`` and ``quantize_dynamic`` do).

    Shape: (N, Cin, H, W) -> (N, Cout, Ho, Wo), as the float layer.

    >>> conv = Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
    >>> QuantizedConv2d.from_float(conv)
    QuantizedConv2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=[(1, 1), (1, 1)], int8 weights, dynamic)
    """

    def __init__(self, conv: Conv2d, weight_observer: ObserverBase | None = None,
                 input_observer: ObserverBase | None = None):
        cout, cin, kh, kw = conv.weight.shape
        # (Cout, Cin, kh, kw) -> (Cout, kh·kw·Cin): im2col's (i, j, c) column order
        matrix = conv.weight.data.transpose(0, 2, 3, 1).reshape(cout, kh * kw * cin)
        super().__init__(matrix, None if conv.bias is None else conv.bias.data, weight_observer, input_observer)
        self.in_channels, self.out_channels, self.kernel_size = cin, cout, (kh, kw)
        self.stride, self.dilation = conv.stride, conv.dilation
        self.padding = [tuple(p) for p in conv._mode_padding]

    @classmethod
    def from_float(cls, layer: Conv2d, weight_observer: ObserverBase | None = None,
                   input_observer: ObserverBase | None = None) -> QuantizedConv2d:
        """The quantized copy of a float ``Conv2d`` (static with a calibrated ``input_observer``,
        dynamic without).

        >>> QuantizedConv2d.from_float(Conv2d(4, 4, 3, groups=2))
        Traceback (most recent call last):
            ...
        ValueError: QuantizedConv2d: groups must be 1, got 2
        """
        if not isinstance(layer, Conv2d):
            raise TypeError(f"QuantizedConv2d.from_float: layer must be a Conv2d, got {type(layer).__name__}")
        if layer.groups != 1:
            raise ValueError(f"QuantizedConv2d: groups must be 1, got {layer.groups}")
        if layer.padding_mode != "zeros":
            raise ValueError(f"QuantizedConv2d: padding_mode must be 'zeros', got {layer.padding_mode!r}")
        return cls(layer, weight_observer, input_observer)

    # The checkpoint protocol (core's serialization.register_scheme): GEMM tensors + the geometry.
    scheme = "int8_w8a8_conv2d"

    def _geometry(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "dilation": list(self.dilation), "padding": [list(p) for p in self.padding]}

    @classmethod
    def _check_geometry(cls, config: dict) -> None:
        def pair(key: str, minimum: int) -> list[int]:
            value = config.get(key)
            if not (isinstance(value, list) and len(value) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)):
                raise ValueError(f"{key} must be two integers >= {minimum}, got {value!r}")
            return value

        kh, kw = pair("kernel_size", 1)
        pair("stride", 1), pair("dilation", 1)
        padding = config.get("padding")
        if not (isinstance(padding, list) and len(padding) == 2 and all(isinstance(p, list) for p in padding)):
            raise ValueError(f"padding must be [[top, bottom], [left, right]], got {padding!r}")
        for i, p in enumerate(padding):
            if not (len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p)):
                raise ValueError(f"padding[{i}] must be two integers >= 0, got {p!r}")
        cin, cout = config.get("in_channels"), config.get("out_channels")
        for key, value in (("in_channels", cin), ("out_channels", cout)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if (config.get("out_features"), config.get("in_features")) != (cout, kh * kw * cin):
            raise ValueError(f"a ({cout}, {cin}, {kh}, {kw}) convolution is a {cout} x {kh * kw * cin} GEMM, "
                             f"the config says {config.get('out_features')} x {config.get('in_features')}")

    def _set_geometry(self, config: dict) -> None:
        self.in_channels, self.out_channels = config["in_channels"], config["out_channels"]
        self.kernel_size, self.stride = tuple(config["kernel_size"]), tuple(config["stride"])
        self.dilation, self.padding = tuple(config["dilation"]), [tuple(p) for p in config["padding"]]

    @classmethod
    def check_target(cls, config: dict, module) -> None:
        """ValueError unless ``module`` is the float Conv2d this config quantized."""
        if not isinstance(module, Conv2d):
            raise ValueError(f"the model has a {type(module).__name__} there, not a Conv2d")
        cout, cin, kh, kw = module.weight.shape
        if (cout, cin, [kh, kw]) != (config["out_channels"], config["in_channels"], config["kernel_size"]):
            raise ValueError(f"the model's Conv2d is {cin} -> {cout} with a {kh}x{kw} kernel, the file's "
                             f"{config['in_channels']} -> {config['out_channels']} with "
                             f"{'x'.join(map(str, config['kernel_size']))}")

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"QuantizedConv2d expected input (N, {self.in_channels}, H, W), got {got}")
        n, _, h, w = x.shape
        keep_freed_memory()  # as the float conv: the patch matrices of every call stay mapped
        (kh, kw), ((pt, pb), (pl, pr)) = self.kernel_size, self.padding
        # one pass from the NCHW input to the padded NHWC integers q - z (centred: the padding is
        # 0, which stands for 0.0), in place of a layout copy, the quantization and a padded copy
        padded = (np.zeros if pt or pb or pl or pr else np.empty)((n, h + pt + pb, w + pl + pr, self.in_channels),
                                                                  np.float32)
        _, scale, qrange = self.quantize_input(x.data.transpose(0, 2, 3, 1), out=padded[:, pt:pt + h, pl:pl + w])
        ho = _out_size(h + pt + pb, kh, self.stride[0], 0, self.dilation[0])
        wo = _out_size(w + pl + pr, kw, self.stride[1], 0, self.dilation[1])
        if ho <= 0 or wo <= 0:
            raise ValueError(f"QuantizedConv2d: input {h}x{w} is smaller than the dilated kernel")
        cols = _im2col(padded, (kh, kw), (ho, wo), self.stride, self.dilation)  # (N·Ho·Wo, kh·kw·Cin)
        out = self.dequantize_output(self.integer_gemm(cols, qrange), scale)  # (N·Ho·Wo, Cout)
        return Tensor(_nchw(out.reshape(n, ho, wo, self.out_channels)))

    def extra_repr(self) -> str:
        mode = "dynamic" if self.dynamic else f"static, input scale={float(self.input_scale.data):.4g}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, int8 weights, {mode}")


register_quantized_module(Conv2d, QuantizedConv2d)
register_scheme(QuantizedConv2d)  # its checkpoints load through core's load_quantized

__all__ = ["QuantizedConv2d"]
