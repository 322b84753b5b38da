"""A fake installed distribution with `tito.commands` plugins, for the CLI tests.

The plugins live in a real `*.dist-info` folder on disk, so the entry points carry real
distribution metadata (name, version) exactly as an installed wheel's would. In-process tests
monkeypatch `tito.discovery.command_entry_points` to return just these; subprocess tests put
the folder on PYTHONPATH so that `importlib.metadata` finds it on its own.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import textwrap
from pathlib import Path

import pytest

from tito import discovery

FAKE_DIST = "tito-fake-plugins"
FAKE_VERSION = "1.2.3"
GOOD_MODULE = "tito_fake_good"
BROKEN_MODULE = "tito_fake_broken"

GOOD_SOURCE = '''
import click


@click.group()
def group():
    """A working plugin."""


@group.command()
def hello():
    click.echo("hello from the good plugin")


@group.command()
@click.option("--size", type=int, default=3)
def fail(size):
    raise ValueError(f"Linear expected last dim 3, got {size}")


@group.command()
def missing():
    open("/nonexistent/tito/checkpoint.safetensors")


@group.command()
def key():
    raise KeyError("no model named 'resnet'")


@group.command()
def crash():
    raise RuntimeError("boom")


@group.command()
def interrupt():
    raise KeyboardInterrupt


def not_a_command():
    """An entry point that is not a click command."""
'''

BROKEN_SOURCE = """
raise RuntimeError("plugin exploded on import")
"""

ENTRY_POINTS = f"""
[tito.commands]
good = {GOOD_MODULE}:group
broken = {BROKEN_MODULE}:cmd
notcmd = {GOOD_MODULE}:not_a_command
missingmod = tito_fake_not_there:cmd
doctor = {GOOD_MODULE}:group
"""


def write_fake_dist(root: Path) -> Path:
    """Write the plugin modules and their dist-info into `root`; return `root`."""
    (root / f"{GOOD_MODULE}.py").write_text(textwrap.dedent(GOOD_SOURCE))
    (root / f"{BROKEN_MODULE}.py").write_text(textwrap.dedent(BROKEN_SOURCE))
    info = root / f"{FAKE_DIST.replace('-', '_')}-{FAKE_VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {FAKE_DIST}\nVersion: {FAKE_VERSION}\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture
def fake_dist_dir(tmp_path: Path) -> Path:
    return write_fake_dist(tmp_path)


@pytest.fixture
def fake_plugins(fake_dist_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Make the fake plugins the only installed ones, and forget their modules afterwards."""
    (dist,) = md.distributions(path=[str(fake_dist_dir)])
    eps = [ep for ep in dist.entry_points if ep.group == discovery.GROUP]
    monkeypatch.setattr(discovery, "command_entry_points", lambda: list(eps))
    monkeypatch.syspath_prepend(str(fake_dist_dir))
    for name in (GOOD_MODULE, BROKEN_MODULE):
        sys.modules.pop(name, None)
    yield eps
    for name in (GOOD_MODULE, BROKEN_MODULE):
        sys.modules.pop(name, None)
