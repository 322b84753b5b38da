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
    """(x - mean) / std per channel of an NCHW float batch.

    Args:
        mean: one value per channel (or one for all channels).
        std: one positive value per channel (or one for all channels).

    Shape: (N, C, H, W) -> (N, C, H, W), same dtype. Calling it takes the batch and an
    optional generator (ignored: the transform is deterministic).

    >>> norm = Normalize([0.5], [0.25])
    >>> float(norm(np.ones((2, 1, 4, 4), dtype=np.float32))[0, 0, 0, 0])
    2.0
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

    Args:
        size: output (h, w) of each crop, or one int for a square crop.
        padding: zeros added on each side before cropping.

    Shape: (N, C, H, W) -> (N, C, h, w). Calling it takes the batch and a NumPy generator
    (default: a fresh unseeded one).

    >>> crop = RandomCrop(28, padding=4)
    >>> crop(np.zeros((3, 1, 28, 28), dtype=np.float32), np.random.default_rng(0)).shape
    (3, 1, 28, 28)
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
    """Mirror each image left-right with probability ``p``.

    Args:
        p: probability that an image is flipped, in [0, 1].

    Shape: (N, C, H, W) -> (N, C, H, W). Calling it takes the batch and a NumPy generator
    (default: a fresh unseeded one).

    >>> x = np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)
    >>> RandomHorizontalFlip(p=1.0)(x, np.random.default_rng(0))[0, 0, 0]
    array([2., 1., 0.], dtype=float32)
    """

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
    """Apply transforms in order, passing the same generator to each.

    Args:
        transforms: callables ``t(x, rng) -> x`` on NCHW batches, applied first to last.

    >>> t = Compose([RandomHorizontalFlip(p=1.0), Normalize([1.0], [2.0])])
    >>> t(np.array([[[[1.0, 3.0]]]], dtype=np.float32), np.random.default_rng(0))[0, 0, 0]
    array([1., 0.], dtype=float32)
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 NCHW in [0, 1].

    Args:
        images: uint8 array, (N, H, W) (one channel) or (N, C, H, W).

    Returns:
        float32 (N, C, H, W) array, ``images / 255``.

    >>> to_float(np.full((2, 28, 28), 255, dtype=np.uint8)).shape
    (2, 1, 28, 28)
    """
    x = images[:, None] if images.ndim == 3 else images
    return x.astype(np.float32) * np.float32(1 / 255)
