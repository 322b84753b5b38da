"""Shared helpers for the benchmark scripts: timing, the reference interpreter and JSON output.

Benchmarks print one JSON document on stdout (and write it to benchmarks/results/NAME.json).
The PyTorch half of a comparison runs in a subprocess of the interpreter named by
``TINYTORCH_REFERENCE_PYTHON``; without it the reference is reported as skipped.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, number: int = 1) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def machine() -> dict:
    import numpy as np

    info = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
            "machine": platform.machine()}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")}
                        for p in threadpool_info()]
    except ImportError:
        pass
    return info


def run_reference(code: str, timeout: float = 900) -> dict:
    """Run ``code`` (which prints one JSON line last) under the reference interpreter."""
    python = os.environ.get("TINYTORCH_REFERENCE_PYTHON")
    if not python:
        return {"skipped": "TINYTORCH_REFERENCE_PYTHON is not set (point it at a Python with torch)"}
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"skipped": f"reference failed: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(name: str, result: dict) -> None:
    result = {"benchmark": name, "machine": machine(), **result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
