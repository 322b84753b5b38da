"""The image-classification recipe behind ``tito vision train`` and the examples: a configuration
of core's ``Trainer``.

Everything generic comes from core: the ``Trainer`` (loop, progress display, stop reasons,
checkpoints with optimizer, schedule and RNG state), ``DataLoader`` (seeded shuffling per epoch),
``AdamW`` with ``weight_decay_groups``, ``WarmupCosineLR``, ``CrossEntropyLoss``. This module adds
only what is specific to images: per-data-set normalization, batch augmentation with a generator
seeded per epoch (so a resumed run augments exactly as an uninterrupted one), the run's
configuration in the checkpoint (so ``evaluate`` and ``--resume`` can rebuild everything), and
per-class accuracy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core import Tensor, io, manual_seed, nn, no_grad, optim
from tinytorch.core.callbacks import Callback, ModelCheckpoint
from tinytorch.core.checkpoint import MODEL_PREFIX, load_model_state
from tinytorch.core.data import DataLoader, Subset
from tinytorch.core.optim.lr_scheduler import WarmupCosineLR
from tinytorch.core.quantization import QUANTIZATION_KEY, load_quantized, save_quantized
from tinytorch.core.quantization.serialization import quantized_layers
from tinytorch.core.threads import choose_threads, get_num_threads, set_num_threads
from tinytorch.core.training import Trainer, accuracy

from .datasets import ImageDataset, check_train_test, get_dataset
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
#: The layout of a checkpoint's ``vision`` metadata. 1: ``config`` (the run) and ``model`` (the
#: model's ``config``, which names every layer size, so a structurally pruned model rebuilds at
#: its own size). Files written before the number was recorded are format 1.
FORMAT_VERSION = 1


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
        val_fraction: hold out this share of the training images (default 10%, as the language
            trainer does) as a validation split, evaluated every epoch; the test set is evaluated
            once, at the end, so it never guides a choice. With 0 the test set is evaluated
            every epoch instead (as ``test_accuracy`` rows).

    >>> TrainConfig(dataset="mnist", epochs=1).validate()
    >>> TrainConfig(epochs=0).validate()
    Traceback (most recent call last):
    ...
    ValueError: TrainConfig: epochs must be a positive integer, got 0
    """

    dataset: str = "fashion-mnist"
    model: str = "small_cnn"
    epochs: int = 10  # Fashion-MNIST, seed 0: 92.85% test (val_fraction 0.1); 93.35% with val_fraction 0
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-2
    warmup: float = 0.3  # epochs of linear warmup before the cosine decay
    augment: bool = True
    seed: int = 0
    limit: int | None = None  # train on the first N images only (quick runs and tests)
    val_fraction: float = 0.1

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
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"TrainConfig: val_fraction must be in [0, 1), got {self.val_fraction!r}")


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
        self.rank = 0  # ranks of a distributed run draw different augmentations

    def shard(self, num_replicas: int, rank: int, training: bool = True) -> AugmentedLoader:
        """This loader's share for ``rank`` of ``num_replicas`` (core ``DataLoader.shard``), augmented.

        Args:
            num_replicas: the number of ranks.
            rank: this rank; ranks other than 0 draw their own augmentation stream.
            training: split each batch over the ranks (else: every N-th sample).

        >>> from tinytorch.core.data import TensorDataset
        >>> data = TensorDataset(np.zeros((8, 1, 4, 4), dtype=np.float32), np.arange(8))
        >>> [y.tolist() for _, y in AugmentedLoader(DataLoader(data, batch_size=4)).shard(2, rank=1)]
        [[1, 3], [5, 7]]
        """
        sharded = AugmentedLoader(self.loader.shard(num_replicas, rank, training), self.transform, self.seed)
        sharded.rank = rank
        return sharded

    def set_epoch(self, epoch: int) -> None:
        """Fix the shuffling order and the augmentation of ``epoch`` (0-based).

        Args:
            epoch: the epoch about to run.
        """
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.loader.epoch, 1] + ([self.rank] if self.rank else []))
        for x, y in self.loader:
            if self.transform is not None:
                x = Tensor(self.transform(x.data, rng))
            yield x, y


