"""`tito performance`: hardware ceilings, FLOP counts, rooflines, profiles and comparisons.

Loaded by tito only when invoked. Library errors (ValueError with a message listing what is
accepted) become one red line and exit code 1 through tito's error handling.
"""

from __future__ import annotations

import json
from typing import Any

import click

from tinytorch.core.cli_params import FiniteFloat
from tinytorch.core.paths import check_outputs

LAYERS = ("attention", "avgpool2d", "batchnorm2d", "conv2d", "cross_entropy", "embedding", "gelu",
          "layernorm", "linear", "maxpool2d", "relu", "sigmoid", "softmax", "tanh")
CIFAR10_MODELS = ("small_cnn", "deep_cnn", "wide_cnn")


def _console():
    """The terminal's width (rich: $COLUMNS, else 80 when not a terminal); tables fit it."""
    from rich.console import Console

    return Console()


class _ListsModels(click.Command):
    """A command whose --help ends with the models registered right now (from entry points)."""

    def format_epilog(self, ctx, formatter) -> None:
        from .models import available_models

        names = available_models()
        with formatter.section("Registered models"):
            formatter.write_text(", ".join(names) if names else
                                 "none (install tinytorch-vision or tinytorch-language)")
        super().format_epilog(ctx, formatter)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _parse_size(text: str | None, names: str, layer: str) -> tuple[int, ...]:
    """'3,32,32' -> (3, 32, 32), with one clear error naming the expected form."""
    expected = len(names.split(","))
    if text is None:
        raise ValueError(f"flops {layer}: --input-size is required, expected {names} "
                         f"(e.g. {','.join(['3', '32', '32'][:expected]) if expected == 3 else names})")
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != expected or any(v <= 0 for v in values):
        raise ValueError(f"malformed --input-size {text!r} for {layer}: expected {expected} "
                         f"comma-separated positive integers {names}")
    return values


def _check_options(options: dict[str, tuple[int | None, int]]) -> None:
    """Each given option must be at least its minimum: one error naming the first that is not."""
    for option, (value, minimum) in options.items():
        if value is not None and value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ValueError(f"{option} must be {kind}, got {value}")


def _hardware(quick: bool = True):
    from .hardware import get_hardware_spec

    return get_hardware_spec(quick=quick)


@click.group()
def performance() -> None:
    """Performance analysis: hardware, FLOPs, roofline, layer profiles, model comparison."""


# ------------------------------------------------------------------------------ hardware


