"""An inference benchmark after MLPerf's: SingleStream latency, Offline throughput, accuracy,
size and memory, on this machine, in one versioned JSON report.

The scenarios follow MLPerf Inference's load generator (``loadgen``):

* **SingleStream** issues one query of one sample at a time, the next when the previous one
  has completed, and reports the latency percentiles p50, p90 and p99. It runs until **both**
  ``min_queries`` queries were issued **and** the last query was issued at least
  ``min_duration_s`` after the first (loadgen's ``min_query_count`` and ``min_duration``).
* **Offline** issues queries of ``batch_size`` samples back to back until at least
  ``min_queries`` samples were issued and ``min_duration_s`` has passed (MLPerf's Offline
  minimum is a sample count), and reports throughput: samples completed / seconds from the
  first issue to the last completion (loadgen's samples per second).

Percentiles are computed as loadgen's ``PerformanceSummary::ProcessLatencies`` does: sort the
n latencies and take the element at 0-based index ``floor(n * p)`` -- no interpolation, so p50
of an even count is the upper of the two middle values and every reported figure is a latency
that was measured. (NumPy's default ``np.percentile`` interpolates linearly and would differ.)

As in loadgen, the inputs are prepared before the timed run: ``performance_sample_count``
held-out samples are turned into model inputs once and the queries cycle through them, so the
timings are the model's, not the data pipeline's. Warm-up queries (untimed) come first.

Accuracy is measured after the timed runs on the real held-out data the model's package names
(Fashion-MNIST's test set for the image classifiers, Tiny Shakespeare's validation split for
TinyGPT), like loadgen's accuracy mode, separate from the performance mode.

The report also holds the model's size in memory (parameter + buffer bytes) and on disk (the
checkpoint's bytes), the process's peak resident memory (see `PeakRSS` for how it is read), the
machine (`get_hardware_spec`, quick: the cached measurement) and the contention while the
scenarios ran (`ContentionProbe`: other processes' CPU time, the same check ``tito performance
hardware`` makes); a busy machine is flagged in ``report.warning``.

Checkpoints reach the harness through the ``tinytorch.benchmarks`` entry points: each installed
domain package registers a function ``benchmark_target(path, limit) -> dict | None`` that returns
`BenchmarkTarget` fields for a file or directory it recognizes and None for anything else (perf
never imports vision or language).

>>> import numpy as np
>>> from tinytorch.core import Tensor, nn
>>> x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
>>> target = BenchmarkTarget("linear", nn.Linear(4, 2), lambda idx: Tensor(x[idx]), num_samples=16)
>>> settings = BenchmarkSettings(min_queries=8, min_duration_s=0.0, batch_size=4, warmup_queries=1)
>>> report = run_benchmark(target, settings, hardware=None)
>>> report.single_stream["queries"], report.offline["samples"]
(8, 8)
>>> BenchmarkReport.from_json(report.to_json()).model["parameters"]
10
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "SCENARIOS", "PERCENTILE_DEFINITION", "BenchmarkSettings",
    "BenchmarkTarget", "BenchmarkReport", "PeakRSS", "ComparisonRow", "percentile",
    "latency_summary", "run_single_stream", "run_offline", "model_memory_bytes", "disk_bytes",
    "run_benchmark", "load_target", "read_report", "compare_reports", "comparison_table",
    "settings_differences",
]

SCHEMA = "tinytorch.perf.benchmark"
#: Bumped whenever a field changes meaning or moves; `BenchmarkReport.from_dict` refuses others.
SCHEMA_VERSION = 1
SCENARIOS = ("single-stream", "offline")
ENTRY_POINT_GROUP = "tinytorch.benchmarks"
PERCENTILES = (0.5, 0.9, 0.99)
PERCENTILE_DEFINITION = ("MLPerf loadgen: latencies sorted ascending, the value at 0-based index "
                         "floor(n * p), no interpolation")


# ------------------------------------------------------------------------------ statistics


def percentile(latencies: Sequence[float], p: float) -> float:
    """The ``p`` percentile of ``latencies`` as MLPerf's loadgen computes it.

    Sorted ascending, the value at 0-based index ``floor(n * p)``: always a measured value, never
    an interpolation between two.

    Args:
        latencies: at least one latency.
        p: the percentile as a fraction, 0 <= p < 1 (loadgen asserts p < 1 too).

    >>> percentile([4.0, 1.0, 3.0, 2.0], 0.5)   # upper middle value, not 2.5
    3.0
    >>> percentile(list(range(1, 11)), 0.9)     # index floor(10 * 0.9) = 9
    10
    """
    if not 0 <= p < 1:
        raise ValueError(f"percentile: p must be in [0, 1), got {p!r}")
    if len(latencies) == 0:
        raise ValueError("percentile: no latencies")
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * p)]


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 (`percentile`), mean, min and max of ``latencies`` in seconds.

    >>> latency_summary([1.0, 2.0, 3.0, 10.0])
    {'p50': 3.0, 'p90': 10.0, 'p99': 10.0, 'mean': 4.0, 'min': 1.0, 'max': 10.0}
    """
    summary = {f"p{round(p * 100)}": percentile(latencies, p) for p in PERCENTILES}
    summary.update(mean=float(sum(latencies) / len(latencies)), min=min(latencies),
                   max=max(latencies))
    return summary


