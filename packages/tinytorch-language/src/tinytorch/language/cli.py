"""`tito language`: train a TinyGPT, distil one into a smaller one, generate from a checkpoint,
train or apply a tokenizer.

Loaded by tito only when invoked (it may import click and rich, which tito brings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click

from tinytorch.core.checks import is_int
from tinytorch.core.cli_params import FiniteFloat, given_on_command_line, relaunch_on_ranks
from tinytorch.core.paths import check_outputs, continuation_path

DEFAULT_OUT = "checkpoints/tinygpt.safetensors"
DEFAULT_MAX_STEPS = 2000


def _read_text(path: str | None) -> tuple[str, str]:
    from .data import load_shakespeare

    if path is None:
        return load_shakespeare(), "Tiny Shakespeare (packaged)"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except UnicodeDecodeError as e:
        raise ValueError(f"--text {path} is not UTF-8 text: {e}") from None


class WholeNumber(click.IntRange):
    """A ``click.IntRange`` that also reads a whole number in exponent notation (``1e6``), so a
    size written that way reaches the memory checks (`_check_training_fits`) instead of failing
    as "not a valid integer"."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and any(c in value for c in ".eE"):
            from decimal import Decimal, InvalidOperation

            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
            if number is not None and number.is_finite() and number == number.to_integral_value():
                if number.adjusted() > 30:  # more than 10**30: nothing of that size fits anywhere
                    self.fail(f"{value} is far larger than any memory", param, ctx)
                value = int(number)
        return super().convert(value, param, ctx)


def _check_training_fits(ctx, tokenizer_kind: str, settings: dict[str, int]) -> None:
    """Refuse, before any work, a model too large to train in this machine's memory, naming
    the option typed on the command line and the largest value of it that fits (`_memory`)."""
    from ._memory import format_bytes, largest_fitting, physical_memory_bytes, training_bytes

    memory = physical_memory_bytes()
    if memory is None:
        return
    # a lower bound: BPE has at least its 256 byte ids; a char or word vocabulary at least 1 id
    settings = {**settings, "vocab_size": settings["vocab_size"] or (512 if tokenizer_kind == "bpe" else 1)}

    def needs(**values: int) -> int:
        return training_bytes(values["vocab_size"], values["d_model"], values["heads"], values["layers"],
                              values["context"], values["batch_size"])

    total = needs(**settings)
    if total <= memory:
        return
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    for name, value in settings.items():
        if not given_on_command_line(ctx, name):
            continue
        largest = largest_fitting(lambda n, name=name: needs(**{**settings, name: n}), value, memory)
        if largest < value:
            fits = (f"the largest {flags[name]} that fits with the other settings is {largest:,}" if largest
                    else f"even {flags[name]} 1 does not fit with the other settings")
            raise click.BadParameter(
                f"{value:,} needs at least {format_bytes(total)} to train (weights, gradients, AdamW state "
                f"and one step's activations), more than this machine's {format_bytes(memory)}; {fits}",
                param_hint=flags[name])


def _check_generation_fits(tokens: int, option: str) -> None:
    """Refuse, before any work, more generated tokens than this machine's memory can hold."""
    from ._memory import GENERATED_TOKEN_BYTES, format_bytes, physical_memory_bytes

    memory = physical_memory_bytes()
    if memory is not None and tokens * GENERATED_TOKEN_BYTES > memory:
        raise click.BadParameter(
            f"{tokens:,} tokens need at least {format_bytes(tokens * GENERATED_TOKEN_BYTES)} "
            f"({GENERATED_TOKEN_BYTES} bytes each), more than this machine's {format_bytes(memory)}; "
            f"the largest {option} that fits is {memory // GENERATED_TOKEN_BYTES:,}", param_hint=option)


def _make_tokenizer(kind: str, vocab_size: int | None):
    from .tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    if kind == "char":
        return CharTokenizer()
    if kind == "word":
        return WordTokenizer(max_vocab_size=vocab_size)
    return BPETokenizer(vocab_size=vocab_size or 512)


@click.group()
def language() -> None:
    """Language models: train TinyGPT on Tiny Shakespeare, generate text, tokenize."""


# Two recipes, picked by the time budget. A short budget gets nanoGPT's CPU model (4 layers,
# 4 heads, d_model 128, context 64, batch 12) at a higher peak lr: measured here after 1,000
# steps (seed 0, whole validation split) lr 2e-3 gave 1.988, 3e-3 1.919, 4e-3 1.913, so a
# 90 s run ends below 2.0 where TinyGPT's default model (d_model 256, context 128) is still
# warming up. Longer runs get that model. Any option given on the command line overrides the recipe.
SMALL_RECIPE = {"d_model": 128, "heads": 4, "layers": 4, "context": 64, "batch_size": 12, "lr": 3e-3}
DEFAULT_MODEL_RECIPE = {"d_model": 256, "heads": 8, "layers": 4, "context": 128, "batch_size": 16, "lr": 1e-3}
SMALL_RECIPE_UP_TO = 600.0  # seconds of budget
# Fine-tuning a pretrained GPT-2 (--init-from) follows nanoGPT's finetune_shakespeare.py: a small
# constant-scale lr (3e-5) and no dropout; batch 4 of 128 tokens keeps a 124M-parameter step to a
# few seconds on a laptop CPU.
FINETUNE_RECIPE = {"context": 128, "batch_size": 4, "lr": 3e-5, "dropout": 0.0}


