"""`tito core`: commands contributed by tinytorch-core (loaded by tito only when invoked)."""

from __future__ import annotations

import json
import math

import click


@click.group()
def core() -> None:
    """Core engine: inspect checkpoints, run the spiral demo."""


@core.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def summary(model_file: str, as_json: bool) -> None:
    """Show the tensors, shapes, dtypes, parameter count and metadata of a checkpoint."""
    from . import io

    info = io.inspect(model_file)
    if as_json:
        tensors = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in info.tensors]
        click.echo(json.dumps({"path": info.path, "tensors": tensors, "parameters": info.num_parameters,
                               "bytes": info.nbytes, "metadata": info.metadata}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model_file}")
    table.add_column("tensor")
    table.add_column("shape")
    table.add_column("dtype")
    table.add_column("elements", justify="right")
    for t in info.tensors:
        table.add_row(t.name, str(tuple(t.shape)), t.dtype, f"{math.prod(t.shape):,}")
    console = Console()
    console.print(table)
    console.print(f"[bold]{len(info.tensors)}[/] tensors, [bold]{info.num_parameters:,}[/] parameters, "
                  f"{info.nbytes / 1e6:.2f} MB")
    for key, value in info.metadata.items():
        text = json.dumps(value) if not isinstance(value, str) else value
        console.print(f"[dim]{key}[/]: {text if len(text) < 200 else text[:197] + '...'}")


@core.command()
@click.option("--epochs", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--lr", default=0.01, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
def demo(epochs: int, seed: int, lr: float, as_json: bool) -> None:
    """Train a small MLP on a generated 3-class 2-D spiral and print its accuracy."""
    from .demo import train_spiral

    result = train_spiral(epochs=epochs, seed=seed, lr=lr, progress=not as_json)
    if as_json:
        click.echo(json.dumps({"train_accuracy": result.train_accuracy, "epochs": epochs,
                               "final_loss": result.history["loss"][-1]}))
    else:
        click.echo(f"spiral MLP: train accuracy {result.train_accuracy:.2%} after {epochs} epochs "
                   f"(final loss {result.history['loss'][-1]:.4f})")
