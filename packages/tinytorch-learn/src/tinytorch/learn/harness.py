"""What the curriculum's cases and kernels are written with, beyond the library itself.

A case is an expression (and optional setup statements) evaluated twice, once on the library
and once with the student's implementation in place; a kernel is a call that the roofline
milestone times. Some targets cannot be checked by calling them once in one process: a profiler
attributes *time*, and a gradient all-reduce needs *several ranks*. These test doubles make
both exact and repeatable, so the reference and the student's code can be compared value for
value:

- `OpClock`: a clock that advances only when an op runs (its forward, its backward), so the
  times a profiler attributes are the same on every run and on every machine.
- `simulated_ranks`: a process group of N ranks simulated with N threads, whose
  ``all_reduce`` really reduces over the ranks (the library's own MPI functions are put back
  afterwards).
- `recorded`: the op a computation applied last, kept with its inputs and settings, so its
  backward can be called (and timed) on its own, and `backward_count` its FLOPs and bytes by
  perf's own rules.
- `nbytes`: the bytes of arrays, however nested.
- `graph_order`: what is wrong with a topological order of a graph (a node listed twice, one
  missing, a node before its parent), in the words a student can act on.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinytorch.core import Tensor
from tinytorch.core.autograd import register_op_observer

from .curriculum import Target

#: Seconds a simulated rank may wait for the others at a collective before the group gives up.
RANK_SECONDS = 30.0


class OpClock:
    """A clock that advances only when ops run: ``forward`` seconds per op forward and
    ``backward`` seconds per op backward, while the block is active.

    Code that reads a clock around ops (a profiler) then measures the same times on every run,
    whatever the machine does, and however often it reads the clock.

    >>> from tinytorch.core import Tensor
    >>> clock = OpClock()
    >>> with clock:
    ...     start = clock()
    ...     y = (Tensor([1.0, 2.0], requires_grad=True) * 3.0).sum()
    ...     y.backward()
    >>> clock() - start     # two forwards (mul, sum), two backwards
    6.0
    """

    def __init__(self, forward: float = 1.0, backward: float = 2.0):
        self.forward, self.backward, self.now = forward, backward, 0.0
        self._handle: Any = None

    def __call__(self) -> float:
        return self.now

    def _tick(self, phase: str, fn: Any, inputs: Any, output: Any, seconds: float, settings: Any) -> None:
        self.now += self.forward if phase == "forward" else self.backward

    def __enter__(self) -> OpClock:
        self._handle = register_op_observer(self._tick)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()


_REDUCE = {"sum": lambda a: a.sum(axis=0), "mean": lambda a: a.mean(axis=0),
           "max": lambda a: a.max(axis=0), "min": lambda a: a.min(axis=0)}


def simulated_ranks(world: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(rank)`` for every rank of a process group of ``world`` ranks, each in a thread,
    with ``tinytorch.core.distributed``'s ``all_reduce``, ``get_rank``, ``get_world_size``,
    ``is_distributed`` and ``is_initialized`` those of that group; return the ranks' results.

    ``all_reduce`` waits for every rank, reduces their arrays in rank order and writes the
    result into each rank's array in place, as MPI's Allreduce does. An error on any rank is
    raised here (the first rank's first); the library's functions are restored afterwards.

    >>> from tinytorch.core import distributed as dist
    >>> simulated_ranks(3, lambda rank: dist.all_reduce(np.array([float(rank)])).tolist())
    [[3.0], [3.0], [3.0]]
    >>> dist.get_world_size()
    1
    """
    from .substitute import substituted

    barrier = threading.Barrier(world, timeout=RANK_SECONDS)
    local = threading.local()
    slots: list[np.ndarray | None] = [None] * world

    def all_reduce(array: Any, op: str = "sum", *, agreed: bool = False) -> Any:
        data = array.data if isinstance(array, Tensor) else array
        slots[local.rank] = np.array(data, copy=True)
        barrier.wait()
        shapes = {s.shape for s in slots}
        if len(shapes) > 1:
            raise ValueError(f"all_reduce: the ranks' arrays differ in shape: {sorted(shapes)}")
        reduced = _REDUCE[op](np.stack(slots))
        barrier.wait()  # every rank has read every slot before any is overwritten
        data[...] = reduced
        return array

    fakes = {"all_reduce": all_reduce, "get_rank": lambda: local.rank, "get_world_size": lambda: world,
             "is_distributed": lambda: world > 1, "is_initialized": lambda: True}
    results: list[Any] = [None] * world
    errors: list[BaseException | None] = [None] * world

    def run(rank: int) -> None:
        local.rank = rank
        try:
            results[rank] = fn(rank)
        except BaseException as err:  # handed to the caller's thread below
            errors[rank] = err
            barrier.abort()  # the other ranks must not wait for this one forever

    with substituted({Target("tinytorch.core.distributed", None, name): f for name, f in fakes.items()}):
        threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in range(world)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            barrier.abort()  # a time limit raised in this thread: release ranks still waiting
    first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)),
                 next((e for e in errors if e is not None), None))
    if first is not None:
        raise first
    return results


@dataclass
class OpRecord:
    """One op that ran: its Function (the context its backward reads), input arrays, output and
    the settings it was applied with."""
    fn: Any
    inputs: tuple
    output: Any
    settings: dict

    def backward(self, grad: np.ndarray) -> Any:
        """Call this op's backward alone (whatever ``backward`` its class holds now)."""
        return self.fn.backward(grad)


