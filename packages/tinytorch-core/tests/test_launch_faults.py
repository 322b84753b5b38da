"""The launcher owns its job: it always ends, says why in one line, and leaves nothing running.

Each test starts real ranks (tests/fault_job.py, 2 ranks, one BLAS thread each) through the
project's launcher, bounded by timeouts so a regression fails instead of hanging, and checks
afterwards that no process of the job is left: every process of a job carries the test's
marker in its environment (mpiexec, its proxy and the ranks inherit it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tinytorch.core.launch import KILL_GRACE, KILL_WAIT, LaunchError, check_rank_count, launch

JOB = Path(__file__).with_name("fault_job.py")
TITO = Path(sys.executable).with_name("tito")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed")


def job_processes(marker: str) -> dict[int, str]:
    """pid -> command line of the running processes whose environment holds ``marker`` (zombies have none)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"TINYTORCH_TEST_JOB={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def kill_left(marker: str) -> dict[int, str]:
    """Kill (by pid) what a job left running, so a failing test never leaves ranks behind; return it."""
    left = job_processes(marker)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture
def marker(monkeypatch):
    """A marker in the environment of every process the test starts; none of them may outlive it."""
    value = uuid.uuid4().hex
    monkeypatch.setenv("TINYTORCH_TEST_JOB", value)
    yield value
    left = kill_left(value)
    assert not left, f"processes left running: {left}"


def run_job(capfd, mode, tmp_path, **options):
    start = time.perf_counter()
    code = launch(JOB, [mode, str(tmp_path)], nproc=2, timeout=60, **options)
    out, err = capfd.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()], time.perf_counter() - start


def test_a_rank_that_exits_0_with_os_exit_fails_the_job(tmp_path, capfd, marker):
    code, out, err, seconds = run_job(capfd, "exit0", tmp_path)
    assert code == 1 and seconds < 30
    assert err == ["rank 1: exited with status 0 before the job finished"]
    assert job_processes(marker) == {}


def test_a_rank_that_ends_before_a_collective_fails_the_job_instead_of_hanging(tmp_path, capfd, marker):
    code, out, err, seconds = run_job(capfd, "return0", tmp_path)
    assert code == 1 and seconds < 30
    assert err == ["rank 1: exited with status 0 before the job finished (rank 0 waits for it in all_reduce #2)"]
    assert job_processes(marker) == {}


def test_a_stalled_rank_ends_the_job_after_the_stall_timeout(tmp_path, capfd, marker):
    code, out, err, seconds = run_job(capfd, "stall", tmp_path, stall_timeout=2)
    assert code == 124 and seconds < 30
    assert err == ["rank 1: did not reach all_reduce #2 within 2 s while rank 0 waited in it; the job was ended "
                   "(stall timeout)"]
    assert job_processes(marker) == {}


def test_ranks_that_all_reduce_different_dtypes_get_one_line_naming_them(tmp_path, capfd, marker):
    code, out, err, seconds = run_job(capfd, "dtypes", tmp_path)
    assert code == 1
    assert len(err) >= 2 and err[0].endswith(
        "ValueError: all_reduce: the ranks' arrays differ: rank 1 gave float64 (4,) op='sum' where rank 0 gave "
        "float32 (4,) op='sum'"), err
    assert err[0].startswith(("rank 0: ", "rank 1: "))
    assert f'File "{JOB}", line' in err[1]  # the caller's line first, then where it was raised
    assert all(line.startswith("  File ") for line in err[1:]) and "error stack" not in out + "\n".join(err)
    assert job_processes(marker) == {}


def start_training(tmp_path: Path, stdout=subprocess.PIPE) -> subprocess.Popen:
    """``tito run -n 2`` of the job that trains until stopped, once its first checkpoint is written.

    If none is written within a minute, the job is stopped as a user would (SIGTERM, which the
    launcher forwards; rank 0 then says at which step it was) and the test fails with its output.
    """
    checkpoint = tmp_path / "long.safetensors"
    start = time.monotonic()
    launcher = subprocess.Popen([str(TITO), "run", "-n", "2", str(JOB), "train", str(tmp_path)],
                                stdout=stdout, stderr=subprocess.PIPE, text=True)
    while not checkpoint.exists() and launcher.poll() is None and time.monotonic() - start < 60:
        time.sleep(0.1)
    if not checkpoint.exists():
        waited = time.monotonic() - start
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
        try:
            out, err = launcher.communicate(timeout=ENDS_WITHIN)
        except subprocess.TimeoutExpired:
            launcher.kill()  # the job ends too: its ranks see the launcher's connections close
            out, err = launcher.communicate()
        pytest.fail(f"no checkpoint after {waited:.0f} s; tito run exited with {launcher.returncode}: {out or ''}{err}")
    return launcher


