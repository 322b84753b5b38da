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
    plain weights file), ``optimizer`` (``optimizer.state.*``), ``other``, ``masks`` (pruning
    masks, see `pruned_masks`) and ``total``."""
    training = any(t.name.startswith((MODEL_PREFIX, OPTIMIZER_PREFIX)) for t in info.tensors)
    masks = {mask for _, mask in pruned_masks(info)}
    counts = {"model": 0, "optimizer": 0, "other": 0, "masks": 0}
    for t in info.tensors:
        counts["masks" if t.name in masks else _group(t.name, training)] += math.prod(t.shape)
    counts["total"] = sum(counts.values())
    return counts


def _shape(shape) -> str:
    return str(tuple(shape))


# The default summary shows at most this many layers or blocks; --all lists every tensor.
MAX_GROUPS = 30
# Keys the summary reads itself; the others are listed by name (shown in full by --all, --json).
SUMMARIZED_METADATA = frozenset({"kind", "epoch", "global_step", "batch_in_epoch", "history", "optimizer",
                                 "rng_state", "schedulers", "tinytorch.format_version", "tinytorch.quantization"})


def layer_of(name: str) -> str:
    """The layer or block a tensor belongs to, for the per-layer table of ``tito core summary``.

    Up to the first numbered part (a block of a ``Sequential`` or ``ModuleList``), else the
    module that holds the tensor; a name without dots is its own layer.

    >>> layer_of("blocks.3.attn.qkv.weight"), layer_of("ln_f.weight"), layer_of("0.bias"), layer_of("t7")
    ('blocks.3', 'ln_f', '0', 't7')
    """
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:-1]) or name


def layer_rows(info) -> list[dict]:
    """The model's tensors grouped by `layer_of`, in file order: name, tensors, elements, dtypes.

    One pass over the tensors, so a file of any number of tensors is grouped in linear time.
    """
    training = any(t.name.startswith((MODEL_PREFIX, OPTIMIZER_PREFIX)) for t in info.tensors)
    groups: dict[str, dict] = {}
    masks = {mask for _, mask in pruned_masks(info)}
    for t in info.tensors:
        if _group(t.name, training) != "model" or t.name in masks:
            continue
        name = t.name[len(MODEL_PREFIX):] if training else t.name
        layer = layer_of(name)
        row = groups.setdefault(layer, {"layer": layer, "tensors": 0, "elements": 0, "dtypes": []})
        row["tensors"] += 1
        row["elements"] += math.prod(t.shape)
        if t.dtype not in row["dtypes"]:
            row["dtypes"].append(t.dtype)
    return list(groups.values())


def aligned(header: tuple[str, ...], rows: list[tuple[str, ...]], right: frozenset[int] = frozenset(),
            indent: str = "  ") -> list[str]:
    """Plain-text columns (two spaces apart, nothing cut): one string per line, built in linear
    time, so even 300,000 rows print at once."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells) -> str:
        return indent + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header)] + [line(r) for r in rows]


def tensor_lines(info, width: int = 80) -> list[str]:
    """Every tensor (name, shape, dtype, elements) in columns that fit ``width`` when they can:
    without the dtype column if that is what it takes (the dtype is then said once when all
    tensors share it), else one tensor per two lines. Names and numbers are never cut."""
    rows = [(t.name, _shape(t.shape), t.dtype, f"{math.prod(t.shape):,}") for t in info.tensors]
    header = ("tensor", "shape", "dtype", "elements")
    dtypes = {r[2] for r in rows}
    for keep in ([0, 1, 2, 3], [0, 1, 3]):
        lines = aligned(tuple(header[i] for i in keep), [tuple(r[i] for i in keep) for r in rows],
                        right=frozenset({len(keep) - 1}), indent="")
        if max(map(len, lines)) <= width:
            if len(keep) == 3:
                lines.insert(0, f"dtype {next(iter(dtypes))}" if len(dtypes) == 1 else
                             "dtypes " + ", ".join(sorted(dtypes)))
            return lines
    return [part for name, shape, dtype, elements in rows
            for part in (name, f"    {shape}  {dtype}  {elements} elements")]


