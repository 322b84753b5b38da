"""Fixed sinusoidal position information (Vaswani et al., 2017, §3.5).

Attention is permutation-invariant, so each token embedding gets its position added:

    PE[pos, 2i] = sin(pos / 10000^(2i/d)),   PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).

No parameters; any position below ``max_len`` works. GPT-2 learns its positions instead: an
``nn.Embedding(max_len, d)`` (TinyGPT's ``wpe``), for which :class:`SinusoidalEmbedding` is the
drop-in fixed table. :class:`PositionalEncoding` is the layer of the original Transformer, which
adds the table to its input.
"""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor, nn
from tinytorch.core.checks import check_int, out_of_range


def sinusoidal_table(max_len: int, d_model: int, dtype=np.float32) -> np.ndarray:
    """The (max_len, d_model) table of sin/cos positional encodings.

    Args:
        max_len: number of positions (rows).
        d_model: encoding size (columns): sines in the even columns, cosines in the odd ones.
        dtype: dtype of the table (computed in float64).

    Returns:
        (max_len, d_model) array.

    >>> table = sinusoidal_table(4, 6)
    >>> table.shape, table[0].tolist()
    ((4, 6), [0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    """
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-np.log(10000.0) / d_model))
    table = np.zeros((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(pos * div)
    table[:, 1::2] = np.cos(pos * div[: d_model // 2])
    return table.astype(dtype)


class SinusoidalEmbedding(nn.Module):
    """Positions -> their sinusoidal encodings: an ``nn.Embedding`` whose table is fixed.

    The table is a non-persistent buffer (not in the state dict): it is recomputed, not learned.

    Args:
        max_len: number of positions (rows of the table).
        d_model: encoding size.

    Shape: integer positions (*) -> (*, d_model).

    >>> wpe = SinusoidalEmbedding(max_len=16, d_model=8)
    >>> wpe(np.arange(5)).shape
    (5, 8)
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = check_int("SinusoidalEmbedding", "max_len", max_len, minimum=1)
        self.d_model = check_int("SinusoidalEmbedding", "d_model", d_model, minimum=1)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, positions) -> Tensor:
        positions = np.asarray(positions)
        bad = out_of_range(positions, self.max_len)
        if bad is not None:
            raise ValueError(f"SinusoidalEmbedding: position {bad} is outside [0, max_len={self.max_len})")
        return Tensor._from_op(self.pe.data[positions], None)  # a constant: no gradient

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


class PositionalEncoding(nn.Module):
    """Add fixed sinusoidal position encodings to (B, T, d_model) inputs (the original Transformer's).

    Args:
        d_model: size of the activations' last dimension.
        max_len: number of positions available.

    Shape: (B, T, d_model) -> (B, T, d_model); ``forward(x, start)`` adds positions
    ``start .. start + T - 1``.

    >>> pe = PositionalEncoding(d_model=8, max_len=16)
    >>> pe(Tensor(np.zeros((2, 5, 8), dtype=np.float32))).shape
    (2, 5, 8)
    """

    def __init__(self, d_model: int, max_len: int = 1024):
        super().__init__()
        self.table = SinusoidalEmbedding(max_len, d_model)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.table.d_model:
            raise ValueError(f"PositionalEncoding expected input (B, T, {self.table.d_model}), got {tuple(x.shape)}")
        pe = self.table(np.arange(start, start + x.shape[1]))  # (T, d_model)
        return x + (pe if pe.dtype == x.dtype else Tensor._from_op(pe.data.astype(x.dtype), None))


__all__ = ["PositionalEncoding", "SinusoidalEmbedding", "sinusoidal_table"]
