"""Training throughput of a CIFAR-10-shaped CNN (batch 64), against PyTorch and raw NumPy GEMM.

The network (tinytorch.vision.DeepCNN): conv 3→32→32, pool, 32→64→64, pool, 64→128, pool,
linear to 10; BatchNorm and ReLU after each conv (pool before ReLU, which is the same function).
One step = forward, cross-entropy, backward, AdamW step.

Targets (issue: tinytorch-vision): >= 0.35 of PyTorch eager's images/s; peak RSS <= 1.5 GiB.
Without PyTorch (TINYTORCH_REFERENCE_PYTHON unset) it reports the achieved GFLOP/s against a raw
NumPy float32 GEMM measured in the same run.

Usage: uv run python benchmarks/vision_cnn.py [--repeats N] [--threads N|auto]
"""

from __future__ import annotations

import argparse
import resource
import sys

import numpy as np
from _common import emit, median_time, run_reference

from tinytorch.core import Tensor, manual_seed, nn, optim
from tinytorch.core.threads import auto_threads, get_num_threads, set_num_threads
from tinytorch.vision import DeepCNN

BATCH = 64
# Conv layers (Cin, Cout, H=W) of DeepCNN on 32x32 input, and the final Linear.
CONVS = [(3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8)]
LINEAR = (128 * 4 * 4, 10)

TORCH_CODE = f"""
import json, time, statistics, torch
torch.manual_seed(0)
torch.set_num_threads(THREADS)
def block(i, o, pool):
    layers = [torch.nn.Conv2d(i, o, 3, padding=1, bias=False), torch.nn.BatchNorm2d(o), torch.nn.ReLU()]
    return layers + ([torch.nn.MaxPool2d(2)] if pool else [])
model = torch.nn.Sequential(*block(3, 32, False), *block(32, 32, True), *block(32, 64, False),
                            *block(64, 64, True), *block(64, 128, True), torch.nn.Flatten(),
                            torch.nn.Linear(128 * 16, 10))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randn({BATCH}, 3, 32, 32); y = torch.randint(0, 10, ({BATCH},))
loss_fn = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
for _ in range(3): step()
ts = []
for _ in range(REPEATS):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
print(json.dumps({{"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "step_seconds": statistics.median(ts)}}))
"""


def step_flops() -> int:
    """Matmul/conv FLOPs of one training step (1 multiply-add = 2 FLOPs): forward, plus the
    input and weight gradients (2x forward) except for the first conv, whose input needs none."""
    total = 0
    for i, (cin, cout, hw) in enumerate(CONVS):
        fwd = 2 * BATCH * cout * hw * hw * cin * 9
        total += fwd * (2 if i == 0 else 3)
    return total + 3 * 2 * BATCH * LINEAR[0] * LINEAR[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", default="auto", help="BLAS threads for both sides: N or auto")
    args = parser.parse_args()
    threads = auto_threads() if args.threads == "auto" else int(args.threads)
    set_num_threads(threads)

    manual_seed(0)
    model = DeepCNN((3, 32, 32), 10)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32))
    y = rng.integers(0, 10, BATCH)

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    ours = median_time(step, repeats=args.repeats, warmup=3)

    # Raw GEMM of the same total size as the step's biggest conv GEMM, as a roofline of sorts.
    a = rng.standard_normal((BATCH * 32 * 32, 32 * 9), dtype=np.float32)
    b = rng.standard_normal((32 * 9, 32), dtype=np.float32)
    c = rng.standard_normal((1024, 1024), dtype=np.float32)
    gemm_conv = median_time(lambda: a @ b, repeats=args.repeats)
    gemm_square = median_time(lambda: c @ c, repeats=args.repeats)
    flops = step_flops()

    # PyTorch gets the same thread count, so the ratio compares implementations, not threads.
    reference = run_reference(TORCH_CODE.replace("REPEATS", str(args.repeats)).replace("THREADS", str(threads)))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    result = {
        "model": "DeepCNN (conv 3-32-32-pool-64-64-pool-128-pool-linear, BatchNorm+ReLU)",
        "batch": BATCH,
        "blas_threads": get_num_threads(),
        "tinytorch": {"step_seconds": ours, "images_per_sec": BATCH / ours,
                      "gflops": flops / ours / 1e9},
        "flops_per_step": flops,
        "raw_numpy_gemm": {
            "conv2_shaped_gflops": 2 * a.shape[0] * a.shape[1] * b.shape[1] / gemm_conv / 1e9,
            "square_1024_gflops": 2 * 1024**3 / gemm_square / 1e9,
        },
        "fraction_of_raw_gemm": (flops / ours) / (2 * 1024**3 / gemm_square),
        "peak_rss_bytes": peak_rss,
        "peak_rss_gib": peak_rss / 2**30,
        "target_rss_gib": 1.5,
        "target_fraction_of_pytorch": 0.35,
        "pytorch": reference,
    }
    if "step_seconds" in reference:
        result["pytorch"]["images_per_sec"] = BATCH / reference["step_seconds"]
        result["ratio_to_pytorch"] = reference["step_seconds"] / ours
    emit("vision_cnn", result)


if __name__ == "__main__":
    main()
