"""BLAS thread control at run time (what ``threadpoolctl`` does for OpenBLAS, in a few lines).

As ``torch.set_num_threads``: ``set_num_threads(1)`` before a batch-1 decode loop or on a busy
machine, ``get_num_threads()`` to read it back.

The policy for training and timing commands is ``training_threads("auto")``: one BLAS thread
per *physical* core this process may run on, less the cores other programs keep busy right
now (`choose_threads` measures them for 0.3 s with `~tinytorch.core.contention.ContentionProbe`).
OpenBLAS's threads spin-wait for each other inside every GEMM: two threads on a machine where a
browser holds one of two cores trained Fashion-MNIST at a fifth of one thread's speed
(``benchmarks/busy_machine.py``).

What is bit-identical across thread counts (OpenBLAS 0.3, measured in
core's ``tests/test_threads.py``): every elementwise op and every NumPy reduction (single-threaded
in NumPy), and every GEMM OpenBLAS runs on one thread anyway, which is any product with
M·N·K below `OPENBLAS_THREADED_MNK`. Larger GEMMs split their work between threads, and the
split changes the order of the last roundings: the same seed gives the same weights *at the
same thread count*, not across thread counts. So the count ``"auto"`` picks is printed when
it is not the machine's full count (and is in the trainers' ``--json`` results), and
``--threads N`` pins it for a run you want to reproduce on another day or machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
from collections.abc import Iterator

from .checks import is_int
from .contention import CONTENDED_CORES, measure_contention

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")


def _openblas_libraries() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux; empty elsewhere)."""
    import numpy  # noqa: F401 - make sure NumPy (and its BLAS) is loaded

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(paths)


def _call(names: tuple[str, ...], *args: int) -> int | None:
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                return fn(*args)
    return None


def get_num_threads() -> int | None:
    """OpenBLAS's current thread count, or None if OpenBLAS was not found.

    >>> n = get_num_threads()
    >>> n is None or n >= 1
    True
    """
    return _call(_GETTERS)


def set_num_threads(n: int) -> bool:
    """Use ``n`` OpenBLAS threads from now on; False if OpenBLAS was not found.

    Args:
        n: a positive number of threads.

    Raises:
        ValueError: ``n`` is not a positive integer.

    >>> before = get_num_threads()
    >>> if before:
    ...     _ = set_num_threads(1)
    ...     _ = set_num_threads(before)
    >>> get_num_threads() == before
    True
    """
    if not is_int(n) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    return _call(_SETTERS, int(n)) is not None


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core count once).

    Reads Linux's CPU topology for the CPUs in this process's affinity mask; elsewhere, or if
    that fails, the number of usable logical CPUs.

    >>> physical_cores() >= 1
    True
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as package, open(f"{topology}/core_id") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


#: OpenBLAS 0.3 runs a GEMM on one thread while M·N·K stays below 65536 × 4 (its
#: ``SMP_THRESHOLD_MIN`` × ``GEMM_MULTITHREAD_THRESHOLD``): such products do not depend on the
#: thread count at all
OPENBLAS_THREADED_MNK = 65536 * 4


def parse_threads(setting: int | str) -> int | str:
    """Check a ``--threads`` value without measuring anything: ``"auto"`` or a positive int.

    Raises:
        ValueError: anything else, naming the value.

    >>> parse_threads("auto"), parse_threads("3"), parse_threads(2)
    ('auto', 3, 2)
    """
    if setting == "auto":
        return "auto"
    if isinstance(setting, str) and setting.strip().isdecimal():
        setting = int(setting)
    if not is_int(setting) or setting < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {setting!r}")
    return int(setting)


