"""`Trainer`: the one step-based training loop of every TinyTorch model.

A **step** is one optimizer update on one batch; an **epoch** is one pass over the training
data. ``fit`` runs steps until a limit is reached — ``epochs``, ``max_steps`` or a
``time_budget`` in seconds, whichever comes first — evaluating every ``eval_every`` steps (or at
the end of every epoch) and once more at the end. The history holds one row per step and one
per evaluation, and ``history.stop_reason`` says why training ended:

==============  =========================================================================
``epochs``      the requested number of epochs is done
``steps``       ``max_steps`` optimizer steps are done
``budget``      the next step and the final evaluation would not fit the time budget
``early_stop``  a callback (``EarlyStopping``) asked to stop
``non_finite``  a loss or gradient became nan/inf; the step was not taken, nothing was saved
``interrupted`` Ctrl-C; the last checkpoint (if any) is the one of the last evaluation
==============  =========================================================================

The time budget covers everything ``fit`` does, the final evaluation and checkpoint included:
before each step the Trainer checks that the step, one evaluation and one save still fit, using
times it has measured (it times one validation batch up front). A learning-rate schedule with an
open end (``WarmupCosineLR(total_steps=None)``) is given the number of steps the budget allows
once the step time is known, so warmup and decay scale with the budget.

When the machine becomes busy and steps run much slower than measured (at least ``SLOWDOWN``
times as long as when an evaluation was last timed), the Trainer scales its estimates by that slowdown,
stops at the next step boundary, and, when even then the whole final evaluation would not fit,
evaluates only as many validation batches as fit (at least one). ``history.shortened_eval``
and ``stop_detail`` say how many of how many, and why.

See :class:`Trainer` for an example.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import distributed as dist
from . import functional as F
from . import io
from .autograd import no_grad
from .callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar
from .checkpoint import check_finite_weights, read_training_checkpoint, training_payload
from .checks import check_int, is_real
from .contention import ContentionProbe, counting_as_ours
from .nn.module import Module
from .random import get_rng, get_rng_state, set_rng_state
from .tensor import Tensor

Metric = Callable[[Tensor, Any], float]

STOP_REASONS = ("epochs", "steps", "budget", "early_stop", "non_finite", "interrupted")

# A busy machine: the slowest of the last RECENT_STEPS steps took SLOWDOWN times as long as the
# steps did when the evaluation was timed. Below that, timing noise of a quiet machine, which the
# 10% margin of every estimate covers, so an unloaded run decides exactly as it would without it.
RECENT_STEPS = 3
SLOWDOWN = 1.25


def accuracy(outputs: Tensor, targets: Any) -> float:
    """Fraction of rows whose arg-max over the last axis equals the integer target.

    Args:
        outputs: logits or probabilities (..., C).
        targets: integer classes (...), an array or Tensor.

    >>> from tinytorch.core import Tensor
    >>> accuracy(Tensor([[0.1, 0.9], [0.8, 0.2]]), [1, 1])
    0.5
    """
    y = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    return float(np.mean(outputs.data.argmax(axis=-1) == y))


class NonFiniteLossError(RuntimeError):
    """A loss or gradient became nan or inf; training stopped before the optimizer step.

    >>> str(NonFiniteLossError("loss became nan at epoch 1, step 3: the step was not taken"))[:14]
    'loss became na'
    """


class History:
    """What ``fit`` recorded: ``steps`` (one row per optimizer step) and ``evals`` (one per evaluation).

    A step row has ``step``, ``loss``, the metrics and ``lr``. An evaluation row has ``step``,
    ``epoch`` (epochs done, fractional mid-epoch), the training loss and metrics averaged over
    the steps since the previous row (weighted by batch size), ``val_loss`` and ``val_<metric>``
    when there is validation data, ``lr``, ``time`` (seconds since ``fit`` began) and the
    throughput ``<unit>_per_sec``. ``history["val_loss"]`` is that column of the evaluation
    rows; ``stop_reason`` says why the last ``fit`` ended (see the module docstring).
    ``shortened_eval`` is None, or, when a busy machine left too little of the time budget for
    the whole final evaluation, ``{"batches": read, "of": total, "slowdown": x, "why": ...}`` (``x``:
    how many times slower the steps ran than when the evaluation was timed, 1.0 if not much).

    >>> h = History(evals=[{"step": 10, "val_loss": 2.0}, {"step": 20, "val_loss": 1.5}])
    >>> h["val_loss"], h.best("val_loss")["step"]
    ([2.0, 1.5], 20)
    """

    def __init__(self, steps: Iterable[dict] = (), evals: Iterable[dict] = (), stop_reason: str | None = None,
                 stop_detail: str | None = None, shortened_eval: dict[str, Any] | None = None):
        self.steps: list[dict[str, float]] = [dict(r) for r in steps]
        self.evals: list[dict[str, float]] = [dict(r) for r in evals]
        self.stop_reason, self.stop_detail = stop_reason, stop_detail
        self.shortened_eval = dict(shortened_eval) if shortened_eval else None

    def __getitem__(self, key: str) -> list:
        values = [row[key] for row in self.evals if key in row]
        if not values:
            raise KeyError(f"no evaluation row has {key!r}; keys: {sorted(self.keys())}")
        return values

    def __contains__(self, key: object) -> bool:
        return any(key in row for row in self.evals)

    def keys(self) -> set[str]:
        """Every key of the evaluation rows."""
        return {k for row in self.evals for k in row}

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` when no evaluation row has ``key``."""
        return self[key] if key in self else default

    def best(self, key: str, mode: str = "min") -> dict[str, float]:
        """The evaluation row with the lowest (``mode="min"``) or highest ``key``."""
        rows = [row for row in self.evals if key in row]
        if not rows:
            raise KeyError(f"no evaluation row has {key!r}")
        pick = min if mode == "min" else max
        return pick(rows, key=lambda row: row[key])

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and dicts (stored in checkpoints and printed by ``--json``)."""
        return {"steps": [dict(r) for r in self.steps], "evals": [dict(r) for r in self.evals],
                "stop_reason": self.stop_reason, "stop_detail": self.stop_detail,
                "shortened_eval": self.shortened_eval}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The inverse of `to_dict`."""
        return cls(data.get("steps", ()), data.get("evals", ()), data.get("stop_reason"), data.get("stop_detail"),
                   data.get("shortened_eval"))

    def __repr__(self) -> str:
        return f"History({len(self.steps)} steps, {len(self.evals)} evaluations, stop_reason={self.stop_reason!r})"

    def plot(self, path: str | Path | None = None, title: str | None = None) -> Any:
        """Loss, validation loss, accuracy or perplexity and learning rate against steps.

        Args:
            path: also write the figure there (``.png`` or ``.svg``).
            title: the figure's title.

        Returns:
            A matplotlib Figure (shown inline in Jupyter); needs matplotlib
            (``pip install "tinytorch-core[plot]"``). See ``tinytorch.core.viz.plot_history``.
        """
        from .viz import plot_history

        return plot_history(self, path, title)

    def _repr_html_(self) -> str:
        """The evaluation rows as a table (Jupyter)."""
        from .viz import html_table

        keys = [k for k in ("step", "epoch") if k in self.keys()]
        keys += sorted(k for k in self.keys() if k not in ("step", "epoch", "time") and not k.endswith("_per_sec"))
        keys += sorted(k for k in self.keys() if k == "time" or k.endswith("_per_sec"))

        def cell(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
            return "" if value is None else str(value)

        caption = f"{len(self.steps)} steps, {len(self.evals)} evaluations" + (
            f"; stopped: {self.stop_reason}" + (f" ({self.stop_detail})" if self.stop_detail else "")
            if self.stop_reason else "")
        return html_table(keys, [[cell(row.get(k)) for k in keys] for row in self.evals], caption,
                          right=range(len(keys)))


def _batch_size(x: Any) -> int:
    if isinstance(x, (tuple, list)):
        return _batch_size(x[0])
    return int(x.shape[0]) if hasattr(x, "shape") and len(x.shape) else 1


def _check_count(name: str, value: Any, minimum: int = 1) -> None:
    if value is not None:  # None: no limit
        check_int("fit", name, value, minimum=minimum)


class _Meter:
    """Batch-size-weighted sums of the step logs since the last evaluation, and how busy the
    other processes kept the machine meanwhile (the throughput's contention check)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.rows = 0
        self.units = 0
        self.seconds = 0.0
        self.probe = ContentionProbe().__enter__()

    def contention(self) -> dict[str, Any]:
        """The probe's result from the meter's start until now."""
        self.probe.__exit__(None, None, None)
        return self.probe.result

    def add(self, logs: dict[str, float], rows: int, units: int, seconds: float) -> None:
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * rows
        self.rows += rows
        self.units += units
        self.seconds += seconds

    def means(self) -> dict[str, float]:
        return {k: v / self.rows for k, v in self.sums.items()} if self.rows else {}


class Distiller:
    """Knowledge distillation through the ``Trainer``: the loss of a student that imitates a teacher.

    Give it to the ``Trainer`` as ``loss_fn`` with the student as the model. In every training
    step it runs the teacher on the step's inputs, in eval mode and under ``no_grad`` (no graph,
    so no teacher parameter ever gets a gradient and the optimizer, which holds the student's
    parameters only, never changes it), and returns
    ``functional.distillation_loss(student_logits, teacher_logits, targets, temperature, alpha)``.
    Evaluation calls it without inputs and gets the plain cross-entropy on the labels, so a
    distilled student's ``val_loss`` compares directly with that of the same student trained
    alone. The training ``loss`` in the history is the distillation loss.

    Args:
        teacher: the trained model; its outputs must have the student's shape (same classes or
            vocabulary, same inputs).
        temperature: T > 0 of ``functional.distillation_loss`` (softens both distributions).
        alpha: weight of the soft (teacher) term in [0, 1]; 1 - alpha weighs the labels.
        ignore_index: labels equal to this are left out of the cross-entropy.

    >>> import numpy as np
    >>> from tinytorch.core import nn, optim, data
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> teacher = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    >>> student = nn.Linear(2, 2)
    >>> trainer = Trainer(student, optim.Adam(student.parameters(), lr=0.05),
    ...                   Distiller(teacher, temperature=2.0, alpha=0.5), progress=False)
    >>> history = trainer.fit(data.DataLoader(data.TensorDataset(x, y), batch_size=16), max_steps=4)
    >>> history.stop_reason, teacher.training, teacher[0].weight.grad is None
    ('steps', False, True)
    """

    takes_inputs = True

    def __init__(self, teacher: Module, temperature: float = 2.0, alpha: float = 0.5, ignore_index: int = -100):
        if not isinstance(teacher, Module):
            raise TypeError(f"Distiller: teacher must be a Module, got {type(teacher).__name__}")
        from .nn.loss import DistillationLoss

        self.loss = DistillationLoss(temperature, alpha, ignore_index)
        self.teacher = teacher.eval()

    @property
    def temperature(self) -> float:
        return self.loss.temperature

    @property
    def alpha(self) -> float:
        return self.loss.alpha

    def teacher_logits(self, inputs: Any) -> Tensor:
        """The teacher's outputs for ``inputs``: eval mode, no graph."""
        if self.teacher.training:  # someone called train() on it: dropout would add noise to the target
            self.teacher.eval()
        with no_grad():
            return self.teacher(inputs)

    def __call__(self, outputs: Tensor, targets: Any, inputs: Any = None) -> Tensor:
        if inputs is None:  # evaluation: the task's own loss
            return F.cross_entropy(outputs, targets, ignore_index=self.loss.ignore_index)
        return self.loss(outputs, self.teacher_logits(inputs), targets)

    def __repr__(self) -> str:
        return (f"Distiller(teacher={type(self.teacher).__name__}, temperature={self.temperature:g}, "
                f"alpha={self.alpha:g})")