def _metadata_line(key: str, value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > 200:  # never cut a value mid-number: say what it is instead
        noun = "key" if isinstance(value, dict) else "item"
        what = f"{len(value):,} {noun}{'' if len(value) == 1 else 's'}"
        return f"{key}: {type(value).__name__} with {what} ({len(text):,} characters; see --json)"
    return f"{key}: {text}"


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def training_line(metadata: dict) -> str | None:
    """The loop position, optimizer and stop reason of a training checkpoint, in one line."""
    parts = []
    if metadata.get("kind") == "tinytorch.training_checkpoint":
        parts.append(f"step {_number(metadata.get('global_step'))}, epoch {_number(metadata.get('epoch'))}")
        if metadata.get("batch_in_epoch"):
            parts[-1] += f" (+{_number(metadata['batch_in_epoch'])} batches)"
        optimizer = metadata.get("optimizer")
        if isinstance(optimizer, dict) and optimizer.get("type"):
            groups = optimizer.get("param_groups") or [{}]
            lr = groups[0].get("lr") if isinstance(groups[0], dict) else None
            parts.append(f"{optimizer['type']}" + (f" (lr {_number(lr)})" if lr is not None else ""))
        history = metadata.get("history")
        if isinstance(history, dict) and history.get("stop_reason"):
            parts.append(f"stopped: {history['stop_reason']}")
    return "training state: " + "; ".join(parts) if parts else None


def evaluation_line(metadata: dict) -> str | None:
    """The history's last evaluation (step, epoch and every metric but timings), in one line."""
    history = metadata.get("history")
    evals = history.get("evals") if isinstance(history, dict) else None
    if not evals or not isinstance(evals[-1], dict):
        return None
    last = evals[-1]
    where = ", ".join(f"{k} {_number(last[k])}" for k in ("step", "epoch") if k in last)
    metrics = ", ".join(f"{k} {_number(v)}" for k, v in last.items()
                        if k not in ("step", "epoch", "time", "lr") and not k.endswith("_per_sec")
                        and isinstance(v, (int, float)))
    return f"last evaluation ({where}): {metrics}" if where else f"last evaluation: {metrics}"


def pruned_masks(info) -> list[tuple[str, str]]:
    """(parameter, mask tensor) of every pruned parameter stored with its mask, as
    ``nn.utils.prune`` leaves it: ``<name>_orig`` beside ``<name>_mask`` (after ``prune.remove``
    a checkpoint is dense and holds no masks)."""
    names = {t.name for t in info.tensors}
    return [(t.name[: -len("_mask")], t.name) for t in info.tensors
            if t.name.endswith("_mask") and t.name[: -len("_mask")] + "_orig" in names]


def pruning_rows(path, info) -> list[dict]:
    """Per pruned parameter: its name, elements and how many its mask prunes (reads the masks only)."""
    from . import io

    pairs = pruned_masks(info)
    if not pairs:
        return []
    masks, _ = io.load(path, keys=[mask for _, mask in pairs])
    return [{"parameter": name, "elements": int(masks[mask].size), "pruned": int((masks[mask] == 0).sum())}
            for name, mask in pairs]


def pruning_lines(rows: list[dict]) -> list[str]:
    """``pruned: ...`` with the overall sparsity, then one line per pruned parameter."""
    if not rows:
        return []
    total, pruned = sum(r["elements"] for r in rows), sum(r["pruned"] for r in rows)
    lines = [f"pruned: {len(rows):,} tensor{'s' * (len(rows) != 1)} with masks, {pruned:,} of {total:,} "
             f"weights zero ({pruned / total:.1%})"]
    return lines + aligned(("pruned tensor", "elements", "sparsity"),
                           [(r["parameter"], f"{r['elements']:,}", f"{r['pruned'] / r['elements']:.1%}")
                            for r in rows[:MAX_GROUPS]], right=frozenset({1, 2}))


def summary_lines(info, show_all: bool = False, width: int = 80,
                  pruned: list[dict] | None = None) -> list[str]:
    """What ``tito core summary`` prints: the model by layer or block, the training state in one
    line and the history's last evaluation; ``show_all`` adds every tensor and the metadata.

    Every part is built in one pass over the tensors, and the caller prints the lines at once:
    the time grows linearly with the number of tensors, never with a table renderer's cost.
    """
    counts = checkpoint_counts(info)
    layers = layer_rows(info)
    lines = [info.path]
    model_tensors = sum(r["tensors"] for r in layers)
    lines.append(f"model parameters: {counts['model']:,} in {model_tensors:,} tensor{'s' * (model_tensors != 1)}, "
                 f"{len(layers):,} layer{'s' * (len(layers) != 1)} or blocks")
    if not show_all:
        shown = layers[:MAX_GROUPS]
        rows = [(r["layer"], f"{r['tensors']:,}", f"{r['elements']:,}",
                 f"{r['elements'] / counts['model']:.1%}" if counts["model"] else "-", "/".join(r["dtypes"]))
                for r in shown]
        lines += aligned(("layer or block", "tensors", "parameters", "share", "dtype"), rows,
                         right=frozenset({1, 2, 3}))
        if len(layers) > len(shown):
            rest = layers[len(shown):]
            lines.append(f"  ... and {len(rest):,} more ({sum(r['elements'] for r in rest):,} parameters); "
                         "--all lists every tensor")
    lines += pruning_lines(pruned or [])
    if counts["optimizer"]:
        ratio = counts["optimizer"] / counts["model"] if counts["model"] else float("nan")
        lines.append(f"optimizer state: {counts['optimizer']:,} elements ({ratio:.2f} x the model)")
    for line in (training_line(info.metadata), evaluation_line(info.metadata)):
        if line:
            lines.append(line)
    if counts["other"]:
        lines.append(f"other tensors: {counts['other']:,} elements")
    lines.append(f"{len(info.tensors):,} tensors, {counts['total']:,} elements, {info.nbytes / 1e6:.2f} MB")
    from .quantization.serialization import summary_lines as quantized_lines

    lines += quantized_lines(info)
    aliases = list(info.aliases.items())  # tied weights: stored once, loaded under both names
    if show_all or len(aliases) <= MAX_GROUPS:
        lines += [f"{alias}: the same array as {stored} (tied)" for alias, stored in aliases]
    else:
        lines.append(f"{len(aliases):,} tied tensors (stored once; --all names them)")
    if show_all:
        lines += tensor_lines(info, width)
        import textwrap

        # wrapped at spaces only, so no number or name is ever split
        lines += [textwrap.fill(_metadata_line(key, value), width, subsequent_indent="    ",
                                break_long_words=False, break_on_hyphens=False)
                  for key, value in info.metadata.items()]
    else:
        others = [k for k in info.metadata if k not in SUMMARIZED_METADATA]
        if others:
            lines.append("metadata: " + ", ".join(others) + " (--all shows the values)")
    return lines


def _print_summary(model_file: str, as_json: bool, show_all: bool) -> None:
    import shutil

    from . import io
    from .quantization.serialization import quantization_summary

    info = io.inspect(model_file)
    pruned = pruning_rows(model_file, info)
    quantized = quantization_summary(info)  # a malformed scheme fails here, in one line
    pruned = pruning_rows(model_file, info)
    if as_json:
        counts = checkpoint_counts(info)
        tensors = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in info.tensors]
        click.echo(json.dumps({"path": info.path, "tensors": tensors, "parameters": counts["model"],
                               "optimizer_state_elements": counts["optimizer"],
                               "other_elements": counts["other"], "elements": counts["total"],
                               "bytes": info.nbytes, "aliases": info.aliases,
                               "layers": layer_rows(info), "pruned": pruned, "quantization": quantized,
                               "metadata": info.metadata}, indent=2))
        return
    width = shutil.get_terminal_size((80, 24)).columns
    # One write: a renderer per row (rich's Table) took minutes for 100,000 tensors.
    click.echo("\n".join(summary_lines(info, show_all, width, pruned)))