def make_loaders(config: TrainConfig, root: str | Path | None = None, download: bool = False,
                 shuffle_seed: int | None = None
                 ) -> tuple[AugmentedLoader, DataLoader | None, DataLoader, ImageDataset, ImageDataset]:
    """(train loader, validation loader or None, test loader, train set, test set) for ``config``.

    The training batches are shuffled (seeded), augmented as ``AUGMENTATION`` says and
    normalized; the validation split (``config.val_fraction`` of the training images, drawn with
    the run's random seed) and the test set are only normalized, in batches of 500.

    Args:
        config: the run's settings (data set, batch size, augmentation, seed, limit, val split).
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).
        download: fetch missing data files.
        shuffle_seed: seed of the training batches' order and augmentation (default
            ``config.seed``; the validation split is always drawn with ``config.seed``).

    Returns:
        An ``AugmentedLoader``, a ``DataLoader`` or None, a ``DataLoader`` and the two ``ImageDataset``s.

    Raises:
        ValueError: a split is empty or the train and test images differ in shape (before any
            training), naming the files.

    >>> train_loader, val_loader, test_loader, train_set, test_set = make_loaders(TrainConfig())  # doctest: +SKIP
    >>> len(train_set), len(test_set), len(train_loader), val_loader  # doctest: +SKIP
    (60000, 10000, 469, None)
    """
    cls = get_dataset(config.dataset)
    mean, std = NORMALIZATION[config.dataset]
    normalize = Normalize(mean, std)
    train_set = cls(root, train=True, download=download)
    test_set = cls(root, train=False, download=download, transform=normalize)
    check_train_test(train_set, test_set)
    indices = np.arange(min(config.limit or len(train_set), len(train_set)))
    val_loader = None
    if config.val_fraction > 0:
        order = np.random.default_rng([config.seed, 2]).permutation(indices)
        n_val = max(1, int(round(len(order) * config.val_fraction)))
        indices, val_indices = np.sort(order[n_val:]), np.sort(order[:n_val])
        val_set = ImageDataset(train_set.data[val_indices], train_set.targets[val_indices], transform=normalize)
        val_loader = DataLoader(val_set, batch_size=500)
    train_data = train_set if len(indices) == len(train_set) else Subset(train_set, indices)
    pad, flip = AUGMENTATION[config.dataset]
    steps: list[Any] = []
    if config.augment:
        if pad:
            steps.append(RandomCrop(train_set.image_shape[1:], padding=pad))
        if flip:
            steps.append(RandomHorizontalFlip())
    steps.append(normalize)
    seed = config.seed if shuffle_seed is None else shuffle_seed
    loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, seed=seed)
    train_loader = AugmentedLoader(loader, Compose(steps), seed=seed)
    test_loader = DataLoader(test_set, batch_size=500)
    return train_loader, val_loader, test_loader, train_set, test_set


def checkpoint_metadata(config: TrainConfig, model: ImageClassifier) -> dict[str, Any]:
    """The ``vision`` entry a checkpoint carries: its kind, the run's config and the model's config.

    Args:
        config: the run's settings (``--resume`` rebuilds the run from them).
        model: the model, whose ``config`` lets ``evaluate`` rebuild it.

    >>> from tinytorch.vision import SmallCNN
    >>> checkpoint_metadata(TrainConfig(), SmallCNN())["vision"]["model"]["name"]
    'SmallCNN'
    """
    return {"vision": {"kind": CHECKPOINT_KIND, "format_version": FORMAT_VERSION, "config": asdict(config),
                       "model": model.config}}


