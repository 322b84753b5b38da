"""Process groups over MPI, named as ``torch.distributed``.

Data-parallel training runs one process (*rank*) per core or machine. Every rank holds the
whole model, computes gradients on its share of each batch, and the ranks average the
gradients with an MPI Allreduce before every optimizer step, so they stay identical.

MPI comes from the ``mpich`` wheel through ``mpi4py`` (``pip install tinytorch-core[distributed]``);
nothing here imports them until ``init_process_group`` is called, so TinyTorch works without them.
Start the ranks with ``tito run -n N script.py`` (or ``mpiexec -n N python script.py``); a
script started on its own is a group of one.

>>> from tinytorch.core import distributed as dist
>>> dist.is_initialized()
False
>>> dist.get_world_size(), dist.get_rank()  # no group: one process
(1, 0)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .checks import is_int

_comm: Any = None  # the MPI communicator of the group, once initialized
_OPS = ("sum", "mean", "max", "min")
INSTALL_HINT = "pip install 'tinytorch-core[distributed]' (mpi4py with MPI from the mpich wheel)"

# The launcher's view of a rank (set by tinytorch.core.launch in its ranks): every collective is
# announced as ("enter", number, name) and ("leave", number, name), so the launcher can tell a rank
# that waits for a dead or stalled one. The n-th collective of every rank is the same call.
_observer: Callable[[str, int, str], None] | None = None
_collectives = 0  # collectives entered by this rank
# A termination signal that arrived while the Trainer runs is held until every rank has seen it
# at the same step (see `stop_requested`), so all ranks stop together and rank 0 can report.
_stop_signal: int | None = None  # received, not yet acted on
_last_signal: int | None = None
_stop_deferred = 0  # depth of deferred_stop blocks
_stopping = False  # the ranks are stopping for a signal already


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:  # the optional extra is not installed
        raise ImportError(f"tinytorch.core.distributed needs mpi4py and an MPI library: {INSTALL_HINT}") from e
    return MPI


def init_process_group(backend: str = "mpi") -> None:
    """Join the group of ranks started by the launcher (a group of one without a launcher).

    Calling it again is a no-op. A rank that raises an uncaught exception prints one line
    ``rank R: ErrorType: message`` and aborts the whole job, so no rank waits forever for it.

    Args:
        backend: ``"mpi"`` (the only backend).

    >>> from tinytorch.core import distributed as dist
    >>> dist.init_process_group()  # doctest: +SKIP
    >>> dist.get_world_size()  # doctest: +SKIP
    2
    """
    global _comm
    if backend != "mpi":
        raise ValueError(f"init_process_group: backend must be 'mpi', got {backend!r}")
    if _comm is not None:
        return
    MPI = _mpi()
    _comm = MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        _install_abort_hook()


def _install_abort_hook() -> None:
    previous = sys.excepthook

    def abort_job(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, tb)
        _report_and_abort(value)

    sys.excepthook = abort_job


def _report_and_abort(error: BaseException, code: int = 1) -> None:
    """Print ``rank R: ErrorType: message`` on standard error and abort every rank of the job.

    Args:
        error: the exception that ends this rank.
        code: the job's exit code.
    """
    message = str(error).strip().splitlines()
    line = f"rank {get_rank()}: {type(error).__name__}" + (f": {message[0]}" if message else "")
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os.write(2, (line + "\n").encode())
    _mpi().COMM_WORLD.Abort(code)


def observe_collectives(observer: Callable[[str, int, str], None] | None) -> None:
    """Call ``observer(phase, number, name)`` as this rank enters and leaves each collective (None: stop).

    ``phase`` is ``"enter"`` or ``"leave"``, ``number`` counts this rank's collectives from 1
    (the n-th collective of every rank is the same call), ``name`` is the function
    (``all_reduce``, ``broadcast``, ``broadcast_object``, ``all_gather_object``, ``barrier``).
    The launcher's ranks report them, so the launcher can tell who waits for whom.

    Args:
        observer: the callback, or None.

    >>> from tinytorch.core import distributed as dist
    >>> dist.observe_collectives(print)  # a group of one has no collectives: nothing is printed
    >>> dist.observe_collectives(None)
    """
    global _observer
    _observer = observer


@contextmanager
def _collective(name: str) -> Iterator[None]:
    global _collectives
    _collectives += 1
    number = _collectives
    if _observer is not None:
        _observer("enter", number, name)
    yield
    if _observer is not None:
        _observer("leave", number, name)


def request_stop(signum: int) -> None:
    """Record a termination signal; outside a `deferred_stop` block, stop now (``KeyboardInterrupt``).

    The launcher's ranks call it from their SIGINT/SIGTERM/SIGHUP handlers.

    Args:
        signum: the signal's number.

    >>> import signal
    >>> from tinytorch.core import distributed as dist
    >>> signal.signal(signal.SIGTERM, lambda signum, frame: dist.request_stop(signum))  # doctest: +SKIP
    """
    global _stop_signal, _last_signal
    _last_signal = signum
    if not _stop_deferred:
        raise KeyboardInterrupt
    if not _stopping:
        _stop_signal = signum


def stop_requested() -> bool:
    """Whether a termination signal waits to be acted on (this rank's view; the Trainer reduces it).

    >>> from tinytorch.core import distributed as dist
    >>> dist.stop_requested()
    False
    """
    return _stop_signal is not None


def stop_now() -> None:
    """Act on the termination signal that some rank received: raise ``KeyboardInterrupt`` on this rank.

    Later signals of the same stop are ignored until the `deferred_stop` block ends.

    >>> from tinytorch.core import distributed as dist
    >>> with dist.deferred_stop():
    ...     try:
    ...         dist.stop_now()
    ...     except KeyboardInterrupt:
    ...         print("stopped")
    stopped
    """
    global _stop_signal, _stopping
    _stop_signal, _stopping = None, True
    raise KeyboardInterrupt


def last_signal() -> int | None:
    """The last termination signal this rank received (None if none), acted on or not.

    >>> from tinytorch.core import distributed as dist
    >>> dist.last_signal() is None
    True
    """
    return _last_signal


@contextmanager
def deferred_stop() -> Iterator[None]:
    """Hold termination signals (`request_stop`) while the code inside acts on `stop_requested`.

    The Trainer runs its steps inside: a signal in the middle of a step is seen by every rank at
    the next step's loss all-reduce, so all ranks stop at the same step (no rank is left waiting
    in a collective) and rank 0 reports where the last checkpoint is. A signal still pending
    when the block ends stops the process then.

    >>> from tinytorch.core import distributed as dist
    >>> with dist.deferred_stop():
    ...     pass
    """
    global _stop_deferred, _stop_signal, _stopping
    _stop_deferred += 1
    try:
        yield
    finally:
        _stop_deferred -= 1
        pending = _stop_signal is not None
        if not _stop_deferred:
            _stop_signal, _stopping = None, False
    if pending and not _stop_deferred:
        raise KeyboardInterrupt


def is_initialized() -> bool:
    """True once ``init_process_group`` has run (and ``destroy_process_group`` has not).

    >>> from tinytorch.core import distributed as dist
    >>> dist.is_initialized()
    False
    """
    return _comm is not None


def is_distributed() -> bool:
    """True when a process group of more than one rank is running (the case that needs care).

    >>> from tinytorch.core import distributed as dist
    >>> dist.is_distributed()
    False
    """
    return _comm is not None and _comm.Get_size() > 1


def get_rank() -> int:
    """This process's rank, 0 .. world size - 1 (0 without a group).

    >>> from tinytorch.core import distributed as dist
    >>> dist.get_rank()
    0
    """
    return 0 if _comm is None else _comm.Get_rank()


def get_world_size() -> int:
    """The number of ranks (1 without a group).

    >>> from tinytorch.core import distributed as dist
    >>> dist.get_world_size()
    1
    """
    return 1 if _comm is None else _comm.Get_size()


def _buffer(array: Any, fn: str) -> np.ndarray:
    data = getattr(array, "data", array) if not isinstance(array, np.ndarray) else array
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{fn}: array must be a NumPy array or a Tensor, got {type(array).__name__}")
    if not data.flags.c_contiguous or not data.flags.writeable:
        raise ValueError(f"{fn}: array must be C-contiguous and writeable (it is reduced in place), "
                         f"got an array with flags contiguous={data.flags.c_contiguous}, "
                         f"writeable={data.flags.writeable}")
    return data


def all_reduce(array: Any, op: str = "sum", *, agreed: bool = False) -> Any:
    """Reduce ``array`` over every rank, in place: afterwards every rank holds the result.

    Every rank must pass the same dtype, shape and op; a rank that does not is named in a
    ``ValueError`` on every rank (one small Allreduce of a signature checks it first).

    Args:
        array: a C-contiguous NumPy array or Tensor (its ``.data`` is reduced), any shape.
        op: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.
        agreed: the caller guarantees the ranks agree (DDP's buckets, laid out once from the
            model every rank was checked to share): skip the check and its round trip.

    Returns:
        ``array`` itself.

    >>> import numpy as np
    >>> from tinytorch.core import distributed as dist
    >>> dist.all_reduce(np.array([1.0, 2.0]))  # one process: the sum of one
    array([1., 2.])
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    data = _buffer(array, "all_reduce")
    if op == "mean" and data.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='mean' needs a floating-point array, got {data.dtype}")
    if is_distributed():
        MPI = _mpi()
        mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        with _collective("all_reduce"):
            if not agreed:
                _check_same_arrays(data, op)
            _comm.Allreduce(MPI.IN_PLACE, data, op=mpi_op)
        if op == "mean":
            data *= data.dtype.type(1.0 / _comm.Get_size())
    return array


