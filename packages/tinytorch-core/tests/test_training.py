"""The step-based Trainer: limits, stop reasons, time budget, weighted metrics, checkpoints, resume."""

import math

import numpy as np
import pytest

from tinytorch.core import Tensor, io, manual_seed, nn, optim
from tinytorch.core.callbacks import ProgressBar
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.demo import make_spiral, train_spiral
from tinytorch.core.optim.lr_scheduler import StepLR, WarmupCosineLR
from tinytorch.core.training import (
    EarlyStopping,
    History,
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
    kwargs.setdefault("progress", False)
    return Trainer(model, opt, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                   callbacks=callbacks, **kwargs)


def loader(seed=0, batch_size=16, n=128):
    x, y = blobs(n)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)


def test_spiral_demo_reaches_95_percent_and_is_bit_identical():
    a = train_spiral(progress=False)
    b = train_spiral(progress=False)
    assert a.train_accuracy >= 0.95
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert np.array_equal(pa, pb), name


def test_spiral_is_not_linearly_separable():
    x, y = make_spiral()
    xb = np.hstack([x, np.ones((len(x), 1))])
    w, *_ = np.linalg.lstsq(xb, np.eye(3)[y], rcond=None)
    assert np.mean((xb @ w).argmax(1) == y) < 0.7


def test_steps_and_evaluations_are_recorded():
    trainer = make_trainer()
    history = trainer.fit(loader(), epochs=4, val_data=loader())
    assert [r["step"] for r in history.steps] == list(range(1, 33))
    assert history["step"] == [8, 16, 24, 32] and history["epoch"] == [1, 2, 3, 4]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "samples_per_sec"} <= history.keys()
    assert history["loss"][-1] < history["loss"][0]
    assert history.stop_reason == trainer.stop_reason == "epochs" and trainer.epoch == 4
    assert trainer.evaluate(loader())["accuracy"] > 0.9


def test_limits_are_totals_and_each_has_its_stop_reason():
    trainer = make_trainer()
    trainer.fit(loader(), epochs=5, max_steps=3)
    assert trainer.global_step == 3 and trainer.stop_reason == "steps" and trainer.epoch == 0
    trainer.fit(loader(), max_steps=10)  # a total: 7 more steps
    assert trainer.global_step == 10 and trainer.epoch == 1 and trainer.batch_in_epoch == 2
    trainer.fit(loader(), epochs=2)  # finishes epoch 2: 6 more steps
    assert trainer.global_step == 16 and trainer.stop_reason == "epochs"
    assert trainer.fit(loader()).stop_reason == "epochs" and trainer.global_step == 16  # one epoch: done


def test_eval_every_counts_steps_and_the_last_step_is_evaluated():
    trainer = make_trainer()
    history = trainer.fit(loader(), max_steps=11, eval_every=4, val_data=loader(), eval_batches=2)
    assert history["step"] == [4, 8, 11]
    assert history["epoch"] == [0.5, 1.0, 1.375]
    # The final evaluation covers all of val_data, the periodic ones eval_batches=2 of its 8.
    full = trainer.evaluate(loader())
    assert history["val_loss"][-1] == pytest.approx(full["loss"], rel=1e-6)


def test_final_full_evaluation_completes_a_partial_one_at_the_same_step():
    trainer = make_trainer()
    history = trainer.fit(loader(), max_steps=12, eval_every=4, val_data=loader(), eval_batches=2)
    assert history["step"] == [4, 8, 12]  # one row for step 12, not two
    last = history.evals[-1]
    assert {"loss", "accuracy", "samples_per_sec", "val_loss"} <= set(last)
    assert last["val_loss"] == pytest.approx(trainer.evaluate(loader())["loss"], rel=1e-6)


