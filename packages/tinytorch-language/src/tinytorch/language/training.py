"""Language-model training on a text, built on core's Trainer, DataLoader, AdamW and cross-entropy.

What is language-specific here is small: turning text into (input, target) token windows, a
nanoGPT learning-rate schedule that can also end on a time budget, perplexity in the history,
and checkpoints that carry the tokenizer and the model config so that generation needs nothing
but the file.

>>> from tinytorch.language import CharTokenizer, TinyGPT
>>> text = "to be or not to be, that is the question. " * 20
>>> tok = CharTokenizer().fit(text)
>>> model = TinyGPT(tok.vocab_size, d_model=32, num_heads=2, num_layers=1, max_seq_len=16)
>>> history = LanguageModelTrainer(model, tok, progress=False).fit(
...     text, max_steps=20, batch_size=8, seq_len=16, lr=3e-3, warmup=2)
>>> history["val_loss"][-1] < history["val_loss"][0] or len(history["val_loss"]) == 1
True
"""

from __future__ import annotations

import math
import numbers
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core import functional as F
from tinytorch.core import io
from tinytorch.core.data import DataLoader
from tinytorch.core.optim import AdamW
from tinytorch.core.optim.lr_scheduler import LambdaLR
from tinytorch.core.random import get_rng
from tinytorch.core.training import Callback, History, LRSchedulerCallback, Trainer

from .data import TokenWindows, split_tokens
from .models import GPTConfig, TinyGPT
from .tokenizers import Tokenizer, TokenizerError

CHECKPOINT_KEY = "tinytorch.language"
CHECKPOINT_VERSION = 1


def lm_loss(logits, targets):
    """Mean next-token cross-entropy over every position: core's fused cross-entropy on (B, T, V).

    Args:
        logits: (B, T, V) model output.
        targets: (B, T) integer next-token ids.

    Returns:
        A scalar Tensor.

    >>> from tinytorch.core import Tensor
    >>> logits = Tensor(np.zeros((2, 3, 4), dtype=np.float32))
    >>> targets = Tensor(np.zeros((2, 3), dtype=np.int64))
    >>> round(float(lm_loss(logits, targets).item()), 4)  # log(4): uniform over 4 tokens
    1.3863
    """
    return F.cross_entropy(logits, targets)


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"fit: {name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


class _BatchStream:
    """``steps`` training batches per round, drawn from a shuffled DataLoader that is restarted
    (with a new random window offset) whenever an epoch of the training windows is used up."""

    def __init__(self, loader: DataLoader, dataset: TokenWindows, steps: int, deadline: float | None):
        self.loader, self.dataset, self.steps, self.deadline = loader, dataset, steps, deadline
        self.data_epoch = 0
        self._it = None

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            if self.deadline is not None and time.perf_counter() >= self.deadline:
                return
            batch = next(self._it, None) if self._it is not None else None
            if batch is None:
                if self._it is not None:
                    self.data_epoch += 1
                    self.dataset.set_offset(int(get_rng().integers(self.dataset.seq_len)))
                self.loader.set_epoch(self.data_epoch)
                self._it = iter(self.loader)
                batch = next(self._it)
            yield batch


class _Limited:
    """The first ``n`` batches of a loader (a fixed validation subset)."""

    def __init__(self, loader: DataLoader, n: int | None):
        self.loader, self.n = loader, n

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if self.n is not None and i >= self.n:
                return
            yield batch


class _LanguageLogs(Callback):
    """Adds step, tokens/s and (val) perplexity to the history after every round."""

    def __init__(self, owner: LanguageModelTrainer, seq_len: int):
        self.owner, self.seq_len = owner, seq_len

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        h = trainer.history
        h.setdefault("step", []).append(trainer.global_step)
        h.setdefault("tokens_per_sec", []).append(logs.get("sequences_per_sec", float("nan")) * self.seq_len)
        h.setdefault("perplexity", []).append(_exp(logs["loss"]))
        if "val_loss" in logs:
            h.setdefault("val_perplexity", []).append(_exp(logs["val_loss"]))
        if self.owner.on_round is not None:
            self.owner.on_round(trainer, {k: v[-1] for k, v in h.items()})
        if self.owner.checkpoint_path is not None:
            self.owner.save_checkpoint(self.owner.checkpoint_path)