def _options(*options: Callable) -> Callable:
    """Several click options as one decorator, listed in the order given (train and distill
    share them)."""
    def apply(command: Callable) -> Callable:
        for option in reversed(options):  # decorators apply bottom-up
            command = option(command)
        return command
    return apply


_run_length_options = _options(
    click.option("--warmup", type=click.IntRange(min=0),
                 help="Warmup steps [default: 5% of the run, which scales with a time budget]."),
    click.option("--max-steps", type=click.IntRange(min=1),
                 help=f"Optimizer steps (default {DEFAULT_MAX_STEPS} unless --epochs or --time-budget is given)."),
    click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training tokens."),
)
_evaluation_options = _options(
    click.option("--eval-every", type=click.IntRange(min=1), help="Steps between evaluations [default: 250]."),
    click.option("--eval-batches", type=click.IntRange(min=1),
                 help="Validation batches per periodic evaluation [default: 20]; the final one uses all."),
)


def _recipe(time_budget: float | None) -> tuple[str, dict]:
    if time_budget is not None and time_budget <= SMALL_RECIPE_UP_TO:
        return "nanoGPT's CPU model (fits a short budget)", SMALL_RECIPE
    return "TinyGPT's default model (d_model 256, 8 heads, context 128)", DEFAULT_MODEL_RECIPE


@language.command()
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False),
              help="UTF-8 training text (default: the packaged Tiny Shakespeare).")
@click.option("--tokenizer", "tokenizer_kind", type=click.Choice(["char", "word", "bpe"]), default="char",
              show_default=True)
@click.option("--vocab-size", type=WholeNumber(min=2), help="BPE/word vocabulary size (BPE default 512).")
@click.option("--d-model", type=WholeNumber(min=1), help="Width [recipe: 128 for budgets <= 10 min, else 256].")
@click.option("--heads", type=WholeNumber(min=1), help="Attention heads [recipe: 4 or 8].")
@click.option("--layers", type=WholeNumber(min=1), help="Transformer blocks [recipe: 4].")
@click.option("--context", type=WholeNumber(min=1),
              help="Context length (max_seq_len and training sequence length) [recipe: 64 or 128].")
@click.option("--dropout", default=0.0, show_default=True, type=FiniteFloat(0, 1, max_open=True))
@click.option("--batch-size", type=WholeNumber(min=1), help="Sequences per step [recipe: 12 or 16].")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), help="Peak learning rate [recipe: 3e-3 or 1e-3].")
@_run_length_options
@click.option("--time-budget", type=FiniteFloat(min=0, min_open=True),
              help="Seconds for the whole run, final evaluation and checkpoint included; the LR schedule "
                   "is fitted to it.")
@click.option("--val-fraction", type=FiniteFloat(0, 1, max_open=True), help="Held-out share [default: 0.1].")
@_evaluation_options
@click.option("--out", type=click.Path(dir_okay=False),
              help=f"Checkpoint written after every evaluation [default: {DEFAULT_OUT}; with --resume RUN.safetensors, "
                   "RUN-2.safetensors: the file a run continues from is kept].")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False),
              help="Continue training from this checkpoint (its model, tokenizer and settings are used).")
@click.option("--init-from", "init_from",
              help="Fine-tune a GPT-2 checkpoint in Hugging Face's layout: a directory (config.json, "
                   "model.safetensors, vocab.json + merges.txt) or a Hub name such as gpt2. Recipe: "
                   "lr 3e-5, batch 4, context 128, dropout 0.")
@click.option("--tokenizer-from", "tokenizer_from", type=click.Path(exists=True),
              help="With --init-from: the tokenizer, when the checkpoint directory has none (GPT-2's "
                   "files in a directory, or a saved tokenizer file).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the weights and the data order [default: 0].")
@click.option("--threads", default="auto", show_default=True,
              help="BLAS threads: a number, or 'auto' (one per physical core not kept busy by another program).")
@click.option("--nproc", default="1", show_default=True,
              help="Data-parallel ranks (MPI): a number, or 'auto' (one per physical core). Each rank "
                   "takes batch-size/N sequences of every batch and one BLAS thread. A rank left waiting "
                   "10 minutes for another ends the job.")