def test_metrics_are_weighted_by_batch_size():
    # 100 samples in batches of 64 and 36: the loss is the batch index (0, 1), so the weighted
    # mean is 36/100 = 0.36 while an unweighted mean of batch values would give 0.5.
    x = np.zeros((100, 2), np.float32)
    y = np.zeros(100, np.int64)
    x[64:] = 1.0
    data = DataLoader(TensorDataset(x, y), batch_size=64)

    def loss_fn(out, targets):
        return (out * 0).sum() + Tensor(np.float32(out.data[0, 0] != 0))

    manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2, bias=False))
    model[0].weight.data[...] = 1.0
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.0), loss_fn,
                      metrics={"first": lambda out, t: float(out.data[0, 0])}, progress=False)
    history = trainer.fit(data, epochs=1, val_data=data)
    assert history["loss"] == [pytest.approx(0.36)] and history["val_loss"] == [pytest.approx(0.36)]
    assert history["val_first"] == [pytest.approx(0.36 * 2.0)]
    assert trainer.evaluate(data) == {"loss": pytest.approx(0.36), "first": pytest.approx(0.72)}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class SlowModel(nn.Module):
    """A linear model whose forward costs `cost` fake seconds in training and `eval_cost` in
    evaluation (default: `cost`), `factor` times more from the time `slow_from` on (the clock is
    the Trainer's)."""

    def __init__(self, clock, cost, slow_from=math.inf, factor=1, eval_cost=None):
        super().__init__()
        self.clock, self.cost, self.eval_cost = clock, cost, cost if eval_cost is None else eval_cost
        self.slow_from, self.factor = slow_from, factor
        self.net = nn.Linear(2, 2)

    def forward(self, x):
        cost = self.cost if self.training else self.eval_cost
        self.clock.now += cost * (self.factor if self.clock.now >= self.slow_from else 1)
        return self.net(x)


def test_time_budget_covers_the_final_evaluation_and_scales_the_schedule(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("tinytorch.core.training.time.perf_counter", clock)
    manual_seed(0)
    model = SlowModel(clock, cost=0.1)
    opt = optim.AdamW(model.parameters(), lr=1.0)
    sched = WarmupCosineLR(opt, total_steps=None, warmup_fraction=0.1, min_lr_ratio=0.1)
    val = loader(batch_size=32)  # 4 validation batches: an evaluation costs 0.4 s
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), scheduler=sched, progress=False)
    start = clock.now
    history = trainer.fit(loader(), time_budget=10.0, val_data=val, eval_every=25)
    elapsed = clock.now - start
    assert history.stop_reason == "budget"
    assert elapsed <= 10.0 and elapsed > 9.0  # all of the budget used, none overrun
    assert history.evals[-1]["step"] == trainer.global_step  # the final evaluation ran
    # The schedule was told the number of steps the budget allows: it ends at its floor,
    # after a warmup of 10% of the run.
    assert sched.total_steps == pytest.approx(trainer.global_step, abs=2)
    assert history.steps[-1]["lr"] == pytest.approx(0.1, abs=0.01)
    warm = sched.warmup
    assert warm == round(0.1 * sched.total_steps) and history.steps[0]["lr"] == 0.0
    assert history.steps[warm - 1]["lr"] == pytest.approx(warm / (warm + 1), rel=0.05)
    assert max(r["lr"] for r in history.steps) == pytest.approx(1.0, rel=0.01)


def test_time_budget_keeps_room_for_a_final_evaluation_over_all_validation_batches(monkeypatch):
    # Periodic evaluations read 1 batch (eval_batches=1), the final one all 10. Every forward
    # costs 1 fake second, so the final evaluation takes 10 s: with a budget of 20 s the last
    # step may start only while 1 s (the step) + 11 s (10 batches, 10% margin) still fit.
    # A reserve sized for eval_batches (1.1 s) would run steps until ~18 s and end at ~28 s.
    clock = FakeClock()
    monkeypatch.setattr("tinytorch.core.training.time.perf_counter", clock)
    manual_seed(0)
    model = SlowModel(clock, cost=1.0)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), progress=False)
    train = loader(batch_size=4)  # 32 steps in the epoch: the budget, not the data, ends the run
    val = DataLoader(TensorDataset(*blobs(40)), batch_size=4)  # 10 validation batches
    start = clock.now
    history = trainer.fit(train, epochs=1, time_budget=20.0, val_data=val, eval_batches=1)
    elapsed = clock.now - start
    assert history.stop_reason == "budget"
    assert elapsed <= 20.0
    # 2 s timing two validation batches, 7 steps (the 8th would start at 9 s: 9 + 1 + 11 > 20),
    # then the final evaluation over all 10 batches.
    assert trainer.global_step == 7 and elapsed == 2 + 7 + 10
    assert history.evals[-1]["step"] == 7 and "val_loss" in history.evals[-1]


