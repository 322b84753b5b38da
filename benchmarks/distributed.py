"""Data-parallel training over MPI (issue 12): 2 ranks against one process with 2 threads, and PyTorch.

Two models, one training step = forward, cross-entropy, backward, AdamW step on the global batch:
- ``cnn``: the vision benchmark's CIFAR-shaped DeepCNN (benchmarks/vision_cnn.py), global batch 64;
- ``gpt``: the seed TinyGPT (V65 D256 H8 L4 T128), global batch 16.

Each round measures, one after the other: our single process with 2 BLAS threads (the whole
batch), our 2 ranks (``tinytorch.core.launch``, one BLAS thread each, half the batch each,
``DistributedDataParallel`` averaging the gradients) and PyTorch eager with 2 threads (in
``$TINYTORCH_REFERENCE_PYTHON``; skipped, saying so, when unset). A run's figure is the median
step time of rank 0 over ``--repeats`` steps after warm-up; ratios are taken within a round and
the median over ``--rounds`` rounds is reported (the machine is shared: load average printed).
The Allreduce time per step is the time spent in DDP's gradient averaging on rank 0 (bucket
packing, the MPI Allreduce, the division), with its share of the step.

Targets: cnn 2 ranks >= 1.7x our single process and >= 0.6x PyTorch; gpt >= 1.15x and >= 1.0x.
Our single process with one thread is measured too: N one-thread ranks can at most reach N times
it, so ``ranks_N_ceiling_vs_single`` (N x 1-thread / 2-thread) bounds ``ranks_N_vs_single``, and
``ranks_N_scaling_efficiency`` (ranks / (N x 1-thread)) says how close the ranks come to it.

Usage: uv run python benchmarks/distributed.py [--rounds R] [--repeats N] [--models cnn,gpt] [--nproc 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import emit, run_reference

HERE = Path(__file__).resolve()
THREADS = 2
CNN_BATCH = 64
GPT = dict(V=65, D=256, H=8, L=4, T=128, B=16)


# ------------------------------------------------------------------ one run (a rank, or the single process)
def _worker(model_name: str, repeats: int) -> None:
    import numpy as np

    from tinytorch.core import distributed as dist
    from tinytorch.core import functional as F
    from tinytorch.core import manual_seed
    from tinytorch.core.nn.parallel import DistributedDataParallel
    from tinytorch.core.optim import AdamW
    from tinytorch.core.threads import set_num_threads

    dist.init_process_group()
    world, rank = dist.get_world_size(), dist.get_rank()
    set_num_threads(int(os.environ.get("TINYTORCH_RANK_THREADS", THREADS)) if world > 1
                    else int(os.environ.get("TINYTORCH_SINGLE_THREADS", THREADS)))
    manual_seed(0)
    rng = np.random.default_rng(rank)
    if model_name == "cnn":
        from tinytorch.vision import DeepCNN

        model = DeepCNN(input_shape=(3, 32, 32), num_classes=10)
        batch = CNN_BATCH // world
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        units = CNN_BATCH
    else:
        from tinytorch.language import TinyGPT

        g = GPT
        model = TinyGPT(g["V"], g["D"], g["H"], g["L"], g["T"])
        batch = g["B"] // world
        x = rng.integers(0, g["V"], (batch, g["T"]))
        y = rng.integers(0, g["V"], (batch, g["T"]))
        units = g["B"] * g["T"]
    net = model
    reduce_seconds = [0.0]
    if world > 1:
        net = DistributedDataParallel(model)
        average = net._average_gradients

        def timed_average():
            start = time.perf_counter()
            average()
            reduce_seconds[0] += time.perf_counter() - start

        net._average_gradients = timed_average
    opt = AdamW(model.parameters(), lr=1e-3)
    from tinytorch.core import Tensor

    xt, yt = Tensor(x), Tensor(y)

    def step():
        opt.zero_grad()
        F.cross_entropy(net(xt), yt).backward()
        opt.step()

    for _ in range(3):
        step()
    steps, reduces = [], []
    for _ in range(repeats):
        dist.barrier()  # every rank starts the step together: rank 0's time is the job's
        reduce_seconds[0] = 0.0
        start = time.perf_counter()
        step()
        steps.append(time.perf_counter() - start)
        reduces.append(reduce_seconds[0])
    if rank == 0:
        step_s = statistics.median(steps)
        print(json.dumps({"world_size": world, "step_seconds": step_s, "units_per_sec": units / step_s,
                          "allreduce_seconds": statistics.median(reduces) if world > 1 else 0.0}))


def _ours(model_name: str, repeats: int, nproc: int, threads: int = THREADS) -> dict:
    if nproc == 1:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "TINYTORCH_SINGLE_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, str(HERE), "--worker", model_name, "--repeats", str(repeats)],
                              capture_output=True, text=True, env=env, timeout=1800)
    else:
        proc = subprocess.run([sys.executable, "-c", "import sys; from tinytorch.core.launch import launch; "
                               f"sys.exit(launch({str(HERE)!r}, ['--worker', {model_name!r}, '--repeats', "
                               f"'{repeats}'], nproc={nproc}))"],
                              capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{model_name} on {nproc} rank(s) failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_code(model_name: str, repeats: int) -> tuple[str, int]:
    """PyTorch eager with THREADS threads: the models of vision_cnn.py and language_gpt.py."""
    sys.path.insert(0, str(HERE.parent))
    if model_name == "cnn":
        from vision_cnn import TORCH_CODE

        code = TORCH_CODE.replace("THREADS", str(THREADS)).replace("REPEATS", str(repeats))
        units = CNN_BATCH
    else:
        from language_gpt import TORCH_CODE

        code = TORCH_CODE.replace("{repeats}", str(repeats)).replace("torch.manual_seed(0)",
                                                                      f"torch.manual_seed(0); torch.set_num_threads({THREADS})")
        code = code[:code.index("m.eval()")] + (
            "print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), "
            "'step_seconds': statistics.median(ts)}))\n")
        units = GPT["B"] * GPT["T"]
    return code, units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--models", default="cnn,gpt")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.repeats)
        return

    load_before = os.getloadavg()
    results = {}
    for model_name in args.models.split(","):
        rounds = []
        for _ in range(args.rounds):
            single = _ours(model_name, args.repeats, 1)
            one_thread = _ours(model_name, args.repeats, 1, threads=1)
            ranks = _ours(model_name, args.repeats, args.nproc)
            code, units = _torch_code(model_name, args.repeats)
            torch = run_reference(code)
            if "step_seconds" in torch:
                torch["units_per_sec"] = units / torch["step_seconds"]
            rounds.append({"single_2_threads": single, "single_1_thread": one_thread, f"ranks_{args.nproc}": ranks,
                           "pytorch_2_threads": torch})
        ranks_key = f"ranks_{args.nproc}"
        speedup = statistics.median(r[ranks_key]["units_per_sec"] / r["single_2_threads"]["units_per_sec"]
                                    for r in rounds)
        def ratio(a: str, b: str, scale: float = 1.0, rounds=rounds) -> float:  # median of a / (scale * b)
            return statistics.median(r[a]["units_per_sec"] / (scale * r[b]["units_per_sec"]) for r in rounds)

        summary = {
            "unit": "images" if model_name == "cnn" else "tokens",
            "single_2_threads_per_sec": statistics.median(r["single_2_threads"]["units_per_sec"] for r in rounds),
            "single_1_thread_per_sec": statistics.median(r["single_1_thread"]["units_per_sec"] for r in rounds),
            # How much the second BLAS thread gives one process, and so the most N one-thread ranks
            # can reach against it: N x (1 thread) / (2 threads), at perfect scaling.
            "single_2_threads_vs_1_thread": ratio("single_2_threads", "single_1_thread"),
            f"{ranks_key}_ceiling_vs_single": 1 / ratio("single_2_threads", "single_1_thread", args.nproc),
            f"{ranks_key}_scaling_efficiency": ratio(ranks_key, "single_1_thread", args.nproc),
            f"{ranks_key}_per_sec": statistics.median(r[ranks_key]["units_per_sec"] for r in rounds),
            f"{ranks_key}_vs_single": speedup,
            "allreduce_seconds_per_step": statistics.median(r[ranks_key]["allreduce_seconds"] for r in rounds),
            "allreduce_share_of_step": statistics.median(r[ranks_key]["allreduce_seconds"]
                                                         / r[ranks_key]["step_seconds"] for r in rounds),
        }
        if all("units_per_sec" in r["pytorch_2_threads"] for r in rounds):
            summary["pytorch_2_threads_per_sec"] = statistics.median(r["pytorch_2_threads"]["units_per_sec"]
                                                                     for r in rounds)
            summary[f"{ranks_key}_vs_pytorch"] = statistics.median(
                r[ranks_key]["units_per_sec"] / r["pytorch_2_threads"]["units_per_sec"] for r in rounds)
        else:
            summary["pytorch"] = rounds[0]["pytorch_2_threads"]
        results[model_name] = {"summary": summary, "rounds": rounds}
    emit("distributed", {"global_batch": {"cnn": CNN_BATCH, "gpt": GPT["B"]}, "threads_single": THREADS,
                         "nproc": args.nproc, "repeats": args.repeats, "rounds": args.rounds,
                         "load_average_before": load_before, "load_average_after": os.getloadavg(),
                         **results})


if __name__ == "__main__":
    main()
