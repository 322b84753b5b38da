"""The image-classification recipe behind ``tito vision train`` and the examples.

Everything generic comes from core: ``Trainer`` (loop, progress bar, checkpoints with optimizer
and RNG state), ``DataLoader`` (seeded shuffling per epoch), ``AdamW``, ``warmup_cosine``,
``CrossEntropyLoss``. This module adds only what is specific to images: per-data-set
normalization, batch augmentation with a generator seeded per epoch (so a resumed run augments
exactly as an uninterrupted one), and a checkpoint callback that also stores the LR schedule and
the run's configuration (so ``evaluate`` and ``--resume`` can rebuild everything).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core import Tensor, io, manual_seed, nn, no_grad, optim
from tinytorch.core.data import DataLoader, Subset
from tinytorch.core.threads import auto_threads, set_num_threads
from tinytorch.core.training import Callback, LRSchedulerCallback, Trainer, accuracy

from .datasets import ImageDataset, get_dataset
from .models import ImageClassifier, build_model, model_from_config
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

# Per-channel mean and std of each training set (the usual published values).
NORMALIZATION = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
# Augmentation: (crop padding, horizontal flip). Digits must not be mirrored; clothes may.
# (crop padding or 0 for none, horizontal flip). Digits must not be mirrored; clothes may. On
# Fashion-MNIST a short run does best with flips only (crops slow the fitting of 28x28 shapes).
AUGMENTATION = {"fashion-mnist": (0, True), "mnist": (2, False), "cifar10": (4, True)}

CHECKPOINT_KIND = "tinytorch.vision.checkpoint"


@dataclass
class TrainConfig:
    """Settings of one run; the defaults are the verified Fashion-MNIST recipe.

    Args:
        dataset: fashion-mnist, mnist or cifar10.
        model: small_cnn, deep_cnn, wide_cnn or mlp (see ``build_model``).
        epochs: total training epochs.
        batch_size: images per optimizer step.
        lr: peak learning rate of AdamW (linear warmup, then cosine decay).
        weight_decay: AdamW weight decay of the weight matrices and kernels.
        warmup: epochs (a float) of linear warmup before the cosine decay.
        augment: random crops and/or flips, as ``AUGMENTATION`` sets per data set.
        seed: seed of the weights, the shuffling and the augmentation.
        limit: train on the first N images only (quick runs and tests), or None for all.

    >>> TrainConfig(dataset="mnist", epochs=1).validate()
    >>> TrainConfig(epochs=0).validate()
    Traceback (most recent call last):
    ...
    ValueError: TrainConfig: epochs must be a positive integer, got 0
    """

    dataset: str = "fashion-mnist"
    model: str = "small_cnn"
    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-2
    warmup: float = 0.3  # epochs of linear warmup before the cosine decay
    augment: bool = True
    seed: int = 0
    limit: int | None = None  # train on the first N images only (quick runs and tests)

    def validate(self) -> None:
        """Raise ``ValueError`` for an unknown data set or an out-of-range setting.

        >>> TrainConfig(lr=-1.0).validate()
        Traceback (most recent call last):
        ...
        ValueError: TrainConfig: lr must be > 0, got -1.0
        """
        get_dataset(self.dataset)
        build_model  # noqa: B018 - the model name is checked when the model is built
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"TrainConfig: limit must be a positive integer, got {self.limit!r}")


class AugmentedLoader:
    """A core ``DataLoader`` plus a batch transform drawn from a generator seeded by (seed, epoch).

    ``set_epoch`` (called by ``Trainer.fit``) fixes both the shuffling order and the augmentation
    of that epoch, which is what makes ``--resume`` bit-exact.

    Args:
        loader: the core ``DataLoader`` of (image, label) batches.
        transform: a batch transform ``t(x, rng) -> x`` on float (B, C, H, W) arrays, or None.
        seed: seed of the augmentation generator (combined with the epoch number).

    Shape: yields (B, C, H, W) image Tensors and (B,) label Tensors, as the loader does.

    >>> from tinytorch.core.data import TensorDataset
    >>> data = TensorDataset(np.zeros((6, 1, 8, 8), dtype=np.float32), np.arange(6))
    >>> loader = AugmentedLoader(DataLoader(data, batch_size=4), RandomHorizontalFlip(), seed=0)
    >>> [tuple(x.shape) for x, y in loader], len(loader)
    ([(4, 1, 8, 8), (2, 1, 8, 8)], 2)
    """

    def __init__(self, loader: DataLoader, transform=None, seed: int = 0):
        self.loader, self.transform, self.seed = loader, transform, seed

    def set_epoch(self, epoch: int) -> None:
        """Fix the shuffling order and the augmentation of ``epoch`` (0-based).

        Args:
            epoch: the epoch about to run.
        """
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.loader.epoch, 1])
        for x, y in self.loader:
            if self.transform is not None:
                x = Tensor(self.transform(x.data, rng))
            yield x, y


def make_loaders(config: TrainConfig, root: str | Path | None = None, download: bool = False
                 ) -> tuple[AugmentedLoader, DataLoader, ImageDataset, ImageDataset]:
    """(train loader, test loader, train set, test set) for ``config``.

    The training batches are shuffled (seeded), augmented as ``AUGMENTATION`` says and
    normalized; the test set is only normalized, in batches of 500.

    Args:
        config: the run's settings (data set, batch size, augmentation, seed, limit).
        root: the data root (default ``$TINYTORCH_DATA`` or ``~/.cache/tinytorch``).
        download: fetch missing data files.

    Returns:
        An ``AugmentedLoader``, a ``DataLoader`` and the two ``ImageDataset``s.

    >>> train_loader, test_loader, train_set, test_set = make_loaders(TrainConfig())  # doctest: +SKIP
    >>> len(train_set), len(test_set), len(train_loader)  # doctest: +SKIP
    (60000, 10000, 469)
    """
    cls = get_dataset(config.dataset)
    mean, std = NORMALIZATION[config.dataset]
    normalize = Normalize(mean, std)
    train_set = cls(root, train=True, download=download)
    test_set = cls(root, train=False, download=download, transform=normalize)
    train_data = train_set if config.limit is None else Subset(train_set, np.arange(min(config.limit, len(train_set))))
    pad, flip = AUGMENTATION[config.dataset]
    steps: list[Any] = []
    if config.augment:
        if pad:
            steps.append(RandomCrop(train_set.image_shape[1:], padding=pad))
        if flip:
            steps.append(RandomHorizontalFlip())
    steps.append(normalize)
    loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    train_loader = AugmentedLoader(loader, Compose(steps), seed=config.seed)
    test_loader = DataLoader(test_set, batch_size=500)
    return train_loader, test_loader, train_set, test_set


class VisionCheckpoint(Callback):
    """Save a full, atomic training checkpoint every epoch, with the run config.

    Core's checkpoint already holds the model, optimizer, LR schedule, epoch and RNG state.

    Args:
        path: the checkpoint file (overwritten atomically every epoch).
        config: the run's settings, stored so ``--resume`` can rebuild the run.
        model: the model, whose ``config`` is stored so ``evaluate`` can rebuild it.

    >>> from tinytorch.vision import SmallCNN
    >>> VisionCheckpoint("run.safetensors", TrainConfig(), SmallCNN()).metadata()["vision"]["model"]["name"]
    'SmallCNN'
    """

    def __init__(self, path: str | Path, config: TrainConfig, model: ImageClassifier):
        self.path, self.config, self.model = Path(path), config, model

    def metadata(self) -> dict[str, Any]:
        """The ``vision`` metadata stored in the checkpoint: kind, run config and model config."""
        return {"vision": {"kind": CHECKPOINT_KIND, "config": asdict(self.config),
                           "model": self.model.config}}

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        trainer.save_checkpoint(self.path, extra_metadata=self.metadata())


class AutoThreads(Callback):
    """Before every epoch, give OpenBLAS only the cores other processes leave free (see tinytorch.core.threads).

    Takes no arguments; ``train(..., threads="auto")`` adds it.

    >>> AutoThreads().threads  # 0 until the first epoch chooses
    0
    """

    def __init__(self):
        self.threads = 0

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        n = auto_threads(own=self.threads)
        if n != self.threads and set_num_threads(n):
            self.threads = n


class EpochPrinter(Callback):
    """One line per epoch (loss, accuracy, test accuracy, images/s) through ``echo``.

    Args:
        echo: called with each line, e.g. ``print`` or ``click.echo``.
        total: the total number of epochs, shown as ``epoch 3/6``.

    >>> printer = EpochPrinter(print, total=6)
    >>> printer.on_epoch_end(None, 3, {"loss": 0.3, "accuracy": 0.9, "val_accuracy": 0.88,
    ...                                "images_per_sec": 1500, "time": 40})
    epoch 3/6: loss 0.3000, train acc 90.00%, test acc 88.00%, 1,500 images/s, 40s
    """

    def __init__(self, echo, total: int):
        self.echo, self.total = echo, total

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self.echo(
            f"epoch {epoch}/{self.total}: loss {logs['loss']:.4f}, train acc {logs['accuracy']:.2%}, "
            f"test acc {logs['val_accuracy']:.2%}, {logs.get('images_per_sec', 0):,.0f} images/s, "
            f"{logs['time']:.0f}s"
        )


@dataclass
class TrainResult:
    """What `train` returns.

    Args:
        config: the run's settings (those of the checkpoint when resumed).
        history: per-epoch lists: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ...
        test_accuracy: the final test accuracy, in [0, 1].
        epochs: epochs completed in total (resumed runs included).
        seconds: wall time of this call's training.
        checkpoint: the checkpoint path, or None.
        model: the trained model (not in ``to_dict``).

    >>> result = TrainResult(TrainConfig(), {"loss": [0.5]}, 0.9, 1, 12.0, None)
    >>> result.to_dict()["test_accuracy"], result.to_dict()["config"]["dataset"]
    (0.9, 'fashion-mnist')
    """

    config: TrainConfig
    history: dict[str, list]
    test_accuracy: float
    epochs: int
    seconds: float
    checkpoint: str | None
    model: ImageClassifier = field(repr=False, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "test_accuracy": self.test_accuracy, "epochs": self.epochs,
                "seconds": self.seconds, "checkpoint": self.checkpoint,
                "history": {k: v for k, v in self.history.items()}}


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The ``vision`` metadata of a checkpoint written by `train` (config and model).

    Args:
        path: a safetensors checkpoint.

    Returns:
        ``{"kind": ..., "config": TrainConfig fields, "model": the model's config}``.

    Raises:
        ValueError: the file is not a tinytorch-vision training checkpoint.

    >>> read_checkpoint_info("vision.safetensors")["config"]["dataset"]  # doctest: +SKIP
    'fashion-mnist'
    """
    meta = io.load_metadata(path)
    info = meta.get("vision")
    if not isinstance(info, dict) or info.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not a tinytorch-vision training checkpoint (no 'vision' metadata)")
    return info


