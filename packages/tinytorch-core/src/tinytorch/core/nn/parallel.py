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
from .. import functional as F
from ..autograd import Function, is_grad_enabled, queue_callback
from ..checks import is_real
from ..tensor import Tensor
from .batchnorm import _BatchNorm
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
        dist.all_reduce(self.buffer, op="sum", agreed=True)  # the models were compared when wrapped
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
        if not is_real(bucket_mb) or not bucket_mb > 0:
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


class SyncBatchNormFunction(Function, op="sync_batch_norm"):
    """Batch normalization with the statistics of the whole batch, summed over every rank.

    Forward all-reduces each channel's count, sum and sum of squares; backward all-reduces
    Σdy and Σdy·x̂, so with x̂ = (x-μ)/σ the input gradient is that of one process holding the
    whole batch: dx = γ/σ · (dy - Σdy/M - x̂·Σdy·x̂/M), M the global count per channel.
    """

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        axes = (0, *range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        local = np.concatenate([x.sum(axis=axes, dtype=np.float64), (x.astype(np.float64) ** 2).sum(axis=axes),
                                [x.size / x.shape[1]]])
        dist.all_reduce(local)
        c = x.shape[1]
        count = local[-1]
        mean = local[:c] / count
        var = np.maximum(local[c:2 * c] / count - mean**2, 0.0)
        self.count, self.axes, self.shape = count, axes, shape
        self.batch_mean, self.batch_var = mean, var  # for the running statistics
        self.inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype).reshape(shape)
        self.xhat = (x - mean.astype(x.dtype).reshape(shape)) * self.inv_std
        self.weight = weight
        out = self.xhat if weight is None else self.xhat * weight.reshape(shape)
        return out if bias is None else out + bias.reshape(shape)

    def backward(self, grad):
        needs = self.needs_input_grad
        sums = np.concatenate([grad.sum(axis=self.axes, dtype=np.float64),
                               (grad * self.xhat).sum(axis=self.axes, dtype=np.float64)])
        c = self.shape[1]
        grad_weight = sums[c:].astype(grad.dtype) if len(needs) > 1 and needs[1] else None  # local: DDP averages
        grad_bias = sums[:c].astype(grad.dtype) if len(needs) > 2 and needs[2] else None
        grad_x = None
        if needs[0]:
            dist.all_reduce(sums)
            mean_dy = (sums[:c] / self.count).astype(grad.dtype).reshape(self.shape)
            mean_dy_xhat = (sums[c:] / self.count).astype(grad.dtype).reshape(self.shape)
            scale = self.inv_std if self.weight is None else self.inv_std * self.weight.reshape(self.shape)
            grad_x = scale * (grad - mean_dy - self.xhat * mean_dy_xhat)
        return grad_x, grad_weight, grad_bias


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the global batch over every rank (PyTorch's name).

    Plain BatchNorm under ``DistributedDataParallel`` normalizes each rank's share with its own
    statistics; ``SyncBatchNorm`` sums them over the ranks first (one small Allreduce forward
    and one backward per layer), so N ranks compute what one process does with the whole batch,
    running statistics included. With one process it is an ordinary BatchNorm over axis 1.
    Arguments, checks, parameters and buffers are those of every BatchNorm (`_BatchNorm`).

    Args:
        num_features: C, the size of axis 1 of the input (N, C, ...).
        eps: added to the variance.
        momentum: weight of each batch in the running statistics (None: cumulative average).
        affine: learn a per-channel scale and shift.
        track_running_stats: keep running statistics for evaluation.
        dtype: dtype of the parameters and running statistics.
        bias: with ``affine``, learn the shift too (keyword-only, as PyTorch).

    Shape: (N, C, *) -> (N, C, *).

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> bn = SyncBatchNorm(3)
    >>> y = bn(Tensor(np.random.default_rng(0).normal(2, 3, (8, 3, 4, 4)).astype(np.float32)))
    >>> bool(abs(y.numpy().mean()) < 1e-5), bn.running_mean.shape
    (True, (3,))
    """

    def _normalize(self, x, running_mean, running_var, training, momentum):
        if not training:
            return F.batch_norm(x, running_mean, running_var, self.weight, self.bias, training=False,
                                eps=self.eps)
        inputs = [t for t in (x, self.weight, self.bias) if t is not None]
        out = SyncBatchNormFunction.apply(*inputs, eps=self.eps)
        if running_mean is not None:
            ctx = out._ctx
            mean, var, count = (ctx.batch_mean, ctx.batch_var, ctx.count) if ctx is not None else _stats(x)
            unbiased = var * (count / max(count - 1, 1))
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean.astype(running_mean.dtype)
            running_var[...] = (1 - momentum) * running_var + momentum * unbiased.astype(running_var.dtype)
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every BatchNorm layer of ``module`` (any class named ``BatchNorm*d`` with
        running statistics, e.g. vision's ``BatchNorm2d``) by a ``SyncBatchNorm`` that keeps its
        parameters and buffers (so optimizers and state-dict keys stay the same).

        Args:
            module: the model (or a BatchNorm layer itself).

        Returns:
            The converted module (``module`` itself unless it is a BatchNorm layer).

        >>> from tinytorch.core import nn
        >>> class BatchNorm1d(nn.Module):  # any BatchNorm layer with PyTorch's attributes
        ...     def __init__(self, n):
        ...         super().__init__()
        ...         self.num_features, self.eps, self.momentum, self.affine = n, 1e-5, 0.1, False
        ...         self.track_running_stats = False
        >>> model = nn.Sequential(nn.Linear(4, 3), BatchNorm1d(3))
        >>> type(SyncBatchNorm.convert_sync_batchnorm(model)[1]).__name__
        'SyncBatchNorm'
        """
        if _is_batch_norm(module):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats, bias=getattr(module, "bias", None) is not None)
            for name in ("weight", "bias"):
                if getattr(module, name, None) is not None:
                    setattr(sync, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync._buffers[name] = module._buffers.get(name)
            sync.train(module.training)
            return sync
        for name, child in list(module._modules.items()):
            if child is not None:
                converted = cls.convert_sync_batchnorm(child)
                if converted is not child:
                    module._modules[name] = converted
        return module


def _is_batch_norm(module: Module) -> bool:
    name = type(module).__name__
    return (name.startswith("BatchNorm") and name.endswith("d") and hasattr(module, "num_features")
            and not isinstance(module, SyncBatchNorm))


def _stats(x: Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """The global batch statistics when no graph was recorded (under no_grad in training mode)."""
    data = x.data
    axes = (0, *range(2, data.ndim))
    c = data.shape[1]
    local = np.concatenate([data.sum(axis=axes, dtype=np.float64), (data.astype(np.float64) ** 2).sum(axis=axes),
                            [data.size / c]])
    dist.all_reduce(local)
    mean = local[:c] / local[-1]
    return mean, np.maximum(local[c:2 * c] / local[-1] - mean**2, 0.0), local[-1]


def _describe(entry: tuple | None) -> str:
    if entry is None:
        return "nothing"
    name, shape, dtype = entry
    return f"{name!r} of shape {shape} ({dtype})"


__all__ = ["DistributedDataParallel", "SyncBatchNorm"]