@click.option("--oversubscribe", is_flag=True, help="With --nproc: allow more ranks than this machine has cores.")
@click.option("--sample", default=200, show_default=True, type=WholeNumber(min=0),
              help="Characters/tokens to generate after training (0: none).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw the training curves (loss, validation, learning rate) to this .png or .svg "
                   "(later: tito plot CHECKPOINT).")
@click.option("--no-progress", "no_progress", is_flag=True,
              help="No progress display at all (the result is still printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress display).")
@click.pass_context
def train(ctx, text_path, tokenizer_kind, vocab_size, d_model, heads, layers, context, dropout, batch_size, lr,
          warmup, max_steps, epochs, time_budget, val_fraction, eval_every, eval_batches, out, resume,
          init_from, tokenizer_from, seed, threads, nproc, oversubscribe, sample, plot_path, no_progress, as_json) -> None:
    """Train TinyGPT on Tiny Shakespeare (or --text), char-level by default; or fine-tune GPT-2.

    \b
    The main job (about 95 s on 2 cores; validation loss below 2.0):
      tito language train --time-budget 90
    Fine-tune GPT-2 (its tokenizer comes from the same directory):
      tito language train --init-from DIR --time-budget 600
    """
    from tinytorch.core import distributed as dist
    from tinytorch.core import io, manual_seed, set_num_threads
    from tinytorch.core.threads import choose_threads, parse_threads

    from .model import TinyGPT
    from .training import LanguageModelTrainer, load_checkpoint

    try:
        parse_threads(threads)  # a bad --threads fails here, before any data is read
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--threads") from None
    architecture = {"tokenizer_kind": tokenizer_kind, "vocab_size": vocab_size, "d_model": d_model, "heads": heads,
                    "layers": layers}
    if init_from is not None:
        _refuse_with(ctx, "--init-from", resume=resume, **architecture)
    elif tokenizer_from is not None:
        raise click.UsageError("--tokenizer-from needs --init-from (a scratch run trains its own tokenizer)")
    if init_from is None and resume is None:
        given = {"layers": layers, "d_model": d_model, "context": context, "batch_size": batch_size, "heads": heads}
        recipe = _recipe(time_budget)[1]
        _check_training_fits(ctx, tokenizer_kind, {**{k: v if v is not None else recipe[k] for k, v in given.items()},
                                                   "vocab_size": vocab_size})
    _check_generation_fits(sample, "--sample")
    if plot_path is not None:  # before training, not after it
        from tinytorch.core.viz import check_figure_path, require_matplotlib

        check_figure_path(plot_path, "--plot")
        require_matplotlib()
    out = out or (str(continuation_path(resume)) if resume else DEFAULT_OUT)
    check_outputs({"--out": out, "--plot": plot_path},
                  {"--text": text_path, "--resume": resume, "--tokenizer-from": tokenizer_from,
                   "--init-from": init_from if init_from is not None and Path(init_from).exists() else None})
    default_batch = (FINETUNE_RECIPE if init_from is not None else _recipe(time_budget)[1])["batch_size"]
    relaunch_on_ranks(ctx, nproc, ("language", "train"),
                      batch_size if batch_size is not None or resume else default_batch, "sequences",
                      oversubscribe=oversubscribe)
    n_threads, threads_note = choose_threads(threads)
    set_num_threads(n_threads)
    io.check_destination(out, what="--out")  # before training, not after the first evaluation
    text, source = _read_text(text_path)
    seq_len = None
    if resume:
        _refuse_with(ctx, "--resume", **architecture, context=context, dropout=dropout)
        model, tokenizer, _ = load_checkpoint(resume)
        recipe_name = "the checkpoint's model"
    elif init_from is not None:
        recipe = FINETUNE_RECIPE
        model, tokenizer = _load_pretrained(init_from, tokenizer_from, "--tokenizer-from",
                                            dropout=dropout if given_on_command_line(ctx, "dropout")
                                            else recipe["dropout"])
        seq_len = context if context is not None else min(recipe["context"], model.config.max_seq_len)
        if seq_len > model.config.max_seq_len:
            raise click.BadParameter(f"{seq_len} is longer than the model's context "
                                     f"({model.config.max_seq_len} positions)", param_hint="--context")
        batch_size = batch_size if batch_size is not None else recipe["batch_size"]
        lr = lr if lr is not None else recipe["lr"]
        seed = 0 if seed is None else seed
        manual_seed(seed)
        recipe_name = f"GPT-2 from {init_from}, fine-tuned (nanoGPT's recipe)"
    else:
        recipe_name, recipe = _recipe(time_budget)
        d_model, heads, layers, context = (v if v is not None else recipe[k] for k, v in
                                           (("d_model", d_model), ("heads", heads), ("layers", layers),
                                            ("context", context)))
        batch_size = batch_size if batch_size is not None else recipe["batch_size"]
        lr = lr if lr is not None else recipe["lr"]
        seed = 0 if seed is None else seed
        manual_seed(seed)
        tokenizer = _make_tokenizer(tokenizer_kind, vocab_size)
        tokenizer.fit(text)
        model = TinyGPT(tokenizer.vocab_size, d_model, heads, layers, context, dropout)
        seq_len = context
    if max_steps is None and epochs is None and time_budget is None:
        max_steps = DEFAULT_MAX_STEPS
    lm = LanguageModelTrainer(model, tokenizer, progress=not (as_json or no_progress) and "auto",
                              on_nonfinite="stop")
    if not as_json:
        c = model.config
        click.echo(f"{source}: {len(text):,} characters -> {type(tokenizer).__name__} ({tokenizer.vocab_size} ids)")
        click.echo(f"{'TinyGPT, ' if init_from is None else ''}{recipe_name}: {model.num_parameters():,} "
                   f"parameters (d_model {c.d_model}, "
                   f"{c.num_heads} heads, {c.num_layers} layers, context {c.max_seq_len}); "
                   f"{n_threads} BLAS thread(s)" + (f" on each of {dist.get_world_size()} ranks"
                                                     if dist.is_distributed() else "")
                   + (f"; time budget {time_budget:g} s, warmup and LR schedule fitted to it" if time_budget else ""))
        if threads_note:
            click.echo(threads_note)
    _fit_and_report(ctx, lm, text, out, resume=resume, seed=seed, sample=sample, as_json=as_json,
                    threads=n_threads, epochs=epochs, max_steps=max_steps, batch_size=batch_size, seq_len=seq_len,
                    lr=lr, warmup=warmup, val_fraction=val_fraction, eval_every=eval_every,
                    eval_batches=eval_batches or 20, time_budget=time_budget, plot_path=plot_path,
                    plot_title=f"TinyGPT on {source}")


