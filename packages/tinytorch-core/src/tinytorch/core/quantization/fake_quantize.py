"""Fake quantization for quantization-aware training (QAT), as ``torch.ao.quantization.FakeQuantize``.

Fake quantization rounds a float tensor to its quantized grid and back, in float:
x̂ = (clamp(round(x/s) + z, qmin, qmax) - z)·s, so training sees the rounding error the integer
model will have. Rounding has a zero derivative almost everywhere, so the backward pass uses the
straight-through estimator (Bengio et al. 2013): the gradient passes unchanged where the value
landed inside [qmin, qmax] and is zero where it was clamped, exactly PyTorch's
``fake_quantize_per_tensor_affine`` backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function
from ..nn.module import Module
from ..tensor import Tensor
from .functional import (
    QDTYPES,
    _channel_view,
    _check_axis,
    _check_scales,
    _check_zero_points,
    check_qdtype,
)
from .observers import MovingAverageMinMaxObserver, ObserverBase


class FakeQuantizeFunction(Function, op="fake_quantize"):
    """x̂ = (clamp(round(x·(1/s)) + z, qmin, qmax) - z)·s; backward: grad where not clamped, else 0.

    ``scale`` and ``zero_point`` are arrays broadcasting against ``x`` (one value, or one per
    channel reshaped along the channel axis); they are constants, not learned.

    >>> x = Tensor(np.array([-2.0, 0.3, 9.0]), requires_grad=True)
    >>> y = FakeQuantizeFunction.apply(x, scale=np.array(0.5), zero_point=np.array(0), qmin=-4, qmax=3)
    >>> y.numpy().tolist()
    [-2.0, 0.5, 1.5]
    >>> y.sum().backward(); x.grad.tolist()       # 9.0 was clamped: no gradient
    [1.0, 1.0, 0.0]
    """

    def forward(self, x, *, scale, zero_point, qmin, qmax):
        q = np.round(x * (1 / scale).astype(x.dtype)) + zero_point.astype(x.dtype)
        self.inside = (q >= qmin) & (q <= qmax)
        return ((np.clip(q, qmin, qmax) - zero_point) * scale).astype(x.dtype)

    def backward(self, grad):
        return grad * self.inside


def _checked(owner: str, x: Tensor, scale: Any, zero_point: Any, dtype: str, axis: int | None):
    dtype = check_qdtype(owner, dtype)
    s = _check_scales(owner, "scale", scale).astype(x.dtype)
    z = _check_zero_points(owner, "zero_point", zero_point, dtype)
    if axis is not None:
        axis = _check_axis(owner, axis, x.ndim)
        if s.size != x.shape[axis] or z.size != x.shape[axis]:
            raise ValueError(f"{owner}: scale and zero_point need x.shape[{axis}] = {x.shape[axis]} entries, "
                             f"got {s.size} and {z.size}")
        s, z = _channel_view(s.ravel(), axis, x.ndim), _channel_view(z.ravel(), axis, x.ndim)
    elif s.size != 1 or z.size != 1:
        raise ValueError(f"{owner}: one scale and zero_point per tensor, got {s.size} and {z.size}")
    else:
        s, z = s.reshape(()), z.reshape(())
    return s, z, QDTYPES[dtype]


def fake_quantize_per_tensor_affine(x: Tensor, scale: float, zero_point: int, dtype: str = "uint8") -> Tensor:
    """Round ``x`` to the per-tensor quantized grid and back, with the straight-through gradient.

    Args:
        x: a float Tensor.
        scale: the step, > 0.
        zero_point: the integer that represents 0.0.
        dtype: the quantized dtype whose range clamps.

    >>> fake_quantize_per_tensor_affine(Tensor(np.array([0.26, 100.0])), 0.1, 0, "int8").numpy().round(4).tolist()
    [0.3, 12.7]
    """
    s, z, (qmin, qmax) = _checked("fake_quantize_per_tensor_affine", x, scale, zero_point, dtype, None)
    return FakeQuantizeFunction.apply(x, scale=s, zero_point=z, qmin=qmin, qmax=qmax)


def fake_quantize_per_channel_affine(x: Tensor, scale: Any, zero_point: Any, axis: int,
                                     dtype: str = "int8") -> Tensor:
    """Round ``x`` to a per-channel quantized grid (a scale per index of ``axis``) and back.

    >>> w = Tensor(np.array([[0.26, -0.26], [2.6, -2.6]]))
    >>> fake_quantize_per_channel_affine(w, [0.1, 1.0], [0, 0], axis=0).numpy().round(4).tolist()
    [[0.3, -0.3], [3.0, -3.0]]
    """
    s, z, (qmin, qmax) = _checked("fake_quantize_per_channel_affine", x, scale, zero_point, dtype, axis)
    return FakeQuantizeFunction.apply(x, scale=s, zero_point=z, qmin=qmin, qmax=qmax)


class FakeQuantize(Module):
    """An observer followed by fake quantization with the observer's current qparams.

    In training each call first updates the observer (unless disabled) and then fake-quantizes
    with ``observer.calculate_qparams()``; gradients follow the straight-through estimator.
    ``enable_observer``/``disable_observer`` and ``enable_fake_quant``/``disable_fake_quant``
    switch the two halves, as torch.ao (freeze the ranges late in QAT by disabling observers).

    Args:
        observer: an observer factory (a class or ``Observer.with_args(...)``).
        **observer_kwargs: passed to the factory.

    >>> fq = FakeQuantize(MovingAverageMinMaxObserver, dtype="uint8")
    >>> y = fq(Tensor([0.0, 0.5, 1.0]))
    >>> scale, zero = fq.calculate_qparams()
    >>> round(float(scale) * 255, 5), int(zero)
    (1.0, 0)
    """

    def __init__(self, observer=MovingAverageMinMaxObserver, **observer_kwargs):
        super().__init__()
        self.activation_post_process = observer(**observer_kwargs)
        self.fake_quant_enabled = True
        self.observer_enabled = True

    with_args = classmethod(ObserverBase.with_args.__func__)

    @property
    def dtype(self) -> str:
        return self.activation_post_process.dtype

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """The observer's current (scale, zero_point)."""
        return self.activation_post_process.calculate_qparams()

    def enable_observer(self, enabled: bool = True) -> FakeQuantize:
        """Update the observer on every call (``enabled=False``: freeze the range)."""
        self.observer_enabled = bool(enabled)
        return self

    def disable_observer(self) -> FakeQuantize:
        """Freeze the range: calls fake-quantize with the qparams observed so far."""
        return self.enable_observer(False)

    def enable_fake_quant(self, enabled: bool = True) -> FakeQuantize:
        """Round to the quantized grid on every call (``enabled=False``: pass values through)."""
        self.fake_quant_enabled = bool(enabled)
        return self

    def disable_fake_quant(self) -> FakeQuantize:
        """Pass values through unchanged (the observer may still watch them)."""
        return self.enable_fake_quant(False)

    def forward(self, x: Tensor) -> Tensor:
        obs = self.activation_post_process
        if self.observer_enabled:
            obs(x.data)
        if not self.fake_quant_enabled:
            return x
        scale, zero = self.calculate_qparams()
        if obs.qscheme.startswith("per_channel"):
            return fake_quantize_per_channel_affine(x, scale, zero, obs.ch_axis, obs.dtype)
        return fake_quantize_per_tensor_affine(x, scale, zero, obs.dtype)

    def extra_repr(self) -> str:
        return f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled={self.observer_enabled}"


def _switch(method: str):
    def apply(module: Module) -> None:
        if isinstance(module, FakeQuantize):
            getattr(module, method)()
    apply.__name__ = method
    apply.__doc__ = f"Call ``{method}()`` on ``module`` if it is a FakeQuantize: use as ``model.apply({method})``."
    return apply


enable_observer = _switch("enable_observer")
disable_observer = _switch("disable_observer")
enable_fake_quant = _switch("enable_fake_quant")
disable_fake_quant = _switch("disable_fake_quant")

__all__ = ["FakeQuantizeFunction", "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
           "FakeQuantize", "enable_observer", "disable_observer", "enable_fake_quant", "disable_fake_quant"]