def test_a_constant_schedule_is_not_what_the_scheduler_gives():
    trainer = make_trainer()
    sched = WarmupCosineLR(trainer.optimizer, total_steps=16, warmup_steps=4, min_lr_ratio=0.0)
    trainer.scheduler = sched
    history = trainer.fit(loader(), epochs=2)
    lrs = [r["lr"] for r in history.steps]
    # The closed form (not the scheduler's own factor()): a linear warmup to the base rate 0.05
    # over steps 0..3, then the cosine from 0.05 down towards 0 over the 12 remaining steps.
    warmup = [0.01, 0.02, 0.03, 0.04]
    cosine = [0.05 * (1 + math.cos(math.pi * k / 12)) / 2 for k in range(12)]
    np.testing.assert_allclose(lrs, warmup + cosine, rtol=1e-12)
    assert lrs[4] == 0.05 and lrs[10] == pytest.approx(0.025) and lrs[15] == pytest.approx(0.05 * 0.017037, rel=1e-4)


def test_epoch_scheduler_steps_per_epoch():
    trainer = make_trainer(scheduler_interval="epoch")
    trainer.scheduler = StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    history = trainer.fit(loader(), epochs=3)
    np.testing.assert_allclose(history["lr"], [0.025, 0.0125, 0.00625])
    assert {r["lr"] for r in history.steps[:8]} == {0.05}


def test_early_stopping_restores_best_weights():
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=10.0, restore_best_weights=True)
    trainer = make_trainer(callbacks=[stopper])
    history = trainer.fit(loader(), epochs=10)
    assert trainer.epoch == 2 and history.stop_reason == "early_stop"
    assert stopper.best_step == 8
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, stopper.best_state[k])


def test_early_stopping_tolerates_exactly_patience_evaluations_without_improvement():
    trainer = make_trainer()
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    for step, value in enumerate([1.0, 1.5, 1.2], start=1):  # best, then 2 without improvement
        stopper.on_eval_end(trainer, step, {"val_loss": value})
        assert trainer.stop_reason is None, f"stopped after evaluation {step}"
    assert stopper.wait == 2 and stopper.best == 1.0 and stopper.best_step == 1
    stopper.on_eval_end(trainer, 4, {"val_loss": 1.0})  # equal is no improvement: the third
    assert trainer.stop_reason == "early_stop" and "did not improve for 3 evaluations" in trainer.stop_detail


@pytest.mark.parametrize("first_steps", [8, 5])  # at an epoch boundary and mid-epoch
def test_checkpoint_resume_matches_uninterrupted_run(tmp_path, first_steps):
    def trainer_with_schedule(seed=0):
        t = make_trainer(seed=seed)
        t.scheduler = WarmupCosineLR(t.optimizer, total_steps=20, warmup_steps=3, min_lr_ratio=0.1)
        return t

    full = trainer_with_schedule()
    full.fit(loader(), max_steps=20, val_data=loader(), eval_every=4)

    first = trainer_with_schedule()
    first.fit(loader(), max_steps=first_steps, val_data=loader(), eval_every=4)
    first.save_checkpoint(tmp_path / "ckpt.safetensors")
    resumed = trainer_with_schedule(seed=123)  # other init: everything must come from the file
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    assert resumed.global_step == first_steps
    resumed.fit(loader(), max_steps=20, val_data=loader(), eval_every=4)
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v)
    assert [r["lr"] for r in resumed.history.steps] == [r["lr"] for r in full.history.steps]
    assert resumed.history["step"][-2:] == [16, 20]


