"""Position information for a Transformer: sinusoidal encodings and learned position embeddings.

Attention is permutation-invariant, so each token embedding gets its position added:

- :class:`PositionalEncoding`: fixed sinusoids (Vaswani et al., 2017, §3.5),
  PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).
  No parameters; works for any position below ``max_len``.
- :class:`LearnedPositionalEmbedding`: one learned vector per position, as GPT-2 and nanoGPT.

Both take (B, T, d) activations and return them with the positions ``start .. start+T-1``
added, or with per-token ``positions`` (B, T) (a padded batch, whose rows start at different
offsets); ``infer`` is the NumPy form used by cached decoding.
"""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor, nn


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


def _check_sizes(owner: str, max_len: int, d_model: int) -> None:
    for name, value in (("max_len", max_len), ("d_model", d_model)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _check_input(owner: str, x: Tensor | np.ndarray, d_model: int, max_len: int, start: int) -> int:
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{owner} expected input (B, T, {d_model}), got {tuple(x.shape)}")
    T = x.shape[1]
    if start + T > max_len:
        raise ValueError(
            f"{owner}: positions {start}..{start + T - 1} exceed max_len={max_len}"
        )
    return T


class PositionalEncoding(nn.Module):
    """Add fixed sinusoidal position encodings to (B, T, d_model) inputs.

    The table is a non-persistent buffer (not in the state dict): it is recomputed, not learned.

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
        _check_sizes("PositionalEncoding", max_len, d_model)
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, start: int = 0, positions: np.ndarray | None = None) -> Tensor:
        T = _check_input("PositionalEncoding", x, self.d_model, self.max_len, start)
        table = self.pe.data[start : start + T] if positions is None else self.pe.data[positions]
        if table.dtype != x.dtype:
            table = table.astype(x.dtype)
        return x + Tensor._from_op(table, None)

    def infer(self, x: np.ndarray, start: int = 0, positions: np.ndarray | None = None) -> np.ndarray:
        """NumPy form of ``forward`` (no graph) for cached decoding.

        Args:
            x: (B, T, d_model) array.
            start: position of the first token of ``x``.
            positions: (B, T) position of every token instead (overrides ``start``).

        Returns:
            (B, T, d_model) array.

        >>> PositionalEncoding(d_model=4, max_len=8).infer(np.zeros((1, 2, 4)), start=0)[0, 0]
        array([0., 1., 0., 1.])
        """
        table = self.pe.data[start : start + x.shape[1]] if positions is None else self.pe.data[positions]
        return x + table

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEmbedding(nn.Module):
    """Add a learned vector per position (GPT-2's ``wpe``) to (B, T, d_model) inputs.

    Initialised N(0, 0.02) as GPT-2.

    Args:
        max_len: number of positions (rows of ``weight``).
        d_model: size of the activations' last dimension.

    Shape: (B, T, d_model) -> (B, T, d_model); ``forward(x, start)`` adds positions
    ``start .. start + T - 1``.

    >>> wpe = LearnedPositionalEmbedding(max_len=16, d_model=8)
    >>> wpe(Tensor(np.zeros((2, 5, 8), dtype=np.float32))).shape
    (2, 5, 8)
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        _check_sizes("LearnedPositionalEmbedding", max_len, d_model)
        self.d_model, self.max_len = d_model, max_len
        self.weight = nn.Parameter(np.zeros((max_len, d_model), dtype=np.float32))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, start: int = 0, positions: np.ndarray | None = None) -> Tensor:
        T = _check_input("LearnedPositionalEmbedding", x, self.d_model, self.max_len, start)
        if positions is not None:
            return x + self.weight[positions]  # (B, T, d): each row its own positions
        return x + self.weight[start : start + T]  # (T, d) broadcast over the batch

    def infer(self, x: np.ndarray, start: int = 0, positions: np.ndarray | None = None) -> np.ndarray:
        """NumPy form of ``forward`` (no graph) for cached decoding.

        Args:
            x: (B, T, d_model) array.
            start: position of the first token of ``x``.
            positions: (B, T) position of every token instead (overrides ``start``).

        Returns:
            (B, T, d_model) array.

        >>> wpe = LearnedPositionalEmbedding(max_len=16, d_model=8)
        >>> wpe.infer(np.zeros((2, 3, 8), dtype=np.float32), start=5).shape
        (2, 3, 8)
        """
        weight = self.weight.data
        return x + (weight[start : start + x.shape[1]] if positions is None else weight[positions])

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


__all__ = ["PositionalEncoding", "LearnedPositionalEmbedding", "sinusoidal_table"]
