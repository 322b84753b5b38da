"""Data parallelism over MPI: real ranks started through the launcher (tito run's function).

Each launch runs tests/ddp_job.py on 2 or 3 ranks with one BLAS thread each and a timeout, and
the results are compared with one process run here. The ranks never outlive a test: the
launcher kills the job's process group on timeout.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.core import distributed as dist
from tinytorch.core.data import DataLoader, DistributedSampler, TensorDataset
from tinytorch.core.io import load
from tinytorch.core.launch import LaunchError, launch, mpiexec_command

JOB = Path(__file__).with_name("ddp_job.py")
sys.path.insert(0, str(JOB.parent))
import ddp_job  # noqa: E402

# Without the distributed extra (a bare `pip install tinytorch-core`) only the rank-free tests run.
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed")


def test_importing_core_and_the_trainer_does_not_import_mpi():
    code = ("import sys, tinytorch.core, tinytorch.core.training, tinytorch.core.nn.parallel, "
            "tinytorch.core.launch; assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def run_job(capfd, *args, nproc=2, timeout=60):
    start = time.perf_counter()
    code = launch(JOB, [str(a) for a in args], nproc=nproc, timeout=timeout, oversubscribe=True)  # 3 on 2 cores
    out, err = capfd.readouterr()
    return code, out, err, time.perf_counter() - start


def saved(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@needs_mpi
# ------------------------------------------------------------------ equivalence
@needs_mpi
@pytest.mark.parametrize("nproc", [2, 3])
def test_ranks_take_the_steps_of_one_process_with_the_whole_batch(tmp_path, capfd, nproc):
    # evaluations at steps 4 and 8 and the final one; 96 samples / 12 per step is 8 steps an
    # epoch, so steps 9 and 10 are in the second epoch, whose order each rank's sampler must follow
    steps = 10
    code, out, err, _ = run_job(capfd, "trainer", tmp_path, steps, nproc=nproc)
    assert code == 0, err
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-5)):
        trainer, history = ddp_job.fit(dtype, steps, seed=1)  # the seed of rank 0
        expected = ddp_job.weights(trainer.model)
        name = np.dtype(dtype).name
        ranks = [saved(tmp_path / f"trainer-{name}-rank{r}.npz") for r in range(nproc)]
        for rank, got in enumerate(ranks):
            for key, value in expected.items():
                assert got[key].dtype == value.dtype
                np.testing.assert_allclose(got[key], value, rtol=0, atol=tol, err_msg=f"rank {rank} {key}")
            # the reduced figures: the loss of the whole batch, the validation loss of all of it
            np.testing.assert_allclose(got["loss"], [r["loss"] for r in history.steps], rtol=1e-5)
            np.testing.assert_allclose(got["val_loss"], history["val_loss"], rtol=1e-5)
        for other in ranks[1:]:  # identical weights on every rank, bit for bit
            for key in expected:
                np.testing.assert_array_equal(other[key], ranks[0][key])


@needs_mpi
def test_sync_batch_norm_on_ranks_is_batch_norm_of_the_whole_batch(tmp_path, capfd):
    steps = 6
    code, out, err, _ = run_job(capfd, "syncbn", tmp_path, steps, nproc=2)
    assert code == 0, err
    trainer, history = ddp_job.fit(np.float64, steps, seed=1, sync_bn=True)
    expected = ddp_job.weights(trainer.model)
    assert "1.running_var" in expected and expected["1.num_batches_tracked"] == steps
    for rank in range(2):
        got = saved(tmp_path / f"syncbn-rank{rank}.npz")
        for key, value in expected.items():  # running statistics included: those of the whole batch
            np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-10, err_msg=f"rank {rank} {key}")
        np.testing.assert_allclose(got["val_loss"], history["val_loss"], rtol=1e-10)


def test_sync_batch_norm_in_one_process_is_batch_norm():
    from tinytorch.core import Tensor
    from tinytorch.core.gradcheck import gradcheck
    from tinytorch.core.nn.parallel import SyncBatchNorm, SyncBatchNormFunction

    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(6, 3, 2, 2)), requires_grad=True)
    w, b = (Tensor(rng.normal(size=3), requires_grad=True) for _ in range(2))
    assert gradcheck(lambda x, w, b: SyncBatchNormFunction.apply(x, w, b, eps=1e-5), (x, w, b))
    assert gradcheck(lambda x: SyncBatchNormFunction.apply(x, eps=1e-5), (Tensor(rng.normal(size=(7, 4)),
                                                                                   requires_grad=True),))
    data = rng.normal(3, 2, size=(8, 3, 4, 4)).astype(np.float32)
    bn = SyncBatchNorm(3, momentum=0.5)
    y = bn(Tensor(data)).numpy()
    mean, var = data.mean(axis=(0, 2, 3)), data.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y, (data - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5),
                               atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * var * 128 / 127, rtol=1e-5)  # unbiased
    bn.eval()
    np.testing.assert_allclose(bn(Tensor(data)).numpy(), (data - bn.running_mean.numpy()[None, :, None, None])
                               / np.sqrt(bn.running_var.numpy()[None, :, None, None] + 1e-5), atol=1e-5)


@needs_mpi
def test_ddp_by_hand_with_no_sync_and_small_buckets(tmp_path, capfd):
    steps = 6
    code, out, err, _ = run_job(capfd, "ddp", tmp_path, steps, nproc=3)
    assert code == 0, err
    x, y = ddp_job.problem(np.float64)
    model = ddp_job.model_for(np.float64, seed=5)  # rank 0's seed
    from tinytorch.core import Tensor, nn, optim

    opt = optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        batch = slice(step * ddp_job.BATCH, (step + 1) * ddp_job.BATCH)
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(Tensor(x[batch])), Tensor(y[batch])).backward()
        opt.step()
    for rank in range(3):
        got = saved(tmp_path / f"ddp-rank{rank}.npz")
        assert set(got) == set(model.state_dict())  # no "module." prefix
        for key, value in model.state_dict().items():
            np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-10, err_msg=f"rank {rank} {key}")


@needs_mpi
def test_resume_on_the_same_ranks_is_bit_exact_with_dropout(tmp_path, capfd):
    code, out, err, _ = run_job(capfd, "resume", tmp_path, 8, nproc=2)
    assert code == 0, err
    ranks = [saved(tmp_path / f"resume-rank{r}.npz") for r in range(2)]
    for got in ranks:
        straight = {k[len("straight."):]: v for k, v in got.items() if k.startswith("straight.")}
        for key, value in straight.items():
            np.testing.assert_array_equal(got[f"resumed.{key}"], value, err_msg=key)
    # dropout differed per rank, yet the averaged steps kept the weights identical
    for key in ranks[0]:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    meta = load(tmp_path / "resume.safetensors")[1]
    states = meta["rank_rng_states"]
    assert len(states) == 2 and states[0] != states[1]


@needs_mpi
# ------------------------------------------------------------------ faults
@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_with_one_line_and_keeps_the_checkpoint(tmp_path, capfd, how):
    code, out, err, seconds = run_job(capfd, how, tmp_path, nproc=2, timeout=60)
    assert code != 0 and seconds < 30
    lines = [line for line in err.splitlines() if line.strip()]
    if how == "raise":  # the line, then the last frames of the traceback: where it was raised last
        assert lines[0] == "rank 1: RuntimeError: planted failure at step 10", err
        assert 2 <= len(lines) <= 4 and all(line.startswith('  File "') for line in lines[1:]), err
        assert lines[-1].startswith(f'  File "{JOB}", line ') and lines[-1].endswith(", in on_step_end"), err
    else:
        assert lines == ["rank 1: killed by signal 9 (SIGKILL)"], err
    assert "Traceback" not in out + err and "BAD TERMINATION" not in out
    state, meta = load(tmp_path / "fail.safetensors")
    assert meta["global_step"] == 8  # the evaluation of step 8, written whole before the failure


@needs_mpi
def test_ranks_with_different_models_are_refused_naming_the_difference(tmp_path, capfd):
    code, out, err, _ = run_job(capfd, "mismatch", tmp_path, nproc=2)
    assert code != 0
    assert "the ranks' models differ: rank 1 has '0.weight' of shape (17, 5)" in err
    assert "rank 0 has '0.weight' of shape (16, 5)" in err


@needs_mpi
def test_tito_run_starts_the_ranks_and_shows_rank_0_only(tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("import os\nfrom tinytorch.core import distributed as dist\n"
                      "print('hello from', dist.get_rank(), 'of', dist.get_world_size(), "
                      "os.environ['OPENBLAS_NUM_THREADS'])\n")
    tito = Path(sys.executable).with_name("tito")
    result = subprocess.run([str(tito), "run", "-n", "3", "--oversubscribe", str(script)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "hello from 0 of 3 1"
    assert "hello from 1" not in result.stdout
    result = subprocess.run([str(tito), "run", "-n", "2", "--all-output", "--hosts", "localhost", str(script)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")[:2]) == ["[0] hello from 0 of 2 1", "[1] hello from 1 of 2 1"]


@needs_mpi
def test_launcher_arguments_are_checked():
    with pytest.raises(LaunchError, match="nproc must be a positive integer, got 0"):
        mpiexec_command(["x.py"], 0)
    with pytest.raises(LaunchError, match="hosts or a hostfile, not both"):
        mpiexec_command(["x.py"], 2, hosts=["a"], hostfile="f")
    with pytest.raises(LaunchError, match="does not exist"):
        launch("/nonexistent/train.py", nproc=2)
    assert mpiexec_command(["x.py"], 2, hosts=["n1", "n2"])[3:5] == ["-hosts", "n1,n2"]


# ------------------------------------------------------------------ without ranks
def test_one_process_group_is_the_identity():
    assert not dist.is_distributed()
    a = np.array([1.0, 2.0])
    assert dist.all_reduce(a, op="mean") is a and a.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(a, op="prod")
    with pytest.raises(ValueError, match="C-contiguous"):
        dist.all_reduce(np.zeros((3, 3))[:, 0])
    with pytest.raises(ValueError, match="src must be a rank in 0..0, got 1"):
        dist.broadcast(a, src=1)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 200), world=st.integers(1, 9), shuffle=st.booleans(), drop_last=st.booleans(),
       epoch=st.integers(0, 3))
def test_distributed_sampler_shards_are_disjoint_and_cover_the_data(n, world, shuffle, drop_last, epoch):
    if n < world:
        with pytest.raises(ValueError, match="fewer than"):
            DistributedSampler(range(n), num_replicas=world, rank=0)
        return
    shards = []
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=5,
                                     drop_last=drop_last)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
        assert list(sampler) == shards[-1]  # the same order for the same seed and epoch
    assert len({len(s) for s in shards}) == 1  # equal shares: the ranks step together
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(flat) == len(set(flat)) == n - n % world  # disjoint, nothing repeated
    else:
        assert set(flat) == set(range(n))  # complete
        assert len(flat) - n < world  # padded by fewer than one sample per rank
        assert len(set(flat)) == n and len(flat) == -(-n // world) * world
        if n % world == 0:
            assert len(flat) == len(set(flat))  # disjoint when nothing is padded


def test_distributed_sampler_takes_each_epochs_order_from_set_epoch():
    # Rank r of N takes every N-th index of the epoch's order, the order a DataLoader with the
    # same seed shuffles that epoch into; an epoch the sampler is not told of would repeat epoch 0.
    n, world = 24, 3
    loader = DataLoader(TensorDataset(np.arange(n)), batch_size=n, shuffle=True, seed=4)
    samplers = [DistributedSampler(range(n), num_replicas=world, rank=r, seed=4) for r in range(world)]
    orders = []
    for epoch in range(3):
        orders.append(next(iter(loader))[0].tolist())  # each iteration of the loader is an epoch
        for rank, sampler in enumerate(samplers):
            sampler.set_epoch(epoch)
            assert list(sampler) == orders[-1][rank::world], (epoch, rank)
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]


def test_death_report_names_the_signal_of_a_status_above_128(tmp_path):
    from tinytorch.core.launch import _death_report

    (tmp_path / "rank-0.pid").write_text("4100\n")
    (tmp_path / "rank-1.pid").write_text("4101\n")
    assert _death_report({"4101": 137}, tmp_path, 1) == "rank 1: killed by signal 9 (SIGKILL)"
    assert _death_report({"4100": 139}, tmp_path, 1) == "rank 0: killed by signal 11 (SIGSEGV)"
    assert _death_report({"4101": 9}, tmp_path, 1) == "rank 1: killed by signal 9 (SIGKILL)"
    assert _death_report({"4100": 3}, tmp_path, 3) == "rank 0: exited with status 3"
    assert _death_report({"999": 143}, tmp_path, 1) == "rank ?: killed by signal 15 (SIGTERM)"
    assert _death_report({}, tmp_path, 7) == "tito run: the job failed with exit code 7"


def test_shards_of_a_batch_make_the_batch_of_one_process():
    x = np.arange(40)
    loader = DataLoader(TensorDataset(x), batch_size=8, shuffle=True, seed=2)
    shards = [loader.shard(4, rank) for rank in range(4)]  # before the loader moves to epoch 1
    whole = [b[0].tolist() for b in loader]
    parts = [[b[0].tolist() for b in shard] for shard in shards]
    for step, batch in enumerate(whole):
        assert sorted(sum((p[step] for p in parts), [])) == sorted(batch)
    with pytest.raises(ValueError, match="cannot be split evenly over 3 ranks"):
        loader.shard(3, 0)
    with pytest.raises(ValueError, match="the data set has 2 samples, fewer than the 4 ranks"):
        DataLoader(TensorDataset(np.arange(2)), batch_size=4).shard(4, 0)
    with pytest.raises(ValueError, match="needs a seed"):
        DataLoader(TensorDataset(x), batch_size=8, shuffle=True).shard(2, 0)
    evaluation = [DataLoader(TensorDataset(x), batch_size=8).shard(3, r, training=False) for r in range(3)]
    seen = sorted(i for loader in evaluation for b in loader for i in b[0].tolist())
    assert seen == list(range(40))  # every sample once: no padding in evaluation
