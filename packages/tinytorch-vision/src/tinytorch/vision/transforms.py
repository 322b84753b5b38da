"""Batch transforms: normalize, random crop with padding, random horizontal flip.

Unlike torchvision's per-image transforms, each transform here takes a whole NCHW float batch
(an ndarray) and is vectorised over it: a random crop of 128 images is one fancy index, not 128
Python calls. Random transforms draw from the generator they are called with, so a loader that
seeds one generator per epoch makes augmentation reproducible and resumable.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = Compose([RandomCrop(28, padding=2), RandomHorizontalFlip(), Normalize([0.5], [0.25])])
>>> t(np.zeros((4, 1, 28, 28), dtype=np.float32), rng).shape
(4, 1, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _check_batch(owner: str, x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{owner} expected an NCHW batch array (N, C, H, W), got {got}")


class Normalize:
    """(x - mean) / std per channel.

    Args:
        mean, std: one value per channel (or one for all).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        if self.mean.size != self.std.size:
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.ravel().tolist()}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("Normalize", x)
        if self.mean.size not in (1, x.shape[1]):
            raise ValueError(f"Normalize has {self.mean.size} channel(s), the batch has {x.shape[1]}")
        return ((x - self.mean) / self.std).astype(x.dtype, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class RandomCrop:
    """Zero-pad each image by ``padding`` then crop a random ``size`` window (one per image).

    Vectorised: the batch is padded once, and all crops are one gather with per-image row and
    column offsets.
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size must be a positive int or (h, w), got {size!r}")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = padding

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("RandomCrop", x)
        rng = rng if rng is not None else np.random.default_rng()
        n, c, h, w = x.shape
        p = self.padding
        ch, cw = self.size
        if ch > h + 2 * p or cw > w + 2 * p:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {(h + 2 * p, w + 2 * p)}")
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        top = rng.integers(0, h + 2 * p - ch + 1, size=n)
        left = rng.integers(0, w + 2 * p - cw + 1, size=n)
        rows = (top[:, None] + np.arange(ch))[:, None, :, None]  # (n, 1, ch, 1)
        cols = (left[:, None] + np.arange(cw))[:, None, None, :]  # (n, 1, 1, cw)
        return xp[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        _check_batch("RandomHorizontalFlip", x)
        rng = rng if rng is not None else np.random.default_rng()
        flip = rng.random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 NCHW in [0, 1]."""
    x = images[:, None] if images.ndim == 3 else images
    return x.astype(np.float32) * np.float32(1 / 255)
