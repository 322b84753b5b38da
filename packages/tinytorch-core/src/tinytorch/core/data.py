"""Datasets and the `DataLoader`, following ``torch.utils.data``.

A `Dataset` maps an index to a sample; a `DataLoader` draws batches of indices (in order or
shuffled), fetches the samples and collates them into batched Tensors. Datasets stored as arrays
(`TensorDataset`, or any dataset with a ``__getitems__(indices)`` method) are fetched a whole
batch at a time with one vectorised NumPy index, which is much faster than one ``__getitem__``
call per sample.

>>> import numpy as np
>>> from tinytorch.core.data import DataLoader, TensorDataset
>>> x = np.arange(20, dtype=np.float32).reshape(10, 2)
>>> y = np.arange(10) % 2
>>> loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=0)
>>> len(loader)
3
>>> xb, yb = next(iter(loader))
>>> xb.shape, xb.dtype, yb.dtype
((4, 2), dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .checks import check_int, is_int
from .random import get_rng
from .tensor import DEFAULT_DTYPE, Tensor

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "default_collate",
    "DataLoader",
    "DistributedSampler",
]


class Dataset(abc.ABC):
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` is sample ``i``.

    Subclasses implement ``__getitem__`` and ``__len__``. They may also implement
    ``__getitems__(indices)`` returning a whole batch at once (see `DataLoader`).

    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 5
    ...     def __getitem__(self, i):
    ...         return float(i), i * i
    >>> Squares()[3]
    (3.0, 9)
    """

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Any:
        """The sample at ``index``."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of samples."""


def _as_data_array(value: Any) -> np.ndarray:
    """A dataset column as an ndarray.

    Tensors and arrays keep their dtype; Python floats become float32, Python ints int64.
    """
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    arr = np.asarray(value)
    if arr.dtype == np.float64:
        arr = arr.astype(DEFAULT_DTYPE)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64)
    return arr


class TensorDataset(Dataset):
    """A dataset of arrays (or Tensors) sharing their first dimension; sample ``i`` is row ``i``.

    Indexing accepts an int, a slice or an integer array, and returns a tuple of Tensors, so a
    whole batch is one NumPy fancy index: ``ds[np.array([3, 1, 4])]``.

    Args:
        *arrays: NumPy arrays, Tensors, or nested lists, each with the same length.

    Raises:
        ValueError: no arrays are given, one is 0-dimensional, or their lengths differ.

    >>> import numpy as np
    >>> ds = TensorDataset(np.zeros((5, 3), dtype=np.float32), np.arange(5))
    >>> len(ds)
    5
    >>> x, y = ds[np.array([4, 0])]
    >>> x.shape, y.tolist()
    ((2, 3), [4, 0])
    """

    def __init__(self, *arrays: Any):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays: tuple[np.ndarray, ...] = tuple(_as_data_array(a) for a in arrays)
        for i, arr in enumerate(self.arrays):
            if arr.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is 0-dimensional (a scalar)")
        n = len(self.arrays[0])
        for i, arr in enumerate(self.arrays[1:], start=1):
            if len(arr) != n:
                raise ValueError(
                    "TensorDataset: all arrays must have the same first dimension (size), but "
                    f"array 0 has {n} and array {i} has {len(arr)} "
                    f"(shapes: {[a.shape for a in self.arrays]})"
                )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        if isinstance(index, Tensor):
            index = index.data
        return tuple(Tensor(arr[index]) for arr in self.arrays)

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> tuple[Tensor, ...]:
        """The batch of samples ``indices``, fetched with one fancy index per array."""
        return self[np.asarray(indices, dtype=np.intp)]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: the full dataset.
        indices: the indices into ``dataset`` that form the subset.

    >>> import numpy as np
    >>> sub = Subset(TensorDataset(np.arange(10)), [7, 2])
    >>> len(sub), sub[0][0].item()
    (2, 7)
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> Any:
        """A batch: vectorised when the underlying dataset is, else a list of samples."""
        targets = self.indices[np.asarray(indices, dtype=np.intp)]
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return getitems(targets)
        return [self.dataset[int(i)] for i in targets]