def _fit_and_report(ctx, lm, text: str, out: str, *, resume: str | None, seed: int | None, sample: int,
                    as_json: bool, threads: int, extra: dict | None = None, resumable: bool = True,
                    plot_path: str | None = None, plot_title: str = "TinyGPT", **fit_args) -> dict:
    """Run ``lm.fit`` (checkpoints to ``out``), then print the result (a summary, a sample, or JSON)
    and exit non-zero if training was interrupted or diverged: `train` and `distill` alike."""
    start = time.perf_counter()
    history = lm.fit(text, checkpoint=out, resume=resume, seed=seed, **fit_args)
    elapsed = time.perf_counter() - start
    last = history.evals[-1] if history.evals else {}
    saved_step = _checkpoint_step(out)
    result = {
        "checkpoint": str(out), "checkpoint_step": saved_step, "steps": lm.trainer.global_step,
        "seconds": round(elapsed, 1), "stop_reason": history.stop_reason, "stop_detail": history.stop_detail,
        "shortened_eval": history.shortened_eval,
        "train_loss": last.get("loss"), "val_loss": last.get("val_loss"),
        "val_perplexity": last.get("val_perplexity"), "tokens_per_sec": last.get("tokens_per_sec"),
        "settings": {k: lm.train_config.get(k) for k in ("batch_size", "seq_len", "lr", "warmup",
                                                         "warmup_fraction", "val_fraction", "seed")},
        "threads": threads, "tokens_per_sec_contention": lm.trainer.throughput_contention, **(extra or {}),
    }
    failed = history.stop_reason in ("non_finite", "interrupted")
    if sample and not failed:
        from .data import known_word_share

        # Temperature 0.6: measured on a 90 s model, 80% of the sampled words are Shakespeare's
        # words at 0.6 against 64% at 0.8; the share is computed and printed with the sample.
        result["sample"] = lm.generate_text("", max_length=sample, temperature=0.6, seed=seed or 0)
        result["sample_known_words"] = known_word_share(result["sample"], text)
    if plot_path is not None and history.steps:
        from tinytorch.core import distributed as dist
        from tinytorch.core.viz import plot_history

        if dist.get_rank() == 0:
            plot_history(history, plot_path, title=plot_title)
            result["plot"] = plot_path
    if as_json:
        click.echo(json.dumps(result))
    else:
        _report(result, elapsed, resume, resumable)
        if result.get("plot"):
            click.echo(f"training curves: {plot_path}")
    if history.stop_reason == "interrupted":
        ctx.exit(130)
    if history.stop_reason == "non_finite":
        ctx.exit(1)
    return result


DEFAULT_DISTILL_OUT = "checkpoints/tinygpt_distilled.safetensors"


