"""Milestones: a real model trained on the student's passed implementations, beside the
library's in the same run (same seed, same data order), so the difference is theirs alone.

``shakespeare`` trains TinyGPT on Tiny Shakespeare twice: once on the library, once with every
exercise that passes its checks now substituted. It reports both validation losses, overlays
the two training-loss curves in one PNG, and times each substituted target in both runs.
``fashion_mnist`` does the same with a small CNN on Fashion-MNIST (test loss and accuracy).
``roofline`` times each passed kernel (an exercise with a ``kernel`` in the curriculum) alone,
the library's and the student's calls alternating, and places both on this machine's roofline
with a sentence per kernel that says how much slower or faster the student's is and why.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import check_module, evaluate, make_inputs, namespace
from .curriculum import Exercise, Target, load_curriculum
from .substitute import StudentFileError, load_student_module, plain_function, substituted

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
    accuracy: float | None = None


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


def _timed(fn: Callable, key: str, run: Run, clock: Callable[[], float] = time.perf_counter) -> Callable:
    """``fn`` counting its calls and the wall time spent inside it into ``run``. A generator
    function's time is that of running its body, each step of it (calling it only makes the
    generator); the caller's work between two items is not counted.

    >>> run = Run("yours", [], 0.0)
    >>> def squares(n):
    ...     for i in range(n):
    ...         yield i * i
    >>> list(_timed(squares, "squares", run)(4)), run.calls["squares"], run.seconds["squares"] > 0
    ([0, 1, 4, 9], 1, True)
    """
    def add(seconds: float) -> None:
        run.seconds[key] = run.seconds.get(key, 0.0) + seconds

    if inspect.isgeneratorfunction(fn):
        def timed_steps(*args: Any, **kwargs: Any) -> Any:
            run.calls[key] = run.calls.get(key, 0) + 1
            start = clock()
            generator = fn(*args, **kwargs)
            add(clock() - start)
            sent = None
            try:
                while True:
                    start = clock()
                    try:
                        item = generator.send(sent)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        add(clock() - start)
                    sent = yield item
            finally:
                generator.close()
        return functools.wraps(fn)(timed_steps)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            add(clock() - start)
            run.calls[key] = run.calls.get(key, 0) + 1
    return functools.wraps(fn)(timed)


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
    text = load_shakespeare()[:chars]
    settings = dict(steps=steps, d_model=d_model, num_heads=num_heads, num_layers=num_layers, seq_len=seq_len,
                    batch_size=batch_size, lr=lr, eval_batches=eval_batches, seed=seed)
    return _side_by_side(directory, lambda label, impls: _train(label, impls, settings, text), settings, plot,
                         "TinyGPT on Tiny Shakespeare")


def _side_by_side(directory: str | Path, train: Callable[[str, dict], Run], settings: dict[str, Any],
                  plot: str | Path | None, title: str) -> dict[str, Any]:
    """Train on the library, then on the student's passed implementations; compare."""
    passed = passed_implementations(directory)
    if not passed:
        raise ValueError(f"{directory}: no exercise passes its checks yet; run `tito learn check MODULE` first")
    from tinytorch.core.contention import ContentionProbe, contention_note

    reference = {ex.resolve(): (ex.qualified, plain_function(ex.resolve().current())) for ex, _ in passed}
    student = {ex.resolve(): (ex.qualified, fn) for ex, fn in passed}
    # Times are wall time: another program busy on the machine inflates them (the check every
    # tool that prints a time makes; the note is printed next to the figures).
    with ContentionProbe() as probe:
        runs = [train("reference", reference), train("yours", student)]
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
        "contention": probe.result, "contention_note": contention_note(probe.result, "training"),
    }
    if ref.accuracy is not None:
        result["reference_accuracy"], result["your_accuracy"] = ref.accuracy, yours.accuracy
    if plot is not None:
        _plot(runs, Path(plot), title)
        result["plot"] = str(plot)
    return result


