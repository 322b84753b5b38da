"""The elementary differentiable ops: each forward beside its derivative.

Every class follows one pattern: ``forward`` computes with NumPy and keeps on ``self`` only what
``backward`` needs; ``backward(grad)`` returns the gradient of each input. Gradients for inputs
that were broadcast are summed back to shape by the engine (``autograd._unbroadcast``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import kernels
from .autograd import Function

# ---------------------------------------------------------------------------------- binary


def _check_broadcast(op: str, a: np.ndarray, b: np.ndarray) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together"
        ) from None


class AddFunction(Function, op="add"):
    """a + b with broadcasting; each input's gradient is the upstream gradient, summed to its shape."""
    def forward(self, a, b):
        if a.shape != b.shape:
            _check_broadcast("add", a, b)
        return a + b

    def backward(self, grad):
        return grad, grad


class SubFunction(Function, op="sub"):
    """a - b with broadcasting; gradients g and -g."""
    def forward(self, a, b):
        if a.shape != b.shape:
            _check_broadcast("sub", a, b)
        return a - b

    def backward(self, grad):
        return grad, -grad


class MulFunction(Function, op="mul"):
    """a · b with broadcasting; gradients g·b and g·a."""
    def forward(self, a, b):
        if a.shape != b.shape:
            _check_broadcast("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        need_a, need_b = self.needs_input_grad
        return (grad * self.b if need_a else None, grad * self.a if need_b else None)


class DivFunction(Function, op="div"):
    """a / b with broadcasting; gradients g/b and -g·a/b²."""
    def forward(self, a, b):
        if a.shape != b.shape:
            _check_broadcast("div", a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        need_a, need_b = self.needs_input_grad
        grad_a = grad / self.b if need_a else None
        grad_b = -grad * self.a / (self.b * self.b) if need_b else None
        return grad_a, grad_b


class PowFunction(Function, op="pow"):
    """a ** b with both a and b tensors: d/da = b·a^(b-1), d/db = a^b·ln a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad):
        need_a, need_b = self.needs_input_grad
        grad_a = grad * self.b * self.a ** (self.b - 1) if need_a else None
        grad_b = grad * self.out * np.log(self.a) if need_b else None
        return grad_a, grad_b


class PowScalarFunction(Function, op="pow_scalar"):
    """x ** p for a constant p: d/dx = p·x^(p-1)."""

    def forward(self, x, exponent: float):
        self.x, self.p = x, exponent
        if exponent == 2.0:
            return x * x
        return x ** x.dtype.type(exponent)

    def backward(self, grad):
        p = self.x.dtype.type(self.p)
        if self.p == 2.0:
            return grad * (p * self.x)
        return grad * p * self.x ** (p - 1)


class MatMulFunction(Function, op="matmul"):
    """Batched matrix product with NumPy's broadcasting rules (1-D operands included)."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})"
            )
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        a, b = self.a, self.b
        if a.ndim == 1 and b.ndim == 1:  # dot product: the output is a scalar
            need_a, need_b = self.needs_input_grad
            return (grad * b if need_a else None, grad * a if need_b else None)
        # Treat 1-D operands as matrices, as matmul itself does, then drop the added axes.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            grad = np.expand_dims(grad, -2)
        if b.ndim == 1:
            grad = np.expand_dims(grad, -1)
        need_a, need_b = self.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            grad_a = grad @ np.swapaxes(b2, -1, -2)
            if a.ndim == 1:
                grad_a = grad_a.reshape(-1, a.shape[0]).sum(0) if grad_a.ndim > 2 else grad_a[0]
        if need_b:
            grad_b = np.swapaxes(a2, -1, -2) @ grad
            if b.ndim == 1:
                grad_b = grad_b.reshape(-1, b.shape[0]).sum(0) if grad_b.ndim > 2 else grad_b[:, 0]
        return grad_a, grad_b


# ---------------------------------------------------------------------------------- unary


class NegFunction(Function, op="neg"):
    """-x; gradient -g."""
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class CastFunction(Function, op="cast"):
    """Change the dtype; the gradient is cast back to the input's dtype."""
    def forward(self, x, dtype: np.dtype):
        self.source = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.source)


class ExpFunction(Function, op="exp"):
    """e^x; gradient g·e^x (the saved output)."""
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, grad):
        return grad * self.out


class LogFunction(Function, op="log"):
    """Natural logarithm; gradient g/x."""
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, grad):
        return grad / self.x


class SqrtFunction(Function, op="sqrt"):
    """√x; gradient g / (2√x)."""
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class TanhFunction(Function, op="tanh"):
    """tanh x; gradient g·(1 - tanh² x)."""
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


