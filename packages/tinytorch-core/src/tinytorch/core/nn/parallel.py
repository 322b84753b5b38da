"""Data parallelism over MPI: ``DistributedDataParallel``, named and behaving as PyTorch's.

Every rank holds a full copy of the model and runs it on its own share of the batch. The
copies start equal (rank 0's weights are broadcast at construction) and stay equal, because
before each optimizer step every rank's gradients are replaced by their average over the ranks.
With the loss a mean over the batch and equal shares, that average *is* the gradient of the
whole batch, so N ranks with batch B/N each take exactly the steps of one process with batch B.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import distributed as dist
from ..autograd import is_grad_enabled, queue_callback
from .module import Module, Parameter


def _broadcast_in_place(data: np.ndarray) -> None:
    if data.flags.c_contiguous and data.flags.writeable:
        dist.broadcast(data, src=0)
    else:
        tmp = np.ascontiguousarray(data)
        dist.broadcast(tmp, src=0)
        data[...] = tmp


class _Bucket:
    """Parameters whose gradients travel in one Allreduce, through one contiguous flat buffer."""

    def __init__(self, params: list[Parameter], dtype: np.dtype):
        self.params = params
        self.sizes = [p.data.size for p in params]
        self.buffer = np.empty(sum(self.sizes), dtype=dtype)

    def reduce_mean(self, world: int) -> None:
        offset = 0
        views = []
        for p, n in zip(self.params, self.sizes):
            view = self.buffer[offset:offset + n]
            if p.grad is None:
                view[...] = 0  # unused on this rank: it contributes nothing to the average
            else:
                view[...] = p.grad.reshape(-1)
            views.append(view)
            offset += n
        dist.all_reduce(self.buffer, op="sum")
        self.buffer *= self.buffer.dtype.type(1.0 / world)
        for p, view in zip(self.params, views):
            # A view of the buffer: optimizers never write .grad in place (DESIGN.md §11), and the
            # next backward makes new arrays, so the buffer can be refilled next step.
            p.grad = view.reshape(p.data.shape)


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``backward()`` leaves every rank with the gradients averaged over ranks.

    At construction the ranks check that they hold the same parameter and buffer names, shapes
    and dtypes (the first difference is named) and copy rank 0's values into every rank, so the
    initial weights agree whatever each rank's seed. After each ``backward()`` of an output of
    this wrapper, the gradients are packed into contiguous flat buckets of about ``bucket_mb``
    megabytes, summed in place with one MPI Allreduce per bucket and divided by the world size.
    BatchNorm statistics stay per rank, as in PyTorch (see ``SyncBatchNorm``).

    Args:
        module: the model; reachable as ``.module``. ``state_dict()`` is the module's, without
            a ``module.`` prefix, so checkpoints load into an unwrapped model.
        bucket_mb: the size of a gradient bucket in megabytes (a positive number).

    Raises:
        RuntimeError: ``init_process_group()`` has not been called.
        ValueError: the ranks' models differ (the first differing name, shape or dtype).

    >>> from tinytorch.core import nn, distributed as dist
    >>> dist.init_process_group()  # doctest: +SKIP
    >>> model = DistributedDataParallel(nn.Linear(4, 2))  # doctest: +SKIP
    >>> loss = model(x).pow(2).mean(); loss.backward()  # doctest: +SKIP
    >>> with model.no_sync():  # accumulate without communicating  # doctest: +SKIP
    ...     model(x).pow(2).mean().backward()
    """

    def __init__(self, module: Module, bucket_mb: float = 25):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a Module, got {type(module).__name__}")
        if isinstance(bucket_mb, bool) or not isinstance(bucket_mb, (int, float)) or not bucket_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_mb must be a positive number, got {bucket_mb!r}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: call tinytorch.core.distributed.init_process_group() first")
        self.module = module
        self.bucket_mb = bucket_mb
        self.world_size = dist.get_world_size()
        self._sync = True
        self._queued = False
        self._check_same_model()
        for _, tensor in self._named_state():
            _broadcast_in_place(tensor.data)
        self._buckets = self._make_buckets()

    def _named_state(self) -> Iterator[tuple[str, Any]]:
        yield from self.module.named_parameters()
        for name, buffer in self.module.named_buffers():
            if buffer is not None:
                yield name, buffer

    def _check_same_model(self) -> None:
        mine = [(name, tuple(t.data.shape), str(t.data.dtype)) for name, t in self._named_state()]
        reference = dist.broadcast_object(mine, src=0)
        problem = None
        for i in range(max(len(mine), len(reference))):
            ours = mine[i] if i < len(mine) else None
            theirs = reference[i] if i < len(reference) else None
            if ours != theirs:
                problem = (f"rank {dist.get_rank()} has {_describe(ours)} where rank 0 has {_describe(theirs)} "
                           f"(entry {i} of the parameters and buffers)")
                break
        problems = [p for p in dist.all_gather_object(problem) if p is not None]
        if problems:
            raise ValueError(f"DistributedDataParallel: the ranks' models differ: {problems[0]}")

    def _make_buckets(self) -> list[_Bucket]:
        limit = self.bucket_mb * 2**20
        buckets: list[_Bucket] = []
        group: list[Parameter] = []
        size = 0
        # Reverse order, as PyTorch: the last layers' gradients are ready first.
        params = [p for p in reversed(list(self.module.parameters())) if p.requires_grad]
        for p in params:
            if group and (p.data.dtype != group[0].data.dtype or size + p.data.nbytes > limit):
                buckets.append(_Bucket(group, group[0].data.dtype))
                group, size = [], 0
            group.append(p)
            size += p.data.nbytes
        if group:
            buckets.append(_Bucket(group, group[0].data.dtype))
        return buckets

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._sync and is_grad_enabled() and not self._queued and self.world_size > 1:
            self._queued = True
            queue_callback(self._average_gradients)
        return self.module(*args, **kwargs)

    def _average_gradients(self) -> None:
        self._queued = False
        for bucket in self._buckets:
            bucket.reduce_mean(self.world_size)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this block, backward accumulates local gradients without communicating.

        The first backward after the block averages everything accumulated, as in PyTorch.

        >>> with ddp.no_sync():  # doctest: +SKIP
        ...     ddp(x1).mean().backward()   # local only
        >>> ddp(x2).mean().backward()       # averages the sum of both  # doctest: +SKIP
        """
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def state_dict(self, prefix: str = "") -> Any:
        """The wrapped module's state dict (no ``module.`` prefix)."""
        return self.module.state_dict(prefix)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> tuple[list, list]:
        """Load into the wrapped module (keys without a ``module.`` prefix)."""
        return self.module.load_state_dict(state_dict, strict=strict)

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}, buckets={len(self._buckets)}"


def _describe(entry: tuple | None) -> str:
    if entry is None:
        return "nothing"
    name, shape, dtype = entry
    return f"{name!r} of shape {shape} ({dtype})"


__all__ = ["DistributedDataParallel"]
