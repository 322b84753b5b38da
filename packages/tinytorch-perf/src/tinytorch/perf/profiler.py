"""Layer-by-layer profiler: time, FLOPs, memory and roofline position of every layer.

How time is attributed (so the rows add up to the step):

* forward: module hooks time every module call; a row's forward time is the module's
  *exclusive* time (its call minus its children's calls). Modules that run no op themselves
  (``Sequential``) fold their time into the nearest ancestor that does, or ``(model)``.
* backward: core's op observer reports every op's backward; each op is charged its own time
  plus the engine's time since the previous op ended (graph walk, gradient accumulation), and
  belongs to the module that ran its forward.

* the model's own code outside its submodules is the row ``(model)``; what lies in no module
  (the call around the model, the backward engine before the first and after the last op) is
  the row ``(unattributed)``, so the rows add up to the instrumented step.

Plain (uninstrumented) and instrumented steps alternate; the plain step times are medians over
``repeats``, the rows come from the median instrumented step (by total time), so they add up to
it exactly, and both step times are reported (``overhead`` is their ratio). FLOPs, bytes,
output shapes and saved-for-backward memory come from one traced step (`FLOPsCounter.trace`).
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinytorch.core.checks import check_int
from tinytorch.core.contention import ContentionProbe, contention_note

from .flops import CONVENTION, ROOT, FLOPsCounter, LayerCount, TraceResult, _backward, _label
from .tables import Column, fitted_table

__all__ = ["ModelProfiler", "ProfileResult", "LayerProfile", "compare", "UNATTRIBUTED"]

#: the row of step time inside no module: the call around the model, the backward engine before
#: the first and after the last op
UNATTRIBUTED = "(unattributed)"


@dataclass
class LayerProfile:
    """One profiled layer: what it computes, what it keeps in memory and how long it takes.

    Attributes:
        name: dotted module name (``"(model)"``: the model's own code outside its submodules;
            ``"(unattributed)"``: step time inside no module); ``type`` its class.
        params: parameters registered directly on it; ``total_params`` with its children's
            (what the table shows, so a block shows the parameters it holds).
        output_shape: its output's shape; ``activation_bytes`` that output's size.
        saved_bytes: bytes its ops keep alive for backward.
        flops: forward FLOPs (``matmul_flops`` + ``elementwise_flops``); ``bytes`` the forward's
            compulsory traffic; ``backward_flops`` the backward's.
        forward_s: forward *self* time: the module's calls minus the calls of its
            child modules (a container that runs no op itself folds into its nearest ancestor
            row); ``forward_inclusive_s`` its whole calls, children included; ``backward_s``
            its backward time (seconds), all from the median instrumented step.
        percent: share of the summed rows (which add up to the instrumented step).
        bound: ``"memory-bound"`` or ``"compute-bound"`` when profiled with hardware.
        advice: what would make it faster, from its roofline position.

    ``gflops_per_s`` (forward) and ``intensity`` (FLOP/byte) are derived.

    >>> from tinytorch.core import nn, randn
    >>> result = ModelProfiler(nn.Sequential(nn.Linear(64, 32)), randn(16, 64)).profile(repeats=1, warmup=0)
    >>> layer = {l.name: l for l in result.layers}["0"]
    >>> layer.type, layer.flops, layer.output_shape
    ('Linear', 66048, (16, 32))
    """
    name: str
    type: str
    params: int
    output_shape: tuple[int, ...] | None
    activation_bytes: int  # bytes of this layer's output
    saved_bytes: int  # bytes its ops keep alive for backward
    flops: int  # forward FLOPs
    matmul_flops: int
    elementwise_flops: int
    bytes: int  # forward compulsory bytes moved
    backward_flops: int
    forward_s: float  # self time: children's time excluded
    backward_s: float
    forward_inclusive_s: float = 0.0  # the module's whole call, children included
    total_params: int = 0  # parameters of the module and its children
    percent: float = 0.0
    bound: str = ""
    advice: str = ""

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.forward_s / 1e9 if self.forward_s > 0 else 0.0

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["output_shape"] = list(self.output_shape) if self.output_shape else None
        d["gflops_per_s"] = self.gflops_per_s
        d["intensity"] = self.intensity
        return d


@dataclass
class ProfileResult:
    """The profile of one model: per-layer rows plus whole-step timings.

    Attributes:
        model: its name; ``input_shape`` the example input's shape; ``params`` its parameters.
        layers: one ``LayerProfile`` per module that ran ops, in module order.
        forward_s: median unprofiled forward time; ``backward_s`` backward (seconds).
        profiled_s: median instrumented step (``profiled_forward_s``, ``profiled_backward_s``
            its parts), so ``overhead`` = instrumented / plain; both are reported.
        coverage: share of the rows' time in module rows (the rest is ``(unattributed)``).
        trace: the FLOP ``TraceResult``; ``flops`` is its forward total.
        events: Chrome trace events (``to_chrome_trace``).
        contention: the `~tinytorch.core.contention.ContentionProbe` result of the timed steps
            (``contended``: other programs were busy, the times are too slow); ``note`` is the
            sentence to print beside them, None when the machine was quiet.

    ``table()`` renders a rich table; ``to_json``, ``to_csv`` and ``to_chrome_trace`` export it.

    >>> from tinytorch.core import nn, randn
    >>> result = ModelProfiler(nn.Sequential(nn.Linear(64, 32), nn.ReLU()), randn(16, 64)).profile(repeats=1, warmup=0)
    >>> result.flops == sum(l.flops for l in result.layers), result.params
    (True, 2080)
    """
    model: str
    input_shape: tuple[int, ...] | None
    layers: list[LayerProfile]
    forward_s: float  # unprofiled medians
    backward_s: float
    profiled_s: float  # median instrumented step
    repeats: int
    warmup: int
    trace: TraceResult
    params: int
    events: list[dict[str, Any]] = field(default_factory=list)
    profiled_forward_s: float = 0.0  # medians of the instrumented steps' forward and backward
    profiled_backward_s: float = 0.0
    contention: dict[str, Any] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s

    @property
    def note(self) -> str | None:
        """``contention_note`` of the timed steps: None when no other program was busy."""
        return contention_note(self.contention)

    @property
    def layer_sum_s(self) -> float:
        return sum(l.total_s for l in self.layers)

    @property
    def overhead(self) -> float:
        """Instrumented step time / plain (uninstrumented) step time."""
        return self.profiled_s / self.total_s if self.total_s else float("nan")

    @property
    def coverage(self) -> float:
        """Share of the rows' time held by module rows (all but ``(unattributed)``)."""
        total = self.layer_sum_s
        attributed = sum(l.total_s for l in self.layers if l.name != UNATTRIBUTED)
        return attributed / total if total else float("nan")

    @property
    def flops(self) -> int:
        return self.trace.forward.flops

    @property
    def activation_bytes(self) -> int:
        return sum(l.saved_bytes for l in self.layers)

    # ------------------------------------------------------------------ exports
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "input_shape": list(self.input_shape or ()),
            "convention": CONVENTION, "params": self.params,
            "forward_flops": self.trace.forward.flops,
            "forward_matmul_flops": self.trace.forward.matmul_flops,
            "forward_elementwise_flops": self.trace.forward.elementwise_flops,
            "backward_flops": self.trace.backward.flops,
            "forward_s": self.forward_s, "backward_s": self.backward_s, "total_s": self.total_s,
            "profiled_s": self.profiled_s, "profiled_forward_s": self.profiled_forward_s,
            "profiled_backward_s": self.profiled_backward_s, "overhead": self.overhead,
            "layer_sum_s": self.layer_sum_s, "coverage": self.coverage,
            "activation_bytes": self.activation_bytes, "repeats": self.repeats,
            "warmup": self.warmup, "unknown_ops": self.trace.unknown_ops,
            "contention": self.contention, "layers": [l.to_dict() for l in self.layers],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The profile as JSON text (written to ``path`` too when given)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self, path: str | Path) -> None:
        """Write one CSV row per layer (name, type, FLOPs, bytes, times, bound, ...) to ``path``."""
        rows = [l.to_dict() for l in self.layers]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["name"])
            writer.writeheader()
            for row in rows:
                row["output_shape"] = "x".join(map(str, row["output_shape"] or []))
                writer.writerow(row)

    def to_chrome_trace(self, path: str | Path | None = None) -> dict[str, Any]:
        """Chrome trace event JSON of the last profiled step (opens in Perfetto/chrome://tracing)."""
        doc = {"traceEvents": [
            {"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
             "args": {"name": f"tinytorch {self.model}"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "forward"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "backward"}},
            *self.events,
        ], "displayTimeUnit": "ms", "otherData": {
            "convention": CONVENTION, "instrumented_step_ms": self.profiled_s * 1e3,
            "plain_step_ms": self.total_s * 1e3, "overhead": self.overhead,
            "contention": self.contention}}
        if path is not None:
            Path(path).write_text(json.dumps(doc))
        return doc

    def table(self, title: str | None = None, width: int | None = None):
        """A rich Table (torchinfo-style columns plus times and roofline position).

        Args:
            title: the title (default: model, input, repeats and the FLOP convention).
            width: the console width to fit; the least important columns are left out (named
                in the caption) rather than wrapping a cell. None keeps every column.
        """
        columns, rows, total, default_title = self._table_parts()
        return fitted_table(title or default_title, columns, rows, width or 10**6, footer=[total])

    def _repr_html_(self) -> str:
        """The ``table()`` as HTML, every column (Jupyter)."""
        from tinytorch.core.viz import html_table

        columns, rows, total, title = self._table_parts()
        return html_table([c.header for c in columns], [*rows, total], title,
                          right=[i for i, c in enumerate(columns) if c.justify == "right"])

    def _table_parts(self) -> tuple[list[Column], list[list[str]], list[str], str]:
        """The table's columns, layer rows, total row and title (one source for text and HTML)."""
        columns = [Column("layer", "left", 10), Column("type", "left", 5),
                   Column("output", "left", 3), Column("params", priority=6),
                   Column("act. MB", priority=2), Column("MFLOPs", priority=7),
                   Column("self fwd ms", priority=9), Column("incl. fwd ms", priority=1),
                   Column("bwd ms", priority=8), Column("GFLOP/s", priority=4),
                   Column("FLOP/B", priority=3), Column("%", priority=8),
                   Column("bound", "left", 5)]
        rows = [[l.name, l.type, "x".join(map(str, l.output_shape or ())), f"{l.total_params:,}",
                 f"{l.activation_bytes / 1e6:.2f}", f"{l.flops / 1e6:,.2f}",
                 f"{l.forward_s * 1e3:.3f}", f"{l.forward_inclusive_s * 1e3:.3f}",
                 f"{l.backward_s * 1e3:.3f}", f"{l.gflops_per_s:.2f}", f"{l.intensity:.2f}",
                 f"{l.percent:.1f}", l.bound or "-"] for l in self.layers]
        fwd = sum(l.forward_s for l in self.layers)
        bwd = sum(l.backward_s for l in self.layers)
        total = ["total", "", "", f"{self.params:,}", f"{self.activation_bytes / 1e6:.2f}",
                 f"{self.flops / 1e6:,.2f}", f"{fwd * 1e3:.3f}", "", f"{bwd * 1e3:.3f}",
                 f"{self.flops / fwd / 1e9 if fwd else 0:.2f}", "", "100.0", ""]
        title = (f"{self.model}: input {self.input_shape}, {self.repeats} repeats "
                 f"(median), FLOPs: {CONVENTION}")
        return columns, rows, total, title