def free_cores(cores: int, cpus: int, others_cores: float | None) -> int:
    """Threads that do not share a CPU with another busy program: at least 1, at most ``cores``.

    A CPU counts as taken as soon as other processes keep more than ``CONTENDED_CORES`` of it
    busy (the threshold at which every tool reports a figure as contended): a BLAS thread
    sharing a CPU spin-waits its partners out.

    Args:
        cores: the most threads wanted (physical cores).
        cpus: the logical CPUs this process may run on.
        others_cores: other processes' average busy cores (None: unknown, nothing is taken).

    >>> free_cores(2, 2, 0.05), free_cores(2, 2, 0.98), free_cores(2, 2, 0.3), free_cores(4, 8, 1.5)
    (2, 1, 1, 4)
    """
    if others_cores is None or others_cores <= CONTENDED_CORES:
        return cores
    taken = math.ceil(others_cores - CONTENDED_CORES)
    return max(1, min(cores, cpus - taken))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_threads(setting: int | str = "auto", probe_seconds: float = 0.3,
                   contention: dict | None = None) -> tuple[int, str | None]:
    """The BLAS thread count for a training or timing run, and why, when ``"auto"`` held back.

    ``"auto"``: `physical_cores` less the CPUs other programs keep busy (`free_cores`, from a
    `~tinytorch.core.contention.measure_contention` of ``probe_seconds`` or the given
    ``contention`` result). In a rank started by ``tito run`` (which sets
    ``TINYTORCH_RANK_THREADS``, one by default), ``"auto"`` is that rank's share instead, so N
    ranks do not oversubscribe the cores. A number is used as it is.

    Returns:
        ``(threads, note)``: ``note`` says why fewer threads than physical cores were chosen
        (None when nothing was held back).

    Raises:
        ValueError: a ``setting`` that is neither ``"auto"`` nor a positive integer.

    >>> choose_threads(3)
    (3, None)
    >>> choose_threads("auto", contention={"others_cores": 0.0})[0] == physical_cores()
    True
    """
    setting = parse_threads(setting)
    if setting != "auto":
        return setting, None
    per_rank = os.environ.get("TINYTORCH_RANK_THREADS", "")
    if per_rank.isdecimal() and int(per_rank) > 0:  # a rank of `tito run -n N`: its share
        return int(per_rank), None
    cores = physical_cores()
    if cores == 1:
        return 1, None
    if contention is None:
        contention = measure_contention(probe_seconds)
    others = contention.get("others_cores")
    n = free_cores(cores, _cpus(), others)
    if n == cores:
        return n, None
    return n, (f"{n} BLAS thread{'s' if n > 1 else ''} of {cores}: other programs keep {others:.2f} "
               f"cores busy (--threads {cores} to use all {cores})")


def training_threads(setting: int | str = "auto") -> int:
    """The BLAS thread count a training command uses: `choose_threads`'s count.

    Args:
        setting: ``"auto"``, or a positive integer (as an int or a string of digits).

    Raises:
        ValueError: anything else, naming the value.

    >>> training_threads(1), training_threads("3"), training_threads("auto") <= physical_cores()
    (1, 3, True)
    """
    return choose_threads(setting)[0]


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Use at most ``n`` BLAS threads inside the ``with`` block, then restore the previous count.

    Batch-1 decoding multiplies a single row by each weight matrix: the work per call is too
    small to share between threads, and waking them costs more than it saves.

    >>> with thread_limit(1):
    ...     pass
    """
    before = get_num_threads()
    if before is None or before <= n:
        yield
        return
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)


#: Below this many bytes of weights, batch-1 decoding runs faster on one BLAS thread.
ONE_THREAD_DECODE_BYTES = 64 * 2**20


def decoding_threads(weight_bytes: int, batch_size: int) -> contextlib.AbstractContextManager:
    """The BLAS thread policy for decoding ``batch_size`` sequences a token at a time.

    Decoding multiplies B rows by every weight matrix, once per token. With weights that fit in
    the caches the work per call is too small to share, and waking a second thread costs more
    than it saves (measured: the 3.2M-parameter TinyGPT decodes about twice as fast on one
    thread as on two). Weights that stream from memory every token (GPT-2 124M: 498 MB) are
    bandwidth-bound, and two threads read faster than one. So: one thread for up to 4 rows and
    weights under `ONE_THREAD_DECODE_BYTES`, else the current setting.

    Args:
        weight_bytes: the bytes of weights read per token.
        batch_size: B, the rows decoded together.

    Returns:
        A context manager (`thread_limit` or a no-op).

    >>> with decoding_threads(weight_bytes=12_000_000, batch_size=1):
    ...     pass
    """
    if batch_size <= 4 and weight_bytes < ONE_THREAD_DECODE_BYTES:
        return thread_limit(1)
    return contextlib.nullcontext()

