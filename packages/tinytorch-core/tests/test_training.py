"""Trainer, callbacks, checkpoints, the spiral demo and bit-identical seeding."""

import numpy as np
import pytest

from tinytorch.core import io, manual_seed, nn, optim
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.demo import make_spiral, train_spiral
from tinytorch.core.training import (
    EarlyStopping,
    LRSchedulerCallback,
    ModelCheckpoint,
    NonFiniteLossError,
    Trainer,
    accuracy,
)


def blobs(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def make_trainer(callbacks=(), lr=0.05, seed=0, **kwargs):
    manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, opt, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                   callbacks=callbacks, progress=False, **kwargs)


def loader(seed=0, batch_size=16):
    x, y = blobs()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)


def test_spiral_demo_reaches_95_percent_and_is_bit_identical():
    a = train_spiral(progress=False)
    b = train_spiral(progress=False)
    assert a.train_accuracy >= 0.95
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert np.array_equal(pa, pb), name


def test_spiral_is_not_linearly_separable():
    x, y = make_spiral()
    # best linear classifier by least squares on one-hot targets stays far below the MLP
    xb = np.hstack([x, np.ones((len(x), 1))])
    w, *_ = np.linalg.lstsq(xb, np.eye(3)[y], rcond=None)
    assert np.mean((xb @ w).argmax(1) == y) < 0.7


def test_history_and_evaluate():
    trainer = make_trainer()
    history = trainer.fit(loader(), epochs=4, val_data=loader())
    assert history["epoch"] == [1, 2, 3, 4]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(history)
    assert history["loss"][-1] < history["loss"][0]
    result = trainer.evaluate(loader())
    assert result["accuracy"] > 0.9


def test_max_steps_stops_mid_epoch():
    trainer = make_trainer()
    trainer.fit(loader(), epochs=5, max_steps=3)
    assert trainer.global_step == 3 and trainer.stop_reason == "reached max_steps=3"


def test_early_stopping_restores_best_weights():
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=10.0, restore_best_weights=True)
    trainer = make_trainer(callbacks=[stopper])
    trainer.fit(loader(), epochs=10)
    assert trainer.epoch == 2  # epoch 1 sets the best, epoch 2 fails to improve by 10
    assert stopper.best_epoch == 1
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, stopper.best_state[k])


def test_lr_scheduler_callback_steps_per_epoch():
    trainer = make_trainer()
    sched = optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    trainer.callbacks.append(LRSchedulerCallback(sched))
    history = trainer.fit(loader(), epochs=3)
    np.testing.assert_allclose(history["lr"], [0.05, 0.025, 0.0125])


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    full = make_trainer()
    full.fit(loader(), epochs=4)

    first = make_trainer()
    first.fit(loader(), epochs=2)
    first.save_checkpoint(tmp_path / "ckpt.safetensors")
    resumed = make_trainer(seed=123)  # different init: everything must come from the file
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    assert resumed.epoch == 2
    resumed.fit(loader(), epochs=2)
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v)
    assert resumed.history["epoch"] == [1, 2, 3, 4]


def test_resume_restores_lr_schedule(tmp_path):
    def run(epochs, path=None, load=None):
        trainer = make_trainer()
        sched = optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
        trainer.callbacks.append(LRSchedulerCallback(sched))
        if load:
            trainer.load_checkpoint(load)
        trainer.fit(loader(), epochs=epochs)
        if path:
            trainer.save_checkpoint(path)
        return trainer

    full = run(3)
    run(1, path=tmp_path / "c.safetensors")
    resumed = run(2, load=tmp_path / "c.safetensors")
    assert resumed.history["lr"] == full.history["lr"] == [0.05, 0.025, 0.0125]
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v)


def test_nonfinite_loss_stops_before_step_and_keeps_checkpoint(tmp_path):
    path = tmp_path / "good.safetensors"
    trainer = make_trainer(callbacks=[ModelCheckpoint(path)])
    trainer.fit(loader(), epochs=1)
    saved = path.read_bytes()
    weights = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    x, y = blobs()
    x[5, 0] = np.nan
    bad = DataLoader(TensorDataset(x, y), batch_size=len(x))
    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 2"):
        trainer.fit(bad, epochs=1)
    assert path.read_bytes() == saved
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])
    stopping = make_trainer(on_nonfinite="stop")
    stopping.fit(bad, epochs=3)
    assert "loss became nan" in stopping.stop_reason and stopping.epoch == 0


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    io.save({"w": np.zeros(3, dtype=np.float32)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a TinyTorch training checkpoint"):
        make_trainer().load_checkpoint(tmp_path / "plain.safetensors")


def test_trainer_validates_arguments():
    with pytest.raises(TypeError, match="model must be a Module"):
        Trainer(object(), None, None)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        make_trainer().fit(loader(), epochs=-1)
