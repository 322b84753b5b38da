"""Built-in commands: `tito plugins`, `tito doctor` and `tito reuse` (in `tito.reuse`).

They import rich, json and numpy inside the command bodies, never at module level, because
this module is imported by every `tito` start (including `tito --help`, which must stay fast).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import click

from tito.discovery import discover_plugins, installed_distributions
from tito.reuse import reuse_command


def _builtin_names(ctx: click.Context) -> frozenset[str]:
    """Names of the root group's built-ins, which plugins may not take."""
    root = ctx.find_root().command
    return frozenset(getattr(root, "commands", {}))


def plugin_report(builtin_names: frozenset[str]) -> list[dict[str, Any]]:
    """One dict per plugin; importing each one is the only honest way to know its status."""
    rows = []
    for plugin in discover_plugins(builtin_names):
        status, error = plugin.status()
        rows.append(
            {
                "name": plugin.name,
                "distribution": plugin.distribution,
                "version": plugin.version,
                "value": plugin.value,
                "status": status,
                "error": error,
            }
        )
    return rows


def numpy_report() -> dict[str, Any]:
    """NumPy version and the BLAS it was built against; numpy is optional for tito-cli."""
    try:
        import numpy
    except ImportError:
        return {"installed": False, "version": None, "blas": None}
    blas = "unknown"
    try:  # mode="dicts" exists from NumPy 1.26 on; the layout is not a stable API.
        config = numpy.show_config(mode="dicts") or {}
        info = config.get("Build Dependencies", {}).get("blas", {})
        blas = " ".join(str(info[k]) for k in ("name", "version") if info.get(k)) or "unknown"
    except Exception:
        pass
    return {"installed": True, "version": numpy.__version__, "blas": blas}


def data_report() -> dict[str, Any]:
    """The folder ``$TINYTORCH_DATA`` names and what is there. Unset, the data root is the user
    cache folder that tinytorch-core resolves (`tinytorch.core.datafiles.data_root`, which tito
    cannot import): ``path`` is then None and ``tito data list`` shows it."""
    configured = os.environ.get("TINYTORCH_DATA")
    if not configured:
        return {"path": None, "source": "default", "exists": None, "subfolders": []}
    path = Path(configured).expanduser().absolute()
    exists = path.is_dir()
    subfolders = sorted(p.name for p in path.iterdir() if p.is_dir()) if exists else []
    return {"path": str(path), "source": "TINYTORCH_DATA", "exists": exists, "subfolders": subfolders}


def doctor_report(builtin_names: frozenset[str]) -> dict[str, Any]:
    """What ``tito doctor`` reports, as a dict: Python, platform, NumPy and its BLAS, the installed
    TinyTorch distributions, the plugins and the data folders.
    """
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": platform.platform(),
        "numpy": numpy_report(),
        "distributions": [{"name": n, "version": v} for n, v in installed_distributions()],
        "plugins": plugin_report(builtin_names),
        "data": data_report(),
    }


def _print_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2))


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List the installed plugins and whether each one loads."""
    rows = plugin_report(_builtin_names(ctx))
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("No tito plugins installed (pip install tinytorch-core).")
        return
    # Names are never cut: the entry-point column only appears on a terminal wide enough for it,
    # and errors are printed in full under the table.
    wide = console.width >= 40 + max(len(r["name"]) + len(r["distribution"]) + len(r["value"]) for r in rows)
    table = Table(title="tito plugins (entry-point group tito.commands)")
    for column in ("name", "distribution", "version", "status") + (("entry point",) if wide else ()):
        table.add_column(column, no_wrap=True)
    for r in rows:
        status = "[green]ok[/]" if r["status"] == "ok" else "[red]broken[/]"
        table.add_row(r["name"], r["distribution"], r["version"], status, *((r["value"],) if wide else ()))
    console.print(table)
    for r in rows:
        if r["error"]:
            console.print(f"[red]{escape(r['name'])}[/]: {escape(r['error'])}")


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@click.pass_context
def doctor_command(ctx: click.Context, as_json: bool) -> None:
    """Check the environment: Python, NumPy and BLAS, packages, plugins, data directory."""
    report = doctor_report(_builtin_names(ctx))
    if as_json:
        _print_json(report)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    py, np_, data = report["python"], report["numpy"], report["data"]
    numpy_text = f"{np_['version']} (BLAS: {np_['blas']})" if np_["installed"] else "not installed"
    packages = ", ".join(f"{d['name']} {d['version']}" for d in report["distributions"])
    plugins = [
        f"{p['name']} ({p['distribution']}): "
        + ("[green]ok[/]" if p["status"] == "ok" else f"[red]broken[/] - {escape(p['error'])}")
        for p in report["plugins"]
    ]
    if data["path"] is None:
        data_text = "TINYTORCH_DATA is not set: the user cache folder (`tito data list` shows it and what is there)"
    elif data["exists"]:
        contents = ", ".join(data["subfolders"]) or "no subfolders"
        data_text = f"{escape(data['path'])} ({data['source']}; {contents})"
    else:
        data_text = f"{escape(data['path'])} ({data['source']}; [yellow]does not exist[/])"

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("Python", f"{py['version']} ({escape(py['executable'])})")
    grid.add_row("Platform", report["platform"])
    grid.add_row("NumPy", escape(numpy_text))
    grid.add_row("Packages", packages or "none")
    grid.add_row("Plugins", "\n".join(plugins) or "none")
    grid.add_row("Data", data_text)
    Console().print(grid)


BUILTINS = (plugins_command, doctor_command, reuse_command)