@language.command()
@click.option("--teacher", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The trained model to imitate: a checkpoint written by `tito language train`.")
@click.option("--student", "student_path", type=click.Path(exists=True, dir_okay=False),
              help="Start the student from this checkpoint instead of a new model (its tokenizer must be "
                   "the teacher's).")
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False),
              help="UTF-8 training text (default: the packaged Tiny Shakespeare).")
@click.option("--d-model", type=WholeNumber(min=1), help="Student width [default: half the teacher's].")
@click.option("--heads", type=WholeNumber(min=1), help="Student attention heads [default: the teacher's].")
@click.option("--layers", type=WholeNumber(min=1), help="Student Transformer blocks [default: the teacher's].")
@click.option("--context", type=WholeNumber(min=1),
              help="Student context (at most the teacher's) [default: the teacher's].")
@click.option("--dropout", default=0.0, show_default=True, type=FiniteFloat(0, 1, max_open=True))
@click.option("--temperature", default=2.0, show_default=True, type=FiniteFloat(min=0, min_open=True),
              help="Divides both models' logits before the softmax; above 1 the student also learns how the "
                   "teacher ranks the unlikely tokens.")
@click.option("--alpha", default=0.5, show_default=True, type=FiniteFloat(0, 1),
              help="Weight of the teacher's soft targets (times T²); 1 - alpha weighs the text's next tokens.")
@click.option("--batch-size", type=WholeNumber(min=1), help="Sequences per step [default: the teacher's run's].")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), help="Peak learning rate [default: the teacher's run's].")
@_run_length_options
@click.option("--time-budget", type=FiniteFloat(min=0, min_open=True),
              help="Seconds for the whole run, teacher forwards, final evaluation and checkpoint included.")
@click.option("--val-fraction", type=FiniteFloat(0, 1, max_open=True),
              help="Held-out share [default: the teacher's run's, so the teacher never saw the validation text].")
@_evaluation_options
@click.option("--out", default=DEFAULT_DISTILL_OUT, show_default=True, type=click.Path(dir_okay=False),
              help="The student's checkpoint, written after every evaluation.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the student's weights and the data order [default: 0].")
@click.option("--threads", default="auto", show_default=True,
              help="BLAS threads: a number, or 'auto' (one per physical core).")
@click.option("--sample", default=200, show_default=True, type=WholeNumber(min=0),
              help="Characters/tokens to generate after training (0: none).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress display).")
