"""Attention as one fused Function with an analytic backward.

``scaled_dot_product_attention`` follows ``torch.nn.functional.scaled_dot_product_attention``
(Vaswani et al., 2017, "Attention Is All You Need", eq. 1)::

    Attention(Q, K, V) = softmax(Q·Kᵀ / √d + mask) · V

computed as ONE graph node: the forward keeps only the attention probabilities P (and the
dropout mask), and the backward is, with S the scaled scores and G the upstream gradient::

    dV = Pᵀ·G
    dP = G·Vᵀ
    dS = P ⊙ (dP − rowsum(dP ⊙ P))          (the softmax Jacobian, applied row by row)
    dQ = dS·K · scale,   dK = dSᵀ·Q · scale

so a (B, H, T, T) score tensor is materialised once in the forward and once in the backward,
instead of once per elementary op (matmul, scale, mask, max, exp, sum, div, matmul) as a
composition of core ops would.

``PackedSelfAttentionFunction`` is the same kernel for the layout a GPT block produces: one (B, T, 3·C)
tensor from a single QKV projection. Splitting it into heads inside the Function saves the three
slicing nodes, the permutes and their full-size zero-filled gradients that the public form needs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinytorch.core import Function, Tensor, is_grad_enabled
from tinytorch.core.kernels import masked_softmax_
from tinytorch.core.random import get_rng

_causal_cache: dict[tuple[int, int, str], np.ndarray] = {}


def causal_bias(q_len: int, k_len: int, dtype: Any = np.float32, start: int = 0) -> np.ndarray:
    """An additive (q_len, k_len) mask: 0 where query i may see key j, -inf elsewhere.

    Query i sits at position ``start + i`` and sees keys j <= start + i. ``start=0`` is
    PyTorch's ``is_causal=True`` (top-left aligned, ``torch.ones(L, S).tril()``); cached decoding
    passes the number of cached tokens. The array is cached and read-only.

    Args:
        q_len: number of queries L.
        k_len: number of keys S.
        dtype: a floating dtype.
        start: position of the first query (keys before it are all visible).

    Returns:
        The (L, S) additive mask.

    >>> causal_bias(3, 3)
    array([[  0., -inf, -inf],
           [  0.,   0., -inf],
           [  0.,   0.,   0.]], dtype=float32)
    >>> causal_bias(2, 4, start=2)
    array([[  0.,   0.,   0., -inf],
           [  0.,   0.,   0.,   0.]], dtype=float32)
    """
    key = (q_len, k_len, np.dtype(dtype).str, start)
    bias = _causal_cache.get(key)
    if bias is None:
        bias = np.triu(np.full((q_len, k_len), -np.inf, dtype=dtype), k=start + 1)
        bias.flags.writeable = False
        if len(_causal_cache) > 64:
            _causal_cache.clear()
        _causal_cache[key] = bias
    return bias


def padding_bias(attention_mask: Any, dtype: Any = np.float32) -> np.ndarray:
    """The additive key mask (B, 1, 1, S) of a (B, S) padding mask: 0 for tokens, -inf for padding.

    ``attention_mask`` follows Hugging Face: 1 (or True) marks a real token, 0 a padding token.
    Added to (B, H, L, S) scores, it hides the padding keys from every query.

    Args:
        attention_mask: (B, S) array of 0/1 (any integer, bool or float dtype).
        dtype: a floating dtype for the result.

    Returns:
        (B, 1, 1, S) array of 0 and -inf.

    >>> padding_bias(np.array([[0, 1, 1]]))[0, 0, 0].tolist()
    [-inf, 0.0, 0.0]
    """
    mask = np.asarray(attention_mask)
    f = np.dtype(dtype).type
    return np.where(mask[:, None, None, :] != 0, f(0), f(-np.inf))


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | None = None,
                      scale: float = 1.0, dropout_p: float = 0.0,
                      generator: np.random.Generator | None = None) -> tuple[np.ndarray, tuple]:
    """The attention kernel on arrays: softmax(q·kᵀ·scale + bias)·v, with dropout on the weights.

    The fused Functions call it in ``forward`` and cached decoding calls it directly.

    Args:
        q: (..., L, E) queries.
        k: (..., S, E) keys.
        v: (..., S, Ev) values.
        bias: additive mask broadcastable to (..., L, S), or None.
        scale: multiplies the scores (usually 1/√E).
        dropout_p: dropout probability on the attention weights (0 at inference).
        generator: NumPy generator for the dropout mask (needed when ``dropout_p > 0``).

    Returns:
        ``(out, saved)``: (..., L, Ev), and what `attention_backward` needs:
        ``(q·scale, k, v, p, keep, scale)`` (the queries scaled, as the product used them).

    >>> q = k = v = np.ones((1, 2, 3, 4), dtype=np.float32)
    >>> out, _ = attention_forward(q, k, v, bias=causal_bias(3, 3), scale=0.5)
    >>> out.shape
    (1, 2, 3, 4)
    """
    q = q * scale  # (..., L, E): scaling the queries costs E/S of scaling the scores
    s = q @ k.swapaxes(-1, -2)  # (..., L, S)
    p = masked_softmax_(s, bias)
    keep = None
    if dropout_p > 0:
        keep = (generator.random(p.shape, dtype=np.float32) >= dropout_p).astype(p.dtype)
        keep *= 1 / (1 - dropout_p)
        out = (p * keep) @ v
    else:
        out = p @ v
    return out, (q, k, v, p, keep, scale)


def attention_backward(saved: tuple, grad: np.ndarray,
                       need: tuple[bool, ...] = (True, True, True)) -> tuple:
    """Gradients of `attention_forward` (see the module docstring for the formulas).

    Args:
        saved: the second value `attention_forward` returned.
        grad: upstream gradient, (..., L, Ev).
        need: which of (dq, dk, dv) to compute.

    Returns:
        ``(dq, dk, dv)``, None for those not needed.

    >>> q = k = v = np.ones((1, 3, 4))
    >>> _, saved = attention_forward(q, k, v, scale=0.5)
    >>> [g.shape for g in attention_backward(saved, np.ones((1, 3, 4)))]
    [(1, 3, 4), (1, 3, 4), (1, 3, 4)]
    """
    q_scaled, k, v, p, keep, scale = saved
    pd = p * keep if keep is not None else p
    dv = np.swapaxes(pd, -1, -2) @ grad if need[2] else None
    dp = grad @ np.swapaxes(v, -1, -2)  # (..., L, S)
    if keep is not None:
        dp *= keep
    # dS/scale = P ⊙ (dP − Σ_j dP⊙P), computed in place in dp; the scale goes on the smaller
    # (..., L, E) side: dQ = (dS/scale)·K·scale, dK = (dS/scale)ᵀ·(Q·scale)
    dp -= np.vecdot(dp, p)[..., None]
    dp *= p
    dq = dp @ k * scale if need[0] else None
    dk = np.swapaxes(dp, -1, -2) @ q_scaled if need[1] else None
    return dq, dk, dv


class ScaledDotProductAttentionFunction(Function, op="scaled_dot_product_attention"):
    """softmax(Q·Kᵀ·scale + mask)·V with an analytic backward (see the module docstring).

    The graph node behind `scaled_dot_product_attention`, which checks the arguments; call
    ``ScaledDotProductAttentionFunction.apply(q, k, v, bias=..., scale=..., dropout_p=...,
    generator=...)`` directly only with already-checked inputs. ``bias`` is an additive
    ndarray mask broadcastable to (..., L, S).

    Shape: q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev).

    >>> import numpy as np
    >>> q = k = v = Tensor(np.ones((2, 4, 5, 8), dtype=np.float32))
    >>> ScaledDotProductAttentionFunction.apply(q, k, v, scale=8 ** -0.5).shape
    (2, 4, 5, 8)
    """

    def forward(self, q, k, v, bias=None, scale=1.0, dropout_p=0.0, generator=None):
        out, self.saved = attention_forward(q, k, v, bias, scale, dropout_p, generator)
        return out

    def backward(self, grad):
        return attention_backward(self.saved, grad, self.needs_input_grad)


def _as_bias(attn_mask: Any, dtype: np.dtype) -> np.ndarray:
    mask = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
    if mask.dtype == np.bool_:
        return np.where(mask, dtype.type(0), dtype.type(-np.inf))
    if not np.issubdtype(mask.dtype, np.floating):
        raise TypeError(
            f"scaled_dot_product_attention: attn_mask must be bool or floating, got dtype {mask.dtype}"
        )
    return mask.astype(dtype, copy=False)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Attention with PyTorch's semantics, as one fused graph node.

    Args:
        query: (..., L, E), usually (B, nh, L, hs).
        key: (..., S, E).
        value: (..., S, Ev).
        attn_mask: broadcastable to (..., L, S). A bool mask marks with True the keys a query
            may attend to; a float mask is added to the scores (use -inf to mask).
        is_causal: query i attends to keys 0..i (top-left aligned). Not combined with attn_mask.
        dropout_p: dropout probability on the attention weights (apply only while training).
        scale: defaults to 1/√E.
        generator: NumPy generator for the dropout mask (default: ``tinytorch.core.get_rng()``).

    Returns:
        (..., L, Ev).

    Rows whose keys are all masked output zeros (instead of nan).

    >>> import numpy as np
    >>> q = k = v = Tensor(np.ones((1, 2, 3, 4), dtype=np.float32))
    >>> scaled_dot_product_attention(q, k, v, is_causal=True).shape
    (1, 2, 3, 4)
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(
                f"scaled_dot_product_attention: {name} must have shape (..., seq, dim), got {t.shape}"
            )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"scaled_dot_product_attention: query and key need the same last dim, "
            f"got query {query.shape} and key {key.shape}"
        )
    if key.shape[-2] != value.shape[-2] or key.shape[:-2] != value.shape[:-2]:
        raise ValueError(
            f"scaled_dot_product_attention: key and value need the same (..., S) dims, "
            f"got key {key.shape} and value {value.shape}"
        )
    if query.shape[:-2] != key.shape[:-2]:
        raise ValueError(
            f"scaled_dot_product_attention: query and key need the same batch dims, "
            f"got query {query.shape} and key {key.shape}"
        )
    if not 0 <= dropout_p < 1:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    L, S = query.shape[-2], key.shape[-2]
    bias = None
    if is_causal:
        bias = causal_bias(L, S, query.dtype)
    elif attn_mask is not None:
        bias = _as_bias(attn_mask, query.dtype)
        try:
            np.broadcast_shapes(bias.shape, query.shape[:-1] + (S,))
        except ValueError:
            raise ValueError(
                f"scaled_dot_product_attention: attn_mask of shape {bias.shape} does not broadcast "
                f"to the scores' shape {query.shape[:-1] + (S,)}"
            ) from None
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    generator = generator if generator is not None or dropout_p == 0 else get_rng()
    return ScaledDotProductAttentionFunction.apply(
        query, key, value, bias=bias, scale=scale, dropout_p=dropout_p, generator=generator
    )


class PackedSelfAttentionFunction(Function, op="packed_self_attention"):
    """Multi-head self-attention on a packed QKV tensor: (B, T, 3·C) -> (B, T, C).

    The same kernel as ``ScaledDotProductAttentionFunction``; the head split (B, T, 3, nh, hs) ->
    3 × (B, nh, T, hs) and the merge back happen inside the node. With a ``kv_cache`` (decoding,
    no graph) the T new queries also see the cached keys: the causal mask is offset by the
    cached length. Use it through `packed_self_attention`, which checks the arguments.

    Shape: (B, T, 3·C) -> (B, T, C), with C = nh·hs.

    >>> import numpy as np
    >>> qkv = Tensor(np.ones((2, 5, 3 * 16), dtype=np.float32))
    >>> PackedSelfAttentionFunction.apply(qkv, num_heads=4).shape
    (2, 5, 16)
    """

    def forward(self, qkv, num_heads=1, is_causal=True, dropout_p=0.0, generator=None, key_bias=None,
                kv_cache=None, weights=None):
        B, T, C3 = qkv.shape
        C = C3 // 3
        hs = C // num_heads
        q, k, v = qkv.reshape(B, T, 3, num_heads, hs).transpose(2, 0, 3, 1, 4)  # each (B, nh, T, hs)
        start = 0  # the position of the first query among the keys
        if kv_cache is None:  # contiguous copies: the backward's matmuls read them again
            q, k, v = np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)
        else:
            start = kv_cache.length
            k, v = kv_cache.append(k, v)  # (B, nh, S, hs), S = start + T
        # One new token after the cached ones sees every key: no causal mask to add.
        bias = causal_bias(T, start + T, qkv.dtype, start=start) if is_causal and T > 1 else None  # (T, S)
        if key_bias is not None:  # (B, 1, 1, S) padding mask, plus the causal one: (B, 1, T, S)
            bias = key_bias if bias is None else key_bias + bias
        y, self.saved = attention_forward(q, k, v, bias, 1 / math.sqrt(hs), dropout_p, generator)  # (B, nh, T, hs)
        if weights is not None:  # the caller asked to see them: (B, nh, T, S), after dropout as PyTorch's
            weights.append(self.saved[3] if self.saved[4] is None else self.saved[3] * self.saved[4])
        self.shape = (B, T, num_heads, hs)
        return y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C): heads side by side

    def backward(self, grad):
        B, T, nh, hs = self.shape
        g = np.ascontiguousarray(grad.reshape(B, T, nh, hs).transpose(0, 2, 1, 3))  # (B, nh, T, hs)
        dq, dk, dv = attention_backward(self.saved, g)
        out = np.empty((B, T, 3, nh, hs), dtype=grad.dtype)
        out[:, :, 0] = dq.transpose(0, 2, 1, 3)
        out[:, :, 1] = dk.transpose(0, 2, 1, 3)
        out[:, :, 2] = dv.transpose(0, 2, 1, 3)
        return out.reshape(B, T, 3 * nh * hs)


def packed_self_attention(
    qkv: Tensor, num_heads: int, is_causal: bool = True, dropout_p: float = 0.0,
    generator: np.random.Generator | None = None, attention_mask: Any = None, kv_cache: Any = None,
    need_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Self-attention on a (B, T, 3·C) packed q|k|v tensor with ``num_heads`` heads -> (B, T, C).

    Equal to splitting ``qkv`` into q, k, v, reshaping each to (B, nh, T, hs), calling
    `scaled_dot_product_attention` and merging the heads back, but as one graph node.

    Args:
        qkv: (B, T, 3·C): queries, keys and values side by side, as one Linear(C, 3·C) makes.
        num_heads: nh; C must be divisible by it (hs = C / nh).
        is_causal: token t attends to tokens 0..t only.
        dropout_p: dropout probability on the attention weights (apply only while training).
        generator: NumPy generator for the dropout mask (default: ``tinytorch.core.get_rng()``).
        attention_mask: (B, S) padding mask, 1 for tokens and 0 for padding (Hugging Face's
            convention), or None; S = T, or the cached plus the new tokens with ``kv_cache``.
            Padding keys are hidden from every query; a query that sees no key at all (a
            left-padding position under the causal mask) outputs zeros, and its gradient is zero.
        kv_cache: a ``KVCache`` (:class:`tinytorch.language.model.KVCache`) holding the keys and
            values of the tokens before these T: they are appended to it, and the queries see
            all S of them. Inference only: call under ``no_grad()``.
        need_weights: also return the attention weights of every head, (B, nh, T, S), a Tensor
            without gradient (to look at, not to train through).

    Returns:
        (B, T, C), the heads side by side; with ``need_weights``, (output, weights).

    >>> import numpy as np
    >>> qkv = Tensor(np.random.default_rng(0).standard_normal((2, 5, 48), dtype=np.float32))
    >>> packed_self_attention(qkv, num_heads=4).shape
    (2, 5, 16)
    """
    if len(qkv.data.shape) != 3 or qkv.data.shape[-1] % (3 * num_heads):
        raise ValueError(
            f"packed_self_attention: qkv must be (B, T, 3*C) with C divisible by num_heads="
            f"{num_heads}, got {qkv.shape}"
        )
    if not 0 <= dropout_p < 1:
        raise ValueError(f"packed_self_attention: dropout_p must be in [0, 1), got {dropout_p}")
    keys = qkv.data.shape[1]
    if kv_cache is not None:
        if qkv.requires_grad and is_grad_enabled():
            raise ValueError("packed_self_attention: kv_cache is for decoding, which has no backward; "
                             "call it under tinytorch.core.no_grad()")
        keys += kv_cache.length
    key_bias = None
    if attention_mask is not None:
        mask = attention_mask.data if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
        if mask.shape != (qkv.shape[0], keys):
            raise ValueError(f"packed_self_attention: attention_mask must have shape (B, S) = "
                             f"{(qkv.shape[0], keys)}, got {mask.shape}")
        key_bias = padding_bias(mask, qkv.dtype)  # (B, 1, 1, S)
    generator = generator if generator is not None or dropout_p == 0 else get_rng()
    weights = [] if need_weights else None
    y = PackedSelfAttentionFunction.apply(
        qkv, num_heads=num_heads, is_causal=is_causal, dropout_p=dropout_p, generator=generator,
        key_bias=key_bias, kv_cache=kv_cache, weights=weights,
    )
    return (y, Tensor(weights[0])) if need_weights else y


__all__ = ["scaled_dot_product_attention", "packed_self_attention", "causal_bias", "padding_bias",
           "attention_forward", "attention_backward",
           "ScaledDotProductAttentionFunction", "PackedSelfAttentionFunction"]
