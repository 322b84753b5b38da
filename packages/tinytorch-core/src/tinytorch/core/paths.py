"""An output must never replace an input: the one check of every command that writes a file.

``tito language train --text notes.txt --out notes.txt`` would train on the text and then
replace it with a checkpoint. A file is the same file when it is the same inode (``st_dev``,
``st_ino``), so the check sees through symlinks (``--out link.txt`` pointing at the text) and
hard links (a second name of the same file) as well as through ``..`` and relative paths.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "text.txt").write_text("To be, or not to be")
19
>>> try:
...     check_outputs({"--out": folder / "text.txt"}, {"--text": folder / "text.txt"})
... except OutputIsInputError as err:
...     print(str(err).split(": ", 1)[1])
it is an input of this command (--text); writing it would destroy that file: give another --out
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

PathLike = str | os.PathLike

# the files of an input directory (a checkpoint folder, a data root) that are compared, at most
_MAX_FILES = 10_000


class OutputIsInputError(ValueError):
    """An output path names a file the same command reads, or another of its outputs.

    >>> isinstance(OutputIsInputError("--out x: ..."), ValueError)
    True
    """


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        # realpath follows symlinks (a link to the input is the input) and takes "missing/.." as
        # the writer will once it has created "missing"
        info = os.stat(os.path.realpath(path))
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _files(path: Path) -> Iterator[Path]:
    """``path`` itself, or the files under a directory (an input folder such as a checkpoint directory)."""
    if not path.is_dir():
        yield path
        return
    count = 0
    for folder, _, names in os.walk(path):
        for name in names:
            yield Path(folder, name)
            count += 1
            if count >= _MAX_FILES:
                return


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None] | None = None) -> None:
    """Refuse an output that is one of the inputs, or the same file as another output.

    Call it before any work, next to ``io.check_destination``. Outputs and inputs left at
    None are skipped; an input directory stands for every file in it.

    Args:
        outputs: option name -> path the command will write, e.g. ``{"--out": out}``.
        inputs: option name -> file or directory the command reads, e.g. ``{"--text": text}``.

    Raises:
        OutputIsInputError: naming the output option and path, the input it would destroy, and
            how it is the same file (symlink, hard link).

    >>> check_outputs({"--out": "model.safetensors"}, {"--text": None})
    """
    seen: dict[tuple[int, int], tuple[str, Path]] = {}
    for name, given in (inputs or {}).items():
        if given is None:
            continue
        for file in _files(Path(given)):
            identity = _identity(file)
            if identity is not None:
                seen.setdefault(identity, (name, file))
    written: dict[str, tuple[str, Path]] = {}
    for name, given in outputs.items():
        if given is None:
            continue
        path = Path(given)
        identity = _identity(path)
        if identity is not None and identity in seen:
            source, file = seen[identity]
            raise OutputIsInputError(f"{name} {path}: it is an input of this command ({source}{_how(path, file)}); "
                                     f"writing it would destroy that file: give another {name}")
        # two outputs are one file when they resolve to one path (they need not exist yet)
        key = os.path.realpath(path)
        if key in written:
            other, other_path = written[key]
            raise OutputIsInputError(f"{name} {path}: it is the same file as {other} {other_path}; one would "
                                     f"overwrite the other: give another {name}")
        written[key] = (name, path)


def continuation_path(resume: PathLike) -> Path:
    """Where a resumed run writes when no output is named: the next free numbered name beside it.

    A run resumed from ``run.safetensors`` writes ``run-2.safetensors``, one resumed from that
    writes ``run-3.safetensors``, skipping names that exist: the checkpoint a run continues from is
    an input, and an output never replaces an input.

    Args:
        resume: the checkpoint the run continues from.

    Returns:
        A path in the same folder that does not exist yet.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> continuation_path(folder / "run.safetensors").name, continuation_path(folder / "run-2.safetensors").name
    ('run-2.safetensors', 'run-3.safetensors')
    """
    path = Path(resume)
    base, number = path.stem, 1
    match = re.fullmatch(r"(.+)-(\d+)", base)
    if match:
        base, number = match[1], int(match[2])
    while True:
        number += 1
        candidate = path.with_name(f"{base}-{number}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate


def _how(output: Path, input_file: Path) -> str:
    """How two names reach one file, for the message (nothing when they are plainly the same path)."""
    if os.path.realpath(output) != os.path.realpath(input_file):
        return f": {input_file}, through a hard link"
    if output.is_symlink():
        return f": {input_file}, through a symlink"
    if os.fspath(output) != os.fspath(input_file):
        return f": {input_file}"
    return ""


__all__ = ["OutputIsInputError", "check_outputs", "continuation_path"]
