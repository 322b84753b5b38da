"""`Trainer`: the epoch/batch loop every TinyTorch model trains with.

One loop for vision and language: forward, loss, backward, optional gradient clipping, optimizer
step, with callbacks around it (early stopping, checkpoints, LR schedules), a rich progress bar,
and a guard that stops on a non-finite loss *before* the optimizer step, so the weights and the
last checkpoint stay good.

See :class:`Trainer` for an example.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .autograd import no_grad
from .nn.module import Module
from .random import get_rng_state, set_rng_state
from .tensor import Tensor

Metric = Callable[[Tensor, Any], float]


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
    """The loss became nan or inf; training stopped before the optimizer step."""


class History(dict):
    """Per-epoch logs: ``history["loss"]``, ``history["val_loss"]``, ... (one value per epoch)."""

    def append(self, logs: dict[str, float]) -> None:
        """Append one epoch's logs (each key gets one more value)."""
        for key, value in logs.items():
            self.setdefault(key, []).append(value)

    @property
    def epochs(self) -> int:
        return len(self.get("epoch", []))

    def best(self, key: str, mode: str = "min") -> tuple[int, float]:
        """(epoch, value) of the best ``key``."""
        values = self[key]
        i = int(np.argmin(values) if mode == "min" else np.argmax(values))
        return self["epoch"][i], values[i]

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.items()}


# ---------------------------------------------------------------------------------- callbacks


class Callback:
    """Hooks into ``Trainer.fit``. Set ``trainer.stop_training = True`` to stop after an epoch."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets back the weights of its best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "min", restore_best_weights: bool = False):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.best_epoch: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, but the epoch logs have {sorted(logs)}"
            )
        value = logs[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = {k: v.copy() for k, v in trainer.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait > self.patience:
                trainer.stop_training = True
                trainer.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.wait} epochs "
                    f"(best {self.best:.4f} at epoch {self.best_epoch})"
                )

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save a full training checkpoint (model, optimizer, epoch, RNG) at the end of epochs.

    Writes are atomic (``tinytorch.core.io``), so a crash mid-save keeps the previous file.
    With ``monitor``, only epochs that improve it are saved (``save_best_only``).
    """

    def __init__(self, path: str | Path, monitor: str | None = None, mode: str = "min",
                 save_best_only: bool = False):
        self.path = Path(path)
        self.monitor, self.mode, self.save_best_only = monitor, mode, save_best_only
        self.best = math.inf if mode == "min" else -math.inf

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only and self.monitor:
            value = logs[self.monitor]
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        trainer.save_checkpoint(self.path)


class LRSchedulerCallback(Callback):
    """Step an LR scheduler after every batch (``interval="step"``) or every epoch."""

    def __init__(self, scheduler: Any, interval: str = "epoch"):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'step', got {interval!r}")
        self.scheduler, self.interval = scheduler, interval

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.interval == "epoch":
            self.scheduler.step()


# ---------------------------------------------------------------------------------- progress


class _Progress:
    """A rich progress bar for the running epoch, and one summary line per reported epoch.

    Long runs report every ``ceil(epochs / 10)``-th epoch (and the last), so a 60-epoch demo
    prints 10 lines, not 60 bars. Silent when disabled.
    """

    SKIP = ("epoch", "lr", "time")

    def __init__(self, enabled: bool, unit: str):
        self.enabled, self.unit = enabled, unit
        self.progress = None
        self.task = None

    def start(self, first_epoch: int, last_epoch: int) -> None:
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
        )
        self.progress.start()
        self.last_epoch = last_epoch
        self.every = max(1, math.ceil((last_epoch - first_epoch) / 10))

    def _format(self, logs: dict[str, float]) -> str:
        parts = [f"{k} {v:.4f}" for k, v in logs.items() if k not in self.SKIP and not k.endswith("_per_sec")]
        return "  ".join(parts)

    def epoch(self, epoch: int, batches: int | None) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(f"epoch {epoch}/{self.last_epoch}", total=batches, stats="")

    def update(self, logs: dict[str, float], rate: float) -> None:
        if self.progress is not None and self.task is not None:
            stats = self._format(logs) + f"  {rate:,.0f} {self.unit}/s"
            self.progress.update(self.task, advance=1, stats=stats)

    def finish_epoch(self, logs: dict[str, float]) -> None:
        if self.progress is None or self.task is None:
            return
        self.progress.remove_task(self.task)
        self.task = None
        epoch = int(logs["epoch"])
        if epoch % self.every == 0 or epoch == self.last_epoch:
            rate = logs.get(f"{self.unit}_per_sec", float("nan"))
            self.progress.console.print(
                f"epoch {epoch}/{self.last_epoch}  {self._format(logs)}  "
                f"{rate:,.0f} {self.unit}/s  {logs['time']:.1f}s"
            )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


