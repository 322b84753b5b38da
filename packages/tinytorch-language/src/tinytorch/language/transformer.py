"""The pre-LayerNorm Transformer block of GPT-2 (Radford et al., 2019; Xiong et al., 2020).

    x = x + Attention(LN₁(x))
    x = x + MLP(LN₂(x)),      MLP = Linear(C, 4C) → GELU → Linear(4C, C) → Dropout

Normalising *before* each sub-layer keeps the residual stream an identity path, which is what
lets GPTs train without the learning-rate warmup tricks the post-LN original needed.
"""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor, kernels, nn
from tinytorch.core import functional as F

from .attention import KVCache, MultiHeadAttention, layer_norm_infer, linear_infer


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, d_ff) → GELU (tanh form, as GPT-2) → Linear(d_ff, C).

    Followed by dropout on the output (the residual branch).

    Args:
        d_model: C, the input and output size.
        d_ff: the hidden size (GPT-2 uses 4·C).
        dropout: dropout probability on the output.
        bias: biases in both Linear layers.

    Shape: (B, T, C) -> (B, T, C).

    >>> mlp = MLP(d_model=16, d_ff=64)
    >>> mlp(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """NumPy form of ``forward`` (no graph, no dropout) for cached decoding.

        Args:
            x: (B, T, C) array.

        Returns:
            (B, T, C) array.

        >>> MLP(d_model=16, d_ff=64).infer(np.zeros((2, 5, 16), dtype=np.float32)).shape
        (2, 5, 16)
        """
        hidden, _ = kernels.gelu_tanh(linear_infer(x, self.fc))
        return linear_infer(hidden, self.proj)


class TransformerBlock(nn.Module):
    """One pre-LN decoder block: (B, T, C) -> (B, T, C).

    Args:
        d_model: embedding size C.
        num_heads: attention heads.
        d_ff: hidden size of the MLP (default 4·C).
        dropout: dropout on attention weights and on both residual branches.
        causal: causal self-attention (a decoder block).
        bias: biases in Linear and LayerNorm layers.

    >>> block = TransformerBlock(d_model=16, num_heads=4)
    >>> block(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 causal: bool = True, bias: bool = True):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.ln1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, causal=causal, bias=bias)
        self.ln2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = MLP(d_model, d_ff, dropout=dropout, bias=bias)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        if kv_cache is not None:
            return Tensor(self.infer(x.data, kv_cache))
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def infer(self, x: np.ndarray, kv_cache: KVCache) -> np.ndarray:
        """NumPy forward for new tokens, appending their keys/values to ``kv_cache``.

        Args:
            x: (B, T, C) activations of the new tokens.
            kv_cache: this block's cache; its ``length`` tokens come before ``x``.

        Returns:
            (B, T, C) array.

        >>> block = TransformerBlock(d_model=16, num_heads=4)
        >>> cache = KVCache(batch_size=1, num_heads=4, max_len=8, head_dim=4)
        >>> block.infer(np.zeros((1, 3, 16), dtype=np.float32), cache).shape
        (1, 3, 16)
        """
        x = x + self.attn.infer(layer_norm_infer(x, self.ln1), kv_cache)
        return x + self.mlp.infer(layer_norm_infer(x, self.ln2))


__all__ = ["TransformerBlock", "MLP"]
