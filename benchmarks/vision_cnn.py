"""Training throughput of a CIFAR-10-shaped CNN (batch 64), against PyTorch and raw NumPy GEMM.

The network (tinytorch.vision.DeepCNN): conv 3→32→32, pool, 32→64→64, pool, 64→128, pool,
linear to 10; BatchNorm and ReLU after each conv (pool before ReLU, which is the same function).
One step = forward, cross-entropy, backward, AdamW step. Ours and PyTorch (same thread count)
are measured alternately for ``--rounds`` rounds; ``ratio_to_pytorch`` is the median of the
rounds' ratios.

Targets (issue 15): >= 0.5 of PyTorch eager's images/s on 2 BLAS threads and >= 0.7 on one;
peak RSS <= 0.5 GiB.
Without PyTorch (TINYTORCH_REFERENCE_PYTHON unset) it reports the achieved GFLOP/s against a raw
NumPy float32 GEMM measured in the same run.

With ``--layers`` it also prints a per-layer cost account (the table the speed work was chosen
from): each op's forward and backward time inside real training steps, against the time of the
same GEMMs alone (conv, linear) or of one memory pass over the layer's input (elementwise layers),
and for each conv the parts: padding, im2col, forward GEMM, weight-gradient GEMM, and the input
gradient (im2col of the gradient + GEMM). It runs on any tree that has ``tinytorch.vision``; the
conv parts need the helpers of the current ``vision.functional``.

Usage: uv run python benchmarks/vision_cnn.py [--repeats N] [--rounds R] [--threads N|auto] [--layers]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from collections import defaultdict

import numpy as np
from _common import emit, median_time, run_reference

from tinytorch.core import Tensor, manual_seed, nn, optim
from tinytorch.core.autograd import register_op_observer
from tinytorch.core.threads import get_num_threads, set_num_threads
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

# Trees before op names (commit f48b65b) are told apart by class name, for before/after tables.
OLD_OP_NAMES = {"Conv2dFn": "conv2d", "BatchNorm2dFn": "batch_norm2d", "MaxPool2dFn": "max_pool2d",
                "ReLU": "relu", "Reshape": "reshape", "Linear": "linear", "CrossEntropy": "cross_entropy"}


def layer_account(step, repeats: int) -> list[dict]:
    """Per-op forward/backward milliseconds of ``step``, the median over ``repeats`` steps.

    Op calls are matched to layers by their Function instance (the same in both phases), so
    each row is one layer call in forward order.
    """
    samples: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows: list[dict] = []

    def observe(phase, fn, inputs, output, seconds, *settings):
        if phase == "forward":
            index[id(fn)] = len(order)
            op = getattr(fn, "op", None) or OLD_OP_NAMES.get(type(fn).__name__, type(fn).__name__)
            order.append((op, tuple(inputs[0].shape)))
        if id(fn) in index:
            samples[index[id(fn)]][phase].append(seconds * 1e3)

    for _ in range(repeats):
        index: dict[int, int] = {}
        order: list[tuple] = []
        with register_op_observer(observe):
            step()
    for i, (op, shape) in enumerate(order):
        fwd, bwd = samples[i]["forward"], samples[i]["backward"]
        rows.append({"op": op, "input": list(shape), "forward_ms": statistics.median(fwd),
                     "backward_ms": statistics.median(bwd) if bwd else 0.0})
    return rows


def reference_costs(row: dict, repeats: int) -> dict:
    """The floor of a layer: its GEMMs alone (conv as im2col GEMMs, linear) or one memory pass
    (read the input, write an array of its size) for an elementwise layer."""
    rng = np.random.default_rng(0)
    shape = row["input"]
    if row["op"] == "conv2d":
        n, cin, h, w = shape
        cout = next(o for i, o, hw in CONVS if i == cin and hw == h)
        m, k = n * h * w, 9 * cin
        cols = rng.standard_normal((m, k), dtype=np.float32)
        wmat = rng.standard_normal((k, cout), dtype=np.float32)
        g = rng.standard_normal((m, cout), dtype=np.float32)
        gcols = rng.standard_normal((m, 9 * cout), dtype=np.float32)
        wflip = rng.standard_normal((9 * cout, cin), dtype=np.float32)
        fwd = median_time(lambda: cols @ wmat, repeats=repeats)
        dw = median_time(lambda: cols.T @ g, repeats=repeats)
        dx = median_time(lambda: gcols @ wflip, repeats=repeats) if cin != 3 else 0.0
        return {"gemm_forward_ms": fwd * 1e3, "gemm_backward_ms": (dw + dx) * 1e3}
    if row["op"] == "linear":
        n, i = shape
        x, wt = rng.standard_normal((n, i), dtype=np.float32), rng.standard_normal((i, 10), dtype=np.float32)
        t = median_time(lambda: x @ wt, repeats=repeats)
        return {"gemm_forward_ms": t * 1e3, "gemm_backward_ms": 2 * t * 1e3}
    src = rng.standard_normal(shape, dtype=np.float32)
    dst = np.empty_like(src)
    return {"memory_pass_ms": median_time(lambda: np.copyto(dst, src), repeats=repeats) * 1e3}


def conv_parts(repeats: int) -> list[dict]:
    """Milliseconds of each part of every conv of the model (batch 64, float32), timed alone."""
    try:
        from tinytorch.vision import functional as VF

        VF._im2col, VF._pad  # noqa: B018 - an older tree without the helpers has no parts
    except (ImportError, AttributeError):
        return []
    return [_conv_part_row(VF, cin, cout, hw, repeats) for cin, cout, hw in CONVS]


def _conv_part_row(VF, cin: int, cout: int, hw: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, cin, hw, hw), dtype=np.float32)
    g = rng.standard_normal((BATCH, hw, hw, cout), dtype=np.float32)
    wmat = rng.standard_normal((9 * cin, cout), dtype=np.float32)
    wflip = rng.standard_normal((9 * cout, cin), dtype=np.float32)
    bias = rng.standard_normal(cout, dtype=np.float32)
    xh = VF._nhwc(x)
    xp = VF._pad(xh, 1, 1)
    cols = VF._im2col(xp, (3, 3), (hw, hw), (1, 1), (1, 1))
    gp = VF._pad(g, 1, 1)
    gcols = VF._im2col(gp, (3, 3), (hw, hw), (1, 1), (1, 1))
    out = cols @ wmat
    g2d = g.reshape(-1, cout)

    def ms(fn):
        return round(median_time(fn, repeats=repeats) * 1e3, 2)

    row = {"conv": f"{cin}->{cout} @{hw}x{hw}", "nchw_to_nhwc": ms(lambda: VF._nhwc(x)),
           "pad": ms(lambda: VF._pad(xh, 1, 1)),
           "im2col": ms(lambda: VF._im2col(xp, (3, 3), (hw, hw), (1, 1), (1, 1))),
           "gemm_forward": ms(lambda: cols @ wmat), "bias_add": ms(lambda: np.add(out, bias, out=out)),
           "gemm_weight_grad": ms(lambda: cols.T @ g2d)}
    if cin != 3:  # the first conv needs no input gradient
        row |= {"grad_pad": ms(lambda: VF._pad(g, 1, 1)),
                "grad_im2col": ms(lambda: VF._im2col(gp, (3, 3), (hw, hw), (1, 1), (1, 1))),
                "gemm_input_grad": ms(lambda: gcols @ wflip)}
    return row


def print_account(rows: list[dict], parts: list[dict], step_ms: float) -> None:
    print(f"{'layer':<14}{'input':<20}{'fwd ms':>8}{'bwd ms':>8}{'floor fwd':>10}{'floor bwd':>10}  floor",
          file=sys.stderr)
    for r in rows:
        if "memory_pass_ms" in r:
            f = b = r["memory_pass_ms"]
            kind = "1 memory pass"
        elif "gemm_forward_ms" in r:
            f, b, kind = r["gemm_forward_ms"], r["gemm_backward_ms"], "GEMMs alone"
        else:
            f = b = float("nan")
            kind = ""
        print(f"{r['op']:<14}{str(tuple(r['input'])):<20}{r['forward_ms']:8.2f}{r['backward_ms']:8.2f}"
              f"{f:10.2f}{b:10.2f}  {kind}", file=sys.stderr)
    total = sum(r["forward_ms"] + r["backward_ms"] for r in rows)
    print(f"ops total {total:.1f} ms of a {step_ms:.1f} ms step", file=sys.stderr)
    if parts:
        keys = list(dict.fromkeys(k for p in parts for k in p if k != "conv"))
        print(f"{'conv parts (ms)':<20}" + "".join(f"{k:>17}" for k in keys), file=sys.stderr)
        for p in parts:
            print(f"{p['conv']:<20}" + "".join(f"{p.get(k, float('nan')):17.2f}" for k in keys), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", default="auto", help="BLAS threads for both sides: N or auto (all CPUs)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate ours and PyTorch this many times; report the median ratio")
    parser.add_argument("--layers", action="store_true",
                        help="also account the time per layer and per conv part (table on stderr)")
    args = parser.parse_args()
    threads = (os.cpu_count() or 1) if args.threads == "auto" else int(args.threads)
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

    # On a shared machine the load changes from minute to minute: alternate the two sides and
    # take the median ratio of the rounds rather than one measurement of each.
    torch_code = TORCH_CODE.replace("REPEATS", str(args.repeats)).replace("THREADS", str(threads))
    rounds = []
    for _ in range(max(1, args.rounds)):
        ours_s = median_time(step, repeats=args.repeats, warmup=3)
        # PyTorch gets the same thread count, so the ratio compares implementations, not threads.
        ref = run_reference(torch_code)
        rounds.append({"tinytorch_step_seconds": ours_s, "pytorch_step_seconds": ref.get("step_seconds"),
                       "ratio": ref["step_seconds"] / ours_s if "step_seconds" in ref else None})
    reference = ref
    ours = statistics.median(r["tinytorch_step_seconds"] for r in rounds)
    account = None
    if args.layers:
        rows = [r | reference_costs(r, args.repeats) for r in layer_account(step, args.repeats)]
        account = {"layers": rows, "conv_parts_ms": conv_parts(args.repeats)}
        print_account(rows, account["conv_parts_ms"], ours * 1e3)

    # Raw GEMM of the same total size as the step's biggest conv GEMM, as a roofline of sorts.
    a = rng.standard_normal((BATCH * 32 * 32, 32 * 9), dtype=np.float32)
    b = rng.standard_normal((32 * 9, 32), dtype=np.float32)
    c = rng.standard_normal((1024, 1024), dtype=np.float32)
    gemm_conv = median_time(lambda: a @ b, repeats=args.repeats)
    gemm_square = median_time(lambda: c @ c, repeats=args.repeats)
    flops = step_flops()

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
        "target_rss_gib": 0.5,
        "target_fraction_of_pytorch": 0.7 if threads == 1 else 0.5,
        "pytorch": reference,
    }
    if account is not None:
        result["per_layer"] = account
    if "step_seconds" in reference:
        torch_s = statistics.median(r["pytorch_step_seconds"] for r in rounds)
        result["pytorch"] |= {"step_seconds": torch_s, "images_per_sec": BATCH / torch_s}
        result["rounds"] = rounds
        result["ratio_to_pytorch"] = statistics.median(r["ratio"] for r in rounds)
    emit("vision_cnn", result)


if __name__ == "__main__":
    main()