def train(config: TrainConfig, root: str | Path | None = None, out: str | Path | None = None,
          resume: str | Path | None = None, download: bool = False, progress: bool = True,
          echo=None, threads: int | str | None = "auto", callbacks: list[Callback] = ()) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``; checkpoint to ``out`` after every epoch.

    With ``resume``, the run's settings, weights, optimizer, schedule, RNG and epoch come from the
    checkpoint and training continues to ``config.epochs`` total: the result is the same as an
    uninterrupted run with the same seed.

    Args:
        config: the run's settings (ignored with ``resume``: the checkpoint's are used).
        root: the data root (default ``$TINYTORCH_DATA`` or ``~/.cache/tinytorch``).
        out: checkpoint written atomically after every epoch (None: no checkpoint).
        resume: a checkpoint of an earlier run to continue.
        download: fetch missing data files.
        progress: show core's progress bar.
        echo: called with one summary line per epoch (e.g. ``click.echo``), or None.
        threads: OpenBLAS threads, an int, ``"auto"`` (re-chosen every epoch from the cores that
            other processes leave free) or None (leave the BLAS default).
        callbacks: extra core ``Callback``s (run after the built-in ones).

    Returns:
        A `TrainResult` with the history, final test accuracy and the trained model.

    A run on a tiny fake MNIST (8 training and 4 test images) shows the calls:

    >>> import tempfile
    >>> from tinytorch.vision import write_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = Path(tmp) / "mnist"
    ...     folder.mkdir()
    ...     for split, n in (("train", 8), ("t10k", 4)):
    ...         write_idx(folder / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
    ...         write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    ...     result = train(TrainConfig(dataset="mnist", epochs=1, batch_size=4), root=tmp,
    ...                    progress=False, threads=None)
    >>> result.epochs, len(result.history["loss"]), 0 <= result.test_accuracy <= 1
    (1, 1, True)
    """
    if resume is not None:
        info = read_checkpoint_info(resume)
        config = TrainConfig(**info["config"])
    config.validate()
    train_loader, test_loader, train_set, _ = make_loaders(config, root, download)
    manual_seed(config.seed)
    model = build_model(config.model, train_set.image_shape, len(train_set.classes))
    # No weight decay on BatchNorm scales and biases (the usual practice; decaying them only hurts).
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = len(train_loader)
    scheduler = optim.lr_scheduler.warmup_cosine(
        optimizer, warmup_steps=int(config.warmup * steps_per_epoch), total_steps=config.epochs * steps_per_epoch)
    extra, callbacks = list(callbacks), [LRSchedulerCallback(scheduler, interval="step")]
    if threads == "auto":
        callbacks.append(AutoThreads())
    elif threads is not None:
        set_num_threads(int(threads))
    if out is not None:
        callbacks.append(VisionCheckpoint(out, config, model))
    if echo is not None and not progress:  # the progress bar prints its own line per epoch
        callbacks.append(EpochPrinter(echo, config.epochs))
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                      callbacks=callbacks + extra, progress=progress, unit="images")
    if resume is not None:
        trainer.load_checkpoint(resume)
        if echo is not None:
            echo(f"resumed from {resume} after epoch {trainer.epoch} of {config.epochs}")
    start = time.perf_counter()
    history = trainer.fit(train_loader, epochs=max(0, config.epochs - trainer.epoch), val_data=test_loader)
    seconds = time.perf_counter() - start
    if "val_accuracy" in history and history["val_accuracy"]:
        test_acc = history["val_accuracy"][-1]
    else:
        test_acc = trainer.evaluate(test_loader)["accuracy"]
    return TrainResult(config, history.to_dict(), float(test_acc), trainer.epoch, seconds,
                       str(out) if out is not None else None, model)


@dataclass
class EvalResult:
    """What `evaluate_model` returns.

    Args:
        dataset: the data set's display name.
        accuracy: the share of correct predictions, in [0, 1].
        loss: the mean cross-entropy.
        per_class: one dict per class: ``class``, ``name``, ``count``, ``correct``,
            ``accuracy``.
        n: the number of images.

    >>> EvalResult("MNIST", 0.5, 0.69, [], 2).to_dict()
    {'dataset': 'MNIST', 'accuracy': 0.5, 'loss': 0.69, 'per_class': [], 'n': 2}
    """

    dataset: str
    accuracy: float
    loss: float
    per_class: list[dict[str, Any]]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_model(model: ImageClassifier, dataset: ImageDataset, batch_size: int = 500) -> EvalResult:
    """Accuracy, mean loss and per-class accuracy of ``model`` on ``dataset`` (eval mode).

    Args:
        model: an image classifier, (B, C, H, W) -> (B, num_classes).
        dataset: an ``ImageDataset`` (with its ``classes``).
        batch_size: images per forward pass.

    Returns:
        An `EvalResult`. The model's train/eval mode is restored afterwards.

    >>> from tinytorch.vision import SmallCNN
    >>> from tinytorch.vision.datasets import ImageDataset
    >>> data = ImageDataset(np.zeros((4, 1, 28, 28), dtype=np.uint8), [0, 1, 0, 1])
    >>> data.classes = ["zero", "one"]
    >>> result = evaluate_model(SmallCNN((1, 28, 28), num_classes=2), data)
    >>> result.n, [row["count"] for row in result.per_class]
    (4, [2, 2])
    """
    loader = DataLoader(dataset, batch_size=batch_size)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    preds, total_loss = [], 0.0
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for x, y in loader:
                out = model(x)
                total_loss += float(loss_fn(out, y).item())
                preds.append(out.data.argmax(axis=1))
    finally:
        model.train(was_training)
    pred = np.concatenate(preds)
    y = dataset.targets
    per_class = []
    for k, name in enumerate(dataset.classes):
        mask = y == k
        per_class.append({"class": k, "name": name, "count": int(mask.sum()),
                          "correct": int((pred[mask] == k).sum()),
                          "accuracy": float((pred[mask] == k).mean()) if mask.any() else float("nan")})
    return EvalResult(getattr(dataset, "display_name", type(dataset).__name__), float((pred == y).mean()),
                      total_loss / len(y), per_class, len(y))


def load_trained_model(checkpoint: str | Path) -> tuple[ImageClassifier, dict[str, Any]]:
    """The model stored in a `train` checkpoint (weights loaded) and its vision metadata.

    Args:
        checkpoint: a checkpoint written by `train`.

    Returns:
        The model (rebuilt from its config, weights loaded) and the ``vision`` metadata.

    >>> model, info = load_trained_model("vision.safetensors")  # doctest: +SKIP
    >>> type(model).__name__, info["config"]["dataset"]  # doctest: +SKIP
    ('SmallCNN', 'fashion-mnist')
    """
    info = read_checkpoint_info(checkpoint)
    tensors, _ = io.load(checkpoint)
    model = model_from_config(info["model"])
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    return model, info


def evaluate_checkpoint(checkpoint: str | Path, root: str | Path | None = None,
                        download: bool = False) -> EvalResult:
    """Evaluate a `train` checkpoint on its data set's test split.

    Args:
        checkpoint: a checkpoint written by `train`.
        root: the data root (default ``$TINYTORCH_DATA`` or ``~/.cache/tinytorch``).
        download: fetch missing data files.

    Returns:
        An `EvalResult` on the normalized test split.

    >>> evaluate_checkpoint("vision.safetensors").accuracy  # doctest: +SKIP
    0.9263
    """
    model, info = load_trained_model(checkpoint)
    name = info["config"]["dataset"]
    mean, std = NORMALIZATION[name]
    test_set = get_dataset(name)(root, train=False, download=download, transform=Normalize(mean, std))
    return evaluate_model(model, test_set)