def random_split(
    dataset: Dataset, lengths: Sequence[int | float], seed: int | None = None
) -> list[Subset]:
    """Split a dataset into non-overlapping random subsets.

    Args:
        dataset: the dataset to split.
        lengths: the subsets' lengths, summing to ``len(dataset)``; or fractions summing to 1,
            in which case the lengths are floored and the remainder is given out one sample at
            a time, first subset first (as in PyTorch).
        seed: seed for the permutation; None draws from the global generator
            (``tinytorch.core.manual_seed`` makes it reproducible).

    Returns:
        One `Subset` per length.

    >>> import numpy as np
    >>> train, val = random_split(TensorDataset(np.arange(10)), [0.8, 0.2], seed=0)
    >>> len(train), len(val)
    (8, 2)
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    is_fractions = (
        all(isinstance(x, float) for x in lengths)
        and math.isclose(sum(lengths), 1.0, abs_tol=1e-9)
        and sum(lengths) != n
    )
    if is_fractions:
        for i, frac in enumerate(lengths):
            if not 0.0 <= frac <= 1.0:
                raise ValueError(f"random_split: fraction at index {i} is {frac}, not in [0, 1]")
        sizes = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        for i, size in enumerate(lengths):
            if not is_int(size) or size < 0:
                raise ValueError(
                    f"random_split: lengths[{i}] is {size!r}; lengths must be non-negative "
                    "integers summing to len(dataset), or fractions summing to 1"
                )
        sizes = [int(s) for s in lengths]
        if sum(sizes) != n:
            raise ValueError(
                f"random_split: the lengths sum to {sum(sizes)}, but the dataset has {n} samples"
            )
    rng = np.random.default_rng(seed) if seed is not None else get_rng()
    perm = rng.permutation(n)
    subsets, start = [], 0
    for size in sizes:
        subsets.append(Subset(dataset, perm[start : start + size]))
        start += size
    return subsets


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch.

    Tensors and arrays are stacked into a Tensor with a new first dimension (dtype kept);
    Python floats become a float32 Tensor, Python ints an int64 Tensor, bools a bool Tensor,
    NumPy scalars keep their dtype; tuples, lists and dicts are collated element-wise (keeping
    their type); strings are returned as a list.

    Args:
        batch: the samples, all with the same structure.

    Returns:
        The batch, with the samples' structure and Tensors at the leaves.

    >>> import numpy as np
    >>> samples = [(np.zeros(2, dtype=np.float32), 1), (np.ones(2, dtype=np.float32), 0)]
    >>> xb, yb = default_collate(samples)
    >>> xb.shape, yb.dtype, yb.tolist()
    ((2, 2), dtype('int64'), [1, 0])
    """
    if len(batch) == 0:
        raise ValueError("default_collate: got an empty batch")
    elem = batch[0]
    if isinstance(elem, (Tensor, np.ndarray)):
        arrays = [x.data if isinstance(x, Tensor) else x for x in batch]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(
                f"default_collate: cannot stack samples of different shapes {sorted(shapes)}"
            )
        return Tensor(np.stack(arrays))
    if isinstance(elem, np.generic):
        return Tensor(np.array(batch))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor(np.array(batch, dtype=DEFAULT_DTYPE))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, (tuple, list)):
        sizes = {len(sample) for sample in batch}
        if len(sizes) > 1:
            raise ValueError(
                f"default_collate: samples have different numbers of fields {sorted(sizes)}"
            )
        fields = [default_collate(list(column)) for column in zip(*batch, strict=True)]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
            return type(elem)(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(
        f"default_collate: don't know how to batch samples of type {type(elem).__name__}; "
        "pass a collate_fn to the DataLoader"
    )


def _to_tensors(batch: Any) -> Any:
    """Wrap the arrays of an already-batched structure in Tensors."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, np.ndarray):
        return Tensor(batch)
    if isinstance(batch, Mapping):
        return {key: _to_tensors(value) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_tensors(v) for v in batch))
    if isinstance(batch, tuple):
        return tuple(_to_tensors(v) for v in batch)
    return batch


class DataLoader:
    """Iterate over a dataset in batches, optionally shuffled, reproducibly.

    Each ``iter(loader)`` is one epoch. With ``shuffle=True`` and a ``seed``, epoch ``k`` is
    shuffled by a generator seeded with ``(seed, k)``: runs are reproducible and every epoch
    has a different order; ``set_epoch(k)`` makes the next iteration epoch ``k`` (to resume a
    run exactly). Without a seed, the order is drawn from the global generator, so
    ``tinytorch.core.manual_seed`` makes it reproducible.

    A dataset with a ``set_epoch(k)`` method is told the epoch before each one starts.

    Batches are fetched in one vectorised call when the dataset has ``__getitems__(indices)``
    (`TensorDataset` and `Subset` do): a returned list is treated as a list of samples and
    collated, anything else as a ready batch. Otherwise ``dataset[i]`` is called per sample and
    the samples are collated with `default_collate`. A custom ``collate_fn`` always receives the
    list of samples ``[dataset[i] for i in batch_indices]``.

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``).
        batch_size: samples per batch (a positive integer).
        shuffle: shuffle the samples every epoch.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        seed: a non-negative integer seed for shuffling, or None to use the global generator.
        collate_fn: a function turning a list of samples into a batch; default
            `default_collate`.
        sampler: an iterable of indices giving each epoch's order instead of ``shuffle`` (e.g. a
            `DistributedSampler`); its ``set_epoch`` is called with the loader's epoch.

    >>> import numpy as np
    >>> from tinytorch.core.data import TensorDataset
    >>> loader = DataLoader(TensorDataset(np.arange(10)), batch_size=4, drop_last=True)
    >>> [batch[0].tolist() for batch in loader]
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        sampler: Any = None,
    ):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                "DataLoader: dataset must define __len__ and __getitem__, got "
                f"{type(dataset).__name__}"
            )
        if not is_int(batch_size) or batch_size <= 0:
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer, got {batch_size!r}"
            )
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"DataLoader: {name} must be a bool, got {flag!r}")
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(
                f"DataLoader: seed must be a non-negative integer or None, got {seed!r}"
            )
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")

        if sampler is not None:
            if shuffle:
                raise ValueError("DataLoader: sampler and shuffle=True are exclusive (the sampler decides the order)")
            if not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
                raise TypeError(f"DataLoader: sampler must have __iter__ and __len__, got {type(sampler).__name__}")
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = None if seed is None else int(seed)
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self._custom_collate = collate_fn is not None
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will be (0 for the first)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (with a seed, it gets that epoch's order).

        Args:
            epoch: a non-negative integer.
        """
        if not is_int(epoch) or epoch < 0:
            raise ValueError(
                f"DataLoader.set_epoch: epoch must be a non-negative integer, got {epoch!r}"
            )
        self._epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        if self.seed is not None:
            return shuffled_order(n, self.seed, epoch)
        return get_rng().permutation(n)

    def __iter__(self) -> Iterator[Any]:
        # The order is fixed (and the epoch advanced) when iteration starts, not lazily. A data
        # set that varies per epoch (random text windows) is told the epoch too, so that epoch
        # k is the same whether it is reached by training or by resuming.
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self._epoch)
        order = self._order(self._epoch)
        self._epoch += 1
        return self._batches(order)

    def _batches(self, order: np.ndarray) -> Iterator[Any]:
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(order)), self.batch_size):
            yield self._fetch(order[start : start + self.batch_size])

    def shard(self, num_replicas: int, rank: int, training: bool = True) -> DataLoader:
        """This loader's share for ``rank`` of ``num_replicas`` ranks (what the Trainer runs on each rank).

        For training, the batch of ``batch_size`` samples is split: each rank gets
        ``batch_size // num_replicas`` of them through a `DistributedSampler` with the loader's
        seed, so the ranks' batches of a step together are this loader's batch. For evaluation
        (``training=False``) every rank gets every N-th sample, without padding, in batches of
        ``batch_size``, so each sample is evaluated exactly once.

        Args:
            num_replicas: the number of ranks.
            rank: this rank.
            training: shard a training loader (split the batch) or an evaluation loader.

        Raises:
            ValueError: the batch is smaller than, or not a multiple of, ``num_replicas``; the data
                set is smaller than ``num_replicas``; a shuffled loader has no seed (the ranks
                must agree on the order).

        >>> import numpy as np
        >>> from tinytorch.core.data import TensorDataset
        >>> loader = DataLoader(TensorDataset(np.arange(8)), batch_size=4)
        >>> [b[0].tolist() for b in loader.shard(2, rank=1)]
        [[1, 3], [5, 7]]
        """
        n = len(self.dataset)
        if n < num_replicas:
            raise ValueError(f"DataLoader.shard: the data set has {n} samples, fewer than the {num_replicas} ranks")
        collate = self.collate_fn if self._custom_collate else None
        if not training:
            return DataLoader(self.dataset, batch_size=self.batch_size, collate_fn=collate,
                              sampler=np.arange(rank, n, num_replicas))
        if self.batch_size < num_replicas or self.batch_size % num_replicas:
            raise ValueError(f"DataLoader.shard: the batch of {self.batch_size} samples cannot be split evenly "
                             f"over {num_replicas} ranks (use a multiple of {num_replicas}, or fewer ranks)")
        if self.shuffle and self.seed is None:
            raise ValueError("DataLoader.shard: a shuffled loader needs a seed (DataLoader(seed=...)) so that "
                             "every rank draws the same order")
        sampler = DistributedSampler(self.dataset, num_replicas, rank, shuffle=self.shuffle,
                                     seed=self.seed or 0, drop_last=self.drop_last)
        loader = DataLoader(self.dataset, batch_size=self.batch_size // num_replicas, drop_last=self.drop_last,
                            collate_fn=collate, sampler=sampler)
        loader._epoch = self._epoch
        return loader

    def _fetch(self, indices: np.ndarray) -> Any:
        if not self._custom_collate:
            getitems = getattr(self.dataset, "__getitems__", None)
            if getitems is not None:
                batch = getitems(indices)
                return default_collate(batch) if isinstance(batch, list) else _to_tensors(batch)
        return self.collate_fn([self.dataset[int(i)] for i in indices])

    def __repr__(self) -> str:
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}(len={len(self.dataset)}), "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"seed={self.seed}" + (f", sampler={self.sampler!r})" if self.sampler is not None else ")")
        )


def shuffled_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(n)`` that ``DataLoader(shuffle=True, seed=seed)`` uses in epoch ``epoch``.

    Args:
        n: the data set's length.
        seed: the loader's seed.
        epoch: the epoch (0-based).

    >>> shuffled_order(5, seed=0, epoch=0).tolist() == DataLoader(range(5), shuffle=True, seed=0)._order(0).tolist()
    True
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


class DistributedSampler:
    """The indices of one rank's share of a data set, as PyTorch's ``DistributedSampler``.

    Each epoch the indices ``0..len(dataset)-1`` are put in order — shuffled by ``(seed, epoch)``
    exactly as ``DataLoader(shuffle=True, seed=seed)`` shuffles them — and rank ``r`` of ``N``
    takes every N-th from position ``r``. The shares are disjoint and together cover the data
    set. When ``len(dataset)`` is not a multiple of N, the order is padded by repeating its
    start (``drop_last=False``, so every sample is seen and some twice) or cut to a multiple
    of N (``drop_last=True``), so every rank has the same number of samples. With a per-rank
    batch of B/N, step k of the ranks together covers positions ``k*B .. (k+1)*B - 1`` of the
    order: the same batch as one process with batch B.

    Args:
        dataset: anything with ``__len__``.
        num_replicas: the number of ranks (default: the process group's world size).
        rank: this rank (default: the process group's rank).
        shuffle: shuffle every epoch (else the natural order).
        seed: the shuffling seed, the same on every rank.
        drop_last: cut the order to a multiple of ``num_replicas`` instead of padding it.

    >>> import numpy as np
    >>> ranks = [DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False) for r in range(3)]
    >>> [list(s) for s in ranks]  # 10 samples, padded to 12 by repeating the first two
    [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    >>> sampler = DistributedSampler(range(10), num_replicas=2, rank=0, seed=1)
    >>> sampler.set_epoch(3); first = list(sampler); sampler.set_epoch(3); first == list(sampler)
    True
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from . import distributed

            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        for name, value, minimum in (("num_replicas", num_replicas, 1), ("rank", rank, 0), ("seed", seed, 0)):
            check_int("DistributedSampler", name, value, minimum=minimum)
        if rank >= num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in 0..{num_replicas - 1}, got {rank}")
        n = len(dataset)
        if n < num_replicas:
            raise ValueError(f"DistributedSampler: the data set has {n} samples, fewer than the "
                             f"{num_replicas} ranks that share it")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        if drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from the next iteration on (the same on every rank).

        Args:
            epoch: a non-negative integer.

        >>> s = DistributedSampler(range(4), num_replicas=2, rank=0); s.set_epoch(1); s.epoch
        1
        """
        if not is_int(epoch) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        n = len(self.dataset)
        order = shuffled_order(n, self.seed, self.epoch) if self.shuffle else np.arange(n)
        if self.total_size > n:  # pad by repeating the start (more than once for tiny data sets)
            order = np.resize(order, self.total_size)
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(rank={self.rank}, num_replicas={self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})"
        )
