"""Turning next-token logits into tokens: temperature, top-k and nucleus (top-p) sampling.

- temperature τ divides the logits: τ < 1 sharpens, τ > 1 flattens, τ = 0 is greedy (arg-max).
- top-k keeps the k most likely tokens (Fan et al., 2018).
- top-p keeps the smallest set of most likely tokens whose probability reaches p
  (Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration").
"""

from __future__ import annotations

import numpy as np

from tinytorch.core.checks import is_int, is_real


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ``ValueError`` unless the sampling settings are valid (before generating).

    Args:
        temperature: a finite number >= 0.
        top_k: a positive integer or None.
        top_p: a number in (0, 1] or None.

    >>> check_sampling_args(0.8, 40, None)
    >>> check_sampling_args(1.0, None, 1.5)
    Traceback (most recent call last):
    ...
    ValueError: top_p must be in (0, 1] or None, got 1.5
    """
    if not is_real(temperature) or not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and (not is_real(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sample one token id per row of (B, V) logits; returns (B,) int64.

    Args:
        logits: (B, V) unnormalised log-probabilities.
        temperature: divides the logits; 0 is greedy (arg-max), < 1 sharpens, > 1 flattens.
        top_k: keep only the k most likely tokens (None: all).
        top_p: keep the smallest set of most likely tokens whose probability reaches p
            (None: all).
        rng: the NumPy generator to sample with (default: a fresh unseeded one).

    Returns:
        (B,) int64 token ids.

    >>> sample_next(np.array([[0.0, 5.0, 1.0]]), temperature=0)
    array([1])
    """
    if temperature == 0:  # the arg-max needs no float64 copy
        return np.asarray(logits).argmax(axis=-1).astype(np.int64)
    # Called once per decoded token on a (B, V) row: ufuncs and their methods, not the
    # ndarray methods and np.* wrappers around them (a few µs each at this size).
    rng = rng if rng is not None else np.random.default_rng()
    z = np.divide(logits, temperature, dtype=np.float64)  # a float64 copy
    V = z.shape[-1]
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=-1)[:, V - top_k : V - top_k + 1]  # k-th largest
        z = np.where(z < kth, -np.inf, z)
    z -= np.maximum.reduce(z, axis=-1, keepdims=True)
    probs = np.exp(z)  # unnormalised: the draw below scales by the total instead
    if top_p is not None and top_p < 1:
        probs /= probs.sum(axis=-1, keepdims=True)
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p  # mass of strictly more likely tokens
        drop_sorted = before >= top_p  # the most likely token always stays (before = 0)
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        probs = np.where(drop, 0.0, probs)
    cdf = np.add.accumulate(probs, axis=-1)
    u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]
    ids = np.add.reduce(cdf <= u, axis=-1, dtype=np.int64)  # entries of the cdf at or below u
    return np.minimum(ids, V - 1)


__all__ = ["sample_next", "check_sampling_args"]