def _time_step(model: Any, x: Any, backward: bool, clock: Callable[[], float]
               ) -> tuple[float, float]:
    start = clock()
    out = model(x)
    mid = clock()
    if backward:
        _backward(out)
    return mid - start, clock() - mid


def _zero_grads(model: Any) -> None:
    for p in model.parameters():
        p.grad = None


class ModelProfiler:
    """Profile a TinyTorch model layer by layer.

    >>> from tinytorch.core import nn, randn
    >>> model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    >>> result = ModelProfiler(model, randn(32, 64), name="mlp").profile(repeats=3, warmup=1)
    >>> [l.name for l in result.layers if not l.name.startswith("(")]   # plus (model), (unattributed)
    ['0', '1', '2']
    >>> round(sum(l.total_s for l in result.layers), 9) == round(result.profiled_s, 9)
    True
    """

    def __init__(self, model: Any, example_input: Any, name: str | None = None,
                 hardware: Any = None, clock: Callable[[], float] = time.perf_counter):
        self.model, self.clock = model, clock
        self.example_input = example_input
        self.name = name or type(model).__name__
        self.hardware = hardware

    def profile(self, repeats: int = 5, warmup: int = 2, backward: bool = True,
                roofline: Any = None, threads: int | str | None = None) -> ProfileResult:
        """Profile ``repeats`` steps after ``warmup`` unmeasured ones.

        Plain and instrumented steps alternate, so load from other processes hits both alike;
        the rows come from the median instrumented step and add up to it.

        Args:
            repeats: measured steps (>= 1).
            warmup: unmeasured steps first.
            backward: time the backward pass too (an all-ones gradient into the output).
            roofline: a ``RooflineModel`` for each layer's bound and advice (default: one built
                from the profiler's ``hardware``, if given).
            threads: BLAS threads during the timed steps (default: as set; ``"auto"``: one
                per physical core no other program keeps busy, `~tinytorch.core.threads.
                choose_threads`). On a machine whose other cores are busy, multi-threaded GEMMs
                spin-wait for each other and time erratically.

        Returns:
            a ``ProfileResult``.
        """
        repeats = check_int("profile", "repeats", repeats, minimum=1)
        warmup = check_int("profile", "warmup", warmup, minimum=0)
        if threads is not None:
            from tinytorch.core.threads import choose_threads, thread_limit

            n = choose_threads()[0] if threads == "auto" else check_int("profile", "threads", threads, minimum=1)
            with thread_limit(n):
                return self.profile(repeats, warmup, backward, roofline)
        model, x, clock = self.model, self.example_input, self.clock
        trace = FLOPsCounter().trace(model, x, backward=backward)
        _zero_grads(model)
        for _ in range(warmup):
            _time_step(model, x, backward, clock)
            _zero_grads(model)
        # Unprofiled and profiled steps alternate (instrumentation is installed outside the
        # timed region), so load from other processes hits both alike.
        plain_f, plain_b, steps = [], [], []
        rows = set(trace.layers) | {ROOT}  # the model's own code is a row even if it runs no op
        with ContentionProbe() as probe:  # the check every tool that prints a time makes
            for _ in range(repeats):
                f, b = _time_step(model, x, backward, clock)
                _zero_grads(model)
                plain_f.append(f)
                plain_b.append(b)
                inst = _Instrumentation(model, rows, clock)
                try:
                    steps.append(inst.step(x, backward))
                finally:
                    inst.remove()
                _zero_grads(model)
        # Rows come from the median instrumented step (by total time): robust to a slow step,
        # and additive, so the rows add up to that step exactly.
        step = sorted(steps, key=lambda s: s.forward_s + s.backward_s)[(len(steps) - 1) // 2]
        events = step.events

        def median(values) -> float:
            return statistics.median(list(values))

        modules = dict(model.named_modules())
        labels = list(trace.layers)
        if ROOT not in trace.layers and (step.fwd.get(ROOT) or step.bwd.get(ROOT)):
            labels.insert(0, ROOT)
        layers = []
        for label in labels:
            lc = trace.layers.get(label) or LayerCount(ROOT, type(model).__name__)
            module = modules.get("" if label == ROOT else label)
            layers.append(LayerProfile(
                name=label, type=lc.type, params=lc.params, output_shape=lc.output_shape,
                activation_bytes=lc.output_bytes, saved_bytes=lc.saved_bytes,
                flops=lc.forward.flops, matmul_flops=lc.forward.matmul_flops,
                elementwise_flops=lc.forward.elementwise_flops, bytes=lc.forward.bytes,
                backward_flops=lc.backward.flops, forward_s=step.fwd.get(label, 0.0),
                backward_s=step.bwd.get(label, 0.0),
                forward_inclusive_s=step.fwd_inclusive.get(label, 0.0),
                total_params=sum(p.size for p in module.parameters()) if module else lc.params))
        # What no module row holds: the call around the model, the engine before the first and
        # after the last backward op. Its own row, so the rows add up to the instrumented step.
        rest_f = max(step.forward_s - sum(step.fwd.values()), 0.0)
        rest_b = max(step.backward_s - sum(step.bwd.values()), 0.0)
        if rest_f > 0 or rest_b > 0:
            layers.append(LayerProfile(
                name=UNATTRIBUTED, type="-", params=0, output_shape=None, activation_bytes=0,
                saved_bytes=0, flops=0, matmul_flops=0, elementwise_flops=0, bytes=0,
                backward_flops=0, forward_s=rest_f, backward_s=rest_b))
        total = sum(l.total_s for l in layers) or 1.0
        if roofline is None and self.hardware is not None:
            from .roofline import RooflineModel

            roofline = RooflineModel(self.hardware)
        for l in layers:
            l.percent = 100 * l.total_s / total
            if roofline is not None and l.flops > 0 and l.bytes > 0 and l.forward_s > 0:
                p = roofline.point(l.name, l.flops, l.bytes, l.forward_s,
                                   trace.layers[l.name].ops)
                l.bound, l.advice = p.bound, p.advice
        return ProfileResult(
            model=self.name, input_shape=tuple(getattr(x, "shape", ())) or None, layers=layers,
            forward_s=median(plain_f), backward_s=median(plain_b),
            profiled_s=step.forward_s + step.backward_s, profiled_forward_s=step.forward_s,
            profiled_backward_s=step.backward_s, repeats=repeats,
            warmup=warmup, trace=trace, params=sum(p.size for p in model.parameters()),
            events=events, contention=probe.result)


@dataclass
class _Step:
    """One instrumented step: per-row self times, per-module inclusive times, walls, events."""

    fwd: dict[str, float]
    fwd_inclusive: dict[str, float]
    bwd: dict[str, float]
    forward_s: float
    backward_s: float
    events: list[dict[str, Any]]


class _Instrumentation:
    """A module tracker and an op observer installed once, then used for several timed steps."""

    def __init__(self, model: Any, rows: set[str], clock: Callable[[], float]):
        from tinytorch.core.autograd import register_op_observer
        from tinytorch.core.nn.tracker import ModuleTracker

        self.model, self.clock = model, clock
        self.tracker = ModuleTracker(model, on_exit=self._exit, clock=clock, keep_calls=False)
        self.row_of: dict[str, str] = {}
        for name in self.tracker.modules:
            row = _label(name)
            while row not in rows and row != ROOT:
                row = row.rpartition(".")[0] or ROOT
            self.row_of[name] = row
        self.tracker.__enter__()
        self.observer = register_op_observer(self._observe)
        self._reset()

    def _reset(self) -> None:
        self.fwd: dict[str, float] = defaultdict(float)  # self time, folded into rows
        self.fwd_inclusive: dict[str, float] = defaultdict(float)  # per module, children included
        self.bwd: dict[str, float] = defaultdict(float)
        self.events: list[dict[str, Any]] = []
        self.owner: dict[int, str] = {}
        self.keep: list[Any] = []  # keeps Functions alive so their ids stay unique
        self.last_end = 0.0
        self.t0 = self.clock()

    def _exit(self, call: Any) -> None:
        self.fwd[self.row_of[call.name]] += call.self_seconds
        self.fwd_inclusive[_label(call.name)] += call.seconds
        self.events.append({"name": _label(call.name), "cat": type(call.module).__name__,
                            "ph": "X", "ts": (call.start - self.t0) * 1e6,
                            "dur": call.seconds * 1e6, "pid": 1, "tid": 1})

    def _observe(self, phase, fn, inputs, output, seconds, settings):
        if phase == "forward":
            call = self.tracker.current
            self.owner[id(fn)] = self.row_of[call.name] if call is not None else ROOT
            self.keep.append(fn)
            return
        end = self.clock()
        charged = end - self.last_end  # the op plus the engine's work since the previous op
        self.last_end = end
        row = self.owner.get(id(fn), ROOT)
        self.bwd[row] += charged
        self.events.append({"name": fn.op, "cat": "backward", "ph": "X",
                            "ts": (end - seconds - self.t0) * 1e6, "dur": seconds * 1e6,
                            "pid": 1, "tid": 2,
                            "args": {"layer": row, "engine_us": (charged - seconds) * 1e6}})

    def step(self, x: Any, backward: bool) -> _Step:
        self._reset()
        start = self.clock()
        out = self.model(x)
        mid = self.last_end = self.clock()
        if backward:
            _backward(out)
        end = self.clock() if backward else mid
        return _Step(dict(self.fwd), dict(self.fwd_inclusive), dict(self.bwd), mid - start,
                     end - mid, self.events)

    def remove(self) -> None:
        self.observer.remove()
        self.tracker.__exit__(None, None, None)


# ------------------------------------------------------------------------------ compare


def _as_items(models: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(models, dict):
        return [(name, *value) for name, value in models.items()]
    items = []
    for entry in models:
        if len(entry) != 3:
            raise ValueError("compare: expected (name, model, example_input) triples or a dict "
                             "name -> (model, example_input)")
        items.append(tuple(entry))
    return items


@dataclass
class ComparisonRow:
    """One model in ``compare``: parameters, FLOPs, activation memory and step time.

    >>> from tinytorch.core import nn, randn
    >>> row = compare({"mlp": (nn.Linear(8, 4), randn(2, 8))}, repeats=1, warmup=0)[0]
    >>> row.name, row.params, row.forward_flops
    ('mlp', 36, 136)
    """
    name: str
    input_shape: tuple[int, ...] | None
    params: int
    param_bytes: int
    forward_flops: int
    matmul_flops: int
    activation_bytes: int
    forward_s: float
    backward_s: float
    intensity: float
    contention: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str | None:
        """``contention_note`` of this model's timed steps: None when no other program was busy."""
        return contention_note(self.contention)

    @property
    def gflops_per_s(self) -> float:
        return self.forward_flops / self.forward_s / 1e9 if self.forward_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["input_shape"] = list(self.input_shape or ())
        d["gflops_per_s"] = self.gflops_per_s
        return d


def compare(models: Any, repeats: int = 3, warmup: int = 1,
            threads: int | str | None = None) -> list[ComparisonRow]:
    """Profile several models: params, FLOPs, memory and time side by side.

    ``models``: a dict name -> (model, example_input) or (name, model, example_input) triples;
    ``threads`` as `ModelProfiler.profile`'s. Each row carries its timing's ``contention``.

    >>> from tinytorch.core import nn, randn
    >>> x = randn(4, 16)
    >>> rows = compare({"narrow": (nn.Linear(16, 8), x), "wide": (nn.Linear(16, 64), x)}, repeats=1)
    >>> [(r.name, r.params) for r in rows]
    [('narrow', 136), ('wide', 1088)]
    """
    rows = []
    for name, model, x in _as_items(models):
        r = ModelProfiler(model, x, name=name).profile(repeats=repeats, warmup=warmup, threads=threads)
        rows.append(ComparisonRow(
            name=name, input_shape=r.input_shape, params=r.params,
            param_bytes=sum(p.data.nbytes for p in model.parameters()),
            forward_flops=r.trace.forward.flops, matmul_flops=r.trace.forward.matmul_flops,
            activation_bytes=r.activation_bytes, forward_s=r.forward_s, backward_s=r.backward_s,
            intensity=r.trace.forward.intensity, contention=r.contention))
    return rows


def comparison_table(rows: Iterable[ComparisonRow], title: str = "Model comparison",
                     width: int | None = None):
    """A rich ``Table`` of ``compare`` rows (print it with a rich ``Console``).

    Args:
        rows: ``compare``'s rows.
        title: the title; the FLOP convention is appended.
        width: the console width to fit (least important columns left out); None keeps all.
    """
    columns = [Column("model", "left", 10), Column("input", "left", 3),
               Column("params", priority=9), Column("param MB", priority=2),
               Column("fwd GFLOPs", priority=8), Column("act. MB", priority=4),
               Column("fwd ms", priority=9), Column("bwd ms", priority=7),
               Column("GFLOP/s", priority=6), Column("FLOP/B", priority=5)]
    cells = [[r.name, "x".join(map(str, r.input_shape or ())), f"{r.params:,}",
              f"{r.param_bytes / 1e6:.2f}", f"{r.forward_flops / 1e9:.4f}",
              f"{r.activation_bytes / 1e6:.2f}", f"{r.forward_s * 1e3:.2f}",
              f"{r.backward_s * 1e3:.2f}", f"{r.gflops_per_s:.2f}", f"{r.intensity:.2f}"]
             for r in rows]
    return fitted_table(f"{title} (FLOPs: {CONVENTION})", columns, cells, width or 10**6)


ModelProfiler.compare = staticmethod(compare)  # type: ignore[attr-defined]

