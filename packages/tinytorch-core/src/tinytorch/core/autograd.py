"""The autograd engine: `Function`, the graph walk and the grad mode.

An op is a small `Function` subclass (as in tinygrad v0.7's ``mlops.py`` and PyTorch's
``torch.autograd.Function``): ``forward`` works on NumPy arrays and saves on ``self`` only what
``backward`` needs; ``backward`` receives the gradient of the output and returns one gradient per
input (``None`` where an input needs none). Broadcasting is undone here, once, by
``_unbroadcast``, so no op has to reduce its gradients to its inputs' shapes itself.

``backward`` walks the graph in reverse topological order with an explicit stack, so a graph of
any depth (a 10,000-step RNN, say) never hits Python's recursion limit, and it frees each
Function's saved arrays as soon as its gradient has been computed.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .memory import keep_freed_memory

if TYPE_CHECKING:
    from .tensor import Tensor


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()

# Observers of op dispatch (profilers, FLOP tracers): each is called as
# observer(phase, fn, inputs, output, seconds, settings), see register_op_observer. Empty in
# normal use, so the hot path pays one truth test.
_observers: dict[int, Callable] = {}
_observer_ids = iter(range(1 << 62))


class _ObserverHandle:
    def __init__(self, key: int):
        self.key = key

    def remove(self) -> None:
        _observers.pop(self.key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def register_op_observer(observer: Callable) -> _ObserverHandle:
    """Call ``observer(phase, fn, inputs, output, seconds, settings)`` for every op forward and
    backward.

    Args:
        observer: a callable receiving

            * ``phase``: ``"forward"`` or ``"backward"``;
            * ``fn``: the Function instance (``fn.op`` is the op's stable name, e.g.
              ``"max_pool2d"``; the same instance is seen in both phases);
            * ``inputs``, ``output``: NumPy arrays; for forward the input arrays and the output,
              for backward ``(upstream gradient,)`` and the input gradients;
            * ``seconds``: the op's wall time;
            * ``settings``: the keyword arguments the op was applied with, as given to
              ``Function.apply`` (``kernel``, ``stride``, ``approximate``, ``num_heads``,
              ``normalized_ndim``, ``training``...). Backward receives the same mapping as
              forward (empty if the observer was registered after the forward ran). Treat it
              as read-only.

    Returns a handle; ``handle.remove()`` (or ``with register_op_observer(f):``) detaches it.
    This is how ``tinytorch.perf`` counts the FLOPs and times of what a model really executes;
    with no observer the hot path pays one truth test.

    >>> from tinytorch.core import Tensor
    >>> seen = []
    >>> with register_op_observer(lambda phase, fn, *rest: seen.append((phase, fn.op))):
    ...     y = Tensor([1.0, 2.0]) * 3
    >>> seen
    [('forward', 'mul')]
    >>> with register_op_observer(lambda phase, fn, i, o, s, settings: seen.append(dict(settings))):
    ...     y = Tensor([[1.0, 2.0]]).sum(axis=1)
    >>> seen[-1]
    {'axis': 1, 'keepdims': False}
    """
    key = next(_observer_ids)
    _observers[key] = observer
    return _ObserverHandle(key)


# Where apply keeps an op's settings for its backward notification (only while observed). It
# lives in the Function's __dict__, so it is freed with the saved arrays after backward.
_SETTINGS_KEY = "_observed_settings"
_NO_SETTINGS: dict[str, Any] = {}


def _notify(phase: str, fn: Function, inputs: tuple, output: Any, seconds: float,
            settings: dict[str, Any]) -> None:
    for observer in list(_observers.values()):
        observer(phase, fn, inputs, output, seconds, settings)


# Set by tensor.py once Tensor exists (the two modules need each other; this avoids an
# import inside the hot path of every op).
_Tensor: Any = None


def is_grad_enabled() -> bool:
    """True when new operations are recorded for backward.

    >>> from tinytorch.core import no_grad
    >>> with no_grad():
    ...     is_grad_enabled()
    False
    """
    return _grad_mode.enabled


class _SetGradEnabled:
    """Context manager and decorator that sets grad mode and restores it afterwards."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.previous = True

    def __enter__(self):
        self.previous = _grad_mode.enabled
        _grad_mode.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.previous
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _SetGradEnabled(self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def no_grad() -> _SetGradEnabled:
    """Disable graph recording (evaluation, optimizer steps).

    >>> from tinytorch.core import Tensor, no_grad
    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> with no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """
    return _SetGradEnabled(False)


def enable_grad() -> _SetGradEnabled:
    """Re-enable graph recording inside a ``no_grad`` block (a context manager or decorator).

    >>> from tinytorch.core import Tensor, no_grad
    >>> w = Tensor([1.0], requires_grad=True)
    >>> with no_grad():
    ...     with enable_grad():
    ...         y = w * 2
    >>> y.requires_grad
    True
    """
    return _SetGradEnabled(True)


class Function:
    """Base class of every differentiable op.

    Subclasses implement ``forward(self, *arrays, **params) -> ndarray`` and
    ``backward(self, grad) -> tuple`` (or a single array for one-input ops), both on NumPy arrays.
    Call an op with ``MyOp.apply(*tensors, **params)``; ``self`` is the context that carries saved
    arrays from forward to backward. ``needs_input_grad`` says which inputs want a gradient.

    Every subclass names its op: ``class MatMulFunction(Function, op="matmul")``. The name is the
    op's stable identity for observers (perf's FLOP table is keyed by it), independent of the
    class name; class names end in ``Function`` so they never collide with an ``nn`` Module.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> class SquareFunction(Function, op="square"):
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * x
    ...     def backward(self, grad):
    ...         return 2 * self.x * grad
    >>> x = Tensor([3.0], requires_grad=True)
    >>> SquareFunction.apply(x).sum().backward()
    >>> x.grad
    array([6.], dtype=float32)
    """

    __slots__ = ("parents", "needs_input_grad", "__dict__")
    op: str = "function"

    def __init_subclass__(cls, op: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(op, str) or not op:
            raise TypeError(
                f"Function subclass {cls.__name__} must name its op, e.g. "
                f'class {cls.__name__}(Function, op="my_op")'
            )
        cls.op = op

    def forward(self, *arrays: np.ndarray, **params: Any) -> np.ndarray:
        """Compute the output array from the input arrays; save what backward needs on ``self``.

        Args:
            arrays: the inputs' ``.data``, in the order given to ``apply``.
            params: the keyword arguments given to ``apply`` (axes, shapes, flags).
        """
        raise NotImplementedError

    def backward(self, grad: np.ndarray):
        """Given the gradient of the output, return the gradient of each input.

        Returns one array per input (a tuple; None for inputs that need none, see
        ``self.needs_input_grad``), or a single array for one-input ops. Gradients may have the
        broadcast shape: the engine sums them back to each input's shape.
        """
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors: Tensor, **params: Any) -> Tensor:
        """Run the op on ``tensors`` and, when grad mode is on and an input requires a
        gradient, record it in the graph of the returned Tensor.

        Args:
            tensors: the input Tensors.
            params: keyword parameters passed to ``forward``.
        """
        # Every op of every forward pays this dispatch, and decoding one token runs ~50 of them
        # on tiny arrays: the common arities unpack without building a list.
        ctx = cls()
        n = len(tensors)
        if _observers:
            arrays = tuple(t.data for t in tensors)
            start = time.perf_counter()
            out = ctx.forward(*arrays, **params)
            seconds = time.perf_counter() - start
            ctx.__dict__[_SETTINGS_KEY] = params
            _notify("forward", ctx, arrays, out, seconds, params)
        elif n == 1:
            out = ctx.forward(tensors[0].data, **params)
        elif n == 2:
            out = ctx.forward(tensors[0].data, tensors[1].data, **params)
        elif n == 3:
            out = ctx.forward(tensors[0].data, tensors[1].data, tensors[2].data, **params)
        else:
            out = ctx.forward(*[t.data for t in tensors], **params)
        if _grad_mode.enabled and any(t.requires_grad for t in tensors):
            ctx.parents = tensors
            ctx.needs_input_grad = tuple(t.requires_grad for t in tensors)
        else:
            ctx = None  # no graph: the context (and what forward saved on it) is dropped now
        return _Tensor._from_op(out, ctx)

    def __repr__(self) -> str:
        return f"<{type(self).__name__.removesuffix('Function')}Backward>"


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...], op: str = "op") -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``.

    A gradient that broadcasting cannot explain is a bug in the op's backward, so it is refused
    rather than reshaped into place (a transposed (5, 4) gradient of a (4, 5) input has the
    right number of elements and would otherwise train on wrong values without a word). Only
    size-1 axes may differ: ``()`` for ``(1,)``, ``(3,)`` for ``(3, 1)``.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    if grad.ndim == len(shape):
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if stretched:
            grad = grad.sum(axis=stretched, keepdims=True)
        if grad.shape == shape:
            return grad
    if tuple(n for n in grad.shape if n != 1) == tuple(n for n in shape if n != 1):
        return grad.reshape(shape)
    raise RuntimeError(f"{op}: backward returned a gradient of shape {grad.shape} for an input of "
                       f"shape {shape} (after summing the broadcast axes)")


