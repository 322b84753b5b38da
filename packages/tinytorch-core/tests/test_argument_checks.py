"""Core's entry points check sizes, counts and rates through ``tinytorch.core.checks``: a bool is
never a count or a rate, a NumPy integer is one, and what a check accepts is stored as a Python
number (a scheduler's state must stay JSON).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinytorch.core import Tensor, manual_seed, nn, set_num_threads
from tinytorch.core.callbacks import EarlyStopping
from tinytorch.core.checks import out_of_range
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.optim import SGD, clip_grad_norm_, lr_scheduler
from tinytorch.core.training import Trainer


def _sgd() -> SGD:
    return SGD([Tensor(np.zeros(2, np.float32), requires_grad=True)], lr=0.1)


@pytest.mark.parametrize("make, argument", [
    (lambda: nn.Linear(4, True), "out_features"),
    (lambda: nn.BatchNorm1d(True), "num_features"),
    (lambda: nn.BatchNorm1d(4, eps=True), "eps"),
    (lambda: nn.GroupNorm(True, 4), "num_groups"),
    (lambda: DataLoader(TensorDataset(np.zeros((4, 2))), batch_size=True), "batch_size"),
    (lambda: manual_seed(True), "seed"),
    (lambda: set_num_threads(True), "n must"),
    (lambda: EarlyStopping(patience=False), "patience"),
    (lambda: lr_scheduler.StepLR(_sgd(), step_size=True), "step_size"),
    (lambda: lr_scheduler.StepLR(_sgd(), step_size=2, gamma=True), "gamma"),
    (lambda: clip_grad_norm_([], max_norm=True), "max_norm"),
    (lambda: Trainer(nn.Linear(2, 1), _sgd(), lambda out, y: out.sum()).fit([], epochs=True), "epochs"),
])
def test_a_bool_is_refused_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"{argument}.*True|{argument}.*False"):
        make()


def test_numpy_integers_are_counts_and_stored_as_python_ints():
    scheduler = lr_scheduler.StepLR(_sgd(), step_size=np.int64(2), gamma=np.float32(0.5))
    state = scheduler.state_dict()
    assert type(state["step_size"]) is int and type(state["gamma"]) is float
    json.dumps(state)  # a checkpoint stores it as JSON
    assert type(EarlyStopping(patience=np.int32(3)).patience) is int
    milestones = lr_scheduler.MultiStepLR(_sgd(), milestones=(np.int64(1), np.int64(3))).milestones
    assert milestones == [1, 3] and all(type(m) is int for m in milestones)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_out_of_range_finds_negative_indices_of_every_signed_width(dtype):
    # -1 seen as unsigned is the largest value of its width: the one-reduction check relies on it
    assert out_of_range(np.array([0, 2, -1, 3], dtype=dtype), 4) == -1
    assert out_of_range(np.array([np.iinfo(dtype).min, 0], dtype=dtype), 4) == np.iinfo(dtype).min
    assert out_of_range(np.array([[1, 2], [3, 0]], dtype=dtype), 4) is None


def test_out_of_range_reports_the_first_bad_entry_of_any_layout():
    grid = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert out_of_range(grid, 12) is None
    assert out_of_range(grid, 11) == 11  # the upper bound is exclusive
    assert out_of_range(grid.T[::-1], 5) == 7  # a strided view, read in its own C order: 3, 7, ...
    assert out_of_range(np.array([7, 9, 8], dtype=np.uint64), 8) == 9
    assert out_of_range(np.array(5), 5) == 5  # 0-d
    assert out_of_range(np.zeros((0, 3), dtype=np.int64), 0) is None  # nothing to look up
    assert out_of_range(np.array([0]), 0) == 0  # an empty table has no valid index