class _ProgressBar(Callback):
    """A rich progress bar over steps with the running loss, val loss and tokens/s."""

    def __init__(self, total: int | None, time_budget: float | None, tokens_per_step: int):
        self.total, self.time_budget, self.tokens_per_step = total, time_budget, tokens_per_step
        self.progress = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[stats]}"))
        self.progress.start()
        self.task = self.progress.add_task("train", total=self.total, completed=trainer.global_step, stats="")
        self.start, self.start_step, self.loss, self.val = time.perf_counter(), trainer.global_step, None, ""

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        loss = logs["loss"]
        self.loss = loss if self.loss is None else 0.9 * self.loss + 0.1 * loss
        elapsed = time.perf_counter() - self.start
        rate = (step - self.start_step) * self.tokens_per_step / max(elapsed, 1e-9)
        budget = f"  {elapsed:.0f}/{self.time_budget:.0f}s" if self.time_budget else ""
        self.progress.update(self.task, completed=step,
                             stats=f"loss {self.loss:.4f}{self.val}  {rate:,.0f} tok/s{budget}")

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if "val_loss" in logs:
            self.val = f"  val {logs['val_loss']:.4f}"

    def on_train_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else float("inf")


class LanguageModelTrainer:
    """Train a :class:`TinyGPT` on text and generate from it.

    Args:
        model: the language model; its ``vocab_size`` must cover the tokenizer's.
        tokenizer: a fitted tokenizer, or an unfitted one that ``fit`` fits on the text.
        weight_decay: AdamW decoupled weight decay, applied to matrices only (nanoGPT).
        betas: AdamW betas; (0.9, 0.99) as nanoGPT's Shakespeare config.
        grad_clip: clip the global gradient norm (None: no clipping).
        min_lr_ratio: the cosine schedule ends at ``lr * min_lr_ratio``.
        progress: show a progress bar with loss and tokens/s.

    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("abc ")
    >>> model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
    >>> trainer = LanguageModelTrainer(model, tok)
    >>> history = trainer.fit("abc " * 40, max_steps=2, batch_size=2, seq_len=8, warmup=0)
    >>> history["step"], len(trainer.generate_text("ab", max_length=5, seed=0))
    ([2], 7)
    """

    def __init__(self, model: TinyGPT, tokenizer: Tokenizer, weight_decay: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.99), grad_clip: float | None = 1.0,
                 min_lr_ratio: float = 0.1, progress: bool = False):
        if not isinstance(model, TinyGPT):
            raise TypeError(f"LanguageModelTrainer: model must be a TinyGPT, got {type(model).__name__}")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"LanguageModelTrainer: tokenizer must be a Tokenizer, got {type(tokenizer).__name__}")
        self.model, self.tokenizer = model, tokenizer
        self.weight_decay, self.betas, self.grad_clip = weight_decay, betas, grad_clip
        self.min_lr_ratio, self.progress = min_lr_ratio, progress
        self.trainer: Trainer | None = None
        self.history = History()
        self.checkpoint_path: Path | None = None
        self.on_round = None  # optional fn(trainer, last_logs), called after every evaluation
        self.train_config: dict[str, Any] = {}

    # ------------------------------------------------------------------ data
    def _tokens(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"fit: text must be a str, got {type(text).__name__}")
        if not self.tokenizer.is_fitted:
            self.tokenizer.fit(text)
        if self.tokenizer.vocab_size > self.model.config.vocab_size:
            raise ValueError(
                f"LanguageModelTrainer: the tokenizer has {self.tokenizer.vocab_size} ids but the "
                f"model's vocab_size is {self.model.config.vocab_size}"
            )
        return np.asarray(self.tokenizer.encode(text), dtype=np.int64)

    def _optimizer(self, lr: float) -> AdamW:
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": self.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return AdamW(groups, lr=lr, betas=self.betas)

    # ------------------------------------------------------------------ fit
    def fit(self, text: str, epochs: int | None = None, max_steps: int | None = None,
            batch_size: int = 16, seq_len: int | None = None, lr: float = 1e-3, warmup: int = 100,
            val_fraction: float = 0.1, eval_interval: int | None = None,
            eval_batches: int | None = None, time_budget: float | None = None,
            checkpoint: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
            seed: int | None = None) -> History:
        """Train on ``text`` (tokenized with the tokenizer) and return the history.

        Args:
            text: the corpus. The first ``1 - val_fraction`` trains, the rest validates.
            epochs: passes over the training tokens (each token is a target once per epoch).
            max_steps: optimizer steps in total (counting steps before a resume). With neither
                ``epochs``, ``max_steps`` nor ``time_budget``, one epoch.
            batch_size: sequences per step.
            seq_len: context per sequence (default: the model's ``max_seq_len``).
            lr: peak learning rate of AdamW; linear warmup for ``warmup`` steps, then cosine
                decay to ``lr * min_lr_ratio`` at the last step (or at the end of the time budget).
            val_fraction: share of the tokens held out for validation (0: no validation).
            eval_interval: steps between evaluations (each a row of the history); default
                250, or the whole run if shorter.
            eval_batches: evaluate on the first ``eval_batches`` validation batches (None: all).
            time_budget: stop after this many seconds (wall clock, evaluations included).
            checkpoint: save a checkpoint (model, tokenizer, config, optimizer) here after
                every evaluation.
            resume: continue from a checkpoint written by ``checkpoint``/``save_checkpoint``.
            seed: seed for the data order (default: from the global generator).

        Returns:
            The ``History``: per evaluation ``step``, ``loss``, ``perplexity``, ``val_loss``,
            ``val_perplexity``, ``lr``, ``time``, ``tokens_per_sec``.
        """
        _check_int("epochs", epochs, 1, allow_none=True)
        _check_int("max_steps", max_steps, 1, allow_none=True)
        _check_int("batch_size", batch_size, 1)
        seq_len = self.model.config.max_seq_len if seq_len is None else seq_len
        _check_int("seq_len", seq_len, 1)
        if seq_len > self.model.config.max_seq_len:
            raise ValueError(f"fit: seq_len {seq_len} exceeds the model's max_seq_len={self.model.config.max_seq_len}")
        _check_int("warmup", warmup, 0)
        _check_int("eval_interval", eval_interval, 1, allow_none=True)
        _check_int("eval_batches", eval_batches, 1, allow_none=True)
        if not isinstance(lr, numbers.Real) or not 0 < lr < float("inf"):
            raise ValueError(f"fit: lr must be a positive number, got {lr!r}")
        if time_budget is not None and (not isinstance(time_budget, numbers.Real) or time_budget <= 0):
            raise ValueError(f"fit: time_budget must be a positive number of seconds, got {time_budget!r}")

        tokens = self._tokens(text)
        train_tokens, val_tokens = split_tokens(tokens, val_fraction)
        train_ds = TokenWindows(train_tokens, seq_len, random_starts=True)
        if seed is None:
            seed = int(get_rng().integers(2**31))
        loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=len(train_ds) >= batch_size,
                            seed=seed)
        val_loader = None
        if val_fraction > 0:
            if len(val_tokens) < seq_len + 1:
                raise ValueError(
                    f"fit: the validation split has {len(val_tokens)} tokens, fewer than seq_len + 1 = "
                    f"{seq_len + 1}; use more text, a larger val_fraction or a shorter seq_len"
                )
            val_loader = _Limited(DataLoader(TokenWindows(val_tokens, seq_len), batch_size=batch_size),
                                  eval_batches)

        steps_per_epoch = len(loader)
        if max_steps is None and epochs is None and time_budget is None:
            epochs = 1
        total = None
        if epochs is not None:
            total = epochs * steps_per_epoch
        if max_steps is not None:
            total = max_steps if total is None else min(total, max_steps)
        interval = eval_interval or (min(250, total) if total else 250)

        optimizer = self._optimizer(lr)
        trainer = Trainer(self.model, optimizer, lm_loss, grad_clip=self.grad_clip, progress=False,
                          unit="sequences")
        self.trainer = trainer
        self.train_config = {"batch_size": batch_size, "seq_len": seq_len, "lr": lr, "warmup": warmup,
                             "val_fraction": val_fraction, "seed": seed, "total_steps": total}
        start = time.perf_counter()
        floor, first_step = self.min_lr_ratio, 0

        def factor(_: int) -> float:
            step = trainer.global_step
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = 0.0
            if total is not None and total > warmup:
                progress = (step - warmup) / (total - warmup)
            if time_budget is not None and step > first_step:
                progress = max(progress, (time.perf_counter() - start) / time_budget)
            progress = min(max(progress, 0.0), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = LambdaLR(optimizer, factor)
        trainer.callbacks = [LRSchedulerCallback(scheduler, interval="step"), _LanguageLogs(self, seq_len)]
        data_epoch = 0
        if resume is not None:
            meta = self._resume(resume)
            data_epoch = int(meta.get(CHECKPOINT_KEY, {}).get("data_epoch", 0))
            first_step = trainer.global_step
            scheduler.step()  # re-apply the schedule at the resumed step
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else None
        deadline = start + time_budget if time_budget is not None else None
        stream = _BatchStream(loader, train_ds, interval, deadline)
        stream.data_epoch = data_epoch
        self._stream = stream
        if self.progress:
            trainer.callbacks.append(_ProgressBar(total, time_budget, batch_size * seq_len))
        remaining_rounds = 10**9 if total is None else max(0, math.ceil((total - trainer.global_step) / interval))
        trainer.fit(stream, epochs=remaining_rounds, val_data=val_loader, max_steps=total)
        self.history = trainer.history
        return self.history

    def _resume(self, path: str | os.PathLike) -> dict[str, Any]:
        meta = io.load_metadata(path)
        _language_meta(path, meta)
        if meta.get("kind") != "tinytorch.training_checkpoint":
            raise ValueError(f"{path} holds model weights only (no optimizer state), so training cannot resume from it")
        return self.trainer.load_checkpoint(path)

    def evaluate(self, text: str, batch_size: int = 16, seq_len: int | None = None) -> dict[str, float]:
        """Mean loss and perplexity of the model on all windows of ``text``.

        Args:
            text: the evaluation text (tokenized with the trainer's tokenizer).
            batch_size: windows per forward pass.
            seq_len: window length (default: the model's ``max_seq_len``).

        Returns:
            ``{"loss": mean cross-entropy, "perplexity": exp(loss)}``.

        >>> from tinytorch.language import CharTokenizer
        >>> tok = CharTokenizer().fit("ab")
        >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
        >>> sorted(LanguageModelTrainer(model, tok).evaluate("abab" * 4))
        ['loss', 'perplexity']
        """
        seq_len = self.model.config.max_seq_len if seq_len is None else seq_len
        tokens = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        loader = DataLoader(TokenWindows(tokens, seq_len), batch_size=batch_size)
        trainer = self.trainer or Trainer(self.model, None, lm_loss, progress=False)
        loss = trainer.evaluate(loader)["loss"]
        return {"loss": loss, "perplexity": _exp(loss)}

    # ------------------------------------------------------------------ generation
    def generate_text(self, prompt: str = "", max_length: int = 200, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> str:
        """``prompt`` followed by ``max_length`` generated tokens (see :func:`generate_text`).

        Args:
            prompt: the text to continue.
            max_length: how many tokens to generate.
            temperature: divides the logits; 0 is greedy.
            top_k: sample from the k most likely tokens only (None: all).
            top_p: nucleus sampling threshold (None: off).
            seed: seed of the sampling (None: unpredictable).

        Returns:
            ``prompt`` followed by the generated text.

        >>> from tinytorch.language import CharTokenizer
        >>> tok = CharTokenizer().fit("ab")
        >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
        >>> LanguageModelTrainer(model, tok).generate_text("ab", max_length=3, temperature=0)[:2]
        'ab'
        """
        return generate_text(self.model, self.tokenizer, prompt, max_length, temperature, top_k, top_p, seed)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Model, tokenizer, config (and optimizer, step and history once ``fit`` ran), atomically.

        Args:
            path: the safetensors file to write; `load_checkpoint` reads it back, and
                ``fit(resume=path)`` continues training from it.

        >>> import tempfile
        >>> from tinytorch.language import CharTokenizer
        >>> tok = CharTokenizer().fit("ab")
        >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     LanguageModelTrainer(model, tok).save_checkpoint(Path(tmp) / "lm.safetensors")
        ...     load_checkpoint(Path(tmp) / "lm.safetensors")[1].chars
        ['a', 'b']
        """
        extra = _language_metadata(self.model, self.tokenizer, self.train_config)
        stream = getattr(self, "_stream", None)
        extra[CHECKPOINT_KEY]["data_epoch"] = stream.data_epoch if stream is not None else 0
        if self.trainer is not None and self.trainer.optimizer is not None:
            self.trainer.save_checkpoint(path, extra_metadata=extra)
        else:
            save_model(path, self.model, self.tokenizer, self.train_config)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs: Any) -> LanguageModelTrainer:
        """A trainer for the model and tokenizer stored in a checkpoint (optimizer state aside).

        Args:
            path: a checkpoint written by `save_checkpoint` or `save_model`.
            **kwargs: further constructor arguments (``weight_decay``, ``progress``, ...).

        Returns:
            The new trainer; continue a run with ``fit(resume=path)`` instead.

        >>> trainer = LanguageModelTrainer.from_checkpoint("checkpoints/tinygpt.safetensors")  # doctest: +SKIP
        >>> trainer.generate_text("ROMEO:", max_length=50, seed=0)  # doctest: +SKIP
        """
        model, tokenizer, _ = load_checkpoint(path)
        return cls(model, tokenizer, **kwargs)


# ---------------------------------------------------------------------- checkpoint files


def _language_metadata(model: TinyGPT, tokenizer: Tokenizer, train: dict[str, Any] | None = None) -> dict[str, Any]:
    return {CHECKPOINT_KEY: {"format_version": CHECKPOINT_VERSION, "model": type(model).__name__,
                             "config": model.config.to_dict(), "tokenizer": tokenizer.to_dict(),
                             "train": dict(train or {})}}


def save_model(path: str | os.PathLike, model: TinyGPT, tokenizer: Tokenizer,
               train: dict[str, Any] | None = None) -> None:
    """Save weights, config and tokenizer (no optimizer state) to a safetensors file.

    Args:
        path: the file to write.
        model: the model (its ``config`` is stored too).
        tokenizer: the model's tokenizer, stored in the metadata.
        train: the training settings to record, if any.

    >>> import tempfile
    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("ab")
    >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_model(Path(tmp) / "lm.safetensors", model, tok)
    ...     loaded, _, meta = load_checkpoint(Path(tmp) / "lm.safetensors")
    >>> loaded.config == model.config, meta["kind"]
    (True, 'tinytorch.language.model')
    """
    meta = {"kind": "tinytorch.language.model", **_language_metadata(model, tokenizer, train)}
    io.save({f"model.{k}": v for k, v in model.state_dict().items()}, path, metadata=meta)


def _language_meta(path: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    lang = metadata.get(CHECKPOINT_KEY)
    if not isinstance(lang, dict):
        kind = metadata.get("kind", "unknown")
        raise ValueError(
            f"{path} is not a tinytorch-language checkpoint: it has no {CHECKPOINT_KEY!r} metadata "
            f"(kind: {kind}); train one with `tito language train` or LanguageModelTrainer.save_checkpoint"
        )
    version = lang.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} is a tinytorch-language checkpoint of format version {version!r}; this "
            f"version reads format {CHECKPOINT_VERSION}"
        )
    if lang.get("model") != "TinyGPT":
        raise ValueError(f"{path} holds a {lang.get('model')!r} model, expected 'TinyGPT'")
    return lang


def load_checkpoint(path: str | os.PathLike) -> tuple[TinyGPT, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, metadata) from a checkpoint file alone.

    Args:
        path: a file written by `save_model` or `LanguageModelTrainer.save_checkpoint`.

    Returns:
        The model (weights loaded, in eval mode), its tokenizer and the file's metadata.

    Raises:
        ValueError: the file is not a tinytorch-language checkpoint, was written by another
            format version, or its weights do not match its config; the message names it.

    >>> model, tokenizer, meta = load_checkpoint("checkpoints/tinygpt.safetensors")  # doctest: +SKIP
    >>> generate_text(model, tokenizer, "ROMEO:", max_length=100, seed=0)  # doctest: +SKIP

    A round trip through a temporary file:

    >>> import tempfile
    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("ab")
    >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_model(Path(tmp) / "lm.safetensors", model, tok)
    ...     loaded, tokenizer, _ = load_checkpoint(Path(tmp) / "lm.safetensors")
    >>> bool(np.array_equal(loaded.wte.weight.numpy(), model.wte.weight.numpy())), loaded.training
    (True, False)
    """
    state, metadata = io.load(path)
    lang = _language_meta(path, metadata)
    try:
        config = GPTConfig.from_dict(lang["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: invalid model config in the checkpoint: {e}") from e
    try:
        tokenizer = Tokenizer.from_dict(lang["tokenizer"], source=f"the tokenizer in {path}")
    except KeyError:
        raise TokenizerError(f"{path} has no tokenizer in its metadata") from None
    model = TinyGPT.from_config(config)
    model_state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    if not model_state:
        raise ValueError(f"{path} holds no model weights (no 'model.*' tensors)")
    try:
        model.load_state_dict(model_state)
    except ValueError as e:
        raise ValueError(f"{path}: the weights do not match a TinyGPT with its config: {e}") from e
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"{path}: its tokenizer has {tokenizer.vocab_size} ids but the model only {config.vocab_size}"
        )
    model.eval()
    return model, tokenizer, metadata


# ---------------------------------------------------------------------- generation


def generate_text(model: TinyGPT, tokenizer: Tokenizer, prompt: str = "", max_length: int = 200,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  seed: int | None = None) -> str:
    """Continue ``prompt`` by ``max_length`` tokens, sampled with the KV cache.

    Returns ``prompt`` followed by the generated text. A prompt longer than the model's context
    is cropped to its last ``max_seq_len`` tokens for conditioning (the returned text still
    starts with the whole prompt). An empty prompt starts from a newline token when the
    tokenizer has one (else from id 0), which is not included in the result.

    Args:
        model: the language model.
        tokenizer: its tokenizer.
        prompt: the text to continue ("" to start from scratch).
        max_length: how many tokens to generate.
        temperature: divides the logits; 0 is greedy (arg-max).
        top_k: sample from the k most likely tokens only (None: all).
        top_p: nucleus sampling threshold (None: off).
        seed: makes the sampling repeatable (None: unpredictable).

    Returns:
        ``prompt`` followed by the generated text.

    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("to be or not")
    >>> model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=1, max_seq_len=16)
    >>> text = generate_text(model, tok, "to", max_length=10, seed=0)
    >>> text[:2], len(text)
    ('to', 12)
    """
    if not isinstance(prompt, str):
        raise TypeError(f"generate_text: prompt must be a str, got {type(prompt).__name__}")
    if isinstance(max_length, bool) or not isinstance(max_length, numbers.Integral) or max_length < 0:
        raise ValueError(f"generate_text: max_length must be a non-negative integer, got {max_length!r}")
    ids = tokenizer.encode(prompt) if prompt else []
    if not ids:
        try:
            ids = tokenizer.encode("\n")[:1] or [0]
        except ValueError:
            ids = [0]
        skip = len(ids)
    else:
        skip = len(ids)
    out = model.generate(np.asarray([ids], dtype=np.int64), max_length, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed)
    return prompt + tokenizer.decode(out[0, skip:])


__all__ = ["LanguageModelTrainer", "generate_text", "load_checkpoint", "save_model", "lm_loss"]
