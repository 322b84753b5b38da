"""BLAS thread control at run time (what ``threadpoolctl`` does for OpenBLAS, in a few lines).

As ``torch.set_num_threads``: ``set_num_threads(1)`` before a batch-1 decode loop or on a busy
machine, ``get_num_threads()`` to read it back.

Why: on a small shared machine OpenBLAS's threads spin-wait for each other, so when another
process already keeps a core busy, a 2-thread GEMM can be 10x *slower* than a 1-thread one
(measured here: a SmallCNN training step went from ~850 to ~50 images/s). ``auto_threads()``
therefore uses only the cores that the 1-minute load average says are free.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

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
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    return _call(_SETTERS, n) is not None


def auto_threads(own: int = 0) -> int:
    """The cores not busy with other work: cpu_count - round(1-min load - ``own``), at least 1.

    ``own`` is the load this process itself adds (its running BLAS threads while training).
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return cores
    return max(1, min(cores, cores - round(max(0.0, load - own))))


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
