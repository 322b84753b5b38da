"""Inputs for gradient checks and parity tests, shared by the library's tests and by
``tinytorch-learn``'s checks (as ``torch.testing.make_tensor``).

Everything is float64 (finite differences need it) and reproducible from ``seed``.

>>> make_tensor(2, 3, seed=1).shape, make_tensor(2, 3, seed=1).dtype
((2, 3), dtype('float64'))
>>> bool((make_tensor(4, positive=True).data >= 0.5).all())
True
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor


def make_array(*shape: int, seed: int = 0, scale: float = 1.0, positive: bool = False,
               away_from_zero: bool = False) -> np.ndarray:
    """A float64 array of ``shape``: standard normal times ``scale``; ``positive`` draws from
    [0.5, 2) (for log, sqrt, pow); ``away_from_zero`` keeps |x| in [0.3, 1.5) (for kinks such as
    relu and abs, where a finite difference across 0 is meaningless).

    >>> x = make_array(100, seed=0, away_from_zero=True)
    >>> bool((np.abs(x) >= 0.3).all() and (x < 0).any() and (x > 0).any())
    True
    """
    rng = np.random.default_rng(seed)
    if positive:
        data = rng.uniform(0.5, 2.0, size=shape)
    elif away_from_zero:
        data = rng.uniform(0.3, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    else:
        data = rng.normal(size=shape) * scale
    return np.asarray(data, dtype=np.float64)


def make_tensor(*shape: int, seed: int = 0, scale: float = 1.0, positive: bool = False,
                away_from_zero: bool = False, requires_grad: bool = True) -> Tensor:
    """`make_array` as a Tensor that requires grad unless told otherwise.

    >>> make_tensor(2, seed=3, requires_grad=False).requires_grad
    False
    """
    return Tensor(make_array(*shape, seed=seed, scale=scale, positive=positive,
                             away_from_zero=away_from_zero), requires_grad=requires_grad)
