"""Array kernels: the arithmetic of the fused ops, as plain functions on NumPy arrays.

Each kernel takes and returns ``np.ndarray``s and knows nothing of Tensors or graphs. The
autograd Functions (``ops.py``, ``functional.py``) call them in ``forward``/``backward``, and
other packages' fused Functions (attention) build on them, so the arithmetic exists once. Forward kernels whose backward needs intermediate results return them too:
``out, saved = kernel(x)``; inference ignores ``saved``.

Two rules keep them fast on float32: no silent float64 (a Python number meets an array in the
array's dtype under NumPy 2's rules, and a NumPy float64 scalar is turned into the array's dtype
first), and large temporaries are reused in place.
NumPy's ufunc methods (``np.add.reduce``) stand in for ``.mean()``/``.sum()``: same arithmetic,
and at batch 1 the method wrappers cost more than the work.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------- elementwise


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit).

    NumPy has no erf; this fit is exact to float32 precision, which is what GELU needs.

    Args:
        x: any shape, floating.

    Returns:
        erf(x), same shape and dtype.

    >>> erf(np.array([0.5, -2.0])).round(6).tolist()
    [0.5205, -0.995322]
    """
    z = np.abs(x)
    t = 1 / (1 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return (np.sign(x) * (1 - erfc)).astype(x.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), computed as 0.5·(1 + tanh(x/2)), which never overflows for large |x|.

    Args:
        x: any shape.

    Returns:
        σ(x), same shape (and dtype, for floating input).

    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    half = x.dtype.type(0.5) if x.dtype.kind == "f" else 0.5
    return half * (1 + np.tanh(half * x))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)  # Python floats: they keep a float32 array float32
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def gelu_erf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact GELU, x·Φ(x) with Φ(x) = (1 + erf(x/√2)) / 2 (Hendrycks & Gimpel, 2016).

    Args:
        x: any shape, floating.

    Returns:
        ``(out, cdf)``: GELU(x), and Φ(x) for `gelu_erf_backward`.

    >>> out, _ = gelu_erf(np.array([0.0, 1.0]))
    >>> out.round(4).tolist()
    [0.0, 0.8413]
    """
    f = x.dtype.type
    cdf = erf(x * f(_INV_SQRT_2))
    cdf += f(1)
    cdf *= f(0.5)
    return x * cdf, cdf


def gelu_erf_backward(grad: np.ndarray, x: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Gradient of `gelu_erf`: g·(Φ(x) + x·φ(x)), φ the standard normal density.

    Args:
        grad: upstream gradient, shape of ``x``.
        x: the forward input.
        cdf: Φ(x), as `gelu_erf` returned it.

    Returns:
        The gradient with respect to ``x``.

    >>> x = np.array([0.0, 2.0])
    >>> gelu_erf_backward(np.ones(2), x, gelu_erf(x)[1]).round(4).tolist()
    [0.5, 1.0852]
    """
    f = x.dtype.type
    d = x * x
    d *= f(-0.5)
    np.exp(d, out=d)
    d *= f(_INV_SQRT_2PI)
    d *= x
    d += cdf
    d *= grad
    return d


