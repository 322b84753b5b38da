"""Mask-based pruning with ``torch.nn.utils.prune``'s names and semantics.

Pruning ``weight`` of a module moves the Parameter (the same object, so an optimizer built
before keeps it) to ``weight_orig``, adds the buffer ``weight_mask`` (1 keep, 0 pruned) and a
forward pre-hook that sets ``module.weight = weight_orig * weight_mask`` before every forward.
Gradients reach ``weight_orig`` through that product, so a pruned entry gets a zero gradient,
and whatever an optimizer does to ``weight_orig`` (momentum, AdamW's decoupled weight decay),
the weight the forward uses stays exactly zero where the mask is. ``remove`` makes it permanent.

Pruning a tensor again combines the masks as PyTorch's ``PruningContainer``: an unstructured
method prunes ``amount`` of the entries still unpruned, a structured one ``amount`` of the
channels that still have an unpruned entry.

Ties: the methods rank with a stable sort, so among equal scores the entry (or channel) with
the lower index is pruned first. (PyTorch's ``topk`` leaves ties unspecified.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ....checks import is_int, is_real
from ....random import get_rng
from ....tensor import Tensor
from ...module import Module, Parameter

__all__ = [
    "BasePruningMethod", "Identity", "RandomUnstructured", "L1Unstructured", "LnStructured",
    "RandomStructured", "CustomFromMask", "identity", "random_unstructured", "l1_unstructured",
    "ln_structured", "random_structured", "global_unstructured", "custom_from_mask", "remove",
    "is_pruned",
]


def _count_to_prune(owner: str, amount: Any, size: int) -> int:
    """``amount`` as a number of entries out of ``size``: an int is a count, a float a fraction
    (rounded, as PyTorch); anything outside [0, 1] or over ``size`` is an error naming it."""
    if is_int(amount):
        if amount < 0:
            raise ValueError(f"{owner}: amount must be a non-negative count or a fraction in [0, 1], got {amount!r}")
        if amount > size:
            raise ValueError(f"{owner}: amount {amount} is more than the {size} elements that can be pruned")
        return int(amount)
    if is_real(amount) and 0.0 <= float(amount) <= 1.0:
        return round(float(amount) * size)
    raise ValueError(f"{owner}: amount must be a fraction in [0, 1] or a non-negative count, got {amount!r}")


def _norm(owner: str, x: np.ndarray, n: Any, axis: tuple[int, ...]) -> np.ndarray:
    """The Ln norm of ``x`` over ``axis`` (n an int >= 1, ``inf``, ``-inf`` or ``"fro"``)."""
    if n == "fro":
        n = 2
    if is_real(n) and math.isinf(n):
        a = np.abs(x)
        return a.max(axis=axis) if n > 0 else a.min(axis=axis)
    if not is_real(n) or n <= 0:
        raise ValueError(f"{owner}: n must be a positive number, inf, -inf or 'fro', got {n!r}")
    x = np.abs(x.astype(np.float64))
    return (x**n).sum(axis=axis) ** (1.0 / n)


class BasePruningMethod:
    """A way of computing a mask; also the forward pre-hook that applies it.

    Subclasses set ``PRUNING_TYPE`` (``"unstructured"``, ``"structured"`` or ``"global"``) and
    implement ``compute_mask(t, default_mask)``: the new mask of ``t`` given the mask it has
    already (ones for a tensor not pruned yet).
    """

    PRUNING_TYPE = "unstructured"
    _tensor_name: str

    def compute_mask(self, t: np.ndarray, default_mask: np.ndarray) -> np.ndarray:
        """The mask of ``t`` (1 keep, 0 prune), given the mask it has so far."""
        raise NotImplementedError

    def __call__(self, module: Module, inputs: tuple) -> None:
        setattr(module, self._tensor_name, self.apply_mask(module))

    def apply_mask(self, module: Module) -> Tensor:
        """``<name>_orig * <name>_mask``: the tensor the forward uses (gradient to ``_orig``)."""
        orig = getattr(module, self._tensor_name + "_orig")
        return orig * getattr(module, self._tensor_name + "_mask")

    @classmethod
    def apply(cls, module: Module, name: str, *args: Any, importance_scores: Any = None, **kwargs: Any):
        """Prune ``module.<name>`` with a new ``cls(*args, **kwargs)``; returns the method."""
        method = cls(*args, **kwargs)
        param = _pruning_target(cls.__name__, module, name)
        scores = param.data if importance_scores is None else _scores(cls.__name__, importance_scores, param)
        hook = _hook_of(module, name)
        if hook is None:
            default = np.ones_like(param.data)
        else:
            default = getattr(module, name + "_mask").data
        mask = method.combine(scores, default)
        if hook is None:
            method._tensor_name = name
            _reparametrize(module, name, param, mask)
            module.register_forward_pre_hook(method)
            hook = method
        else:
            getattr(module, name + "_mask").data[...] = mask
        setattr(module, name, hook.apply_mask(module))
        return hook

    def combine(self, t: np.ndarray, default_mask: np.ndarray) -> np.ndarray:
        """The mask after this method prunes what ``default_mask`` still keeps (PruningContainer)."""
        if self.PRUNING_TYPE == "unstructured":
            keep = default_mask == 1
            mask = default_mask.copy()
            mask[keep] = self.compute_mask(t[keep], np.ones(int(keep.sum()), dtype=t.dtype))
            return mask
        if self.PRUNING_TYPE == "structured":
            axis = _other_axes(t.ndim, self.dim)
            alive = np.flatnonzero((default_mask != 0).any(axis=axis))
            channels = np.take(t, alive, axis=self.dim)
            new = self.compute_mask(channels, np.ones_like(channels))
            mask = default_mask.copy()
            dropped = alive[(new == 0).all(axis=axis)]
            index = [slice(None)] * t.ndim
            index[self.dim] = dropped
            mask[tuple(index)] = 0
            return mask
        return self.compute_mask(t, default_mask) * default_mask


def _pruning_target(owner: str, module: Module, name: str) -> Parameter:
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: module must be a Module, got {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"{owner}: name must be a str, got {type(name).__name__}")
    if _hook_of(module, name) is not None:
        return module._parameters[name + "_orig"]
    param = module._parameters.get(name)
    if param is None:
        names = ", ".join(n for n, p in module._parameters.items() if p is not None) or "none"
        raise ValueError(f"{owner}: name {name!r} is not a parameter of {type(module).__name__} "
                         f"(its parameters: {names})")
    return param


def _scores(owner: str, scores: Any, param: Parameter) -> np.ndarray:
    scores = scores.data if isinstance(scores, Tensor) else np.asarray(scores)
    if scores.shape != param.shape:
        raise ValueError(f"{owner}: importance_scores must have the parameter's shape {param.shape}, "
                         f"got {scores.shape}")
    return scores


def _hook_of(module: Module, name: str) -> BasePruningMethod | None:
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            return hook
    return None


def _reparametrize(module: Module, name: str, param: Parameter, mask: np.ndarray) -> None:
    """Move ``param`` to ``<name>_orig`` (the same object) and add the ``<name>_mask`` buffer."""
    module._parameters.pop(name)
    module._parameters[name + "_orig"] = param
    module.register_buffer(name + "_mask", Tensor(mask.astype(param.data.dtype)))


def _other_axes(ndim: int, dim: int) -> tuple[int, ...]:
    return tuple(a for a in range(ndim) if a != dim)


def _prune_smallest(scores: np.ndarray, k: int) -> np.ndarray:
    """A mask of ``scores``' shape with the ``k`` smallest entries 0 (ties: lower index first)."""
    mask = np.ones(scores.size, dtype=np.float32)
    mask[np.argsort(scores.reshape(-1), kind="stable")[:k]] = 0
    return mask.reshape(scores.shape)


