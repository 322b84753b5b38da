"""Weight initialisation, in place, from the global generator (``tinytorch.core.random``).

Formulas as in ``torch.nn.init``: fan_in/fan_out from the first two dimensions times the
receptive field; ``gain`` per nonlinearity (He et al., 2015; Glorot & Bengio, 2010).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import numpy as np

from ..random import get_rng
from ..tensor import Tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``, as ``torch.nn.init.calculate_gain``.

    Args:
        nonlinearity: ``linear``/``conv*``/``sigmoid`` (1), ``tanh`` (5/3), ``relu`` (√2),
            ``leaky_relu`` (√(2/(1+slope²))) or ``selu`` (3/4).
        param: the negative slope for ``leaky_relu`` (default 0.01).

    >>> round(calculate_gain("relu"), 4)
    1.4142
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


class _InitMode(threading.local):
    skip = False


_init_mode = _InitMode()


@contextlib.contextmanager
def no_init() -> Iterator[None]:
    """Inside the block every fill function leaves its tensor untouched (and draws nothing).

    For a loader that replaces every array of a model it builds (as transformers'
    ``no_init_weights``): layers allocate their parameters with ``np.empty``, so a model built
    this way costs no time and, until its arrays are written, no memory. The weights are
    garbage until loaded. Per thread.

    >>> from tinytorch.core import nn
    >>> with no_init():
    ...     layer = nn.Linear(1000, 1000)  # no 1M uniform samples drawn
    >>> layer.weight.shape
    (1000, 1000)
    """
    before = _init_mode.skip
    _init_mode.skip = True
    try:
        yield
    finally:
        _init_mode.skip = before


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    t.data[...] = values.astype(t.data.dtype, copy=False)
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill ``t`` in place with U(a, b) samples; returns ``t``.

    >>> from tinytorch.core import zeros
    >>> w = uniform_(zeros(3, 4), -0.1, 0.1)
    >>> bool((abs(w.numpy()) <= 0.1).all())
    True
    """
    if _init_mode.skip:
        return t
    return _fill(t, get_rng().uniform(a, b, size=t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill ``t`` in place with N(mean, std²) samples; returns ``t``."""
    if _init_mode.skip:
        return t
    return _fill(t, get_rng().normal(mean, std, size=t.shape))


def trunc_normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Normal samples redrawn until they fall inside [a, b]."""
    if _init_mode.skip:
        return t
    rng = get_rng()
    values = rng.normal(mean, std, size=t.shape)
    bad = (values < a) | (values > b)
    while bad.any():
        values[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = (values < a) | (values > b)
    return _fill(t, values)


def constant_(t: Tensor, value: float) -> Tensor:
    """Fill ``t`` in place with ``value``; returns ``t``."""
    if not _init_mode.skip:
        t.data[...] = value
    return t


def zeros_(t: Tensor) -> Tensor:
    """Fill ``t`` in place with zeros; returns ``t``."""
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    """Fill ``t`` in place with ones; returns ``t``."""
    return constant_(t, 1.0)


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(-b, b) with b = gain·√(6 / (fan_in + fan_out)); in place.

    Args:
        t: at least 2-D, (fan_out, fan_in, *receptive field).
        gain: e.g. ``calculate_gain("tanh")``.
    """
    fan_in, fan_out = _fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out)); in place."""
    fan_in, fan_out = _fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fan_in_and_fan_out(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He uniform: U(-b, b) with b = √3·gain/√fan; in place (``nn.Linear``'s default init).

    Args:
        t: at least 2-D, (fan_out, fan_in, *receptive field).
        a: negative slope of the leaky ReLU that follows (for the gain).
        mode: ``"fan_in"`` (preserve the forward variance) or ``"fan_out"`` (the backward's).
        nonlinearity: passed to ``calculate_gain``.

    >>> from tinytorch.core import zeros
    >>> w = kaiming_uniform_(zeros(64, 128), nonlinearity="relu")
    >>> bool(abs(w.numpy()).max() <= (6 / 128) ** 0.5)
    True
    """
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He normal: N(0, σ²) with σ = gain/√fan; in place (arguments as ``kaiming_uniform_``)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))
