"""Language-model training on a text: a configuration of core's Trainer.

What is language-specific here is small: turning text into (input, target) token windows,
nanoGPT's defaults (AdamW with betas (0.9, 0.99), no weight decay on vectors, warmup then cosine
decay to a tenth, gradient clipping at 1), perplexity in the evaluation rows, and checkpoints
that carry the tokenizer and the model config, so that generation needs nothing but the file.
The loop, the time budget, the schedule, the progress display and the checkpoint layout are
core's.

>>> from tinytorch.language import CharTokenizer, TinyGPT
>>> text = "to be or not to be, that is the question. " * 20
>>> tok = CharTokenizer().fit(text)
>>> model = TinyGPT(tok.vocab_size, d_model=32, num_heads=2, num_layers=1, max_seq_len=16)
>>> history = LanguageModelTrainer(model, tok, progress=False).fit(
...     text, max_steps=20, batch_size=8, seq_len=16, lr=3e-3, warmup=2, seed=0)
>>> history.stop_reason, history["step"]
('steps', [20])
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path  # noqa: F401 - the docstring examples use it
from typing import Any

import numpy as np

from tinytorch.core import functional as F
from tinytorch.core import io
from tinytorch.core.callbacks import Callback, ModelCheckpoint
from tinytorch.core.checkpoint import load_model_state, save_model_state
from tinytorch.core.checks import check_int, is_int, is_real
from tinytorch.core.data import DataLoader
from tinytorch.core.optim import AdamW, weight_decay_groups
from tinytorch.core.optim.lr_scheduler import WarmupCosineLR
from tinytorch.core.quantization.serialization import (
    QUANTIZATION_KEY,
    load_quantized,
    quantized_layers,
    read_scheme,
    save_quantized,
)
from tinytorch.core.random import get_rng
from tinytorch.core.training import Distiller, History, Trainer

from .checkpoint_checks import check_config_against_shapes, check_vocab_sizes
from .data import TokenWindows, split_tokens
from .model import TinyGPT
from .tokenizers import Tokenizer, TokenizerError

END_OF_TEXT = "<|endoftext|>"  # GPT-2's document separator, the start of its generations

CHECKPOINT_KEY = "tinytorch.language"
#: The newest checkpoint format. 2: the model config may list per-block sizes (``layer_heads``,
#: ``layer_d_ff``: a structurally pruned TinyGPT); 1: every block the same. A file is written in
#: the oldest format that holds it, so a model that was not pruned stays readable by format-1
#: readers.
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# The run settings a checkpoint records; --resume continues with them.
RUN_SETTINGS = ("batch_size", "seq_len", "lr", "warmup", "warmup_fraction", "val_fraction", "seed")
DEFAULTS = {"batch_size": 16, "lr": 1e-3, "warmup": None, "warmup_fraction": 0.05, "val_fraction": 0.1}
DEFAULT_EVAL_EVERY = 250


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


def text_fingerprint(text: str) -> str:
    """The sha256 of ``text`` (UTF-8), recorded so a resumed run can check it trains on the same text.

    >>> text_fingerprint("abc")[:12]
    'ba7816bf8f01'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    check_int("fit", name, value, minimum=minimum)


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else float("inf")


class _Perplexity(Callback):
    """Adds ``perplexity`` and ``val_perplexity`` (exp of the losses) to every evaluation row."""

    def on_eval_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        for key in ("loss", "val_loss"):
            if key in logs:
                logs[key.replace("loss", "perplexity")] = _exp(logs[key])


