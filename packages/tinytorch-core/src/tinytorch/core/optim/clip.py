"""Gradient clipping: rescale gradients by their global norm, or clamp their values.

Both functions *replace* ``p.grad`` with a new array instead of modifying it in place, because
a gradient array may be shared with another tensor. Gradients keep their dtype.

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.core.optim import clip_grad_norm_
>>> p = Tensor(np.zeros(2), requires_grad=True)
>>> p.grad = np.array([3.0, 4.0])
>>> clip_grad_norm_([p], max_norm=1.0)
5.0
>>> p.grad.round(6)
array([0.6, 0.8])
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..checks import is_real
from ..tensor import Tensor


def _params(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def _grad_array(p: Tensor) -> np.ndarray:
    return p.grad.data if isinstance(p.grad, Tensor) else p.grad


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    The global norm is the ``norm_type``-norm of all gradients concatenated into one vector
    (``inf`` for the largest absolute value). When it exceeds ``max_norm``, every gradient is
    multiplied by ``max_norm / (total_norm + 1e-6)``, as in PyTorch. Parameters whose ``grad``
    is None are ignored.

    Args:
        parameters: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``).
        max_norm: the largest allowed norm (>= 0).
        norm_type: the p of the p-norm (> 0), or ``float("inf")``.
        error_if_nonfinite: raise if the total norm is nan or inf instead of scaling by it.

    Returns:
        The total norm of the gradients before clipping, as a Python float (useful to log).

    Raises:
        RuntimeError: ``error_if_nonfinite`` is set and the total norm is not finite.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> a, b = Tensor(np.zeros(1), requires_grad=True), Tensor(np.zeros(1), requires_grad=True)
    >>> a.grad, b.grad = np.array([-2.0]), np.array([1.0])
    >>> clip_grad_norm_([a, b], max_norm=10.0, norm_type=float("inf"))  # below: unchanged
    2.0
    """
    if not is_real(max_norm) or not (max_norm >= 0):
        raise ValueError(f"clip_grad_norm_: invalid max_norm: {max_norm!r} (must be >= 0)")
    if not is_real(norm_type) or not (norm_type > 0):
        raise ValueError(f"clip_grad_norm_: invalid norm_type: {norm_type!r} (must be > 0 or inf)")
    params = [p for p in _params(parameters) if p.grad is not None]
    if not params:
        return 0.0

    norm_type = float(norm_type)
    grads = [_grad_array(p) for p in params]
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        # sqrt(sum of squares) through a dot product: one pass, no temporary array.
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        per_tensor = [float(np.linalg.norm(g.ravel(), ord=norm_type)) for g in grads]
        total = float(np.linalg.norm(np.array(per_tensor), ord=norm_type))

    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"{total}, so they cannot be clipped; set error_if_nonfinite=False to ignore"
            )
    clip_coef = float(max_norm) / (total + 1e-6)
    if clip_coef < 1.0:
        for p, g in zip(params, grads, strict=True):
            p.grad = g * clip_coef  # a new array in g's dtype (the Python float is weak)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]``.

    Args:
        parameters: a Tensor or an iterable of Tensors.
        clip_value: the largest allowed absolute value (>= 0).

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> p = Tensor(np.zeros(3), requires_grad=True)
    >>> p.grad = np.array([-5.0, 0.5, 5.0])
    >>> clip_grad_value_(p, 1.0)
    >>> p.grad
    array([-1. ,  0.5,  1. ])
    """
    if not is_real(clip_value) or not (clip_value >= 0):
        raise ValueError(f"clip_grad_value_: invalid clip_value: {clip_value!r} (must be >= 0)")
    clip_value = float(clip_value)
    for p in _params(parameters):
        if p.grad is not None:
            p.grad = np.clip(_grad_array(p), -clip_value, clip_value)
