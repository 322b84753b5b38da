"""A student's workspace: one file per started module and ``.tinytorch-learn.json``, which keeps
the sha256 of each file as generated (a file whose hash differs was edited and is never
overwritten) and the exercises passed, with the hash of the file that passed them."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from tinytorch.core.io import write_atomic

from .checks import ExerciseResult
from .curriculum import Module, load_curriculum
from .stubs import module_source

STATE_FILE = ".tinytorch-learn.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _directory(directory: str | Path, create: bool = False) -> Path:
    path = Path(directory)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    if not path.is_dir():
        raise ValueError(f"--dir: {path} is not a directory")
    return path


def read_state(directory: str | Path) -> dict[str, Any]:
    """The workspace's state (empty when nothing was started there).

    >>> import tempfile
    >>> read_state(tempfile.mkdtemp())
    {'generated': {}, 'passed': {}}
    """
    path = _directory(directory) / STATE_FILE
    if not path.exists():
        return {"generated": {}, "passed": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state.get("generated"), dict) or not isinstance(state.get("passed"), dict):
            raise ValueError("missing 'generated' or 'passed'")
    except ValueError as err:
        raise ValueError(f"{path}: not a tito learn state file ({err})") from None
    return state


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    write_atomic(directory / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def start(module: Module | str, directory: str | Path = ".") -> tuple[Path, str]:
    """Write the student's file of ``module`` into ``directory``: ``(path, what happened)`` where
    what happened is ``written``, ``unchanged`` or ``updated`` (regenerated, never edited).

    Raises ValueError when the file exists and is not the one generated last (edited, or not
    ours): a student's work is never overwritten.

    >>> import tempfile
    >>> work = tempfile.mkdtemp()
    >>> [how for _, how in (start("autograd", work), start("autograd", work))]
    ['written', 'unchanged']
    """
    if isinstance(module, str):
        module = load_curriculum().module(module)
    folder = _directory(directory, create=True)
    state = read_state(folder)
    path = folder / module.filename
    text = module_source(module).encode("utf-8")
    if path.exists():
        current = _sha(path.read_bytes())
        if current == _sha(text):
            return path, "unchanged"
        if state["generated"].get(module.filename) != current:
            raise ValueError(
                f"{path} was edited since `tito learn start` wrote it (or was not written by it); "
                "not overwriting it. Move it away to start the module again.")
        how = "updated"
    else:
        how = "written"
    write_atomic(path, text)
    state["generated"][module.filename] = _sha(text)
    _write_state(folder, state)
    return path, how


def record(directory: str | Path, module: Module, results: list[ExerciseResult]) -> None:
    """Remember which exercises passed (and forget those that now fail)."""
    folder = _directory(directory)
    state = read_state(folder)
    digest = _sha((folder / module.filename).read_bytes())
    passed = state["passed"].setdefault(module.name, {})
    for r in results:
        if r.passed:
            passed[r.exercise.name] = {"sha256": digest, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        else:
            passed.pop(r.exercise.name, None)
    _write_state(folder, state)


def status(directory: str | Path = ".") -> list[dict[str, Any]]:
    """Per module: whether its file exists, and which exercises passed at their last check.

    >>> import tempfile
    >>> status(tempfile.mkdtemp())[1]["module"], status(tempfile.mkdtemp())[1]["started"]
    ('autograd', False)
    """
    folder = _directory(directory)
    state = read_state(folder)
    rows = []
    for m in load_curriculum().modules:
        done = state["passed"].get(m.name, {})
        rows.append({"module": m.name, "phase": m.phase, "started": (folder / m.filename).exists(),
                     "passed": [e.name for e in m.exercises if e.name in done],
                     "exercises": [e.name for e in m.exercises]})
    return rows
