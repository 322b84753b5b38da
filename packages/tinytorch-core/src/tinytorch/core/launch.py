"""``tito run``: start N ranks of a training script through MPI, like ``torchrun``.

The launcher runs the ``mpiexec`` of the ``mpich`` wheel (the one beside this Python, so no
system MPI is needed). Each rank runs ``python -m tinytorch.core.launch SCRIPT ARGS`` — this
module — which joins the process group and runs the script. Only rank 0's output is shown
unless ``all_output``.

The launcher owns the job: it always ends, says why, and leaves nothing running.

- Every rank keeps a TCP connection to the launcher and reports on it each collective it
  enters and leaves (numbered: the n-th collective of every rank is the same call), how it
  ends, and, if the script raises or exits with an error, its report (``rank R: ErrorType:
  message`` and the last frames of the traceback) before it aborts every rank. The connection
  closes when the process ends, however it ends (``os._exit``, a signal).
- A rank that has ended while another waits in a collective it never reached can only leave
  that one waiting forever: the launcher ends the job with ``rank R: exited with status S
  before the job finished``. A rank that does not come to a collective within ``stall_timeout``
  seconds while nothing progresses ends it too. A rank killed by a signal is reported from
  ``mpiexec``'s exit report.
- SIGINT, SIGTERM and SIGHUP go to ``mpiexec``, which passes them to every rank; the ranks stop
  together (`tinytorch.core.distributed.deferred_stop`) and rank 0 reports. Ranks still running
  `KILL_GRACE` seconds later are killed, and the launcher exits with 128 + the signal's number.
- Killing means every process of the job on this machine, by pid (``mpiexec`` gives its proxy
  and each rank a session of their own, out of reach of its process group), and the launcher
  returns only once they are gone. A launcher that is itself killed leaves nothing running
  either: its connections close, and each rank then exits at once (status 129, as on a hang-up).

Several machines: pass ``hosts=["node1", "node2"]`` (``tito run --hosts node1,node2``) or a
hostfile; ``mpiexec`` starts the ranks over ssh, so every host needs the same Python
environment at the same path, password-less ssh from the first host, and a route back to it
(the ranks connect to the launcher).

>>> from tinytorch.core.launch import launch
>>> launch("train.py", nproc=2)  # doctest: +SKIP
0
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .distributed import INSTALL_HINT

# mpiexec (hydra) reports a dead rank in a banner of "=" lines on standard output.
_BANNER = re.compile(r"^(=|YOUR APPLICATION TERMINATED|This typically refers|Please see the FAQ)")
_BANNER_PID = re.compile(r"^=\s+PID (\d+) RUNNING AT")
_BANNER_CODE = re.compile(r"^=\s+EXIT CODE: (\d+)")
_ABORT_NOISE = re.compile(r"^(Abort\(\d+\) on node|\[cli_\d+\]: aborting job|application called MPI_Abort)")
_SIGNAL_NOISE = re.compile(r"^\[mpiexec@[^\]]*\] (Sending Ctrl-C|Press Ctrl-C)")

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KILL_GRACE = 30.0  # seconds the ranks have to stop (finish the step, report) after a forwarded signal
ABRUPT_GRACE = 3.0  # seconds mpiexec gets to end the job itself after a rank died without a word
KILL_WAIT = 10.0  # seconds the launcher waits for killed processes of the job to be gone before it returns
REPORT_SECONDS = 0.25  # how often a rank tells the launcher which collective it is in, if that changed
STALL_TIMEOUT = 600.0  # `--nproc` training: a rank waiting this long in one collective, with no progress


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


def check_rank_count(nproc: int, hosts: Sequence[str] | None = None, hostfile: str | os.PathLike | None = None,
                     oversubscribe: bool = False) -> None:
    """Refuse more ranks than this machine has cores when every rank would run on it (as mpiexec does).

    Ranks beyond the cores take turns on them: the job is slower than with fewer ranks, and a
    typo (``-n 1000``) would start hundreds of processes. Jobs on other hosts are not checked.

    Args:
        nproc: the number of ranks.
        hosts: the ``hosts`` of `launch` (None: this machine).
        hostfile: the ``hostfile`` of `launch` (not checked: its slots say what fits).
        oversubscribe: start them anyway.

    Raises:
        LaunchError: too many ranks, naming both numbers.

    >>> check_rank_count(1)
    >>> check_rank_count(10**6, oversubscribe=True)
    """
    if oversubscribe or hostfile is not None or (hosts and not all(map(_is_this_host, hosts))):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if nproc > cores:
        raise LaunchError(f"{nproc} ranks on this machine's {cores} cores: the ranks would take turns on them; "
                          f"use at most {cores}, or pass --oversubscribe to start them anyway")


def _is_this_host(host: str) -> bool:
    if host in ("localhost", socket.gethostname()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        return False


def launch(script: str | os.PathLike, args: Sequence[str] = (), nproc: int = 2, *,
           hosts: Sequence[str] | None = None, hostfile: str | os.PathLike | None = None,
           threads: int = 1, all_output: bool = False, module: bool = False,
           timeout: float | None = None, stall_timeout: float | None = None, oversubscribe: bool = False) -> int:
    """Run ``script`` on ``nproc`` ranks and return the job's exit code (0 when every rank succeeded).

    The launcher owns the job: it always ends, says why, and leaves nothing running.

    - A failed rank ends the job: its report (``rank 1: ValueError: ...`` and the last frames of its
      traceback, or ``rank 1: killed by signal 9 (SIGKILL)``) is printed on standard error and a
      non-zero code returned. A rank that ends, with any status, while another waits for it in a
      collective is a failure too (``rank 1: exited with status 0 before the job finished``).
    - SIGINT, SIGTERM and SIGHUP are passed on to the ranks (the Trainer stops every rank at
      the same step, and rank 0 says where the last checkpoint is); ranks still running
      `KILL_GRACE` seconds later are killed. The exit code is then 128 + the signal's number.

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
        stall_timeout: seconds a rank may wait in one collective while no rank makes progress;
            then the job is ended naming the rank that did not come (exit code 124).
        oversubscribe: allow more ranks than this machine's cores (see `check_rank_count`).

    >>> launch("train.py", ["--epochs", "1"], nproc=2)  # doctest: +SKIP
    0
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LaunchError(f"threads must be a positive integer, got {threads!r}")
    for name, value in (("timeout", timeout), ("stall_timeout", stall_timeout)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise LaunchError(f"{name} must be a positive number of seconds or None, got {value!r}")
    target = ["-m", str(script)] if module else [str(script)]
    if not module and not Path(script).is_file():
        raise LaunchError(f"script {script} does not exist")
    command = mpiexec_command(target + [str(a) for a in args], nproc, hosts, hostfile)
    check_rank_count(nproc, hosts, hostfile, oversubscribe)
    if all_output:
        command.insert(1, "-prepend-rank")  # "[1] ..." says which rank wrote a line
    with tempfile.TemporaryDirectory(prefix="tinytorch-launch-") as launch_dir, \
            _listen(_address_for(hosts, hostfile)) as listener:
        env = dict(os.environ)
        host, port = listener.getsockname()[:2]
        env.update({"TINYTORCH_LAUNCH_DIR": launch_dir, "TINYTORCH_ALL_OUTPUT": "1" if all_output else "0",
                    "TINYTORCH_RANK_THREADS": str(threads), "TINYTORCH_LAUNCHER": f"{host}:{port}"})
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        return _Job(command, env, Path(launch_dir), listener, timeout, stall_timeout).run()


def _address_for(hosts: Sequence[str] | None, hostfile: str | os.PathLike | None) -> str:
    """The address of this machine that the ranks reach: loopback, or the route to the first other host."""
    names = list(hosts or [])
    if hostfile is not None:
        names = [line.split(":")[0].strip() for line in Path(hostfile).read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    others = [name for name in names if not _is_this_host(name)]
    if not others:
        return "localhost"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # no packet is sent
        try:
            probe.connect((others[0], 9))
        except OSError as e:
            raise LaunchError(f"host {others[0]} cannot be reached from this machine: {e}") from None
        return probe.getsockname()[0]


@contextmanager
def _listen(address: str) -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((address, 0))
        listener.listen(64)
        listener.setblocking(False)
        yield listener
    finally:
        listener.close()


class _Rank:
    """What the launcher knows of one rank, from the messages of its `_Channel`."""

    def __init__(self) -> None:
        self.completed = 0  # collectives left
        self.inside: tuple[int, str, float] | None = None  # (number, name, since) of the collective it waits in
        self.ended_at: float | None = None
        self.status: int | None = None  # None: it ended without saying (os._exit, a signal)


class _Job:
    """One run of ``mpiexec``: pumps its output, reads the ranks' messages, ends it when it must."""

    def __init__(self, command: list[str], env: dict[str, str], launch_dir: Path, listener: socket.socket,
                 timeout: float | None, stall_timeout: float | None) -> None:
        self.command, self.env, self.launch_dir, self.listener = command, env, launch_dir, listener
        self.timeout, self.stall_timeout = timeout, stall_timeout
        self.ranks: dict[int, _Rank] = {}
        self.failure: str | None = None  # the first failure, already printed
        self.code = 0
        self.signalled: int | None = None
        self.forwarded = False
        self.process: subprocess.Popen | None = None
        self.kill_at: float | None = None
        self.reported = threading.Event()  # a rank printed its own one-line report on stderr
        self.dead: dict[str, int] = {}  # pid -> exit code, from mpiexec's banner
        self.last_progress = time.monotonic()

    # ---------------------------------------------------------------- the loop
    def run(self) -> int:
        self.start = time.monotonic()
        # the handlers first: a signal that came before mpiexec ran would otherwise end the launcher
        # (the default action) and leave the job it had just started without anyone to end it
        previous = self._install_signal_handlers()
        if self.signalled is not None:  # stopped before anything started
            self._restore_signal_handlers(previous)
            return 128 + self.signalled
        try:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, start_new_session=True)
        except BaseException:
            self._restore_signal_handlers(previous)
            raise
        self._forward()  # a signal that came while it started
        pumps = [threading.Thread(target=self._pump_stdout, daemon=True),
                 threading.Thread(target=self._pump_stderr, daemon=True)]
        for pump in pumps:
            pump.start()
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        try:
            while self.process.poll() is None:
                self._read(selector, 0.1)
                self._check(time.monotonic())
            while self._read(selector, 0):  # messages sent just before the end
                pass
        finally:
            self._restore_signal_handlers(previous)
            selector.close()
            self._kill()  # anything of the job still running here (nothing, normally)
            self.process.wait()
            self._wait_until_gone()
        for pump in pumps:
            pump.join(timeout=5)
        return self._result()

    def _read(self, selector: selectors.BaseSelector, wait: float) -> int:
        events = selector.select(wait)
        for key, _ in events:
            if key.fileobj is self.listener:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ, {"buffer": b"", "rank": None})
                continue
            conn, state = key.fileobj, key.data
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:  # the rank's process is gone
                selector.unregister(conn)
                conn.close()
                if state["rank"] is not None:
                    rank = self.ranks[state["rank"]]
                    if rank.ended_at is None:
                        rank.ended_at = time.monotonic()
                continue
            state["buffer"] += data
            *lines, state["buffer"] = state["buffer"].split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                    state["rank"] = int(message["rank"])
                    self._on_message(message)
                except (ValueError, KeyError, TypeError):
                    continue  # not one of our ranks (anything may connect to the port)
        return len(events)

    def _on_message(self, message: dict) -> None:
        now = time.monotonic()
        self.last_progress = now
        rank = self.ranks.setdefault(message["rank"], _Rank())
        event = message["event"]
        if event == "state":
            waiting = message["waiting"]
            rank.completed = int(message["left"])
            rank.inside = None if waiting is None else (int(message["entered"]), str(message["name"]),
                                                        now - float(waiting))
        elif event == "end":
            rank.status, rank.ended_at = message["status"], now
        elif event == "fail":  # the rank aborts the job itself (MPI_Abort)
            rank.status, rank.ended_at = message["status"], now
            self._fail(message["text"], message["status"], kill=False)

    def _check(self, now: float) -> None:
        """End the job when it can no longer finish: timeouts, and ranks waiting for an ended rank."""
        if self.kill_at is not None and now >= self.kill_at:
            self._kill()
            if self.signalled is not None and self.failure is None:
                self.failure = f"tito run: the ranks did not stop within {KILL_GRACE:g} s of " \
                               f"{signal.Signals(self.signalled).name} and were killed"
                sys.stderr.write(self.failure + "\n")
        if self.failure is not None or self.signalled is not None:
            return
        if self.timeout is not None and now - self.start > self.timeout:
            self._fail(f"tito run: the job did not finish within {self.timeout:g}s and was killed", 124)
            return
        waiting = sorted((r.inside[0], number, r.inside) for number, r in self.ranks.items()
                         if r.inside is not None and r.ended_at is None)
        if not waiting:
            return
        collective, waiter, (_, name, since) = waiting[-1]
        for number, rank in sorted(self.ranks.items(), key=lambda item: item[1].ended_at or math.inf):
            if rank.ended_at is not None and rank.completed < collective:
                if rank.status is None and now - rank.ended_at < ABRUPT_GRACE:
                    return  # mpiexec ends the job itself and says how the rank died
                how = (f"exited with status {rank.status}" if rank.status is not None
                       else "ended without a word (killed, or os._exit)")
                self._fail(f"rank {number}: {how} before the job finished (rank {waiter} waits for it in "
                           f"{name} #{collective})", 1)
                return
        if self.stall_timeout is not None and now - since > self.stall_timeout \
                and now - self.last_progress > self.stall_timeout:
            late = [number for number, r in sorted(self.ranks.items()) if r.inside is None or r.inside[0] < collective]
            who = f"rank {late[0]}: did not reach" if late else "tito run: every rank waits in"
            self._fail(f"{who} {name} #{collective} within {self.stall_timeout:g} s while rank {waiter} waited in it; "
                       f"the job was ended (stall timeout)", 124)

    def _fail(self, text: str, code: int, kill: bool = True) -> None:
        if self.failure is not None or self.signalled is not None:
            return  # what follows the first failure is its consequence
        self.failure, self.code = text, code
        self.reported.set()
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()
        if kill:
            self._kill()
        else:  # the rank aborts the job; make sure it ends even if that hangs
            self.kill_at = time.monotonic() + ABRUPT_GRACE

    def _kill(self) -> None:
        # mpiexec's process group holds mpiexec alone: hydra gives its proxy and every rank a session
        # of their own, so each process of the job on this machine is killed by pid as well
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _kill_pids(_job_processes(self.launch_dir))

    def _wait_until_gone(self) -> None:
        """Return once no process of the job runs on this machine: a killed process ends when it is next scheduled."""
        deadline = time.monotonic() + KILL_WAIT
        while (left := _job_processes(self.launch_dir)) and time.monotonic() < deadline:
            _kill_pids(left)
            time.sleep(0.01)
        if left:  # never hang: say so instead
            sys.stderr.write(f"tito run: processes {', '.join(map(str, sorted(left)))} of the job were killed "
                             f"but still run after {KILL_WAIT:g} s\n")

    # ---------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may handle signals; the caller owns them then
        return {signum: signal.signal(signum, self._on_signal) for signum in FORWARDED_SIGNALS}

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.signalled is not None:  # a second signal: stop waiting
            self._kill()
            return
        self.signalled = signum
        self.kill_at = time.monotonic() + KILL_GRACE
        self._forward()

    def _forward(self) -> None:
        """Pass the signal received on to mpiexec, once it runs (and once only)."""
        if self.signalled is None or self.process is None or self.forwarded:
            return
        self.forwarded = True
        # mpiexec passes SIGINT and SIGTERM on to every rank, on every host (not SIGHUP)
        try:
            os.kill(self.process.pid, signal.SIGTERM if self.signalled == signal.SIGHUP else self.signalled)
        except ProcessLookupError:
            pass

    # ---------------------------------------------------------------- output
    def _pump_stdout(self) -> None:
        pid, held_blank = None, False  # a blank line is shown unless a banner follows it
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if not line.strip():
                held_blank = True
                continue
            match = _BANNER_PID.match(line)
            if match:
                pid = match.group(1)
            match = _BANNER_CODE.match(line)
            if match and pid is not None:
                self.dead[pid] = int(match.group(1))
            if _BANNER.match(line):
                held_blank = False
                continue
            sys.stdout.write("\n" * held_blank + line + "\n")
            held_blank = False
            sys.stdout.flush()

    def _pump_stderr(self) -> None:
        for raw in iter(self.process.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if _ABORT_NOISE.match(line) or _SIGNAL_NOISE.match(line) or self.failure is not None:
                continue  # after a failure the rest is MPI's account of the abort
            if re.match(r"^rank \d+: ", line):
                self.reported.set()
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    # ---------------------------------------------------------------- the end
    def _result(self) -> int:
        code = self.process.returncode
        if self.signalled is not None:
            return 128 + self.signalled
        if self.failure is not None:
            return self.code
        if code != 0 and not self.reported.is_set():
            sys.stderr.write(_death_report(self.dead, self.launch_dir, code) + "\n")
            return code if code > 0 else 1
        if code != 0:
            return code if code > 0 else 1
        # mpiexec reports every non-zero exit; a rank that ended unannounced was killed by it after
        # another exited with status 0 without finishing (os._exit, or before MPI_Finalize)
        silent = sorted((r.ended_at or math.inf, n) for n, r in self.ranks.items() if r.status is None)
        if silent:
            sys.stderr.write(f"rank {silent[0][1]}: exited with status 0 before the job finished\n")
            return 1
        return 0


def _kill_pids(pids: list[int]) -> None:
    """SIGKILL each of ``pids``; one already gone is no error."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _job_processes(launch_dir: Path) -> list[int]:
    """The pids of the running processes of the job on this machine (mpiexec, its proxy, the ranks).

    They are told by their environment, which holds the job's ``TINYTORCH_LAUNCH_DIR`` (a zombie has
    no environment left). Empty where there is no ``/proc``.
    """
    key = f"TINYTORCH_LAUNCH_DIR={launch_dir}".encode()
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    found = []
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as file:
                if key in file.read().split(b"\0"):
                    found.append(int(name))
        except OSError:  # gone, or not ours to read
            continue
    return found


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


def relaunch(nproc: int, command: Sequence[str] = (), argv: Sequence[str] | None = None, *,
             oversubscribe: bool = False) -> int | None:
    """Run this ``tito`` command again on ``nproc`` ranks (``--nproc``), or None to go on here.

    None when ``nproc`` is 1 or this process already is a rank; otherwise the ranks run
    ``python -m tito ARGV`` (``--nproc`` removed, one BLAS thread each) and their exit code is
    returned. A rank that waits `STALL_TIMEOUT` seconds (10 minutes) in one collective while no
    rank makes progress ends the job, naming the rank that did not come.

    Args:
        nproc: the number of ranks (see `resolve_nproc`).
        command: the words of the subcommand (``("vision", "train")``), which ``argv`` must hold.
        argv: the command's arguments after ``tito`` (default ``sys.argv[1:]``).
        oversubscribe: allow more ranks than cores (``--oversubscribe``; see `check_rank_count`).

    Raises:
        LaunchError: ``argv`` is not this command's command line (e.g. called from a test runner),
            or more ranks than cores.

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
    return launch("tito", _without_option(argv, "--nproc"), nproc=nproc, module=True, oversubscribe=oversubscribe,
                  stall_timeout=STALL_TIMEOUT)