@click.pass_context
def distill(ctx, teacher, student_path, text_path, d_model, heads, layers, context, dropout, temperature, alpha,
            batch_size, lr, warmup, max_steps, epochs, time_budget, val_fraction, eval_every, eval_batches, out,
            seed, threads, sample, as_json) -> None:
    """Distil a trained TinyGPT (--teacher) into a smaller one (Hinton et al.'s knowledge distillation).

    \b
    The student (half the teacher's width unless sized otherwise) learns from the text and from
    the teacher's next-token distributions at --temperature; its validation loss is the plain
    cross-entropy, comparable with `tito language train` of the same size:
      tito language distill --teacher checkpoints/tinygpt.safetensors --time-budget 300
    """
    from tinytorch.core import io as core_io
    from tinytorch.core import manual_seed, set_num_threads
    from tinytorch.core.threads import training_threads

    from .model import TinyGPT
    from .training import LanguageModelTrainer, load_checkpoint

    try:
        n_threads = training_threads(threads)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--threads") from None
    if student_path is not None:
        _refuse_with(ctx, "--student", d_model=d_model, heads=heads, layers=layers, context=context, dropout=dropout)
    _check_generation_fits(sample, "--sample")
    check_outputs({"--out": out}, {"--teacher": teacher, "--student": student_path, "--text": text_path})
    core_io.check_destination(out, what="--out")
    teacher_model, tokenizer, teacher_meta = load_checkpoint(teacher)
    tc = teacher_model.config
    run = (teacher_meta.get("tinytorch.language") or {}).get("train") or {}
    if student_path is not None:
        student, student_tokenizer, _ = load_checkpoint(student_path)
        student.train()
        if student_tokenizer.to_dict() != tokenizer.to_dict():
            raise click.UsageError(
                f"--student {student_path} has another vocabulary than --teacher {teacher}: "
                f"{type(student_tokenizer).__name__} with {student_tokenizer.vocab_size} ids against "
                f"{type(tokenizer).__name__} with {tokenizer.vocab_size} ids; distillation compares the two "
                "models' distributions over the same token ids")
        context = student.config.max_seq_len
    else:
        d_model = d_model if d_model is not None else max(1, tc.d_model // 2)
        heads = heads if heads is not None else tc.num_heads
        layers = layers if layers is not None else tc.num_layers
        context = context if context is not None else tc.max_seq_len
        if d_model % heads:
            flag = "--heads" if given_on_command_line(ctx, "heads") else "--d-model"
            raise click.BadParameter(f"the student's d_model {d_model} is not divisible by its {heads} heads",
                                     param_hint=flag)
    if context > tc.max_seq_len:
        raise click.BadParameter(f"the student's context {context} is longer than the teacher's "
                                 f"({tc.max_seq_len} positions)", param_hint="--student" if student_path else "--context")
    batch_size = batch_size if batch_size is not None else run.get("batch_size", SMALL_RECIPE["batch_size"])
    lr = lr if lr is not None else run.get("lr", SMALL_RECIPE["lr"])
    val_fraction = val_fraction if val_fraction is not None else run.get("val_fraction")
    if student_path is None:
        _check_training_fits(ctx, "char", {"vocab_size": tc.vocab_size, "d_model": d_model, "heads": heads,
                                           "layers": layers, "context": context, "batch_size": batch_size})
    set_num_threads(n_threads)
    text, source = _read_text(text_path)
    seed = 0 if seed is None else seed
    manual_seed(seed)  # after loading the teacher: the same seed gives `train`'s initial weights
    if student_path is None:
        student = TinyGPT(tc.vocab_size, d_model, heads, layers, context, dropout)
    if max_steps is None and epochs is None and time_budget is None:
        max_steps = DEFAULT_MAX_STEPS
    lm = LanguageModelTrainer(student, tokenizer, progress=not as_json and "auto",
                              on_nonfinite="stop", teacher=teacher_model, temperature=temperature, alpha=alpha)
    if not as_json:
        c = student.config
        click.echo(f"{source}: {len(text):,} characters -> {type(tokenizer).__name__} ({tokenizer.vocab_size} ids)")
        click.echo(f"teacher {teacher}: {teacher_model.num_parameters():,} parameters (d_model {tc.d_model}, "
                   f"{tc.num_heads} heads, {tc.num_layers} layers, context {tc.max_seq_len})")
        click.echo(f"student: {student.num_parameters():,} parameters (d_model {c.d_model}, {c.num_heads} heads, "
                   f"{c.num_layers} layers, context {c.max_seq_len}); temperature {temperature:g}, alpha {alpha:g}; "
                   f"{n_threads} BLAS thread(s)"
                   + (f"; time budget {time_budget:g} s, warmup and LR schedule fitted to it" if time_budget else ""))
    _fit_and_report(ctx, lm, text, out, resume=None, seed=seed, sample=sample, as_json=as_json,
                    threads=n_threads, resumable=False,
                    extra={"teacher": str(teacher), "temperature": temperature, "alpha": alpha,
                           "teacher_parameters": teacher_model.num_parameters(),
                           "student_parameters": student.num_parameters()},
                    epochs=epochs, max_steps=max_steps, batch_size=batch_size, seq_len=context, lr=lr,
                    warmup=warmup, val_fraction=val_fraction, eval_every=eval_every,
                    eval_batches=eval_batches or 20, time_budget=time_budget)


def _refuse_with(ctx, option: str, resume: str | None = None, **params) -> None:
    """A UsageError naming every option that ``option`` fixes but the command line also gave."""
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    named = [flags[k] for k in params if given_on_command_line(ctx, k)]
    if resume is not None:
        named.insert(0, "--resume")
    if named:
        what = ("holds the model and tokenizer it continues with" if option == "--resume"
                else "brings its own model and tokenizer")
        raise click.UsageError(f"{', '.join(named)} cannot be combined with {option}: the checkpoint {what}")


def _tokenizer_from(path: str):
    """A directory of GPT-2's tokenizer files, or a tokenizer file saved by TinyTorch."""
    from .tokenizers import BPETokenizer, Tokenizer

    return BPETokenizer.from_gpt2(path) if Path(path).is_dir() else Tokenizer.load(path)


def _load_pretrained(source: str, tokenizer_path: str | None, tokenizer_option: str, **overrides):
    """(model, tokenizer) of a Hugging Face GPT-2 checkpoint: --pretrained and --init-from."""
    from .checkpoint_checks import check_vocab_sizes
    from .model import TinyGPT
    from .pretrained import resolve

    directory = resolve(source)
    given, tokenizer_path = tokenizer_path is not None, tokenizer_path or str(directory)
    try:
        tokenizer = _tokenizer_from(tokenizer_path)
    except FileNotFoundError as e:
        if given:
            raise
        # the checkpoint directory holds weights only
        raise click.UsageError(f"{e}; pass {tokenizer_option} with GPT-2's tokenizer files") from None
    model = TinyGPT.from_pretrained(directory, **overrides)
    check_vocab_sizes(tokenizer_path, tokenizer.vocab_size, model.config.vocab_size)
    return model, tokenizer



def _checkpoint_step(path: str) -> int | None:
    from tinytorch.core import io

    try:
        return int(io.load_metadata(path).get("global_step"))
    except (OSError, ValueError, TypeError):
        return None


def _on_ranks() -> str:
    """`` --nproc N`` inside a data-parallel run, for the command that continues it."""
    from tinytorch.core import distributed as dist

    return f" --nproc {dist.get_world_size()}" if dist.is_distributed() else ""


def _report(result: dict, elapsed: float, resume: str | None, resumable: bool = True) -> None:
    out, reason = result["checkpoint"], result["stop_reason"]
    if reason == "interrupted":
        where = (f"the last checkpoint (step {result['checkpoint_step']}) is {out}"
                 if result["checkpoint_step"] is not None else "no checkpoint was written yet")
        click.echo(f"interrupted at step {result['steps']}; {where}"
                   + (f"; continue with: tito language train --resume {out}{_on_ranks()}"
                      if result["checkpoint_step"] and resumable else ""))
        return
    if reason == "non_finite":
        where = (f"the last good checkpoint (step {result['checkpoint_step']}) at {out} is unchanged"
                 if result["checkpoint_step"] is not None else "no checkpoint was written")
        click.echo(f"stopped: {result['stop_detail']}; {where}. Try a lower --lr.", err=True)
        return
    why = {"budget": "time budget reached", "steps": "max steps reached", "epochs": "epochs done",
           "early_stop": "early stop"}.get(reason, reason)
    short = result.get("shortened_eval")
    if short:
        cause = (f"the machine became busy (steps {short['slowdown']:.1f}x slower)" if short["slowdown"] > 1
                 else "the last step overran")
        why += (f"; {cause}, so the final evaluation read {short['batches']} of {short['of']} validation "
                "batches to stay within the budget")
    val = (f", val loss {result['val_loss']:.4f} (perplexity {result['val_perplexity']:.2f})"
           if result["val_loss"] is not None else "")
    click.echo(f"{result['steps']} steps in {elapsed:.0f} s ({why}): train loss {result['train_loss']:.4f}{val}; "
               f"checkpoint {out}")
    if "sample" in result:
        share = result["sample_known_words"]
        known = f" ({share:.0%} of its words occur in the training text)" if share is not None else ""
        click.echo(f"--- sample, temperature 0.6{known} ---\n" + result["sample"])


@language.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `tito language train`.")
@click.option("--prompt", required=True, help="The text to look at (at most the model's context; \\n for a newline).")
@click.option("--out", default="attention.png", show_default=True, type=click.Path(dir_okay=False),
              help="The figure (.png or .svg).")
@click.option("--layer", type=click.IntRange(min=0), help="Only this block (0-based) [default: every block].")
@click.option("--per-head", is_flag=True, help="A panel per head instead of the heads' mean.")
def attention(checkpoint, prompt, out, layer, per_head) -> None:
    """Draw where each token of PROMPT looks: the attention weights of every block as heat maps
    (rows: queries, columns: keys, labelled with the prompt's tokens).

    \b
    Example:
      tito language attention --checkpoint checkpoints/tinygpt.safetensors --prompt "ROMEO: O" --out attn.png
    """
    from tinytorch.core.paths import check_outputs
    from tinytorch.core.viz import check_figure_path, require_matplotlib

    from .attention_map import plot_attention
    from .training import load_checkpoint

    check_figure_path(out, "--out")
    require_matplotlib()
    check_outputs({"--out": out}, {"--checkpoint": checkpoint})
    model, tokenizer, _ = load_checkpoint(checkpoint)
    if layer is not None and layer >= len(model.blocks):
        raise click.BadParameter(f"the model has {len(model.blocks)} blocks (0 to {len(model.blocks) - 1}), "
                                 f"got {layer}", param_hint="--layer")
    prompt = prompt.replace("\\n", "\n")
    plot_attention(model, tokenizer, prompt, out, layer=layer, per_head=per_head,
                   title=f"{Path(checkpoint).name}: attention over {prompt[:40]!r}")
    click.echo(f"{out}: {len(model.blocks) if layer is None else 1} block(s), "
               f"{model.config.num_heads} heads{' each' if per_head else ' (mean)'}, {len(tokenizer.encode(prompt))} tokens")


@language.command()
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `tito language train`.")
@click.option("--pretrained", help="Instead of --checkpoint: a GPT-2 checkpoint in Hugging Face's layout, a "
                                   "directory (config.json, model.safetensors, vocab.json + merges.txt) or a "
                                   "Hub name such as gpt2.")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(exists=True),
              help="With --pretrained: GPT-2's tokenizer files (a directory) or a saved tokenizer file "
                   "[default: the --pretrained directory's vocab.json and merges.txt].")
