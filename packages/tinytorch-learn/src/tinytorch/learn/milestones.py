"""Milestones: a real model trained on the student's passed implementations, beside the
library's in the same run (same seed, same data order), so the difference is theirs alone.

``shakespeare`` trains TinyGPT on Tiny Shakespeare twice: once on the library, once with every
exercise that passes its checks now substituted. It reports both validation losses, overlays
the two training-loss curves in one PNG, and times each substituted target in both runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import check_module
from .curriculum import Exercise, Target, load_curriculum
from .substitute import StudentFileError, load_student_module, substituted

#: A student's run is "on par" when its final validation loss is within this of the reference's.
TOLERANCE = 0.02


@dataclass
class Run:
    """One training run of a milestone: its per-step losses, final validation loss and the time
    spent inside each substituted target."""
    label: str
    losses: list[float]
    val_loss: float
    seconds: dict[str, float] = field(default_factory=dict)  # target -> time spent in it
    calls: dict[str, int] = field(default_factory=dict)


def passed_implementations(directory: str | Path) -> list[tuple[Exercise, Callable]]:
    """Every exercise of the workspace that passes its checks now, with the student's function."""
    found: list[tuple[Exercise, Callable]] = []
    for module in load_curriculum().modules:
        path = Path(directory) / module.filename
        if not path.exists():
            continue
        try:
            results = check_module(module, directory)
            student = load_student_module(path, module)
        except StudentFileError:
            continue
        for r in results:
            if r.passed:
                found.append((r.exercise, getattr(student, r.exercise.name)))
    return found


def _timed(fn: Callable, key: str, run: Run) -> Callable:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            run.seconds[key] = run.seconds.get(key, 0.0) + time.perf_counter() - start
            run.calls[key] = run.calls.get(key, 0) + 1
    return timed


def _train(label: str, implementations: dict[Target, tuple[str, Callable]], settings: dict[str, Any],
           text: str) -> Run:
    from tinytorch.core import manual_seed
    from tinytorch.language import CharTokenizer, LanguageModelTrainer, TinyGPT

    run = Run(label, [], float("nan"))
    manual_seed(settings["seed"])
    tokenizer = CharTokenizer().fit(text)
    model = TinyGPT(tokenizer.vocab_size, d_model=settings["d_model"], num_heads=settings["num_heads"],
                    num_layers=settings["num_layers"], max_seq_len=settings["seq_len"], dropout=0.0)
    trainer = LanguageModelTrainer(model, tokenizer, progress=False)
    timed = {t: _timed(fn, key, run) for t, (key, fn) in implementations.items()}
    with substituted(timed):
        history = trainer.fit(text, max_steps=settings["steps"], batch_size=settings["batch_size"],
                              seq_len=settings["seq_len"], lr=settings["lr"], eval_every=settings["steps"],
                              eval_batches=settings["eval_batches"], seed=settings["seed"])
    run.losses = [row["loss"] for row in history.steps]
    run.val_loss = float(history["val_loss"][-1])
    return run


def shakespeare(directory: str | Path, steps: int = 200, chars: int = 200_000, d_model: int = 64,
                num_heads: int = 4, num_layers: int = 2, seq_len: int = 64, batch_size: int = 16,
                lr: float = 3e-3, eval_batches: int | None = 20, seed: int = 0,
                plot: str | Path | None = None) -> dict[str, Any]:
    """Train TinyGPT on the first ``chars`` characters of Tiny Shakespeare on the library, then
    on the student's passed implementations; return both runs and the comparison.

    Raises ValueError when the workspace passes no exercise (there is nothing of theirs to run).
    """
    from tinytorch.language import load_shakespeare

    for name, value, low in (("steps", steps, 1), ("chars", chars, 2 * seq_len + 2), ("seq_len", seq_len, 1),
                             ("batch_size", batch_size, 1), ("d_model", d_model, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not Path(directory).is_dir():
        raise ValueError(f"--dir: {directory} is not a directory")
    passed = passed_implementations(directory)
    if not passed:
        raise ValueError(f"{directory}: no exercise passes its checks yet; run `tito learn check MODULE` first")
    text = load_shakespeare()[:chars]
    settings = dict(steps=steps, d_model=d_model, num_heads=num_heads, num_layers=num_layers, seq_len=seq_len,
                    batch_size=batch_size, lr=lr, eval_batches=eval_batches, seed=seed)
    reference = {ex.resolve(): (ex.qualified, ex.resolve().current()) for ex, _ in passed}
    student = {ex.resolve(): (ex.qualified, fn) for ex, fn in passed}
    runs = [_train("reference", reference, settings, text), _train("yours", student, settings, text)]
    ref, yours = runs
    result = {
        "settings": settings, "exercises": sorted(ex.qualified for ex, _ in passed),
        "reference_val_loss": ref.val_loss, "your_val_loss": yours.val_loss,
        "difference": yours.val_loss - ref.val_loss,
        "within_tolerance": abs(yours.val_loss - ref.val_loss) <= TOLERANCE, "tolerance": TOLERANCE,
        "losses": {r.label: r.losses for r in runs},
        "kernels": [{"exercise": key, "calls": yours.calls.get(key, 0),
                     "reference_seconds": ref.seconds.get(key, 0.0), "your_seconds": yours.seconds.get(key, 0.0)}
                    for key in sorted(ex.qualified for ex, _ in passed)],
    }
    if plot is not None:
        _plot(runs, Path(plot))
        result["plot"] = str(plot)
    return result


def _plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from tinytorch.core.io import write_atomic

    fig, ax = plt.subplots(figsize=(7, 4))
    for r, style in zip(runs, ("-", "--")):
        ax.plot(range(1, len(r.losses) + 1), r.losses, style, label=f"{r.label} (validation {r.val_loss:.4f})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title("TinyGPT on Tiny Shakespeare: your implementations vs the library's")
    ax.legend()
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
