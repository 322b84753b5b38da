"""One global random generator, so ``manual_seed(n)`` makes a whole run repeatable.

Everything random in TinyTorch — weight initialisation, dropout masks, DataLoader shuffling
without its own seed — draws from ``get_rng()``. Seeding it makes two runs bit-identical.

>>> from tinytorch.core import manual_seed, randn
>>> _ = manual_seed(0); a = randn(3).numpy()
>>> _ = manual_seed(0); b = randn(3).numpy()
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import numpy as np

from .checks import is_int

_rng = np.random.default_rng()
_seed: int | None = None


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (PCG64) and return it: the same seed gives bit-identical runs.

    Args:
        seed: a non-negative integer.

    >>> from tinytorch.core import randn
    >>> _ = manual_seed(42); a = randn(2).tolist()
    >>> _ = manual_seed(42); a == randn(2).tolist()
    True
    """
    global _rng, _seed
    if not is_int(seed) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _rng = np.random.default_rng(_seed)
    return _rng


def initial_seed() -> int | None:
    """The number last given to ``manual_seed`` (None if it was never called)."""
    return _seed


def get_rng() -> np.random.Generator:
    """The global generator that every TinyTorch component draws from (init, dropout, shuffling).

    >>> _ = manual_seed(0)
    >>> float(get_rng().random()) == float(manual_seed(0).random())
    True
    """
    return _rng


def get_rng_state() -> dict:
    """The generator's state, for checkpoints that resume bit-exactly."""
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state`` (checkpoints use this to resume bit-exactly)."""
    _rng.bit_generator.state = state
