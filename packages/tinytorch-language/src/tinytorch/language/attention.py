"""Multi-head causal self-attention with a KV cache for generation.

Training runs the fused attention Function (``functional.packed_self_attention``): one QKV
projection, one attention node, one output projection. Generation runs :meth:`MultiHeadAttention.infer`,
a NumPy path over the same weights that appends each new token's keys and values to a
:class:`KVCache`, so producing token t costs O(t) instead of re-running the whole prefix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinytorch.core import Tensor, kernels, nn

from . import functional as LF


class KVCache:
    """Keys and values of one attention layer for the tokens processed so far.

    Preallocated as (B, H, max_len, head_dim) arrays; ``length`` tokens are filled.

    Args:
        batch_size: B, the number of sequences decoded together.
        num_heads: H.
        max_len: the most tokens the cache can hold (the model's context length).
        head_dim: hd = d_model / H.
        dtype: dtype of the keys and values.

    >>> cache = KVCache(batch_size=1, num_heads=2, max_len=8, head_dim=4)
    >>> cache.length, cache.k.shape
    (0, (1, 2, 8, 4))
    """

    def __init__(self, batch_size: int, num_heads: int, max_len: int, head_dim: int,
                 dtype=np.float32):
        # np.zeros, not zeros_like: fresh zero pages cost no memory until a token is written
        self.k = np.zeros((batch_size, num_heads, max_len, head_dim), dtype=dtype)
        self.v = np.zeros((batch_size, num_heads, max_len, head_dim), dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def append(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store (B, H, T, hd) keys/values after the cached ones; return all keys and values.

        Args:
            k: the new tokens' keys, (B, H, T, hd).
            v: their values, (B, H, T, hd).

        Returns:
            Views of all cached keys and values, each (B, H, length, hd).

        Raises:
            ValueError: the cache would overflow ``max_len``, or the batch size differs.

        >>> cache = KVCache(batch_size=1, num_heads=2, max_len=8, head_dim=4)
        >>> keys, values = cache.append(np.ones((1, 2, 3, 4)), np.ones((1, 2, 3, 4)))
        >>> keys.shape, cache.length
        ((1, 2, 3, 4), 3)
        """
        T = k.shape[2]
        end = self.length + T
        if end > self.max_len:
            raise ValueError(
                f"KVCache: {self.length} cached + {T} new tokens exceed max_len={self.max_len}; "
                "crop the context or reset the cache"
            )
        if k.shape[0] != self.k.shape[0]:
            raise ValueError(f"KVCache: built for batch {self.k.shape[0]}, got keys {k.shape}")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reset(self) -> None:
        """Forget the cached tokens (``length = 0``); the arrays are reused."""
        self.length = 0


def layer_norm_infer(x: np.ndarray, ln: nn.LayerNorm) -> np.ndarray:
    """``ln(x)`` on arrays, for graph-free decoding: core's layer-norm kernel on ``ln``'s weights.

    Args:
        x: (..., *ln.normalized_shape) array.
        ln: the LayerNorm whose weight, bias and eps to use.

    Returns:
        The normalized array, shape of ``x``.

    >>> layer_norm_infer(np.array([[1.0, 3.0]]), nn.LayerNorm(2)).round(3).tolist()
    [[-1.0, 1.0]]
    """
    weight, bias = ln.weight, ln.bias  # each a Module.__getattr__ call: read once
    return kernels.layer_norm(x, None if weight is None else weight.data, None if bias is None else bias.data,
                              ln.eps, len(ln.normalized_shape))[0]


def linear_infer(x: np.ndarray, layer: nn.Linear) -> np.ndarray:
    """``layer(x)`` on arrays, for graph-free decoding: core's linear kernel on ``layer``'s weights.

    Args:
        x: (..., layer.in_features) array.
        layer: the Linear whose weight and bias to use.

    Returns:
        (..., out_features) array.

    >>> linear_infer(np.ones((1, 4)), nn.Linear(4, 2)).shape
    (1, 2)
    """
    bias = layer.bias
    return kernels.linear(x, layer.weight.data, None if bias is None else bias.data)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention (Vaswani et al., 2017, §3.2.2), causal by default.

    Args:
        d_model: embedding size C.
        num_heads: number of heads; C must be divisible by it (head_dim = C / num_heads).
        dropout: dropout on the attention weights (GPT-2's ``attn_pdrop``), and on the output
            unless ``resid_dropout`` is given.
        causal: each position attends only to itself and earlier positions.
        bias: biases in the QKV and output projections.
        resid_dropout: dropout on the output (GPT-2's ``resid_pdrop``); None for ``dropout``.

    Shape: (B, T, C) -> (B, T, C); ``forward(x, attention_mask=m)`` takes a (B, T) padding
    mask (1 token, 0 padding), see `packed_self_attention`.

    >>> mha = MultiHeadAttention(d_model=16, num_heads=4)
    >>> mha(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, causal: bool = True,
                 bias: bool = True, resid_dropout: float | None = None):
        super().__init__()
        if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads <= 0:
            raise ValueError(f"MultiHeadAttention: num_heads must be a positive integer, got {num_heads!r}")
        if isinstance(d_model, bool) or not isinstance(d_model, (int, np.integer)) or d_model <= 0:
            raise ValueError(f"MultiHeadAttention: d_model must be a positive integer, got {d_model!r}")
        if d_model % num_heads:
            raise ValueError(
                f"MultiHeadAttention: d_model ({d_model}) must be divisible by num_heads ({num_heads})"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.causal, self.dropout_p = causal, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)  # q|k|v for all heads, in one matmul
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout if resid_dropout is None else resid_dropout)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, attention_mask: Any = None) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention expected input (B, T, {self.d_model}), got {tuple(x.shape)}")
        if kv_cache is not None:
            return Tensor(self.infer(x.data, kv_cache, attention_mask))
        qkv = self.qkv(x)  # (B, T, 3C)
        p = self.dropout_p if self.training else 0.0
        y = LF.packed_self_attention(qkv, self.num_heads, is_causal=self.causal, dropout_p=p,
                                     attention_mask=attention_mask)  # (B, T, C)
        return self.resid_dropout(self.proj(y))

    def infer(self, x: np.ndarray, kv_cache: KVCache, attention_mask: Any = None) -> np.ndarray:
        """NumPy forward for (B, T, C) new tokens that follow the ``kv_cache.length`` cached ones.

        No graph, no dropout (inference only). The keys and values are appended to the cache.

        Args:
            x: (B, T, C) activations of the new tokens.
            kv_cache: this layer's cache; its ``length`` tokens come before ``x``.
            attention_mask: (B, length + T) padding mask over the cached and the new tokens
                (1 token, 0 padding), or None.

        Returns:
            (B, T, C) output, as ``forward`` on the whole sequence would give for these tokens.

        >>> mha = MultiHeadAttention(d_model=16, num_heads=4)
        >>> cache = KVCache(batch_size=2, num_heads=4, max_len=8, head_dim=4)
        >>> mha.infer(np.zeros((2, 3, 16), dtype=np.float32), cache).shape, cache.length
        ((2, 3, 16), 3)
        """
        B, T, C = x.shape
        nh, hs = self.num_heads, self.head_dim
        qkv = linear_infer(x, self.qkv).reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        start = kv_cache.length
        keys, values = kv_cache.append(qkv[1], qkv[2])  # (B, nh, S, hs), S = start + T
        bias = LF.causal_bias(T, start + T, x.dtype, start=start) if self.causal and T > 1 else None
        if attention_mask is not None:
            key_bias = LF.padding_bias(attention_mask, x.dtype)  # (B, 1, 1, S)
            bias = key_bias if bias is None else key_bias + bias
        y, _ = LF.attention_forward(qkv[0], keys, values, bias, scale=1 / math.sqrt(hs))
        return linear_infer(y.transpose(0, 2, 1, 3).reshape(B, T, C), self.proj)  # heads side by side

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, causal={self.causal}, dropout={self.dropout_p}"


__all__ = ["MultiHeadAttention", "KVCache"]