# ------------------------------------------------------------------------------ scenarios


@dataclass
class BenchmarkSettings:
    """How a benchmark runs (all stored in the report).

    Args:
        scenarios: any of ``SCENARIOS`` (``"single-stream"``, ``"offline"``).
        batch_size: samples per Offline query.
        min_queries: SingleStream issues at least this many queries (MLPerf's default is
            1,024); Offline issues batches until at least this many samples.
        min_duration_s: and each runs until a query is issued at least this long after its first.
            MLPerf requires 600 s for a submission; the default here is 10 s.
        warmup_queries: untimed queries before each scenario.
        performance_sample_count: held-out samples turned into inputs before timing, which the
            queries cycle through (loadgen's performance sample set).
        accuracy: also measure accuracy on the held-out data (after the timed runs).
        accuracy_limit: use only the first N held-out samples (None: all of them).
        threads: BLAS threads while benchmarking (None: as set); the report records the count
            in effect either way.

    >>> BenchmarkSettings(scenarios=("offline",), batch_size=32).scenarios
    ('offline',)
    """

    scenarios: tuple[str, ...] = SCENARIOS
    batch_size: int = 64
    min_queries: int = 1024
    min_duration_s: float = 10.0
    warmup_queries: int = 10
    performance_sample_count: int = 1024
    accuracy: bool = True
    accuracy_limit: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        self.scenarios = tuple(self.scenarios)
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown or not self.scenarios:
            raise ValueError(f"scenarios must be one or more of {', '.join(SCENARIOS)}, got "
                             f"{list(self.scenarios)}")
        for name, minimum in (("batch_size", 1), ("min_queries", 1), ("warmup_queries", 0),
                              ("performance_sample_count", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not (isinstance(self.min_duration_s, (int, float)) and math.isfinite(self.min_duration_s)
                and self.min_duration_s >= 0):
            raise ValueError(f"min_duration_s must be a finite number >= 0, got {self.min_duration_s!r}")
        if self.accuracy_limit is not None and (not isinstance(self.accuracy_limit, (int, np.integer))
                                                or self.accuracy_limit < 1):
            raise ValueError(f"accuracy_limit must be a positive integer or None, got "
                             f"{self.accuracy_limit!r}")
        if self.threads is not None and (not isinstance(self.threads, (int, np.integer))
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scenarios"] = list(self.scenarios)
        return d


def _timed_queries(run: Callable[[int], int], min_samples: int, min_duration_s: float,
                   clock: Callable[[], float]) -> tuple[list[float], int, float]:
    """Issue query k = 0, 1, ... (``run(k)`` returns its sample count) until at least
    ``min_samples`` samples were issued and the last query was issued ``min_duration_s`` or more
    after the first (loadgen's rule). Returns (latencies, samples, seconds from the first issue
    to the last completion)."""
    latencies: list[float] = []
    samples = 0
    start = None
    while True:
        issued = clock()
        start = issued if start is None else start
        samples += run(len(latencies))
        done = clock()
        latencies.append(done - issued)
        if samples >= min_samples and issued - start >= min_duration_s:
            return latencies, samples, done - start


def run_single_stream(query: Callable[[int], Any], min_queries: int, min_duration_s: float,
                      warmup_queries: int = 0,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """SingleStream: one sample per query, each issued when the previous one completed.

    Args:
        query: ``query(k)`` runs the k-th query (one sample) to completion.
        min_queries: issue at least this many queries,
        min_duration_s: and until one is issued this long after the first.
        warmup_queries: untimed calls before the first timed one.
        clock: seconds as a float (``time.perf_counter``; a fake clock in tests).

    Returns:
        ``queries``, ``duration_s``, ``queries_per_s``, ``latency_s`` (`latency_summary`) and
        the ``percentile_definition``.

    >>> ticks = iter(range(1000))
    >>> result = run_single_stream(lambda k: None, 5, 0.0, clock=lambda: next(ticks))
    >>> result["queries"], result["latency_s"]["p90"]
    (5, 1)
    """
    for k in range(warmup_queries):
        query(k)

    def one(k: int) -> int:
        query(k)
        return 1

    latencies, n, seconds = _timed_queries(one, min_queries, min_duration_s, clock)
    return {"queries": len(latencies), "duration_s": seconds,
            "queries_per_s": n / seconds if seconds > 0 else math.inf,
            "latency_s": latency_summary(latencies), "percentile_definition": PERCENTILE_DEFINITION}


def run_offline(query: Callable[[int], int], min_samples: int, min_duration_s: float,
                warmup_queries: int = 0,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Offline: batches issued back to back; throughput in samples per second.

    Args:
        query: ``query(k)`` runs the k-th batch to completion and returns its number of samples.
        min_samples: issue batches until at least this many samples were issued (MLPerf's
            Offline minimum is a sample count: its one query holds them all),
        min_duration_s: and until a batch is issued this long after the first.
        warmup_queries: untimed batches first.
        clock: seconds as a float.

    Returns:
        ``queries`` (batches), ``samples``, ``duration_s`` (first issue to last completion),
        ``samples_per_s`` = samples / duration_s, and the batches' ``latency_s``.

    >>> ticks = iter(range(0, 1000, 2))   # every clock reading 2 s later: each batch takes 2 s
    >>> result = run_offline(lambda k: 8, 20, 0.0, clock=lambda: next(ticks))   # 3 batches
    >>> result["samples"], result["duration_s"], result["samples_per_s"]
    (24, 10, 2.4)
    """
    for k in range(warmup_queries):
        query(k)
    latencies, samples, seconds = _timed_queries(query, min_samples, min_duration_s, clock)
    return {"queries": len(latencies), "samples": samples, "duration_s": seconds,
            "samples_per_s": samples / seconds if seconds > 0 else math.inf,
            "latency_s": latency_summary(latencies), "percentile_definition": PERCENTILE_DEFINITION}


# ------------------------------------------------------------------------------ sizes and memory


def model_memory_bytes(model: Any) -> dict[str, int]:
    """Bytes of the model's parameters (each shared one once) and registered buffers, and how
    many weights it holds quantized (buffers of integers, which ``parameters()`` leaves out: an
    int8 GPT-2 has 0.9M parameters and 123.5M quantized weights).

    >>> from tinytorch.core import nn
    >>> model_memory_bytes(nn.Linear(3, 2))    # (6 weights + 2 biases) x 4 bytes
    {'parameters': 8, 'quantized_weights': 0, 'parameter_bytes': 32, 'buffer_bytes': 0, 'memory_bytes': 32}
    """
    from tinytorch.core.quantization import quantized_weight_count

    params = list(model.parameters())
    parameter_bytes = sum(int(p.data.nbytes) for p in params)
    buffer_bytes = sum(int(b.data.nbytes) for b in model.buffers())
    return {"parameters": sum(int(p.data.size) for p in params), "quantized_weights": quantized_weight_count(model),
            "parameter_bytes": parameter_bytes, "buffer_bytes": buffer_bytes,
            "memory_bytes": parameter_bytes + buffer_bytes}


def disk_bytes(path: str | os.PathLike | None) -> dict[str, int | None]:
    """Bytes a checkpoint takes on disk: ``disk_bytes``, the whole file (or every file directly
    inside a directory), and ``disk_model_bytes``, the model's tensors alone: the ``model.*``
    tensors of a training checkpoint (which also holds optimizer state), every tensor of a file
    without that prefix, the ``*.safetensors`` files of a directory.

    >>> disk_bytes(None)
    {'disk_bytes': None, 'disk_model_bytes': None}
    """
    if path is None:
        return {"disk_bytes": None, "disk_model_bytes": None}
    from tinytorch.core import io
    from tinytorch.core.checkpoint import MODEL_PREFIX

    p = Path(path)
    if p.is_dir():
        files = [f for f in p.iterdir() if f.is_file()]
        return {"disk_bytes": sum(f.stat().st_size for f in files),
                "disk_model_bytes": sum(f.stat().st_size for f in files if f.suffix == ".safetensors")}
    tensors = io.inspect(p).tensors
    model = [t for t in tensors if t.name.startswith(MODEL_PREFIX)] or tensors
    return {"disk_bytes": p.stat().st_size, "disk_model_bytes": sum(t.nbytes for t in model)}


class PeakRSS:
    """The peak resident set size of this process since `reset`.

    On Linux the peak is reset by writing ``5`` to ``/proc/self/clear_refs`` and read from
    ``VmHWM`` in ``/proc/self/status``, so several benchmarks in one process each get their own
    peak. Where that is not possible it is ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
    (kilobytes on Linux, bytes on macOS): the peak since the process started. ``method`` says
    which one was used. A reset sets the peak to the current RSS, and memory that earlier work
    freed but the allocator kept (see ``tinytorch.core.memory``) is still resident: for figures
    that compare two models, benchmark each in its own process (as the CLI does).

    >>> probe = PeakRSS()
    >>> probe.reset()
    >>> probe.peak_bytes() > 0
    True
    """

    def __init__(self) -> None:
        self.method = "getrusage ru_maxrss (peak since the process started)"

    def reset(self) -> None:
        """Forget the peak so far (Linux); elsewhere the peak stays the process's."""
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._vm_hwm()
            self.method = "Linux /proc/self/status VmHWM, reset through /proc/self/clear_refs"
        except (OSError, ValueError):
            self.method = "getrusage ru_maxrss (peak since the process started)"

    @staticmethod
    def _vm_hwm() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise ValueError("no VmHWM in /proc/self/status")

    def peak_bytes(self) -> int:
        """The peak resident set size in bytes (since `reset` on Linux)."""
        if self.method.startswith("Linux"):
            return self._vm_hwm()
        try:
            import resource
        except ImportError:  # Windows: psutil's peak working set
            import psutil

            return int(psutil.Process().memory_info().peak_wset)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if platform.system() == "Darwin" else int(peak) * 1024


# ------------------------------------------------------------------------------ targets


@dataclass
class BenchmarkTarget:
    """A model and its held-out data, ready to benchmark (any ``Module``).

    Args:
        name: how reports and tables call it.
        model: the model; ``model(inputs(indices))`` is one query.
        inputs: sample indices (int array) -> the model's input for those samples as a batch.
        num_samples: how many held-out samples ``inputs`` can index.
        evaluate: ``evaluate(model, limit)`` -> the accuracy dict: ``metric`` (e.g.
            ``"accuracy"``, ``"val_loss"``), ``value``, ``higher_is_better``, ``dataset``,
            ``samples``, and any other figures; or None (no accuracy).
        checkpoint: the file or directory the model came from (its size is reported).
        description: a line about the model and its data (the kind of checkpoint).
        calibration: ``calibration(n)`` -> batches of about ``n`` training samples in all, as
            model inputs (static quantization calibrates on them), or None.
        finetune: ``finetune(model, steps)`` runs ``steps`` optimizer steps of core's Trainer on
            the training data (pruning masks hold), returns a dict of what it did; or None.
        save: ``save(model, path)`` writes an optimized model as a checkpoint that the same
            loader recognizes again (so it can be benchmarked), atomically; or None.

    >>> from tinytorch.core import Tensor, nn
    >>> t = BenchmarkTarget("m", nn.Linear(2, 1), lambda idx: Tensor(np.zeros((len(idx), 2))), 4)
    >>> t.model(t.inputs(np.arange(3))).shape
    (3, 1)
    """

    name: str
    model: Any
    inputs: Callable[[np.ndarray], Any]
    num_samples: int
    evaluate: Callable[[Any, int | None], dict[str, Any]] | None = None
    checkpoint: str | None = None
    description: str = ""
    calibration: Callable[[int], list[Any]] | None = None
    finetune: Callable[..., dict[str, Any]] | None = None
    save: Callable[[Any, str], None] | None = None

    def __post_init__(self) -> None:
        if not callable(self.inputs):
            raise TypeError(f"BenchmarkTarget {self.name!r}: inputs must be callable, got {self.inputs!r}")
        if not isinstance(self.num_samples, (int, np.integer)) or self.num_samples < 1:
            raise ValueError(f"BenchmarkTarget {self.name!r}: num_samples must be a positive "
                             f"integer, got {self.num_samples!r}")


def _loaders() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_target(path: str | os.PathLike, limit: int | None = None) -> BenchmarkTarget:
    """The `BenchmarkTarget` of a checkpoint file or directory, from whichever installed package
    recognizes it (``tinytorch.benchmarks`` entry points).

    Args:
        path: a checkpoint (tinytorch-vision or tinytorch-language training checkpoint, or a
            GPT-2 directory in Hugging Face's layout).
        limit: the package prepares at most this many held-out samples for accuracy.

    Raises:
        ValueError: the path does not exist, is not a checkpoint, or no installed package
            recognizes it (one line naming the path and what was found).

    >>> load_target("missing.safetensors")
    Traceback (most recent call last):
    ...
    ValueError: CHECKPOINT missing.safetensors: no such file or directory
    """
    from tinytorch.core import io

    p = Path(path)
    if not p.exists():
        raise ValueError(f"CHECKPOINT {path}: no such file or directory")
    kind = "directory"
    if not p.is_dir():
        try:
            metadata = io.load_metadata(p)
        except (ValueError, OSError) as e:
            raise ValueError(f"CHECKPOINT {path} is not a checkpoint: {e}") from None
        kind = f"safetensors file (metadata kind: {metadata.get('kind', 'none')})"
    loaders = _loaders()
    for name, ep in sorted(loaders.items()):
        try:
            load = ep.load()
        except Exception as e:  # a broken plugin must say so in one line
            raise ValueError(f"benchmark loader {name!r} ({ep.value}) failed to load: "
                             f"{type(e).__name__}: {e}") from e
        found = load(str(p), limit)
        if found is not None:
            if not isinstance(found, dict):
                raise TypeError(f"benchmark loader {name!r} must return a dict of BenchmarkTarget "
                                f"fields or None, got {type(found).__name__}")
            unknown = sorted(set(found) - {f.name for f in fields(BenchmarkTarget)})
            if unknown:
                raise TypeError(f"benchmark loader {name!r} returned unknown fields {unknown}")
            return BenchmarkTarget(**found)
    installed = ", ".join(sorted(loaders)) or "none (install tinytorch-vision or tinytorch-language)"
    raise ValueError(f"CHECKPOINT {path} is a {kind} that no installed package can benchmark; "
                     f"benchmark loaders: {installed}")


# ------------------------------------------------------------------------------ the report


@dataclass
class BenchmarkReport:
    """One benchmark run: what was measured, how, and on what machine (JSON: `to_json`).

    Attributes:
        name: the model's name.
        settings: `BenchmarkSettings.to_dict`.
        model: ``parameters``, ``parameter_bytes``, ``buffer_bytes``, ``memory_bytes``,
            ``disk_bytes`` and ``disk_model_bytes`` (`disk_bytes`; None without a checkpoint),
            ``checkpoint``, ``type``, ``description``, ``performance_samples``.
        single_stream: `run_single_stream`'s result, or None when not run.
        offline: `run_offline`'s result plus ``batch_size``, or None.
        accuracy: the target's accuracy dict, or None.
        memory: ``peak_rss_bytes`` (model loaded and the timed scenarios),
            ``peak_rss_with_accuracy_bytes`` (also the accuracy pass) and ``method``.
        machine: `HardwareSpec.to_dict` (or None), plus Python/NumPy versions under ``software``.
        contention: `ContentionProbe`'s figures while the scenarios ran.
        warning: why the figures may be too slow (a busy machine), else None.
        created: ISO time of the run.

    >>> report = BenchmarkReport("cnn", {"batch_size": 64}, {"parameters": 10})
    >>> BenchmarkReport.from_json(report.to_json()) == report
    True
    >>> report.to_dict()["schema_version"] == SCHEMA_VERSION
    True
    """

    name: str
    settings: dict[str, Any]
    model: dict[str, Any]
    single_stream: dict[str, Any] | None = None
    offline: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] | None = None
    software: dict[str, Any] = field(default_factory=dict)
    contention: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **asdict(self)}

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; with ``path`` also written there atomically."""
        text = json.dumps(self.to_dict(), indent=2, default=_json_default, allow_nan=True)
        if path is not None:
            from tinytorch.core.io import write_atomic

            write_atomic(path, (text + "\n").encode(), what="benchmark report")
        return text

    @classmethod
    def from_dict(cls, data: Any, source: str = "the report") -> BenchmarkReport:
        """A report from `to_dict`'s form; refuses another schema or schema version.

        >>> BenchmarkReport.from_dict({"schema": SCHEMA, "schema_version": 99})
        Traceback (most recent call last):
        ...
        ValueError: the report is a benchmark report of schema version 99; this version of tinytorch-perf reads version 1
        """
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source} is not a TinyTorch benchmark report (schema {found!r}, "
                             f"expected {SCHEMA!r})")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{source} is a benchmark report of schema version "
                             f"{data.get('schema_version')!r}; this version of tinytorch-perf reads "
                             f"version {SCHEMA_VERSION}")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in ("name", "settings", "model") if n not in data)
        if missing:
            raise ValueError(f"{source}: the benchmark report lacks {missing}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str, source: str = "the report") -> BenchmarkReport:
        """A report from `to_json`'s text (see `from_dict`); ``source`` names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not JSON: {e}") from None
        return cls.from_dict(data, source)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_report(path: str | os.PathLike) -> BenchmarkReport:
    """A report written by ``tito performance benchmark --out`` / `BenchmarkReport.to_json`.

    Raises:
        ValueError: no such file, not JSON, or not a benchmark report of this schema version.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.json"
    >>> _ = BenchmarkReport("cnn", {}, {"parameters": 10}).to_json(path)
    >>> read_report(path).model
    {'parameters': 10}
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"report {path}: no such file" if not p.exists() else
                         f"report {path} is not a regular file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"report {path} is not a benchmark report (not UTF-8 text)") from None
    return BenchmarkReport.from_json(text, source=f"report {path}")


# ------------------------------------------------------------------------------ running


def _software() -> dict[str, Any]:
    from importlib.metadata import version

    return {"python": platform.python_version(), "numpy": np.__version__,
            "tinytorch-perf": version("tinytorch-perf")}


def _contention_warning(contention: dict[str, Any]) -> str | None:
    if not contention.get("contended"):
        return None
    load = contention.get("load_1min")
    return (f"other processes used {contention.get('others_cores', 0):.2f} cores while the "
            f"scenarios ran" + (f" (load average {load:.2f})" if load is not None else "")
            + ": latencies are higher and throughput lower than on a quiet machine")


def run_benchmark(target: BenchmarkTarget, settings: BenchmarkSettings | None = None,
                  hardware: Any = "quick", clock: Callable[[], float] = time.perf_counter,
                  rss: PeakRSS | None = None) -> BenchmarkReport:
    """Benchmark ``target``: the scenarios of ``settings``, then accuracy.

    Args:
        target: the model and its held-out data (`load_target` for a checkpoint).
        settings: how to run (default `BenchmarkSettings()`).
        hardware: a `HardwareSpec`, ``"quick"`` (`get_hardware_spec(quick=True)`: the cached
            measurement, else a < 1 s estimate) or None (not recorded).
        clock: seconds as a float for the scenarios (a fake clock in tests).
        rss: a `PeakRSS` already reset (e.g. before loading the model, so loading counts; get
            the hardware spec before that reset); default: reset after the hardware spec.

    Returns:
        The `BenchmarkReport`.

    >>> from tinytorch.core import Tensor, nn
    >>> target = BenchmarkTarget("mlp", nn.Linear(8, 4), lambda idx: Tensor(np.ones((len(idx), 8))), 32)
    >>> report = run_benchmark(target, BenchmarkSettings(min_queries=16, min_duration_s=0.0,
    ...                                                  batch_size=8), hardware=None)
    >>> report.single_stream["queries"], report.offline["samples"], report.model["memory_bytes"]
    (16, 16, 144)
    """
    from tinytorch.core import no_grad
    from tinytorch.core.threads import get_num_threads, set_num_threads

    from .hardware import ContentionProbe, get_hardware_spec

    settings = settings or BenchmarkSettings()
    # before the peak is reset: a quick hardware measurement streams arrays of 32 MiB
    spec = get_hardware_spec(quick=True) if hardware == "quick" else hardware
    if rss is None:
        rss = PeakRSS()
        rss.reset()
    model = target.model
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()

    # The performance sample set, prepared before any timing (loadgen's LoadSamplesToRam).
    n = min(target.num_samples, settings.performance_sample_count)
    singles = [target.inputs(np.array([i])) for i in range(n)] if "single-stream" in settings.scenarios else []
    b = settings.batch_size
    batches = []
    if "offline" in settings.scenarios:
        starts = range(0, max(n, b), b)
        batches = [target.inputs(np.arange(s, s + b) % target.num_samples) for s in starts]

    def single(k: int) -> None:
        model(singles[k % len(singles)])

    def batch(k: int) -> int:
        model(batches[k % len(batches)])
        return b

    single_stream = offline = None
    accuracy = None
    threads_before = get_num_threads()
    if settings.threads is not None:
        set_num_threads(settings.threads)
    blas_threads = get_num_threads()
    try:
        with no_grad(), ContentionProbe() as probe:
            if singles:
                single_stream = run_single_stream(single, settings.min_queries, settings.min_duration_s,
                                                  settings.warmup_queries, clock)
            if batches:
                offline = {"batch_size": b, **run_offline(batch, settings.min_queries,
                                                          settings.min_duration_s,
                                                          settings.warmup_queries, clock)}
        peak = rss.peak_bytes()
        if settings.accuracy and target.evaluate is not None:
            with no_grad():
                accuracy = dict(target.evaluate(model, settings.accuracy_limit))
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
        if settings.threads is not None and threads_before is not None:
            set_num_threads(threads_before)
    contention = dict(probe.result)
    model_info = {**model_memory_bytes(model), **disk_bytes(target.checkpoint),
                  "checkpoint": target.checkpoint, "type": type(model).__name__,
                  "description": target.description, "performance_samples": n}
    return BenchmarkReport(
        name=target.name, settings=settings.to_dict(), model=model_info,
        single_stream=single_stream, offline=offline, accuracy=accuracy,
        memory={"peak_rss_bytes": peak, "peak_rss_with_accuracy_bytes": rss.peak_bytes(),
                "method": rss.method},
        machine=spec.to_dict() if spec is not None else None,
        software={**_software(), "blas_threads": blas_threads},
        contention=contention, warning=_contention_warning(contention),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


# ------------------------------------------------------------------------------ comparing runs


@dataclass
class ComparisonRow:
    """One metric across reports: values (None where a report lacks it) and each report's ratio
    to the first one (the baseline).

    >>> row = ComparisonRow("p90 latency", "ms", [2.0, 1.0], higher_is_better=False)
    >>> row.ratios
    [1.0, 0.5]
    """

    metric: str
    unit: str
    values: list[float | None]
    higher_is_better: bool | None = None

    @property
    def ratios(self) -> list[float | None]:
        """value / baseline value for each report (None where either is missing or the baseline is 0)."""
        base = self.values[0]
        return [None if v is None or base in (None, 0) else v / base for v in self.values]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": self.ratios}


def _get(report: BenchmarkReport, *keys: str) -> float | None:
    value: Any = asdict(report)
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else None


def compare_reports(reports: Sequence[BenchmarkReport]) -> list[ComparisonRow]:
    """Rows of the metrics the reports share, the first report being the baseline of every ratio.

    Args:
        reports: two or more reports.

    Returns:
        One `ComparisonRow` per metric that at least one report has: accuracy (each metric
        name the reports use), SingleStream p50/p90/p99 latency (ms), Offline throughput
        (samples/s), parameters, memory and disk bytes, peak RSS.

    Raises:
        ValueError: fewer than two reports.

    >>> a = BenchmarkReport("fp32", {}, {"parameters": 100}, offline={"samples_per_s": 200.0})
    >>> b = BenchmarkReport("int8", {}, {"parameters": 100}, offline={"samples_per_s": 300.0})
    >>> [(row.metric, row.ratios) for row in compare_reports([a, b])]
    [('Offline throughput', [1.0, 1.5]), ('parameters', [1.0, 1.0])]
    """
    if len(reports) < 2:
        raise ValueError(f"compare_reports needs two or more reports, got {len(reports)}")
    rows: list[ComparisonRow] = []
    metrics: dict[str, bool | None] = {}
    for r in reports:
        if r.accuracy and "metric" in r.accuracy:
            metrics.setdefault(r.accuracy["metric"], r.accuracy.get("higher_is_better"))
    for metric, higher in metrics.items():
        rows.append(ComparisonRow(metric, "", [r.accuracy.get("value") if r.accuracy and
                                               r.accuracy.get("metric") == metric else None
                                               for r in reports], higher))
    for p in ("p50", "p90", "p99"):
        values = [_get(r, "single_stream", "latency_s", p) for r in reports]
        rows.append(ComparisonRow(f"SingleStream {p} latency", "ms",
                                  [None if v is None else v * 1e3 for v in values], False))
    rows.append(ComparisonRow("Offline throughput", "samples/s",
                              [_get(r, "offline", "samples_per_s") for r in reports], True))
    for metric, keys, unit in (("parameters", ("model", "parameters"), ""),
                               ("quantized weights", ("model", "quantized_weights"), ""),
                               ("size in memory", ("model", "memory_bytes"), "MB"),
                               ("model tensors on disk", ("model", "disk_model_bytes"), "MB"),
                               ("checkpoint on disk", ("model", "disk_bytes"), "MB"),
                               ("peak RSS", ("memory", "peak_rss_bytes"), "MB")):
        values = [_get(r, *keys) for r in reports]
        if unit == "MB":
            values = [None if v is None else v / 1e6 for v in values]
        rows.append(ComparisonRow(metric, unit, values, False))
    # a run of float models holds no quantized weights: the row would only say 0 everywhere
    return [row for row in rows if any(v is not None for v in row.values)
            and not (row.metric == "quantized weights" and not any(row.values))]


def settings_differences(reports: Sequence[BenchmarkReport], labels: Sequence[str]) -> list[str]:
    """What differs between the runs besides the model: settings, accuracy data, BLAS threads,
    the machine. Each is a reason a ratio may not measure the model alone.

    >>> a = BenchmarkReport("a", {"batch_size": 64}, {})
    >>> b = BenchmarkReport("b", {"batch_size": 32}, {})
    >>> settings_differences([a, b], ["a", "b"])
    ['settings batch_size: a 64, b 32']
    """
    def differing(what: str, values: list[Any]) -> list[str]:
        if all(v == values[0] for v in values):
            return []
        return [f"{what}: " + ", ".join(f"{label} {v}" for label, v in zip(labels, values))]

    notes: list[str] = []
    for key in sorted({k for r in reports for k in r.settings}):
        notes += differing(f"settings {key}", [r.settings.get(key) for r in reports])
    for key in ("dataset", "samples"):
        notes += differing(f"accuracy {key}", [(r.accuracy or {}).get(key) for r in reports])
    notes += differing("BLAS threads", [r.software.get("blas_threads") for r in reports])
    notes += differing("machine", [(r.machine or {}).get("cpu_name") for r in reports])
    return notes


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:.3g}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def comparison_table(reports: Sequence[BenchmarkReport], labels: Sequence[str], width: int = 120):
    """A rich table: one row per metric, each report's value and its ratio to the first report.

    Args:
        reports: two or more reports; the first is the baseline.
        labels: a short name for each report (the file names, say).
        width: the console width (columns are left out, never wrapped).

    >>> a = BenchmarkReport("fp32", {}, {"parameters": 100})
    >>> b = BenchmarkReport("small", {}, {"parameters": 50})
    >>> [c.header for c in comparison_table([a, b], ["fp32", "small"]).columns]
    ['metric', 'fp32', 'small', 'small / fp32']
    """
    from .tables import Column, fitted_table

    rows = compare_reports(reports)
    base = labels[0]
    columns = [Column("metric", "left", 10)]
    for i, label in enumerate(labels):
        columns.append(Column(label, priority=9 - i))
        if i:
            columns.append(Column(f"{label} / {base}", priority=8 - i))
    cells = []
    for row in rows:
        line = [f"{row.metric} ({row.unit})" if row.unit else row.metric]
        for i, (value, ratio) in enumerate(zip(row.values, row.ratios)):
            line.append(_fmt(value))
            if i:
                line.append("-" if ratio is None else f"{ratio:.3f}x")
        cells.append(line)
    title = f"Benchmark runs compared; every ratio is run / {base} (the baseline)"
    return fitted_table(title, columns, cells, width)