def _train_cnn(label: str, implementations: dict[Target, tuple[str, Callable]], settings: dict[str, Any],
               data: tuple) -> Run:
    import numpy as np

    from tinytorch.core import Tensor, manual_seed, no_grad
    from tinytorch.core import functional as F
    from tinytorch.core.optim import AdamW
    from tinytorch.vision import SmallCNN

    (x, y), (x_test, y_test) = data
    run = Run(label, [], float("nan"))
    manual_seed(settings["seed"])
    model = SmallCNN(widths=(8, 16), hidden=32, dropout=0.0)
    opt = AdamW(model.parameters(), lr=settings["lr"])
    order = np.random.default_rng(settings["seed"])
    timed = {t: _timed(fn, key, run) for t, (key, fn) in implementations.items()}
    with substituted(timed):
        model.train()
        for _ in range(settings["steps"]):
            idx = order.integers(0, len(x), size=settings["batch_size"])
            loss = F.cross_entropy(model(Tensor(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.losses.append(float(loss.item()))
        model.eval()
        total, correct = 0.0, 0
        with no_grad():
            for start in range(0, len(x_test), 500):
                logits = model(Tensor(x_test[start:start + 500]))
                target = y_test[start:start + 500]
                total += float(F.cross_entropy(logits, target, reduction="sum").item())
                correct += int((logits.data.argmax(axis=-1) == target).sum())
    run.val_loss, run.accuracy = total / len(x_test), correct / len(x_test)
    return run


def fashion_mnist(directory: str | Path, steps: int = 150, batch_size: int = 64, train_images: int = 10_000,
                  test_images: int = 2_000, lr: float = 3e-3, seed: int = 0, root: str | Path | None = None,
                  plot: str | Path | None = None) -> dict[str, Any]:
    """Train a small CNN (SmallCNN, widths 8 and 16) on Fashion-MNIST on the library, then on the
    student's passed implementations; test loss and accuracy of both.

    Raises `tinytorch.core.datafiles.MissingDataError` (with the download command) without the data.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("train_images", train_images),
                        ("test_images", test_images)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not Path(directory).is_dir():
        raise ValueError(f"--dir: {directory} is not a directory")
    from tinytorch.vision import FashionMNIST

    x, y = FashionMNIST(root, train=True).arrays()
    x_test, y_test = FashionMNIST(root, train=False).arrays()
    data = ((x[:train_images], y[:train_images]), (x_test[:test_images], y_test[:test_images]))
    settings = dict(steps=steps, batch_size=batch_size, train_images=len(data[0][0]),
                    test_images=len(data[1][0]), lr=lr, seed=seed)
    return _side_by_side(directory, lambda label, impls: _train_cnn(label, impls, settings, data), settings,
                         plot, "A small CNN on Fashion-MNIST")


def _plot(runs: list[Run], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from tinytorch.core.io import write_atomic

    fig, ax = plt.subplots(figsize=(7, 4))
    for r, style in zip(runs, ("-", "--")):
        ax.plot(range(1, len(r.losses) + 1), r.losses, style, label=f"{r.label} (held-out loss {r.val_loss:.4f})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title(f"{title}: your implementations vs the library's")
    ax.legend()
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


# ------------------------------------------------------------------------------ roofline

#: Timed calls of each kernel per implementation (after one untimed call each); the median counts.
ROOFLINE_REPEATS = 11


@dataclass
class KernelTiming:
    """One kernel timed both ways: median seconds per call of the library's implementation and
    of the student's (alternating calls), and the call's FLOPs and compulsory bytes."""
    exercise: str
    reference_seconds: float
    your_seconds: float
    flops: int
    bytes: int

    @property
    def ratio(self) -> float:
        """Your time over the library's (above 1: yours is slower)."""
        return self.your_seconds / self.reference_seconds


def time_kernel(exercise: Exercise, student: Callable, repeats: int = ROOFLINE_REPEATS,
                clock: Callable[[], float] = time.perf_counter, seed: int = 0) -> KernelTiming:
    """Time ``exercise``'s kernel call with the library's implementation and with ``student``'s
    in its place, alternating, and alternating which goes first (so load from other processes,
    and what one call leaves in the caches for the next, hit both alike); median of ``repeats``
    timed calls each after one untimed one. FLOPs and bytes are the kernel's
    ``count`` (perf's formulas) of the library's call.

    >>> import numpy as np
    >>> from tinytorch.core import kernels
    >>> ex = load_curriculum().exercise("tensor-ops", "softmax")
    >>> t = time_kernel(ex, kernels.softmax, repeats=1)
    >>> t.flops == 5 * 256 * 1024, t.bytes == 2 * 4 * 256 * 1024   # 5 FLOPs an element, read and write
    (True, True)
    """
    import statistics

    kernel = exercise.kernel
    if kernel is None:
        raise ValueError(f"{exercise.qualified} has no kernel to time")
    scope = {**namespace(exercise), **make_inputs(kernel.inputs, seed)}
    if kernel.setup:
        exec("\n".join(kernel.setup), scope)
    call = compile(kernel.call, f"<kernel of {exercise.qualified}>", "eval")
    target = {exercise.resolve(): student}

    def timed() -> float:
        start = clock()
        eval(call, scope)
        return clock() - start

    out = eval(call, scope)  # the library's, untimed: what the count is of
    reached = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        reached.append(True)
        return student(*args, **kwargs)

    with substituted({exercise.resolve(): spy}):  # untimed too: the spy's own call is not timed
        eval(call, scope)
    if not reached:
        raise ValueError(f"{exercise.qualified}: its kernel call {kernel.call!r} never runs "
                         f"{exercise.target}, so it would time the library twice")
    ours, theirs = [], []
    for i in range(repeats):  # ABBA: which goes first alternates too (a call can leave the next one a warm cache)
        if i % 2:
            with substituted(target):
                theirs.append(timed())
        ours.append(timed())
        if not i % 2:
            with substituted(target):
                theirs.append(timed())
    count = evaluate(kernel.count, (), {**scope, "out": out})
    return KernelTiming(exercise.qualified, statistics.median(ours), statistics.median(theirs),
                        int(count.flops), int(count.bytes))


def verdict(name: str, timing: KernelTiming, roof: Any) -> dict[str, Any]:
    """Where both implementations of one kernel sit on ``roof`` (a `tinytorch.perf.RooflineModel`),
    and the sentence that says it: how much slower or faster the student's is (within perf's
    TOLERANCE it is "as fast"), whether the kernel is memory- or compute-bound, and the
    bandwidth or GFLOP/s each reaches against the roof.

    >>> from tinytorch.perf import RooflineModel
    >>> t = KernelTiming("conv2d/im2col", 0.001, 0.0031, 0, 4_000_000)
    >>> verdict("im2col", t, RooflineModel(peak_gflops=100.0, bandwidth_gbs=10.0))["sentence"]
    "your im2col is 3.1x slower than the library's: it only moves data (4.0 MB a call), at 1.3 GB/s where the library's reaches 4.0 GB/s, of a 10.0 GB/s memory roof"
    """
    from tinytorch.perf.optimize import TOLERANCE

    ratio = timing.ratio
    if ratio > 1 + TOLERANCE:
        speed = f"your {name} is {ratio:.1f}x slower than the library's"
    elif ratio < 1 - TOLERANCE:
        speed = f"your {name} is {1 / ratio:.1f}x faster than the library's"
    else:
        speed = f"your {name} is as fast as the library's ({ratio:.2f}x its time)"
    ref_gbs, your_gbs = (timing.bytes / s / 1e9 for s in (timing.reference_seconds, timing.your_seconds))
    result: dict[str, Any] = {
        "exercise": timing.exercise, "reference_seconds": timing.reference_seconds,
        "your_seconds": timing.your_seconds, "ratio": ratio, "flops": timing.flops, "bytes": timing.bytes,
        "reference_gbs": ref_gbs, "your_gbs": your_gbs}
    if timing.flops <= 0:
        result.update(intensity=0.0, bound="memory-bound", points=[])
        where = (f"it only moves data ({timing.bytes / 1e6:.1f} MB a call), at {your_gbs:.1f} GB/s where the "
                 f"library's reaches {ref_gbs:.1f} GB/s, of a {roof.bandwidth_gbs:.1f} GB/s memory roof")
    else:
        ref = roof.point(f"{name} (library)", timing.flops, timing.bytes, timing.reference_seconds)
        yours = roof.point(f"{name} (yours)", timing.flops, timing.bytes, timing.your_seconds)
        result.update(intensity=ref.intensity, bound=ref.bound, reference_gflops=ref.achieved_gflops,
                      your_gflops=yours.achieved_gflops, attainable_gflops=ref.attainable_gflops,
                      points=[ref, yours])
        if ref.bound == "memory-bound":
            where = (f"memory-bound ({ref.intensity:.2f} FLOP/B, left of the ridge at {roof.ridge_point:.1f}), it "
                     f"moves its {timing.bytes / 1e6:.1f} MB at {your_gbs:.1f} GB/s where the library's reaches "
                     f"{ref_gbs:.1f} GB/s, of a {roof.bandwidth_gbs:.1f} GB/s memory roof")
        else:
            where = (f"compute-bound ({ref.intensity:.1f} FLOP/B, right of the ridge at {roof.ridge_point:.1f}), "
                     f"it runs {yours.achieved_gflops:.1f} GFLOP/s where the library's reaches "
                     f"{ref.achieved_gflops:.1f}, of a {roof.peak_gflops:.1f} GFLOP/s compute roof")
    result["sentence"] = f"{speed}: {where}"
    return result


def roofline(directory: str | Path, repeats: int = ROOFLINE_REPEATS, roof: Any = None, threads: int | None = 1,
             clock: Callable[[], float] = time.perf_counter, plot: str | Path | None = None) -> dict[str, Any]:
    """Time every passed exercise that has a kernel, the library's implementation and the
    student's alternating in the same run, and place both on the roofline.

    Args:
        directory: the student's workspace.
        repeats: timed calls of each implementation (the median counts).
        roof: a `tinytorch.perf.RooflineModel`; default this machine's measured ceilings
            (`get_hardware_spec(quick=True)`: the cached full measurement, else a quick one).
        threads: BLAS threads while timing (1: repeatable on a shared machine; None: as set).
        clock: the time source (tests pass one that does not depend on the machine).
        plot: a PNG or SVG of the roofline with both points of every kernel that does FLOPs.

    Raises ValueError when no passed exercise has a kernel (naming those that do).
    """
    from tinytorch.core.checks import check_int
    from tinytorch.core.contention import ContentionProbe, contention_note

    check_int("roofline", "repeats", repeats, minimum=1)
    if threads is not None:
        check_int("roofline", "threads", threads, minimum=1)
    if not Path(directory).is_dir():
        raise ValueError(f"--dir: {directory} is not a directory")
    passed = [(ex, fn) for ex, fn in passed_implementations(directory) if ex.kernel is not None]
    if not passed:
        timed = [ex.qualified for m in load_curriculum().modules for ex in m.exercises if ex.kernel]
        raise ValueError(f"{directory}: no passed exercise has a kernel to time; these do: {', '.join(timed)}")
    if roof is None:
        from tinytorch.perf import RooflineModel, get_hardware_spec

        roof = RooflineModel(get_hardware_spec(quick=True))
    limit = contextlib.nullcontext()
    if threads is not None:
        from tinytorch.core.threads import thread_limit

        limit = thread_limit(threads)
    with limit, ContentionProbe() as probe:
        timings = [(ex, time_kernel(ex, fn, repeats, clock)) for ex, fn in passed]
    kernels = [verdict(ex.name, t, roof) for ex, t in timings]
    points = [p for k in kernels for p in k.pop("points")]
    result = {"kernels": kernels, "peak_gflops": roof.peak_gflops, "bandwidth_gbs": roof.bandwidth_gbs,
              "ridge_point": roof.ridge_point, "repeats": repeats, "threads": threads,
              "contention": probe.result, "contention_note": contention_note(probe.result),
              "points": [p.to_dict() for p in points]}
    if plot is not None:
        _save_figure(roof.plot(points, None, title="Your kernels and the library's on this machine's roofline"),
                     Path(plot))
        result["plot"] = str(plot)
    return result


def _save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as PNG or SVG (by the suffix), atomically."""
    import io

    from tinytorch.core.io import write_atomic

    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"--plot must end in .png or .svg, got {str(path)!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())
