"""Batch normalization: the one base class (`_BatchNorm`) and `BatchNorm1d`.

`_BatchNorm` holds what every BatchNorm layer shares, as in ``torch.nn.modules.batchnorm``:
argument checks, the parameters (weight, bias) and buffers (running_mean, running_var,
num_batches_tracked) under PyTorch's names and shapes, the choice between batch and running
statistics, and the momentum of each running-statistics update. A subclass says which inputs it
takes (``_check_input``) and how it normalizes (``_normalize``): `BatchNorm1d` with
``functional.batch_norm``, vision's ``BatchNorm2d`` with its channels-last kernel,
``SyncBatchNorm`` with statistics summed over every rank.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..checks import is_int, is_real
from ..tensor import DEFAULT_DTYPE, Tensor
from .module import Module, Parameter


class _BatchNorm(Module):
    """Base of the BatchNorm layers: parameters, buffers, checks and running statistics.

    Training mode normalizes with the statistics of the batch and (with
    ``track_running_stats``) moves ``running_mean`` / ``running_var`` towards them by
    ``momentum`` (the unbiased variance, as PyTorch); eval mode uses the running statistics.
    ``momentum=None`` is a cumulative average: batch k weighs 1/k.

    Args:
        num_features: C, the size of axis 1 of the input.
        eps: added to the variance (> 0).
        momentum: weight of each new batch in the running statistics, in [0, 1]; None for a
            cumulative average over all batches.
        affine: learn a per-channel scale (weight, init 1) and shift (bias, init 0).
        track_running_stats: keep running statistics (otherwise batch statistics always).
        dtype: dtype of the parameters and running statistics.
        bias: with ``affine``, learn the shift too (keyword-only, as PyTorch).

    >>> bn = BatchNorm1d(3)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=DEFAULT_DTYPE, *,
                 bias: bool = True):
        super().__init__()
        name = type(self).__name__
        if not is_int(num_features) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if not is_real(eps) or not eps > 0:
            raise ValueError(f"{name}: eps must be a number > 0, got {eps!r}")
        if momentum is not None and (not is_real(momentum) or not 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        initial = {"weight": np.ones(num_features, dtype=dtype) if affine else None,
                   "bias": np.zeros(num_features, dtype=dtype) if affine and bias else None}
        for param, value in initial.items():
            self.register_parameter(param, None if value is None else Parameter(value))
        tracked = {"running_mean": np.zeros(num_features, dtype=dtype),
                   "running_var": np.ones(num_features, dtype=dtype),
                   "num_batches_tracked": np.zeros((), dtype=np.int64)}
        for buffer, value in tracked.items():
            self.register_buffer(buffer, Tensor(value) if track_running_stats else None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[1] != self.num_features:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"{type(self).__name__} expected input (N, {self.num_features}, *), got {got}")

    def _normalize(self, x: Tensor, running_mean: np.ndarray | None, running_var: np.ndarray | None,
                   training: bool, momentum: float) -> Tensor:
        """Normalize ``x``; with batch statistics and running arrays, update those in place."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        use_batch_stats = self.training or not self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.data)
        if self.track_running_stats and (self.training or not use_batch_stats):
            running_mean, running_var = self.running_mean.data, self.running_var.data
        else:  # no running statistics kept: batch statistics, nothing updated
            running_mean = running_var = None
        return self._normalize(x, running_mean, running_var, use_batch_stats, momentum)

    def extra_repr(self) -> str:
        bias = "" if self.bias is not None or not self.affine else ", bias=False"
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
                f"{bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization per feature of an (N, C) or (N, C, L) batch, as ``torch.nn.BatchNorm1d``.

    Statistics are over N (and L). State-dict keys and shapes are PyTorch's: weight, bias,
    running_mean, running_var (C,) and num_batches_tracked (an int64 scalar).

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: weight of each new batch in the running statistics; None for a cumulative
            average over all batches.
        affine: learn a per-feature scale (weight, init 1) and shift (bias, init 0).
        track_running_stats: keep running statistics (otherwise batch statistics always).
        dtype: dtype of the parameters and running statistics.
        bias: with ``affine``, learn the shift too (keyword-only, as PyTorch).

    Shape: (N, C) -> (N, C); (N, C, L) -> (N, C, L).

    >>> import numpy as np
    >>> from tinytorch.core import Tensor, nn
    >>> bn = nn.BatchNorm1d(4)
    >>> y = bn(Tensor(np.random.default_rng(0).normal(3, 2, (16, 4)).astype(np.float32)))
    >>> bool(abs(y.numpy().mean()) < 1e-6), bn.running_mean.shape
    (True, (4,))
    """

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            c = self.num_features
            raise ValueError(f"BatchNorm1d expected input (N, {c}) or (N, {c}, L), got {got}")

    def _normalize(self, x, running_mean, running_var, training, momentum):
        return F.batch_norm(x, running_mean, running_var, self.weight, self.bias, training=training,
                            momentum=momentum, eps=self.eps)


__all__ = ["BatchNorm1d"]