@dataclass
class TrainResult:
    """What `train` returns.

    Args:
        config: the run's settings (those of the checkpoint when resumed).
        history: core's ``History.to_dict()``: ``steps`` and ``evals`` rows (per epoch: ``loss``,
            ``accuracy``, ``test_accuracy`` or ``val_accuracy``, ...), ``stop_reason``.
        test_accuracy: the test accuracy at the end, in [0, 1] (None if training stopped early
            on a non-finite value or Ctrl-C before any evaluation).
        epochs: epochs completed in total (resumed runs included).
        seconds: wall time of this call's training.
        checkpoint: the checkpoint path, or None.
        stop_reason: why training ended (core's ``STOP_REASONS``).
        val_accuracy: the last validation accuracy, when there is a validation split.
        model: the trained model (not in ``to_dict``).
        threads: the BLAS threads the run used (None: unknown, OpenBLAS not found); the same
            seed gives the same weights at the same thread count.
        contention: the `~tinytorch.core.contention.ContentionProbe` result of the interval the
            last ``images_per_sec`` figure covers (None before any evaluation).

    >>> result = TrainResult(TrainConfig(), {"evals": []}, 0.9, 1, 12.0, None, "epochs")
    >>> result.to_dict()["test_accuracy"], result.to_dict()["config"]["dataset"]
    (0.9, 'fashion-mnist')
    """

    config: TrainConfig
    history: dict[str, Any]
    test_accuracy: float | None
    epochs: int
    seconds: float
    checkpoint: str | None
    stop_reason: str | None = None
    val_accuracy: float | None = None
    model: ImageClassifier = field(repr=False, default=None)
    threads: int | None = None
    contention: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "test_accuracy": self.test_accuracy,
                "val_accuracy": self.val_accuracy, "epochs": self.epochs, "seconds": self.seconds,
                "checkpoint": self.checkpoint, "stop_reason": self.stop_reason, "threads": self.threads,
                "contention": self.contention, "history": self.history}


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The ``vision`` metadata of a checkpoint written by `train` (config and model).

    Args:
        path: a safetensors checkpoint.

    Returns:
        ``{"kind": ..., "config": TrainConfig fields, "model": the model's config}``.

    Raises:
        ValueError: the file is not a tinytorch-vision training checkpoint, or was written in
            another format version than ``FORMAT_VERSION``.

    >>> read_checkpoint_info("vision.safetensors")["config"]["dataset"]  # doctest: +SKIP
    'fashion-mnist'
    """
    meta = io.load_metadata(path)
    info = meta.get("vision")
    if not isinstance(info, dict) or info.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not a tinytorch-vision training checkpoint (no 'vision' metadata)")
    version = info.get("format_version", 1)
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} is a tinytorch-vision checkpoint of format version {version!r}; this "
                         f"version of tinytorch-vision reads format {FORMAT_VERSION}")
    config = io.require(meta, "vision.config", dict, path)
    model = io.require(meta, "vision.model", dict, path)
    for key, kind in (("name", str), ("input_shape", list), ("num_classes", int)):
        io.require(model, key, kind, path, what="checkpoint metadata vision.model")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"{path}: checkpoint metadata vision.config has unknown settings {unknown}")
    try:
        TrainConfig(**config).validate()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: checkpoint metadata vision.config is invalid: {e}") from None
    return info


def train(config: TrainConfig, root: str | Path | None = None, out: str | Path | None = None,
          resume: str | Path | None = None, download: bool = False, progress: bool | str = "auto",
          echo=None, threads: int | str | None = "auto", callbacks: list[Callback] = (),
          resume_epochs: int | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``; checkpoint to ``out`` after every epoch.

    With ``resume``, the run's settings, weights, optimizer, schedule, RNG and epoch come from the
    checkpoint and training continues to its ``epochs`` total: the result is the same as an
    uninterrupted run with the same seed. ``resume_epochs`` trains a resumed run longer (the
    cosine schedule is stretched to the new end).

    Args:
        config: the run's settings (ignored with ``resume``: the checkpoint's are used).
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).
        out: checkpoint written atomically after every epoch (None: no checkpoint).
        resume: a checkpoint of an earlier run to continue.
        download: fetch missing data files.
        progress: core's progress display (``"auto"``, True, ``"lines"``, False).
        echo: called with one-line notes (e.g. ``click.echo``), or None.
        threads: OpenBLAS threads: an int, ``"auto"`` (`~tinytorch.core.threads.choose_threads`:
            one per physical core not kept busy by another program; ``echo`` says when it held
            back) or None (leave it).
        callbacks: extra core ``Callback``s (run after the built-in ones).
        resume_epochs: with ``resume``, the new total of epochs (at least the checkpoint's).

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
    >>> result.epochs, len(result.history["evals"]), result.stop_reason, 0 <= result.test_accuracy <= 1
    (1, 1, 'epochs', True)
    """
    if resume is not None:
        config = TrainConfig(**read_checkpoint_info(resume)["config"])
        if resume_epochs is not None:
            if resume_epochs < config.epochs:
                raise ValueError(f"resume_epochs={resume_epochs} is fewer than the {config.epochs} epochs "
                                 f"{resume} was planned for; a resumed run can only train longer")
            config.epochs = resume_epochs
    config.validate()
    if out is not None:
        io.check_destination(out, what="checkpoint")  # before training, not after the first epoch
    train_loader, val_loader, test_loader, train_set, _ = make_loaders(config, root, download)
    if threads is not None:  # after the data is found: a missing data set is the one line printed
        n_threads, note = choose_threads(threads)
        set_num_threads(n_threads)
        if note and echo is not None:
            echo(note)
    manual_seed(config.seed)
    model = build_model(config.model, train_set.image_shape, len(train_set.classes))
    optimizer = optim.AdamW(optim.weight_decay_groups(model, config.weight_decay), lr=config.lr)
    steps_per_epoch = len(train_loader)
    scheduler = WarmupCosineLR(optimizer, total_steps=config.epochs * steps_per_epoch,
                               warmup_steps=min(int(config.warmup * steps_per_epoch), config.epochs * steps_per_epoch))
    builtin: list[Callback] = []
    if out is not None:
        builtin.append(ModelCheckpoint(out, metadata=lambda: checkpoint_metadata(config, model)))
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                      callbacks=builtin + list(callbacks), scheduler=scheduler, progress=progress,
                      unit="images", on_nonfinite="stop")
    if resume is not None:
        trainer.load_checkpoint(resume)
        if scheduler.total_steps != config.epochs * steps_per_epoch:
            scheduler.set_total_steps(config.epochs * steps_per_epoch)  # resumed with more epochs
        if echo is not None:
            echo(f"resumed from {resume} after epoch {trainer.epoch} of {config.epochs}")
    evaluated = val_loader if val_loader is not None else test_loader
    start = time.perf_counter()
    history = trainer.fit(train_loader, epochs=config.epochs, val_data=evaluated,
                          val_name="val" if val_loader is not None else "test")
    seconds = time.perf_counter() - start
    test_acc = val_acc = None
    if history.stop_reason not in ("non_finite", "interrupted"):
        if val_loader is not None:
            val_acc = history["val_accuracy"][-1]
            test_acc = trainer.evaluate(test_loader)["accuracy"]
        elif "test_accuracy" in history:
            test_acc = history["test_accuracy"][-1]
    return TrainResult(config, history.to_dict(), test_acc, trainer.epoch, seconds,
                       str(out) if out is not None else None, history.stop_reason, val_acc, model,
                       get_num_threads(), trainer.throughput_contention)


