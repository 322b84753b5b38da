"""Loss modules: `CrossEntropyLoss`, `MSELoss`, `KLDivLoss`, `DistillationLoss`."""

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


class KLDivLoss(Module):
    """KL(target ‖ input) with ``input`` as log-probabilities, as ``torch.nn.KLDivLoss``.

    Args:
        reduction: ``"batchmean"`` (the KL per sample), ``"sum"``, ``"mean"`` (per element,
            PyTorch's default) or ``"none"``.
        log_target: whether the target holds log-probabilities.

    Call it as ``loss_fn(log_probs, target)``; see ``functional.kl_div``.

    >>> import numpy as np
    >>> q = Tensor(np.log(np.array([[0.25, 0.75]])))
    >>> round(KLDivLoss(reduction="batchmean")(q, np.array([[0.5, 0.5]])).item(), 6)
    0.143841
    """

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__()
        if reduction not in ("none", "batchmean", "sum", "mean"):
            raise ValueError(f"KLDivLoss: reduction must be 'batchmean', 'sum', 'mean' or 'none', got {reduction!r}")
        self.reduction, self.log_target = reduction, bool(log_target)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.kl_div(input, target, self.reduction, self.log_target)


class DistillationLoss(Module):
    """Hinton et al.'s distillation loss: alpha·T²·KL(teacher_T ‖ student_T) + (1 - alpha)·CE.

    Args:
        temperature: T > 0; both models' logits are divided by it before the softmax (T > 1
            softens them, showing the student how the teacher ranks the wrong classes).
        alpha: weight of the soft (teacher) term in [0, 1]; 1 - alpha weighs the labels.
        ignore_index: labels equal to this are left out of the cross-entropy.

    Call it as ``loss_fn(student_logits, teacher_logits, target)``; see
    ``functional.distillation_loss``. To train with it, give a ``training.Distiller`` (which runs
    the teacher) to the ``Trainer``.

    >>> import numpy as np
    >>> loss_fn = DistillationLoss(temperature=2.0, alpha=0.0)   # alpha 0: cross-entropy only
    >>> round(loss_fn(Tensor(np.zeros((1, 4))), np.ones((1, 4)), [3]).item(), 4)  # log 4
    1.3863
    """

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5, ignore_index: int = -100):
        super().__init__()
        self.temperature, self.alpha = F.check_distillation("DistillationLoss", temperature, alpha)
        self.ignore_index = ignore_index

    def forward(self, student_logits: Tensor, teacher_logits: Any, target: Any) -> Tensor:
        return F.distillation_loss(student_logits, teacher_logits, target, self.temperature, self.alpha,
                                   self.ignore_index)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}, alpha={self.alpha:g}"