def gelu_tanh(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GPT-2's GELU, 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³).

    Works in place on two buffers: in a Transformer MLP this runs on the model's largest
    activations, where temporaries cost more than the arithmetic.

    Args:
        x: any shape, floating.

    Returns:
        ``(out, t)``: GELU(x), and t = tanh(u) for `gelu_tanh_backward`.

    >>> out, _ = gelu_tanh(np.array([0.0, 1.0]))
    >>> out.round(4).tolist()
    [0.0, 0.8412]
    """
    t = x * x
    t *= _SQRT_2_OVER_PI * 0.044715
    t += _SQRT_2_OVER_PI
    t *= x  # u
    np.tanh(t, out=t)
    out = t + 1
    out *= x
    out *= 0.5
    return out, t


def gelu_tanh_backward(grad: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Gradient of `gelu_tanh`: g·(0.5·(1 + t) + 0.5·x·(1 - t²)·du/dx), du/dx = √(2/π)(1 + 3·0.044715x²).

    Args:
        grad: upstream gradient, shape of ``x``.
        x: the forward input.
        t: tanh(u), as `gelu_tanh` returned it.

    Returns:
        The gradient with respect to ``x``.

    >>> x = np.array([0.0, 2.0])
    >>> gelu_tanh_backward(np.ones(2), x, gelu_tanh(x)[1]).round(4).tolist()
    [0.5, 1.0861]
    """
    f = x.dtype.type
    d = x * x
    d *= f(_SQRT_2_OVER_PI * 3 * 0.044715)
    d += f(_SQRT_2_OVER_PI)
    d *= x  # x·du/dx
    s = t * t
    np.subtract(f(1), s, out=s)
    d *= s
    d += f(1)
    d += t
    d *= f(0.5)
    d *= grad
    return d


# ---------------------------------------------------------------------------------- linear


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x·Wᵀ + b for any leading shape, as ONE 2-D GEMM (faster than NumPy's batched matmul loop).

    Args:
        x: (..., in_features).
        weight: (out_features, in_features), as in PyTorch.
        bias: (out_features,) or None.

    Returns:
        (..., out_features).

    >>> linear(np.ones((2, 5, 3)), np.ones((4, 3)), np.arange(4.0)).shape
    (2, 5, 4)
    >>> linear(np.ones((1, 3)), np.ones((2, 3)), np.array([0.0, 1.0])).tolist()
    [[3.0, 4.0]]
    """
    fold = x.ndim > 2 and x.size != x.shape[-2] * x.shape[-1]  # (1, T, C) is one GEMM already
    out = (x.reshape(-1, x.shape[-1]) if fold else x) @ weight.T
    if bias is not None:
        out += bias
    return out.reshape(*x.shape[:-1], weight.shape[0]) if fold else out


# ---------------------------------------------------------------------------------- softmax


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / Σ exp(x) along ``axis``; the max is subtracted first, so exp never overflows.

    Args:
        x: any shape, floating.
        axis: the axis whose entries sum to 1.

    Returns:
        The probabilities, same shape and dtype.

    >>> softmax(np.array([[0.0, 0.0], [0.0, 1000.0]])).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) along ``axis``, as (x - max) - log Σ exp(x - max): no underflow to -inf.

    Args:
        x: any shape, floating.
        axis: the axis to normalize over.

    Returns:
        The log-probabilities, same shape and dtype.

    >>> log_softmax(np.array([0.0, 0.0])).round(4).tolist()
    [-0.6931, -0.6931]
    """
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


def masked_softmax_(scores: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Softmax over the last axis of ``scores + bias``, IN PLACE (attention's score matrix).

    ``bias`` is an additive mask (0 to keep, -inf to mask) broadcastable to ``scores``. A row
    whose every entry is masked gives zeros rather than nan (as PyTorch's attention does).

    Args:
        scores: (..., L, S) floating array, overwritten with the probabilities.
        bias: additive mask broadcastable to (..., L, S), or None.

    Returns:
        ``scores``, now holding the probabilities.

    >>> s = np.zeros((2, 2))
    >>> masked_softmax_(s, np.array([[0.0, -np.inf], [-np.inf, -np.inf]])).tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    if bias is not None:
        scores += bias
    m = np.maximum.reduce(scores, axis=-1, keepdims=True)
    masked_rows = None
    if bias is not None:
        masked_rows = ~np.isfinite(m)
        if masked_rows.any():
            m[masked_rows] = 0  # exp(-inf - 0) = 0 for the whole row
        else:
            masked_rows = None
    scores -= m
    np.exp(scores, out=scores)
    denom = np.add.reduce(scores, axis=-1, keepdims=True)
    if masked_rows is not None:
        denom[masked_rows] = 1
    scores /= denom
    return scores


# ---------------------------------------------------------------------------------- layer norm


def layer_norm(
    x: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    eps: float = 1e-5,
    normalized_ndim: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x - μ) / √(σ² + eps) · weight + bias over the trailing ``normalized_ndim`` axes.

    x̂ is built in one buffer (center, then divide in place by σ) and the variance is a row-wise
    dot product: two full-size arrays (x̂ and the output) instead of the five a term-by-term
    NumPy version allocates. Several normalized axes are first folded into one, so every
    reduction runs over the last axis.

    Args:
        x: (..., *normalized_shape), floating.
        weight: γ of shape ``normalized_shape``, or None.
        bias: β of shape ``normalized_shape``, or None.
        eps: added to the variance.
        normalized_ndim: how many trailing axes to normalize over.

    Returns:
        ``(out, xhat, std)``: the result (x.shape); x̂ as (..., d) and σ = √(var + eps) as
        (..., 1), with d the number of normalized elements; the last two are what
        `layer_norm_backward` needs.

    >>> out, xhat, std = layer_norm(np.array([[1.0, 2.0, 3.0]]), bias=np.ones(3))
    >>> out.round(4).tolist(), std.shape
    ([[-0.2247, 1.0, 2.2247]], (1, 1))
    """
    shape = x.shape
    if normalized_ndim != 1:  # fold the normalized axes into one
        lead = shape[: x.ndim - normalized_ndim]
        x = x.reshape(*lead, math.prod(shape[len(lead):]))
        weight = None if weight is None else weight.reshape(-1)
        bias = None if bias is None else bias.reshape(-1)
    inv_d = 1 / x.shape[-1]  # a Python float keeps x's dtype (NumPy 2's scalar rules)
    xhat = x - np.add.reduce(x, axis=-1, keepdims=True) * inv_d  # centered, for now
    # σ per row, (..., 1): Σ x̂² as a row-wise dot product (no x̂·x̂ temporary); on these small
    # arrays fresh results cost less than NumPy's in-place bookkeeping
    std = np.sqrt(np.vecdot(xhat, xhat)[..., None] * inv_d + eps)
    xhat /= std
    out = xhat if weight is None else xhat * weight
    if bias is not None:
        out = out + bias if out is xhat else np.add(out, bias, out=out)
    return (out if normalized_ndim == 1 else out.reshape(shape)), xhat, std


def layer_norm_backward(
    grad: np.ndarray,
    xhat: np.ndarray,
    std: np.ndarray,
    weight: np.ndarray | None = None,
    need_x: bool = True,
    need_weight: bool = True,
    need_bias: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of `layer_norm`. With g' = g·γ: dx = (g' - mean(g') - x̂·mean(g'·x̂)) / σ.

    Args:
        grad: upstream gradient, shape of x.
        xhat: x̂ from `layer_norm`, (..., d).
        std: σ per row from `layer_norm`, (..., 1).
        weight: γ, or None if the forward had none.
        need_x: compute dx.
        need_weight: compute dγ = Σ_rows g·x̂.
        need_bias: compute dβ = Σ_rows g.

    Returns:
        ``(dx, dweight, dbias)``, None for those not asked for (dweight and dbias have γ's shape).

    >>> x = np.array([[1.0, 2.0, 4.0]])
    >>> _, xhat, std = layer_norm(x)
    >>> dx, _, _ = layer_norm_backward(np.ones_like(x), xhat, std, need_weight=False,
    ...                                need_bias=False)
    >>> bool(np.abs(dx).max() < 1e-12)  # shifting every input equally changes nothing
    True
    """
    d = xhat.shape[-1]
    g2d = grad.reshape(-1, d)  # rows x d: the sums below are plain 2-D reductions
    x2d = xhat.reshape(-1, d)
    shape = weight.shape if weight is not None else (d,)
    # einsum and vecdot form the sums of products without a full-size temporary.
    grad_w = np.einsum("ij,ij->j", g2d, x2d).reshape(shape) if need_weight else None
    grad_b = np.add.reduce(g2d, axis=0).reshape(shape) if need_bias else None
    grad_x = None
    if need_x:
        inv_d = 1 / d
        gx = g2d * weight.reshape(-1) if weight is not None else g2d.copy()
        mean_gx_xhat = np.vecdot(gx, x2d)[:, None] * inv_d  # (rows, 1)
        mean_gx = np.add.reduce(gx, axis=-1, keepdims=True) * inv_d
        gx -= mean_gx
        correction = x2d * mean_gx_xhat
        gx -= correction
        gx /= std.reshape(-1, 1)
        grad_x = gx.reshape(grad.shape)
    return grad_x, grad_w, grad_b


__all__ = [
    "erf", "sigmoid", "gelu_erf", "gelu_erf_backward", "gelu_tanh", "gelu_tanh_backward",
    "linear", "softmax", "log_softmax", "masked_softmax_", "layer_norm", "layer_norm_backward",
]
