"""`tito vision`: train, evaluate and inspect data sets (loaded by tito only when invoked).

Library errors (a missing or corrupted data file, a wrong checkpoint) are ValueError/OSError with
a message naming the file; tito turns them into one red line and exit code 1.
"""

from __future__ import annotations

import json
import time

import click

from tinytorch.core.cli_params import FiniteFloat, given_on_command_line, relaunch_on_ranks

DATASET_NAMES = ["fashion-mnist", "mnist", "cifar10"]
MODEL_NAMES = ["small_cnn", "deep_cnn", "wide_cnn", "mlp"]


@click.group()
def vision() -> None:
    """Convolutional networks on image data sets (Fashion-MNIST, MNIST, CIFAR-10)."""


@vision.command()
@click.argument("dataset", type=click.Choice(DATASET_NAMES))
@click.option("--model", default="small_cnn", show_default=True, type=click.Choice(MODEL_NAMES))
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Total epochs [default: 10]; with --resume, train that run longer.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=3e-3, show_default=True, type=FiniteFloat(min=0, min_open=True),
              help="Peak learning rate of AdamW (linear warmup, cosine decay).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--no-augment", is_flag=True, help="Train without random crops/flips.")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="Train on the first N training images only (a quick run).")
@click.option("--val-fraction", default=0.1, show_default=True, type=FiniteFloat(0, 1, max_open=True),
              help="Hold out this share of the training images for per-epoch validation; the test set "
                   "is evaluated once, at the end (0: the test set every epoch instead).")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Checkpoint written (atomically) after every epoch [default: vision.safetensors; with "
                   "--resume RUN.safetensors, RUN-2.safetensors: the file a run continues from is kept].")
@click.option("--resume", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Continue a run from its checkpoint (its settings are used).")
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Data root [default: $TINYTORCH_DATA, else the user cache folder; see `tito data list`].")
@click.option("--download", is_flag=True, help="Download missing data files (sha256-checked; or run `tito data download DATASET` first).")
@click.option("--threads", default="auto", show_default=True,
              help="BLAS threads: a number, or 'auto' (one per physical core not kept busy by another program).")
@click.option("--nproc", default="1", show_default=True,
              help="Data-parallel ranks (MPI): a number, or 'auto' (one per physical core). Each rank "
                   "takes batch-size/N images of every batch and one BLAS thread; the result is that of "
                   "one process with the whole batch. A rank left waiting 10 minutes for another ends the job.")
@click.option("--oversubscribe", is_flag=True, help="With --nproc: allow more ranks than this machine has cores.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw the training curves (loss, validation, learning rate) to this .png or .svg "
                   "(later: tito plot CHECKPOINT).")
@click.option("--no-progress", "no_progress", is_flag=True,
              help="No progress display at all (the result is still printed).")
@click.option("--json", "as_json", is_flag=True, help="No progress display; print the result as JSON.")
@click.pass_context
def train(ctx: click.Context, dataset: str, model: str, epochs: int | None, batch_size: int, lr: float,
          seed: int, no_augment: bool, limit: int | None, val_fraction: float, out: str | None,
          resume: str | None, root: str | None, download: bool, threads: str, nproc: str, oversubscribe: bool,
          plot_path: str | None, no_progress: bool, as_json: bool) -> None:
    """Train MODEL on DATASET: validation accuracy every epoch (on --val-fraction of the training
    images), test accuracy once at the end; a checkpoint every epoch.

    \b
    Example (about 7 minutes on 2 quiet cores; measured 92.85% test accuracy, validation 93.30%):
      tito vision train fashion-mnist
    """
    from tinytorch.core.threads import parse_threads

    from .train import TrainConfig, read_checkpoint_info
    from .train import train as run

    try:
        parse_threads(threads)  # a bad --threads fails here, before any data is read
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--threads") from None
    config = TrainConfig(dataset=dataset, model=model, batch_size=batch_size, lr=lr, seed=seed,
                         augment=not no_augment, limit=limit, val_fraction=val_fraction)
    if epochs is not None:
        config.epochs = epochs
    if resume is not None:
        saved = read_checkpoint_info(resume)["config"]
        # The checkpoint's settings define the run; refuse contradicting ones instead of guessing.
        given = {"dataset": dataset, "model": model, "batch_size": batch_size, "lr": lr, "seed": seed,
                 "limit": limit, "val_fraction": val_fraction}
        for name, value in given.items():
            option = "DATASET" if name == "dataset" else f"--{name.replace('_', '-')}"
            if (name == "dataset" or given_on_command_line(ctx, name)) and value is not None and saved.get(name) != value:
                raise click.UsageError(
                    f"{option} {value} contradicts the checkpoint {resume}, which was trained with "
                    f"{saved.get(name)}; --resume continues with the checkpoint's settings"
                )
        if epochs is not None and epochs < saved["epochs"]:
            raise click.UsageError(f"--epochs {epochs} is fewer than the {saved['epochs']} epochs {resume} "
                                   "was planned for; a resumed run can only train longer")
    from tinytorch.core.paths import check_outputs, continuation_path
    from tinytorch.core.viz import check_figure_path, require_matplotlib

    from .datasets import data_root, get_dataset

    if plot_path is not None:  # before training, not after it
        check_figure_path(plot_path, "--plot")
        require_matplotlib()
    out = out or (str(continuation_path(resume)) if resume else "vision.safetensors")
    check_outputs({"--out": out, "--plot": plot_path},
                  {"--resume": resume, f"the {dataset} data": data_root(root) / get_dataset(dataset).folder_name})
    relaunch_on_ranks(ctx, nproc, ("vision", "train"),
                      read_checkpoint_info(resume)["config"]["batch_size"] if resume else batch_size, "images", limit,
                      oversubscribe)
    echo = None if as_json else click.echo
    # a bar on a terminal, a plain line every 10 s in a log file; --no-progress: none
    progress = not (as_json or no_progress) and "auto"
    start = time.perf_counter()
    result = run(config, root=root, out=out, resume=resume, download=download, progress=progress, echo=echo,
                 threads=threads, resume_epochs=epochs if resume else None)
    wall = time.perf_counter() - start
    plotted = None  # the figure's path once drawn (by rank 0), for the JSON and the last line
    if plot_path is not None and result.history.get("steps"):
        from tinytorch.core import distributed as dist
        from tinytorch.core.training import History
        from tinytorch.core.viz import plot_history

        if dist.get_rank() == 0:
            plot_history(History.from_dict(result.history), plot_path,
                         title=f"{result.config.model} on {result.config.dataset}")
            plotted = plot_path
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "wall_seconds": wall, "plot": plotted}, indent=2))
    elif result.stop_reason == "interrupted":
        click.echo(f"interrupted during epoch {result.epochs + 1}; the last checkpoint (epoch {result.epochs}) is "
                   f"{out}; continue with: tito vision train {result.config.dataset} --resume {out}")
    elif result.stop_reason == "non_finite":
        from tinytorch.core import io

        detail = result.history.get("stop_detail")
        try:  # what is really in the file: a diverged run never writes it
            kept = f"the checkpoint at {out} (epoch {io.load_metadata(out)['epoch']}) is unchanged"
        except (OSError, ValueError, KeyError):
            kept = f"no checkpoint was written to {out}"
        click.echo(f"stopped: {detail}; {kept}. Try a lower --lr.", err=True)
    else:
        val = f", validation {result.val_accuracy:.2%}" if result.val_accuracy is not None else ""
        click.echo(
            f"{result.config.model} on {result.config.dataset}: test accuracy {result.test_accuracy:.2%}{val} "
            f"after {result.epochs} epochs ({wall:.0f}s); checkpoint {out}"
        )
    if plotted is not None and not as_json:
        click.echo(f"training curves: {plotted}")
    if result.stop_reason == "interrupted":
        ctx.exit(130)
    if result.stop_reason == "non_finite":
        ctx.exit(1)


