"""tinytorch.core: the engine every TinyTorch package builds on.

>>> from tinytorch.core import Tensor, nn
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> model(Tensor([[1.0, 2.0, 3.0, 4.0]])).shape
(1, 2)
"""

from importlib import metadata as _metadata

from . import data, functional, io, kernels, nn, optim, training
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, register_op_observer
from .functional import cat, concat, stack, where
from .gradcheck import GradcheckError, gradcheck
from .random import get_rng, manual_seed
from .tensor import (
    Tensor,
    arange,
    full,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .threads import get_num_threads, set_num_threads
from .training import Trainer
from .viz import draw_dot

__version__ = _metadata.version("tinytorch-core")  # the one source: pyproject.toml

__all__ = [
    "Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "register_op_observer",
    "functional", "kernels", "nn", "optim", "data", "io", "training", "Trainer",
    "tensor", "zeros", "ones", "full", "zeros_like", "ones_like", "arange", "randn", "rand",
    "cat", "concat", "stack", "where", "gradcheck", "GradcheckError", "manual_seed", "get_rng",
    "set_num_threads", "get_num_threads", "draw_dot",
]