# ---------------------------------------------------------------------------------- trainer


def _batch_size(x: Any) -> int:
    if isinstance(x, (tuple, list)):
        return _batch_size(x[0])
    return int(x.shape[0]) if hasattr(x, "shape") and len(x.shape) else 1


class Trainer:
    """Train and evaluate a model.

    Args:
        model: a ``Module``; ``model(inputs)`` returns outputs for ``loss_fn(outputs, targets)``.
        optimizer: an optimizer over the model's parameters.
        loss_fn: maps (outputs, targets) to a scalar Tensor, e.g. ``nn.CrossEntropyLoss()``.
        metrics: name -> fn(outputs, targets) -> float, averaged over batches (weighted by size).
        callbacks: ``Callback`` instances.
        grad_clip: clip the global gradient norm to this value before each step.
        progress: show a rich progress bar.
        unit: what one batch row is called in the throughput (``samples``, ``images``, ``tokens``).
        on_nonfinite: ``"raise"`` (NonFiniteLossError) or ``"stop"`` (end training, keep history).

    >>> import numpy as np
    >>> from tinytorch.core import nn, optim, data
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.05), nn.CrossEntropyLoss(),
    ...                   metrics={"accuracy": accuracy}, progress=False)
    >>> history = trainer.fit(data.DataLoader(data.TensorDataset(x, y), batch_size=16), epochs=3)
    >>> sorted(k for k in history if not k.endswith("_per_sec"))
    ['accuracy', 'epoch', 'loss', 'lr', 'time']
    """

    def __init__(
        self,
        model: Module,
        optimizer: Any,
        loss_fn: Callable[[Any, Any], Tensor],
        metrics: dict[str, Metric] | None = None,
        callbacks: Iterable[Callback] = (),
        grad_clip: float | None = None,
        progress: bool = True,
        unit: str = "samples",
        on_nonfinite: str = "raise",
    ):
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a Module, got {type(model).__name__}")
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"Trainer: on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.metrics = dict(metrics or {})
        self.callbacks = list(callbacks)
        self.grad_clip, self.progress, self.unit = grad_clip, progress, unit
        self.on_nonfinite = on_nonfinite
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.history = History()
        self.stop_training = False
        self.stop_reason: str | None = None

    # -------------------------------------------------------------- one step
    def train_step(self, inputs: Any, targets: Any) -> tuple[float, Tensor]:
        """Forward, loss, backward, clip, step. Returns (loss, outputs)."""
        outputs = self.model(inputs)
        loss = self.loss_fn(outputs, targets)
        value = float(loss.item())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss became {value} at epoch {self.epoch + 1}, step {self.global_step + 1}: "
                "training stopped before the optimizer step, so the weights and the last "
                "checkpoint are unchanged (try a lower learning rate or gradient clipping)"
            )
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            from .optim import clip_grad_norm_

            clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return value, outputs

    # -------------------------------------------------------------- loops
    def fit(self, train_data: Iterable, epochs: int = 1, val_data: Iterable | None = None,
            max_steps: int | None = None) -> History:
        """Train for ``epochs`` more epochs (or until ``max_steps`` optimizer steps in total).

        Returns the ``History`` (per epoch: loss, metrics, val_loss, val_metrics, lr, time).
        """
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
        self.stop_training, self.stop_reason = False, None
        bar = _Progress(self.progress, self.unit)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        target_epoch = self.epoch + epochs
        bar.start(self.epoch, target_epoch)
        try:
            while self.epoch < target_epoch and not self.stop_training:
                epoch = self.epoch + 1
                if hasattr(train_data, "set_epoch"):
                    train_data.set_epoch(self.epoch)
                for cb in self.callbacks:
                    cb.on_epoch_begin(self, epoch)
                self.model.train()
                bar.epoch(epoch, len(train_data) if hasattr(train_data, "__len__") else None)
                sums: dict[str, float] = {}
                seen = 0
                start = time.perf_counter()
                for inputs, targets in train_data:
                    try:
                        loss, outputs = self.train_step(inputs, targets)
                    except NonFiniteLossError as err:
                        if self.on_nonfinite == "raise":
                            raise
                        self.stop_training, self.stop_reason = True, str(err)
                        break
                    n = _batch_size(inputs)
                    seen += n
                    self.global_step += 1
                    batch_logs = {"loss": loss}
                    for name, fn in self.metrics.items():
                        batch_logs[name] = fn(outputs, targets)
                    for k, v in batch_logs.items():
                        sums[k] = sums.get(k, 0.0) + v * n
                    for cb in self.callbacks:
                        cb.on_batch_end(self, self.global_step, batch_logs)
                    bar.update({k: v / seen for k, v in sums.items()}, seen / (time.perf_counter() - start))
                    if max_steps is not None and self.global_step >= max_steps:
                        self.stop_training = True
                        self.stop_reason = f"reached max_steps={max_steps}"
                        break
                if seen == 0:
                    break
                elapsed = time.perf_counter() - start
                logs = {"epoch": epoch, **{k: v / seen for k, v in sums.items()}}
                if val_data is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val_data).items()})
                logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
                logs["time"] = elapsed
                logs[f"{self.unit}_per_sec"] = seen / elapsed if elapsed > 0 else float("nan")
                self.epoch = epoch
                self.history.append(logs)
                bar.finish_epoch(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
        finally:
            bar.stop()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def evaluate(self, data: Iterable) -> dict[str, float]:
        """Mean loss and metrics over ``data``, in eval mode, without a graph."""
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        seen = 0
        try:
            with no_grad():
                for inputs, targets in data:
                    outputs = self.model(inputs)
                    n = _batch_size(inputs)
                    seen += n
                    values = {"loss": float(self.loss_fn(outputs, targets).item())}
                    values.update({k: fn(outputs, targets) for k, fn in self.metrics.items()})
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v * n
        finally:
            self.model.train(was_training)
        if seen == 0:
            raise ValueError("evaluate: the data yielded no batches")
        return {k: v / seen for k, v in sums.items()}

    # -------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str | Path, extra_metadata: dict[str, Any] | None = None) -> None:
        """Atomically save model, optimizer state, epoch, step, history and the global RNG."""
        tensors: dict[str, np.ndarray] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        opt_scalars: dict[str, dict[str, Any]] = {}
        for index, entries in opt_state["state"].items():
            for name, value in entries.items():
                if isinstance(value, np.ndarray):
                    tensors[f"optimizer.state.{index}.{name}"] = value
                else:
                    opt_scalars.setdefault(str(index), {})[name] = value
        metadata = {
            "kind": "tinytorch.training_checkpoint",
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history.to_dict(),
            "optimizer": {"type": type(self.optimizer).__name__,
                          "param_groups": opt_state["param_groups"], "scalars": opt_scalars},
            "rng_state": get_rng_state(),
            "schedulers": [cb.scheduler.state_dict() for cb in self._scheduler_callbacks()],
            **(extra_metadata or {}),
        }
        io.save(tensors, path, metadata=json.loads(json.dumps(metadata, default=_json_default)))

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Restore what ``save_checkpoint`` wrote, so ``fit`` continues exactly where it stopped."""
        tensors, metadata = io.load(path)
        if metadata.get("kind") != "tinytorch.training_checkpoint":
            raise ValueError(f"{path} is not a TinyTorch training checkpoint (no 'kind' metadata)")
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        opt = metadata["optimizer"]
        if opt["type"] != type(self.optimizer).__name__:
            raise ValueError(
                f"{path} holds {opt['type']} optimizer state, but the trainer uses "
                f"{type(self.optimizer).__name__}"
            )
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer.state."):
                index, name = key[len("optimizer.state."):].split(".", 1)
                state.setdefault(int(index), {})[name] = value
        for index, scalars in opt["scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
        self.optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
        self.epoch, self.global_step = int(metadata["epoch"]), int(metadata["global_step"])
        self.history = History(metadata.get("history", {}))
        set_rng_state(metadata["rng_state"])
        saved = metadata.get("schedulers", [])
        callbacks = self._scheduler_callbacks()
        if len(saved) != len(callbacks):
            raise ValueError(
                f"{path} holds {len(saved)} LR scheduler state(s), but the trainer has "
                f"{len(callbacks)} LRSchedulerCallback(s)"
            )
        for cb, state in zip(callbacks, saved):
            cb.scheduler.load_state_dict(state)
        return metadata

    def _scheduler_callbacks(self) -> list[LRSchedulerCallback]:
        return [cb for cb in self.callbacks if isinstance(cb, LRSchedulerCallback)]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")