@core.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.option("--all", "show_all", is_flag=True, help="List every tensor and all metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def summary(model_file: str, show_all: bool, as_json: bool) -> None:
    """Summarize a checkpoint: parameters by layer or block, the training state and the last
    evaluation (--all for every tensor)."""
    _print_summary(model_file, as_json, show_all)


@core.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def inspect(model_file: str, as_json: bool) -> None:
    """List every tensor of a safetensors file (name, shape, dtype, elements) and its metadata,
    as `summary --all` does (the name of `tinytorch.core.io.inspect`)."""
    _print_summary(model_file, as_json, show_all=True)


@core.command()
@click.option("--epochs", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--lr", default=0.01, show_default=True, type=FiniteFloat(min=0, min_open=True))
@click.option("--no-progress", "no_progress", is_flag=True,
              help="No progress display at all (the result is still printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
def demo(epochs: int, seed: int, lr: float, no_progress: bool, as_json: bool) -> None:
    """Train a small MLP on a generated 3-class 2-D spiral and print its accuracy."""
    from .demo import train_spiral

    # A bar on a terminal, plain lines in a log (not a terminal); --no-progress: none.
    progress = not (as_json or no_progress) and "auto"
    result = train_spiral(epochs=epochs, seed=seed, lr=lr, progress=progress)
    if as_json:
        click.echo(json.dumps({"train_accuracy": result.train_accuracy, "epochs": epochs,
                               "final_loss": result.history["loss"][-1]}))
    else:
        click.echo(f"spiral MLP: train accuracy {result.train_accuracy:.2%} after {epochs} epochs "
                   f"(final loss {result.history['loss'][-1]:.4f})")
