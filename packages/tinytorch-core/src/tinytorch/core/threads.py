"""BLAS thread control at run time (what ``threadpoolctl`` does for OpenBLAS, in a few lines).

As ``torch.set_num_threads``: ``set_num_threads(1)`` before a batch-1 decode loop or on a busy
machine, ``get_num_threads()`` to read it back.

The policy for training commands is ``training_threads("auto")``: one BLAS thread per
*physical* core this process may run on. It is decided by the hardware alone, never by the
load average, so the same seed gives the same weights on a quiet and on a busy machine (a
thread count chosen from the load changes the order of floating-point sums inside BLAS). On a
busy machine pass a smaller number yourself (``--threads 1``): OpenBLAS's threads spin-wait for
each other, and a 2-thread GEMM next to another busy process can be many times slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

from .checks import is_int

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


def training_threads(setting: int | str = "auto") -> int:
    """The BLAS thread count a training command uses: ``"auto"`` is `physical_cores`.

    In a rank started by ``tito run`` (which sets ``TINYTORCH_RANK_THREADS``, one by default),
    ``"auto"`` is that rank's share instead, so N ranks do not oversubscribe the cores.

    Args:
        setting: ``"auto"``, or a positive integer (as an int or a string of digits).

    Raises:
        ValueError: anything else, naming the value.

    >>> training_threads(1), training_threads("3"), training_threads("auto") == physical_cores()
    (1, 3, True)
    """
    if setting == "auto":
        # A rank of `tito run -n N` is given its share of the cores by the launcher.
        per_rank = os.environ.get("TINYTORCH_RANK_THREADS", "")
        return int(per_rank) if per_rank.isdecimal() and int(per_rank) > 0 else physical_cores()
    if isinstance(setting, str) and setting.strip().isdecimal():
        setting = int(setting)
    if not is_int(setting) or setting < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {setting!r}")
    return int(setting)


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