def recorded(thunk: Callable[[], Tensor]) -> OpRecord:
    """Run ``thunk`` and return the op that produced its result (with gradients recorded).

    >>> from tinytorch.core import Tensor
    >>> a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones((3, 4)), requires_grad=True)
    >>> rec = recorded(lambda: a @ b)
    >>> rec.fn.op, [g.shape for g in rec.backward(np.ones((2, 4)))]
    ('matmul', [(2, 3), (3, 4)])
    """
    seen: dict[int, OpRecord] = {}

    def observe(phase: str, fn: Any, inputs: Any, output: Any, seconds: float, settings: Any) -> None:
        if phase == "forward":
            seen[id(fn)] = OpRecord(fn, inputs, output, dict(settings))

    with register_op_observer(observe):
        out = thunk()
    ctx = getattr(out, "_ctx", None)
    if ctx is None or id(ctx) not in seen:
        raise ValueError("recorded: the computation's result was made by no op that records a gradient")
    return seen[id(ctx)]


def backward_count(record: OpRecord, grad: np.ndarray, input_grads: Any) -> Any:
    """FLOPs and bytes of ``record``'s backward, by perf's rule for the op's kind
    (`tinytorch.perf.flop_formulas.count_backward_op`).

    >>> from tinytorch.core import Tensor
    >>> a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones((3, 4)), requires_grad=True)
    >>> rec = recorded(lambda: a @ b)
    >>> backward_count(rec, np.ones((2, 4)), rec.backward(np.ones((2, 4)))).matmul_flops  # 2 x 2·2·3·4
    96
    """
    from tinytorch.perf.flop_formulas import count_backward_op, count_forward_op

    forward, kind = count_forward_op(record.fn, record.inputs, record.output, record.settings)
    return count_backward_op(record.fn, forward, kind, grad, input_grads)


def nbytes(*objects: Any) -> int:
    """Bytes of every array (or Tensor) in ``objects``, through tuples, lists and dicts.

    >>> nbytes(np.zeros(3), (np.zeros((2, 2), np.float32), None))
    40
    """
    total = 0
    for x in objects:
        if isinstance(x, Tensor):
            x = x.data
        if isinstance(x, np.ndarray):
            total += x.nbytes
        elif isinstance(x, (tuple, list)):
            total += nbytes(*x)
        elif isinstance(x, dict):
            total += nbytes(*x.values())
    return total


def _node_names(scope: dict[str, Any]) -> dict[int, str]:
    return {id(v): k for k, v in scope.items() if isinstance(v, Tensor) and not k.startswith("_")}


def _describe_node(t: Tensor, names: dict[int, str]) -> str:
    if id(t) in names:
        return names[id(t)]
    ctx = t._ctx
    what = f"an output of {type(ctx).op}" if ctx is not None else "a leaf"
    return f"{what} of shape {tuple(t.shape)}"


def graph_order(order: Any, root: Tensor, names: dict[str, Any] | None = None) -> str:
    """What is wrong with ``order`` as the backward pass's order of ``root``'s graph, in one
    sentence; when nothing is, ``"each of the N tensors once, after its parents"``.

    The right order lists ``root`` and every tensor it depends on through ``_ctx.parents`` that
    requires grad, each exactly once, each after all of its parents (so ``root`` is last). Any
    such order is right: the check does not compare with the library's, it checks the rules.
    Tensors are named by the variable that holds them in ``names`` (default: the caller's
    globals, i.e. a case's namespace), else by the op that made them.

    >>> from tinytorch.core import Tensor
    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> y = x * 2
    >>> z = y * y
    >>> graph_order([x, y, z], z)
    'each of the 3 tensors once, after its parents'
    >>> graph_order([x, y, y, z], z)
    'y is listed 2 times (each tensor once, however many paths reach it)'
    >>> graph_order([z, y, x], z)
    'z is listed before y, its parent'
    >>> graph_order([x, y], z)
    'the root z is missing (the order ends with the root itself)'
    """
    scope = sys._getframe(1).f_globals if names is None else names
    named = _node_names(scope)
    if not isinstance(order, (list, tuple)):
        return f"returned a {type(order).__name__}, not a list of tensors"
    for i, t in enumerate(order):
        if not isinstance(t, Tensor):
            return f"item {i} of the order is a {type(t).__name__}, not a Tensor"
    # the truth: every tensor root depends on that requires grad (an explicit stack: graphs are deep)
    needed: dict[int, Tensor] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in needed or not node.requires_grad:
            continue
        needed[id(node)] = node
        ctx = node._ctx
        if ctx is not None:
            stack.extend(getattr(ctx, "parents", ()))
    counts: dict[int, int] = {}
    for t in order:
        counts[id(t)] = counts.get(id(t), 0) + 1
    for t in order:
        if counts[id(t)] > 1:
            return (f"{_describe_node(t, named)} is listed {counts[id(t)]} times "
                    "(each tensor once, however many paths reach it)")
    if id(root) not in counts:
        return f"the root {_describe_node(root, named)} is missing (the order ends with the root itself)"
    for t in order:
        if id(t) not in needed:
            why = "does not require grad" if not t.requires_grad else "is not something the root depends on"
            return f"{_describe_node(t, named)} is listed but {why}"
    for key, t in needed.items():
        if key not in counts:
            return f"{_describe_node(t, named)} is missing (the root depends on it and it requires grad)"
    position = {id(t): i for i, t in enumerate(order)}
    for i, t in enumerate(order):
        ctx = t._ctx
        for parent in (getattr(ctx, "parents", ()) if ctx is not None else ()):
            if parent.requires_grad and position[id(parent)] > i:
                return f"{_describe_node(t, named)} is listed before {_describe_node(parent, named)}, its parent"
    return f"each of the {len(order)} tensors once, after its parents"