class Identity(BasePruningMethod):
    """Prune nothing: a mask of ones (to reparametrize a tensor without changing it)."""

    def compute_mask(self, t, default_mask):
        """``default_mask`` unchanged."""
        return default_mask


class RandomUnstructured(BasePruningMethod):
    """Prune ``amount`` of the entries chosen uniformly at random (core's generator)."""

    def __init__(self, amount: float | int):
        self.amount = amount

    def compute_mask(self, t, default_mask):
        """``default_mask`` with ``amount`` entries drawn at random set to 0."""
        k = _count_to_prune("random_unstructured", self.amount, t.size)
        return _prune_smallest(get_rng().random(t.shape), k).astype(default_mask.dtype) * default_mask


class L1Unstructured(BasePruningMethod):
    """Prune the ``amount`` entries with the smallest absolute value."""

    def __init__(self, amount: float | int):
        self.amount = amount

    def compute_mask(self, t, default_mask):
        """``default_mask`` with the ``amount`` smallest |t| set to 0."""
        k = _count_to_prune("l1_unstructured", self.amount, t.size)
        return _prune_smallest(np.abs(t), k).astype(default_mask.dtype) * default_mask


class LnStructured(BasePruningMethod):
    """Prune the ``amount`` channels along ``dim`` with the smallest Ln norm (over the other axes)."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float | int, n: Any, dim: int = -1):
        self.amount, self.n, self.dim = amount, n, dim

    def compute_mask(self, t, default_mask):
        """``default_mask`` with the ``amount`` slices of smallest Ln norm along ``dim`` set to 0."""
        norms = _norm("ln_structured", t, self.n, _other_axes(t.ndim, self.dim))
        k = _count_to_prune("ln_structured", self.amount, t.shape[self.dim])
        keep = _prune_smallest(norms, k)
        shape = [1] * t.ndim
        shape[self.dim] = -1
        return np.broadcast_to(keep.reshape(shape), t.shape).astype(default_mask.dtype) * default_mask


class RandomStructured(BasePruningMethod):
    """Prune ``amount`` channels along ``dim`` chosen uniformly at random."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float | int, dim: int = -1):
        self.amount, self.dim = amount, dim

    def compute_mask(self, t, default_mask):
        """``default_mask`` with ``amount`` random slices along ``dim`` set to 0."""
        k = _count_to_prune("random_structured", self.amount, t.shape[self.dim])
        keep = _prune_smallest(get_rng().random(t.shape[self.dim]), k)
        shape = [1] * t.ndim
        shape[self.dim] = -1
        return np.broadcast_to(keep.reshape(shape), t.shape).astype(default_mask.dtype) * default_mask


