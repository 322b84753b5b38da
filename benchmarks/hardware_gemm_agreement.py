"""`tito performance hardware`'s measured GEMM peak against a direct NumPy GEMM (issue 21 §5).

Each round runs, in fresh processes one after the other, the CLI (``tito performance hardware
--refresh --json`` on an empty cache) and a plain NumPy float32 GEMM of the same size timed the
same way (one warm-up, best of 5 repeats, 2·n³ FLOPs), so both see the same minute of machine
load. Reported: every round's figures and 1-minute load average, the median of each side, and
their ratio (target: within 10%). On a busy machine both sides drop and scatter; compare the
ratio, and the CLI's own ``others_cores`` (CPU used by other processes while it measured).

Usage: uv run python benchmarks/hardware_gemm_agreement.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _common import emit

from tinytorch.perf.hardware import GEMM_REPEATS, GEMM_SIZE

# Independent of tinytorch: NumPy only, so a fault in measure_gemm_peak cannot hide here.
DIRECT_GEMM = f"""
import time, numpy as np
n, repeats = {GEMM_SIZE}, {GEMM_REPEATS}
rng = np.random.default_rng(1)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = np.empty((n, n), dtype=np.float32)
np.matmul(a, b, out=c)
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    np.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - start)
print(2 * n**3 / best / 1e9)
"""


def direct_gflops() -> float:
    proc = subprocess.run([sys.executable, "-c", DIRECT_GEMM], check=True, capture_output=True,
                          text=True)
    return float(proc.stdout)


def cli_spec(cache_dir: str) -> dict:
    env = {**os.environ, "TINYTORCH_CACHE_DIR": cache_dir}
    proc = subprocess.run([sys.executable, "-m", "tito", "performance", "hardware", "--refresh",
                           "--json"], check=True, capture_output=True, text=True, env=env)
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(args.rounds):
            load = os.getloadavg()[0]
            spec = cli_spec(cache)
            rounds.append({"load_1min": load, "cli_gflops": spec["measured_peak_gflops"],
                           "cli_others_cores": spec["contention"].get("others_cores"),
                           "direct_gflops": direct_gflops()})
    cli = statistics.median(r["cli_gflops"] for r in rounds)
    direct = statistics.median(r["direct_gflops"] for r in rounds)
    emit("hardware_gemm_agreement", {
        "gemm": {"n": GEMM_SIZE, "repeats": GEMM_REPEATS, "statistic": "best of repeats"},
        "rounds": rounds,
        "cli_median_gflops": cli, "direct_median_gflops": direct, "ratio": cli / direct,
        "ratio_per_round_median": statistics.median(r["cli_gflops"] / r["direct_gflops"]
                                                    for r in rounds),
        "target": "ratio within 0.9-1.1",
    })


if __name__ == "__main__":
    main()
