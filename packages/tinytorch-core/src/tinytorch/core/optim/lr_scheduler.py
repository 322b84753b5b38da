"""Learning-rate schedulers, following ``torch.optim.lr_scheduler``.

A scheduler sets ``group["lr"]`` of each parameter group of an optimizer. Create it after the
optimizer and call ``scheduler.step()`` once per epoch (or per iteration, for per-step
schedules) *after* ``optimizer.step()``. Creating a scheduler already applies the value for
epoch 0. As in PyTorch, each group's starting rate is stored as ``group["initial_lr"]``.

Every scheduler here computes the rate in closed form from ``base_lrs`` and ``last_epoch``
(PyTorch's ``_get_closed_form_lr``), so resuming from a ``state_dict`` gives exactly the rates
of an uninterrupted run.

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.core.optim import SGD, lr_scheduler
>>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
>>> sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     lrs.append(sched.get_last_lr()[0])
...     opt.step()
...     sched.step()
>>> lrs
[1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from ..checks import check_int, check_real
from .optimizer import Optimizer

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "LambdaLR",
    "SequentialLR",
    "WarmupCosineLR",
    "warmup_cosine",
]


class LRScheduler:
    """Base class: sets each group's ``lr`` to ``get_lr()`` for the current ``last_epoch``.

    Subclasses implement ``get_lr()``, returning one rate per parameter group computed from
    ``self.base_lrs`` and ``self.last_epoch``.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        last_epoch: the index of the last epoch done; -1 (the default) starts a new schedule
            (recording ``initial_lr`` in each group), otherwise each group must already have
            ``initial_lr`` (as after loading an optimizer state dict).

    Attributes:
        base_lrs: each group's ``initial_lr``.
        last_epoch: the number of ``step()`` calls since the schedule began (0 after creation).
    """

    # Attributes left out of state_dict (the optimizer, and functions that are not data).
    _not_state: tuple[str, ...] = ("optimizer",)

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}"
            )
        last_epoch = check_int(type(self).__name__, "last_epoch", last_epoch, minimum=-1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        f"resuming {type(self).__name__} with last_epoch={last_epoch}"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = [group["lr"] for group in optimizer.param_groups]
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rate of each group at ``self.last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def step(self) -> None:
        """Advance one epoch and set each group's ``lr``."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _apply(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()`` (or by creation)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (plain numbers and lists), without the optimizer."""
        return {
            key: (list(value) if isinstance(value, tuple) else value)
            for key, value in self.__dict__.items()
            if key not in self._not_state
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from ``state_dict()``; the optimizer's rates come from its own."""
        unknown = set(state_dict) - set(self.state_dict())
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unexpected key(s) in state dict: {sorted(unknown)}"
            )
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={self._last_lr})"


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    ``lr = base * gamma ** (epoch // step_size)``.

    Args:
        optimizer: the optimizer.
        step_size: the period of the decay, in epochs (>= 1).
        gamma: the multiplicative factor (>= 0).
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    >>> sched = StepLR(opt, step_size=30, gamma=0.1)  # 0.1 for epochs 0-29, 0.01 for 30-59...
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ):
        step_size = check_int("StepLR", "step_size", step_size, minimum=1)
        gamma = check_real("StepLR", "gamma", gamma, minimum=0.0)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = self.gamma ** (self.last_epoch // self.step_size)
        return [base * factor for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone epoch.

    Args:
        optimizer: the optimizer.
        milestones: increasing epoch indices at which the rate decays.
        gamma: the multiplicative factor (>= 0).
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> sched = MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ):
        milestones = list(milestones)
        milestones = [check_int("MultiStepLR", f"milestones[{i}]", m, minimum=0)
                      for i, m in enumerate(milestones)]
        if milestones != sorted(milestones):
            raise ValueError(f"MultiStepLR: milestones must be increasing, got {milestones}")
        gamma = check_real("MultiStepLR", "gamma", gamma, minimum=0.0)
        self.milestones = milestones
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base * factor for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: ``lr = base * gamma ** epoch``.

    Args:
        optimizer: the optimizer.
        gamma: the multiplicative factor (>= 0).
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> sched = ExponentialLR(opt, gamma=0.5); sched.step(); sched.get_last_lr()
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        gamma = check_real("ExponentialLR", "gamma", gamma, minimum=0.0)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the base rate to ``eta_min`` over ``T_max`` epochs (SGDR, no restarts).

    ``lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``, PyTorch's closed
    form; past ``T_max`` the cosine continues (rising again), as in PyTorch.

    Args:
        optimizer: the optimizer.
        T_max: the number of epochs of the half cosine period (>= 1).
        eta_min: the minimum learning rate (>= 0).
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=2)
    >>> lrs = []
    >>> for epoch in range(3):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [1.0, 0.5, 0.0]
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ):
        T_max = check_int("CosineAnnealingLR", "T_max", T_max, minimum=1)
        eta_min = check_real("CosineAnnealingLR", "eta_min", eta_min, minimum=0.0)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cosine = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the rate linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` epochs.

    ``lr = base * (start + (end - start) * min(epoch, total_iters) / total_iters)``; a common
    linear warmup is ``LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=500)``.

    Args:
        optimizer: the optimizer.
        start_factor: the factor at epoch 0 (>= 0).
        end_factor: the factor from epoch ``total_iters`` on (>= 0).
        total_iters: the number of epochs of the ramp (>= 1).
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> sched = LinearLR(opt, start_factor=0.5, end_factor=1.0, total_iters=2)
    >>> lrs = []
    >>> for epoch in range(4):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.5, 0.75, 1.0, 1.0]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ):
        start_factor = check_real("LinearLR", "start_factor", start_factor, minimum=0.0)
        end_factor = check_real("LinearLR", "end_factor", end_factor, minimum=0.0)
        total_iters = check_int("LinearLR", "total_iters", total_iters, minimum=1)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        progress = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base * factor for base in self.base_lrs]


class LambdaLR(LRScheduler):
    """Set the rate to ``base * lr_lambda(epoch)``.

    Args:
        optimizer: the optimizer.
        lr_lambda: a function of the epoch returning a multiplicative factor, or a list of such
            functions, one per parameter group. Functions are not saved in ``state_dict``.
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> sched = LambdaLR(opt, lambda epoch: 0.5 ** epoch); sched.step(); sched.get_last_lr()
    [0.5]
    """

    _not_state = ("optimizer", "lr_lambdas")

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"LambdaLR: expected an Optimizer, got {type(optimizer).__name__}")
        n_groups = len(optimizer.param_groups)
        if callable(lr_lambda):
            lambdas = [lr_lambda] * n_groups
        else:
            lambdas = list(lr_lambda)
            if len(lambdas) != n_groups:
                raise ValueError(
                    f"LambdaLR: expected {n_groups} lr_lambda function(s), one per parameter "
                    f"group, got {len(lambdas)}"
                )
            for i, fn in enumerate(lambdas):
                if not callable(fn):
                    raise TypeError(f"LambdaLR: lr_lambda[{i}] is not callable: {fn!r}")
        self.lr_lambdas: list[Callable[[int], float]] = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        pairs = zip(self.base_lrs, self.lr_lambdas, strict=True)
        return [base * float(fn(self.last_epoch)) for base, fn in pairs]


class SequentialLR(LRScheduler):
    """Run schedulers one after another, switching at the given milestone epochs.

    Scheduler ``i`` runs from epoch ``milestones[i - 1]`` (its own epoch 0) until
    ``milestones[i]``.

    Args:
        optimizer: the optimizer all the schedulers were created for.
        schedulers: the schedulers, in order (one more than there are milestones).
        milestones: increasing epochs at which to switch to the next scheduler.
        last_epoch: see :class:`LRScheduler`.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import SGD
    >>> opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> warmup = LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> decay = ExponentialLR(opt, gamma=0.5)
    >>> sched = SequentialLR(opt, [warmup, decay], milestones=[2])
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    _not_state = ("optimizer", "_schedulers")

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ):
        schedulers = list(schedulers)
        milestones = list(milestones)
        if not schedulers:
            raise ValueError("SequentialLR: expected at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler):
                raise TypeError(f"SequentialLR: schedulers[{i}] is not an LRScheduler: {s!r}")
            if s.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedulers[{i}] belongs to a different optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR: expected {len(schedulers) - 1} milestone(s) for "
                f"{len(schedulers)} schedulers, got {len(milestones)}"
            )
        milestones = [check_int("SequentialLR", f"milestones[{i}]", m, minimum=1)
                      for i, m in enumerate(milestones)]
        if milestones != sorted(milestones):
            raise ValueError(f"SequentialLR: milestones must be increasing, got {milestones}")
        self._schedulers = schedulers
        self._milestones = milestones
        # The sub-schedulers already set the rates when they were created; start again.
        for group in optimizer.param_groups:
            if "initial_lr" in group:
                group["lr"] = group["initial_lr"]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        start = self._milestones[index - 1] if index > 0 else 0
        scheduler.last_epoch = self.last_epoch - start
        lrs = scheduler.get_lr()
        scheduler._last_lr = list(lrs)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        sub_states = state.pop("_schedulers", None)
        super().load_state_dict(state)
        if sub_states is not None:
            if len(sub_states) != len(self._schedulers):
                raise ValueError(
                    f"SequentialLR: state dict has {len(sub_states)} scheduler state(s), "
                    f"but this SequentialLR has {len(self._schedulers)} schedulers"
                )
            for scheduler, sub_state in zip(self._schedulers, sub_states, strict=True):
                scheduler.load_state_dict(sub_state)


class WarmupCosineLR(LRScheduler):
    """Linear warmup, then cosine decay to ``min_lr_ratio`` of the base rate (nanoGPT's ``get_lr``).

    Stepped once per optimizer step. At step ``t``, with ``w`` warmup steps, ``T`` total steps
    and ``r = min_lr_ratio``, the factor applied to the base rate is::

        (t + 1) / (w + 1)                                   for t < w
        r + (1 - r) * (1 + cos(pi * (t - w) / (T - w))) / 2  for w <= t < T
        r                                                   for t >= T

    The total may be unknown when training starts (a run that ends on a time budget):
    ``total_steps=None`` holds the base rate after warmup until ``set_total_steps`` is called,
    which the ``Trainer`` does once it has measured how many steps fit the budget (after the
    first step, then refined). With ``warmup_fraction`` the warmup is that share of the total,
    so it scales with the budget too; until the total is known such a warmup has not begun and
    the rate is 0 (one step, as in the first step of PyTorch's and older nanoGPT's warmups).

    Args:
        optimizer: the optimizer.
        total_steps: the step at which the decay reaches its minimum, or None (set later).
        warmup_steps: the number of warmup steps (>= 0), when ``warmup_fraction`` is None.
        warmup_fraction: warmup as a share of ``total_steps``, in [0, 1), or None.
        min_lr_ratio: the final rate as a fraction of the base rate, in [0, 1].
        last_epoch: see :class:`LRScheduler` (here: the last step done).

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import AdamW
    >>> opt = AdamW([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> sched = WarmupCosineLR(opt, total_steps=5, warmup_steps=1, min_lr_ratio=0.1)
    >>> lrs = [sched.get_last_lr()[0]]
    >>> for _ in range(6):
    ...     sched.step(); lrs.append(round(sched.get_last_lr()[0], 6))
    >>> lrs
    [0.5, 1.0, 0.868198, 0.55, 0.231802, 0.1, 0.1]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        warmup_steps: int = 0,
        warmup_fraction: float | None = None,
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ):
        warmup_steps = check_int("WarmupCosineLR", "warmup_steps", warmup_steps, minimum=0)
        if total_steps is not None:
            total_steps = check_int("WarmupCosineLR", "total_steps", total_steps, minimum=max(1, warmup_steps))
        if warmup_fraction is not None:
            warmup_fraction = check_real("WarmupCosineLR", "warmup_fraction", warmup_fraction, minimum=0.0)
            if warmup_fraction >= 1:
                raise ValueError(
                    f"WarmupCosineLR: invalid warmup_fraction: {warmup_fraction!r} (must be < 1)"
                )
        min_lr_ratio = check_real("WarmupCosineLR", "min_lr_ratio", min_lr_ratio, minimum=0.0)
        if min_lr_ratio > 1:
            raise ValueError(f"WarmupCosineLR: invalid min_lr_ratio: {min_lr_ratio!r} (must be <= 1)")
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.warmup_fraction = warmup_fraction
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    @property
    def warmup(self) -> int:
        """The number of warmup steps in force (from ``warmup_fraction`` once the total is known)."""
        if self.warmup_fraction is None:
            return self.warmup_steps
        return round(self.warmup_fraction * self.total_steps) if self.total_steps else 0

    def set_total_steps(self, total_steps: int) -> None:
        """Fix (or revise) the step at which the decay ends, and apply the rate of the current step.

        Args:
            total_steps: the new total (>= 1).
        """
        total_steps = check_int("WarmupCosineLR", "total_steps", total_steps, minimum=1)
        self.total_steps = int(total_steps)
        self._apply(self.get_lr())

    def factor(self, step: int) -> float:
        """The multiplier of the base rate at ``step`` (see the class docstring)."""
        warmup, total, floor = self.warmup, self.total_steps, self.min_lr_ratio
        if total is None and self.warmup_fraction:
            return 0.0
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if total is None:
            return 1.0
        if step >= total:
            return floor
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> WarmupCosineLR:
    """A :class:`WarmupCosineLR` with a known total (kept for the design summary's name).

    Args:
        optimizer: the optimizer.
        warmup_steps: the number of warmup steps (>= 0).
        total_steps: the step at which the decay reaches its minimum (>= 1).
        min_lr_ratio: the final rate as a fraction of the base rate, in [0, 1].

    Returns:
        The scheduler; call its ``step()`` after every ``optimizer.step()``.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> from tinytorch.core.optim import AdamW
    >>> opt = AdamW([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    >>> warmup_cosine(opt, warmup_steps=3, total_steps=10).get_last_lr()
    [0.25]
    """
    return WarmupCosineLR(optimizer, total_steps=total_steps, warmup_steps=warmup_steps,
                          min_lr_ratio=min_lr_ratio)