def test_resume_restores_the_checkpoints_random_state_for_dropout(tmp_path):
    # Dropout draws from the global generator at every step, so a resumed run matches the
    # uninterrupted one only if the generator comes back from the checkpoint, whatever state
    # the process is in when it loads it.
    def dropout_trainer():
        manual_seed(99)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
        return Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), progress=False)

    full = dropout_trainer()
    full.fit(loader(), max_steps=12)
    first = dropout_trainer()
    first.fit(loader(), max_steps=5)
    first.save_checkpoint(tmp_path / "ckpt.safetensors")
    resumed = dropout_trainer()  # the generator is now at its initial state, not at step 5's
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    resumed.fit(loader(), max_steps=12)
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v, err_msg=k)
    assert [r["loss"] for r in resumed.history.steps] == [r["loss"] for r in full.history.steps]


def nan_gradient_loss(out, targets):
    # A finite loss whose gradient is nan: d/dx sqrt(x) at 0 is inf, times 0 is nan.
    return nn.CrossEntropyLoss()(out, targets) + ((out * 0).sum() ** 0.5) * 0


def test_nan_gradient_with_finite_loss_is_not_stepped_and_not_saved(tmp_path):
    path = tmp_path / "good.safetensors"
    trainer = make_trainer(callbacks=[ModelCheckpoint(path)])
    trainer.fit(loader(), epochs=1)
    saved = path.read_bytes()
    weights = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    trainer.loss_fn = nan_gradient_loss
    with pytest.raises(NonFiniteLossError, match="gradient norm became nan at epoch 2, step 9"):
        trainer.fit(loader(), epochs=3)
    assert path.read_bytes() == saved and trainer.stop_reason == "non_finite"
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])


def test_inf_gradient_with_finite_loss_is_not_stepped():
    # sqrt(b) at b = 0 is 0 (a finite loss) with gradient +inf: no nan anywhere, so a check for
    # nan alone would let SGD take the step and write -inf into the bias.
    trainer = make_trainer()
    bias = trainer.model[0].bias
    bias.data[...] = 0.0
    weights = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    trainer.loss_fn = lambda out, targets: nn.CrossEntropyLoss()(out, targets) + (bias ** 0.5).sum()
    with np.errstate(divide="ignore"), pytest.raises(NonFiniteLossError,
                                                     match="gradient norm became inf at epoch 1, step 1"):
        trainer.fit(loader(), epochs=1)
    assert trainer.stop_reason == "non_finite" and trainer.global_step == 0
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])


def test_nonfinite_loss_stop_mode_keeps_the_checkpoint(tmp_path):
    path = tmp_path / "good.safetensors"
    trainer = make_trainer(callbacks=[ModelCheckpoint(path)], on_nonfinite="stop")
    trainer.fit(loader(), epochs=1)
    saved = path.read_bytes()
    x, y = blobs()
    x[5, 0] = np.nan
    history = trainer.fit(DataLoader(TensorDataset(x, y), batch_size=len(x)), epochs=3)
    assert history.stop_reason == "non_finite" and "loss became nan" in history.stop_detail
    assert path.read_bytes() == saved and trainer.epoch == 1