#: Fine-tuning after pruning: the peak learning rate as a share of the training recipe's peak
#: (``TrainConfig.lr``), and the share of the steps spent warming up to it. Measured on the
#: 10-epoch Fashion-MNIST CNN (benchmarks/pruning_cnn.py; see the pruning API page): one epoch
#: after 90 % global pruning recovered more at 2/3 of the peak than at 1/3, 1/10 or 1/30 of it.
FINE_TUNE_LR_SCALE = 2 / 3
FINE_TUNE_WARMUP = 0.1


def fine_tune(model: ImageClassifier, config: TrainConfig, root: str | Path | None = None, *,
              epochs: int | None = None, steps: int | None = None, lr: float | None = None,
              warmup: float = FINE_TUNE_WARMUP, seed: int | None = None, progress: bool | str = False,
              callbacks: list[Callback] = ()) -> dict[str, Any]:
    """Fine-tune a pruned (masked or shrunk) ``model`` with ``config``'s recipe, shortened.

    The data are the recipe's: its training split (the validation images stay held out, so
    they still measure the result), shuffled with its seed and augmented as in training. The
    optimizer is a new AdamW with the recipe's weight decay on the weight matrices and kernels
    (`train`'s parameter groups), its peak learning rate ``lr`` reached by a linear warmup over
    the first ``warmup`` share of the steps, then a cosine decay to zero. Masks hold (they
    reparametrize the weights in every forward), and BatchNorm re-estimates its running
    statistics from the pruned model's activations as it trains.

    Args:
        model: the model to train in place (left in eval mode).
        config: the recipe it was trained with (a checkpoint's ``vision.config``).
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).
        epochs: how many epochs of the training split (default one, when ``steps`` is None).
        steps: how many optimizer steps instead.
        lr: the peak learning rate (default ``FINE_TUNE_LR_SCALE`` x ``config.lr``).
        warmup: the share of the steps of linear warmup, in [0, 1).
        seed: seed of the batches' order and augmentation (default ``config.seed``; the
            held-out split stays ``config.seed``'s). Dropout draws from the global generator
            (``manual_seed``).
        progress: core's progress display.
        callbacks: extra core ``Callback``s.

    Returns:
        ``steps``, ``lr``, ``warmup_steps``, ``seconds``, ``final_train_loss``, ``stop_reason``.

    >>> result = fine_tune(model, TrainConfig(**info["config"]), epochs=1)  # doctest: +SKIP
    >>> result["lr"]  # doctest: +SKIP
    0.002
    """
    if epochs is not None and steps is not None:
        raise ValueError("fine_tune: give epochs or steps, not both")
    if not 0 <= warmup < 1:
        raise ValueError(f"fine_tune: warmup must be a share of the steps in [0, 1), got {warmup!r}")
    lr = config.lr * FINE_TUNE_LR_SCALE if lr is None else lr
    if not lr > 0:
        raise ValueError(f"fine_tune: lr must be > 0, got {lr!r}")
    train_loader = make_loaders(config, root, shuffle_seed=seed)[0]
    total = steps if steps is not None else (epochs or 1) * len(train_loader)
    optimizer = optim.AdamW(optim.weight_decay_groups(model, config.weight_decay), lr=lr)
    scheduler = WarmupCosineLR(optimizer, total_steps=total, warmup_steps=int(warmup * total))
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                      callbacks=list(callbacks), scheduler=scheduler, progress=progress, unit="images",
                      on_nonfinite="stop")
    start = time.perf_counter()
    history = trainer.fit(train_loader, max_steps=total)
    model.eval()
    return {"steps": trainer.global_step, "lr": lr, "warmup_steps": int(warmup * total),
            "seconds": round(time.perf_counter() - start, 1),
            "final_train_loss": history.steps[-1]["loss"] if history.steps else None,
            "stop_reason": history.stop_reason}


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
    """The model stored in a `train` or `save_optimized` checkpoint (weights loaded) and its
    vision metadata.

    The model is rebuilt from the ``model`` config the file records, at the sizes it names (a
    structurally pruned model has fewer channels and neurons than its class's defaults), without
    initialising its weights; its tensors' names and shapes are compared with the file's header
    before a weight is read.

    Args:
        checkpoint: a checkpoint written by `train` or `save_optimized`.

    Returns:
        The model (rebuilt from its config, weights loaded) and the ``vision`` metadata.

    Raises:
        ValueError: the file is no vision checkpoint, its model config is invalid, or its
            tensors do not fit that config (``tinytorch.core.io.CheckpointError``, listing every
            tensor with the config's shape and the file's).

    >>> model, info = load_trained_model("vision.safetensors")  # doctest: +SKIP
    >>> type(model).__name__, info["config"]["dataset"]  # doctest: +SKIP
    ('SmallCNN', 'fashion-mnist')
    """
    info = read_checkpoint_info(checkpoint)
    try:
        with nn.init.no_init():  # every weight is replaced from the file: never draw them
            model = model_from_config(info["model"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{checkpoint}: checkpoint metadata vision.model is not a valid model config: {e}") from None
    except MemoryError:
        raise ValueError(f"{checkpoint}: checkpoint metadata vision.model asks for a model larger than this "
                         f"machine's memory: {info['model']}") from None
    if QUANTIZATION_KEY in io.load_metadata(checkpoint):  # written by `save_optimized`: int8 layers
        return load_quantized(model, checkpoint), info
    stored = {k[len(MODEL_PREFIX):]: v for k, v in io.tensor_shapes(checkpoint).items() if k.startswith(MODEL_PREFIX)}
    io.check_state(model.state_dict(), stored, source=f"{checkpoint} (model config {info['model']})")
    state, _ = load_model_state(checkpoint)
    model.load_state_dict(state)
    return model, info


def save_optimized(path: str | Path, model: ImageClassifier, source: str | Path) -> None:
    """Write an optimized (pruned and/or quantized) model as a checkpoint `load_trained_model` reads.

    The ``vision`` metadata's run settings (data set, recipe) come from ``source``, the checkpoint
    it was optimized from; its ``model`` entry is the model's own ``config``, which holds the
    layer sizes as they are now (after ``prune.shrink`` fewer channels and neurons than
    ``source``'s). The weights are the model's alone (no optimizer state), quantized layers as
    int8 tensors with their scheme (core's `save_quantized`). Written atomically; non-finite
    weights are refused.

    Args:
        path: the file to write (never ``source``).
        model: the optimized model (masks made permanent: ``prune.remove``).
        source: the training checkpoint it came from.

    Raises:
        ValueError: ``path`` is ``source``, or ``source`` is not a vision checkpoint.
        FloatingPointError: a weight is not finite (nothing is written).
    """
    from tinytorch.core.checkpoint import save_model_state
    from tinytorch.core.paths import check_outputs

    info = read_checkpoint_info(source)
    check_outputs({"--out": path}, {"CHECKPOINT": source})
    info = {**info, "format_version": FORMAT_VERSION, "model": model.config}
    metadata = {"kind": "tinytorch.vision.optimized", "vision": info}
    if quantized_layers(model):
        save_quantized(path, model, metadata)
    else:
        save_model_state(path, model, metadata)


def evaluate_checkpoint(checkpoint: str | Path, root: str | Path | None = None,
                        download: bool = False) -> EvalResult:
    """Evaluate a `train` checkpoint on its data set's test split.

    Args:
        checkpoint: a checkpoint written by `train`.
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).
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


def benchmark_target(path: str, limit: int | None = None, root: str | Path | None = None) -> dict[str, Any] | None:
    """What ``tito performance benchmark`` needs to benchmark a `train` checkpoint (the
    ``tinytorch.benchmarks`` entry point): the model, its data set's normalized test images as
    inputs and the test accuracy. None for a file that is not a vision checkpoint.

    Args:
        path: a file.
        limit: evaluate accuracy on the first ``limit`` test images (None: all of them).
        root: the data root (default ``$TINYTORCH_DATA``, else the user cache folder).

    Returns:
        ``BenchmarkTarget`` fields (name, model, inputs, num_samples, evaluate, checkpoint,
        description), or None.

    >>> target = benchmark_target("vision.safetensors")  # doctest: +SKIP
    >>> target["evaluate"](target["model"], None)["metric"]  # doctest: +SKIP
    'accuracy'
    """
    p = Path(path)
    if p.is_dir() or not isinstance(io.load_metadata(p).get("vision"), dict):
        return None
    model, info = load_trained_model(p)
    name = info["config"]["dataset"]
    mean, std = NORMALIZATION[name]
    test_set = get_dataset(name)(root, train=False, transform=Normalize(mean, std))
    model.eval()

    def inputs(indices: np.ndarray) -> Tensor:
        return Tensor(test_set.__getitems__(indices)[0])  # (B, C, H, W), normalized

    def evaluate(m: ImageClassifier, n: int | None) -> dict[str, Any]:
        data = test_set
        if n is not None and n < len(test_set):
            data = ImageDataset(test_set.data[:n], test_set.targets[:n], transform=test_set.transform)
            data.classes, data.display_name = test_set.classes, getattr(test_set, "display_name", name)
        result = evaluate_model(m, data)
        return {"metric": "accuracy", "value": result.accuracy, "higher_is_better": True,
                "loss": result.loss, "dataset": f"{result.dataset} test set", "samples": result.n}

    def calibration(n: int) -> list[Tensor]:
        # training images (never the test set the accuracy is measured on), in batches of 64
        train_set = get_dataset(name)(root, train=True, transform=Normalize(mean, std))
        picked = np.random.default_rng(0).choice(len(train_set), size=min(n, len(train_set)), replace=False)
        return [Tensor(train_set.__getitems__(picked[i:i + 64])[0]) for i in range(0, len(picked), 64)]

    def finetune(m: ImageClassifier, steps: int) -> dict[str, Any]:
        """``steps`` steps of `fine_tune`: the checkpoint's recipe on its training split."""
        return fine_tune(m, TrainConfig(**info["config"]), root, steps=steps)

    def save(m: ImageClassifier, out: str) -> None:
        save_optimized(out, m, p)

    return {"name": p.stem, "model": model, "inputs": inputs, "num_samples": len(test_set),
            "evaluate": evaluate, "checkpoint": str(p), "calibration": calibration, "finetune": finetune,
            "save": save,
            "description": f"vision checkpoint: {type(model).__name__} trained on {name}; a sample "
                           f"is one normalized test image {tuple(test_set.data.shape[1:])}"}
