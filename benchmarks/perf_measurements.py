"""Checks of tinytorch.perf's own measurements (printed as JSON, not timed tests).

* measured GEMM peak vs a direct NumPy float32 GEMM timing in the same process (target: 10%);
* memory bandwidth vs a direct large-array copy timing (target: 15%);
* `tito performance hardware` wall time, full (<= 20 s) and --quick (<= 1 s);
* profiler overhead (profiled / unprofiled forward+backward, target <= 1.15x) and the per-layer
  times' sum against the measured total (target: within 10%) for every registered model.

Usage: uv run python benchmarks/perf_measurements.py [--models small_cnn tinygpt] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import emit, median_time

from tinytorch.perf import ModelProfiler, available_models, get_hardware_spec, load_model


def direct_gemm(n: int = 2048) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b, c = a.copy(), np.empty_like(a)
    return 2 * n**3 / median_time(lambda: np.matmul(a, b, out=c), repeats=5, warmup=1) / 1e9


def direct_copy(nbytes: int) -> float:
    src, dst = np.ones(nbytes // 8), np.zeros(nbytes // 8)
    return 2 * nbytes / median_time(lambda: np.copyto(dst, src), repeats=5, warmup=1) / 1e9


def cli_seconds(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tito", "performance", "hardware", *args],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TINYTORCH_CACHE_DIR": cache}
        result["cli_hardware_quick_s"] = cli_seconds(["--quick"], env)  # empty cache: measures
        result["cli_hardware_full_s"] = cli_seconds(["--refresh"], env)
    # direct timings before and after the spec's, so machine noise shows as their spread
    gemm_before = direct_gemm()
    spec = get_hardware_spec(refresh=True)
    copy = direct_copy(spec.stream_array_bytes)
    gemm = (gemm_before + direct_gemm()) / 2
    result["hardware"] = spec.to_dict()
    result["gemm"] = {"spec_gflops": spec.measured_peak_gflops, "direct_gflops": gemm, "direct_before": gemm_before,
                      "ratio": spec.measured_peak_gflops / gemm}
    result["bandwidth"] = {"spec_gbs": spec.memory_bandwidth_gbs, "direct_copy_gbs": copy,
                           "ratio": spec.memory_bandwidth_gbs / copy}
    result["profiler"] = {}
    for name in args.models or available_models():
        model, x = load_model(name)
        r = ModelProfiler(model, x, name=name).profile(repeats=args.repeats, warmup=2)
        result["profiler"][name] = {"total_ms": r.total_s * 1e3, "profiled_ms": r.profiled_s * 1e3,
                                    "overhead": r.overhead, "layer_sum_ms": r.layer_sum_s * 1e3,
                                    "coverage": r.coverage}
    emit("perf_measurements", result)


if __name__ == "__main__":
    main()