class Trainer:
    """Train and evaluate a model, step by step.

    Args:
        model: a ``Module``; ``model(inputs)`` returns outputs for ``loss_fn(outputs, targets)``.
        optimizer: an optimizer over the model's parameters.
        loss_fn: maps (outputs, targets) to a scalar Tensor, e.g. ``nn.CrossEntropyLoss()``.
            A loss whose ``takes_inputs`` attribute is true (a ``Distiller``) is called as
            ``loss_fn(outputs, targets, inputs)`` in training steps; evaluation always calls
            ``loss_fn(outputs, targets)``.
        metrics: name -> fn(outputs, targets) -> float, averaged over batches weighted by size.
        callbacks: ``Callback`` instances (``EarlyStopping``, ``ModelCheckpoint``, ...).
        scheduler: an LR scheduler from ``tinytorch.core.optim.lr_scheduler``, stepped after
            every optimizer step (``scheduler_interval="step"``) or every epoch; its state is
            saved in checkpoints.
        scheduler_interval: ``"step"`` or ``"epoch"``.
        grad_clip: clip the global gradient norm to this value before each step.
        progress: ``"auto"`` (a bar on a terminal, an HTML display in Jupyter, a plain line every
            10 seconds in a log file or CI), True (the bar, or the HTML display in Jupyter),
            ``"bar"``, ``"notebook"``, ``"lines"``, a configured ``ProgressBar``
            (``ProgressBar("lines", every_steps=100)``) or False (no progress at all). Every
            display also prints one line per evaluation.
        unit: what the throughput counts (``samples``, ``images``, ``tokens``).
        count_units: fn(inputs) -> units in a batch (default: its rows; ``tokens``: ``x.size``).
        on_nonfinite: ``"raise"`` (NonFiniteLossError) or ``"stop"`` (end with
            ``stop_reason="non_finite"``). Either way the bad step is not taken and nothing is saved.

    Distributed: when a process group of several ranks is running (``tito run -n N``,
    ``tinytorch.core.distributed``), ``fit`` wraps the model in ``DistributedDataParallel``,
    gives each rank its share of every batch (``DataLoader.shard``: the loader's batch size is
    the global batch) and of the validation data, reduces losses and metrics over the ranks
    (so every rank records the same history and takes the same decisions), and lets rank 0
    alone show progress and write checkpoints. Every rank can ``load_checkpoint`` that file.

    >>> import numpy as np
    >>> from tinytorch.core import nn, optim, data
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.05), nn.CrossEntropyLoss(),
    ...                   metrics={"accuracy": accuracy}, progress=False)
    >>> loader = data.DataLoader(data.TensorDataset(x, y), batch_size=16)
    >>> history = trainer.fit(loader, epochs=3, val_data=loader)
    >>> len(history.steps), len(history.evals), history.stop_reason
    (12, 3, 'epochs')
    >>> sorted(history.evals[-1])
    ['accuracy', 'epoch', 'loss', 'lr', 'samples_per_sec', 'step', 'time', 'val_accuracy', 'val_loss']
    """

    def __init__(
        self,
        model: Module,
        optimizer: Any,
        loss_fn: Callable[[Any, Any], Tensor],
        metrics: dict[str, Metric] | None = None,
        callbacks: Iterable[Callback] = (),
        scheduler: Any = None,
        scheduler_interval: str = "step",
        grad_clip: float | None = None,
        progress: bool | str | ProgressBar = "auto",
        unit: str = "samples",
        count_units: Callable[[Any], int] | None = None,
        on_nonfinite: str = "raise",
    ):
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a Module, got {type(model).__name__}")
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"Trainer: on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"Trainer: scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if grad_clip is not None and not (isinstance(grad_clip, numbers.Real) and 0 < grad_clip < math.inf):
            raise ValueError(f"Trainer: grad_clip must be a positive finite number or None, got {grad_clip!r}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.metrics = dict(metrics or {})
        self.callbacks = list(callbacks)
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.grad_clip, self.unit = grad_clip, unit
        self.progress = ProgressBar.wanted(progress)
        self.count_units = count_units or _batch_size
        self.on_nonfinite = on_nonfinite
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps completed
        self.batch_in_epoch = 0  # batches of the current epoch completed
        self.history = History()
        self.planned_steps: int | None = None
        self.stop_reason: str | None = None
        self.stop_detail: str | None = None
        self._forward_model: Module = model  # the DistributedDataParallel wrapper in a process group
        self._rank_seeded = False  # the global generator already differs per rank (dropout)
        # the ContentionProbe result of the interval the last ``<unit>_per_sec`` figure covers
        self.throughput_contention: dict[str, Any] | None = None

    # -------------------------------------------------------------- control
    def request_stop(self, reason: str, detail: str | None = None) -> None:
        """End training after the current step, recording why (one of ``STOP_REASONS``)."""
        if reason not in STOP_REASONS:
            raise ValueError(f"request_stop: reason must be one of {STOP_REASONS}, got {reason!r}")
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail

    # -------------------------------------------------------------- one step
    def train_step(self, inputs: Any, targets: Any) -> tuple[float, Tensor]:
        """Forward, loss, backward, gradient check and clipping, optimizer step.

        Returns:
            (loss, outputs).

        Raises:
            NonFiniteLossError: the loss or the gradient norm is nan/inf; the optimizer step was
                not taken, so the weights are those of the previous step.
        """
        outputs = self._forward_model(inputs)
        if getattr(self.loss_fn, "takes_inputs", False):  # a Distiller runs its teacher on the inputs
            loss = self.loss_fn(outputs, targets, inputs)
        else:
            loss = self.loss_fn(outputs, targets)
        value = float(loss.item())
        if dist.is_distributed():  # the mean over the ranks' equal shares; every rank agrees on a nan
            # and on a termination signal that any rank received: all of them stop at this step
            value, stop = dist.all_reduce(np.array([value, float(dist.stop_requested())]), op="mean", agreed=True)
            value = float(value)
            if stop:
                dist.stop_now()
        where = f"epoch {self.epoch + 1}, step {self.global_step + 1}"
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss became {value} at {where}: the step was not taken")
        self.optimizer.zero_grad()
        loss.backward()
        from .optim import clip_grad_norm_

        params = self.model.parameters()
        norm = clip_grad_norm_(params, self.grad_clip if self.grad_clip is not None else math.inf)
        if not math.isfinite(norm):
            raise NonFiniteLossError(f"gradient norm became {norm} at {where} (loss {value:.4g}): "
                                     "the step was not taken")
        self.optimizer.step()
        return value, outputs

    # -------------------------------------------------------------- fit
    def fit(self, train_data: Iterable, *, epochs: int | None = None, max_steps: int | None = None,
            time_budget: float | None = None, val_data: Iterable | None = None, eval_every: int | None = None,
            eval_batches: int | None = None, val_name: str = "val") -> History:
        """Train until ``epochs`` epochs or ``max_steps`` steps are done in total, or ``time_budget`` runs out.

        Counts are totals of the run: after ``load_checkpoint`` at step 300, ``max_steps=1000``
        trains 700 more. With no limit at all, one epoch.

        Args:
            train_data: an iterable of (inputs, targets) batches; ``set_epoch(k)`` is called on
                it before epoch k (0-based) when it has that method (``DataLoader`` does).
            epochs: total epochs.
            max_steps: total optimizer steps.
            time_budget: seconds this call may take, final evaluation and checkpoint included.
            val_data: batches to evaluate on (None: evaluation rows hold training figures only).
            eval_every: steps between evaluations (None: at the end of every epoch).
            eval_batches: periodic evaluations use the first ``eval_batches`` batches of
                ``val_data`` only; the final evaluation always covers all of it.
            val_name: the prefix of the evaluation figures (``val_loss``); ``"test"`` when the
                data evaluated every epoch is the test set, so it is never called validation.

        Returns:
            The ``History`` (also ``self.history``); ``history.stop_reason`` says why it ended.
        """
        _check_count("epochs", epochs, 0)
        _check_count("max_steps", max_steps, 0)
        _check_count("eval_every", eval_every)
        _check_count("eval_batches", eval_batches)
        if time_budget is not None and (not is_real(time_budget) or not 0 < time_budget < math.inf):
            raise ValueError(f"fit: time_budget must be a positive finite number of seconds, got {time_budget!r}")
        if epochs is None and max_steps is None and time_budget is None:
            epochs = 1
        if dist.is_distributed():
            train_data, val_data = self._distribute(train_data, val_data)
        steps_per_epoch = len(train_data) if hasattr(train_data, "__len__") else None
        if steps_per_epoch == 0:
            raise ValueError("fit: train_data yields no batches (is the data set smaller than the batch size "
                             "with drop_last=True?)")
        self.stop_reason = self.stop_detail = None
        self._start = time.perf_counter()
        self._deadline = self._start + time_budget if time_budget is not None else None
        self._step_seconds: float | None = None
        self._recent_steps: deque[float] = deque(maxlen=RECENT_STEPS)  # seconds of the last steps
        self._eval_timed_at: float | None = None  # step seconds when _eval_batch_seconds was measured
        self._shortened_eval: dict[str, Any] | None = None
        self._eval_batch_seconds: float | None = None  # one validation batch, forward only
        self._after_eval_seconds = 0.0  # what the callbacks of an evaluation take (a checkpoint save)
        self._last_eval_was_partial = False
        self._eval_batches = eval_batches
        self._steps_this_fit = 0
        self._last_eval_step = -1
        self._meter = _Meter()
        self.planned_steps = self._planned(epochs, max_steps, steps_per_epoch)
        follows_budget = hasattr(self.scheduler, "set_total_steps") and getattr(self.scheduler, "total_steps", 0) is None
        if follows_budget and self.planned_steps is not None and time_budget is None:
            self.scheduler.set_total_steps(self.planned_steps)
            follows_budget = False
        self._follows_budget = follows_budget and time_budget is not None
        self._epochs_limit, self._max_steps = epochs, max_steps
        self._eval_every, self._steps_per_epoch = eval_every, steps_per_epoch

        callbacks = list(self.callbacks)
        if self.progress and dist.get_rank() == 0:
            given = isinstance(self.progress, ProgressBar)
            callbacks.append(self.progress if given else ProgressBar(self.progress, unit=self.unit))
        self._active, self._val_data, self._val_name = callbacks, val_data, val_name
        nonfinite = None
        for cb in callbacks:
            cb.on_train_begin(self)
        try:
            with dist.deferred_stop() if dist.is_distributed() else contextlib.nullcontext():
                if self._deadline is not None and val_data is not None:
                    self._time_one_eval_batch(val_data)
                self._run(train_data, val_data)
                if self.stop_reason is None:
                    reason = self._limit_reached()
                    detail = {"steps": f"reached max_steps={max_steps}", "epochs": f"completed {epochs} epoch(s)"}
                    self.request_stop(reason, detail[reason])
                if self._steps_this_fit and (self.global_step != self._last_eval_step
                                             or self._last_eval_was_partial):
                    self._evaluate_and_log(val_data, final=True)  # unless the last step had a full one
                if self._shortened_eval is not None:
                    self.stop_detail = f"{self.stop_detail}; {self._shortened_eval['why']}"
        except KeyboardInterrupt:
            self.stop_reason, self.stop_detail = "interrupted", f"interrupted at step {self.global_step}"
        except NonFiniteLossError as err:
            nonfinite = err
            self.stop_reason, self.stop_detail = "non_finite", str(err)
        self.history.stop_reason, self.history.stop_detail = self.stop_reason, self.stop_detail
        self.history.shortened_eval = self._shortened_eval
        for cb in callbacks:
            cb.on_train_end(self)
        if nonfinite is not None and self.on_nonfinite == "raise":
            raise nonfinite
        return self.history

    def _planned(self, epochs: int | None, max_steps: int | None, steps_per_epoch: int | None) -> int | None:
        limits = []
        if epochs is not None and steps_per_epoch is not None:
            limits.append(epochs * steps_per_epoch)
        if max_steps is not None:
            limits.append(max_steps)
        return min(limits) if limits else None

    def _limit_reached(self) -> str | None:
        if self.stop_reason is not None:
            return self.stop_reason
        if self._max_steps is not None and self.global_step >= self._max_steps:
            return "steps"
        if self._epochs_limit is not None and self.epoch >= self._epochs_limit:
            return "epochs"
        return None

    def _batches(self, train_data: Iterable) -> Iterator:
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(self.epoch)
        batches = iter(train_data)
        if self.batch_in_epoch:  # resuming mid-epoch: the data order is fixed by the epoch
            batches = itertools.islice(batches, self.batch_in_epoch, None)
        return batches

    def _run(self, train_data: Iterable, val_data: Iterable | None) -> None:
        while self._limit_reached() is None:
            epoch = self.epoch + 1
            if self.batch_in_epoch == 0:
                for cb in self._active:
                    cb.on_epoch_begin(self, epoch)
            self.model.train()
            took_any = False
            for inputs, targets in self._batches(train_data):
                if not self._budget_allows_step(val_data):
                    self.request_stop("budget", f"time budget of {self._deadline - self._start:.0f}s")
                    return
                self._step(inputs, targets)
                took_any = True
                # The last step gets the final, full evaluation only: none at a step that reaches
                # a limit, or after which the budget leaves no room for another step.
                if (self._eval_every is not None and self.global_step % self._eval_every == 0
                        and self._limit_reached() is None
                        and self._budget_allows_step(val_data, self._eval_cost(val_data, self._eval_batches))):
                    self._evaluate_and_log(val_data)
                at_epoch_end = self._steps_per_epoch is not None and self.batch_in_epoch >= self._steps_per_epoch
                if self._limit_reached() is not None and not at_epoch_end:
                    break
            else:
                if not took_any and self.batch_in_epoch == 0:
                    raise ValueError("fit: train_data yielded no batches")
                self.epoch, self.batch_in_epoch = epoch, 0
                if self.scheduler is not None and self.scheduler_interval == "epoch":
                    self.scheduler.step()
                if self._eval_every is None:
                    self._evaluate_and_log(val_data)
                logs = self.history.evals[-1] if self.history.evals else {}
                for cb in self._active:
                    cb.on_epoch_end(self, epoch, logs)
                continue
            return

    def _step(self, inputs: Any, targets: Any) -> None:
        start = time.perf_counter()
        loss, outputs = self.train_step(inputs, targets)
        self.global_step += 1
        self.batch_in_epoch += 1
        self._steps_this_fit += 1
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        logs = {"loss": loss, **{name: float(fn(outputs, targets)) for name, fn in self.metrics.items()}}
        rows, units = _batch_size(inputs), int(self.count_units(inputs))
        if dist.is_distributed():  # the ranks' shares are equal: means of means, totals of counts
            world = dist.get_world_size()
            metric_names = list(self.metrics)
            values = dist.all_reduce(np.array([logs[k] for k in metric_names] + [0.0]), op="mean")
            logs.update({k: float(v) for k, v in zip(metric_names, values)})
            rows, units = rows * world, units * world
        seconds = time.perf_counter() - start
        self._meter.add(logs, rows, units, seconds)
        self.history.steps.append({"step": self.global_step, **logs, "lr": lr})
        if self._steps_this_fit > 1:  # the first step pays one-off costs (allocation, caches)
            self._step_seconds = seconds if self._step_seconds is None else 0.8 * self._step_seconds + 0.2 * seconds
            self._recent_steps.append(seconds)
            if self._eval_timed_at is None:  # the validation batch timed before training: at this speed
                self._eval_timed_at = seconds
        if self._follows_budget and (self._steps_this_fit in (1, 10, 30) or self._steps_this_fit % 100 == 0):
            self._plan_budget(self._val_data, seconds)
        for cb in self._active:
            cb.on_step_end(self, self.global_step, {**logs, "lr": lr, "units": units})

    # -------------------------------------------------------------- time budget
    def _slowdown(self) -> float:
        """How many times slower the last steps ran than when the evaluation was timed (1.0 below SLOWDOWN)."""
        if not self._recent_steps or not self._eval_timed_at:
            return 1.0
        ratio = max(self._recent_steps) / self._eval_timed_at
        return ratio if ratio >= SLOWDOWN else 1.0

    def _step_estimate(self) -> float:
        """Seconds the next step is expected to take: the average, or on a busy machine the last steps' slowest."""
        step = self._step_seconds or 0.0
        return max(step, *self._recent_steps) if self._slowdown() > 1.0 else step

    def _eval_cost(self, val_data: Iterable | None, batches: int | None) -> float:
        """Expected seconds of an evaluation over ``batches`` batches (None: all) and its callbacks."""
        cost = self._after_eval_seconds
        if val_data is not None and self._eval_batch_seconds is not None:
            n = len(val_data) if hasattr(val_data, "__len__") else (batches or 1)
            cost += self._eval_batch_seconds * (n if batches is None else min(n, batches))
        return cost * 1.1 * self._slowdown()

    def _reserve(self, val_data: Iterable | None) -> float:
        """Seconds to keep for the final evaluation (over all of ``val_data``) and its checkpoint."""
        return self._eval_cost(val_data, None)

    def _budget_allows_step(self, val_data: Iterable | None, extra: float = 0.0) -> bool:
        """Whether one more step (after ``extra`` seconds of other work) and the final evaluation fit."""
        if self._deadline is None:
            return True
        fits = time.perf_counter() + extra + self._step_estimate() + self._reserve(val_data) <= self._deadline
        return dist.broadcast_object(fits) if dist.is_distributed() else fits  # rank 0 decides for all

    def _final_eval_batches(self, val_data: Iterable | None) -> int | None:
        """How many validation batches the final evaluation reads (None: all of them).

        All of them unless the budget no longer has room for that (steps ran slower than measured,
        so the check before the last step underestimated it): then as many as fit, at least one.
        """
        if (self._deadline is None or val_data is None or self._eval_batch_seconds is None
                or not hasattr(val_data, "__len__")):
            return None
        total = len(val_data)
        now = time.perf_counter()
        if now + self._eval_cost(val_data, None) <= self._deadline:
            limit = None
        else:
            margin = 1.1 * self._slowdown()
            room = self._deadline - now - self._after_eval_seconds * margin
            limit = max(1, int(room / (self._eval_batch_seconds * margin)))
            limit = None if limit >= total else limit
        if dist.is_distributed():  # rank 0 decides for all
            limit = dist.broadcast_object(limit)
        if limit is not None:
            slowdown = self._slowdown()
            cause = (f"steps ran {slowdown:.1f}x slower than when the evaluation was timed (a busy machine)"
                     if slowdown > 1.0 else "the last step took longer than estimated")
            self._shortened_eval = {
                "batches": limit, "of": total, "slowdown": round(slowdown, 2),
                "why": f"the final evaluation read {limit} of {total} validation batches to end within "
                       f"the time budget: {cause}"}
        return limit

    def _time_one_eval_batch(self, val_data: Iterable) -> None:
        """Estimate an evaluation's cost from a validation batch (before any evaluation has run).

        Two batches are run and the second is timed: the first pays one-off costs (memory
        allocation, cold caches) that would make the reserve many times too large.
        """
        with no_grad():
            was_training = self.model.training
            self.model.eval()
            try:
                for i, (inputs, targets) in enumerate(val_data):
                    start = time.perf_counter()
                    self.loss_fn(self.model(inputs), targets)
                    self._eval_batch_seconds = time.perf_counter() - start
                    if i == 1:
                        break
            finally:
                self.model.train(was_training)

    def _plan_budget(self, val_data: Iterable | None, last_step_seconds: float | None = None) -> None:
        """Tell an open-ended LR schedule how many steps the rest of the budget allows.

        First after step 1 (whose time includes one-off costs, so the estimate is low), then
        refined as the measured step and evaluation times settle.
        """
        per_step = self._step_seconds or last_step_seconds
        if per_step is None or self._deadline is None:
            return
        remaining = self._deadline - time.perf_counter() - self._reserve(val_data)
        periodic = self._eval_cost(val_data, self._eval_batches)
        every = self._eval_every or self._steps_per_epoch
        if every:
            per_step += periodic / every
        total = self.global_step + max(1, int(remaining / per_step))
        if self._max_steps is not None:
            total = min(total, self._max_steps)
        if dist.is_distributed():  # the same schedule (and so the same weights) on every rank
            total = dist.broadcast_object(total)
        self.planned_steps = total
        self.scheduler.set_total_steps(max(total, self.global_step + 1))

    # -------------------------------------------------------------- evaluation
    def _evaluate_and_log(self, val_data: Iterable | None, final: bool = False) -> None:
        start = time.perf_counter()
        for cb in self._active:
            cb.on_eval_begin(self, self.global_step)
        redo = final and self.history.evals and self.history.evals[-1]["step"] == self.global_step
        if redo:  # the last step had a partial evaluation: complete that row, keep its train figures
            row = self.history.evals.pop()
        else:
            row = {"step": self.global_step}
            spe = self._steps_per_epoch
            row["epoch"] = round(self.epoch + (self.batch_in_epoch / spe if spe else 0.0), 4)
            row.update(self._meter.means())
        if val_data is not None:
            limit = self._final_eval_batches(val_data) if final else self._eval_batches
            row.update({f"{self._val_name}_{k}": v for k, v in self.evaluate(val_data, max_batches=limit).items()})
            self._eval_batch_seconds = (time.perf_counter() - start) / max(1, self._evaluated_batches)
            if self._recent_steps:  # the speed of the machine this was measured at
                self._eval_timed_at = max(self._recent_steps)
            partial = limit is not None and not (
                hasattr(val_data, "__len__") and self._evaluated_batches >= len(val_data))
            if dist.is_distributed():  # shards differ in length by a batch at most: partial anywhere counts
                partial = bool(dist.all_reduce(np.array([float(partial)]), op="max")[0])
            self._last_eval_was_partial = partial
        for key in ("loss", f"{self._val_name}_loss"):
            if key in row and not math.isfinite(row[key]):
                # A diverged model: no row, no callbacks, so no checkpoint replaces the last good one.
                raise NonFiniteLossError(f"{key} became {row[key]} in the evaluation at step {self.global_step}")
        row["lr"] = row["lr"] if redo else float(self.optimizer.param_groups[0]["lr"])
        row["time"] = time.perf_counter() - self._start
        if self._meter.seconds > 0 and not redo:
            row[f"{self.unit}_per_sec"] = self._meter.units / self._meter.seconds
            busy = self._meter.contention()
            if dist.is_distributed():
                # the other ranks (started on this machine by `tito run`) are this job, not load
                ranks = float(dist.all_reduce(np.array([busy["own_cpu_s"]]), op="sum")[0]) - busy["own_cpu_s"]
                busy = counting_as_ours(busy, ranks)
            self.throughput_contention = busy
        self._meter = _Meter()
        self.history.evals.append(row)
        self._last_eval_step = self.global_step
        callbacks_start = time.perf_counter()
        for cb in self._active:
            cb.on_eval_end(self, self.global_step, row)
        self._after_eval_seconds = time.perf_counter() - callbacks_start
        if self._follows_budget and not final:
            self._plan_budget(val_data)

    def evaluate(self, data: Iterable, max_batches: int | None = None) -> dict[str, float]:
        """Mean loss and metrics over ``data`` (weighted by batch size), in eval mode, without a graph.

        Args:
            data: (inputs, targets) batches.
            max_batches: stop after this many batches (None: all).
        """
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        seen = 0
        self._evaluated_batches = 0
        try:
            with no_grad():
                for i, (inputs, targets) in enumerate(data):
                    if max_batches is not None and i >= max_batches:
                        break
                    self._evaluated_batches += 1
                    outputs = self.model(inputs)
                    n = _batch_size(inputs)
                    seen += n
                    values = {"loss": float(self.loss_fn(outputs, targets).item())}
                    values.update({k: float(fn(outputs, targets)) for k, fn in self.metrics.items()})
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v * n
        finally:
            self.model.train(was_training)
        if dist.is_distributed():  # weighted sums of every rank's share
            names = ["loss", *self.metrics]
            totals = dist.all_reduce(np.array([sums.get(k, 0.0) for k in names] + [float(seen)]))
            sums, seen = dict(zip(names, totals[:-1].tolist())), int(totals[-1])
        if seen == 0:
            raise ValueError("evaluate: the data yielded no batches")
        return {k: v / seen for k, v in sums.items()}

    # -------------------------------------------------------------- checkpoints
    def _schedulers(self) -> list[Any]:
        return [self.scheduler] if self.scheduler is not None else []

    def save_checkpoint(self, path: str | Path, extra_metadata: dict[str, Any] | None = None) -> None:
        """Atomically save model, optimizer, schedule, loop position, history and the global RNG.

        In a process group every rank must call it (``ModelCheckpoint`` does): rank 0 writes the
        file, with every rank's generator state, and the others wait until it is written.

        Raises:
            FloatingPointError: a weight is not finite; nothing is written, so the previous
                checkpoint at ``path`` stays as it was.
        """
        check_finite_weights(self.model)
        if dist.is_distributed():  # collective: every rank's generator, so dropout resumes exactly
            extra_metadata = {**(extra_metadata or {}), "rank_rng_states": dist.all_gather_object(get_rng_state())}
        if dist.get_rank() == 0:  # the weights are the same everywhere: rank 0 writes the one file
            position = {"epoch": self.epoch, "global_step": self.global_step, "batch_in_epoch": self.batch_in_epoch}
            tensors, metadata = training_payload(self.model, self.optimizer, self._schedulers(), position,
                                                 self.history.to_dict(), get_rng_state(), extra_metadata)
            io.save(tensors, path, metadata=metadata)
        dist.barrier()  # the file exists for every rank once any rank goes on

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Restore what ``save_checkpoint`` wrote, so ``fit`` continues exactly where it stopped.

        Returns:
            The checkpoint's metadata (with any domain entries).
        """
        model_state, optimizer_state, metadata = read_training_checkpoint(path)
        saved_type = metadata["optimizer"]["type"]
        if saved_type != type(self.optimizer).__name__:
            raise ValueError(f"{path} holds {saved_type} optimizer state, but the trainer uses "
                             f"{type(self.optimizer).__name__}")
        saved = metadata["schedulers"]
        if len(saved) != len(self._schedulers()):
            raise ValueError(f"{path} holds {len(saved)} LR scheduler state(s), but the trainer has "
                             f"{len(self._schedulers())}")
        self.model.load_state_dict(model_state)
        try:
            self.optimizer.load_state_dict(optimizer_state)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{path}: the optimizer state does not fit this optimizer: {e}") from e
        for scheduler, state in zip(self._schedulers(), saved):
            scheduler.load_state_dict(state)
        self.epoch, self.global_step = metadata["epoch"], metadata["global_step"]
        self.batch_in_epoch = int(metadata.get("batch_in_epoch", 0))
        self.history = History.from_dict(metadata["history"])
        set_rng_state(metadata["rng_state"])
        rank_states = metadata.get("rank_rng_states")
        if dist.is_distributed() and isinstance(rank_states, list) and len(rank_states) == dist.get_world_size():
            set_rng_state(rank_states[dist.get_rank()])
            self._rank_seeded = True
        return metadata

    # -------------------------------------------------------------- process groups
    def _distribute(self, train_data: Iterable, val_data: Iterable | None) -> tuple[Iterable, Iterable | None]:
        """Wrap the model for gradient averaging and give this rank its share of the data."""
        from .data import DistributedSampler
        from .nn.parallel import DistributedDataParallel

        world, rank = dist.get_world_size(), dist.get_rank()
        if not isinstance(self._forward_model, DistributedDataParallel):
            self._forward_model = DistributedDataParallel(self.model)  # rank 0's initial weights everywhere
        if not self._rank_seeded:  # one draw agreed by all ranks, then a stream per rank (dropout)
            seed = int(get_rng().integers(2**63))
            set_rng_state(np.random.default_rng([seed, rank]).bit_generator.state)
            self._rank_seeded = True
        if isinstance(getattr(train_data, "sampler", None), DistributedSampler):
            return train_data, val_data  # already this rank's share (its batch is per rank), as in PyTorch
        if not hasattr(train_data, "shard"):
            raise ValueError(f"fit: distributed training over {world} ranks needs train_data with a shard() "
                             f"method (a DataLoader), got {type(train_data).__name__}")
        train_data = train_data.shard(world, rank, training=True)
        if val_data is not None and hasattr(val_data, "shard"):
            val_data = val_data.shard(world, rank, training=False)
        return train_data, val_data


__all__ = [
    "Trainer", "Distiller", "History", "Callback", "EarlyStopping", "ModelCheckpoint", "ProgressBar", "NonFiniteLossError",
    "accuracy", "STOP_REASONS",
]
