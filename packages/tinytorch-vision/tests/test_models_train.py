"""Models, the training recipe (exact resume) and the tinytorch.models entry points."""

import re
from importlib.metadata import entry_points

import numpy as np
import pytest

from tinytorch.core import Tensor, io, nn
from tinytorch.core.training import Callback
from tinytorch.vision import MLP, DeepCNN, SmallCNN, WideCNN, build_model
from tinytorch.vision.train import (
    TrainConfig,
    evaluate_checkpoint,
    evaluate_model,
    load_trained_model,
    train,
)


@pytest.mark.parametrize("cls", [SmallCNN, DeepCNN, WideCNN, MLP])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_models_build_for_any_shape(cls, shape):
    model = cls(shape, num_classes=7)
    x = Tensor(np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32))
    y = model(x)
    assert y.shape == (2, 7) and y.dtype == np.float32
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_wrong_input_shape_names_expected_and_actual():
    model = SmallCNN((3, 32, 32))
    with pytest.raises(ValueError, match=r"SmallCNN expected input \(N, 3, 32, 32\), got \(8, 1, 28, 28\)"):
        model(Tensor(np.zeros((8, 1, 28, 28), dtype=np.float32)))
    with pytest.raises(ValueError, match="input_shape"):
        SmallCNN((28, 28))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", (1, 28, 28))


def test_models_entry_points_return_model_and_example_input():
    eps = {ep.name: ep for ep in entry_points(group="tinytorch.models")}
    for name in ("small_cnn", "deep_cnn", "wide_cnn", "mlp"):
        assert name in eps, sorted(eps)
        model, example = eps[name].load()()
        assert isinstance(example, Tensor) and example.shape == (32, 3, 32, 32)
        assert model(example).shape == (32, 10)
    vision = [ep for ep in entry_points(group="tito.commands") if ep.name == "vision"]
    assert vision and vision[0].value == "tinytorch.vision.cli:vision"


class Interrupt(Callback):
    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_resume_continues_exactly_like_an_uninterrupted_run(fashion_root, tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, limit=160, seed=3)
    full = train(config, root=fashion_root, out=tmp_path / "full.safetensors", progress=False, threads=1)
    ckpt = tmp_path / "cut.safetensors"
    cut = train(TrainConfig(epochs=3, batch_size=64, limit=160, seed=3), root=fashion_root, out=ckpt,
                progress=False, threads=1, callbacks=[Interrupt(at_epoch=2)])
    assert cut.stop_reason == "interrupted" and cut.test_accuracy is None
    assert io.load_metadata(ckpt)["epoch"] == 1
    resumed = train(TrainConfig(), root=fashion_root, out=ckpt, resume=ckpt, progress=False, threads=1)
    assert resumed.config.epochs == 3 and resumed.epochs == 3
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert [r["loss"] for r in full.history["evals"]] == [r["loss"] for r in resumed.history["evals"]]
    assert full.test_accuracy == resumed.test_accuracy


def test_training_learns_and_evaluate_reports_per_class(fashion_root, tmp_path):
    out = tmp_path / "m.safetensors"
    result = train(TrainConfig(epochs=3, batch_size=50, lr=3e-3), root=fashion_root, out=out,
                   progress=False, threads=1)
    assert result.test_accuracy >= 0.5  # the tiny synthetic set has an easy, learnable signal
    model, info = load_trained_model(out)
    assert isinstance(model, SmallCNN) and info["config"]["dataset"] == "fashion-mnist"
    ev = evaluate_checkpoint(out, root=fashion_root)
    assert ev.accuracy == pytest.approx(result.test_accuracy)
    assert [r["name"] for r in ev.per_class][:2] == ["T-shirt/top", "Trouser"]
    assert sum(r["count"] for r in ev.per_class) == ev.n == 50


class _PredictsPixel(nn.Module):
    """Predicts the class written in the first pixel (x = k / 255): known predictions."""

    def forward(self, x):
        k = np.rint(x.data[:, 0, 0, 0] * 255).astype(int)
        return Tensor(np.eye(2, dtype=np.float32)[k] * 10)


def test_per_class_accuracy_counts_each_class_over_its_own_images():
    from tinytorch.vision.datasets import ImageDataset

    labels = np.array([0, 0, 1, 1, 1])
    preds = np.array([0, 1, 1, 1, 0])
    images = np.zeros((5, 1, 4, 4), np.uint8)
    images[:, 0, 0, 0] = preds
    data = ImageDataset(images, labels)
    data.classes = ["zero", "one"]
    result = evaluate_model(_PredictsPixel(), data)
    # class 0: 1 of its 2 images right; class 1: 2 of 3. Over all predictions it would be 2/5 and 3/5.
    assert [row["accuracy"] for row in result.per_class] == [0.5, pytest.approx(2 / 3)]
    assert [row["correct"] for row in result.per_class] == [1, 2]
    assert result.accuracy == pytest.approx(3 / 5)


@pytest.mark.parametrize("edit, message", [
    (lambda v: v.pop("config"), "'vision.config' is missing"),
    (lambda v: v.update(config=3), "'vision.config' is an int"),
    (lambda v: v["model"].pop("name"), "vision.model 'name' is missing"),
    (lambda v: v["config"].update(epochs=0), "epochs must be a positive integer"),
    (lambda v: v["config"].update(colour="red"), "unknown settings ['colour']"),
])
def test_checkpoint_with_broken_vision_metadata_names_the_file(fashion_root, tmp_path, edit, message):
    from tinytorch.vision.train import read_checkpoint_info

    ckpt = tmp_path / "m.safetensors"
    train(TrainConfig(epochs=1, batch_size=50, limit=50), root=fashion_root, out=ckpt, progress=False, threads=1)
    tensors, meta = io.load(ckpt)
    edit(meta["vision"])
    io.save(tensors, tmp_path / "bad.safetensors", metadata=meta)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        read_checkpoint_info(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(err.value)


def test_auto_threads_leave_a_held_core_and_say_so(fashion_root, monkeypatch):
    """Issue 22 §2: another program holds one of two cores (simulated probe); `threads="auto"`
    trains on one BLAS thread, says why, and the result records the count."""
    from tinytorch.core import threads
    from tinytorch.core.threads import get_num_threads, set_num_threads

    if get_num_threads() is None:
        pytest.skip("NumPy is not linked against OpenBLAS here")
    monkeypatch.delenv("TINYTORCH_RANK_THREADS", raising=False)
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(threads, "_cpus", lambda: 2)
    monkeypatch.setattr(threads, "measure_contention", lambda seconds: {"others_cores": 0.97})
    before = get_num_threads()
    notes: list[str] = []
    try:
        result = train(TrainConfig(epochs=1, batch_size=50, limit=100), root=fashion_root, progress=False,
                       threads="auto", echo=notes.append)
    finally:
        set_num_threads(before)
    assert result.threads == 1 and result.to_dict()["threads"] == 1
    assert any("1 BLAS thread of 2: other programs keep 0.97 cores busy" in n for n in notes), notes
    assert set(result.to_dict()["contention"]) >= {"others_cores", "contended", "load_1min"}