def _check_same_arrays(data: np.ndarray, op: str) -> None:
    """Refuse an all-reduce whose ranks give different dtypes, shapes or ops, naming the first odd rank.

    MPI would reduce the bytes anyway: garbage for equal sizes, a truncation error stack otherwise.
    One small Allreduce of each rank's signature (its max and its negated min) finds a
    difference; only then are the descriptions gathered.
    """
    MPI = _mpi()
    signature = np.array([data.dtype.num, data.dtype.itemsize, data.ndim, data.size, _OPS.index(op),
                          hash(data.shape) % 2**40], dtype=np.int64)
    bounds = np.concatenate([signature, -signature])
    _comm.Allreduce(MPI.IN_PLACE, bounds, op=MPI.MAX)
    if np.array_equal(bounds[:signature.size], -bounds[signature.size:]):
        return
    described = _comm.allgather(f"{data.dtype} {tuple(data.shape)} op={op!r}")
    odd = next(r for r, d in enumerate(described) if d != described[0])
    raise ValueError(f"all_reduce: the ranks' arrays differ: rank {odd} gave {described[odd]} where rank 0 "
                     f"gave {described[0]}")


def broadcast(array: Any, src: int = 0) -> Any:
    """Copy ``array`` of rank ``src`` into ``array`` of every other rank, in place.

    Args:
        array: a C-contiguous NumPy array or Tensor with the same shape and dtype on every rank.
        src: the rank whose values are sent.

    Returns:
        ``array`` itself.

    >>> import numpy as np
    >>> from tinytorch.core import distributed as dist
    >>> dist.broadcast(np.arange(3))
    array([0, 1, 2])
    """
    data = _buffer(array, "broadcast")
    world = get_world_size()
    if not is_int(src) or not 0 <= src < world:
        raise ValueError(f"broadcast: src must be a rank in 0..{world - 1}, got {src!r}")
    if is_distributed():
        with _collective("broadcast"):
            _comm.Bcast(data, root=src)
    return array


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (a small picklable value such as a decision), on every rank.

    Args:
        obj: the value to send (ignored on the other ranks).
        src: the sending rank.

    >>> from tinytorch.core import distributed as dist
    >>> dist.broadcast_object({"stop": False})
    {'stop': False}
    """
    if not is_distributed():
        return obj
    with _collective("broadcast_object"):
        return _comm.bcast(obj, root=src)


def all_gather_object(obj: Any) -> list:
    """Every rank's ``obj``, as a list indexed by rank.

    Args:
        obj: a small picklable value.

    >>> from tinytorch.core import distributed as dist
    >>> dist.all_gather_object(3)
    [3]
    """
    if not is_distributed():
        return [obj]
    with _collective("all_gather_object"):
        return _comm.allgather(obj)


def barrier() -> None:
    """Wait until every rank has reached this call.

    >>> from tinytorch.core import distributed as dist
    >>> dist.barrier()
    """
    if is_distributed():
        with _collective("barrier"):
            _comm.Barrier()


def destroy_process_group() -> None:
    """Leave the group: afterwards ``is_initialized()`` is False (MPI itself ends at exit).

    >>> from tinytorch.core import distributed as dist
    >>> dist.destroy_process_group()
    >>> dist.is_initialized()
    False
    """
    global _comm
    barrier()
    _comm = None


__all__ = [
    "init_process_group", "is_initialized", "is_distributed", "get_rank", "get_world_size", "all_reduce",
    "broadcast", "broadcast_object", "all_gather_object", "barrier", "destroy_process_group",
]
