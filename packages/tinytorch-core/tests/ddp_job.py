"""What the ranks of tests/test_distributed.py run: ``python ddp_job.py MODE OUT_DIR [options]``.

Every mode writes its results with ``np.savez`` into OUT_DIR (one file per rank where ranks may
differ), so the test compares them with a single process run in the test itself.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from tinytorch.core import Tensor, manual_seed, nn, optim
from tinytorch.core import distributed as dist
from tinytorch.core.callbacks import Callback, ModelCheckpoint
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.nn.parallel import DistributedDataParallel, SyncBatchNorm
from tinytorch.core.training import Trainer, accuracy

BATCH = 12  # the global batch: a multiple of 2 and of 3
SAMPLES = 96


def problem(dtype):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(SAMPLES, 5)).astype(dtype)
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * x[:, 2] ** 2 > 0).astype(np.int64)
    return x, y


def model_for(dtype, dropout=0.0, seed=0, sync_bn=False):
    manual_seed(seed)
    layers = [nn.Linear(5, 16)] + ([SyncBatchNorm(16)] if sync_bn else []) + [nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers, nn.Linear(16, 3))
    return model.to(dtype) if dtype != np.float32 else model


def trainer_for(model, lr=0.1, callbacks=()):
    return Trainer(model, optim.SGD(model.parameters(), lr=lr, momentum=0.9), nn.CrossEntropyLoss(),
                   metrics={"accuracy": accuracy}, callbacks=callbacks, progress=False)


def fit(dtype, steps, seed=0, dropout=0.0, trainer=None, callbacks=(), sync_bn=False):
    """The run every mode shares: the Trainer on a shuffled loader with the global batch."""
    x, y = problem(dtype)
    if trainer is None:
        trainer = trainer_for(model_for(dtype, dropout, seed, sync_bn), callbacks=callbacks)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, seed=3)
    val = DataLoader(TensorDataset(x[:40], y[:40]), batch_size=7)
    history = trainer.fit(loader, max_steps=steps, val_data=val, eval_every=4)
    return trainer, history


def weights(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def mode_trainer(out: Path, steps: int) -> None:
    """Weights after ``steps`` Trainer steps, float64 and float32; every rank starts from other weights."""
    for dtype in (np.float64, np.float32):
        trainer, history = fit(dtype, steps, seed=dist.get_rank() + 1)  # DDP must broadcast rank 0's
        name = np.dtype(dtype).name
        np.savez(out / f"trainer-{name}-rank{dist.get_rank()}.npz", **weights(trainer.model),
                 val_loss=np.array(history["val_loss"]), loss=np.array([r["loss"] for r in history.steps]))


def mode_syncbn(out: Path, steps: int) -> None:
    """SyncBatchNorm in float64: weights and running statistics of the global batch."""
    trainer, history = fit(np.float64, steps, seed=dist.get_rank() + 1, sync_bn=True)
    np.savez(out / f"syncbn-rank{dist.get_rank()}.npz", **weights(trainer.model),
             val_loss=np.array(history["val_loss"]))


def mode_ddp(out: Path, steps: int) -> None:
    """The module API by hand: shards of each global batch, no_sync accumulation, float64."""
    x, y = problem(np.float64)
    model = model_for(np.float64, seed=dist.get_rank() + 5)
    ddp = DistributedDataParallel(model, bucket_mb=0.0005)  # several buckets
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    world, rank = dist.get_world_size(), dist.get_rank()
    share = BATCH // world
    for step in range(steps):
        batch = slice(step * BATCH + rank * share, step * BATCH + (rank + 1) * share)
        opt.zero_grad()
        if step % 2:  # two half batches, accumulated: the same gradient as one
            half = share // 2
            with ddp.no_sync():
                (loss_fn(ddp(Tensor(x[batch][:half])), Tensor(y[batch][:half])) * 0.5).backward()
            (loss_fn(ddp(Tensor(x[batch][half:])), Tensor(y[batch][half:])) * 0.5).backward()
        else:
            loss_fn(ddp(Tensor(x[batch])), Tensor(y[batch])).backward()
        opt.step()
    np.savez(out / f"ddp-rank{rank}.npz", **weights(ddp))  # state_dict of the wrapper: no prefix


def mode_resume(out: Path, steps: int) -> None:
    """With dropout: ``steps`` straight, and half, checkpoint, a fresh trainer, resume the rest."""
    straight, _ = fit(np.float32, steps, dropout=0.3)
    path = out / "resume.safetensors"
    first, _ = fit(np.float32, steps // 2, dropout=0.3, callbacks=[ModelCheckpoint(path)])
    resumed = trainer_for(model_for(np.float32, dropout=0.3, seed=99))
    resumed.load_checkpoint(path)
    resumed, _ = fit(np.float32, steps, trainer=resumed)
    np.savez(out / f"resume-rank{dist.get_rank()}.npz",
             **{f"straight.{k}": v for k, v in weights(straight.model).items()},
             **{f"resumed.{k}": v for k, v in weights(resumed.model).items()})


class _Fail(Callback):
    def __init__(self, how: str, at_step: int):
        self.how, self.at_step = how, at_step

    def on_step_end(self, trainer, step, logs):
        if step == self.at_step and dist.get_rank() == dist.get_world_size() - 1:
            time.sleep(0.3)  # rank 0 is inside the next step's Allreduce by now
            if self.how == "raise":
                raise RuntimeError(f"planted failure at step {step}")
            os.kill(os.getpid(), 9)


def mode_fail(out: Path, how: str) -> None:
    """Checkpoint at every evaluation (every 4 steps); the last rank fails at step 10."""
    fit(np.float32, 1000, callbacks=[ModelCheckpoint(out / "fail.safetensors"), _Fail(how, 10)])


def mode_mismatch(out: Path) -> None:
    """Rank 1 builds a wider model: DDP must refuse, naming the first difference."""
    manual_seed(0)
    width = 16 if dist.get_rank() == 0 else 17
    DistributedDataParallel(nn.Sequential(nn.Linear(5, width), nn.Linear(width, 3)))


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group()
    if mode == "trainer":
        mode_trainer(out, int(sys.argv[3]))
    elif mode == "syncbn":
        mode_syncbn(out, int(sys.argv[3]))
    elif mode == "ddp":
        mode_ddp(out, int(sys.argv[3]))
    elif mode == "resume":
        mode_resume(out, int(sys.argv[3]))
    elif mode in ("raise", "kill"):
        mode_fail(out, mode)
    elif mode == "mismatch":
        mode_mismatch(out)
    else:
        raise SystemExit(f"unknown mode {mode}")