# ------------------------------------------------------------------ the rank side
class _Channel:
    """A rank's line to its launcher: one JSON message a line over TCP.

    A collective only updates `state` (no system call on the hot path); a reporting thread sends
    it when it has changed, every `REPORT_SECONDS` (MPI calls release the GIL, so it runs while
    the rank waits in one). The rank sends its last state before its end or failure, and the
    launcher sees the connection close when the process ends, however it ends.
    """

    def __init__(self, address: str, rank: int) -> None:
        host, port = address.rsplit(":", 1)
        self.rank = rank
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.settimeout(None)
        self.lock = threading.Lock()  # whole lines from two threads
        # (collectives entered, collectives left, name of the last, monotonic time it was entered or None
        # once left), replaced whole so the reporting thread never reads half an update
        self.state: tuple[int, int, str, float | None] = (0, 0, "", None)
        self.sent: tuple | None = None
        self.send("hello", pid=os.getpid(), host=socket.gethostname())
        threading.Thread(target=self._report_every, daemon=True).start()
        threading.Thread(target=self._watch_launcher, daemon=True).start()

    def send(self, event: str, **fields: object) -> None:
        line = (json.dumps({"rank": self.rank, "event": event, **fields}) + "\n").encode()
        try:
            with self.lock:
                self.sock.sendall(line)
        except OSError:
            pass  # the launcher is gone; the rank goes on as under a bare mpiexec

    def collective(self, phase: str, number: int, name: str) -> None:
        left = self.state[1]
        self.state = (number, left, name, time.monotonic()) if phase == "enter" else (number, number, name, None)

    def report(self) -> None:
        entered, left, name, since = self.state
        if (entered, left) != self.sent:
            self.sent = (entered, left)
            self.send("state", entered=entered, left=left, name=name,
                      waiting=None if since is None else time.monotonic() - since)

    def _report_every(self) -> None:
        while True:
            time.sleep(REPORT_SECONDS)
            self.report()

    def _watch_launcher(self) -> None:
        """End this rank at once when its launcher is gone (killed: nothing would ever end the job otherwise).

        The launcher sends nothing and keeps the connection open until every rank has ended, so the
        connection closing means the launcher died. No one is left to see a report or to stop a rank
        that waits for another, so the rank exits as on a hang-up, without a word; every rank sees
        its connection close at the same time, and checkpoints are written atomically.
        """
        try:
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        os._exit(128 + signal.SIGHUP)


