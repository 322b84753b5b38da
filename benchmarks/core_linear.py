"""Linear(256 -> 1024) forward+backward on a (2048, 256) float32 input, against raw NumPy GEMM.

Targets (issue: foundation): >= 0.70 of the raw GEMM throughput; <= 15 us per tracked `a + b`.
Usage: uv run python benchmarks/core_linear.py [--repeats N]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import emit, median_time, run_reference

from tinytorch.core import Tensor
from tinytorch.core import functional as F

N, IN, OUT = 2048, 256, 1024

TORCH_CODE = f"""
import json, time, statistics, torch
torch.manual_seed(0)
x = torch.randn({N}, {IN}, requires_grad=True)
layer = torch.nn.Linear({IN}, {OUT})
g = torch.randn({N}, {OUT})
def step():
    x.grad = None; layer.zero_grad(set_to_none=True)
    layer(x).backward(g)
for _ in range(3): step()
ts = []
for _ in range(9):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
a = torch.randn(4, 4, requires_grad=True); b = torch.randn(4, 4, requires_grad=True)
k = 20000
t = time.perf_counter()
for _ in range(k): a + b
op = (time.perf_counter() - t) / k
print(json.dumps({{"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "linear_seconds": statistics.median(ts), "add_us": op * 1e6}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((N, IN), dtype=np.float32)
    w_np = (rng.standard_normal((OUT, IN), dtype=np.float32) / 16).astype(np.float32)
    b_np = np.zeros(OUT, dtype=np.float32)
    g_np = rng.standard_normal((N, OUT), dtype=np.float32)
    flops = 3 * 2 * N * IN * OUT  # forward x·Wᵀ, backward g·W and gᵀ·x

    def raw_gemm():
        x_np @ w_np.T
        g_np @ w_np
        g_np.T @ x_np

    x = Tensor(x_np, requires_grad=True)
    w = Tensor(w_np, requires_grad=True)
    b = Tensor(b_np, requires_grad=True)

    def tinytorch_step():
        x.grad = w.grad = b.grad = None
        F.linear(x, w, b).backward(g_np)

    raw = median_time(raw_gemm, repeats=args.repeats)
    ours = median_time(tinytorch_step, repeats=args.repeats)

    a = Tensor(rng.standard_normal((4, 4), dtype=np.float32), requires_grad=True)
    c = Tensor(rng.standard_normal((4, 4), dtype=np.float32), requires_grad=True)
    a_np, c_np = a.data, c.data
    k = 20000
    add_ours = median_time(lambda: [a + c for _ in range(k)], repeats=5, warmup=1) / k
    add_raw = median_time(lambda: [a_np + c_np for _ in range(k)], repeats=5, warmup=1) / k

    reference = run_reference(TORCH_CODE)
    result = {
        "shape": {"input": [N, IN], "linear": [IN, OUT]},
        "flops_per_step": flops,
        "raw_numpy_gemm": {"seconds": raw, "gflops": flops / raw / 1e9},
        "tinytorch_linear_fwd_bwd": {"seconds": ours, "gflops": flops / ours / 1e9},
        "fraction_of_raw_gemm": raw / ours,
        "target_fraction": 0.70,
        "add_4x4_with_grad_us": add_ours * 1e6,
        "add_4x4_raw_numpy_us": add_raw * 1e6,
        "target_add_us": 15.0,
        "pytorch": reference,
    }
    if "linear_seconds" in reference:
        result["pytorch"]["gflops"] = flops / reference["linear_seconds"] / 1e9
        result["ratio_to_pytorch"] = reference["linear_seconds"] / ours
    emit("core_linear", result)


if __name__ == "__main__":
    main()
