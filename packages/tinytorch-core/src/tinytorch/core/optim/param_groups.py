"""Parameter groups for decoupled weight decay: decay matrices and kernels, not biases or norms.

nanoGPT's ``configure_optimizers`` and timm's ``param_groups_weight_decay`` draw the same line:
a parameter with two or more dimensions (a weight matrix, an embedding, a conv kernel) is
decayed; a vector (a bias, a LayerNorm or BatchNorm scale) is not, since shrinking it toward 0
only fights the normalization it belongs to.
"""

from __future__ import annotations

import math
from typing import Any

from ..checks import is_real


def weight_decay_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Split ``model``'s parameters into a decayed group (ndim >= 2) and a group without decay.

    Args:
        model: a ``Module`` (anything with ``named_parameters()``).
        weight_decay: the decay of the first group (>= 0, finite).

    Returns:
        Parameter groups for an optimizer: ``[{"params": ..., "weight_decay": weight_decay},
        {"params": ..., "weight_decay": 0.0}]`` (the second only if non-empty).

    >>> from tinytorch.core import nn
    >>> from tinytorch.core.optim import AdamW
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
    >>> groups = weight_decay_groups(model, 0.1)
    >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
    [(1, 0.1), (3, 0.0)]
    >>> opt = AdamW(groups, lr=1e-3)
    """
    if not is_real(weight_decay) or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay_groups: weight_decay must be a finite number >= 0, got {weight_decay!r}")
    params = [p for _, p in model.named_parameters()]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": float(weight_decay)}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


__all__ = ["weight_decay_groups"]
