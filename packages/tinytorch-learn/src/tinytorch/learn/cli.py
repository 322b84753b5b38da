"""`tito learn`: the course path (loaded by tito only when invoked)."""

from __future__ import annotations

import json
import sys

import click


@click.group()
def learn() -> None:
    """Build it yourself: write the library's ops from briefs and stubs, check them, and train
    the models on your own implementations.

    \b
    Example:
      tito learn start autograd --dir course
      tito learn check autograd --dir course
      tito learn milestone shakespeare --dir course
    """


_dir_option = click.option("--dir", "directory", default=".", show_default=True,
                           type=click.Path(file_okay=False),
                           help="The student's workspace (one file per started module).")


@learn.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def list_command(as_json: bool) -> None:
    """The modules in course order, their exercises and what each exercise implements."""
    from .curriculum import load_curriculum

    course = load_curriculum()
    if as_json:
        click.echo(json.dumps([
            {"module": m.name, "phase": m.phase, "title": m.title,
             "exercises": [{"name": e.name, "target": e.target, "brief": e.brief, "tests": list(e.tests),
                            "kernel": e.kernel is not None}
                           for e in m.exercises]} for m in course.modules], indent=2))
        return
    titles = dict(course.phases)
    width = max(len(m.name) for m in course.modules)
    phase = None
    for m in course.modules:
        if m.phase != phase:
            phase = m.phase
            click.echo(f"\n{titles[phase]}")
        click.echo(f"  {m.name:<{width}} {m.title}")
        for e in m.exercises:
            click.echo(f"      {e.name:<24} {e.target}{'  (timed by milestone roofline)' if e.kernel else ''}")


@learn.command("status")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status_command(directory: str, as_json: bool) -> None:
    """What this workspace has started and passed (as of each module's last check)."""
    from .workspace import status

    rows = status(directory)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["module"]) for r in rows)
    for r in rows:
        state = "not started" if not r["started"] else f"{len(r['passed'])}/{len(r['exercises'])} passed"
        click.echo(f"{r['module']:<{width}} {state}")


@learn.command("start")
@click.argument("module")
@_dir_option
def start_command(module: str, directory: str) -> None:
    """Write MODULE's file: one stub per exercise with the target's signature and documentation
    (never overwrites a file you edited)."""
    from .curriculum import load_curriculum
    from .workspace import start

    m = load_curriculum().module(module)
    path, how = start(m, directory)
    click.echo(f"{path}: {how} ({len(m.exercises)} exercises: {', '.join(e.name for e in m.exercises)})")
    click.echo(f"next: edit {path.name}, then `tito learn check {m.name} --dir {directory}`")


def _print_results(results) -> None:
    for r in results:
        mark = "PASS" if r.passed else r.status.upper()
        click.echo(f"{mark:<16} {r.exercise.qualified} ({r.cases_passed}/{r.cases} cases)")
        if r.message:
            click.echo(f"    {r.message}")
        for extra in r.details[1:3]:
            click.echo(f"    {extra}")
        if len(r.details) > 3:
            click.echo(f"    ... and {len(r.details) - 3} more failing cases")


@learn.command("check")
@click.argument("module")
@click.argument("exercise", required=False)
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def check_command(module: str, exercise: str | None, directory: str, as_json: bool) -> None:
    """Run MODULE's checks (or only EXERCISE's) on your implementations. Exits 1 when any fails."""
    from .checks import check_module
    from .curriculum import load_curriculum
    from .workspace import record

    m = load_curriculum().module(module)
    results = check_module(m, directory, exercise)
    record(directory, m, results)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _print_results(results)
        passed = sum(r.passed for r in results)
        click.echo(f"{passed}/{len(results)} exercises of {m.name} pass")
    if not all(r.passed for r in results):
        sys.exit(1)


@learn.command("grade")
@click.argument("directories", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--module", "modules", multiple=True,
              help="Grade only these modules [default: every module whose file a workspace has].")
@click.option("--format", "fmt", type=click.Choice(["json", "gradescope"]), default="json", show_default=True,
              help="Plain JSON per student, or Gradescope's autograder results.json (one workspace).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of printing.")
def grade_command(directories: tuple[str, ...], modules: tuple[str, ...], fmt: str, out: str | None) -> None:
    """A gradebook: every exercise of every workspace in DIRECTORIES, score and output."""
    from .grade import grade, to_gradescope

    if fmt == "gradescope" and len(directories) != 1:
        raise click.BadParameter("Gradescope's results.json grades one submission: give one directory",
                                 param_hint="DIRECTORIES")
    if out:
        from tinytorch.core.paths import check_outputs

        check_outputs({"--out": out}, {f"DIRECTORIES[{i}]": d for i, d in enumerate(directories)})
    book = grade(directories, modules)
    if fmt == "gradescope":
        payload = to_gradescope(book[0])
    else:
        payload = {"students": book}
    text = json.dumps(payload, indent=2) + "\n"
    if out:
        from tinytorch.core.io import write_atomic

        write_atomic(out, text.encode())
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@learn.command("milestone")
@click.argument("name", type=click.Choice(["shakespeare", "fashion-mnist", "roofline"]))
@_dir_option
@click.option("--steps", default=None, type=click.IntRange(min=1),
              help="Optimizer steps per run [default: 200 for shakespeare, 150 for fashion-mnist].")