class CustomFromMask(BasePruningMethod):
    """Prune where a given mask is 0."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: Any):
        self.mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)

    def compute_mask(self, t, default_mask):
        """The given mask (as 0/1 of ``default_mask``'s dtype)."""
        if self.mask.shape != t.shape:
            raise ValueError(f"custom_from_mask: mask must have the parameter's shape {t.shape}, "
                             f"got {self.mask.shape}")
        return (self.mask != 0).astype(default_mask.dtype)


def _dim(owner: str, dim: Any, module: Module, name: str) -> int:
    ndim = _pruning_target(owner, module, name).ndim
    if not is_int(dim) or not -ndim <= dim < ndim:
        raise ValueError(f"{owner}: dim must be an axis of the {ndim}-d parameter {name!r}, got {dim!r}")
    return int(dim) % ndim


def identity(module: Module, name: str) -> Module:
    """Reparametrize ``module.<name>`` with a mask of ones (nothing pruned); returns ``module``.

    >>> from tinytorch.core import nn
    >>> layer = identity(nn.Linear(3, 2), "bias")
    >>> sorted(layer.state_dict()), layer.bias_mask.tolist()
    (['bias_mask', 'bias_orig', 'weight'], [1.0, 1.0])
    """
    Identity.apply(module, name)
    return module


def random_unstructured(module: Module, name: str, amount: float | int) -> Module:
    """Prune ``amount`` (a fraction, or a count) of ``module.<name>``'s entries at random.

    >>> from tinytorch.core import nn
    >>> layer = random_unstructured(nn.Linear(4, 5), "weight", amount=0.3)
    >>> int((layer.weight_mask.numpy() == 0).sum())
    6
    """
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module: Module, name: str, amount: float | int, importance_scores: Any = None) -> Module:
    """Prune the ``amount`` entries of ``module.<name>`` with the smallest magnitude.

    Args:
        module: the module holding the parameter.
        name: the parameter's name (``"weight"``, ``"bias"``).
        amount: a fraction in [0, 1] (rounded to a count) or a count of entries to prune.
        importance_scores: rank by these instead of the parameter's values (same shape).

    Returns:
        ``module``, now with ``<name>_orig``, ``<name>_mask`` and a pre-hook.

    >>> import numpy as np
    >>> from tinytorch.core import nn
    >>> layer = nn.Linear(3, 1, bias=False)
    >>> layer.weight.data[:] = [[0.5, -0.1, 2.0]]
    >>> l1_unstructured(layer, "weight", amount=1).weight.tolist()
    [[0.5, -0.0, 2.0]]
    """
    L1Unstructured.apply(module, name, amount, importance_scores=importance_scores)
    return module


def ln_structured(module: Module, name: str, amount: float | int, n: Any, dim: int,
                  importance_scores: Any = None) -> Module:
    """Prune the ``amount`` channels of ``module.<name>`` along ``dim`` with the smallest Ln norm.

    Args:
        module: the module holding the parameter.
        name: the parameter's name.
        amount: a fraction in [0, 1] of the channels, or a count.
        n: the norm's order: an int >= 1, ``float("inf")``, ``float("-inf")`` or ``"fro"``.
        dim: the axis whose slices are the channels (0: a Linear's output neurons, a Conv's
            output channels).
        importance_scores: rank by these instead of the parameter's values (same shape).

    >>> from tinytorch.core import nn
    >>> layer = nn.Linear(2, 3, bias=False)
    >>> layer.weight.data[:] = [[1, 1], [0.1, 0.1], [3, -3]]
    >>> ln_structured(layer, "weight", amount=1, n=2, dim=0).weight_mask.tolist()
    [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    """
    dim = _dim("ln_structured", dim, module, name)
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def random_structured(module: Module, name: str, amount: float | int, dim: int) -> Module:
    """Prune ``amount`` channels of ``module.<name>`` along ``dim`` at random."""
    dim = _dim("random_structured", dim, module, name)
    RandomStructured.apply(module, name, amount, dim)
    return module


