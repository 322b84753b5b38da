"""The basic layers: `Linear` (alias `Dense`), `Embedding`, `LayerNorm`, `GroupNorm`, `RMSNorm`,
`Dropout`, `Flatten`, `Identity`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import functional as F
from ..checks import is_int, is_real
from ..tensor import DEFAULT_DTYPE, Tensor
from . import init
from .module import Module, Parameter


def _check_positive(layer: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if not is_int(value) or value <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


class Linear(Module):
    """y = x·Wᵀ + b, with W of shape (out_features, in_features) as in PyTorch.

    Initialised as PyTorch does: W and b ~ U(-1/√in, 1/√in).

    Args:
        in_features: size of the last input dimension.
        out_features: size of the last output dimension.
        bias: learn an additive bias.

    Shape: (..., in_features) -> (..., out_features).

    >>> layer = Linear(784, 128)
    >>> layer(Tensor(np.zeros((32, 784), dtype=np.float32))).shape
    (32, 128)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=DEFAULT_DTYPE):
        super().__init__()
        _check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
            bound = 1 / math.sqrt(in_features)
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.data.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"Linear expected last dim {self.in_features}, got {tuple(shape)}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


Dense = Linear


class Embedding(Module):
    """A lookup table: integer ids (any shape) -> rows of ``weight`` (num_embeddings, embedding_dim).

    Initialised N(0, 1) as in PyTorch; the ``padding_idx`` row starts at zero and never gets a
    gradient, so it stays whatever it is (zero unless loaded otherwise).

    Args:
        num_embeddings: rows of the table (the vocabulary size).
        embedding_dim: width of each row.
        padding_idx: the row of the padding id, or None; negative counts from the end
            (-1 is the last row), as PyTorch.
        dtype: dtype of the table.

    Shape: ids (*) -> (*, embedding_dim).

    >>> emb = Embedding(65, 16)
    >>> emb(np.array([[1, 2, 3]])).shape
    (1, 3, 16)
    >>> Embedding(10, 4, padding_idx=-1).padding_idx, float(abs(Embedding(10, 4, padding_idx=0).weight.numpy()[0]).sum())
    (9, 0.0)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        _check_positive("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = F._padding_index("Embedding", padding_idx, num_embeddings)
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype))
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids) -> Tensor:
        return F.embedding(ids, self.weight, padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """Normalize the trailing ``normalized_shape`` dimensions, then scale by γ and shift by β.

    >>> ln = LayerNorm(8)
    >>> y = ln(Tensor(np.arange(16, dtype=np.float32).reshape(2, 8)))
    >>> bool(abs(y.numpy().mean()) < 1e-6)
    True
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype=DEFAULT_DTYPE,
    ):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        _check_positive("LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(shape)})
        self.normalized_shape, self.eps = shape, eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class GroupNorm(Module):
    """Group normalization, as ``torch.nn.GroupNorm``: each sample's C channels are split into
    ``num_groups`` groups, each normalized over its channels and all positions, then a
    per-channel scale and shift. Independent of the batch size (the same in train and eval).

    Args:
        num_groups: G (must divide ``num_channels``); G = C is instance norm, G = 1 normalizes
            the whole sample.
        num_channels: C.
        eps: added to each group's variance.
        affine: learn a per-channel scale (weight, init 1) and shift (bias, init 0).
        dtype: dtype of the parameters.
        bias: with ``affine``, learn the shift too (keyword-only, as PyTorch).

    Shape: (N, C, *) -> (N, C, *).

    >>> from tinytorch.core import Tensor, nn
    >>> gn = nn.GroupNorm(2, 4)
    >>> gn(Tensor(np.arange(24, dtype=np.float32).reshape(2, 4, 3))).shape
    (2, 4, 3)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype=DEFAULT_DTYPE, *, bias: bool = True):
        super().__init__()
        _check_positive("GroupNorm", num_groups=num_groups, num_channels=num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.register_parameter("weight", Parameter(np.ones(num_channels, dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(num_channels, dtype=dtype))
                                if affine and bias else None)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[1] != self.num_channels:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"GroupNorm expected input (N, {self.num_channels}, *), got {got}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing ``normalized_shape`` axes, as
    ``torch.nn.RMSNorm``: y = x / √(mean(x²) + eps) · γ (no centering, no shift).

    Args:
        normalized_shape: the trailing shape (an int for the last axis).
        eps: added to the mean square; None (the default) uses the machine epsilon of the
            input's dtype (``np.finfo(dtype).eps``), as PyTorch.
        elementwise_affine: learn the scale γ (``weight``, init 1).
        dtype: dtype of the weight.

    Shape: (*, *normalized_shape) -> the same.

    >>> from tinytorch.core import Tensor, nn
    >>> y = nn.RMSNorm(2)(Tensor([[3.0, -4.0]]))
    >>> [round(v, 4) for v in y.tolist()[0]]
    [0.8485, -1.1314]
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float | None = None,
                 elementwise_affine: bool = True, dtype=DEFAULT_DTYPE):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        _check_positive("RMSNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(shape)})
        if eps is not None and (not is_real(eps) or eps < 0):
            raise ValueError(f"RMSNorm: eps must be a number >= 0 or None, got {eps!r}")
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), eps
        self.elementwise_affine = elementwise_affine
        self.register_parameter("weight", Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """Inverted dropout: active in training mode, the identity in eval mode; any shape.

    Args:
        p: probability of zeroing an element; the others are scaled by 1/(1-p).

    >>> from tinytorch.core import nn, ones
    >>> drop = nn.Dropout(0.5)
    >>> drop.eval()(ones(4)).tolist()          # eval mode: unchanged
    [1.0, 1.0, 1.0, 1.0]
    >>> sorted(set(drop.train()(ones(1000)).tolist()))   # training: 0 or 1/(1-p)
    [0.0, 2.0]
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:  # the identity: the common case in evaluation
            return x
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Flatten dimensions ``start_dim`` .. ``end_dim`` (default: all but the batch).

    Args:
        start_dim: the first axis merged.
        end_dim: the last axis merged.

    Shape: (N, C, H, W) -> (N, C·H·W) with the defaults.

    >>> from tinytorch.core import nn, zeros
    >>> nn.Flatten()(zeros(8, 3, 4, 4)).shape
    (8, 48)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Return the input unchanged (a placeholder layer, e.g. for an optional norm).

    >>> from tinytorch.core import Tensor, nn
    >>> nn.Identity()(Tensor([1.0])).tolist()
    [1.0]
    """
    def forward(self, x: Tensor) -> Tensor:
        return x