@performance.command()
@click.option("--quick", is_flag=True, help="Cached measurement or a < 1 s estimate.")
@click.option("--refresh", is_flag=True, help="Ignore the cache and measure again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def hardware(quick: bool, refresh: bool, as_json: bool) -> None:
    """CPU, caches, BLAS, theoretical and measured peaks, memory bandwidth, ridge point."""
    from .hardware import cache_path, get_hardware_spec

    spec = get_hardware_spec(quick=quick, refresh=refresh)
    if as_json:
        _echo_json(spec.to_dict())
        return
    from rich.table import Table

    t = Table(title="Hardware specification", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    for k, v in spec.rows():
        t.add_row(k, v + (f"; cache {cache_path()}" if k == "measurement" else ""))
    console = _console()
    console.print(t)
    _warn_contended(console, spec)


def _warn_contended(console, spec) -> None:
    if getattr(spec, "warning", None):
        from rich.markup import escape

        console.print(f"[bold yellow]warning[/]: {escape(spec.warning)}")


THREADS_HELP = ("BLAS threads while timing: a number, or 'auto' (one per physical core no other "
                "program keeps busy: BLAS threads sharing a core with another program wait for each other).")


def _check_threads(threads: str) -> None:
    """A bad --threads is one error naming the option."""
    from tinytorch.core.threads import parse_threads

    try:
        parse_threads(threads)
    except ValueError as e:
        raise ValueError(f"--threads: {e}") from None


def _timing_threads(threads: str, console=None) -> int:
    """Resolve --threads, saying when 'auto' held back because other programs are busy."""
    from tinytorch.core.threads import choose_threads

    _check_threads(threads)
    n, note = choose_threads(threads)
    if note and console is not None:
        console.print(f"[dim]{note}[/]")
    return n


def _print_timing_notes(console, notes: dict[str, str | None]) -> None:
    """Beside the figures: which of them were timed while other programs were busy."""
    from rich.markup import escape

    for what, note in notes.items():
        if note:
            console.print(f"[bold yellow]{escape(what)} {escape(note)}[/]: those times are slower than "
                          "this machine can do; time again when it is quieter")


# ------------------------------------------------------------------------------ flops


def _layer_count(layer: str, input_size: str | None, output_size: int | None, kernel_size,
                 stride, padding, dilation, groups, batch_size, heads, bias, causal):
    """(count, settings dict, output shape) for a named layer type."""
    from . import flops as F

    b = batch_size
    if layer == "linear":
        (i,) = _parse_size(input_size, "IN_FEATURES", layer)
        if output_size is None:
            raise ValueError("flops linear: --output-size (out_features) is required")
        settings = {"batch": b, "in_features": i, "out_features": output_size, "bias": bias}
        return F.linear_flops(b, i, output_size, bias), settings, (b, output_size)
    if layer == "conv2d":
        c, h, w = _parse_size(input_size, "C,H,W", layer)
        if output_size is None:
            raise ValueError("flops conv2d: --output-size (out_channels) is required")
        k = 3 if kernel_size is None else kernel_size
        s = 1 if stride is None else stride
        p = 1 if padding is None else padding
        settings = {"batch": b, "in_channels": c, "out_channels": output_size, "kernel_size": k,
                    "stride": s, "padding": p, "dilation": dilation, "groups": groups, "bias": bias}
        count, out = F.conv2d_flops((b, c, h, w), output_size, k, s, p, dilation, groups, bias)
        return count, settings, out
    if layer in ("maxpool2d", "avgpool2d"):
        c, h, w = _parse_size(input_size, "C,H,W", layer)
        k = 2 if kernel_size is None else kernel_size
        s = k if stride is None else stride
        p = 0 if padding is None else padding
        settings = {"batch": b, "kernel_size": k, "stride": s, "padding": p}
        count, out = F.pool2d_flops((b, c, h, w), k, s, p)
        return count, settings, out
    if layer == "batchnorm2d":
        c, h, w = _parse_size(input_size, "C,H,W", layer)
        settings = {"batch": b, "training": True, "affine": True}
        return F.batchnorm2d_flops((b, c, h, w)), settings, (b, c, h, w)
    if layer == "attention":
        L, d = _parse_size(input_size, "SEQ_LEN,D_MODEL", layer)
        settings = {"batch": b, "seq_len": L, "d_model": d, "num_heads": heads, "causal": causal,
                    "bias": bias}
        return F.attention_flops(b, L, d, heads, causal, bias), settings, (b, L, d)
    if layer == "layernorm":
        L, d = _parse_size(input_size, "ROWS,D", layer)
        settings = {"batch": b, "normalized_shape": d, "affine": True}
        return F.layernorm_flops((b, L, d), d), settings, (b, L, d)
    if layer == "embedding":
        (n,) = _parse_size(input_size, "NUM_IDS", layer)
        if output_size is None:
            raise ValueError("flops embedding: --output-size (embedding_dim) is required")
        settings = {"batch": b, "embedding_dim": output_size}
        return F.embedding_flops(b * n, output_size), settings, (b, n, output_size)
    if layer == "cross_entropy":
        (c,) = _parse_size(input_size, "CLASSES", layer)
        settings = {"batch": b, "classes": c}
        return F.cross_entropy_flops(b, c), settings, ()
    (n,) = _parse_size(input_size, "NUMEL", layer)
    settings = {"batch": b}
    if layer == "softmax":
        return F.softmax_flops(b * n), settings, (b, n)
    return F.activation_flops(layer, b * n), settings, (b, n)


@performance.command(cls=_ListsModels)
@click.argument("layer")
@click.option("--input-size", help="Input shape without batch, e.g. 3,32,32 (conv2d), 784 "
              "(linear), 128,256 (attention: SEQ_LEN,D_MODEL).")
@click.option("--output-size", type=int, help="out_channels / out_features / embedding_dim.")
@click.option("--kernel-size", type=int, help="Kernel size [conv2d: 3, pooling: 2].")
@click.option("--stride", type=int, help="Stride [conv2d: 1, pooling: kernel size].")
@click.option("--padding", type=int, help="Padding [conv2d: 1, pooling: 0].")
@click.option("--dilation", type=int, default=1, show_default=True)
@click.option("--groups", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--heads", type=int, default=8, show_default=True, help="Attention heads.")
@click.option("--no-bias", is_flag=True, help="Layer without bias.")
@click.option("--no-causal", is_flag=True, help="Attention without the causal mask.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def flops(layer: str, input_size, output_size, kernel_size, stride, padding, dilation, groups,
          batch_size, heads, no_bias, no_causal, as_json) -> None:
    """FLOPs, bytes and arithmetic intensity of a layer type or a registered model.

    LAYER is one of: attention, avgpool2d, batchnorm2d, conv2d, cross_entropy, embedding, gelu,
    layernorm, linear, maxpool2d, relu, sigmoid, softmax, tanh, or a registered model name.
    """
    from .flops import CONVENTION
    from .models import available_models

    _check_options({"--output-size": (output_size, 1), "--kernel-size": (kernel_size, 1),
                    "--stride": (stride, 1), "--padding": (padding, 0),
                    "--dilation": (dilation, 1), "--groups": (groups, 1),
                    "--batch-size": (batch_size, 1), "--heads": (heads, 1)})
    name = layer.lower()
    if name not in LAYERS:
        if layer in available_models():
            return _model_flops(layer, as_json)
        models = ", ".join(available_models()) or "none installed"
        raise ValueError(f"unknown layer or model {layer!r}; layers: {', '.join(LAYERS)}; "
                         f"models: {models}")
    count, settings, out_shape = _layer_count(
        name, input_size, output_size, kernel_size, stride, padding, dilation, groups,
        batch_size, heads, not no_bias, not no_causal)
    spec = _hardware(quick=True)
    from .roofline import RooflineModel

    roof = RooflineModel(spec)
    bound = roof.classify(count.intensity) if count.flops else "no FLOPs (data movement only)"
    if as_json:
        _echo_json({"layer": name, "input_size": input_size, "settings": settings,
                    "output_shape": list(out_shape), "convention": CONVENTION,
                    **count.to_dict(), "macs": count.matmul_flops // 2,
                    "ridge_point": roof.ridge_point, "bound": bound,
                    "attainable_gflops": roof.attainable(count.intensity)})
        return
    console = _console()
    _warn_contended(console, spec)
    console.print(f"[bold]{name}[/] analysis: input {input_size} -> output "
                  f"{'x'.join(map(str, out_shape[1:] if len(out_shape) > 1 else out_shape))}")
    console.print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    console.print(f"convention: {CONVENTION}")
    console.print(f"  matmul/conv FLOPs : {count.matmul_flops:,} ({count.matmul_flops // 2:,} MACs)")
    console.print(f"  elementwise FLOPs : {count.elementwise_flops:,}")
    console.print(f"  total FLOPs       : {count.flops:,}")
    console.print(f"  bytes moved       : {count.bytes:,} (float32: inputs, weights, output)")
    console.print(f"  intensity         : {count.intensity:.3f} FLOP/byte")
    if count.flops:
        console.print(f"  bound             : {bound} (ridge {roof.ridge_point:.2f} FLOP/byte on "
                      f"this machine; attainable {roof.attainable(count.intensity):.1f} GFLOP/s)")


def _model_flops(name: str, as_json: bool) -> None:
    from .flops import CONVENTION, FLOPsCounter
    from .models import load_model
    from .tables import Column, fitted_table

    model, x = load_model(name)
    trace = FLOPsCounter().trace(model, x)
    if as_json:
        _echo_json({"model": name, "input_shape": list(getattr(x, "shape", ())), **trace.to_dict()})
        return
    columns = [Column("layer", "left", 10), Column("type", "left", 8), Column("output", "left", 3),
               Column("matmul/conv FLOPs", priority=9), Column("elementwise FLOPs", priority=7),
               Column("bytes", priority=5), Column("FLOP/B", priority=4)]
    rows = [[lc.name, lc.type, "x".join(map(str, lc.output_shape or ())),
             f"{lc.forward.matmul_flops:,}", f"{lc.forward.elementwise_flops:,}",
             f"{lc.forward.bytes:,}", f"{lc.forward.intensity:.2f}"] for lc in trace.layers.values()]
    f = trace.forward
    total = ["total", "", "", f"{f.matmul_flops:,}", f"{f.elementwise_flops:,}", f"{f.bytes:,}",
             f"{f.intensity:.2f}"]
    console = _console()
    console.print(fitted_table(f"{name}: input {tuple(getattr(x, 'shape', ()))}; {CONVENTION}",
                               columns, rows, console.width, footer=[total]))


# ------------------------------------------------------------------------------ models


def _load(name: str):
    from .models import load_model

    return load_model(name)


def _profile(name: str, repeats: int, warmup: int, spec: Any, backward: bool = True,
             threads: str = "auto", console=None):
    """(profile, BLAS threads used): the model is loaded (and a bad name refused) first."""
    from .profiler import ModelProfiler

    model, x = _load(name)
    n = _timing_threads(threads, console)
    return ModelProfiler(model, x, name=name, hardware=spec).profile(
        repeats=repeats, warmup=warmup, backward=backward, threads=n), n


@performance.command(cls=_ListsModels)
@click.argument("model")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--no-backward", is_flag=True, help="Profile the forward pass only.")
@click.option("--threads", default="auto", show_default=True, help=THREADS_HELP)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write CSV here.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False),
              help="Also write a Chrome trace event JSON here (open in Perfetto).")
@click.option("--out", "json_path", type=click.Path(dir_okay=False), help="Also write JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile(model, repeats, warmup, no_backward, threads, csv_path, trace_path, json_path,
            as_json) -> None:
    """Layer-by-layer forward/backward time, FLOPs, memory and roofline position of MODEL."""
    check_outputs({"--csv": csv_path, "--trace": trace_path, "--out": json_path})
    console = _console()
    _check_threads(threads)  # a bad --threads fails before anything is measured
    spec = _hardware(True)
    result, n_threads = _profile(model, repeats, warmup, spec, not no_backward, threads,
                                 None if as_json else console)
    if csv_path:
        result.to_csv(csv_path)
    if trace_path:
        result.to_chrome_trace(trace_path)
    if json_path:
        result.to_json(json_path)
    if as_json:
        click.echo(result.to_json())
        return
    _warn_contended(console, spec)
    console.print(result.table(width=console.width))
    console.print(f"plain step {result.total_s * 1e3:.2f} ms (forward {result.forward_s * 1e3:.2f}, "
                  f"backward {result.backward_s * 1e3:.2f}); instrumented step "
                  f"{result.profiled_s * 1e3:.2f} ms ({result.overhead - 1:+.0%}); the rows "
                  f"add up to the instrumented step, {result.coverage:.0%} of it in modules; "
                  f"{n_threads} BLAS thread{'s' if n_threads > 1 else ''}")
    _print_timing_notes(console, {f"{model}:": result.note})
    top = sorted((l for l in result.layers if l.advice), key=lambda l: -l.total_s)[:8]
    if top:
        console.print("[bold]Advice[/] for the layers that take the most time:")
    for l in top:
        console.print(f"[bold]{l.name}[/] ({l.type}, {l.percent:.1f}%): {l.advice}")


@performance.command(cls=_ListsModels)
@click.argument("model")
@click.option("--out", "out_path", default="roofline.png", show_default=True,
              type=click.Path(dir_okay=False), help="Plot file (.png or .svg).")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False), help="Also save an SVG.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--threads", default="auto", show_default=True, help=THREADS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def roofline(model, out_path, svg_path, repeats, threads, as_json) -> None:
    """Roofline plot of MODEL's layers against this machine's measured ceilings."""
    from .roofline import RooflineModel

    if not out_path.lower().endswith((".png", ".svg")):
        raise ValueError(f"--out must end in .png or .svg, got {out_path!r}")
    check_outputs({"--out": out_path, "--svg": svg_path})
    console = _console()
    _check_threads(threads)  # a bad --threads fails before anything is measured
    spec = _hardware(True)
    result, n_threads = _profile(model, repeats, 2, spec, False, threads, None if as_json else console)
    roof = RooflineModel(spec)
    points = roof.points_from_profile(result)
    roof.plot(points, [p for p in (out_path, svg_path) if p],
              title=f"{model} roofline (input {result.input_shape})")
    if as_json:
        _echo_json({"model": model, "plot": out_path, "svg": svg_path,
                    "peak_gflops": roof.peak_gflops, "bandwidth_gbs": roof.bandwidth_gbs,
                    "ridge_point": roof.ridge_point, "points": [p.to_dict() for p in points],
                    "threads": n_threads, "contention": result.contention,
                    "hardware_contention": spec.contention})
        return
    _warn_contended(console, roof.hardware)
    console.print(f"ceilings: {roof.peak_gflops:.1f} GFLOP/s compute, {roof.bandwidth_gbs:.1f} GB/s "
                  f"memory, ridge {roof.ridge_point:.2f} FLOP/byte")
    for p in points:
        console.print(f"[bold]{p.name}[/]: {p.intensity:.2f} FLOP/B, {p.achieved_gflops:.2f} "
                      f"GFLOP/s ({p.bound}) - {p.advice}")
    _print_timing_notes(console, {f"{model}'s layer times:": result.note})
    console.print(f"plot written to {out_path}" + (f" and {svg_path}" if svg_path else ""))