@click.option("--prompt", default="", show_default=True, help="Text to continue (cropped to the context).")
@click.option("--max-length", default=500, show_default=True, type=WholeNumber(min=0),
              help="Tokens to generate.")
@click.option("--temperature", default=0.8, show_default=True, type=FiniteFloat(min=0))
@click.option("--top-k", type=click.IntRange(min=1))
@click.option("--top-p", type=FiniteFloat(0, 1, min_open=True))
@click.option("--seed", type=click.IntRange(min=0), help="Make the sampling repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print text and speed as JSON.")
def generate(checkpoint, pretrained, tokenizer_path, prompt, max_length, temperature, top_k, top_p, seed,
             as_json) -> None:
    """Generate text from a checkpoint alone (it holds the model, config and tokenizer), or from GPT-2.

    \b
      tito language generate --checkpoint checkpoints/tinygpt.safetensors --prompt "ROMEO:"
      tito language generate --pretrained DIR --prompt "Hello, I'm a language model," --top-k 50
    """
    from .training import generate_text, load_checkpoint

    if (checkpoint is None) == (pretrained is None):
        raise click.UsageError("give exactly one of --checkpoint (a TinyTorch checkpoint) and --pretrained "
                               "(a Hugging Face GPT-2 directory or name)")
    if checkpoint is not None and tokenizer_path is not None:
        raise click.UsageError("--tokenizer goes with --pretrained: a checkpoint holds its own tokenizer")
    _check_generation_fits(max_length, "--max-length")
    if checkpoint is not None:
        model, tokenizer, _ = load_checkpoint(checkpoint)
    else:
        model, tokenizer = _load_pretrained(pretrained, tokenizer_path, "--tokenizer")
    prompt = prompt.replace("\\n", "\n")
    from tinytorch.core.contention import ContentionProbe

    start = time.perf_counter()
    with ContentionProbe() as probe:
        text = generate_text(model, tokenizer, prompt, max_length, temperature, top_k, top_p, seed)
    elapsed = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps({"text": text, "new_tokens": max_length, "seconds": elapsed,
                               "tokens_per_sec": max_length / elapsed if elapsed > 0 else None,
                               "contention": probe.result}))
    else:
        click.echo(text)


