"""Neural-network functions, with fused Functions for the hot paths.

``linear``, ``softmax``/``log_softmax``, ``cross_entropy`` and ``layer_norm`` are each one
Function with an analytic backward: one graph node instead of five to ten, fewer temporary arrays
and none of the numerical trouble of composing exp, sum and log by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import kernels
from .autograd import Function, is_grad_enabled
from .checks import check_real, is_int, is_real, out_of_range
from .ops import (
    ConcatFunction,
    GELUFunction,
    LogSoftmaxFunction,
    ReLUFunction,
    SigmoidFunction,
    SoftmaxFunction,
    StackFunction,
    TanhFunction,
    WhereFunction,
)
from .random import get_rng
from .tensor import Tensor, axis_arg

# ---------------------------------------------------------------------------------- linear


class LinearFunction(Function, op="linear"):
    """y = x·Wᵀ + b over any leading shape; W is (out_features, in_features) as in PyTorch."""

    def forward(self, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear expected last dim {weight.shape[1]} (weight {weight.shape}), "
                f"got input {x.shape}"
            )
        self.x, self.weight = x, weight
        return kernels.linear(x, weight, bias)

    def backward(self, grad):
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = (grad2d @ self.weight).reshape(self.x.shape) if need_x else None
        grad_w = grad2d.T @ self.x.reshape(-1, self.x.shape[-1]) if need_w else None
        grad_b = grad2d.sum(axis=0) if need_b else None
        return grad_x, grad_w, grad_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``x @ weight.T + bias``: one fused Function, one 2-D GEMM for any leading shape.

    Args:
        x: (..., in_features).
        weight: (out_features, in_features), as in PyTorch.
        bias: (out_features,) or None.

    Returns:
        (..., out_features).

    >>> from tinytorch.core import ones, zeros
    >>> linear(ones(4, 3), ones(2, 3), zeros(2)).tolist()[0]
    [3.0, 3.0]
    """
    if bias is None:
        return LinearFunction.apply(x, weight)
    return LinearFunction.apply(x, weight, bias)


# ---------------------------------------------------------------------------------- softmax


def softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Softmax along ``axis`` (numerically stable: the max is subtracted first).

    Args:
        x: any shape.
        axis: the axis whose entries sum to 1 (default the last).
        dim: PyTorch's name for ``axis``.

    >>> from tinytorch.core import Tensor
    >>> softmax(Tensor([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    return SoftmaxFunction.apply(x, axis=axis_arg("softmax", axis, dim, default=-1))


def log_softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """log(softmax(x)) along ``axis`` (default the last; or ``dim``), computed without forming
    softmax (no underflow).

    >>> from tinytorch.core import Tensor
    >>> round(log_softmax(Tensor([0.0, 0.0])).tolist()[0], 4)
    -0.6931
    """
    return LogSoftmaxFunction.apply(x, axis=axis_arg("log_softmax", axis, dim, default=-1))


# ---------------------------------------------------------------------------------- losses


class CrossEntropyFunction(Function, op="cross_entropy"):
    """Softmax + negative log-likelihood in one node.

    Forward keeps only the softmax probabilities; backward is (p - onehot(y)) / N, which needs
    no log, no exp and no one-hot matrix.
    """

    def forward(self, logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        classes = logits.shape[-1]
        flat = logits.reshape(-1, classes)
        y = target.reshape(-1)
        valid = y != ignore_index
        if not np.all(valid):
            y = np.where(valid, y, 0)
        bad = out_of_range(y, classes)
        if bad is not None:
            raise ValueError(
                f"cross_entropy: target class {bad} is out of range for {classes} classes "
                f"(expected 0..{classes - 1} or ignore_index={ignore_index})"
            )
        logp = kernels.log_softmax(flat, axis=-1)
        rows = np.arange(y.size)
        nll = -logp[rows, y]
        if label_smoothing:
            nll = (1 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)
        nll = np.where(valid, nll, nll.dtype.type(0))
        count = int(valid.sum())
        self.probs, self.y, self.valid, self.rows = np.exp(logp), y, valid, rows
        self.shape, self.reduction, self.smoothing = logits.shape, reduction, label_smoothing
        self.count = count
        if reduction == "mean":
            # Like PyTorch, a batch where every target is ignored gives nan, not a silent 0.
            return np.asarray(nll.sum() / count if count else np.nan, dtype=logits.dtype)
        if reduction == "sum":
            return np.asarray(nll.sum(), dtype=logits.dtype)
        return nll.reshape(target.shape)

    def backward(self, grad):
        d = self.probs.copy()  # a copy, so backward can run again with retain_graph=True
        classes = d.shape[-1]
        if self.smoothing:
            d -= self.smoothing / classes
            d[self.rows, self.y] -= 1 - self.smoothing
        else:
            d[self.rows, self.y] -= 1
        d *= self.valid[:, None]
        if self.reduction == "mean":
            d *= grad / max(self.count, 1)
        elif self.reduction == "sum":
            d *= grad
        else:
            d *= grad.reshape(-1, 1)
        return d.reshape(self.shape), None


def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(
    logits: Tensor,
    target: Any,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between ``logits`` (..., C) and integer class ``target`` (...).

    Softmax and negative log-likelihood are one fused Function (backward: softmax - one-hot).
    Works over any leading shape, so (B, T, V) language-model logits need no reshape.

    Args:
        logits: (..., C) unnormalized scores.
        target: (...) integer class indices (array, list or Tensor).
        ignore_index: targets equal to this contribute nothing and are left out of the mean.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per position, shape (...)).
        label_smoothing: mix the one-hot target with the uniform distribution by this amount.

    >>> from tinytorch.core import Tensor
    >>> round(cross_entropy(Tensor([[0.0, 0.0]]), [1]).item(), 4)
    0.6931
    """
    target_arr = target.data if isinstance(target, Tensor) else np.asarray(target)
    _check_reduction("cross_entropy", reduction)
    if not np.issubdtype(target_arr.dtype, np.integer):
        raise TypeError(
            f"cross_entropy: target must hold integer class indices, got dtype {target_arr.dtype}"
        )
    if logits.shape[:-1] != target_arr.shape:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} need target of shape {logits.shape[:-1]}, "
            f"got {target_arr.shape}"
        )
    return CrossEntropyFunction.apply(
        logits,
        Tensor._from_op(target_arr, None),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def nll_loss(log_probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of ``target`` (N,) under ``log_probs`` (N, C).

    Args:
        log_probs: (N, C), e.g. from ``log_softmax``.
        target: (N,) integer classes in 0..C-1.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    >>> from tinytorch.core import Tensor
    >>> round(nll_loss(log_softmax(Tensor([[0.0, 0.0]])), [0]).item(), 4)
    0.6931
    """
    target_arr = target.data if isinstance(target, Tensor) else np.asarray(target)
    _check_reduction("nll_loss", reduction)
    classes = log_probs.shape[-1]
    bad = out_of_range(target_arr, classes)
    if bad is not None:
        raise ValueError(
            f"nll_loss: target class {bad} is out of range for {classes} classes "
            f"(expected 0..{classes - 1})"
        )
    picked = log_probs[np.arange(target_arr.size), target_arr.reshape(-1)]
    if reduction == "none":
        return -picked
    return -(picked.mean() if reduction == "mean" else picked.sum())


def mse_loss(prediction: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``prediction`` and ``target`` must have the same shape.

    Args:
        prediction: any shape.
        target: the same shape (a Tensor or array-like).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise squared errors).

    >>> from tinytorch.core import Tensor
    >>> mse_loss(Tensor([1.0, 3.0]), [1.0, 1.0]).item()
    2.0
    """
    _check_reduction("mse_loss", reduction)
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target, dtype=prediction.dtype))
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_loss: prediction {prediction.shape} and target {target.shape} differ in shape"
        )
    diff = prediction - target
    sq = diff * diff
    if reduction == "none":
        return sq
    return sq.mean() if reduction == "mean" else sq.sum()


class KLDivFunction(Function, op="kl_div"):
    """Pointwise KL divergence as ``torch.nn.functional.kl_div``: ``input`` holds log-probabilities.

    With p the target's probabilities (``target``, or ``exp(target)`` when ``log_target``):

        l = p·(log p - input)      dl/dinput = -p      dl/dtarget = p·(log p - input + 1)·(dp/dtarget)/p

    so dl/dtarget is (log p - input + 1) for probabilities and p·(target - input + 1) for
    log-probabilities. A zero probability contributes 0 (x·log x → 0), as in PyTorch.
    """

    def forward(self, x, target, reduction="mean", log_target=False):
        if log_target:
            p = np.exp(target)
            log_p = target
        else:
            p = target
            with np.errstate(divide="ignore"):  # log 0 = -inf, where p = 0 contributes 0 below
                log_p = np.log(target)
        with np.errstate(invalid="ignore"):
            pointwise = p * (log_p - x)
        if not log_target:
            pointwise = np.where(p > 0, pointwise, pointwise.dtype.type(0))
        self.p, self.log_p, self.x = p, log_p, x
        self.shape, self.reduction, self.log_target = pointwise.shape, reduction, log_target
        if reduction == "none":
            return pointwise
        total = np.add.reduce(pointwise, axis=None)
        if reduction == "sum":
            return np.asarray(total, dtype=pointwise.dtype)
        count = pointwise.size if reduction == "mean" else pointwise.shape[0]
        return np.asarray(total / count, dtype=pointwise.dtype)

    def backward(self, grad):
        if self.reduction == "none":
            scale = grad
        else:
            count = {"sum": 1, "mean": self.p.size, "batchmean": self.shape[0]}[self.reduction]
            scale = grad / count
        need_x, need_target = self.needs_input_grad
        grad_x = -self.p * scale if need_x else None
        grad_target = None
        if need_target:
            slope = self.log_p - self.x + 1
            grad_target = (self.p * slope if self.log_target else slope) * scale
        return grad_x, grad_target


def kl_div(input: Tensor, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence KL(target ‖ input), as ``torch.nn.functional.kl_div``.

    As in PyTorch, ``input`` holds log-probabilities (e.g. from ``log_softmax``) and ``target``
    probabilities, or log-probabilities with ``log_target=True`` (more precise for small ones).
    Pointwise, ``target·(log target - input)``; the two broadcast. Only ``reduction="batchmean"``
    (sum over everything divided by the batch size, ``input.shape[0]``) is the KL divergence per
    sample that the maths means; ``"mean"`` (PyTorch's default, kept for compatibility) divides
    by the number of elements instead, which also divides by the number of classes.

    Args:
        input: log-probabilities, any shape (rows of a distribution on the last axis, usually).
        target: probabilities (or log-probabilities with ``log_target``); a Tensor or array,
            broadcastable with ``input``.
        reduction: ``"batchmean"``, ``"sum"``, ``"mean"`` or ``"none"`` (pointwise).
        log_target: whether ``target`` holds log-probabilities.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> p = np.array([[0.5, 0.5]])
    >>> q = Tensor(np.log(np.array([[0.25, 0.75]])))
    >>> round(kl_div(q, p, reduction="batchmean").item(), 6)   # 0.5·log(0.5/0.25) + 0.5·log(0.5/0.75)
    0.143841
    """
    if reduction not in ("none", "batchmean", "sum", "mean"):
        raise ValueError(f"kl_div: reduction must be 'batchmean', 'sum', 'mean' or 'none', got {reduction!r}")
    if not isinstance(input, Tensor):
        raise TypeError(f"kl_div: input must be a Tensor of log-probabilities, got {type(input).__name__}")
    if not isinstance(target, Tensor):
        target = Tensor._from_op(np.asarray(target, dtype=input.dtype), None)
    try:
        shape = np.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ValueError(f"kl_div: input {tuple(input.shape)} and target {tuple(target.shape)} do not "
                         "broadcast") from None
    if reduction == "batchmean" and len(shape) == 0:
        raise ValueError("kl_div: reduction='batchmean' divides by the batch size, input.shape[0], "
                         "but input is a scalar")
    return KLDivFunction.apply(input, target, reduction=reduction, log_target=bool(log_target))


def check_distillation(owner: str, temperature: Any, alpha: Any) -> tuple[float, float]:
    """(temperature, alpha) as floats if temperature is a finite number > 0 and alpha one in
    [0, 1], else a ``ValueError`` naming ``owner``, the argument and the value.

    >>> check_distillation("DistillationLoss", 0, 0.5)
    Traceback (most recent call last):
        ...
    ValueError: DistillationLoss: temperature must be a finite number > 0, got 0
    """
    if not is_real(temperature) or not 0 < temperature < math.inf:
        raise ValueError(f"{owner}: temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature), check_real(owner, "alpha", alpha, minimum=0.0, maximum=1.0)


def distillation_loss(student_logits: Tensor, teacher_logits: Any, target: Any, temperature: float = 2.0,
                      alpha: float = 0.5, ignore_index: int = -100) -> Tensor:
    """Knowledge distillation (Hinton, Vinyals & Dean, 2015): match the teacher's softened
    distribution and the labels at once.

        alpha·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 - alpha)·cross_entropy(student, target)

    A temperature T > 1 flattens both distributions, so the student also learns how the teacher
    ranks the wrong classes (its "dark knowledge"). The soft term's gradient scales as 1/T², so
    it is multiplied by T² to keep both terms' gradients comparable whatever T is. The KL is
    averaged over positions (rows of the last axis), like the cross-entropy. The teacher's logits
    are a constant target: no gradient flows into them.

    Args:
        student_logits: (..., C) the student's scores.
        teacher_logits: (..., C) the teacher's scores for the same inputs (Tensor or array).
        target: (...) integer labels for the hard term.
        temperature: T > 0 (1: the plain distributions).
        alpha: weight of the soft term in [0, 1] (0: cross-entropy only, 1: KL only).
        ignore_index: labels equal to this are left out of the cross-entropy (not the KL).

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> logits = Tensor(np.array([[2.0, 0.0]]))
    >>> round(distillation_loss(logits, logits, [0], temperature=4.0, alpha=1.0).item(), 6)  # same logits: KL 0
    0.0
    """
    temperature, alpha = check_distillation("distillation_loss", temperature, alpha)
    if not isinstance(student_logits, Tensor):
        raise TypeError(f"distillation_loss: student_logits must be a Tensor, got {type(student_logits).__name__}")
    teacher = teacher_logits.data if isinstance(teacher_logits, Tensor) else np.asarray(teacher_logits)
    if teacher.shape != student_logits.shape:
        raise ValueError(f"distillation_loss: teacher logits {tuple(teacher.shape)} and student logits "
                         f"{tuple(student_logits.shape)} differ in shape (the two models must share the "
                         f"vocabulary/classes and see the same inputs)")
    classes = student_logits.shape[-1]
    t = student_logits.dtype.type(temperature)
    soft_target = kernels.log_softmax(teacher.astype(student_logits.dtype, copy=False) / t, axis=-1)
    soft_student = log_softmax(student_logits / temperature, axis=-1)
    soft = kl_div(soft_student.reshape(-1, classes), soft_target.reshape(-1, classes),
                  reduction="batchmean", log_target=True)
    hard = cross_entropy(student_logits, target, ignore_index=ignore_index)
    return soft * (alpha * temperature**2) + hard * (1 - alpha)


# ---------------------------------------------------------------------------------- layer norm


class LayerNormFunction(Function, op="layer_norm"):
    """Normalize over the last ``k`` axes, then scale and shift (Ba, Kiros & Hinton, 2016).

    Backward, with x̂ = (x-μ)/σ and g' = g·γ: dx = (g' - mean(g') - x̂·mean(g'·x̂)) / σ.
    """

    def forward(self, x, weight=None, bias=None, normalized_ndim=1, eps=1e-5):
        self.weight = weight
        out, self.xhat, self.std = kernels.layer_norm(x, weight, bias, eps, normalized_ndim)
        return out

    def backward(self, grad):
        needs = self.needs_input_grad
        return kernels.layer_norm_backward(
            grad, self.xhat, self.std, self.weight, need_x=needs[0],
            need_weight=len(needs) > 1 and needs[1], need_bias=len(needs) > 2 and needs[2],
        )


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes of ``x``: one fused Function.

    Args:
        x: (..., *normalized_shape).
        normalized_shape: the trailing shape to normalize over (an int for the last axis).
        weight: scale γ of shape ``normalized_shape``, or None.
        bias: shift β of shape ``normalized_shape``, or None.
        eps: added to the variance.

    >>> from tinytorch.core import Tensor
    >>> y = layer_norm(Tensor([[1.0, 2.0, 3.0]]), 3)
    >>> round(y.mean().item(), 6), round(float(y.numpy().std()), 3)
    (0.0, 1.0)
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x_shape = x.data.shape
    if x_shape[len(x_shape) - len(shape):] != shape:
        raise ValueError(f"layer_norm expected trailing shape {shape}, got input {x_shape}")
    inputs = [x]
    if weight is not None:
        inputs.append(weight)
        if bias is not None:
            inputs.append(bias)
    elif bias is not None:
        inputs += [Tensor._from_op(np.ones(shape, dtype=x.dtype), None), bias]
    return LayerNormFunction.apply(*inputs, normalized_ndim=len(shape), eps=eps)


# ---------------------------------------------------------------------------------- dropout


class DropoutFunction(Function, op="dropout"):
    """Inverted dropout: multiply by a saved mask already scaled by 1/(1-p)."""
    def forward(self, x, p, generator):
        keep = generator.random(x.shape, dtype=np.float32) >= p
        self.scaled_mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - p))
        return x * self.scaled_mask

    def backward(self, grad):
        return grad * self.scaled_mask


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout).

    Args:
        x: any shape.
        p: drop probability in [0, 1].
        training: when False (or p == 0), return ``x`` unchanged.
        generator: a NumPy generator for the mask (default: the global one).

    >>> from tinytorch.core import ones
    >>> dropout(ones(4), p=0.5, training=False).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    if not 0 <= p < 1:
        if p == 1 and training:
            return x * 0
        if not 0 <= p <= 1:
            raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    return DropoutFunction.apply(x, p=p, generator=generator or get_rng())


# ---------------------------------------------------------------------------------- batch, group and RMS norm


def _channel_view(shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For an (N, C, *) array: the axes of every dimension but C, and the (1, C, 1, ...) shape."""
    return (0, *range(2, len(shape))), (1, shape[1]) + (1,) * (len(shape) - 2)


def _channel_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b over every axis but 1 of two (N, C, *) arrays, without an a·b temporary: (C,)."""
    n, c = a.shape[:2]
    return np.einsum("ncl,ncl->c", a.reshape(n, c, -1), b.reshape(n, c, -1))


class BatchNormFunction(Function, op="batch_norm"):
    """Batch normalization over every axis but 1 of an (N, C, *) array, analytic backward.

    Training mode normalizes with the batch statistics (biased variance) and updates the running
    statistics in place (unbiased variance, as PyTorch). With x̂ = (x - μ)/σ, k = γ/σ and M the
    number of values per channel:

        dγ = Σ g·x̂        dβ = Σ g        dx = k·(g - Σg/M - x̂·Σ(g·x̂)/M)

    In eval mode μ and σ are constants, so dx = k·g.

    Shape: x (N, C, *), weight and bias (C,) -> x's shape.

    >>> import numpy as np
    >>> x = Tensor(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> BatchNormFunction.apply(x, running_mean=None, running_var=None, training=True,
    ...                         momentum=0.1, eps=0.0).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """

    def forward(self, x, weight=None, bias=None, *, running_mean, running_var, training, momentum,
                eps):
        axes, shape = _channel_view(x.shape)
        dt = x.dtype.type
        if training:
            mean = x.mean(axis=axes)
            centered = x - mean.reshape(shape)
            var = np.mean(centered * centered, axis=axes)
            if running_mean is not None:
                m = x.size // x.shape[1]
                mom = dt(momentum)
                running_mean *= 1 - mom
                running_mean += (mom * mean).astype(running_mean.dtype)
                running_var *= 1 - mom
                running_var += (mom * var * dt(m / max(m - 1, 1))).astype(running_var.dtype)
        else:
            mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
            centered = x - mean.reshape(shape)
        inv_std = (1 / np.sqrt(var + dt(eps))).astype(x.dtype)
        xhat = centered * inv_std.reshape(shape)
        out = xhat if weight is None else xhat * weight.reshape(shape)
        if bias is not None:
            out = out + bias.reshape(shape)
        self.xhat, self.inv_std, self.weight, self.training = xhat, inv_std, weight, training
        return out

    def backward(self, grad):
        axes, shape = _channel_view(grad.shape)
        xhat, need = self.xhat, self.needs_input_grad
        sum_g = grad.sum(axis=axes)
        sum_gxhat = _channel_dots(grad, xhat)
        grad_x = None
        if need[0]:
            k = self.inv_std if self.weight is None else self.inv_std * self.weight
            if self.training:  # the batch statistics depend on x too
                inv_m = grad.dtype.type(grad.shape[1] / grad.size)
                grad_x = k.reshape(shape) * (grad - (sum_g * inv_m).reshape(shape)
                                             - xhat * (sum_gxhat * inv_m).reshape(shape))
            else:
                grad_x = grad * k.reshape(shape)
        return grad_x, sum_gxhat, sum_g


def _check_per_channel(fn: str, c: int, **arrays: Any) -> None:
    for name, arr in arrays.items():
        if arr is not None and tuple(arr.shape) != (c,):
            raise ValueError(f"{fn} expected {name} of shape ({c},), got {tuple(arr.shape)}")


def _affine_inputs(x: Tensor, weight: Tensor | None, bias: Tensor | None, shape) -> list[Tensor]:
    """[x, weight, bias] without trailing Nones; a bias alone gets a constant weight of ones."""
    if weight is None and bias is not None:
        weight = Tensor._from_op(np.ones(shape, dtype=x.dtype), None)
    return [t for t in (x, weight, bias) if t is not None]


def batch_norm(
    x: Tensor,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization of an (N, C, *) batch per channel, as ``torch.nn.functional.batch_norm``.

    Args:
        x: (N, C) or (N, C, L, ...); statistics are over every axis but C.
        running_mean: (C,) array updated in place in training mode, or None.
        running_var: (C,) array, like ``running_mean``.
        weight: (C,) scale γ, or None.
        bias: (C,) shift β, or None.
        training: normalize with the batch statistics (and update the running ones); otherwise
            with ``running_mean`` and ``running_var``.
        momentum: weight of this batch in the running statistics.
        eps: added to the variance.

    Returns:
        x's shape.

    >>> import numpy as np
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> y = batch_norm(Tensor(np.array([[1.0, 10.0], [3.0, 30.0]])), mean, var, training=True, eps=0.0)
    >>> y.tolist(), mean.tolist()   # the running mean moved 10% of the way to (2, 20)
    ([[-1.0, -1.0], [1.0, 1.0]], [0.2, 2.0])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"batch_norm expected a Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"batch_norm expected input (N, C, *), got {tuple(x.shape)}")
    c = x.shape[1]
    _check_per_channel("batch_norm", c, running_mean=running_mean, running_var=running_var,
                       weight=weight, bias=bias)
    if training and x.size // c <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got "
                         f"input {tuple(x.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
    return BatchNormFunction.apply(*_affine_inputs(x, weight, bias, (c,)), running_mean=running_mean,
                                   running_var=running_var, training=bool(training),
                                   momentum=momentum, eps=eps)


class GroupNormFunction(Function, op="group_norm"):
    """Group normalization (Wu & He, 2018): layer norm over each group of C/G channels (and all
    positions), then a per-channel scale and shift.

    The normalization is ``kernels.layer_norm`` over the (N, G, C/G·L) view and its backward
    ``kernels.layer_norm_backward`` of g·γ; dγ = Σ g·x̂ and dβ = Σ g per channel.

    Shape: x (N, C, *), weight and bias (C,) -> x's shape.

    >>> import numpy as np
    >>> x = Tensor(np.array([[1.0, 3.0, 10.0, 30.0]]))
    >>> GroupNormFunction.apply(x, num_groups=2, eps=0.0).tolist()
    [[-1.0, 1.0, -1.0, 1.0]]
    """

    def forward(self, x, weight=None, bias=None, *, num_groups, eps):
        _, shape = _channel_view(x.shape)
        _, xhat, self.std = kernels.layer_norm(x.reshape(x.shape[0], num_groups, -1), eps=eps)
        self.xhat, self.weight = xhat, weight
        out = xhat.reshape(x.shape)
        if weight is not None:
            out = out * weight.reshape(shape)
        if bias is not None:
            out = out + bias.reshape(shape)
        return out

    def backward(self, grad):
        axes, shape = _channel_view(grad.shape)
        xhat = self.xhat.reshape(grad.shape)
        need = self.needs_input_grad
        grad_x = None
        if need[0]:
            g_scaled = grad if self.weight is None else grad * self.weight.reshape(shape)
            grad_x, _, _ = kernels.layer_norm_backward(
                g_scaled.reshape(self.xhat.shape), self.xhat, self.std, need_weight=False,
                need_bias=False)
            grad_x = grad_x.reshape(grad.shape)
        grad_w = _channel_dots(grad, xhat) if len(need) > 1 and need[1] else None
        grad_b = grad.sum(axis=axes) if len(need) > 2 and need[2] else None
        return grad_x, grad_w, grad_b


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Group normalization, as ``torch.nn.functional.group_norm``: one fused Function.

    Args:
        x: (N, C, *) with C divisible by ``num_groups``.
        num_groups: G; each sample's channels are split into G groups normalized separately.
        weight: (C,) scale γ, or None.
        bias: (C,) shift β, or None.
        eps: added to each group's variance.

    Returns:
        x's shape.

    >>> y = group_norm(Tensor([[1.0, 3.0, 10.0, 30.0]]), 2, eps=0.0)
    >>> y.tolist()
    [[-1.0, 1.0, -1.0, 1.0]]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"group_norm expected a Tensor, got {type(x).__name__}")
    if not is_int(num_groups) or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive integer, got {num_groups!r}")
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm expected input (N, C, *) with C divisible by num_groups "
                         f"{num_groups}, got {tuple(x.shape)}")
    c = x.shape[1]
    _check_per_channel("group_norm", c, weight=weight, bias=bias)
    return GroupNormFunction.apply(*_affine_inputs(x, weight, bias, (c,)),
                                   num_groups=int(num_groups), eps=eps)


class RMSNormFunction(Function, op="rms_norm"):
    """Root-mean-square normalization (Zhang & Sennrich, 2019) over the trailing axes.

    y = x·r·γ with r = 1/√(mean(x²) + eps) per row. Backward, with x̂ = x·r and g' = g·γ:
    dx = r·(g' - x̂·mean(g'·x̂)), dγ = Σ_rows g·x̂.

    Shape: x (..., *normalized_shape), weight ``normalized_shape`` -> x's shape.

    >>> import numpy as np
    >>> RMSNormFunction.apply(Tensor(np.array([[3.0, -4.0]])), normalized_ndim=1, eps=0.0).tolist()
    [[0.848528137423857, -1.131370849898476]]
    """

    def forward(self, x, weight=None, *, normalized_ndim, eps):
        d = math.prod(x.shape[x.ndim - normalized_ndim:])
        x2 = x.reshape(-1, d)
        mean_sq = np.vecdot(x2, x2)[:, None] * x.dtype.type(1 / d)
        self.r = 1 / np.sqrt(mean_sq + x.dtype.type(eps))
        self.xhat, self.weight = x2 * self.r, weight
        out = self.xhat if weight is None else self.xhat * weight.reshape(-1)
        return out.reshape(x.shape)

    def backward(self, grad):
        xhat, need = self.xhat, self.needs_input_grad
        g2 = grad.reshape(xhat.shape)
        grad_x = grad_w = None
        if need[0]:
            gw = g2 if self.weight is None else g2 * self.weight.reshape(-1)
            mean_gx = np.vecdot(gw, xhat)[:, None] * grad.dtype.type(1 / xhat.shape[1])
            grad_x = (self.r * (gw - xhat * mean_gx)).reshape(grad.shape)
        if len(need) > 1 and need[1]:
            grad_w = np.einsum("ij,ij->j", g2, xhat).reshape(self.weight.shape)
        return grad_x, grad_w


def rms_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """RMS normalization over the trailing ``normalized_shape`` axes, as ``torch.nn.functional.rms_norm``.

    Args:
        x: (..., *normalized_shape).
        normalized_shape: the trailing shape to normalize over (an int for the last axis).
        weight: scale γ of shape ``normalized_shape``, or None.
        eps: added to the mean square; None means the machine epsilon of x's dtype
            (``np.finfo(x.dtype).eps``), as PyTorch.

    Returns:
        x's shape.

    >>> y = rms_norm(Tensor([[3.0, -4.0]]), 2, eps=0.0)
    >>> [round(v, 4) for v in y.tolist()[0]]   # divided by √((9 + 16) / 2)
    [0.8485, -1.1314]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"rms_norm expected a Tensor, got {type(x).__name__}")
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not shape or x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"rms_norm expected input (*, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if weight is not None and tuple(weight.shape) != shape:
        raise ValueError(f"rms_norm expected weight of shape {shape}, got {tuple(weight.shape)}")
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    inputs = [x] if weight is None else [x, weight]
    return RMSNormFunction.apply(*inputs, normalized_ndim=len(shape), eps=eps)


# ---------------------------------------------------------------------------------- embedding


class EmbeddingFunction(Function, op="embedding"):
    """Row lookup; backward scatters-adds each row's gradient (repeated ids accumulate).

    The ``padding_idx`` row (if not None) gets no gradient, as in PyTorch.
    """

    def forward(self, weight, ids, padding_idx=None):
        self.ids, self.num, self.padding_idx = ids, weight.shape[0], padding_idx
        return weight[ids]

    def backward(self, grad):
        d = grad.shape[-1]
        # bincount per column is much faster than np.add.at for the (N, d) scatter.
        flat_ids = self.ids.reshape(-1)
        flat_grad = grad.reshape(-1, d)
        out = np.zeros((self.num, d), dtype=grad.dtype)
        order = np.argsort(flat_ids, kind="stable")
        sorted_ids = flat_ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if sorted_ids.size else []
        if len(starts):
            out[sorted_ids[starts]] = np.add.reduceat(flat_grad[order], starts, axis=0)
        if self.padding_idx is not None:
            out[self.padding_idx] = 0
        return out, None


def embedding(ids: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``ids`` (any shape).

    Returns (*ids.shape, dim); the backward scatter-adds into the rows used (repeats accumulate).

    Args:
        ids: integer array or Tensor, any shape, values in [0, num_embeddings).
        weight: (num_embeddings, dim).
        padding_idx: a row that receives no gradient (negative counts from the end), or None.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> table = Tensor(np.arange(6.0).reshape(3, 2))
    >>> embedding([[2, 0]], table).tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]
    """
    arr = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {arr.dtype}")
    num = weight.shape[0]
    bad = out_of_range(arr, num)
    if bad is not None:
        raise IndexError(f"embedding: index {bad} is out of range for {num} embeddings")
    padding_idx = _padding_index("embedding", padding_idx, num)
    return EmbeddingFunction.apply(weight, Tensor._from_op(arr, None), padding_idx=padding_idx)


def _padding_index(owner: str, padding_idx: int | None, num_embeddings: int) -> int | None:
    """PyTorch's rule: -num_embeddings <= padding_idx < num_embeddings, negatives from the end."""
    if padding_idx is None:
        return None
    if not is_int(padding_idx) or not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{owner}: padding_idx must be an integer in [{-num_embeddings}, "
                         f"{num_embeddings}) (num_embeddings {num_embeddings}), got {padding_idx!r}")
    return int(padding_idx) % num_embeddings


# ---------------------------------------------------------------------------------- activations


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise.

    >>> from tinytorch.core import Tensor
    >>> relu(Tensor([-1.0, 1.0])).tolist()
    [0.0, 1.0]
    """
    return ReLUFunction.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU elementwise: x·Φ(x) (``approximate="none"``) or GPT-2's tanh form (``"tanh"``).

    >>> from tinytorch.core import Tensor
    >>> [round(v, 4) for v in gelu(Tensor([0.0, 1.0])).tolist()]
    [0.0, 0.8413]
    """
    return GELUFunction.apply(x, approximate=approximate)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x) elementwise.

    >>> from tinytorch.core import Tensor
    >>> sigmoid(Tensor([0.0])).tolist()
    [0.5]
    """
    return SigmoidFunction.apply(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise.

    >>> from tinytorch.core import Tensor
    >>> tanh(Tensor([0.0])).tolist()
    [0.0]
    """
    return TanhFunction.apply(x)


# ---------------------------------------------------------------------------------- joining


def concat(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (default 0; or ``dim``) (``torch.cat``; alias ``cat``).

    >>> from tinytorch.core import ones, zeros
    >>> concat([ones(2, 3), zeros(1, 3)]).shape
    (3, 3)
    """
    if not tensors:
        raise ValueError("concat: expected a non-empty sequence of tensors")
    return ConcatFunction.apply(*tensors, axis=axis_arg("concat", axis, dim, default=0))


cat = concat


def stack(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join same-shaped tensors along a new axis (default 0; or ``dim``).

    >>> from tinytorch.core import ones
    >>> stack([ones(2, 3), ones(2, 3)], axis=1).shape
    (2, 2, 3)
    """
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    return StackFunction.apply(*tensors, axis=axis_arg("stack", axis, dim, default=0))


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elementwise ``a`` where ``condition`` is true, else ``b`` (all three broadcast).

    Python numbers and arrays for ``a`` or ``b`` take the other operand's dtype.

    >>> from tinytorch.core import Tensor
    >>> where([True, False], Tensor([1.0, 2.0]), 0.0).tolist()
    [1.0, 0.0]
    """
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    ta = a if isinstance(a, Tensor) else None
    tb = b if isinstance(b, Tensor) else None
    ref = ta if ta is not None else tb
    dtype = ref.dtype if ref is not None else np.float32
    ta = ta if ta is not None else Tensor(np.asarray(a, dtype=dtype))
    tb = tb if tb is not None else Tensor(np.asarray(b, dtype=dtype))
    return WhereFunction.apply(ta, tb, condition=cond.astype(bool, copy=False))


__all__ = [
    "linear", "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "kl_div", "distillation_loss",
    "layer_norm",
    "batch_norm", "group_norm", "rms_norm", "dropout", "embedding", "relu", "gelu", "sigmoid", "tanh", "concat", "cat", "stack", "where",
    "is_grad_enabled",
]