# after a forwarded signal the ranks have KILL_GRACE s to stop, then the launcher kills them and
# waits up to KILL_WAIT s for them to be gone: tito run ends within this, or breaks its promise
ENDS_WITHIN = KILL_GRACE + KILL_WAIT + 10


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_tito_run_stops_every_rank_at_one_step_and_reports(tmp_path, marker, signum):
    checkpoint = tmp_path / "long.safetensors"
    launcher = start_training(tmp_path)
    try:
        launcher.send_signal(signum)
        out, err = launcher.communicate(timeout=ENDS_WITHIN)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signum, err
    assert "interrupted at step " in out and f"the last checkpoint is {checkpoint}" in out, out + err
    assert err == ""
    assert job_processes(marker) == {}
    written = checkpoint.stat().st_mtime_ns
    time.sleep(1.0)  # an orphaned rank 0 would write it again within a few steps
    assert checkpoint.stat().st_mtime_ns == written


def test_a_killed_launcher_leaves_no_rank_running(tmp_path, marker):
    launcher = start_training(tmp_path, stdout=subprocess.DEVNULL)
    assert job_processes(marker)  # the job trains (for far longer than this test waits)
    launcher.kill()  # SIGKILL: the launcher has no chance to end the job itself
    launcher.communicate()
    deadline = time.monotonic() + 20  # the ranks see the launcher's connections close and exit at once
    while job_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job_processes(marker) == {}


def test_more_ranks_than_cores_are_refused_before_any_starts(tmp_path, marker):
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(LaunchError, match=f"{cores + 1} ranks on this machine's {cores} cores.*--oversubscribe"):
        check_rank_count(cores + 1)
    check_rank_count(cores + 1, oversubscribe=True)
    check_rank_count(cores + 1, hosts=["node-a", "node-b"])  # other machines count their own cores
    with pytest.raises(LaunchError, match="--oversubscribe"):
        check_rank_count(cores + 1, hosts=["localhost"])
    result = subprocess.run([str(TITO), "run", "-n", "1000", str(JOB), "train", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"Error: 1000 ranks on this machine's {cores} cores: the ranks would take turns on "
                             f"them; use at most {cores}, or pass --oversubscribe to start them anyway\n")


FAKE_SSH = """#!/bin/sh
# mpiexec runs: THIS [-x] HOST COMMAND; run COMMAND in the network namespace that plays HOST
while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done
host=$1; shift
case "$host" in {cases} *) echo "no namespace plays $host" >&2; exit 255;; esac
exec ip netns exec "$ns" sh -c "$*"
"""


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def two_hosts(tmp_path):
    """Two network namespaces joined by a veth pair: two machines whose only link is TCP over it."""
    tag = f"tt{os.getpid() % 100000}"
    names, subnet = (f"{tag}a", f"{tag}b"), f"10.231.{os.getpid() % 250}"
    addresses = (f"{subnet}.1", f"{subnet}.2")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's ip")
    made = _ip("netns", "add", names[0], check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        _ip("netns", "add", names[1])
        _ip("link", "add", names[0], "type", "veth", "peer", "name", names[1])
        for name, address in zip(names, addresses):
            _ip("link", "set", name, "netns", name)
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", name)
            _ip("-n", name, "link", "set", name, "up")
            _ip("-n", name, "link", "set", "lo", "up")
        ssh = tmp_path / "netns-ssh"
        ssh.write_text(FAKE_SSH.format(cases=" ".join(f"{a}) ns={n};;" for n, a in zip(names, addresses))))
        ssh.chmod(0o755)
        yield names, addresses, ssh
    finally:
        for name in names:
            _ip("netns", "del", name, check=False)


def test_hosts_beyond_localhost_run_ranks_that_talk_over_tcp(two_hosts, tmp_path, marker):
    (first, second), addresses, ssh = two_hosts

    def bytes_received():
        stats = json.loads(_ip("-n", second, "-s", "-j", "link", "show", "dev", second).stdout)[0]["stats64"]
        return stats["rx"]["bytes"]

    before = bytes_received()
    result = subprocess.run(["ip", "netns", "exec", first, str(TITO), "run", "-n", "2", "--all-output", "--hosts",
                             ",".join(addresses), str(JOB), "hosts", str(tmp_path)], capture_output=True, text=True,
                            timeout=90, env={**os.environ, "HYDRA_LAUNCHER": "ssh", "HYDRA_LAUNCHER_EXEC": str(ssh),
                                             # one hostname and one /dev/shm: without these MPICH (UCX) would
                                             # pass the data through shared memory, as on one machine
                                             "MPIR_CVAR_NOLOCAL": "1", "UCX_TLS": "tcp,self"})
    assert result.returncode == 0 and result.stderr == "", result.stderr  # every rank reached the launcher
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("["))
    assert [line.split(": ")[1] for line in lines] == ["3 3", "3 3"], result.stdout  # 1 + 2 on both ranks
    where = [line.split(" in ")[1].split(": ")[0] for line in lines]
    assert where == [f"net:[{os.stat(f'/run/netns/{name}').st_ino}]" for name in (first, second)]
    assert bytes_received() - before > 2**22  # the 8 MB all-reduce went over the link (the rest is ~kB)
    assert job_processes(marker) == {}