_FREED_GRAPH = (
    "Trying to backward through the graph a second time: its saved arrays were freed by the "
    "first backward. Pass retain_graph=True to the first call."
)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors that ``root`` depends on (requiring grad), parents before children."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            if not hasattr(ctx, "parents"):
                raise RuntimeError(_FREED_GRAPH)
            for parent in ctx.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def backward(root: Tensor, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) · grad into ``.grad`` of every leaf that requires grad."""
    keep_freed_memory()  # a backward pass means training: reuse each step's memory (memory.py)
    grads: dict[int, np.ndarray] = {id(root): grad}
    for node in reversed(_topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:  # no path from root carried a gradient here
            continue
        ctx = node._ctx
        if ctx is None or node._retains_grad:
            # A leaf owns its .grad: copy, since ops like Add hand the same array to both inputs.
            node.grad = g.copy() if node.grad is None else node.grad + g
            if ctx is None:
                continue
        if _observers:
            start = time.perf_counter()
            input_grads = ctx.backward(g)
            _notify("backward", ctx, (g,), input_grads, time.perf_counter() - start,
                    ctx.__dict__.get(_SETTINGS_KEY, _NO_SETTINGS))
        else:
            input_grads = ctx.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, needs, pg in zip(ctx.parents, ctx.needs_input_grad, input_grads):
            if not needs or pg is None:
                continue
            pg = _unbroadcast(pg, parent.data.shape, ctx.op)
            if pg.dtype != parent.data.dtype:
                pg = pg.astype(parent.data.dtype, copy=False)
            key = id(parent)
            grads[key] = pg if key not in grads else grads[key] + pg
        if not retain_graph:
            # Free what forward saved, and the links to the inputs, as soon as they are used.
            ctx.__dict__.clear()
            del ctx.parents
    while _queued_callbacks:  # e.g. DistributedDataParallel averaging the gradients just computed
        _queued_callbacks.pop(0)()


_queued_callbacks: list[Callable[[], None]] = []


def queue_callback(callback: Callable[[], None]) -> None:
    """Call ``callback()`` once, when the next ``backward()`` has accumulated every gradient.

    As PyTorch's ``Variable._execution_engine.queue_callback``: ``DistributedDataParallel``
    queues its gradient averaging from ``forward`` this way.

    Args:
        callback: a function of no arguments.

    >>> from tinytorch.core import Tensor
    >>> x = Tensor([2.0], requires_grad=True)
    >>> queue_callback(lambda: print("gradient:", x.grad))
    >>> (x * x).sum().backward()
    gradient: [4.]
    """
    if not callable(callback):
        raise TypeError(f"queue_callback: callback must be callable, got {callback!r}")
    _queued_callbacks.append(callback)
