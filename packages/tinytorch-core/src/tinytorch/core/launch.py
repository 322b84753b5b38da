"""``tito run``: start N ranks of a training script through MPI, like ``torchrun``.

The launcher runs the ``mpiexec`` of the ``mpich`` wheel (the one beside this Python, so no
system MPI is needed). Each rank runs ``python -m tinytorch.core.launch SCRIPT ARGS`` — this
module — which joins the process group, runs the script, and, if the script raises or exits
with an error, prints one line ``rank R: ErrorType: message`` and aborts every rank, so no rank
waits forever for a dead one. A rank killed by a signal is reported the same way from
``mpiexec``'s exit report. Only rank 0's output is shown unless ``all_output``.

Several machines: pass ``hosts=["node1", "node2"]`` (``tito run --hosts node1,node2``) or a
hostfile; ``mpiexec`` starts the ranks over ssh, so every host needs the same Python
environment at the same path and password-less ssh from the first host.

>>> from tinytorch.core.launch import launch
>>> launch("train.py", nproc=2)  # doctest: +SKIP
0
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from .distributed import INSTALL_HINT

# mpiexec (hydra) reports a dead rank in a banner of "=" lines on standard output.
_BANNER = re.compile(r"^(=|YOUR APPLICATION TERMINATED|This typically refers|Please see the FAQ)")
_BANNER_PID = re.compile(r"^=\s+PID (\d+) RUNNING AT")
_BANNER_CODE = re.compile(r"^=\s+EXIT CODE: (\d+)")
_ABORT_NOISE = re.compile(r"^(Abort\(\d+\) on node|\[cli_\d+\]: aborting job|application called MPI_Abort)")


class LaunchError(RuntimeError):
    """The job could not be started (no mpiexec, bad arguments); the message says what to do.

    >>> str(LaunchError("nproc must be a positive integer, got 0"))
    'nproc must be a positive integer, got 0'
    """


def find_mpiexec() -> str:
    """The ``mpiexec`` of the ``mpich`` wheel beside this Python (else the one on PATH).

    Raises:
        LaunchError: there is none.

    >>> find_mpiexec().endswith("mpiexec")  # doctest: +SKIP
    True
    """
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise LaunchError(f"mpiexec not found: {INSTALL_HINT}")
    return found


def mpiexec_command(target: Sequence[str], nproc: int, hosts: Sequence[str] | None = None,
                    hostfile: str | os.PathLike | None = None) -> list[str]:
    """The ``mpiexec`` command line that runs ``target`` (a script and its arguments) on ``nproc`` ranks.

    Args:
        target: ``[script.py, *args]``, or ``["-m", module, *args]``.
        nproc: the number of ranks.
        hosts: machines to spread the ranks over (``mpiexec -hosts``).
        hostfile: a file of host names, one a line, optionally ``host:slots`` (``mpiexec -f``).

    >>> cmd = mpiexec_command(["train.py", "--lr", "0.1"], 2)
    >>> cmd[1:3], cmd[-5:]
    (['-n', '2'], ['-m', 'tinytorch.core.launch', 'train.py', '--lr', '0.1'])
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise LaunchError(f"nproc must be a positive integer, got {nproc!r}")
    if hosts and hostfile:
        raise LaunchError("give hosts or a hostfile, not both")
    command = [find_mpiexec(), "-n", str(nproc)]
    if hosts:
        command += ["-hosts", ",".join(hosts)]
    if hostfile:
        if not Path(hostfile).is_file():
            raise LaunchError(f"hostfile {hostfile} does not exist")
        command += ["-f", str(hostfile)]
    return command + [sys.executable, "-m", "tinytorch.core.launch", *target]


