"""Optimizers, learning-rate schedulers and gradient clipping, with PyTorch's semantics.

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.core.optim import AdamW, clip_grad_norm_, lr_scheduler
>>> w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
>>> opt = AdamW([w], lr=1e-2)
>>> sched = lr_scheduler.warmup_cosine(opt, warmup_steps=10, total_steps=100)
>>> for _ in range(3):
...     w.grad = 2 * w.data                   # d/dw of sum(w ** 2)
...     norm = clip_grad_norm_([w], max_norm=1.0)
...     opt.step()
...     sched.step()
...     opt.zero_grad()
>>> w.data.dtype
dtype('float32')
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .param_groups import weight_decay_groups
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "lr_scheduler",
    "clip_grad_norm_",
    "clip_grad_value_",
    "weight_decay_groups",
]
