"""Activation modules; each wraps the matching op in ``tinytorch.core.ops``/``functional``."""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class ReLU(Module):
    """max(x, 0) elementwise; any shape.

    >>> from tinytorch.core import Tensor, nn
    >>> nn.ReLU()(Tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class GELU(Module):
    """x·Φ(x) elementwise; any shape. ``approximate="tanh"`` for GPT-2's tanh form.

    Args:
        approximate: ``"none"`` (exact erf form) or ``"tanh"``.

    >>> from tinytorch.core import Tensor, nn
    >>> round(nn.GELU()(Tensor([1.0])).item(), 4)
    0.8413
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """1 / (1 + e^-x) elementwise; any shape.

    >>> from tinytorch.core import Tensor, nn
    >>> nn.Sigmoid()(Tensor([0.0])).tolist()
    [0.5]
    """
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent elementwise; any shape.

    >>> from tinytorch.core import Tensor, nn
    >>> nn.Tanh()(Tensor([0.0])).tolist()
    [0.0]
    """
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Softmax(Module):
    """Softmax along ``dim`` (the entries along it sum to 1).

    Args:
        dim: the normalized axis (default: the last).

    >>> from tinytorch.core import Tensor, nn
    >>> nn.Softmax(dim=-1)(Tensor([[1.0, 1.0]])).tolist()
    [[0.5, 0.5]]
    """
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along ``dim``, computed stably.

    Args:
        dim: the normalized axis (default: the last).

    >>> from tinytorch.core import Tensor, nn
    >>> round(nn.LogSoftmax()(Tensor([0.0, 0.0])).tolist()[0], 4)
    -0.6931
    """
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