def _compare(names, repeats: int, threads: str, as_json: bool, title: str) -> None:
    from .profiler import compare, comparison_table

    console = _console()
    loaded = {name: _load(name) for name in names}
    n_threads = _timing_threads(threads, None if as_json else console)
    rows = compare(loaded, repeats=repeats, warmup=1, threads=n_threads)
    if as_json:
        _echo_json({"convention": "1 multiply-add = 2 FLOPs", "threads": n_threads,
                    "models": [r.to_dict() for r in rows]})
        return
    console.print(comparison_table(rows, f"{title}, {n_threads} BLAS thread{'s' if n_threads > 1 else ''}",
                                   width=console.width))
    _print_timing_notes(console, {f"{r.name}:": r.note for r in rows})


@performance.command(name="compare", cls=_ListsModels)
@click.argument("models", nargs=-1)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--threads", default="auto", show_default=True, help=THREADS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_cmd(models, repeats, threads, as_json) -> None:
    """Side-by-side params, FLOPs, memory and time of registered MODELS (default: all of them)."""
    from .models import available_models

    names = list(models) or available_models()
    if not names:
        raise ValueError("no models registered: install tinytorch-vision or tinytorch-language")
    _compare(names, repeats, threads, as_json, "Model comparison")


@performance.command()
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--threads", default="auto", show_default=True, help=THREADS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cifar10(repeats, threads, as_json) -> None:
    """The design summary's comparison of the three CIFAR-10 CNNs (needs tinytorch-vision)."""
    from .models import available_models

    missing = [m for m in CIFAR10_MODELS if m not in available_models()]
    if missing:
        raise ValueError(f"tito performance cifar10 needs tinytorch-vision (models "
                         f"{', '.join(CIFAR10_MODELS)}); not registered: {', '.join(missing)} "
                         f"- install it with: pip install tinytorch-vision")
    _compare(CIFAR10_MODELS, repeats, threads, as_json, "CIFAR-10 CNNs")




