"""What the profiler's instrumentation costs, and how much of the step its rows account for.

For each registered model (default: tinygpt and small_cnn, where installed): the plain step
(forward + backward) and the instrumented step, alternating, medians of the repeats, in wall
time (what the profiler reports) and in this process's CPU time on one BLAS thread (which other
processes' load does not inflate, so it shows what the instrumentation itself costs); the rows'
coverage; and the instrumentation's cost per op on a chain of 2,000 tiny ops (best of 7). The
load average and the CPU time other processes used during the run are reported too: on a busy
2-core machine wall times are not comparable run to run.

Usage: uv run python benchmarks/perf_profiler_overhead.py [MODEL ...] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import emit

from tinytorch.core import nn, randn
from tinytorch.core.threads import thread_limit
from tinytorch.perf import ModelProfiler, available_models, load_model
from tinytorch.perf.flops import ROOT, _backward
from tinytorch.perf.hardware import ContentionProbe
from tinytorch.perf.profiler import _Instrumentation


class _Chain(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        for _ in range(self.n):
            x = x * 1.0
        return x


def per_op_cost(n: int = 2000, repeats: int = 7) -> dict:
    model, x = _Chain(n), randn(2, 2, requires_grad=True)

    def plain() -> float:
        start = time.perf_counter()
        _backward(model(x))
        return time.perf_counter() - start

    def instrumented() -> float:
        inst = _Instrumentation(model, {ROOT}, time.perf_counter)
        try:
            step = inst.step(x, True)
            return step.forward_s + step.backward_s
        finally:
            inst.remove()

    p = min(plain() for _ in range(repeats))
    q = min(instrumented() for _ in range(repeats))
    return {"ops": n, "plain_us_per_op": p / n * 1e6, "instrumented_us_per_op": q / n * 1e6,
            "instrumentation_us_per_op": (q - p) / n * 1e6}


def cpu_time_per_step(model, x, repeats: int) -> dict:
    """Median process CPU time of plain and instrumented steps, alternating, on one thread."""
    rows = {ROOT} | {name for name, _ in model.named_modules() if name}
    plain, instrumented = [], []
    with thread_limit(1):
        for _ in range(repeats):
            start = time.process_time()
            _backward(model(x))
            plain.append(time.process_time() - start)
            inst = _Instrumentation(model, rows, time.perf_counter)
            try:
                start = time.process_time()
                inst.step(x, True)
                instrumented.append(time.process_time() - start)
            finally:
                inst.remove()
            for p in model.parameters():
                p.grad = None
    p, q = statistics.median(plain), statistics.median(instrumented)
    return {"plain_cpu_ms": p * 1e3, "instrumented_cpu_ms": q * 1e3, "cpu_overhead": q / p}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    names = args.models or [m for m in ("tinygpt", "small_cnn") if m in available_models()]
    results = {}
    with ContentionProbe() as probe:
        for name in names:
            model, x = load_model(name)
            r = ModelProfiler(model, x, name=name).profile(repeats=args.repeats, warmup=2)
            results[name] = {"plain_step_ms": r.total_s * 1e3,
                             "instrumented_step_ms": r.profiled_s * 1e3,
                             "overhead": r.overhead, "coverage": r.coverage,
                             "rows_sum_ms": r.layer_sum_s * 1e3,
                             "ops_per_forward": sum(sum(lc.ops.values())
                                                    for lc in r.trace.layers.values()),
                             **cpu_time_per_step(model, x, args.repeats)}
        cost = per_op_cost()
    emit("perf_profiler_overhead", {"models": results, "per_op": cost,
                                    "load_1min": os.getloadavg()[0], "contention": probe.result})


if __name__ == "__main__":
    main()
