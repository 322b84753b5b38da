"""Datasets, random_split, default_collate and the DataLoader."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from tinytorch.core import Tensor, manual_seed
from tinytorch.core.data import (
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


def make_dataset(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(x, y)


class ListDataset(Dataset):
    """A dataset without vectorised access: samples come one __getitem__ at a time."""

    def __init__(self, n):
        self.n = n
        self.calls = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        return np.full(2, float(i), dtype=np.float32), i


def indices_of(loader):
    """The sample ids of each batch (the int64 label column is the sample index)."""
    return [batch[-1].data.tolist() for batch in loader]


# ----------------------------------------------------------------------------- datasets
def test_dataset_is_abstract():
    with pytest.raises(TypeError):
        Dataset()

    class NoLen(Dataset):
        def __getitem__(self, i):
            return i

    with pytest.raises(TypeError):
        NoLen()


def test_tensor_dataset_indexing():
    ds = make_dataset()
    assert len(ds) == 10
    x, y = ds[3]
    assert isinstance(x, Tensor) and isinstance(y, Tensor)
    assert x.tolist() == [9.0, 10.0, 11.0] and y.item() == 3
    xb, yb = ds[np.array([7, 2, 7])]
    assert xb.shape == (3, 3) and xb.dtype == np.float32
    assert yb.tolist() == [7, 2, 7] and yb.dtype == np.int64
    xs, _ = ds[2:4]
    assert xs.shape == (2, 3)


def test_tensor_dataset_accepts_tensors_and_lists():
    ds = TensorDataset(Tensor(np.ones((4, 2), dtype=np.float32)), [0, 1, 0, 1])
    x, y = ds[np.arange(4)]
    assert x.dtype == np.float32 and y.dtype == np.int64
    (floats,) = TensorDataset([[0.5], [1.5]])[0:2]
    assert floats.dtype == np.float32  # Python floats become float32, as everywhere


def test_tensor_dataset_length_mismatch_names_the_arrays():
    with pytest.raises(ValueError, match="array 0 has 10 and array 1 has 9"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="array 2 has 3"):
        TensorDataset(np.zeros(4), np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-dimensional"):
        TensorDataset(np.float32(1.0))


def test_subset_and_vectorised_subset_batches():
    ds = make_dataset()
    sub = Subset(ds, [9, 0, 4])
    assert len(sub) == 3
    assert sub[0][1].item() == 9
    _, y = sub.__getitems__([2, 0])
    assert y.tolist() == [4, 9]
    assert indices_of(DataLoader(sub, batch_size=2)) == [[9, 0], [4]]
    # A subset of a per-item dataset falls back to a list of samples that gets collated.
    plain = Subset(ListDataset(5), [4, 1])
    assert indices_of(DataLoader(plain, batch_size=2)) == [[4, 1]]


def test_random_split_lengths_and_fractions():
    ds = make_dataset(10)
    a, b = random_split(ds, [7, 3], seed=0)
    ids = sorted(a.indices.tolist() + b.indices.tolist())
    assert (len(a), len(b)) == (7, 3) and ids == list(range(10))
    c, d, e = random_split(ds, [0.5, 0.3, 0.2], seed=0)
    assert (len(c), len(d), len(e)) == (5, 3, 2)
    f, g = random_split(make_dataset(11), [0.5, 0.5], seed=1)
    assert (len(f), len(g)) == (6, 5)  # the remainder goes to the first subset
    # Seeded splits are reproducible; unseeded ones follow manual_seed.
    np.testing.assert_array_equal(random_split(ds, [7, 3], seed=0)[0].indices, a.indices)
    manual_seed(3)
    first = random_split(ds, [5, 5])[0].indices
    manual_seed(3)
    np.testing.assert_array_equal(random_split(ds, [5, 5])[0].indices, first)
    with pytest.raises(ValueError, match="sum to 9, but the dataset has 10"):
        random_split(ds, [6, 3])


# ----------------------------------------------------------------------------- collate
def test_default_collate_tuples_of_arrays_and_ints():
    samples = [(np.full(3, i, dtype=np.float32), i) for i in range(4)]
    x, y = default_collate(samples)
    assert isinstance(x, Tensor) and x.shape == (4, 3) and x.dtype == np.float32
    assert isinstance(y, Tensor) and y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3]


def test_default_collate_nested_structures():
    Pair = namedtuple("Pair", "image label")
    batch = default_collate(
        [
            {"x": Tensor(np.zeros(2, dtype=np.float32)), "meta": Pair(0.5, np.int32(1)), "id": "a"},
            {"x": Tensor(np.ones(2, dtype=np.float32)), "meta": Pair(1.5, np.int32(2)), "id": "b"},
        ]
    )
    assert batch["x"].shape == (2, 2)
    assert isinstance(batch["meta"], Pair)
    assert batch["meta"].image.dtype == np.float32  # Python floats -> float32
    assert batch["meta"].label.dtype == np.int32  # NumPy scalars keep their dtype
    assert batch["id"] == ["a", "b"]
    lists = default_collate([[1, 2.0], [3, 4.0]])
    assert isinstance(lists, list) and lists[0].tolist() == [1, 3]


def test_default_collate_errors():
    with pytest.raises(ValueError, match="empty batch"):
        default_collate([])
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="object"):
        default_collate([object(), object()])


# ----------------------------------------------------------------------------- DataLoader
@pytest.mark.parametrize(
    "n, batch_size, drop_last, expected_sizes",
    [
        (10, 3, False, [3, 3, 3, 1]),
        (10, 3, True, [3, 3, 3]),
        (9, 3, False, [3, 3, 3]),
        (9, 3, True, [3, 3, 3]),
        (2, 5, False, [2]),
        (2, 5, True, []),
        (0, 4, False, []),
    ],
)
def test_batch_counts(n, batch_size, drop_last, expected_sizes):
    loader = DataLoader(make_dataset(n), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(expected_sizes)
    assert [len(ids) for ids in indices_of(loader)] == expected_sizes


def test_batches_are_tensors_float_inputs_int_labels():
    x, y = next(iter(DataLoader(make_dataset(), batch_size=4)))
    assert isinstance(x, Tensor) and isinstance(y, Tensor)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert not x.requires_grad
    np.testing.assert_array_equal(x.data, np.arange(12, dtype=np.float32).reshape(4, 3))


def test_unshuffled_order():
    assert indices_of(DataLoader(make_dataset(5), batch_size=2)) == [[0, 1], [2, 3], [4]]


def test_shuffle_covers_every_index_once():
    loader = DataLoader(make_dataset(103), batch_size=10, shuffle=True, seed=0)
    ids = [i for batch in indices_of(loader) for i in batch]
    assert sorted(ids) == list(range(103))
    assert ids != list(range(103))
    dropped = DataLoader(make_dataset(103), batch_size=10, shuffle=True, drop_last=True, seed=0)
    ids = [i for batch in indices_of(dropped) for i in batch]
    assert len(ids) == 100 and len(set(ids)) == 100


def test_seeded_shuffle_is_reproducible_and_differs_per_epoch():
    a = DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=7)
    epochs_a = [indices_of(a) for _ in range(3)]
    epochs_b = [indices_of(b) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    other_seed = DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=8)
    assert indices_of(other_seed) != epochs_a[0]
    # The seeded order ignores the global generator.
    manual_seed(0)
    c = DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=7)
    assert indices_of(c) == epochs_a[0]


def test_set_epoch_resumes_the_order_of_that_epoch():
    loader = DataLoader(make_dataset(30), batch_size=4, shuffle=True, seed=1)
    epochs = [indices_of(loader) for _ in range(4)]
    assert loader.epoch == 4
    resumed = DataLoader(make_dataset(30), batch_size=4, shuffle=True, seed=1)
    resumed.set_epoch(2)
    assert indices_of(resumed) == epochs[2]
    assert indices_of(resumed) == epochs[3]
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        resumed.set_epoch(-1)


def test_epoch_advances_when_iteration_starts():
    loader = DataLoader(make_dataset(30), batch_size=4, shuffle=True, seed=1)
    it = iter(loader)
    assert loader.epoch == 1
    next(it)  # abandoning an epoch half way still moves on to the next one
    second = indices_of(loader)
    loader.set_epoch(1)
    assert indices_of(loader) == second


def test_unseeded_shuffle_follows_manual_seed():
    manual_seed(11)
    first = indices_of(DataLoader(make_dataset(40), batch_size=8, shuffle=True))
    manual_seed(11)
    again = indices_of(DataLoader(make_dataset(40), batch_size=8, shuffle=True))
    assert first == again
    assert sorted(i for b in first for i in b) == list(range(40))


def test_per_item_dataset_is_collated():
    ds = ListDataset(5)
    batches = list(DataLoader(ds, batch_size=2))
    assert ds.calls == 5
    x, y = batches[0]
    assert x.shape == (2, 2) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [0, 1]
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_vectorised_fetch_uses_one_index_per_batch():
    class Counting(TensorDataset):
        calls = 0

        def __getitems__(self, indices):
            Counting.calls += 1
            return super().__getitems__(indices)

        def __getitem__(self, index):
            if np.isscalar(index):
                raise AssertionError("per-item access in the vectorised path")
            return super().__getitem__(index)

    ds = Counting(np.zeros((10, 2), dtype=np.float32), np.arange(10))
    assert len(list(DataLoader(ds, batch_size=4, shuffle=True, seed=0))) == 3
    assert Counting.calls == 3


def test_custom_collate_fn_gets_the_samples():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return [int(y.item()) for _, y in samples]

    loader = DataLoader(make_dataset(5), batch_size=2, collate_fn=collate)
    assert list(loader) == [[0, 1], [2, 3], [4]]
    assert seen == [2, 2, 1]


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(batch_size=0), ValueError, r"batch_size must be a positive integer, got 0"),
        (dict(batch_size=2.0), ValueError, r"batch_size must be a positive integer, got 2\.0"),
        (dict(batch_size=True), ValueError, r"batch_size"),
        (dict(shuffle="yes"), TypeError, r"shuffle must be a bool"),
        (dict(drop_last=1), TypeError, r"drop_last must be a bool"),
        (dict(seed=-1), ValueError, r"seed must be a non-negative integer or None, got -1"),
        (dict(collate_fn=3), TypeError, r"collate_fn must be callable"),
    ],
)
def test_dataloader_validates_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DataLoader(make_dataset(), **kwargs)


def test_dataloader_needs_a_map_style_dataset():
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(iter(range(3)))