class SigmoidFunction(Function, op="sigmoid"):
    """σ(x) = 1/(1+e^-x), computed stably; gradient g·σ(x)·(1-σ(x))."""
    def forward(self, x):
        self.out = kernels.sigmoid(x)
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


class ReLUFunction(Function, op="relu"):
    """max(x, 0); gradient g where x > 0, else 0."""
    def forward(self, x):
        self.positive = x > 0
        return np.maximum(x, x.dtype.type(0))  # keeps nan, as torch.relu does

    def backward(self, grad):
        # np.where on a random mask is branchy: 15 ms for a (64, 64, 32, 32) float32 gradient,
        # against 2 ms for a product with the mask. The product equals np.where wherever the
        # gradient is finite; a nan or inf where x <= 0 would give nan, so that case, found in
        # a further 0.5 ms pass, is redone with np.where (whose 0 there PyTorch also gives).
        with np.errstate(invalid="ignore"):  # inf * 0 is the case redone below
            out = grad * self.positive
        if np.isnan(out).any():
            out = np.where(self.positive, grad, grad.dtype.type(0))
        return out


class AbsFunction(Function, op="abs"):
    """|x|; gradient g·sign(x) (0 at 0)."""
    def forward(self, x):
        self.sign = np.sign(x)
        return np.abs(x)

    def backward(self, grad):
        return grad * self.sign


class ClampFunction(Function, op="clamp"):
    """Clip to [low, high] (either may be None); gradient g inside the bounds, 0 outside."""
    def forward(self, x, low: float | None, high: float | None):
        out = np.clip(x, low, high).astype(x.dtype, copy=False)
        self.inside = out == x
        return out

    def backward(self, grad):
        return np.where(self.inside, grad, grad.dtype.type(0))


class GELUFunction(Function, op="gelu"):
    """GELU(x) = x·Φ(x) (Hendrycks & Gimpel, 2016); ``approximate="tanh"`` is GPT-2's form.

    The arithmetic is `kernels.gelu_erf` / `kernels.gelu_tanh` and their backward kernels.
    """

    def forward(self, x, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.x, self.approximate = x, approximate
        forward = kernels.gelu_tanh if approximate == "tanh" else kernels.gelu_erf
        out, self.saved = forward(x)  # saved: tanh(u) or Φ(x)
        return out

    def backward(self, grad):
        backward = kernels.gelu_tanh_backward if self.approximate == "tanh" else kernels.gelu_erf_backward
        return backward(grad, self.x, self.saved)


class SoftmaxFunction(Function, op="softmax"):
    """s = softmax(x) along ``axis``; ds/dx·g = s·(g - Σ g·s)."""

    def forward(self, x, axis=-1):
        self.axis = axis
        self.out = kernels.softmax(x, axis)
        return self.out

    def backward(self, grad):
        s = self.out
        return s * (grad - (grad * s).sum(axis=self.axis, keepdims=True))


class LogSoftmaxFunction(Function, op="log_softmax"):
    """l = log softmax(x) along ``axis``; dl/dx·g = g - softmax(x)·Σ g."""

    def forward(self, x, axis=-1):
        self.axis = axis
        self.out = kernels.log_softmax(x, axis)
        return self.out

    def backward(self, grad):
        return grad - np.exp(self.out) * grad.sum(axis=self.axis, keepdims=True)


# ---------------------------------------------------------------------------------- reductions


def _normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % max(ndim, 1) for a in axes))