class LanguageModelTrainer:
    """Train a :class:`TinyGPT` on text and generate from it.

    Args:
        model: the language model; its ``vocab_size`` must cover the tokenizer's.
        tokenizer: a fitted tokenizer, or an unfitted one that ``fit`` fits on the text.
        weight_decay: AdamW decoupled weight decay, applied to matrices only (nanoGPT).
        betas: AdamW betas; (0.9, 0.99) as nanoGPT's Shakespeare config.
        grad_clip: clip the global gradient norm (None: no clipping).
        min_lr_ratio: the cosine schedule ends at ``lr * min_lr_ratio``.
        progress: core's progress display: ``"auto"``, True, ``"lines"`` or False.
        on_nonfinite: ``"raise"`` or ``"stop"`` (see core's ``Trainer``).
        teacher: a trained TinyGPT with the same vocabulary to distil into ``model``: each step's
            loss becomes core's ``distillation_loss`` of the teacher's next-token logits (see
            core's ``training.Distiller``); the teacher runs in eval mode without gradients and
            is never changed. Validation stays the plain cross-entropy, comparable with a model
            trained alone.
        temperature: with ``teacher``: softens both distributions (T > 0; T² rescales the soft term).
        alpha: with ``teacher``: weight of the teacher's term in [0, 1]; 1 - alpha weighs the text.

    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("abc ")
    >>> model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
    >>> trainer = LanguageModelTrainer(model, tok, progress=False)
    >>> history = trainer.fit("abc " * 40, max_steps=2, batch_size=2, seq_len=8, warmup=0)
    >>> history["step"], len(trainer.generate_text("ab", max_length=5, seed=0))
    ([2], 7)
    """

    def __init__(self, model: TinyGPT, tokenizer: Tokenizer, weight_decay: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.99), grad_clip: float | None = 1.0,
                 min_lr_ratio: float = 0.1, progress: bool | str = False, on_nonfinite: str = "raise",
                 teacher: TinyGPT | None = None, temperature: float = 2.0, alpha: float = 0.5):
        if not isinstance(model, TinyGPT):
            raise TypeError(f"LanguageModelTrainer: model must be a TinyGPT, got {type(model).__name__}")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"LanguageModelTrainer: tokenizer must be a Tokenizer, got {type(tokenizer).__name__}")
        self.distiller: Distiller | None = None
        if teacher is not None:
            if not isinstance(teacher, TinyGPT):
                raise TypeError(f"LanguageModelTrainer: teacher must be a TinyGPT, got {type(teacher).__name__}")
            if teacher.config.vocab_size != model.config.vocab_size:
                raise ValueError(f"LanguageModelTrainer: the teacher's vocab_size is {teacher.config.vocab_size} "
                                 f"but the student's is {model.config.vocab_size}; distillation needs the same "
                                 "vocabulary (the same tokenizer)")
            self.distiller = Distiller(teacher, temperature, alpha)
        self.model, self.tokenizer = model, tokenizer
        self.weight_decay, self.betas, self.grad_clip = weight_decay, betas, grad_clip
        self.min_lr_ratio, self.progress, self.on_nonfinite = min_lr_ratio, progress, on_nonfinite
        self.trainer: Trainer | None = None
        self.history = History()
        self.train_config: dict[str, Any] = {}

    # ------------------------------------------------------------------ data
    def _tokens(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"fit: text must be a str, got {type(text).__name__}")
        if not self.tokenizer.is_fitted:
            self.tokenizer.fit(text)
        if self.tokenizer.vocab_size != self.model.config.vocab_size:
            # A checkpoint of such a pair could not be loaded: ids without an embedding, or
            # sampled ids the tokenizer cannot decode (see checkpoint_checks.check_vocab_sizes).
            raise ValueError(
                f"LanguageModelTrainer: the tokenizer has {self.tokenizer.vocab_size} ids but the "
                f"model's vocab_size is {self.model.config.vocab_size}; they must be equal"
            )
        return np.asarray(self.tokenizer.encode(text), dtype=np.int64)

    def _settings(self, given: dict[str, Any], resume: str | os.PathLike | None, text: str) -> dict[str, Any]:
        """The run's settings: the checkpoint's when resuming (contradicting ones refused), else given or default."""
        if resume is None:
            settings = {k: (given[k] if given[k] is not None else DEFAULTS.get(k)) for k in RUN_SETTINGS}
            if given["warmup"] is not None and given["warmup_fraction"] is None:
                settings["warmup_fraction"] = None  # explicit warmup steps replace the default fraction
            if settings["seed"] is None:
                settings["seed"] = int(get_rng().integers(2**31))
            if settings["seq_len"] is None:
                settings["seq_len"] = self.model.config.max_seq_len
            return settings
        saved = _language_meta(resume, io.load_metadata(resume)).get("train", {})
        contradicting = [f"{k}={given[k]!r} (the checkpoint has {saved.get(k)!r})" for k in RUN_SETTINGS
                         if given[k] is not None and k in saved and given[k] != saved[k]]
        if saved.get("text_sha256") not in (None, text_fingerprint(text)):
            contradicting.append("a different text (its sha256 differs from the one the checkpoint trained on)")
        if contradicting:
            raise ValueError(f"{resume}: resuming continues with the checkpoint's settings, but fit was given "
                             + "; ".join(contradicting))
        missing = [k for k in ("batch_size", "seq_len", "lr", "val_fraction", "seed") if k not in saved]
        if missing:
            raise ValueError(f"{resume}: the checkpoint's training settings lack {missing}; it cannot be resumed")
        return {k: saved.get(k, DEFAULTS.get(k)) for k in RUN_SETTINGS}

    # ------------------------------------------------------------------ fit
    def fit(self, text: str, epochs: int | None = None, max_steps: int | None = None,
            batch_size: int | None = None, seq_len: int | None = None, lr: float | None = None,
            warmup: int | None = None, warmup_fraction: float | None = None, val_fraction: float | None = None,
            eval_every: int | None = None, eval_batches: int | None = None, time_budget: float | None = None,
            checkpoint: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
            seed: int | None = None) -> History:
        """Train on ``text`` (tokenized with the tokenizer) and return core's ``History``.

        Limits are totals of the run (a resumed run counts the steps before the resume); with
        none of ``epochs``, ``max_steps`` and ``time_budget``, one epoch. With ``resume`` the
        checkpoint's settings are used, and a contradicting argument is an error naming it.

        Args:
            text: the corpus. The first ``1 - val_fraction`` trains, the rest validates.
            epochs: passes over the training tokens (each token is a target once per epoch).
            max_steps: optimizer steps in total.
            batch_size: sequences per step (default 16).
            seq_len: context per sequence (default: the model's ``max_seq_len``).
            lr: peak learning rate of AdamW (default 1e-3); warmup, then cosine decay to
                ``lr * min_lr_ratio`` at the last step or at the end of the time budget.
            warmup: warmup steps; or else ``warmup_fraction`` of the run (default 0.05), which
                scales with a time budget.
            warmup_fraction: warmup as a share of the run's steps.
            val_fraction: share of the tokens held out for validation (default 0.1; 0: none).
            eval_every: steps between evaluations (default 250, or the run if shorter).
            eval_batches: validation batches per periodic evaluation (None: all); the final
                evaluation always covers the whole validation split.
            time_budget: seconds the call may take, final evaluation and checkpoint included.
            checkpoint: save a checkpoint (model, tokenizer, config, optimizer, position) here
                after every evaluation.
            resume: continue from a checkpoint written by ``checkpoint``/``save_checkpoint``.
            seed: seed of the data order (the random windows of each epoch).

        Returns:
            The ``History``: ``steps`` rows (loss, lr) and ``evals`` rows (step, epoch, loss,
            perplexity, val_loss, val_perplexity, lr, time, tokens_per_sec); ``stop_reason``.
        """
        given = {"batch_size": batch_size, "seq_len": seq_len, "lr": lr, "warmup": warmup,
                 "warmup_fraction": warmup_fraction, "val_fraction": val_fraction, "seed": seed}
        for name in ("batch_size", "seq_len"):
            _check_int(name, given[name], 1, allow_none=True)
        _check_int("warmup", warmup, 0, allow_none=True)
        _check_int("seed", seed, 0, allow_none=True)
        if lr is not None and (not is_real(lr) or not 0 < lr < math.inf):
            raise ValueError(f"fit: lr must be a positive finite number, got {lr!r}")
        settings = self._settings(given, resume, text)
        if settings["seq_len"] > self.model.config.max_seq_len:
            raise ValueError(f"fit: seq_len {settings['seq_len']} exceeds the model's max_seq_len="
                             f"{self.model.config.max_seq_len}")
        if self.distiller is not None and settings["seq_len"] > self.distiller.teacher.config.max_seq_len:
            raise ValueError(f"fit: seq_len {settings['seq_len']} exceeds the teacher's max_seq_len="
                             f"{self.distiller.teacher.config.max_seq_len}")
        b, t = settings["batch_size"], settings["seq_len"]
        tokens = self._tokens(text)
        train_tokens, val_tokens = split_tokens(tokens, settings["val_fraction"])
        train_set = TokenWindows(train_tokens, t, random_starts=True, seed=settings["seed"])
        loader = DataLoader(train_set, batch_size=b, shuffle=True, drop_last=len(train_set) >= b,
                            seed=settings["seed"])
        val_loader = None
        if settings["val_fraction"] > 0:
            if len(val_tokens) < t + 1:
                raise ValueError(
                    f"fit: the validation split has {len(val_tokens)} tokens, fewer than seq_len + 1 = "
                    f"{t + 1}; use more text, a larger val_fraction or a shorter seq_len"
                )
            val_loader = DataLoader(TokenWindows(val_tokens, t), batch_size=b)

        optimizer = AdamW(weight_decay_groups(self.model, self.weight_decay), lr=settings["lr"], betas=self.betas)
        # An open-ended schedule: the Trainer gives it the run's length (or what the budget allows).
        scheduler = WarmupCosineLR(optimizer, total_steps=None, warmup_steps=settings["warmup"] or 0,
                                   warmup_fraction=settings["warmup_fraction"], min_lr_ratio=self.min_lr_ratio)
        planned = None
        if time_budget is None:
            limits = [n for n in ((epochs or (0 if max_steps else 1)) * len(loader), max_steps) if n]
            planned = min(limits)
        self.train_config = {**settings, "text_sha256": text_fingerprint(text)}
        if self.distiller is not None:
            self.train_config["distillation"] = {
                "temperature": self.distiller.temperature, "alpha": self.distiller.alpha,
                "teacher_config": self.distiller.teacher.config.to_dict()}
        callbacks: list[Callback] = [_Perplexity()]
        if checkpoint is not None:
            callbacks.append(ModelCheckpoint(checkpoint, metadata=self._metadata))
        self.trainer = Trainer(self.model, optimizer, self.distiller or lm_loss, callbacks=callbacks, scheduler=scheduler,
                               grad_clip=self.grad_clip, progress=self.progress, unit="tokens",
                               on_nonfinite=self.on_nonfinite,
                               count_units=lambda x: int(np.prod(x.shape)))
        if resume is not None:
            self._resume(resume)
        every = eval_every or (min(DEFAULT_EVAL_EVERY, planned) if planned else DEFAULT_EVAL_EVERY)
        self.history = self.trainer.fit(loader, epochs=epochs, max_steps=max_steps, time_budget=time_budget,
                                        val_data=val_loader, eval_every=every, eval_batches=eval_batches)
        return self.history

    def _metadata(self) -> dict[str, Any]:
        return _language_metadata(self.model, self.tokenizer, self.train_config)

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
        """Model, tokenizer, config (and optimizer, position and history once ``fit`` ran), atomically.

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
        if self.trainer is not None and self.trainer.optimizer is not None:
            self.trainer.save_checkpoint(path, extra_metadata=self._metadata())
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


def _language_metadata(model: TinyGPT, tokenizer: Tokenizer, train: dict[str, Any] | None = None,
                       pretrained: str | None = None) -> dict[str, Any]:
    config = model.config
    version = 1 if config.layer_heads is None and config.layer_d_ff is None else 2
    meta = {"format_version": version, "model": type(model).__name__, "config": config.to_dict(),
            "tokenizer": tokenizer.to_dict(), "train": dict(train or {})}
    if pretrained is not None:
        meta["pretrained"] = pretrained
    return {CHECKPOINT_KEY: meta}


def save_model(path: str | os.PathLike, model: TinyGPT, tokenizer: Tokenizer,
               train: dict[str, Any] | None = None, pretrained: str | None = None) -> None:
    """Save weights, config and tokenizer (no optimizer state) to a safetensors file.

    Args:
        path: the file to write.
        model: the model (its ``config`` is stored too).
        tokenizer: the model's tokenizer, stored in the metadata.
        train: the training settings to record, if any.
        pretrained: the GPT-2 directory (Hugging Face's layout) the weights came from, for a
            model optimized from one: `benchmark_target` then evaluates the file on the data and
            windows it uses for that directory, so the two compare.

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
    metadata = {"kind": "tinytorch.language.model", **_language_metadata(model, tokenizer, train, pretrained)}
    if quantized_layers(model):  # after quantize_: narrow tensors and the scheme in the metadata
        save_quantized(path, model, metadata)
    else:
        save_model_state(path, model, metadata)


def _float_shapes(path: Any, metadata: dict[str, Any], shapes: dict[str, Any]) -> dict[str, Any]:
    """The tensor shapes a quantized file stands for: each quantized layer's float weight in place
    of its narrow tensors, so the config is checked against the file before a model is built."""
    shapes = dict(shapes)
    for fqn, (cls, config) in read_scheme(Path(path), metadata).items():
        rows = config.get("out_features", config.get("num_embeddings"))
        width = config.get("in_features", config.get("embedding_dim"))
        if rows is None or width is None:
            continue  # a scheme with other settings: its check_target compares it with the model
        for name in cls.scheme_tensors(config):
            if name != "bias":
                shapes.pop(f"model.{fqn}.{name}", None)
        shapes[f"model.{fqn}.weight"] = (rows, width)
    return shapes


def _language_meta(path: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    lang = metadata.get(CHECKPOINT_KEY)
    if not isinstance(lang, dict):
        kind = metadata.get("kind", "unknown")
        raise ValueError(
            f"{path} is not a tinytorch-language checkpoint: it has no {CHECKPOINT_KEY!r} metadata "
            f"(kind: {kind}); train one with `tito language train` or LanguageModelTrainer.save_checkpoint"
        )
    version = lang.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path} is a tinytorch-language checkpoint of format version {version!r}; this "
            f"version reads formats {', '.join(map(str, READABLE_VERSIONS))}"
        )
    config = lang.get("config")
    if version == 1 and isinstance(config, dict) and (config.get("layer_heads") or config.get("layer_d_ff")):
        raise ValueError(f"{path}: a format-1 checkpoint cannot hold per-block sizes (layer_heads, layer_d_ff); "
                         "the file is inconsistent")
    if lang.get("model") != "TinyGPT":
        raise ValueError(f"{path} holds a {lang.get('model')!r} model, expected 'TinyGPT'")
    if not isinstance(lang.get("pretrained", ""), str):
        raise ValueError(f"{path}: its 'pretrained' metadata must name a GPT-2 directory (a string), got "
                         f"{lang['pretrained']!r}")
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
    # Everything is checked from the header before any weight is read or any model is built: an
    # edited config (max_seq_len 10**8) must not allocate gigabytes before its shape error.
    metadata = io.load_metadata(path)
    lang = _language_meta(path, metadata)
    if "config" not in lang:
        raise ValueError(f"{path}: its {CHECKPOINT_KEY!r} metadata has no model config")
    shapes = io.tensor_shapes(path)
    quantized = QUANTIZATION_KEY in metadata
    config = check_config_against_shapes(path, lang["config"], _float_shapes(path, metadata, shapes) if quantized
                                         else shapes)
    try:
        tokenizer = Tokenizer.from_dict(lang["tokenizer"], source=f"the tokenizer in {path}")
    except KeyError:
        raise TokenizerError(f"{path} has no tokenizer in its metadata") from None
    check_vocab_sizes(path, tokenizer.vocab_size, config.vocab_size)
    if quantized:  # weight-only int8/int4 modules, rebuilt from the file (see tinytorch.core.quantization)
        return load_quantized(TinyGPT.from_config(config, init_weights=False), path), tokenizer, metadata
    model_state, metadata = load_model_state(path)
    model = TinyGPT.from_config(config)
    try:
        model.load_state_dict(model_state)
    except ValueError as e:
        raise ValueError(f"{path}: the weights do not match a TinyGPT with its config: {e}") from e
    model.eval()
    return model, tokenizer, metadata


