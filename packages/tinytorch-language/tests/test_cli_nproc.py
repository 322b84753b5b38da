"""`tito language train --nproc N` under signals: every rank stops, rank 0 says where to resume, nothing is left.

The job's processes (the launcher's mpiexec, its proxy, the ranks) inherit a marker in their
environment, so the test can tell that none of them outlives the command.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TITO = Path(sys.executable).with_name("tito")
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed")


def job_processes(marker: str) -> dict[int, str]:
    """pid -> command line of the running processes whose environment holds ``marker`` (zombies have none)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"TINYTORCH_TEST_JOB={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


@needs_mpi
def test_sigint_to_nproc_2_training_reports_the_checkpoint_and_ends_every_rank(tmp_path):
    text, out = tmp_path / "small.txt", tmp_path / "run.safetensors"
    text.write_text("To be, or not to be, that is the question.\n" * 200, encoding="utf-8")
    marker = uuid.uuid4().hex
    command = [str(TITO), "language", "train", "--text", str(text), "--eval-batches", "1", "--sample", "0",
               "--d-model", "16", "--heads", "2", "--layers", "1", "--context", "16", "--batch-size", "4",
               "--eval-every", "3", "--max-steps", "100000", "--out", str(out), "--nproc", "2"]
    train = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TINYTORCH_TEST_JOB": marker})
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and train.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.exists(), "no checkpoint was written"
        train.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground command
        stdout, stderr = train.communicate(timeout=30)
    finally:
        train.kill()
        left = job_processes(marker)
        for pid in left:  # by pid: never leave ranks behind, even when the launcher failed to end them
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not left, f"processes left running: {left}"
    assert train.returncode == 130, stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("interrupted at step ") and last.endswith(
        f"is {out}; continue with: tito language train --resume {out} --nproc 2"), stdout + stderr
    written = out.stat().st_mtime_ns
    time.sleep(1.0)  # an orphaned rank 0 would write it again within a few steps
    assert out.stat().st_mtime_ns == written


@needs_mpi
def test_nproc_above_the_cores_is_refused_naming_oversubscribe(tmp_path):
    cores = len(os.sched_getaffinity(0))
    n = str(cores + 1)
    result = subprocess.run([str(TITO), "language", "train", "--batch-size", n, "--nproc", n],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"Error: {n} ranks on this machine's {cores} cores: the ranks would take "
                                     f"turns on them; use at most {cores}, or pass --oversubscribe to start "
                                     f"them anyway")
