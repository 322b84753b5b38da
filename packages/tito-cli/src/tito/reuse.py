"""`tito reuse`: measure and enforce reuse at the package boundary (DESIGN.md §8).

It reads the *installed* TinyTorch distributions through `importlib.metadata` (so it works on
wheels as well as on the editable dev workspace), and reports per distribution:

* edges: imports of other TinyTorch packages versus Requires-Dist and the package graph;
* code share (domain packages): core logical lines used / (that + the package's own lines);
* component share: module instances and parameters of each registered model that are core's.

`--check` turns it into a gate: exit 1 on any edge or model problem, or when a domain
package's code share is below its floor (`--min 0.70`, or `--min perf=0.30` per package).

This module is imported on every `tito` start, so it imports only click at module level; the
analysis (`tito.reuse_analysis`), and rich for the table, load when the command runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from tito.reuse_analysis import PackageReport


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _display_path(path: str | None) -> str | None:
    """Paths relative to the working directory when they are below it (clickable, short)."""
    if path is None:
        return None
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def render_tables(reports: list[PackageReport], floors: dict[str, float | None]) -> None:
    """A rich table per distribution, each followed by its problems with file:line."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for report in reports:
        table = Table(
            title=f"{report.name} {report.version}",
            caption=escape(report.location),
            show_header=False,
            title_justify="left",
        )
        table.add_column("what", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        imports = ", ".join(f"{t} ({n})" for t, n in report.imports.items()) or "none"
        table.add_row("files", f"{report.files} .py files, {report.own_lines:,} logical lines")
        table.add_row("imports of ours", escape(imports))
        edge_errors = [p for p in report.problems if p.kind != "model"]
        table.add_row(
            "import errors",
            f"[red]{len(edge_errors)}[/]" if edge_errors else "[green]none[/]",
        )
        if report.code is not None:
            code = report.code
            floor = floors.get(report.name)
            verdict = ""
            if floor is not None and code.share is not None:
                ok = code.share >= floor
                verdict = f"  [{'green' if ok else 'red'}](floor {floor:.1%})[/]"
            table.add_row(
                "code share",
                f"[bold]{_percent(code.share)}[/]{verdict}  = core {code.core_lines_used:,} / "
                f"(core {code.core_lines_used:,} + own {code.own_lines:,}); "
                f"{len(code.used)} core symbols of {code.core_lines_total:,} core lines",
            )
        else:
            table.add_row("code share", f"n/a ({escape(report.code_note or '')})")
        for m in report.models:
            table.add_row(
                f"model {m.model}",
                f"modules {_percent(m.module_share)} core ({m.modules_core}/{m.modules_total}), "
                f"parameters {_percent(m.param_share)} core ({m.params_core:,}/{m.params_total:,})",
            )
        console.print(table)
        for problem in report.problems:
            where = f"{_display_path(problem.file)}:{problem.line}: " if problem.file else ""
            console.print(f"  [red]error[/] {escape(where + problem.message)}", soft_wrap=True)
        console.print()


@click.command("reuse")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 on any import or model problem, or a code share below the floor.",
)
@click.option(
    "--min",
    "floor_args",
    multiple=True,
    metavar="[PACKAGE=]FLOOR",
    help="Code-share floor for --check: a default (0.70 if not given) and/or per-package "
    "floors such as perf=0.30. Repeatable; a floor for a package that is not installed is ignored.",
)
@click.option(
    "--package",
    "packages",
    multiple=True,
    metavar="NAME",
    help="Report (and check) only these distributions, e.g. language. Repeatable.",
)
@click.option(
    "--no-models",
    is_flag=True,
    help="Skip the component share (which imports the packages to build their models).",
)
def reuse_command(
    as_json: bool, check: bool, floor_args: tuple[str, ...], packages: tuple[str, ...], no_models: bool
) -> None:
    """Measure how the installed TinyTorch packages reuse core, and check the import graph."""
    import json

    from tito.components import registered_models
    from tito.distfiles import installed_sources
    from tito.errors import TitoError
    from tito.reuse_analysis import (
        ALLOWED_GRAPH,
        DEFAULT_FLOOR,
        analyze,
        canonical_name,
        check_failures,
        floor_for,
        parse_floor,
        report_json,
    )

    sources, unreadable = installed_sources()
    installed = set(sources) | set(unreadable)
    known = installed | set(ALLOWED_GRAPH)
    default_floor, floors = DEFAULT_FLOOR, {}
    try:
        for text in floor_args:
            name, value = parse_floor(text, known)
            if name is None:
                default_floor = value
            elif name in installed:
                floors[name] = value
        only = sorted({canonical_name(p, known) for p in packages}) if packages else None
        missing = sorted(set(only or ()) - installed)
        if missing:
            raise ValueError(
                f"{', '.join(missing)} is not installed (installed: {', '.join(sorted(installed))})"
            )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not installed:
        raise TitoError("no TinyTorch distribution is installed (pip install tinytorch-core)")

    wanted = set(only) if only is not None else installed
    models = [] if no_models else [m for m in registered_models() if m.distribution in wanted]
    reports = analyze(sources, only=only, models=models, unreadable=unreadable)
    failures = check_failures(reports, default_floor, floors)

    if as_json:
        click.echo(json.dumps(report_json(reports, default_floor, floors, failures), indent=2))
    else:
        render_tables(reports, {r.name: floor_for(r, default_floor, floors) for r in reports})
    if check and failures:
        raise TitoError("reuse check failed: " + "; ".join(failures))

    if check and not as_json:
        checked = ", ".join(r.name for r in reports)
        click.echo(f"reuse check passed: {checked}")
