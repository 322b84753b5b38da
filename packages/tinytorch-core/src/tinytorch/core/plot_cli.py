"""`tito plot`: the training curves stored in a checkpoint, drawn to a PNG or SVG (loaded by tito
only when invoked)."""

from __future__ import annotations

from pathlib import Path

import click


def checkpoint_history(path: str | Path):
    """The ``History`` a training checkpoint stores in its metadata (only the header is read).

    Raises ValueError naming the file when it has no training history.
    """
    from . import io
    from .training import History

    metadata = io.load_metadata(path)
    history = metadata.get("history")
    if not isinstance(history, dict) or not (history.get("steps") or history.get("evals")):
        raise ValueError(f"{path}: no training history in this file (expected a training checkpoint, "
                         "as `tito vision train` or `tito language train` write)")
    return History.from_dict(history)


def default_plot_path(checkpoint: str | Path) -> Path:
    """``run.safetensors`` -> ``run.history.png`` beside it.

    >>> default_plot_path("ckpt/run.safetensors").as_posix()
    'ckpt/run.history.png'
    """
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.history.png")


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="The figure (.png or .svg) [default: CHECKPOINT's name with .history.png].")
@click.option("--title", help="The figure's title [default: the checkpoint's file name].")
def plot(checkpoint: str, out: str | None, title: str | None) -> None:
    """Draw the training curves a checkpoint stores: loss, validation loss, accuracy or
    perplexity, and the learning rate against steps.

    \b
    Example:
      tito plot vision.safetensors --out curves.png
    """
    from .paths import check_outputs
    from .viz import check_figure_path, plot_history

    out_path = check_figure_path(out or default_plot_path(checkpoint), "--out")
    check_outputs({"--out": out_path}, {"CHECKPOINT": checkpoint})
    history = checkpoint_history(checkpoint)
    plot_history(history, out_path, title=title or Path(checkpoint).name)
    last = history.evals[-1] if history.evals else {}
    figures = ", ".join(f"{k} {last[k]:.4g}" for k in ("val_loss", "val_accuracy", "val_perplexity")
                        if isinstance(last.get(k), (int, float)))
    click.echo(f"{out_path}: {len(history.steps)} steps, {len(history.evals)} evaluations"
               + (f"; last {figures}" if figures else ""))
