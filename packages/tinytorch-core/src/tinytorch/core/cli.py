"""`tito core`: commands contributed by tinytorch-core (loaded by tito only when invoked)."""

from __future__ import annotations

import json
import math

import click

from .cli_params import FiniteFloat


@click.group()
def core() -> None:
    """Core engine: inspect checkpoints, run the spiral demo."""


MODEL_PREFIX, OPTIMIZER_PREFIX = "model.", "optimizer.state."


def _group(name: str, training_checkpoint: bool) -> str:
    """Which part of a checkpoint a tensor belongs to: model, optimizer or other."""
    if name.startswith(OPTIMIZER_PREFIX):
        return "optimizer"
    if name.startswith(MODEL_PREFIX) or not training_checkpoint:
        return "model"
    return "other"


def checkpoint_counts(info) -> dict[str, int]:
    """Elements per part of a checkpoint: ``model`` (its ``model.*`` tensors, or every tensor of a
    plain weights file), ``optimizer`` (``optimizer.state.*``), ``other`` and ``total``."""
    training = any(t.name.startswith((MODEL_PREFIX, OPTIMIZER_PREFIX)) for t in info.tensors)
    counts = {"model": 0, "optimizer": 0, "other": 0}
    for t in info.tensors:
        counts[_group(t.name, training)] += math.prod(t.shape)
    counts["total"] = sum(counts.values())
    return counts


def _shape(shape) -> str:
    return str(tuple(shape))


def _summary_table(info, width: int = 80):
    """The tensors as a rich renderable that fits ``width`` columns without wrapping or cutting a
    name or a number: a table, without its dtype column if that is what it takes (the dtype is
    then the title when all tensors share it), else one tensor per two lines."""
    from rich.table import Table
    from rich.text import Text

    rows = [(t.name, _shape(t.shape), t.dtype, f"{math.prod(t.shape):,}") for t in info.tensors]
    header = ("tensor", "shape", "dtype", "elements")
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    dtypes = {r[2] for r in rows}
    for keep in ([0, 1, 2, 3], [0, 1, 3]):
        if sum(widths[i] for i in keep) + 3 * len(keep) + 1 <= width:  # box: 3 per column + 1
            title = f"dtype {next(iter(dtypes))}" if len(keep) == 3 and len(dtypes) == 1 else None
            table = Table(title=title)
            for i in keep:
                table.add_column(header[i], justify="right" if i == 3 else "left", no_wrap=True)
            for r in rows:
                table.add_row(*(r[i] for i in keep))
            return table
    text = Text()
    for name, shape, dtype, elements in rows:
        text.append(name + "\n", style="bold")
        text.append(f"    {shape}  {dtype}  {elements} elements\n")
    return text


def _metadata_line(key: str, value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > 200:  # never cut a value mid-number: say what it is instead
        noun = "key" if isinstance(value, dict) else "item"
        what = f"{len(value):,} {noun}{'' if len(value) == 1 else 's'}"
        return f"{key}: {type(value).__name__} with {what} ({len(text):,} characters; see --json)"
    return f"{key}: {text}"


@core.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def summary(model_file: str, as_json: bool) -> None:
    """Show a checkpoint's tensors, its model parameters apart from optimizer state, and metadata."""
    from . import io

    info = io.inspect(model_file)
    counts = checkpoint_counts(info)
    if as_json:
        tensors = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in info.tensors]
        click.echo(json.dumps({"path": info.path, "tensors": tensors, "parameters": counts["model"],
                               "optimizer_state_elements": counts["optimizer"],
                               "other_elements": counts["other"], "elements": counts["total"],
                               "bytes": info.nbytes, "aliases": info.aliases,
                               "metadata": info.metadata}, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(escape(model_file), soft_wrap=True)  # a path is never broken into lines
    console.print(_summary_table(info, console.width))
    console.print(f"model parameters: [bold]{counts['model']:,}[/] "
                  "(model weights and buffers)")
    if counts["optimizer"]:
        ratio = counts["optimizer"] / counts["model"] if counts["model"] else float("nan")
        console.print(f"optimizer state: [bold]{counts['optimizer']:,}[/] elements "
                      f"({ratio:.2f} x the model)")
    if counts["other"]:
        console.print(f"other tensors: {counts['other']:,} elements")
    console.print(f"{len(info.tensors)} tensors, {counts['total']:,} elements, "
                  f"{info.nbytes / 1e6:.2f} MB")
    for alias, stored in info.aliases.items():  # tied weights: stored once, loaded under both names
        console.print(escape(f"{alias}: the same array as {stored} (tied)"))
    for key, value in info.metadata.items():
        console.print(escape(_metadata_line(key, value)), style="dim")


# `tito core inspect` is the same command under the name the checkpoint readers use
# (`tinytorch.core.io.inspect`).
core.add_command(summary, name="inspect")


@core.command()
@click.option("--epochs", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--lr", default=0.01, show_default=True, type=FiniteFloat(min=0, min_open=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
def demo(epochs: int, seed: int, lr: float, as_json: bool) -> None:
    """Train a small MLP on a generated 3-class 2-D spiral and print its accuracy."""
    import sys

    from .demo import train_spiral

    # A bar on a terminal; in a log (not a terminal) one line per evaluation instead.
    progress = False if as_json else ("auto" if sys.stdout.isatty() else "lines")
    result = train_spiral(epochs=epochs, seed=seed, lr=lr, progress=progress)
    if as_json:
        click.echo(json.dumps({"train_accuracy": result.train_accuracy, "epochs": epochs,
                               "final_loss": result.history["loss"][-1]}))
    else:
        click.echo(f"spiral MLP: train accuracy {result.train_accuracy:.2%} after {epochs} epochs "
                   f"(final loss {result.history['loss'][-1]:.4f})")
