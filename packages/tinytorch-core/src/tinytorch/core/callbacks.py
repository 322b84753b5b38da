"""Callbacks of the `Trainer`: early stopping, checkpoints and the progress display.

A callback overrides any of the hooks below; the Trainer calls them in this order::

    on_train_begin
      on_epoch_begin(epoch)              epoch = the 1-based epoch starting
        on_step_end(step, logs)          after every optimizer step; logs: loss, metrics, lr
        on_eval_begin(step)
        on_eval_end(step, logs)          after every evaluation; logs: one History.evals row
      on_epoch_end(epoch, logs)          logs: the last evaluation row, if any
    on_train_end

Set ``trainer.request_stop("early_stop", "why")`` to end training after the current step.

>>> class CountSteps(Callback):
...     def __init__(self):
...         self.steps = 0
...     def on_step_end(self, trainer, step, logs):
...         self.steps += 1
>>> CountSteps().steps
0
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import check_int
from .contention import contention_note

if TYPE_CHECKING:
    from .training import Trainer


class Callback:
    """Hooks into ``Trainer.fit``; every hook does nothing unless overridden (see the module).

    >>> class PrintEvals(Callback):
    ...     def on_eval_end(self, trainer, step, logs):
    ...         print(step, round(logs["loss"], 2))
    >>> PrintEvals().on_eval_end(None, 10, {"loss": 0.5})
    10 0.5
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once when ``fit`` starts (``trainer.planned_steps`` is known by then)."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Called before the first step of ``epoch`` (1-based)."""

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        """Called after optimizer step ``step`` with its ``loss``, metrics, ``lr`` and ``units``."""

    def on_eval_begin(self, trainer: Trainer, step: int) -> None:
        """Called before an evaluation at ``step``."""

    def on_eval_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        """Called after an evaluation with its row of ``History.evals`` (add keys to extend it)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """Called after the last step of ``epoch`` with the latest evaluation row."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once when ``fit`` ends, whatever the ``stop_reason``."""


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` evaluations.

    Args:
        monitor: a key of the evaluation rows, e.g. ``val_loss`` or ``val_accuracy``.
        patience: evaluations without improvement that are tolerated.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"`` or ``"max"``.
        restore_best_weights: give the model back the weights of its best evaluation at the end.

    >>> EarlyStopping(monitor="val_accuracy", mode="max", patience=2).best
    -inf
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "min", restore_best_weights: bool = False):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        patience = check_int("EarlyStopping", "patience", patience, minimum=0)
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.best_step: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None

    def on_eval_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, but the evaluation logs have {sorted(logs)}")
        value = logs[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_step, self.wait = value, step, 0
            if self.restore_best_weights:
                self.best_state = {k: v.copy() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            trainer.request_stop("early_stop", f"{self.monitor} did not improve for {self.wait} evaluations "
                                               f"(best {self.best:.4f} at step {self.best_step})")

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save a full training checkpoint (model, optimizer, schedule, RNG, position) after evaluations.

    Writes are atomic (``tinytorch.core.io``), so a crash mid-save keeps the previous file, and
    nothing is saved on the way out of a run that stopped on a non-finite value, so the last
    good checkpoint stays the last good one.

    Args:
        path: the file (overwritten atomically each time).
        monitor: with ``save_best_only``, the evaluation key that must improve.
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        save_best_only: save only evaluations that improve ``monitor``.
        metadata: a dict, or a function returning one, of domain entries stored in the file.

    >>> ModelCheckpoint("run.safetensors").path.name
    'run.safetensors'
    """

    def __init__(self, path: str | os.PathLike, monitor: str | None = None, mode: str = "min",
                 save_best_only: bool = False,
                 metadata: dict[str, Any] | Callable[[], dict[str, Any]] | None = None):
        self.path = Path(path)
        self.monitor, self.mode, self.save_best_only = monitor, mode, save_best_only
        self.metadata = metadata
        self.best = math.inf if mode == "min" else -math.inf
        self.saves = 0

    def extra_metadata(self) -> dict[str, Any]:
        """The domain metadata to store (the ``metadata`` argument, called if it is a function)."""
        return dict((self.metadata() if callable(self.metadata) else self.metadata) or {})

    def on_eval_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.save_best_only and self.monitor:
            value = logs[self.monitor]
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        trainer.save_checkpoint(self.path, extra_metadata=self.extra_metadata())
        self.saves += 1


# ---------------------------------------------------------------------------------- progress


def _format_logs(logs: dict[str, float], keys: tuple[str, ...]) -> str:
    parts = []
    for key in keys:
        value = logs.get(key)
        if value is None:
            continue
        parts.append(f"{key} {value:.2%}" if "accuracy" in key else f"{key} {value:.4f}")
    return "  ".join(parts)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython already imported and running a kernel app).

    >>> in_notebook()  # a plain interpreter or pytest
    False
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar(Callback):
    """The one progress display, in the form that suits where the learner is.

    ``mode``:

    - ``"bar"`` (a terminal): a live bar with the step count against the planned total (for a
      time budget, the steps the Trainer expects to fit), elapsed time, ETA, the running loss and
      the throughput; it says "evaluating" while the Trainer evaluates.
    - ``"notebook"`` (Jupyter): the same figures as an HTML display updated in place through
      ``IPython.display`` (no widget package needed).
    - ``"lines"`` (a log file, CI, ``nohup``): a plain line every ``every_steps`` steps, or, when
      that is None, every ``every_seconds`` seconds (as nanoGPT's ``iter 100: loss ...`` lines):
      ``step 100/5000  loss 2.3456  1,234 tokens/s  eta 4:10  12s``, with the mean loss of the
      steps since the previous line.

    In every mode one line is printed after each evaluation (step, epoch, train and validation
    figures), so the log of a run survives the display.

    Args:
        mode: ``"bar"``, ``"notebook"`` or ``"lines"``.
        unit: what the throughput counts (``samples``, ``images``, ``tokens``).
        echo: where the lines go (default ``print``; the bar's console in ``"bar"`` mode).
        every_steps: in ``"lines"`` mode, a line every this many steps.
        every_seconds: in ``"lines"`` mode without ``every_steps``, a line at most this often
            (default ``LINE_SECONDS``, 10).

    Pass an instance as the Trainer's ``progress`` to choose these yourself:

    >>> lines = ProgressBar("lines", unit="tokens", every_steps=100)
    >>> lines.mode, lines.every_steps
    ('lines', 100)
    """

    LINE_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "val_perplexity", "test_loss", "test_accuracy")
    MODES = ("bar", "notebook", "lines")
    NOTEBOOK_REFRESH = 0.25  # seconds between two updates of the HTML display
    LINE_SECONDS = 10.0  # the default ``every_seconds``

    def __init__(self, mode: str = "bar", unit: str = "samples", echo: Callable[[str], Any] | None = None,
                 every_steps: int | None = None, every_seconds: float | None = None):
        if mode not in self.MODES:
            raise ValueError(f"ProgressBar: mode must be one of {self.MODES}, got {mode!r}")
        if mode == "notebook" and "IPython" not in sys.modules and importlib.util.find_spec("IPython") is None:
            raise ValueError("ProgressBar: mode 'notebook' needs IPython (run it in Jupyter), or use 'lines'")
        if every_steps is not None:
            check_int("ProgressBar", "every_steps", every_steps, minimum=1)
        every_seconds = self.LINE_SECONDS if every_seconds is None else every_seconds
        if not (isinstance(every_seconds, (int, float)) and 0 <= every_seconds < math.inf):
            raise ValueError(f"ProgressBar: every_seconds must be a finite number >= 0, got {every_seconds!r}")
        self.mode, self.unit, self.echo = mode, unit, echo or print
        self.every_steps, self.every_seconds = every_steps, float(every_seconds)
        self.progress = None  # the rich bar
        self.task = None
        self.display = None  # the notebook's display handle
        self.loss: float | None = None
        self.val = ""
        self._start = 0.0
        self._start_step = 0
        self._units = 0
        self._shown = 0.0  # when the notebook display was last updated
        self._line_at = (0.0, 0, 0)  # time, step and units of the last line
        self._losses: list[float] = []  # the step losses since the last line

    @staticmethod
    def wanted(progress: bool | str | ProgressBar) -> str | ProgressBar | bool:
        """Resolve the Trainer's ``progress`` argument to a mode, a ``ProgressBar`` or False.

        ``"auto"``: a bar on a terminal, the HTML display in Jupyter, plain lines otherwise (a log
        file, a pipe, CI). True: a bar, or the HTML display in Jupyter. False: no progress at all.

        >>> ProgressBar.wanted(False), ProgressBar.wanted("lines"), ProgressBar.wanted("auto")
        (False, 'lines', 'lines')
        """
        if isinstance(progress, ProgressBar):
            return progress
        if progress not in ("auto", True, False, *ProgressBar.MODES):
            raise ValueError(f"progress must be True, False, 'auto', 'bar', 'notebook', 'lines' or a "
                             f"ProgressBar, got {progress!r}")
        if progress is False:
            return False
        if progress in ("auto", True) and in_notebook():
            return "notebook"
        if progress == "auto":
            return "bar" if _is_terminal(sys.stdout) else "lines"
        return "bar" if progress is True else progress

    def on_train_begin(self, trainer: Trainer) -> None:
        self._start, self._start_step, self._units = time.perf_counter(), trainer.global_step, 0
        self._line_at, self._losses, self.loss, self.val = (self._start, trainer.global_step, 0), [], None, ""
        if self.mode == "notebook":
            from IPython.display import HTML, display

            self.display = display(HTML(self._html(trainer, "train")), display_id=True)
        if self.mode != "bar":
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[stats]}"))
        self.progress.start()
        self.task = self.progress.add_task("train", total=trainer.planned_steps, completed=trainer.global_step,
                                           stats="")
        self.echo = self.progress.console.print

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self._start
        return self._units / elapsed if elapsed > 0 else float("nan")

    def _eta(self, trainer: Trainer) -> float:
        """Seconds left at this run's mean step time (nan without a planned total)."""
        done, total = trainer.global_step - self._start_step, trainer.planned_steps
        if not total or done <= 0:
            return float("nan")
        return (time.perf_counter() - self._start) / done * max(0, total - trainer.global_step)

    def _html(self, trainer: Trainer, what: str) -> str:
        import html

        total = trainer.planned_steps
        bar = (f'<progress value="{trainer.global_step}" max="{total}" style="width:16em"></progress>' if total
               else '<progress style="width:16em"></progress>')
        count = f"{trainer.global_step}/{total}" if total else f"{trainer.global_step}"
        stats = [f"{_duration(time.perf_counter() - self._start)} elapsed", f"eta {_duration(self._eta(trainer))}"]
        if self.loss is not None:
            stats.append(f"loss {self.loss:.4f}{self.val}")
        if self._units:
            stats.append(f"{self._rate():,.0f} {self.unit}/s")
        return (f"<div style='font-family:monospace'>{bar} <b>{html.escape(what)}</b> {count} &middot; "
                + " &middot; ".join(html.escape(s) for s in stats) + "</div>")

    def _step_line(self, trainer: Trainer, step: int) -> str:
        then, then_step, then_units = self._line_at
        now = time.perf_counter()
        total = f"/{trainer.planned_steps}" if trainer.planned_steps else ""
        mean = sum(self._losses) / len(self._losses)
        rate = (self._units - then_units) / (now - then) if now > then else float("nan")
        eta = self._eta(trainer)
        return (f"step {step}{total}  loss {mean:.4f}  {rate:,.0f} {self.unit}/s"
                + (f"  eta {_duration(eta)}" if math.isfinite(eta) else "") + f"  {now - self._start:.0f}s")

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        self._units += int(logs.get("units", 0))
        loss = logs["loss"]
        self.loss = loss if self.loss is None else 0.9 * self.loss + 0.1 * loss
        if self.progress is not None:
            stats = f"loss {self.loss:.4f}{self.val}  {self._rate():,.0f} {self.unit}/s"
            self.progress.update(self.task, completed=step, total=trainer.planned_steps, stats=stats,
                                 description="train")
        elif self.display is not None:
            now = time.perf_counter()
            if now - self._shown >= self.NOTEBOOK_REFRESH or step == trainer.planned_steps:
                self._shown = now
                self.display.update(self._html_object(trainer, "train"))
        elif self.mode == "lines":
            self._losses.append(loss)
            due = (step % self.every_steps == 0 if self.every_steps is not None
                   else time.perf_counter() - self._line_at[0] >= self.every_seconds)
            if due:
                self.echo(self._step_line(trainer, step))
                self._line_at, self._losses = (time.perf_counter(), step, self._units), []

    def _html_object(self, trainer: Trainer, what: str) -> Any:
        from IPython.display import HTML

        return HTML(self._html(trainer, what))

    def on_eval_begin(self, trainer: Trainer, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description="evaluating")
        elif self.display is not None:
            self.display.update(self._html_object(trainer, "evaluating"))

    def on_eval_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        for prefix in ("val", "test"):
            if f"{prefix}_loss" in logs:
                self.val = f"  {prefix} {logs[f'{prefix}_loss']:.4f}"
        total = f"/{trainer.planned_steps}" if trainer.planned_steps else ""
        rate = logs.get(f"{self.unit}_per_sec")
        busy = contention_note(getattr(trainer, "throughput_contention", None), "training") if rate else None
        line = (f"step {step}{total}  epoch {logs.get('epoch', 0):.2f}  {_format_logs(logs, self.LINE_KEYS)}"
                + (f"  {rate:,.0f} {self.unit}/s" if rate else "") + (f" ({busy})" if busy else "")
                + f"  {logs.get('time', 0):.0f}s")
        self.echo(line)
        if self.mode == "lines" and self.every_steps is None:
            # the evaluation line just said it all: the next step line comes a full interval later
            self._line_at, self._losses = (time.perf_counter(), step, self._units), []
        if self.progress is not None:
            self.progress.update(self.task, description="train")
        elif self.display is not None:
            self.display.update(self._html_object(trainer, "train"))

    def on_train_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.display is not None:
            self.display.update(self._html_object(trainer, f"done ({trainer.stop_reason or 'stopped'})"))
            self.display = None


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "ProgressBar", "in_notebook"]