def launch(script: str | os.PathLike, args: Sequence[str] = (), nproc: int = 2, *,
           hosts: Sequence[str] | None = None, hostfile: str | os.PathLike | None = None,
           threads: int = 1, all_output: bool = False, module: bool = False,
           timeout: float | None = None) -> int:
    """Run ``script`` on ``nproc`` ranks and return the job's exit code (0 when every rank succeeded).

    A failed rank ends the job: its one-line report (``rank 1: ValueError: ...``, or ``rank 1:
    killed by signal 9 (SIGKILL)``) is printed on standard error and a non-zero code returned.

    Args:
        script: the Python file (or, with ``module=True``, the module name) every rank runs.
        args: its command-line arguments.
        nproc: the number of ranks.
        hosts: machines to run on (see the module docstring); default this one.
        hostfile: a file listing them instead.
        threads: BLAS threads per rank (``OPENBLAS_NUM_THREADS``, and ``--threads auto``).
        all_output: show every rank's output, not only rank 0's.
        module: run ``python -m script`` instead of a file.
        timeout: seconds after which the whole job is killed (exit code 124).

    >>> launch("train.py", ["--epochs", "1"], nproc=2)  # doctest: +SKIP
    0
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LaunchError(f"threads must be a positive integer, got {threads!r}")
    target = ["-m", str(script)] if module else [str(script)]
    if not module and not Path(script).is_file():
        raise LaunchError(f"script {script} does not exist")
    command = mpiexec_command(target + [str(a) for a in args], nproc, hosts, hostfile)
    if all_output:
        command.insert(1, "-prepend-rank")  # "[1] ..." says which rank wrote a line
    with tempfile.TemporaryDirectory(prefix="tinytorch-launch-") as launch_dir:
        env = dict(os.environ)
        env.update({"TINYTORCH_LAUNCH_DIR": launch_dir, "TINYTORCH_ALL_OUTPUT": "1" if all_output else "0",
                    "TINYTORCH_RANK_THREADS": str(threads)})
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        return _run(command, env, Path(launch_dir), timeout)


def _run(command: list[str], env: dict[str, str], launch_dir: Path, timeout: float | None) -> int:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    dead: dict[str, int] = {}  # pid -> exit code, from the banner
    reported = threading.Event()  # a rank printed its own one-line report

    def pump_stdout() -> None:
        pid, held_blank = None, False  # a blank line is shown unless a banner follows it
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if not line.strip():
                held_blank = True
                continue
            match = _BANNER_PID.match(line)
            if match:
                pid = match.group(1)
            match = _BANNER_CODE.match(line)
            if match and pid is not None:
                dead[pid] = int(match.group(1))
            if _BANNER.match(line):
                held_blank = False
                continue
            sys.stdout.write("\n" * held_blank + line + "\n")
            held_blank = False
            sys.stdout.flush()

    def pump_stderr() -> None:
        for raw in iter(process.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if _ABORT_NOISE.match(line):
                continue
            if re.match(r"^rank \d+: ", line):
                reported.set()
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    pumps = [threading.Thread(target=pump_stdout, daemon=True), threading.Thread(target=pump_stderr, daemon=True)]
    for pump in pumps:
        pump.start()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        sys.stderr.write(f"tito run: the job did not finish within {timeout:g}s and was killed\n")
        return 124
    except KeyboardInterrupt:
        _kill(process)
        return 130
    for pump in pumps:
        pump.join(timeout=5)
    if code != 0 and not reported.is_set():
        sys.stderr.write(_death_report(dead, launch_dir, code) + "\n")
    return code if code > 0 else 1 if code else 0


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _death_report(dead: dict[str, int], launch_dir: Path, code: int) -> str:
    ranks = {}
    for file in launch_dir.glob("rank-*.pid"):
        try:
            ranks[file.read_text().strip()] = int(file.stem.split("-")[1])
        except (OSError, ValueError):
            continue
    # mpiexec reports the first failed process; the others were ended by it (SIGTERM/SIGKILL).
    for pid, status in dead.items():
        rank = ranks.get(pid, "?")
        if status > 128 or status in (signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGABRT):
            number = status - 128 if status > 128 else status
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = "unknown signal"
            return f"rank {rank}: killed by signal {number} ({name})"
        return f"rank {rank}: exited with status {status}"
    return f"tito run: the job failed with exit code {code}"


# ------------------------------------------------------------------ --nproc of the training commands
def in_rank() -> bool:
    """True inside a rank started by `launch` (or by any ``mpiexec`` of MPICH).

    >>> in_rank()
    False
    """
    return "PMI_RANK" in os.environ or "TINYTORCH_LAUNCH_DIR" in os.environ


def resolve_nproc(setting: int | str) -> int:
    """The number of ranks for ``--nproc``: a positive integer, or ``"auto"`` (one per physical core).

    Args:
        setting: ``"auto"`` or a positive integer (int or string of digits).

    Raises:
        ValueError: anything else, naming the value.

    >>> resolve_nproc("3"), resolve_nproc(1)
    (3, 1)
    """
    if setting == "auto":
        from .threads import physical_cores

        return physical_cores()
    if isinstance(setting, str) and setting.strip().isdecimal():
        setting = int(setting)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"nproc must be a positive integer or 'auto', got {setting!r}")
    return setting


def _without_option(argv: Sequence[str], name: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def relaunch(nproc: int, command: Sequence[str] = (), argv: Sequence[str] | None = None) -> int | None:
    """Run this ``tito`` command again on ``nproc`` ranks (``--nproc``), or None to go on here.

    None when ``nproc`` is 1 or this process already is a rank; otherwise the ranks run
    ``python -m tito ARGV`` (``--nproc`` removed, one BLAS thread each) and their exit code is
    returned.

    Args:
        nproc: the number of ranks (see `resolve_nproc`).
        command: the words of the subcommand (``("vision", "train")``), which ``argv`` must hold.
        argv: the command's arguments after ``tito`` (default ``sys.argv[1:]``).

    Raises:
        LaunchError: ``argv`` is not this command's command line (e.g. called from a test runner).

    >>> relaunch(1) is None
    True
    """
    if nproc == 1 or in_rank():
        return None
    argv = list(sys.argv[1:] if argv is None else argv)
    words = iter(argv)
    if not all(word in words for word in command):  # in order, as typed
        raise LaunchError(f"--nproc starts `tito {' '.join(command)}` again on the ranks, but this process's "
                          f"command line is not that command: {argv[:4]}")
    return launch("tito", _without_option(argv, "--nproc"), nproc=nproc, module=True)


# ------------------------------------------------------------------ the rank side
def _rank_main(argv: list[str]) -> None:
    """Run one rank: ``python -m tinytorch.core.launch SCRIPT ARGS`` (or ``-m MODULE ARGS``)."""
    if not argv:
        sys.exit("usage: python -m tinytorch.core.launch SCRIPT [ARGS] | -m MODULE [ARGS]")
    rank = int(os.environ.get("PMI_RANK", "0"))
    launch_dir = os.environ.get("TINYTORCH_LAUNCH_DIR")
    if launch_dir:
        Path(launch_dir, f"rank-{rank}.pid").write_text(str(os.getpid()))
    for stream in (sys.stdout, sys.stderr):  # whole lines as they come, never a rank's half line
        stream.reconfigure(line_buffering=True, write_through=False)
    report_fd = os.dup(2)  # the one-line report must reach the launcher even when output is hidden
    if rank != 0 and os.environ.get("TINYTORCH_ALL_OUTPUT") != "1":
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    from . import distributed as dist

    try:
        dist.init_process_group()
        if argv[0] == "-m":
            sys.argv = argv[1:]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path.insert(0, str(Path(argv[0]).resolve().parent))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            status = e.code if isinstance(e.code, int) else 1
            detail = "" if isinstance(e.code, int) else f": {e.code}"
            _abort(report_fd, f"rank {dist.get_rank()}: exited with status {status}{detail}", status)
    except BaseException as e:  # noqa: B036 - a rank must never die silently while others wait
        message = str(e).strip().splitlines()
        _abort(report_fd, f"rank {dist.get_rank()}: {type(e).__name__}" + (f": {message[0]}" if message else ""), 1)


def _abort(fd: int, line: str, code: int) -> None:
    try:
        sys.stdout.flush()
    except Exception:  # noqa: S110
        pass
    os.write(fd, (line + "\n").encode())
    from mpi4py import MPI

    MPI.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    _rank_main(sys.argv[1:])
