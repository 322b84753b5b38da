"""`tito data`: list and download the data sets the installed packages register (loaded by tito
only when invoked). Core knows no data set itself: vision and language register theirs through
the ``tinytorch.datasets`` entry-point group (see `tinytorch.core.datafiles`)."""

from __future__ import annotations

import json

import click


@click.group()
def data() -> None:
    """Data sets: where they live ($TINYTORCH_DATA, else the user cache folder), what is there,
    and downloading them (checksummed, resumable)."""


def _status(spec, root: str | None, check: bool) -> dict:
    from .datafiles import verify

    folder = spec.path(root)
    files = []
    for file in spec.files:
        path = folder / file.name
        if not path.exists():
            status = "missing"
        elif check:
            status = verify(path, file)[0]
        else:
            status = "present"
        files.append({"name": file.name, "status": status, "size": path.stat().st_size if path.exists() else None})
    return {"name": spec.name, "folder": str(folder), "present": spec.is_present(root),
            "description": spec.description, "files": files, "download": spec.download_command}


@data.command("list")
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Data root [default: $TINYTORCH_DATA, else the user cache folder].")
@click.option("--verify", "check", is_flag=True, help="Check every file's sha256 (reads them all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def list_command(root: str | None, check: bool, as_json: bool) -> None:
    """Which data sets the installed packages know, and which are present where."""
    from .datafiles import data_root, registered_datasets

    statuses = [_status(spec, root, check) for spec in registered_datasets().values()]
    if as_json:
        click.echo(json.dumps({"root": str(data_root(root)), "datasets": statuses}, indent=2))
        return
    from .cli import aligned

    rows, missing = [], []
    for s in statuses:
        states = {f["status"] for f in s["files"]}
        corrupt = [f["name"] for f in s["files"] if f["status"] == "corrupt"]
        if corrupt:
            state = "corrupt: " + ", ".join(corrupt)
        elif not s["present"]:
            state = "missing"
            missing.append(s["name"])
        else:
            state = "verified" if states <= {"verified"} else "present"
        rows.append((s["name"], state, s["description"]))
    lines = [f"data root: {data_root(root)}"]
    if rows:
        lines += aligned(("data set", "status", "what"), rows)
    else:
        lines.append("  no data sets registered (install tinytorch-vision or tinytorch-language)")
    if missing:
        lines.append(f"download with: tito data download {' '.join(missing)}")
    click.echo("\n".join(lines))


@data.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Data root [default: $TINYTORCH_DATA, else the user cache folder].")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for each connection.")
def download_command(names: tuple[str, ...], root: str | None, timeout: float) -> None:
    """Download data sets by name (see `tito data list`): sha256-checked, an interrupted
    download resumes, and a file is renamed into place only once it verifies.

    \b
    Example:
      tito data download fashion-mnist gpt2-tokenizer
    """
    from .datafiles import fetch_dataset, get_dataset_files

    for name in names:  # every name is checked before anything is downloaded
        try:
            get_dataset_files(name)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="NAMES") from None
    for name in names:
        folder = fetch_dataset(name, root, report=click.echo, timeout=timeout)
        click.echo(f"{name}: ready in {folder}")