@vision.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint written by `tito vision train`.")
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Data root [default: $TINYTORCH_DATA, else the user cache folder; see `tito data list`].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(checkpoint: str, root: str | None, as_json: bool) -> None:
    """Test accuracy of a trained checkpoint, with a per-class table."""
    from .train import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, root=root)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.dataset} test set: {checkpoint}", title_justify="left")
    for col, justify in (("class", "right"), ("name", "left"), ("images", "right"),
                         ("correct", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify)
    for row in result.per_class:
        table.add_row(str(row["class"]), row["name"], f"{row['count']:,}", f"{row['correct']:,}",
                      f"{row['accuracy']:.2%}")
    console = Console()
    console.print(table)
    console.print(f"accuracy [bold]{result.accuracy:.2%}[/] on {result.n:,} images, mean loss {result.loss:.4f}")


@vision.command()
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Data root [default: $TINYTORCH_DATA, else the user cache folder; see `tito data list`].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def datasets(root: str | None, as_json: bool) -> None:
    """Which data sets are present, where, and whether their files verify (sha256)."""
    from .datasets import data_root, dataset_status

    statuses = [dataset_status(name, root) for name in DATASET_NAMES]
    if as_json:
        click.echo(json.dumps({"root": str(data_root(root)), "datasets": [s.to_dict() for s in statuses]},
                              indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"data root {data_root(root)}")
    for col in ("dataset", "file", "status"):  # names and statuses are never cut
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold")
    colors = {"verified": "green", "unverified": "yellow", "missing": "dim", "corrupt": "red"}
    for s in statuses:
        for i, f in enumerate(s.files):
            table.add_row(s.name if i == 0 else "", f.name, f"[{colors[f.status]}]{f.status}[/]", f.detail)
    Console().print(table)
