"""`Optimizer`: the base class of every optimizer, with PyTorch's parameter-group semantics.

An optimizer holds a list of *parameter groups*: dicts with a ``"params"`` list and the
hyperparameters (``lr``, ``momentum``, ...) used for those parameters. Per-parameter state
(momentum buffers, Adam moments, step counts) lives in ``optimizer.state``, a dict keyed by the
parameter's *index*: its position when the parameters of all groups are listed in order. The
same indices are used by ``state_dict()``, whose values are plain Python numbers and NumPy
arrays only, so a checkpoint can be stored as safetensors (arrays) plus JSON (the rest).

Updates happen in place on ``p.data``, keep the parameter's dtype (a float32 parameter stays
float32: hyperparameters are Python floats, which NumPy never lets promote an array), and never
modify ``p.grad`` in place (a gradient array may be shared with another tensor).

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.core.optim import SGD
>>> w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
>>> b = Tensor(np.array([0.5]), requires_grad=True)
>>> opt = SGD([{"params": [w]}, {"params": [b], "lr": 0.01}], lr=0.1)
>>> w.grad, b.grad = np.array([1.0, 1.0]), np.array([1.0])
>>> opt.step()
>>> w.data, b.data
(array([0.9, 1.9]), array([0.49]))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..checks import is_real
from ..tensor import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


# --------------------------------------------------------------------------- validation helpers
def check_number(owner: str, name: str, value: Any) -> float:
    """Return ``float(value)``; raise ``ValueError`` naming ``name`` if it is not a real number."""
    if not is_real(value):
        raise ValueError(f"{owner}: invalid {name}: {value!r} (must be a real number)")
    return float(value)


def check_non_negative(owner: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number >= 0."""
    v = check_number(owner, name, value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{owner}: invalid {name}: {value!r} (must be a finite number >= 0)")


def check_betas(owner: str, betas: Any) -> None:
    """Raise ``ValueError`` unless ``betas`` is a pair of numbers, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    for i, beta in enumerate(betas):
        v = check_number(owner, f"betas[{i}]", beta)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{owner}: invalid betas[{i}]: {beta!r} (must be in [0, 1))")


class _Scratch:
    """Reusable flat work buffers, so an optimizer step allocates no parameter-sized temporaries.

    ``get(like, slot)`` returns a view shaped like ``like`` into buffer number ``slot`` of
    ``like``'s dtype; the buffer grows to the largest parameter seen and is then reused.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[np.dtype, int], np.ndarray] = {}

    def get(self, like: np.ndarray, slot: int) -> np.ndarray:
        key = (like.dtype, slot)
        buf = self._buffers.get(key)
        if buf is None or buf.size < like.size:
            buf = np.empty(like.size, dtype=like.dtype)
            self._buffers[key] = buf
        return buf[: like.size].reshape(like.shape)

    def clear(self) -> None:
        self._buffers.clear()


class Optimizer:
    """Base class of all optimizers.

    Subclasses call ``super().__init__(params, defaults)``, implement ``_update_group(group)``
    (apply one step to one parameter group) and may override ``_validate_group(group)`` to check
    hyperparameters.

    Args:
        params: an iterable of Tensors, or of dicts ``{"params": [...], <hyperparameter>: ...}``
            defining parameter groups; a group's missing hyperparameters come from ``defaults``.
        defaults: the default hyperparameters (e.g. ``{"lr": 0.01, "momentum": 0.9}``).

    Attributes:
        param_groups: the list of parameter groups (dicts).
        state: per-parameter state, ``{parameter index: {name: array or number}}``.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import Adam
    >>> p = Tensor(np.zeros(3), requires_grad=True)
    >>> opt = Adam([p], lr=0.1)
    >>> p.grad = np.ones(3)
    >>> opt.step()
    >>> sorted(opt.state_dict()["state"][0])
    ['exp_avg', 'exp_avg_sq', 'step']
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]):
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or of parameter "
                "group dicts, got a single Tensor (wrap it in a list)"
            )
        self.defaults: dict[str, Any] = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        self._index_of: dict[int, int] = {}  # id(parameter) -> parameter index
        self._scratch = _Scratch()

        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. unfreezing layers).

        Args:
            param_group: ``{"params": Tensor or iterable of Tensors, <hyperparameter>: value}``;
                hyperparameters not given are taken from the optimizer's defaults.

        >>> import numpy as np
        >>> from tinytorch.core import Tensor
        >>> from tinytorch.core.optim import SGD
        >>> opt = SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
        >>> opt.add_param_group({"params": [Tensor(np.zeros(2), requires_grad=True)], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        name = type(self).__name__
        if not isinstance(param_group, Mapping):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(param_group)}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: parameters must be given in a fixed order (a list), not a set, so "
                "that state_dict indices are reproducible"
            )
        params = list(params)
        if not params:
            raise ValueError(f"{name}: a parameter group has an empty parameter list")
        seen: set[int] = set()
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} can only optimize Tensors, got {type(p).__name__}")
            if not np.issubdtype(p.data.dtype, np.floating):
                raise TypeError(
                    f"{name} can only optimize floating-point Tensors, got dtype {p.data.dtype}"
                )
            if id(p) in self._index_of or id(p) in seen:
                raise ValueError(f"{name}: a parameter appears in more than one parameter group")
            seen.add(id(p))
        group["params"] = params
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._validate_group(group)

        start = sum(len(g["params"]) for g in self.param_groups)
        for offset, p in enumerate(params):
            self._index_of[id(p)] = start + offset
        self.param_groups.append(group)

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a group's hyperparameters; raise ValueError naming the bad one."""
        if "lr" in group:
            check_non_negative(type(self).__name__, "lr", group["lr"])

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters.

        Args:
            set_to_none: set ``p.grad = None`` (the default, cheapest); otherwise give each
                parameter a fresh zero array (the old array is never modified in place).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.grad = None if set_to_none else np.zeros_like(p.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; those with ``grad is None`` are skipped.

        Args:
            closure: optional function that re-evaluates the model and returns the loss; it is
                called with gradients enabled before the update.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group(group)")

    def _params_with_grad(self, group: dict[str, Any]):
        """Yield ``(param, grad, state)`` for the group's parameters that have a gradient.

        ``grad`` is a read-only-by-convention ndarray of the parameter's dtype and shape.
        """
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if isinstance(grad, Tensor):
                grad = grad.data
            if grad.dtype != p.data.dtype:
                grad = grad.astype(p.data.dtype)
            if grad.shape != p.data.shape:
                raise ValueError(
                    f"{type(self).__name__}: parameter {self._index_of[id(p)]} has shape "
                    f"{p.data.shape} but its grad has shape {grad.shape}"
                )
            yield p, grad, self.state.setdefault(self._index_of[id(p)], {})

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain numbers and NumPy arrays (copies).

        Returns:
            ``{"state": {index: {name: ndarray or number}},
            "param_groups": [{hyperparameter: value, ..., "params": [indices]}]}``; indices
            number the parameters of all groups in order.
        """
        state = {
            index: {
                key: (value.copy() if isinstance(value, np.ndarray) else value)
                for key, value in entry.items()
            }
            for index, entry in sorted(self.state.items())
            if entry
        }
        groups = []
        for group in self.param_groups:
            saved = {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            saved["params"] = [self._index_of[id(p)] for p in group["params"]]
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore state saved by ``state_dict`` (hyperparameters included).

        Args:
            state_dict: a dict from ``state_dict()``; state keys may be ints or their string
                form (as after a JSON round trip).

        Raises:
            ValueError: the number of groups, of parameters in a group, or a state array's
                shape does not match this optimizer; the message says which.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name}: a state dict needs 'state' and 'param_groups' entries")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: loaded state dict has {len(saved_groups)} parameter group(s), "
                f"but the optimizer has {len(self.param_groups)}"
            )
        # Map each saved parameter index to this optimizer's parameter at the same position.
        param_of: dict[int, Tensor] = {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            saved_params = list(saved.get("params", []))
            if len(saved_params) != len(group["params"]):
                raise ValueError(
                    f"{name}: parameter group {g} has {len(saved_params)} parameter(s) in the "
                    f"loaded state dict, but {len(group['params'])} in the optimizer"
                )
            for index, p in zip(saved_params, group["params"], strict=True):
                param_of[int(index)] = p

        new_state: dict[int, dict[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            index = int(key)
            if index not in param_of:
                raise ValueError(
                    f"{name}: loaded state dict has state for parameter {index}, which is in "
                    "none of its parameter groups"
                )
            p = param_of[index]
            restored: dict[str, Any] = {}
            for item, value in entry.items():
                if isinstance(value, Tensor):
                    value = value.data
                if isinstance(value, np.ndarray) and value.ndim == 0:
                    value = value.item()
                if isinstance(value, np.ndarray):
                    if value.shape != p.data.shape:
                        raise ValueError(
                            f"{name}: state '{item}' of parameter {index} has shape "
                            f"{value.shape}, but the parameter has shape {p.data.shape}"
                        )
                    value = np.array(value, dtype=p.data.dtype, copy=True)
                restored[item] = value
            new_state[self._index_of[id(p)]] = restored

        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            merged = dict(group)
            for key, value in saved.items():
                if key == "params":
                    continue
                if isinstance(value, list) and isinstance(group.get(key), tuple):
                    value = tuple(value)  # e.g. betas after a JSON round trip
                merged[key] = copy.deepcopy(value)
            self._validate_group(merged)
            new_groups.append(merged)

        for group, merged in zip(self.param_groups, new_groups, strict=True):
            group.clear()
            group.update(merged)  # keep the same dict objects: schedulers hold references
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
