"""Loss modules: `CrossEntropyLoss`, `MSELoss`."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class CrossEntropyLoss(Module):
    """Cross-entropy of logits (..., C) against integer targets (...), softmax included.

    Args:
        ignore_index: targets equal to this are skipped (and left out of the mean).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: amount of the uniform distribution mixed into the one-hot target.

    Call it as ``loss_fn(logits, target)``; see ``functional.cross_entropy``.

    >>> import numpy as np
    >>> loss = CrossEntropyLoss()(Tensor(np.zeros((4, 10), dtype=np.float32)), np.array([0, 1, 2, 3]))
    >>> round(loss.item(), 4)  # log(10)
    2.3026
    """

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"CrossEntropyLoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(logits, target, self.ignore_index, self.reduction, self.label_smoothing)


class MSELoss(Module):
    """Mean squared error between a prediction and a same-shaped target.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    >>> MSELoss()(Tensor([1.0, 3.0]), Tensor([1.0, 1.0])).item()
    2.0
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"MSELoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return F.mse_loss(prediction, target, self.reduction)
