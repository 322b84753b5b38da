"""`Module` and `Parameter`: the containers that models are built from.

Names, nesting and state-dict keys follow PyTorch (``layers.0.weight``), so a PyTorch state dict
converted to NumPy arrays loads one to one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..io import check_state
from ..tensor import Tensor, _refuse_cuda, _to_dtype


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (``requires_grad=True`` by default).

    >>> p = Parameter(np.zeros((2, 3), dtype=np.float32))
    >>> p.requires_grad, p.shape
    (True, (2, 3))
    """

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data)
        if not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"Parameter needs floating-point data, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _Registry(OrderedDict):
    """A Module's parameters, buffers or sub-modules by name, each also an attribute of the Module.

    ``layer.weight`` is then an ordinary attribute read. Through ``__getattr__`` it was a miss
    first: CPython (3.11) builds an AttributeError, then calls the Python method, about 1 µs,
    and a decoded token reads about 100 weights. Every write, by ``setattr`` or straight to the
    store (pruning and quantization swap entries in place to keep their order), goes through
    here and updates the attribute with the entry.

    >>> from tinytorch.core import nn
    >>> layer = nn.Linear(2, 3)
    >>> layer._parameters["weight"] = nn.Parameter(np.zeros((3, 2), dtype=np.float32))
    >>> float(layer.weight.sum().item())
    0.0
    """

    __slots__ = ("owner",)

    def __init__(self, owner: Module | None = None) -> None:  # None: deepcopy sets it after
        super().__init__()
        self.owner = owner

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, value)
        self.owner.__dict__[name] = value

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self.owner.__dict__.pop(name, None)

    _missing = object()

    def pop(self, name: str, default: Any = _missing) -> Any:
        if name in self:
            value = super().pop(name)
            self.owner.__dict__.pop(name, None)
            return value
        if default is _Registry._missing:
            raise KeyError(name)
        return default

    def popitem(self, last: bool = True) -> tuple[str, Any]:
        name, value = super().popitem(last)
        self.owner.__dict__.pop(name, None)
        return name, value

    def clear(self) -> None:
        for name in self:
            self.owner.__dict__.pop(name, None)
        super().clear()

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name not in self:
            self[name] = default
        return self[name]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value


class _HookHandle:
    def __init__(self, hooks: dict, key: int):
        self.hooks, self.key = hooks, key

    def remove(self) -> None:
        self.hooks.pop(self.key, None)


