"""`ModuleTracker`: which module is running, with its parents and timings.

One set of forward pre/post hooks serves every tool that needs to know where in a model an op
runs: ``nn.summary`` (output shapes per layer), perf's FLOP tracer (ops attributed to the
innermost running module) and perf's profiler (inclusive and self time per module).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .module import Module

__all__ = ["ModuleCall", "ModuleTracker"]


@dataclass(eq=False)
class ModuleCall:
    """One call of one module's forward.

    Attributes:
        name: the module's dotted name in the model (``""`` for the model itself).
        module: the module.
        parent: the call it ran inside (None for the outermost).
        args: the positional inputs of the call; ``output`` what it returned (None until it ends).
        start: clock reading at entry; ``end`` at exit (None while running).
        child_seconds: total inclusive time of the calls made directly inside this one.

    ``seconds`` is the inclusive time, ``self_seconds`` the time not spent in child calls.

    >>> call = ModuleCall("fc", None, None, (), start=1.0, end=4.0, child_seconds=2.5)
    >>> call.seconds, call.self_seconds, call.depth
    (3.0, 0.5, 0)
    """

    name: str
    module: Any
    parent: ModuleCall | None
    args: tuple
    start: float
    end: float | None = None
    output: Any = None
    child_seconds: float = 0.0

    @property
    def depth(self) -> int:
        """0 for the outermost call, 1 for its children, ..."""
        d, p = 0, self.parent
        while p is not None:
            d, p = d + 1, p.parent
        return d

    @property
    def seconds(self) -> float:
        """Inclusive time of the call (children included)."""
        return (self.end if self.end is not None else self.start) - self.start

    @property
    def self_seconds(self) -> float:
        """Time of the call minus the inclusive time of its direct children."""
        return self.seconds - self.child_seconds


@dataclass(eq=False)
class ModuleTracker:
    """Context manager that hooks every module of ``model`` and tracks the running calls.

    Args:
        model: the root module; it and every submodule (``named_modules``) are hooked.
        on_enter: called with the ``ModuleCall`` when a module's forward starts.
        on_exit: called with the finished ``ModuleCall`` (``end`` and ``output`` set).
        clock: time source (``time.perf_counter``; tests pass a fake one).
        keep_calls: keep every call in ``calls`` (entry order, parents before children); off
            for long profiling runs that only need the callbacks.
        include_root: hook the model itself too.

    Attributes:
        modules: dotted name -> module for every hooked module.
        stack: the calls running now, outermost first; ``current`` the innermost (or None).

    >>> from tinytorch.core import nn, randn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> with ModuleTracker(model) as tracker:
    ...     y = model(randn(2, 4))
    >>> [(c.name, c.depth, c.parent.name if c.parent else None) for c in tracker.calls]
    [('', 0, None), ('0', 1, ''), ('1', 1, '')]
    >>> tracker.calls[1].output.shape
    (2, 3)
    """

    model: Module
    on_enter: Callable[[ModuleCall], Any] | None = None
    on_exit: Callable[[ModuleCall], Any] | None = None
    clock: Callable[[], float] = time.perf_counter
    keep_calls: bool = True
    include_root: bool = True
    modules: dict[str, Module] = field(init=False)
    stack: list[ModuleCall] = field(init=False, default_factory=list)
    calls: list[ModuleCall] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.model, Module):
            raise TypeError(f"ModuleTracker: model must be a Module, got {type(self.model).__name__}")
        self.modules = {name: m for name, m in self.model.named_modules()
                        if name or self.include_root}
        self._handles: list[Any] = []

    @property
    def current(self) -> ModuleCall | None:
        """The innermost running call, or None outside every hooked module."""
        return self.stack[-1] if self.stack else None

    def reset(self) -> None:
        """Forget the recorded calls (between profiled steps)."""
        self.calls.clear()

    def _pre(self, name: str):
        def hook(module, args):
            call = ModuleCall(name, module, self.stack[-1] if self.stack else None, args,
                              self.clock())
            self.stack.append(call)
            if self.keep_calls:
                self.calls.append(call)
            if self.on_enter is not None:
                self.on_enter(call)
        return hook

    def _post(self, name: str):
        def hook(module, args, output):
            end = self.clock()
            # A forward that raised never reaches its post hook: unwind to this module's call.
            while self.stack and self.stack[-1].name != name:
                self.stack.pop()
            if not self.stack:
                return
            call = self.stack.pop()
            call.end, call.output = end, output
            if call.parent is not None:
                call.parent.child_seconds += call.seconds
            if self.on_exit is not None:
                self.on_exit(call)
        return hook

    def __enter__(self) -> ModuleTracker:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))
        return self

    def __exit__(self, *exc) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.stack.clear()
        return False