def test_non_finite_weights_are_never_saved(tmp_path):
    path = tmp_path / "c.safetensors"
    trainer = make_trainer()
    trainer.save_checkpoint(path)
    saved = path.read_bytes()
    trainer.model[0].weight.data[0, 0] = np.inf
    with pytest.raises(FloatingPointError, match="'0.weight' has 1 non-finite"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == saved


def test_keyboard_interrupt_stops_with_a_reason():
    trainer = make_trainer()

    def interrupt(out, targets):
        if trainer.global_step == 3:
            raise KeyboardInterrupt
        return nn.CrossEntropyLoss()(out, targets)

    trainer.loss_fn = interrupt
    history = trainer.fit(loader(), epochs=2)
    assert history.stop_reason == "interrupted" and trainer.global_step == 3


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    io.save({"w": np.zeros(3, dtype=np.float32)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a TinyTorch training checkpoint"):
        make_trainer().load_checkpoint(tmp_path / "plain.safetensors")


def test_checkpoint_with_broken_metadata_names_the_file_and_entry(tmp_path):
    trainer = make_trainer()
    path = tmp_path / "c.safetensors"
    trainer.save_checkpoint(path)
    tensors, meta = io.load(path)
    for key, value, message in (("optimizer", None, "'optimizer' is null"),
                                ("rng_state", 3, "'rng_state' is an int"),
                                ("global_step", "x", "'global_step' is a str")):
        broken = dict(meta, **{key: value})
        io.save(tensors, tmp_path / "b.safetensors", metadata=broken)
        with pytest.raises(ValueError, match=f"b.safetensors: checkpoint metadata {message}"):
            make_trainer().load_checkpoint(tmp_path / "b.safetensors")
    del meta["history"]
    io.save(tensors, tmp_path / "b.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="metadata 'history' is missing"):
        make_trainer().load_checkpoint(tmp_path / "b.safetensors")


def test_progress_lines_show_each_evaluation(capsys):
    trainer = make_trainer(progress="lines")
    trainer.fit(loader(), epochs=2, val_data=loader())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("step 8/16  epoch 1.00  loss ") and "val_loss" in lines[0]
    assert ProgressBar.wanted("auto") == "lines"  # pytest's captured stdout is not a terminal


def test_trainer_validates_arguments():
    with pytest.raises(TypeError, match="model must be a Module"):
        Trainer(object(), None, None)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0"):
        make_trainer().fit(loader(), epochs=-1)
    for bad in (math.nan, math.inf, 0, -1):
        with pytest.raises(ValueError, match="time_budget must be a positive finite number"):
            make_trainer().fit(loader(), time_budget=bad)
    with pytest.raises(ValueError, match="progress must be"):
        make_trainer(progress="yes")
    with pytest.raises(ValueError, match="yields no batches"):
        make_trainer().fit(DataLoader(TensorDataset(np.zeros((3, 2))), batch_size=4, drop_last=True))


def run_slowing(monkeypatch, *, cost, slow_after, factor, val_samples, budget=20.0, eval_cost=None, **fit):
    """Train under a fake clock whose forwards become `factor` times slower `slow_after` fake
    seconds in; returns (trainer, history, elapsed fake seconds)."""
    clock = FakeClock()
    monkeypatch.setattr("tinytorch.core.training.time.perf_counter", clock)
    manual_seed(0)
    model = SlowModel(clock, cost=cost, slow_from=clock.now + slow_after, factor=factor, eval_cost=eval_cost)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), progress=False)
    val = DataLoader(TensorDataset(*blobs(val_samples)), batch_size=4)
    start = clock.now
    history = trainer.fit(loader(batch_size=4, n=1024), time_budget=budget, val_data=val, **fit)
    return trainer, history, clock.now - start


def test_time_budget_holds_when_the_machine_becomes_five_times_slower_halfway(monkeypatch):
    # 40 validation batches of 0.1 s: the final evaluation takes 4 s on the quiet machine and 20 s
    # once every forward is 5x slower (from 10 s of a 20 s budget on). Estimating from the quiet
    # steps would train until ~15.6 s and then evaluate for 20 s.
    budget = 20.0
    trainer, history, elapsed = run_slowing(monkeypatch, cost=0.1, slow_after=budget / 2 + 0.05, factor=5,
                                            val_samples=160, budget=budget)  # 40 validation batches
    assert history.stop_reason == "budget"
    assert elapsed <= budget * 1.05
    # It stopped at the first step boundary after the slowdown: 2 timed validation batches
    # (0.2 s) and 99 quiet steps reach 10.1 s, step 100 is the first slow one (0.5 s) ...
    assert trainer.global_step == 100
    # ... leaving 9.4 s, room for 17 slow batches (0.55 s each with the 10% margin).
    assert history.shortened_eval["batches"] == 17 and history.shortened_eval["of"] == 40
    assert elapsed == pytest.approx(0.2 + 9.9 + 0.5 + 17 * 0.5)
    assert "read 17 of 40 validation batches" in history.stop_detail and "5.0x slower" in history.stop_detail
    assert history.evals[-1]["step"] == 100 and "val_loss" in history.evals[-1]
    assert History.from_dict(history.to_dict()).shortened_eval == history.shortened_eval


def test_a_slowdown_with_room_left_stops_early_and_evaluates_everything(monkeypatch):
    # 10 validation batches (1 s quiet, 5 s slow) in a 20 s budget that slows at ~10 s: the
    # slower steps and evaluation are re-estimated, so training stops while the whole final
    # evaluation still fits (the quiet estimates would train until ~18.7 s and end at ~23.7 s).
    trainer, history, elapsed = run_slowing(monkeypatch, cost=0.1, slow_after=10.05, factor=5, val_samples=40)
    assert elapsed <= 20.0
    assert history.stop_reason == "budget" and history.shortened_eval is None
    # 0.2 s timing two validation batches, 99 quiet steps (to 10.1 s), 8 slow ones (to 14.1 s):
    # a 9th would end at 14.6 s, leaving less than the 5.5 s the slow evaluation needs.
    assert trainer.global_step == 107 and elapsed == pytest.approx(0.2 + 9.9 + 8 * 0.5 + 10 * 0.5)
    assert "validation batches" not in history.stop_detail


def test_after_a_slowdown_the_next_step_is_expected_to_be_as_slow(monkeypatch):
    # Steps of 1 s (evaluation batches 0.1 s) become 5 s at ~10 s of a 20 s budget. The average
    # step time after the first slow step is 1.8 s, which would let a 5 s step start at 15.1 s.
    trainer, history, elapsed = run_slowing(monkeypatch, cost=1.0, eval_cost=0.1, slow_after=10.05, factor=5,
                                            val_samples=4)  # 1 validation batch
    assert elapsed <= 20.0 and history.stop_reason == "budget"
    # 0.1 s timing the batch, 10 quiet steps, 1 slow one (to 15.1 s), the evaluation (0.5 s).
    assert trainer.global_step == 11 and elapsed == pytest.approx(0.1 + 10 + 5 + 0.5)
    assert history.shortened_eval is None


def test_an_evaluation_timed_on_the_busy_machine_is_not_scaled_again(monkeypatch):
    # As above, with a one-batch evaluation at step 100, the first slow step: it measures 0.5 s
    # a batch, the busy speed, so the whole final evaluation is expected to take 5.5 s (not 5x
    # that, which would stop training at once and shorten the final evaluation).
    trainer, history, elapsed = run_slowing(monkeypatch, cost=0.1, slow_after=10.05, factor=5, val_samples=40,
                                            eval_every=100, eval_batches=1)
    assert history.stop_reason == "budget" and history.shortened_eval is None
    # 10.1 s to step 99, step 100 and its evaluation (to 11.1 s), 6 more slow steps (to 14.1 s).
    assert trainer.global_step == 106 and elapsed == pytest.approx(0.2 + 9.9 + 0.5 + 0.5 + 6 * 0.5 + 10 * 0.5)


def test_a_slow_last_step_past_the_deadline_still_gets_a_one_batch_evaluation(monkeypatch):
    # The last step (started at 18.6 s, 1.4 s of room left) takes 2 s, not 0.1 s: no time is left,
    # and the final evaluation reads one batch (2 s), the least that gives the run a val_loss.
    trainer, history, elapsed = run_slowing(monkeypatch, cost=0.1, slow_after=18.55, factor=20, val_samples=40)
    assert trainer.global_step == 185 and elapsed == pytest.approx(0.2 + 18.4 + 2.0 + 2.0)
    assert history.shortened_eval["batches"] == 1 and history.shortened_eval["of"] == 10
    assert "20.0x slower" in history.stop_detail and "val_loss" in history.evals[-1]