@click.option("--chars", default=200_000, show_default=True, type=click.IntRange(min=1000),
              help="shakespeare: characters of Tiny Shakespeare to use (the last 10% validate).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--repeats", default=None, type=click.IntRange(min=1),
              help="roofline: timed calls of each implementation, the median counts [default: 11].")
@click.option("--threads", default="1", show_default=True,
              help="roofline: BLAS threads while timing (a number, or 'auto').")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="PNG (roofline: or SVG) of the runs [default: milestone_NAME.png in --dir].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def milestone_command(name: str, directory: str, steps: int | None, chars: int, seed: int, repeats: int | None,
                      threads: str, plot: str | None, as_json: bool) -> None:
    """Run your passed implementations beside the library's in the same run: train TinyGPT on
    Tiny Shakespeare (`shakespeare`) or a small CNN on Fashion-MNIST (`fashion-mnist`) on them
    (same seed, same data order), or time each of your kernels against the library's and place
    both on this machine's roofline (`roofline`)."""
    from pathlib import Path

    from tinytorch.core.paths import check_outputs

    from . import milestones
    from .curriculum import load_curriculum

    plot = plot or str(Path(directory) / f"milestone_{name.replace('-', '_')}.png")
    # the inputs are the student's files (the workspace also holds earlier figures, rewritten freely)
    check_outputs({"--plot": plot}, {f"--dir {m.filename}": Path(directory) / m.filename
                                     for m in load_curriculum().modules})
    if name == "roofline":
        _roofline(milestones, directory, repeats or milestones.ROOFLINE_REPEATS, threads, plot, as_json)
        return
    if name == "shakespeare":
        result = milestones.shakespeare(directory, steps=steps or 200, chars=chars, seed=seed, plot=plot)
    else:
        result = milestones.fashion_mnist(directory, steps=steps or 150, seed=seed, plot=plot)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"trained on your {len(result['exercises'])} passed implementations: {', '.join(result['exercises'])}")
    s = result["settings"]
    if name == "shakespeare":
        click.echo(f"TinyGPT d_model {s['d_model']}, {s['num_layers']} layers, {s['num_heads']} heads, context "
                   f"{s['seq_len']}, batch {s['batch_size']}, {s['steps']} steps, seed {s['seed']}")
        what = "validation loss"
    else:
        click.echo(f"SmallCNN (widths 8, 16) on {s['train_images']:,} Fashion-MNIST images, batch {s['batch_size']}, "
                   f"{s['steps']} steps, seed {s['seed']}; tested on {s['test_images']:,}")
        what = "test loss"
    click.echo(f"{what}: reference {result['reference_val_loss']:.4f}, yours "
               f"{result['your_val_loss']:.4f} (difference {result['difference']:+.4f}; "
               f"{'within' if result['within_tolerance'] else 'NOT within'} {result['tolerance']})")
    if "reference_accuracy" in result:
        click.echo(f"test accuracy: reference {result['reference_accuracy']:.2%}, yours {result['your_accuracy']:.2%}")
    click.echo("time inside each implementation (same run, same calls):")
    for k in result["kernels"]:
        if not k["calls"]:
            click.echo(f"  {k['exercise']:<32} not called by this model")
            continue
        ratio = k["your_seconds"] / k["reference_seconds"] if k["reference_seconds"] > 0 else float("inf")
        click.echo(f"  {k['exercise']:<32} {k['calls']:>6} calls  reference {k['reference_seconds'] * 1e3:8.1f} ms"
                   f"  yours {k['your_seconds'] * 1e3:8.1f} ms  ({ratio:.2f}x)")
    if result["contention_note"]:
        click.echo(f"({result['contention_note']}: these are wall times, longer and noisier than the machine can do)")
    click.echo(f"loss curves: {result['plot']}")


def _roofline(milestones, directory: str, repeats: int, threads: str, plot: str, as_json: bool) -> None:
    from tinytorch.core.threads import choose_threads

    if threads == "auto":
        n = choose_threads("auto")[0]
    elif threads.isdigit() and int(threads) >= 1:
        n = int(threads)
    else:
        raise click.BadParameter(f"expected a positive number or 'auto', got {threads!r}", param_hint="--threads")
    result = milestones.roofline(directory, repeats=repeats, threads=n, plot=plot)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"this machine's roofline: {result['peak_gflops']:.1f} GFLOP/s compute (float32 GEMM), "
               f"{result['bandwidth_gbs']:.1f} GB/s memory, ridge at {result['ridge_point']:.1f} FLOP/B")
    click.echo(f"each kernel timed alone, the library's calls and yours alternating: median of {repeats}, "
               f"{n} BLAS thread{'s' if n > 1 else ''}")
    for k in result["kernels"]:
        click.echo(f"  {k['exercise']:<34} library {k['reference_seconds'] * 1e3:8.2f} ms  yours "
                   f"{k['your_seconds'] * 1e3:8.2f} ms")
        click.echo(f"    {k['sentence']}")
    if result["contention_note"]:
        click.echo(f"({result['contention_note']}: the times are noisier than the machine can do)")
    click.echo(f"roofline: {result['plot']}")
