"""What the ranks of tests/test_launch_faults.py run: ``python fault_job.py MODE OUT_DIR``.

Each mode misbehaves in one way on the last rank (or trains until it is stopped), so the test
can check that the launcher ends the job, names the rank and leaves nothing running.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from tinytorch.core import distributed as dist


def collectives_then(misbehave) -> None:
    """One all-reduce, the last rank's misbehaviour, then a second all-reduce it never joins."""
    a = np.ones(3)
    dist.all_reduce(a)
    if dist.get_rank() == dist.get_world_size() - 1:
        misbehave()
    dist.all_reduce(a)


def hosts() -> None:
    """Each rank's network namespace, and an all-reduce of 8 MB (its bytes must cross the link between them)."""
    big = np.full(2**20, float(dist.get_rank() + 1))
    dist.all_reduce(big)
    print(f"rank {dist.get_rank()} in {os.readlink('/proc/self/ns/net')}: {big[0]:g} {big[-1]:g}", flush=True)


def train_until_stopped(out: Path) -> None:
    """The Trainer with a checkpoint every 4 steps, for far longer than any test waits."""
    sys.path.insert(0, str(Path(__file__).parent))
    import ddp_job

    from tinytorch.core.callbacks import ModelCheckpoint

    checkpoint = out / "long.safetensors"
    trainer, history = ddp_job.fit(np.float32, 10**7, callbacks=[ModelCheckpoint(checkpoint)])
    print(f"{history.stop_reason} at step {trainer.global_step}; the last checkpoint is {checkpoint}", flush=True)
    raise SystemExit(130 if history.stop_reason == "interrupted" else 0)


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group()
    if mode == "exit0":  # os._exit: no Python cleanup, no MPI_Finalize
        collectives_then(lambda: os._exit(0))
    elif mode == "return0":  # a clean exit, MPI_Finalize included
        collectives_then(lambda: sys.exit(0))
    elif mode == "stall":
        collectives_then(lambda: time.sleep(120))
    elif mode == "dtypes":
        dist.all_reduce(np.ones(4, dtype=np.float32 if dist.get_rank() == 0 else np.float64))
    elif mode == "hosts":
        hosts()
    elif mode == "train":
        train_until_stopped(out)
    else:
        raise SystemExit(f"unknown mode {mode}")