# ---------------------------------------------------------------------- generation


def _start_ids(tokenizer: Tokenizer) -> list[int]:
    """What an empty prompt conditions on: GPT-2's ``<|endoftext|>`` (as transformers and nanoGPT
    start), else a newline token, else id 0."""
    special = getattr(tokenizer, "special_tokens", None) or {}
    if END_OF_TEXT in special:
        return [special[END_OF_TEXT]]
    try:
        return tokenizer.encode("\n")[:1] or [0]
    except ValueError:
        return [0]


def generate_text(model: TinyGPT, tokenizer: Tokenizer, prompt: str = "", max_length: int = 200,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  seed: int | None = None) -> str:
    """Continue ``prompt`` by ``max_length`` tokens, sampled with the KV cache.

    Returns ``prompt`` followed by the generated text. A prompt longer than the model's context
    is cropped to its last ``max_seq_len`` tokens for conditioning (the returned text still
    starts with the whole prompt). An empty prompt starts from ``<|endoftext|>`` when the
    tokenizer has it (GPT-2), else from a newline token when it has one, else from id 0; the
    start token is not included in the result.

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
    if not is_int(max_length) or max_length < 0:
        raise ValueError(f"generate_text: max_length must be a non-negative integer, got {max_length!r}")
    ids = tokenizer.encode(prompt) if prompt else []
    if not ids:
        ids = _start_ids(tokenizer)
    skip = len(ids)
    out = model.generate(np.asarray([ids], dtype=np.int64), max_length, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed)
    return prompt + tokenizer.decode(out[0, skip:])


__all__ = ["LanguageModelTrainer", "generate_text", "load_checkpoint", "save_model", "lm_loss"]


# ---------------------------------------------------------------------- benchmarking

#: A GPT-2 directory is benchmarked on windows of this many tokens (nanoGPT's fine-tuning context;
#: GPT-2's own 1,024 makes one query of the 124M model take seconds on a laptop CPU).
GPT2_BENCHMARK_CONTEXT = 128


def _validation_tokens(model: TinyGPT, tokenizer: Tokenizer, train: dict[str, Any],
                       path: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """The Tiny Shakespeare training and validation tokens of a checkpoint, and a description."""
    from .data import load_shakespeare

    text = load_shakespeare()
    val_fraction = train.get("val_fraction") or 0.1
    try:
        tokens = np.asarray(tokenizer.encode(text), dtype=np.int64)
    except (TokenizerError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: its tokenizer cannot encode Tiny Shakespeare, the benchmark's "
                         f"validation text: {e}") from None
    train_tokens, val = split_tokens(tokens, val_fraction)
    described = f"Tiny Shakespeare validation split (last {val_fraction:.0%} of the tokens)"
    if train.get("text_sha256") not in (None, text_fingerprint(text)):
        described += "; the checkpoint trained on another text"
    elif not train.get("val_fraction"):
        described += "; the checkpoint trained on all of Tiny Shakespeare, this split included"
    return train_tokens, val, described


def _gpt2_directory(directory: Path) -> tuple[TinyGPT, Tokenizer, np.ndarray, str]:
    from .tokenizers import BPETokenizer

    try:
        tokenizer = BPETokenizer.from_gpt2(directory)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{directory}: a GPT-2 directory needs GPT-2's tokenizer files (vocab.json + merges.txt, "
            f"or encoder.json + vocab.bpe) beside config.json and model.safetensors") from None
    model = TinyGPT.from_pretrained(directory)
    check_vocab_sizes(directory, tokenizer.vocab_size, model.config.vocab_size)
    return (model, tokenizer, *_gpt2_validation(tokenizer))


def _gpt2_validation(tokenizer: Tokenizer) -> tuple[np.ndarray, str]:
    """The validation tokens of a GPT-2 directory (and of a model optimized from one)."""
    from .data import load_shakespeare

    text = load_shakespeare()
    # GPT-2 never trained on this split: the last 10% of the characters, tokenized alone (BPE of
    # the whole text in Python would take minutes).
    val_text = text[int(round(len(text) * 0.9)):]
    tokens = np.asarray(tokenizer.encode(val_text), dtype=np.int64)
    return tokens, "Tiny Shakespeare validation split (last 10% of the characters)"


def _training_windows(tokens: np.ndarray, seq_len: int, what: Any) -> TokenWindows:
    if len(tokens) < seq_len + 1:
        raise ValueError(f"{what}: {len(tokens)} training tokens, fewer than one window of {seq_len + 1}")
    return TokenWindows(tokens, seq_len)


def benchmark_target(path: str, limit: int | None = None) -> dict[str, Any] | None:
    """What ``tito performance benchmark`` needs to benchmark a TinyGPT checkpoint or a GPT-2
    directory (the ``tinytorch.benchmarks`` entry point): the model, validation windows as
    inputs and the validation loss as its accuracy. None for anything else.

    A TinyGPT checkpoint is evaluated on the validation split it trained with (the last
    ``val_fraction`` of Tiny Shakespeare's tokens, windows of its training ``seq_len``), so its
    validation loss is the one its training run reported last. A GPT-2 directory (Hugging Face's
    layout: config.json, model.safetensors or shards, and the tokenizer's vocab.json + merges.txt
    or encoder.json + vocab.bpe) is evaluated on the last 10% of Tiny Shakespeare's characters in
    windows of ``GPT2_BENCHMARK_CONTEXT`` tokens, and so is the checkpoint ``save`` writes of a
    model optimized from one (its metadata names the directory), so the two compare; neither
    offers fine-tuning (no training split).

    Args:
        path: a file or directory.
        limit: evaluate on at most this many windows (None: all).

    Returns:
        ``BenchmarkTarget`` fields (name, model, inputs, num_samples, evaluate, checkpoint,
        description), or None when ``path`` is neither a language checkpoint nor a directory
        with a ``config.json``.

    >>> import tempfile
    >>> from tinytorch.language import CharTokenizer
    >>> from tinytorch.language.data import load_shakespeare
    >>> tok = CharTokenizer().fit(load_shakespeare())
    >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_model(Path(tmp) / "lm.safetensors", model, tok)
    ...     target = benchmark_target(str(Path(tmp) / "lm.safetensors"))
    >>> target["inputs"](np.arange(2)).shape, target["evaluate"](target["model"], 3)["metric"]
    ((2, 16), 'val_loss')
    """
    p = Path(path)
    if p.is_dir():
        from .pretrained import CONFIG_NAME

        if not (p / CONFIG_NAME).is_file():
            return None
        model, tokenizer, val, described = _gpt2_directory(p)
        seq_len, kind = min(GPT2_BENCHMARK_CONTEXT, model.config.max_seq_len), "GPT-2 directory"
        train_tokens, train, pretrained = None, {}, str(p)
    else:
        if not isinstance(io.load_metadata(p).get(CHECKPOINT_KEY), dict):
            return None
        model, tokenizer, metadata = load_checkpoint(p)
        train = metadata[CHECKPOINT_KEY].get("train") or {}
        pretrained = metadata[CHECKPOINT_KEY].get("pretrained")
        if pretrained is not None:  # optimized from a GPT-2 directory: evaluated as that directory is
            val, described = _gpt2_validation(tokenizer)
            seq_len, kind = min(GPT2_BENCHMARK_CONTEXT, model.config.max_seq_len), "GPT-2 optimized checkpoint"
            train_tokens = None
        else:
            train_tokens, val, described = _validation_tokens(model, tokenizer, train, p)
            seq_len, kind = train.get("seq_len") or model.config.max_seq_len, "TinyGPT checkpoint"
    windows = (len(val) - 1) // seq_len
    if windows < 1:
        raise ValueError(f"{path}: the validation split has {len(val)} tokens, fewer than one window "
                         f"of {seq_len + 1}")
    model.eval()

    def inputs(indices: np.ndarray) -> np.ndarray:
        starts = np.asarray(indices, dtype=np.int64)[:, None] * seq_len  # (B, 1)
        return val[starts + np.arange(seq_len)]  # (B, T)

    def evaluate(m: TinyGPT, n: int | None) -> dict[str, Any]:
        count = windows if n is None else min(n, windows)
        loader = DataLoader(TokenWindows(val[:count * seq_len + 1], seq_len), batch_size=16)
        loss = Trainer(m, None, lm_loss, progress=False).evaluate(loader)["loss"]
        return {"metric": "val_loss", "value": loss, "higher_is_better": False,
                "perplexity": _exp(loss), "dataset": described, "samples": count,
                "tokens": count * seq_len, "seq_len": seq_len}

    def calibration(n: int) -> list[np.ndarray]:
        # training windows (the validation ones measure the loss); a GPT-2 directory has no
        # training split here, so its calibration reads validation windows and says so in the docs
        source = train_tokens if train_tokens is not None else val
        data = _training_windows(source, seq_len, p)
        picked = np.random.default_rng(0).choice(len(data), size=min(n, len(data)), replace=False)
        return [np.stack([data[int(i)][0] for i in picked[k:k + 16]]) for k in range(0, len(picked), 16)]

    def finetune(m: TinyGPT, steps: int, lr: float = 1e-4) -> dict[str, Any]:
        """``steps`` AdamW steps of core's Trainer on the checkpoint's training windows (masks hold)."""
        loader = DataLoader(_training_windows(train_tokens, seq_len, p), batch_size=train.get("batch_size") or 16,
                            shuffle=True, seed=train.get("seed") or 0)
        trainer = Trainer(m.train(), AdamW(weight_decay_groups(m, 0.0), lr=lr), lm_loss, progress=False,
                          unit="tokens")
        history = trainer.fit(loader, max_steps=steps)
        m.eval()
        return {"steps": steps, "lr": lr, "final_loss": history.steps[-1]["loss"] if history.steps else None}

    def save(m: TinyGPT, out: str) -> None:
        from tinytorch.core.paths import check_outputs

        check_outputs({"--out": out}, {"CHECKPOINT": p})
        save_model(out, m, tokenizer, train or None, pretrained)  # a TinyGPT checkpoint this loader reads again

    c = model.config
    return {"name": p.stem if p.is_file() else p.name, "model": model, "inputs": inputs,
            "num_samples": windows, "evaluate": evaluate, "checkpoint": str(p), "calibration": calibration,
            # a GPT-2 directory has no training split here: nothing to fine-tune on
            "finetune": finetune if train_tokens is not None else None, "save": save,
            "description": f"{kind}: TinyGPT d_model {c.d_model}, {c.num_layers} layers, "
                           f"{c.num_heads} heads, vocab {c.vocab_size}; a sample is a window of "
                           f"{seq_len} tokens of {described}"}
