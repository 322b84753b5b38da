"""`Tensor`: an ndarray that records the operations made on it, so it can differentiate them.

Dtypes follow PyTorch: Python numbers and lists become float32; a NumPy array keeps its dtype
(``Tensor(np.zeros(3))`` is float64, which is what gradient checks use), and ``dtype=`` casts.
A Python scalar in an expression takes the tensor's dtype, so ``x * 0.5`` stays float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import autograd
from .autograd import Function
from .checks import is_int

DEFAULT_DTYPE = np.dtype(np.float32)

Axis = int | tuple[int, ...] | None


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, np.generic):
        arr = np.asarray(data)
        return arr if dtype is None else arr.astype(dtype)
    if dtype is None:
        arr = np.asarray(data)
        # Python floats, ints and lists of them become float32, bools stay bool.
        return arr if arr.dtype == np.bool_ else arr.astype(DEFAULT_DTYPE)
    return np.asarray(data, dtype=dtype)


# The device names PyTorch code passes to .to(); any of them but "cpu" is refused clearly.
_DEVICE_TYPES = frozenset({"cpu", "cuda", "mps", "xpu", "xla", "hip", "hpu", "ipu", "meta", "mtia",
                           "vulkan", "privateuseone"})


def _refuse_cuda(device: Any) -> None:
    """``.cuda(device)`` of a Tensor or Module: the CPU-only error, naming the device asked for."""
    _check_device("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)


def _check_device(device: Any) -> None:
    """Accept the CPU (``"cpu"``, ``"cpu:0"``, a ``torch.device("cpu")``); refuse anything else."""
    kind = getattr(device, "type", device)  # torch.device has .type
    if isinstance(kind, str) and kind.split(":")[0] == "cpu":
        return
    raise RuntimeError(
        f"TinyTorch runs on the CPU only (NumPy); got device {str(device)!r}. Tensors and modules "
        "already live on the CPU: drop the .to(device) / .cuda() call"
    )


def _is_device(arg: Any) -> bool:
    if isinstance(arg, str):
        return arg.split(":")[0] in _DEVICE_TYPES
    return is_int(arg) or hasattr(arg, "type") and not isinstance(arg, np.dtype)


def _to_dtype(owner: str, args: tuple, device: Any, dtype: Any) -> np.dtype | None:
    """Sort ``.to(...)``'s arguments (PyTorch's forms) into a device, checked, and a dtype."""
    for arg in args:
        if _is_device(arg):
            device = arg
        elif isinstance(arg, Tensor):
            dtype = arg.dtype
        elif dtype is None:
            dtype = arg
        else:
            raise TypeError(f"{owner}.to: expected a device and/or a dtype, got {args!r}")
    if device is not None:
        _check_device(device)
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{owner}.to: expected a dtype or a device, got {dtype!r}") from None


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    Args:
        data: a NumPy array (its dtype is kept), a Python number or a nested list (float32).
        dtype: cast to this NumPy dtype.
        requires_grad: record operations on this tensor so ``backward`` can fill ``.grad``.

    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    __array_priority__ = 100  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False):
        self.data: np.ndarray = _as_array(data, dtype)
        self.grad: np.ndarray | None = None
        self._ctx: Function | None = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_op(cls, data: np.ndarray, ctx: Function | None) -> Tensor:
        t = cls.__new__(cls)
        t.data = data
        t.grad = None
        t._ctx = ctx
        t._retains_grad = False
        t.requires_grad = ctx is not None
        return t

    # ----------------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self) -> int:
        return len(self.data)

    def numel(self) -> int:
        """Number of elements (``size``), as ``torch.Tensor.numel``."""
        return self.data.size

    def dim(self) -> int:
        """Number of dimensions (``ndim``)."""
        return self.data.ndim

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Turn gradient recording on (or off) in place and return the tensor.

        Args:
            requires_grad: whether ``backward`` should fill this tensor's ``.grad``.

        Raises:
            TypeError: gradients were asked for on a non-floating-point tensor.

        >>> Tensor([1.0, 2.0]).requires_grad_().requires_grad
        True
        """
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(
                f"requires_grad needs a floating-point tensor, got dtype {self.data.dtype}"
            )
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retains_grad = True

    def numpy(self) -> np.ndarray:
        """The underlying ``np.ndarray`` (shared, not copied)."""
        return self.data

    def item(self) -> float | int:
        """The single element as a Python number.

        Raises:
            ValueError: the tensor has more than one element.

        >>> Tensor([[3.0]]).item()
        3.0
        """
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        """The data as (nested) Python lists."""
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._from_op(self.data, None)

    def astype(self, dtype: Any) -> Tensor:
        """A copy cast to ``dtype``; the gradient flows back cast to the original dtype.

        >>> Tensor([1.5]).astype("float64").dtype
        dtype('float64')
        """
        return _ops.CastFunction.apply(self, dtype=np.dtype(dtype))

    @property
    def device(self) -> str:
        """Always ``"cpu"``: TinyTorch computes with NumPy on the CPU."""
        return "cpu"

    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> Tensor:
        """PyTorch's ``.to``: ``to(dtype)``, ``to("cpu")``, ``to("cpu", dtype)``, ``to(other)``.

        Args:
            args: a device and/or a dtype (or a tensor whose dtype to take), as in PyTorch.
            device: ``"cpu"``; any other device (``"cuda"``, ``"mps"``, ...) is an error.
            dtype: cast to this dtype (differentiably); the same dtype returns ``self``.

        Raises:
            RuntimeError: a device other than the CPU was asked for.

        >>> x = Tensor([1.0])
        >>> x.to("cpu") is x, x.to("float64").dtype
        (True, dtype('float64'))
        >>> x.to("cuda")
        Traceback (most recent call last):
        ...
        RuntimeError: TinyTorch runs on the CPU only (NumPy); got device 'cuda'. ...
        """
        target = _to_dtype("Tensor", args, device, dtype)
        return self if target is None or target == self.dtype else self.astype(target)

    def cpu(self) -> Tensor:
        """``self``: the data already lives on the CPU."""
        return self

    def cuda(self, device: Any = None) -> Tensor:
        """Always an error: TinyTorch runs on the CPU only.

        Args:
            device: ignored (the message is the same for any GPU).

        Raises:
            RuntimeError: always.
        """
        _refuse_cuda(device)

    def float(self) -> Tensor:
        """Cast to float32 (differentiable)."""
        return self.astype(np.float32)

    def double(self) -> Tensor:
        """Cast to float64 (differentiable); gradient checks use float64."""
        return self.astype(np.float64)

    def long(self) -> Tensor:
        """Cast to int64, e.g. for class labels or token ids (outside the graph)."""
        return Tensor(self.data.astype(np.int64))

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", precision=4)
        extras = ""
        if self.data.dtype != DEFAULT_DTYPE:
            extras += f", dtype={self.data.dtype}"
        if self._ctx is not None:
            extras += f", grad_fn={self._ctx!r}"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        return f"Tensor({body}{extras})"

    # ----------------------------------------------------------------- autograd
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires grad.

        Args:
            gradient: d(loss)/d(self); may be omitted only when this tensor has one element.
            retain_graph: keep the saved arrays so backward can run through the graph again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: none of its inputs "
                "had requires_grad=True, or it was computed under no_grad()"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar output, got shape {self.shape}; "
                    "reduce it first (e.g. .sum() or .mean()) or pass gradient= of the same shape"
                )
            grad = np.ones_like(self.data)
        else:
            grad = _as_array(gradient, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward() gradient shape {grad.shape} does not match tensor shape "
                    f"{self.shape}"
                )
        autograd.backward(self, grad, retain_graph=retain_graph)

    # ----------------------------------------------------------------- arithmetic
    def _coerce(self, other: Any) -> Tensor:
        """A Python or NumPy scalar takes this tensor's dtype, so float32 stays float32."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, bool, np.generic)) and np.issubdtype(
            self.data.dtype, np.floating
        ):
            return Tensor._from_op(np.asarray(other, dtype=self.data.dtype), None)
        return Tensor(other)

    def __add__(self, other: Any) -> Tensor:
        return _ops.AddFunction.apply(self, other if isinstance(other, Tensor) else self._coerce(other))

    def __radd__(self, other: Any) -> Tensor:
        return _ops.AddFunction.apply(self._coerce(other), self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.SubFunction.apply(self, self._coerce(other))

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.SubFunction.apply(self._coerce(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.MulFunction.apply(self, self._coerce(other))

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.MulFunction.apply(self._coerce(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.DivFunction.apply(self, self._coerce(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.DivFunction.apply(self._coerce(other), self)

    def __neg__(self) -> Tensor:
        return _ops.NegFunction.apply(self)

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, (int, float, np.generic)):
            return _ops.PowScalarFunction.apply(self, exponent=float(exponent))
        return _ops.PowFunction.apply(self, self._coerce(exponent))

    def __rpow__(self, base: Any) -> Tensor:
        return _ops.PowFunction.apply(self._coerce(base), self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.MatMulFunction.apply(self, self._coerce(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.MatMulFunction.apply(self._coerce(other), self)

    # Comparisons give bool tensors outside the graph (like PyTorch).
    def _compare(self, other: Any, op) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._from_op(op(self.data, other), None)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    def eq(self, other: Any) -> Tensor:
        """Elementwise ``==`` as a bool tensor (no gradient)."""
        return self._compare(other, np.equal)

    def ne(self, other: Any) -> Tensor:
        """Elementwise ``!=`` as a bool tensor (no gradient)."""
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__  # tensors are hashed by identity (used as dict keys)

    # ----------------------------------------------------------------- elementwise
    def exp(self) -> Tensor:
        """Elementwise e^x."""
        return _ops.ExpFunction.apply(self)

    def log(self) -> Tensor:
        """Elementwise natural logarithm."""
        return _ops.LogFunction.apply(self)

    def sqrt(self) -> Tensor:
        """Elementwise square root."""
        return _ops.SqrtFunction.apply(self)

    def tanh(self) -> Tensor:
        """Elementwise hyperbolic tangent."""
        return _ops.TanhFunction.apply(self)

    def sigmoid(self) -> Tensor:
        """Elementwise 1 / (1 + e^-x)."""
        return _ops.SigmoidFunction.apply(self)

    def relu(self) -> Tensor:
        """Elementwise max(x, 0).

        >>> Tensor([-1.0, 2.0]).relu()
        Tensor([0., 2.])
        """
        return _ops.ReLUFunction.apply(self)

    def gelu(self, approximate: str = "none") -> Tensor:
        """Elementwise GELU: x·Φ(x) (``approximate="none"``) or GPT-2's tanh form (``"tanh"``).

        Args:
            approximate: ``"none"`` (exact, with an erf accurate to 1.2e-7) or ``"tanh"``.
        """
        return _ops.GELUFunction.apply(self, approximate=approximate)

    def abs(self) -> Tensor:
        """Elementwise absolute value (gradient sign(x), 0 at 0)."""
        return _ops.AbsFunction.apply(self)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Limit every element to [min, max] (either bound may be None); alias ``clip``.

        The gradient is 1 where the value was inside the bounds and 0 where it was clamped.

        >>> Tensor([-2.0, 0.5, 3.0]).clamp(min=0.0, max=1.0)
        Tensor([0. , 0.5, 1. ])
        """
        return _ops.ClampFunction.apply(self, low=min, high=max)

    clip = clamp

    # ----------------------------------------------------------------- reductions
    # Each reduction takes NumPy's names (axis, keepdims) and PyTorch's (dim, keepdim): a learner
    # types either. Passing both spellings of one argument is an error naming both.
    def sum(self, axis: Axis = None, keepdims: bool | None = None, *, dim: Axis = None,
            keepdim: bool | None = None) -> Tensor:
        """Sum over ``axis`` (an int, a tuple of ints or None for all).

        Args:
            axis: the axis or axes to reduce; None reduces everything to a scalar.
            keepdims: keep the reduced axes with length 1 (default False).
            dim: PyTorch's name for ``axis``.
            keepdim: PyTorch's name for ``keepdims``.

        >>> Tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=0)
        Tensor([4., 6.])
        >>> Tensor([[1.0, 2.0], [3.0, 4.0]]).sum(dim=1, keepdim=True).tolist()
        [[3.0], [7.0]]
        """
        axis, keepdims = reduction_args("sum", axis, dim, keepdims, keepdim)
        return _ops.SumFunction.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool | None = None, *, dim: Axis = None,
             keepdim: bool | None = None) -> Tensor:
        """Mean over ``axis`` (see ``sum`` for the arguments; ``dim``/``keepdim`` work too).

        >>> Tensor([[1.0, 2.0], [3.0, 4.0]]).mean(axis=1, keepdims=True).shape
        (2, 1)
        >>> Tensor([[1.0, 2.0], [3.0, 4.0]]).mean(dim=0)
        Tensor([2., 3.])
        """
        axis, keepdims = reduction_args("mean", axis, dim, keepdims, keepdim)
        return _ops.MeanFunction.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool | None = None, *, dim: Axis = None,
            keepdim: bool | None = None) -> Tensor:
        """Maximum over ``axis``; the gradient goes to the maximal elements (split evenly on ties).

        Unlike ``torch.max(x, dim)``, this returns the values only (``argmax`` gives the indices).

        >>> Tensor([[1.0, 5.0], [7.0, 2.0]]).max(axis=1)
        Tensor([5., 7.])
        >>> Tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=0, keepdim=True).tolist()
        [[7.0, 5.0]]
        """
        axis, keepdims = reduction_args("max", axis, dim, keepdims, keepdim)
        return _ops.MaxFunction.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool | None = None, *, dim: Axis = None,
            keepdim: bool | None = None) -> Tensor:
        """Minimum over ``axis`` (computed as ``-max(-x)``, so it is differentiable too).

        >>> Tensor([[1.0, 5.0], [7.0, 2.0]]).min(dim=1).tolist()
        [1.0, 2.0]
        """
        axis, keepdims = reduction_args("min", axis, dim, keepdims, keepdim)
        return -((-self).max(axis=axis, keepdims=keepdims))

    def var(self, axis: Axis = None, keepdims: bool | None = None, correction: int = 1, *,
            dim: Axis = None, keepdim: bool | None = None) -> Tensor:
        """Variance with Bessel's correction by default, as ``torch.var``.

        >>> Tensor([[1.0, 3.0], [5.0, 9.0]]).var(dim=1).tolist()
        [2.0, 8.0]
        """
        axis, keepdims = reduction_args("var", axis, dim, keepdims, keepdim)
        return _ops.VarFunction.apply(self, axis=axis, keepdims=keepdims, correction=correction)

    def std(self, axis: Axis = None, keepdims: bool | None = None, correction: int = 1, *,
            dim: Axis = None, keepdim: bool | None = None) -> Tensor:
        """Standard deviation, ``sqrt(var(...))`` (Bessel's correction by default).

        >>> Tensor([[1.0, 3.0], [5.0, 9.0]]).std(dim=0, correction=0).tolist()
        [2.0, 3.0]
        """
        axis, keepdims = reduction_args("std", axis, dim, keepdims, keepdim)
        return self.var(axis=axis, keepdims=keepdims, correction=correction).sqrt()

    def argmax(self, axis: int | None = None, keepdims: bool | None = None, *, dim: int | None = None,
               keepdim: bool | None = None) -> Tensor:
        """Indices of the maxima along ``axis`` (int64, no gradient).

        >>> Tensor([[0.1, 0.9], [0.8, 0.2]]).argmax(axis=1).tolist()
        [1, 0]
        >>> Tensor([[0.1, 0.9], [0.8, 0.2]]).argmax(dim=0, keepdim=True).tolist()
        [[1, 0]]
        """
        axis, keepdims = reduction_args("argmax", axis, dim, keepdims, keepdim)
        return Tensor(np.argmax(self.data, axis=axis, keepdims=keepdims))

    def argmin(self, axis: int | None = None, keepdims: bool | None = None, *, dim: int | None = None,
               keepdim: bool | None = None) -> Tensor:
        """Indices of the minima along ``axis`` (int64, no gradient).

        >>> Tensor([[0.1, 0.9], [0.8, 0.2]]).argmin(dim=1).tolist()
        [0, 1]
        """
        axis, keepdims = reduction_args("argmin", axis, dim, keepdims, keepdim)
        return Tensor(np.argmin(self.data, axis=axis, keepdims=keepdims))

    def softmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """Softmax along ``axis`` (default the last; ``dim`` is PyTorch's name for it).

        >>> Tensor([[0.0, 0.0]]).softmax().tolist()
        [[0.5, 0.5]]
        >>> Tensor([[0.0], [0.0]]).softmax(dim=0).tolist()
        [[0.5], [0.5]]
        """
        return _ops.SoftmaxFunction.apply(self, axis=axis_arg("softmax", axis, dim, default=-1))

    def log_softmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """Log-softmax along ``axis`` (default the last; ``dim`` is PyTorch's name for it).

        >>> round(Tensor([0.0, 0.0]).log_softmax(dim=0).tolist()[0], 4)
        -0.6931
        """
        return _ops.LogSoftmaxFunction.apply(self, axis=axis_arg("log_softmax", axis, dim, default=-1))

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same elements in a new shape (one entry may be -1); alias ``view``.

        >>> Tensor([1.0, 2.0, 3.0, 4.0]).reshape(2, -1).shape
        (2, 2)
        """
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return _ops.ReshapeFunction.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge the axes ``start_dim`` .. ``end_dim`` into one.

        >>> from tinytorch.core import zeros
        >>> zeros(8, 3, 4, 4).flatten(1).shape
        (8, 48)
        """
        nd = max(self.ndim, 1)
        start, end = start_dim % nd, end_dim % nd
        shape = self.shape[:start] + (-1,) + self.shape[end + 1 :]
        return self.reshape(shape)

    def permute(self, *axes: int | Sequence[int]) -> Tensor:
        """Reorder the axes: ``x.permute(0, 2, 1)`` or ``x.permute((0, 2, 1))``.

        >>> from tinytorch.core import zeros
        >>> zeros(2, 3, 4).permute(2, 0, 1).shape
        (4, 2, 3)
        """
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        return _ops.PermuteFunction.apply(self, axes=tuple(axes))

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two axes (the last two by default); ``x.T`` reverses all of them."""
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(axes)

    def unsqueeze(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """Insert an axis of length 1 at ``axis`` (``dim`` is PyTorch's name for it).

        >>> Tensor([1.0, 2.0]).unsqueeze(0).shape
        (1, 2)
        >>> Tensor([1.0, 2.0]).unsqueeze(dim=-1).shape
        (2, 1)
        """
        axis = axis_arg("unsqueeze", axis, dim)
        axis = axis if axis >= 0 else axis + self.ndim + 1
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """Remove the axis ``axis`` (or ``dim``) if its length is 1, or every length-1 axis if None.

        >>> from tinytorch.core import zeros
        >>> zeros(2, 1, 3).squeeze(dim=1).shape
        (2, 3)
        """
        axis, _ = reduction_args("squeeze", axis, dim)
        if axis is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        if self.shape[axis] != 1:
            return self
        axis = axis % self.ndim
        return self.reshape(self.shape[:axis] + self.shape[axis + 1 :])

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        """Broadcast to ``shape`` without copying; the gradient is summed back.

        >>> Tensor([[1.0], [2.0]]).expand(2, 3).shape
        (2, 3)
        """
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return _ops.ExpandFunction.apply(self, shape=tuple(shape))

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.GetItemFunction.apply(self, index=_normalize_index(index))

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        """Replace the elements where ``mask`` is True by ``value`` (``mask`` broadcasts).

        The gradient is zero at the filled positions; attention masks use this.

        >>> import numpy as np
        >>> Tensor([1.0, 2.0, 3.0]).masked_fill(np.array([False, True, False]), 0.0)
        Tensor([1., 0., 3.])
        """
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        return _ops.MaskedFillFunction.apply(self, mask=mask.astype(bool, copy=False), value=value)

    def split(self, split_size_or_sections: int | Sequence[int], axis: int | None = None, *,
              dim: int | None = None) -> list[Tensor]:
        """Split along ``axis`` (default 0; or ``dim``) into pieces of ``split_size_or_sections``
        (an int or a list of sizes).

        >>> [t.shape for t in Tensor([1.0, 2.0, 3.0, 4.0, 5.0]).split(2)]
        [(2,), (2,), (1,)]
        """
        return _ops.split(self, split_size_or_sections, axis=axis_arg("split", axis, dim, default=0))

    def chunk(self, chunks: int, axis: int | None = None, *, dim: int | None = None) -> list[Tensor]:
        """Split along ``axis`` (default 0; or ``dim``) into ``chunks`` pieces of (almost) equal size.

        >>> [t.shape for t in Tensor([[1.0, 2.0, 3.0]]).chunk(2, dim=1)]
        [(1, 2), (1, 1)]
        """
        axis = axis_arg("chunk", axis, dim, default=0)
        size = -(-self.shape[axis] // chunks)
        return self.split(size, axis=axis)


def reduction_args(where: str, axis: Any, dim: Any, keepdims: bool | None = None,
                   keepdim: bool | None = None) -> tuple[Any, bool]:
    """NumPy's ``axis``/``keepdims`` or PyTorch's ``dim``/``keepdim``, whichever was given.

    Args:
        where: the operation, for the error message.
        axis: NumPy's name (None when not given).
        dim: PyTorch's name (None when not given).
        keepdims: NumPy's name (None when not given).
        keepdim: PyTorch's name (None when not given).

    Returns:
        ``(axis, keepdims)``, with ``keepdims`` False when neither spelling was given.

    Raises:
        TypeError: both spellings of one argument were given.

    >>> reduction_args("sum", None, 1, None, True)
    (1, True)
    """
    if axis is not None and dim is not None:
        raise TypeError(f"{where}: got both axis={axis!r} and dim={dim!r}; they name the same "
                        "argument (NumPy's and PyTorch's spelling), pass one")
    if keepdims is not None and keepdim is not None:
        raise TypeError(f"{where}: got both keepdims={keepdims!r} and keepdim={keepdim!r}; they name "
                        "the same argument (NumPy's and PyTorch's spelling), pass one")
    return (dim if axis is None else axis), bool(keepdim if keepdims is None else keepdims)


def axis_arg(where: str, axis: int | None, dim: int | None, default: int | None = None) -> int:
    """The one axis given as ``axis`` or ``dim`` (see `reduction_args`), else ``default``.

    Raises:
        TypeError: both were given, or neither and there is no default.

    >>> axis_arg("softmax", None, 0, default=-1), axis_arg("softmax", None, None, default=-1)
    (0, -1)
    """
    axis, _ = reduction_args(where, axis, dim)
    if axis is None:
        if default is None:
            raise TypeError(f"{where}: missing the axis (axis= or dim=)")
        return default
    return axis


def _normalize_index(index: Any) -> Any:
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Same as ``Tensor(...)``, as in ``torch.tensor``."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def _size(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], int):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``.

    Args:
        shape: the sizes, as separate ints or one tuple.
        dtype: float32 by default.
        requires_grad: record operations for ``backward``.

    >>> zeros(2, 3).shape
    (2, 3)
    """
    return Tensor(np.zeros(_size(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (arguments as ``zeros``).

    >>> ones(2).tolist()
    [1.0, 1.0]
    """
    return Tensor(np.ones(_size(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape: Sequence[int], value: float, dtype: Any = DEFAULT_DTYPE) -> Tensor:
    """A tensor of ``shape`` filled with ``value``.

    >>> full((2, 2), 7.0).sum().item()
    28.0
    """
    return Tensor(np.full(tuple(shape), value, dtype=dtype))


def zeros_like(t: Tensor) -> Tensor:
    """Zeros with the shape and dtype of ``t``.

    >>> zeros_like(Tensor([[1.0, 2.0]])).shape
    (1, 2)
    """
    return Tensor(np.zeros_like(t.data))


def ones_like(t: Tensor) -> Tensor:
    """Ones with the shape and dtype of ``t``.

    >>> ones_like(Tensor([1.0, 2.0])).tolist()
    [1.0, 1.0]
    """
    return Tensor(np.ones_like(t.data))


def arange(*args: int, dtype: Any = np.int64) -> Tensor:
    """Evenly spaced values, as ``np.arange`` (int64 by default).

    >>> arange(4).tolist()
    [0, 1, 2, 3]
    """
    return Tensor(np.arange(*args, dtype=dtype))


def randn(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """Standard-normal samples from the global generator (see ``tinytorch.core.random``).

    Args:
        shape: the sizes, as separate ints or one tuple.
        dtype: float32 by default.
        requires_grad: record operations for ``backward``.

    >>> from tinytorch.core import manual_seed
    >>> _ = manual_seed(0)
    >>> randn(2, 3).shape
    (2, 3)
    """
    from .random import get_rng

    data = get_rng().standard_normal(_size(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from the global generator (arguments as ``randn``).

    >>> u = rand(100).numpy()
    >>> bool((u >= 0).all() and (u < 1).all())
    True
    """
    from .random import get_rng

    data = get_rng().random(_size(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


# ops.py defines the Functions the methods above call; it is imported last because it needs
# nothing from this module at import time, and the engine needs Tensor to wrap op outputs.
from . import ops as _ops  # noqa: E402

autograd._Tensor = Tensor