# ------------------------------------------------------------------------------ benchmark


def _seconds(x: float) -> str:
    return f"{x * 1e3:.3f} ms" if x < 1 else f"{x:.3f} s"


def _print_report(console, report) -> None:
    from rich.markup import escape

    m = report.model
    console.print(f"[bold]{escape(report.name)}[/]: {escape(m['description'] or m['type'])}")
    disk = (f"{m['disk_model_bytes'] / 1e6:.3f} MB of model tensors on disk (the checkpoint: "
            f"{m['disk_bytes'] / 1e6:.3f} MB)" if m.get("disk_bytes") is not None else "no file")
    console.print(f"  size         : {m['parameters']:,} parameters; {m['memory_bytes'] / 1e6:.3f} MB in "
                  f"memory (parameters {m['parameter_bytes']:,} B + buffers {m['buffer_bytes']:,} B); {disk}")
    s = report.single_stream
    if s:
        lat = s["latency_s"]
        console.print(f"  SingleStream : p50 {_seconds(lat['p50'])}, p90 {_seconds(lat['p90'])}, p99 "
                      f"{_seconds(lat['p99'])} (mean {_seconds(lat['mean'])}) over {s['queries']:,} "
                      f"queries in {s['duration_s']:.1f} s")
    o = report.offline
    if o:
        console.print(f"  Offline      : {o['samples_per_s']:,.1f} samples/s at batch {o['batch_size']} "
                      f"({o['samples']:,} samples in {o['queries']:,} batches, {o['duration_s']:.1f} s)")
    a = report.accuracy
    if a:
        extra = f", perplexity {a['perplexity']:.3f}" if "perplexity" in a else ""
        on = (f" on {a['samples']:,} samples" if isinstance(a.get("samples"), int) else "") + (
            f" of {escape(str(a['dataset']))}" if a.get("dataset") else "")
        console.print(f"  {str(a.get('metric', 'accuracy')):<13}: {a.get('value')}{extra}{on}"
                      if not isinstance(a.get("value"), (int, float)) else
                      f"  {str(a.get('metric', 'accuracy')):<13}: {a['value']:.4f}{extra}{on}")
    mem = report.memory
    console.print(f"  peak RSS     : {mem['peak_rss_bytes'] / 1e6:.1f} MB for loading and the scenarios, "
                  f"{mem['peak_rss_with_accuracy_bytes'] / 1e6:.1f} MB with the accuracy pass "
                  f"({escape(mem['method'])})")
    c = report.contention
    if c:
        load = c.get("load_1min")
        console.print(f"  machine      : other processes used {c['others_cores']:.2f} cores while timing"
                      + (f", load average {load:.2f}" if load is not None else "")
                      + (f"; {escape(report.machine['cpu_name'])}" if report.machine else ""))
    if s:
        console.print(f"  percentiles  : {escape(s['percentile_definition'])}")
    if report.warning:
        console.print(f"[bold yellow]warning[/]: {escape(report.warning)}")