_hook_ids = iter(range(1 << 62))


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes in ``__init__`` and implement
    ``forward``; calling the module runs the forward hooks around ``forward``.

    >>> from tinytorch.core import nn
    >>> class TwoLayer(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(4, 8)
    ...         self.out = nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).relu())
    >>> [name for name, _ in TwoLayer().named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", _Registry(self))
        object.__setattr__(self, "_buffers", _Registry(self))
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", _Registry(self))
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_load_state_dict_post_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value  # and the attribute, see _Registry
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Registered names are attributes too (_Registry),
        # so this is the path of names that do not exist; it still looks in the stores, for a
        # Module whose __dict__ was replaced wholesale (copy.copy shares the stores).
        d = self.__dict__
        try:
            stores = (d["_parameters"], d["_modules"], d["_buffers"])
        except KeyError:  # before __init__ (copy and deepcopy look up hooks on a blank object)
            stores = ()
        for store in stores:
            if name in store:
                return store[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (None declares an absent parameter, e.g. no bias)."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Register state that is saved in ``state_dict`` but is not learnable (e.g. running means)."""
        self._buffers[name] = value if isinstance(value, Tensor) or value is None else Tensor(value)
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child under ``name`` (what attribute assignment does)."""
        if module is None:
            self._modules[name] = None
        else:
            setattr(self, name, module)

    # ------------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._forward_pre_hooks and not self._forward_hooks:
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook: Callable) -> _HookHandle:
        """``hook(module, args)`` runs before forward; it may return replacement args."""
        key = next(_hook_ids)
        self._forward_pre_hooks[key] = hook
        return _HookHandle(self._forward_pre_hooks, key)

    def register_forward_hook(self, hook: Callable) -> _HookHandle:
        """``hook(module, args, output)`` runs after forward; it may return a replacement output."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    def register_load_state_dict_post_hook(self, hook: Callable) -> _HookHandle:
        """``hook(module, (missing_keys, unexpected_keys))`` runs after ``load_state_dict`` has
        copied the arrays, when it is called on this module or any module containing it: for
        state derived from the buffers (a quantized layer's widened weight), as in PyTorch.

        >>> from tinytorch.core import nn
        >>> layer, seen = nn.Linear(2, 2), []
        >>> _ = layer.register_load_state_dict_post_hook(lambda m, keys: seen.append(keys))
        >>> _ = nn.Sequential(layer).load_state_dict(nn.Sequential(nn.Linear(2, 2)).state_dict())
        >>> seen
        [([], [])]
        """
        key = next(_hook_ids)
        self._load_state_dict_post_hooks[key] = hook
        return _HookHandle(self._load_state_dict_post_hooks, key)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", memo: set | None = None) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (name ``prefix``) and every descendant, each once.

        >>> from tinytorch.core import nn
        >>> [name for name, _ in nn.Sequential(nn.Linear(2, 2), nn.ReLU()).named_modules()]
        ['', '0', '1']
        """
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, each once."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) of the direct children."""
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct children."""
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs; a parameter shared by two modules is listed once."""
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (of descendants too unless ``recurse=False``), each once; pass to an optimizer.

        >>> from tinytorch.core import nn
        >>> [p.shape for p in nn.Linear(3, 2).parameters()]
        [(2, 3), (2,)]
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) of every registered buffer (e.g. BatchNorm's running statistics)."""
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every registered buffer."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of parameter elements (only those with ``requires_grad`` if ``trainable_only``).

        >>> from tinytorch.core import nn
        >>> nn.Linear(3, 2).num_parameters()
        8
        """
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn(module)`` on every descendant, then on this module (e.g. custom init); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or eval mode on this module and all descendants; returns self.

        Dropout and BatchNorm behave differently in the two modes.
        """
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Set eval mode (same as ``train(False)``); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to zeros if ``set_to_none=False``)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(p.data)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradients on or off for every parameter (freeze a layer); returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> Module:
        """Cast every floating-point parameter and buffer to ``dtype``; returns self.

        Accepts PyTorch's forms: ``to(torch_dtype_like)``, ``to("cpu")``, ``to("cpu", dtype)``.

        Args:
            args: a device and/or a dtype, as in PyTorch (e.g. float64 for gradient checks).
            device: ``"cpu"``; any other device (``"cuda"``, ``"mps"``, ...) is an error.
            dtype: the floating dtype to cast to.

        Raises:
            RuntimeError: a device other than the CPU was asked for.

        >>> from tinytorch.core import nn
        >>> nn.Linear(2, 2).to("cpu", "float64").weight.dtype
        dtype('float64')
        """
        dtype = _to_dtype(type(self).__name__, args, device, dtype)
        if dtype is None:
            return self
        for t in list(self.parameters()) + list(self.buffers()):
            if np.issubdtype(t.data.dtype, np.floating):
                t.data = t.data.astype(dtype)
                t.grad = None
        return self

    def cpu(self) -> Module:
        """``self``: parameters already live on the CPU."""
        return self

    def cuda(self, device: Any = None) -> Module:
        """Always an error: TinyTorch runs on the CPU only (NumPy).

        Args:
            device: ignored (the message is the same for any GPU).

        Raises:
            RuntimeError: always.
        """
        _refuse_cuda(device)

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64 (for gradient checks); returns self."""
        return self.to(np.float64)

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32; returns self."""
        return self.to(np.float32)

    # ------------------------------------------------------------------ state
    def state_dict(self, prefix: str = "") -> OrderedDict[str, np.ndarray]:
        """Every parameter and persistent buffer by dotted name, as NumPy arrays (not copies)."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_prefix, module in self.named_modules(prefix.rstrip(".")):
            for name, p in module._parameters.items():
                if p is not None:
                    state[f"{mod_prefix}.{name}" if mod_prefix else name] = p.data
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    state[f"{mod_prefix}.{name}" if mod_prefix else name] = b.data
        return state

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> tuple[list, list]:
        """Copy arrays into the parameters and buffers, in place (optimizers keep their references).

        Raises ``CheckpointError`` (a ``ValueError``) naming every missing and unexpected key
        (when ``strict``) and every shape mismatch. Returns ``(missing_keys, unexpected_keys)``.
        """
        targets: dict[str, Tensor] = {}
        for mod_prefix, module in self.named_modules():
            for store in (module._parameters, module._buffers):
                for name, t in store.items():
                    if t is not None and not (store is module._buffers and name in module._non_persistent):
                        targets[f"{mod_prefix}.{name}" if mod_prefix else name] = t
        missing, unexpected = check_state(targets, state_dict, strict=strict)
        for key, target in targets.items():
            if key in state_dict:
                value = state_dict[key]
                value = value.data if isinstance(value, Tensor) else np.asarray(value)
                target.data[...] = value
        for module in self.modules():
            for hook in list(module._load_state_dict_post_hooks.values()):
                hook(module, (missing, unexpected))
        return missing, unexpected

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules) | set(self._buffers))