@language.command()
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False),
              help="UTF-8 text (default: the packaged Tiny Shakespeare).")
@click.option("--tokenizer", "tokenizer_kind", type=click.Choice(["char", "word", "bpe"]), default="bpe",
              show_default=True, help="Tokenizer to train (ignored with --load).")
@click.option("--vocab-size", type=WholeNumber(min=2), help="BPE (default 512) or word vocabulary size.")
@click.option("--load", "load_path", type=click.Path(exists=True, dir_okay=False),
              help="Apply this saved tokenizer instead of training one.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False), help="Save the trained tokenizer here.")
@click.option("--show", default=0, show_default=True, type=click.IntRange(min=0),
              help="Print the first N tokens of the text.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def tokenize(text_path, tokenizer_kind, vocab_size, load_path, save_path, show, as_json) -> None:
    """Train (or load) a tokenizer, encode the text and report the compression."""
    from .tokenizers import Tokenizer

    if save_path:
        from tinytorch.core import io

        io.check_destination(save_path, what="--save")  # before fitting, not after
        check_outputs({"--save": save_path}, {"--text": text_path, "--load": load_path})
    text, source = _read_text(text_path)
    start = time.perf_counter()
    if load_path:
        tok = Tokenizer.load(load_path)
        fit_seconds = 0.0
    else:
        tok = _make_tokenizer(tokenizer_kind, vocab_size).fit(text)
        fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ids = tok.encode(text)
    encode_seconds = time.perf_counter() - start
    roundtrip = tok.decode(ids) == text
    if save_path:
        tok.save(save_path)
    n_bytes = len(text.encode("utf-8"))
    report = {
        "source": source, "tokenizer": type(tok).__name__, "vocab_size": tok.vocab_size,
        "characters": len(text), "bytes": n_bytes, "tokens": len(ids),
        "chars_per_token": len(text) / len(ids) if ids else None,
        "bytes_per_token": n_bytes / len(ids) if ids else None,
        "fit_seconds": round(fit_seconds, 3), "encode_seconds": round(encode_seconds, 3),
        "roundtrip": roundtrip, "saved": save_path,
    }
    if show:
        report["first_tokens"] = [tok.decode([i]) for i in ids[:show]]
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['tokenizer']} on {source}", show_header=False)
    for key in ("vocab_size", "characters", "bytes", "tokens", "chars_per_token", "bytes_per_token",
                "fit_seconds", "encode_seconds", "roundtrip", "saved"):
        value = report[key]
        table.add_row(key.replace("_", " "), f"{value:,.3f}" if isinstance(value, float) else
                      (f"{value:,}" if is_int(value) else str(value)))
    Console().print(table)
    if show:
        click.echo(" | ".join(repr(t) for t in report["first_tokens"]))