@performance.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--scenario", type=click.Choice(["single-stream", "offline", "all"]), default="all",
              show_default=True, help="MLPerf scenario: latency of one query at a time, throughput "
              "at a batch, or both.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples per Offline query.")
@click.option("--min-queries", type=click.IntRange(min=1), default=1024, show_default=True,
              help="SingleStream queries at least (MLPerf's default); Offline samples at least.")
@click.option("--min-duration", type=FiniteFloat(min=0), default=10.0, show_default=True,
              help="Seconds each scenario runs at least (MLPerf submissions use 600).")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed queries before each scenario.")
@click.option("--limit", type=click.IntRange(min=1),
              help="Accuracy on the first N held-out samples only [default: all].")
@click.option("--no-accuracy", is_flag=True, help="Skip the accuracy pass.")
@click.option("--threads", type=click.IntRange(min=1), help="BLAS threads while benchmarking "
              "[default: as set].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
def benchmark(checkpoint, scenario, batch_size, min_queries, min_duration, warmup, limit, no_accuracy,
              threads, out_path, as_json) -> None:
    """Benchmark CHECKPOINT as MLPerf inference does: SingleStream latency p50/p90/p99, Offline
    throughput, accuracy on the held-out data, size, peak RSS and the machine, in one JSON report.

    \b
    CHECKPOINT: a `tito vision train` or `tito language train` checkpoint, or a GPT-2 directory
    (config.json, model.safetensors, and GPT-2's vocab.json + merges.txt or encoder.json + vocab.bpe).
    Compare reports with `tito performance compare-runs A.json B.json`.
    """
    from .benchmark import BenchmarkSettings, PeakRSS, load_target, run_benchmark

    check_outputs({"--out": out_path}, {"CHECKPOINT": checkpoint})
    settings = BenchmarkSettings(
        scenarios=("single-stream", "offline") if scenario == "all" else (scenario,),
        batch_size=batch_size, min_queries=min_queries, min_duration_s=min_duration,
        warmup_queries=warmup, accuracy=not no_accuracy, accuracy_limit=limit, threads=threads)
    spec = _hardware(True)  # before the peak is reset: a quick measurement streams 32 MiB arrays
    rss = PeakRSS()
    rss.reset()  # before loading: the model's load counts towards the peak
    target = load_target(checkpoint, limit)
    report = run_benchmark(target, settings, hardware=spec, rss=rss)
    text = report.to_json(out_path)
    if as_json:
        click.echo(text)
        return
    console = _console()
    _print_report(console, report)
    if out_path:
        console.print(f"report written to {out_path}")


@performance.command(name="compare-runs")
@click.argument("reports", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_runs(reports, as_json) -> None:
    """Side-by-side table of two or more benchmark REPORTS (from `benchmark --out`) with each one's
    ratio to the first, the baseline. (`compare` profiles registered models instead.)"""
    from pathlib import Path

    from .benchmark import compare_reports, comparison_table, read_report, settings_differences

    if len(reports) < 2:
        raise ValueError(f"compare-runs needs two or more reports, got {len(reports)}")
    loaded = [read_report(r) for r in reports]
    labels = [Path(r).stem for r in reports]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}:{label}" for i, label in enumerate(labels)]
    differences = settings_differences(loaded, labels)
    if as_json:
        _echo_json({"baseline": reports[0], "reports": list(reports), "labels": labels,
                    "rows": [row.to_dict() for row in compare_reports(loaded)],
                    "differences": differences})
        return
    console = _console()
    console.print(comparison_table(loaded, labels, width=console.width))
    for note in differences:
        console.print(f"[bold]differs[/]: {note}")
    for label, report in zip(labels, loaded):
        if report.warning:
            console.print(f"[bold yellow]warning[/] ({label}): {report.warning}")


@performance.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--quantize", type=click.Choice(["int8", "int4", "w8a8", "none"]), required=True,
              help="int8: int8 weights (weight-only Linear, dynamic W8A8 convolutions); int4: Q4_0 "
              "weight-only Linear; w8a8: static int8 weights and activations, calibrated; none.")
