"""Structured shrinking of CNNs: vision's Conv2d, BatchNorm2d and pooling in core's prune."""

from __future__ import annotations

import copy

import numpy as np

from tinytorch.core import Tensor, manual_seed, nn, no_grad
from tinytorch.core.nn.utils import prune
from tinytorch.vision import SmallCNN
from tinytorch.vision.layers import BatchNorm2d, Conv2d


def _random_statistics(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm state, so a channel removed without its scale and shift would show."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.running_mean.data[...] = rng.normal(size=m.num_features)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, size=m.num_features)
            m.weight.data[...] = rng.normal(size=m.num_features)
            m.bias.data[...] = rng.normal(size=m.num_features)


def test_shrunk_cnn_equals_the_masked_cnn_and_is_smaller():
    manual_seed(0)
    model = SmallCNN((1, 12, 12), num_classes=5, widths=(6, 8), hidden=10)
    _random_statistics(model)
    x = Tensor(np.random.default_rng(1).normal(size=(3, 1, 12, 12)).astype(np.float32))
    masked = copy.deepcopy(model)
    prune.mask_groups(masked, x, amount=0.5)
    small = copy.deepcopy(masked)
    report = prune.shrink(small, x)
    assert [(r["group"], r["before"], r["after"]) for r in report] == [
        ("features.0", 6, 3), ("features.4", 8, 4), ("classifier.1", 10, 5)]
    conv1, bn1, conv2, bn2 = small.features[0], small.features[1], small.features[4], small.features[5]
    fc1 = small.classifier[1]
    assert conv1.weight.shape == (3, 1, 3, 3) and conv1.out_channels == 3
    assert bn1.running_mean.shape == (3,) and bn1.num_features == 3
    assert conv2.weight.shape == (4, 3, 3, 3) and conv2.in_channels == 3
    assert bn2.weight.shape == (4,) and fc1.weight.shape == (5, 4 * 3 * 3) and fc1.in_features == 36
    assert small.classifier[4].weight.shape == (5, 5)
    assert small.num_parameters() < model.num_parameters() / 2
    for m in (model, masked, small):
        m.eval()
    with no_grad():
        want, got = masked(x).numpy(), small(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with no_grad():
        assert np.abs(model(x).numpy() - want).max() > 1e-2


def test_the_flattened_columns_of_each_removed_channel_go():
    conv, fc = Conv2d(1, 3, 1, bias=False), nn.Linear(3 * 4, 1, bias=False)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc)
    conv.weight.data[...] = np.array([1.0, 0.1, 2.0]).reshape(3, 1, 1, 1)  # channel 1 is weakest
    fc.weight.data[...] = np.arange(12, dtype=np.float32)
    prune.shrink(model, Tensor(np.ones((1, 1, 2, 2), dtype=np.float32)), amount=1)
    assert fc.weight.numpy().tolist() == [[0, 1, 2, 3, 8, 9, 10, 11]]  # columns 4..7 were channel 1


def test_grouped_convolutions_are_left_alone():
    model = nn.Sequential(Conv2d(2, 4, 3, groups=2), nn.ReLU(), Conv2d(4, 4, 1))
    groups = prune.structured_groups(model, Tensor(np.zeros((1, 2, 5, 5), dtype=np.float32)))
    assert groups == []
