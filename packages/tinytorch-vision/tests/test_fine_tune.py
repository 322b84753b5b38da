"""vision's fine_tune: the recipe's data and optimizer, a warmup + cosine schedule peaking at
FINE_TUNE_LR_SCALE x the recipe's peak, masks held, the held-out split left alone."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import manual_seed
from tinytorch.core.callbacks import Callback
from tinytorch.core.nn.utils import prune
from tinytorch.vision.models import build_model
from tinytorch.vision.train import FINE_TUNE_LR_SCALE, TrainConfig, fine_tune, make_loaders


class Rates(Callback):
    def __init__(self):
        self.lrs = []

    def on_step_end(self, trainer, step, logs):
        self.lrs.append(logs["lr"])


def test_the_schedule_warms_up_to_the_scaled_peak_and_decays_to_zero(fashion_root):
    config = TrainConfig(batch_size=20, lr=3e-3)
    manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10, hidden=(16,))
    prune.l1_unstructured(model.classifier[1], "weight", amount=0.5)
    zeros = model.classifier[1].weight_mask.numpy() == 0
    rates = Rates()
    result = fine_tune(model, config, fashion_root, steps=20, callbacks=[rates])
    assert result["steps"] == 20 and result["warmup_steps"] == 2
    peak = config.lr * FINE_TUNE_LR_SCALE
    assert result["lr"] == pytest.approx(peak) and max(rates.lrs) == pytest.approx(peak)
    top = int(np.argmax(rates.lrs))
    assert top == 2 and all(a > b for a, b in zip(rates.lrs[top:], rates.lrs[top + 1:]))  # cosine, falling
    assert rates.lrs[-1] < 0.01 * peak
    assert np.all(model.classifier[1].weight.numpy()[zeros] == 0) and not model.training


def test_the_fine_tuning_seed_moves_the_batches_not_the_held_out_split(fashion_root):
    config = TrainConfig(batch_size=20, val_fraction=0.2)
    train0, val0, *_ = make_loaders(config, fashion_root)
    train5, val5, *_ = make_loaders(config, fashion_root, shuffle_seed=5)
    np.testing.assert_array_equal(val0.dataset.data, val5.dataset.data)
    first0, first5 = next(iter(train0))[1].numpy(), next(iter(train5))[1].numpy()
    assert not np.array_equal(first0, first5)


def test_bad_settings_are_refused(fashion_root):
    model = build_model("mlp", (1, 28, 28), 10, hidden=(8,))
    with pytest.raises(ValueError, match="give epochs or steps, not both"):
        fine_tune(model, TrainConfig(), fashion_root, epochs=1, steps=3)
    with pytest.raises(ValueError, match=r"warmup must be a share of the steps in \[0, 1\), got 1.5"):
        fine_tune(model, TrainConfig(), fashion_root, steps=3, warmup=1.5)