@click.option("--prune", type=FiniteFloat(min=0, max=1), help="Global magnitude pruning: this fraction "
              "of the Linear/conv weights set to zero (before quantizing); with --structured, this fraction of "
              "each layer's channels/neurons/heads removed.")
@click.option("--structured", is_flag=True, help="With --prune: remove that share of whole channels, "
              "neurons and attention heads instead (a smaller, faster model; its file records the new sizes).")
@click.option("--finetune-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Optimizer steps of fine-tuning on the training data after pruning (masks held).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The optimized checkpoint (never CHECKPOINT).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples per Offline query (and the batch the layers are measured on).")
@click.option("--min-queries", type=click.IntRange(min=1), default=64, show_default=True,
              help="SingleStream queries at least; Offline samples at least.")
@click.option("--min-duration", type=FiniteFloat(min=0), default=2.0, show_default=True,
              help="Seconds each scenario runs at least (short by default; `benchmark` uses 10).")
@click.option("--limit", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Accuracy on the first N held-out samples.")
@click.option("--layer-repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timings per layer for the roofline (median).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="BLAS threads while benchmarking (1 is repeatable on a shared machine).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write both reports and the layer table as JSON here.")
def optimize(checkpoint, quantize, prune, structured, finetune_steps, out_path, batch_size, min_queries,
             min_duration, limit, layer_repeats, threads, report_path) -> None:
    """Prune → fine-tune → quantize CHECKPOINT, write --out, and print before/after: size, accuracy
    or validation loss, p90 latency, Offline throughput, FLOPs and each layer on the roofline,
    with whether the roofline predicted the measured change. Every ratio is optimized / baseline.

    \b
    CHECKPOINT: a `tito vision train` or `tito language train` checkpoint, or a GPT-2 directory.
    Benchmark the result longer with `tito performance benchmark OUT`.
    """
    from .benchmark import BenchmarkSettings
    from .optimize import optimize as run

    check_outputs({"--out": out_path, "--report": report_path}, {"CHECKPOINT": checkpoint})
    if structured and prune is None:
        raise ValueError("--structured needs --prune FRACTION (the share of channels, neurons and heads to remove)")
    settings = BenchmarkSettings(batch_size=batch_size, min_queries=min_queries, min_duration_s=min_duration,
                                 warmup_queries=3, performance_sample_count=max(batch_size, 256),
                                 accuracy_limit=limit, threads=threads)
    console = _console()
    result = run(checkpoint, out_path, quantize, prune, finetune_steps, settings, limit, layer_repeats,
                 echo=lambda s: console.print(s, style="dim"), structured=structured)
    if report_path:
        from tinytorch.core.io import write_atomic

        write_atomic(report_path, (json.dumps(result.to_dict(), indent=2, default=str) + "\n").encode(),
                     what="optimize report")
    _print_optimize(console, result)


def _print_optimize(console, result) -> None:
    from dataclasses import replace

    from .benchmark import comparison_table
    from .optimize import TOLERANCE
    from .tables import Column, fitted_table

    labels = ["baseline", "optimized"]
    # peak RSS is left out: both runs share this process, whose allocator keeps what the first
    # one freed (benchmark each file with `tito performance benchmark` to compare it)
    shown = [replace(r, memory={}) for r in (result.before, result.after)]
    console.print(comparison_table(shown, labels, width=console.width))
    f0, f1 = result.flops
    console.print(f"forward FLOPs per batch of {result.before.settings['batch_size']}: baseline {f0:,}, "
                  f"optimized {f1:,} ({f1 / f0:.3f}x baseline)" if f0 else "forward FLOPs: none traced")
    cells = []
    for c in result.layers:
        v = c.verdict
        cells.append([c.name, f"{c.type_before} -> {c.type_after}", f"{c.bytes[0]:,} -> {c.bytes[1]:,}",
                      f"{c.flops[0]:,} -> {c.flops[1]:,}", f"{c.seconds[0] * 1e3:.3f} -> {c.seconds[1] * 1e3:.3f}",
                      f"{c.bound[0]} -> {c.bound[1]}", v.get("verdict", "-"), v.get("why", "")])
    columns = [Column("layer", "left", 10), Column("type", "left", 6), Column("bytes", priority=8),
               Column("FLOPs", priority=5), Column("ms (baseline -> optimized)", priority=9),
               Column("roofline", "left", 7), Column("prediction", "left", 9), Column("why", "left", 4)]
    batch = result.before.settings["batch_size"]
    on = (f"a batch of the Offline scenario ({batch})" if result.layer_batch >= batch else
          f"{result.layer_batch} samples of the Offline batch of {batch}, whose layer inputs would hold "
          f"{result.layer_inputs_bytes / 1e9:.1f} GB")
    console.print(fitted_table(f"Each layer on the roofline, baseline -> optimized ({on}; the layer alone, "
                               "one BLAS thread)", columns, cells, width=console.width))
    unchanged = [c.seconds[0] / c.seconds[1] for c in result.layers if not c.verdict and c.seconds[1] > 0]
    if unchanged:
        console.print(f"timing scatter: the {len(unchanged)} unchanged layers ran {min(unchanged):.2f}x to "
                      f"{max(unchanged):.2f}x their baseline speed (a verdict needs a change beyond "
                      f"1 ± {TOLERANCE:.2f})")
    console.print("peak RSS is not compared here (both runs share one process); run `tito performance "
                  "benchmark` on each file for it")
    for label, report in zip(labels, (result.before, result.after)):
        if report.warning:
            console.print(f"[bold yellow]warning[/] ({label}): {report.warning}")
    console.print(f"optimized checkpoint written to {result.out}")