def custom_from_mask(module: Module, name: str, mask: Any) -> Module:
    """Prune ``module.<name>`` where ``mask`` is 0 (combined with any mask it has already).

    >>> from tinytorch.core import nn
    >>> layer = custom_from_mask(nn.Linear(2, 1), "bias", mask=[0])
    >>> layer.bias_mask.tolist(), float(abs(layer.bias.numpy()[0]))
    ([0.0], 0.0)
    """
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters: Iterable[tuple[Module, str]], pruning_method: type, *,
                        importance_scores: dict | None = None, **kwargs: Any) -> None:
    """Prune the given parameters together: one ranking over all of their entries.

    With ``L1Unstructured`` and ``amount=0.9`` the 90 % smallest magnitudes over every listed
    tensor go, so one threshold decides for all of them (layers may end up pruned unevenly).
    Entries already pruned stay pruned and ``amount`` counts the entries still unpruned.

    Args:
        parameters: (module, name) pairs.
        pruning_method: an unstructured method class, ``L1Unstructured`` or ``RandomUnstructured``.
        importance_scores: optional {(module, name): scores} to rank by instead of the values.
        **kwargs: the method's arguments (``amount``).

    >>> from tinytorch.core import nn
    >>> a, b = nn.Linear(2, 1, bias=False), nn.Linear(2, 1, bias=False)
    >>> a.weight.data[:] = [[1.0, 4.0]]; b.weight.data[:] = [[2.0, 3.0]]
    >>> global_unstructured([(a, "weight"), (b, "weight")], L1Unstructured, amount=2)
    >>> a.weight_mask.tolist(), b.weight_mask.tolist()
    ([[0.0, 1.0]], [[0.0, 1.0]])
    """
    pairs = list(parameters)
    if not pairs:
        raise ValueError("global_unstructured: parameters must list at least one (module, name) pair")
    if not (isinstance(pruning_method, type) and issubclass(pruning_method, BasePruningMethod)
            and pruning_method.PRUNING_TYPE == "unstructured"):
        raise TypeError(f"global_unstructured: pruning_method must be an unstructured pruning class "
                        f"(L1Unstructured, RandomUnstructured), got {pruning_method!r}")
    scores, masks = [], []
    for module, name in pairs:
        param = _pruning_target("global_unstructured", module, name)
        given = (importance_scores or {}).get((module, name))
        scores.append(param.data if given is None else _scores("global_unstructured", given, param))
        masks.append(getattr(module, name + "_mask").data if _hook_of(module, name) else np.ones_like(param.data))
    flat_mask = pruning_method(**kwargs).combine(np.concatenate([s.reshape(-1) for s in scores]),
                                                 np.concatenate([m.reshape(-1) for m in masks]))
    start = 0
    for (module, name), s in zip(pairs, scores):
        custom_from_mask(module, name, flat_mask[start:start + s.size].reshape(s.shape))
        start += s.size


def remove(module: Module, name: str) -> Module:
    """Make the pruning of ``module.<name>`` permanent: the parameter holds ``orig * mask`` again
    under its own name, and the mask, ``_orig`` and the hook are gone.

    The Parameter object is the one that was pruned (``<name>_orig``), so an optimizer keeps
    it. Pruned entries are zero from now on only until something updates them.

    >>> from tinytorch.core import nn
    >>> layer = remove(l1_unstructured(nn.Linear(4, 2), "weight", amount=0.5), "weight")
    >>> sorted(layer.state_dict()), int((layer.weight.numpy() == 0).sum())
    (['bias', 'weight'], 4)
    """
    hook = _hook_of(module, name) if isinstance(module, Module) else None
    if hook is None:
        raise ValueError(f"remove: parameter {name!r} of {type(module).__name__} is not pruned")
    for key, value in list(module._forward_pre_hooks.items()):
        if value is hook:
            del module._forward_pre_hooks[key]
    param = module._parameters.pop(name + "_orig")
    param.data *= module._buffers.pop(name + "_mask").data
    module._non_persistent.discard(name + "_mask")
    module.__dict__.pop(name, None)
    module._parameters[name] = param
    return module


def is_pruned(module: Module) -> bool:
    """Whether ``module`` or any of its submodules has a pruned parameter.

    >>> from tinytorch.core import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> is_pruned(model), is_pruned(l1_unstructured(model[0], "weight", 0.5) and model)
    (False, True)
    """
    return any(isinstance(hook, BasePruningMethod)
               for m in module.modules() for hook in m._forward_pre_hooks.values())
