"""The pre-LayerNorm Transformer block of GPT-2 (Radford et al., 2019; Xiong et al., 2020).

    x = x + Attention(LN₁(x))
    x = x + MLP(LN₂(x)),      MLP = Linear(C, 4C) → GELU → Linear(4C, C) → Dropout

Normalising *before* each sub-layer keeps the residual stream an identity path, which is what
lets GPTs train without the learning-rate warmup tricks the post-LN original needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinytorch.core import Tensor, kernels, nn
from tinytorch.core import functional as F

from .attention import KVCache, MultiHeadAttention, layer_norm_infer, linear_infer

ACTIVATIONS = ("gelu_new", "gelu", "relu")  # Hugging Face's activation_function names


def check_activation(activation: str) -> str:
    """Return ``activation`` if it is one of `ACTIVATIONS`, else raise ``ValueError``.

    ``"gelu_new"`` is GPT-2's tanh approximation, ``"gelu"`` the exact erf form, ``"relu"``
    max(x, 0): Hugging Face's ``activation_function`` names.

    Args:
        activation: the name to check.

    Returns:
        ``activation``.

    >>> check_activation("gelu")
    'gelu'
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    return activation


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, d_ff) → activation → Linear(d_ff, C) → Dropout.

    Args:
        d_model: C, the input and output size.
        d_ff: the hidden size (GPT-2 uses 4·C).
        dropout: dropout probability on the output (the residual branch).
        bias: biases in both Linear layers.
        activation: ``"gelu_new"`` (GPT-2's tanh GELU, the default), ``"gelu"`` (exact) or
            ``"relu"``.

    Shape: (B, T, C) -> (B, T, C).

    >>> mlp = MLP(d_model=16, d_ff=64)
    >>> mlp(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True,
                 activation: str = "gelu_new"):
        super().__init__()
        self.activation = check_activation(activation)
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        h = F.relu(h) if self.activation == "relu" else F.gelu(
            h, approximate="tanh" if self.activation == "gelu_new" else "none")
        return self.dropout(self.proj(h))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """NumPy form of ``forward`` (no graph, no dropout) for cached decoding.

        Args:
            x: (B, T, C) array.

        Returns:
            (B, T, C) array.

        >>> MLP(d_model=16, d_ff=64).infer(np.zeros((2, 5, 16), dtype=np.float32)).shape
        (2, 5, 16)
        """
        hidden = linear_infer(x, self.fc)
        if self.activation == "relu":
            np.maximum(hidden, 0, out=hidden)
        else:
            hidden = (kernels.gelu_tanh if self.activation == "gelu_new" else kernels.gelu_erf)(hidden)[0]
        return linear_infer(hidden, self.proj)


class TransformerBlock(nn.Module):
    """One pre-LN decoder block: (B, T, C) -> (B, T, C).

    Args:
        d_model: embedding size C.
        num_heads: attention heads.
        d_ff: hidden size of the MLP (default 4·C).
        dropout: dropout on both residual branches (and on the attention weights unless
            ``attn_dropout`` is given).
        causal: causal self-attention (a decoder block).
        bias: biases in Linear and LayerNorm layers.
        attn_dropout: dropout on the attention weights; None for ``dropout``.
        activation: the MLP's activation (see `MLP`).
        eps: the LayerNorms' epsilon.

    >>> block = TransformerBlock(d_model=16, num_heads=4)
    >>> block(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 causal: bool = True, bias: bool = True, *, attn_dropout: float | None = None,
                 activation: str = "gelu_new", eps: float = 1e-5):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.ln1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout if attn_dropout is None else attn_dropout,
                                       causal=causal, bias=bias, resid_dropout=dropout)
        self.ln2 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.mlp = MLP(d_model, d_ff, dropout=dropout, bias=bias, activation=activation)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, attention_mask: Any = None) -> Tensor:
        if kv_cache is not None:
            return Tensor(self.infer(x.data, kv_cache, attention_mask))
        x = x + self.attn(self.ln1(x), attention_mask=attention_mask)
        return x + self.mlp(self.ln2(x))

    def infer(self, x: np.ndarray, kv_cache: KVCache, attention_mask: Any = None) -> np.ndarray:
        """NumPy forward for new tokens, appending their keys/values to ``kv_cache``.

        Args:
            x: (B, T, C) activations of the new tokens.
            kv_cache: this block's cache; its ``length`` tokens come before ``x``.
            attention_mask: (B, length + T) padding mask (1 token, 0 padding), or None.

        Returns:
            (B, T, C) array.

        >>> block = TransformerBlock(d_model=16, num_heads=4)
        >>> cache = KVCache(batch_size=1, num_heads=4, max_len=8, head_dim=4)
        >>> block.infer(np.zeros((1, 3, 16), dtype=np.float32), cache).shape
        (1, 3, 16)
        """
        x = x + self.attn.infer(layer_norm_infer(x, self.ln1), kv_cache, attention_mask)
        return x + self.mlp.infer(layer_norm_infer(x, self.ln2))


__all__ = ["TransformerBlock", "MLP", "ACTIVATIONS", "check_activation"]