def _expand_reduced(grad: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Put back the reduced axes (as size 1) so ``grad`` broadcasts against the input."""
    return grad if keepdims else np.expand_dims(grad, axes)


class SumFunction(Function, op="sum"):
    """Sum over axes (all when None), optionally keeping them; the gradient is broadcast back."""
    def forward(self, x, axis=None, keepdims=False):
        self.shape = x.shape
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        return np.sum(x, axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        return np.broadcast_to(_expand_reduced(grad, self.axes, self.keepdims), self.shape)


class MeanFunction(Function, op="mean"):
    """Mean over axes; the gradient is broadcast back divided by the number of elements reduced."""
    def forward(self, x, axis=None, keepdims=False):
        self.shape = x.shape
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        self.count = int(np.prod([x.shape[a] for a in self.axes]))
        return np.mean(x, axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        g = _expand_reduced(grad, self.axes, self.keepdims) / grad.dtype.type(self.count)
        return np.broadcast_to(g, self.shape)


class MaxFunction(Function, op="max"):
    """Maximum over axes; ties share the gradient equally (as ``torch.amax``)."""

    def forward(self, x, axis=None, keepdims=False):
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        out = np.max(x, axis=self.axes, keepdims=True)
        self.mask = x == out
        return out if keepdims else np.squeeze(out, axis=self.axes)

    def backward(self, grad):
        count = self.mask.sum(axis=self.axes, keepdims=True).astype(grad.dtype)
        return self.mask * (_expand_reduced(grad, self.axes, self.keepdims) / count)


class VarFunction(Function, op="var"):
    """Variance with ``correction`` (1 = Bessel, as torch.var): d/dx = 2(x-μ)/(N-c)."""

    def forward(self, x, axis=None, keepdims=False, correction=1):
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        n = int(np.prod([x.shape[a] for a in self.axes]))
        self.denominator = max(n - correction, 0)
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        ssq = np.sum(self.centered * self.centered, axis=self.axes, keepdims=keepdims)
        return ssq / x.dtype.type(self.denominator)

    def backward(self, grad):
        g = _expand_reduced(grad, self.axes, self.keepdims)
        dtype = grad.dtype.type
        # N <= correction leaves no degrees of freedom: as PyTorch, 2/0 = inf, so the gradient is
        # ±inf where x differs from the mean and nan where it equals it (a single element).
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * self.centered * (dtype(2) / dtype(self.denominator))


# ---------------------------------------------------------------------------------- shape


class ReshapeFunction(Function, op="reshape"):
    """View with a new shape; the gradient is reshaped back."""
    def forward(self, x, shape):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape tensor of shape {x.shape} ({x.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    def backward(self, grad):
        return grad.reshape(self.shape)


class PermuteFunction(Function, op="permute"):
    """Reorder axes; the gradient is permuted by the inverse permutation."""
    def forward(self, x, axes):
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute: axes {axes} are not a permutation of {x.ndim} dimensions")
        self.axes = axes
        return np.transpose(x, axes)

    def backward(self, grad):
        return np.transpose(grad, np.argsort([a % grad.ndim for a in self.axes]))


class ExpandFunction(Function, op="expand"):
    """Broadcast to a larger shape without copying; the gradient is summed back."""
    def forward(self, x, shape):
        shape = tuple(x.shape[i - (len(shape) - x.ndim)] if s == -1 else s for i, s in enumerate(shape))
        return np.broadcast_to(x, shape)

    def backward(self, grad):
        return grad  # the engine sums it back to the input's shape


def _is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis only: a view whose gradient is a plain write."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items
    )


class GetItemFunction(Function, op="getitem"):
    """Basic (slices) and advanced (integer or bool array) indexing."""

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for a tensor of shape {x.shape}: {e}") from None

    def backward(self, grad):
        full = np.zeros(self.shape, dtype=grad.dtype)
        if _is_basic_index(self.index):
            full[self.index] = grad
        else:
            # Repeated indices must add up, which plain assignment would not do.
            np.add.at(full, self.index, grad)
        return full


class ConcatFunction(Function, op="concat"):
    """Join along an existing axis; the gradient is split back into the inputs' sizes."""
    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        try:
            return np.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = [a.shape for a in arrays]
            raise ValueError(f"concat along axis {axis}: shapes {shapes} do not match") from None

    def backward(self, grad):
        bounds = np.cumsum(self.sizes)[:-1]
        return tuple(np.split(grad, bounds, axis=self.axis))


class StackFunction(Function, op="stack"):
    """Join same-shaped arrays along a new axis; the gradient is unstacked."""
    def forward(self, *arrays, axis=0):
        self.axis = axis
        try:
            return np.stack(arrays, axis=axis)
        except ValueError:
            shapes = [a.shape for a in arrays]
            raise ValueError(f"stack: all shapes must be equal, got {shapes}") from None

    def backward(self, grad):
        return tuple(np.moveaxis(grad, self.axis, 0))


class WhereFunction(Function, op="where"):
    """where(condition, a, b): the condition is a constant, a and b get the selected grads."""

    def forward(self, a, b, condition):
        self.condition = condition
        return np.where(condition, a, b)

    def backward(self, grad):
        zero = grad.dtype.type(0)
        return np.where(self.condition, grad, zero), np.where(self.condition, zero, grad)


class MaskedFillFunction(Function, op="masked_fill"):
    """Set positions where ``mask`` is True to ``value``; their gradient is zero."""
    def forward(self, x, mask, value):
        self.mask = mask
        return np.where(mask, x.dtype.type(value), x)

    def backward(self, grad):
        return np.where(self.mask, grad.dtype.type(0), grad)


def split(x, split_size_or_sections: int | Sequence[int], axis: int = 0) -> list:
    """Split along ``axis`` into pieces of one size (the last may be smaller) or given sizes."""
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to dimension {axis} of size {n}")
    pieces, start = [], 0
    prefix = (slice(None),) * (axis % x.ndim)
    for size in sizes:
        pieces.append(x[prefix + (slice(start, start + size),)])
        start += size
    return pieces
