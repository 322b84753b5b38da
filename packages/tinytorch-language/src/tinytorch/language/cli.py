"""`tito language`: train a TinyGPT, generate from a checkpoint, train or apply a tokenizer.

Loaded by tito only when invoked (it may import click and rich, which tito brings).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

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


@language.command()
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False),
              help="UTF-8 training text (default: the packaged Tiny Shakespeare).")
@click.option("--tokenizer", "tokenizer_kind", type=click.Choice(["char", "word", "bpe"]), default="char",
              show_default=True)
@click.option("--vocab-size", type=click.IntRange(min=2), help="BPE/word vocabulary size (BPE default 512).")
@click.option("--d-model", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--heads", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--layers", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--context", default=128, show_default=True, type=click.IntRange(min=1),
              help="Context length (max_seq_len and training sequence length).")
@click.option("--dropout", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--warmup", default=100, show_default=True, type=click.IntRange(min=0))
@click.option("--max-steps", type=click.IntRange(min=1),
              help=f"Optimizer steps (default {DEFAULT_MAX_STEPS} unless --epochs or --time-budget is given).")
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training tokens.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many seconds; the LR schedule ends with the budget.")
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--eval-interval", type=click.IntRange(min=1), help="Steps between evaluations (default 250).")
@click.option("--eval-batches", type=click.IntRange(min=1), help="Validation batches per evaluation (default all).")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(dir_okay=False),
              help="Checkpoint file (model, tokenizer, config, optimizer), written after every evaluation.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False),
              help="Continue training from this checkpoint (its model and tokenizer are used).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--sample", default=200, show_default=True, type=click.IntRange(min=0),
              help="Characters/tokens to generate after training (0: none).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
def train(text_path, tokenizer_kind, vocab_size, d_model, heads, layers, context, dropout, batch_size, lr,
          warmup, max_steps, epochs, time_budget, val_fraction, eval_interval, eval_batches, out, resume,
          seed, sample, as_json) -> None:
    """Train TinyGPT (default: the seed's model on Tiny Shakespeare, char-level)."""
    from tinytorch.core import manual_seed

    from .models import TinyGPT
    from .training import LanguageModelTrainer, load_checkpoint

    manual_seed(seed)
    text, source = _read_text(text_path)
    if resume:
        model, tokenizer, _ = load_checkpoint(resume)
    else:
        tokenizer = _make_tokenizer(tokenizer_kind, vocab_size)
        tokenizer.fit(text)
        model = TinyGPT(tokenizer.vocab_size, d_model, heads, layers, context, dropout)
    if max_steps is None and epochs is None and time_budget is None:
        max_steps = DEFAULT_MAX_STEPS
    lm = LanguageModelTrainer(model, tokenizer, progress=not as_json)
    if not as_json:
        click.echo(f"{source}: {len(text):,} characters -> {type(tokenizer).__name__} "
                   f"({tokenizer.vocab_size} ids); TinyGPT {model.num_parameters():,} parameters "
                   f"(d_model {model.config.d_model}, {model.config.num_heads} heads, "
                   f"{model.config.num_layers} layers, context {model.config.max_seq_len})")
    start = time.perf_counter()
    history = lm.fit(text, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                     seq_len=model.config.max_seq_len, lr=lr, warmup=warmup, val_fraction=val_fraction,
                     eval_interval=eval_interval, eval_batches=eval_batches, time_budget=time_budget,
                     checkpoint=out, resume=resume, seed=seed)
    lm.save_checkpoint(out)
    elapsed = time.perf_counter() - start
    last = {k: v[-1] for k, v in history.items() if v}
    result = {
        "checkpoint": str(out), "steps": lm.trainer.global_step, "seconds": round(elapsed, 1),
        "train_loss": last.get("loss"), "val_loss": last.get("val_loss"),
        "val_perplexity": last.get("val_perplexity"), "tokens_per_sec": last.get("tokens_per_sec"),
        "stop_reason": lm.trainer.stop_reason,
    }
    if sample:
        result["sample"] = lm.generate_text("", max_length=sample, temperature=0.8, seed=seed)
    if as_json:
        click.echo(json.dumps(result))
        return
    val = f", val loss {result['val_loss']:.4f} (perplexity {result['val_perplexity']:.2f})" if result["val_loss"] else ""
    click.echo(f"{result['steps']} steps in {elapsed:.0f} s: train loss {result['train_loss']:.4f}{val}; "
               f"checkpoint {out}")
    if sample:
        click.echo("--- sample ---\n" + result["sample"])


@language.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `tito language train`.")
@click.option("--prompt", default="", show_default=True, help="Text to continue (cropped to the context).")
@click.option("--max-length", default=500, show_default=True, type=click.IntRange(min=0),
              help="Tokens to generate.")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(min=0))
@click.option("--top-k", type=click.IntRange(min=1))
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True))
@click.option("--seed", type=click.IntRange(min=0), help="Make the sampling repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print text and speed as JSON.")
def generate(checkpoint, prompt, max_length, temperature, top_k, top_p, seed, as_json) -> None:
    """Generate text from a checkpoint alone (it holds the model, config and tokenizer)."""
    from .training import generate_text, load_checkpoint

    model, tokenizer, _ = load_checkpoint(checkpoint)
    prompt = prompt.replace("\\n", "\n")
    start = time.perf_counter()
    text = generate_text(model, tokenizer, prompt, max_length, temperature, top_k, top_p, seed)
    elapsed = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps({"text": text, "new_tokens": max_length, "seconds": elapsed,
                               "tokens_per_sec": max_length / elapsed if elapsed > 0 else None}))
    else:
        click.echo(text)


@language.command()
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False),
              help="UTF-8 text (default: the packaged Tiny Shakespeare).")
@click.option("--tokenizer", "tokenizer_kind", type=click.Choice(["char", "word", "bpe"]), default="bpe",
              show_default=True, help="Tokenizer to train (ignored with --load).")
@click.option("--vocab-size", type=click.IntRange(min=2), help="BPE (default 512) or word vocabulary size.")
@click.option("--load", "load_path", type=click.Path(exists=True, dir_okay=False),
              help="Apply this saved tokenizer instead of training one.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False), help="Save the trained tokenizer here.")
@click.option("--show", default=0, show_default=True, type=click.IntRange(min=0),
              help="Print the first N tokens of the text.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def tokenize(text_path, tokenizer_kind, vocab_size, load_path, save_path, show, as_json) -> None:
    """Train (or load) a tokenizer, encode the text and report the compression."""
    from .tokenizers import Tokenizer

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
                      (f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)))
    Console().print(table)
    if show:
        click.echo(" | ".join(repr(t) for t in report["first_tokens"]))