def _connect(rank: int) -> _Channel | None:
    address = os.environ.get("TINYTORCH_LAUNCHER")
    if not address:
        return None  # started by a bare mpiexec
    try:
        return _Channel(address, rank)
    except OSError as e:
        # the launcher listens before it starts mpiexec: refused on this machine, it is gone (killed)
        if isinstance(e, ConnectionRefusedError) and _is_this_host(address.rsplit(":", 1)[0]):
            sys.stderr.write(f"rank {rank}: the launcher at {address} is gone ({e}); exiting\n")
            os._exit(128 + signal.SIGHUP)
        sys.stderr.write(f"rank {rank}: warning: cannot reach the launcher at {address} ({e}); a rank that "
                         f"ends early may leave the others waiting\n")
        return None


def _rank_main(argv: list[str]) -> None:
    """Run one rank: ``python -m tinytorch.core.launch SCRIPT ARGS`` (or ``-m MODULE ARGS``)."""
    if not argv:
        sys.exit("usage: python -m tinytorch.core.launch SCRIPT [ARGS] | -m MODULE [ARGS]")
    rank = int(os.environ.get("PMI_RANK", "0"))
    launch_dir = os.environ.get("TINYTORCH_LAUNCH_DIR")
    if launch_dir and Path(launch_dir).is_dir():  # not on another host
        Path(launch_dir, f"rank-{rank}.pid").write_text(str(os.getpid()))
    for stream in (sys.stdout, sys.stderr):  # whole lines as they come, never a rank's half line
        stream.reconfigure(line_buffering=True, write_through=False)
    report_fd = os.dup(2)  # the report must reach the launcher even when output is hidden
    if rank != 0 and os.environ.get("TINYTORCH_ALL_OUTPUT") != "1":
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    from . import distributed as dist

    channel = _connect(rank)
    if channel is not None:
        dist.observe_collectives(channel.collective)
    for signum in FORWARDED_SIGNALS:  # the Trainer stops every rank at the same step
        signal.signal(signum, lambda signum, frame: dist.request_stop(signum))
    status = 0
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
        status = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        if status and dist.last_signal() is None:
            detail = "" if isinstance(e.code, int) else f": {e.code}"
            _abort(channel, report_fd, f"rank {rank}: exited with status {status}{detail}", status)
    except KeyboardInterrupt as e:
        if dist.last_signal() is None:
            _abort(channel, report_fd, _describe_error(rank, e), 1)
        status = 128 + dist.last_signal()  # stopped as asked: not a failure, nothing to abort
    except BaseException as e:  # noqa: B036 - a rank must never die silently while others wait
        _abort(channel, report_fd, _describe_error(rank, e), 1)
    if channel is not None:
        channel.report()
        channel.send("end", status=status)
    sys.exit(status)


def _describe_error(rank: int, error: BaseException) -> str:
    """``rank R: Type: first line of the message`` and the last frames of the traceback (the launcher's own left out)."""
    message = str(error).strip().splitlines()
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if f.filename not in (__file__, runpy.__file__) and "<frozen" not in f.filename][-3:]
    lines = [f"rank {rank}: {type(error).__name__}" + (f": {message[0]}" if message else "")]
    lines += [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
    return "\n".join(lines)


def _abort(channel: _Channel | None, fd: int, text: str, code: int) -> None:
    try:
        sys.stdout.flush()
    except Exception:  # noqa: S110
        pass
    if channel is not None:
        channel.report()
        channel.send("fail", text=text, status=code)
    else:
        os.write(fd, (text + "\n").encode())
    from mpi4py import MPI

    MPI.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    _rank_main(sys.argv[1:])
