"""Writing a file so that a crash never leaves half of it, and checking paths before use.

:func:`write_atomic` writes to a temp file in the same directory, fsyncs it and renames it over
the destination (then fsyncs the directory), after removing temp files that killed writers of
the same destination left behind. :func:`check_destination` refuses, before any work, a
destination that is not a regular file or whose directory cannot hold one; its reading
counterpart :func:`check_regular_file` refuses, before anything opens it, a file to read that is
not a regular file (opening a FIFO blocks until a writer comes, a device never ends).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
>>> write_atomic(path, b"hello") == path, path.read_bytes()
(True, b'hello')
>>> check_regular_file(path, "notes") == path
True
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike


class NotRegularFileError(ValueError):
    """A file to read that is not a regular file: a directory, device, FIFO or socket.

    It is a ``ValueError``; the message names the file and what it is.

    >>> try:
    ...     check_regular_file("/dev/null", "checkpoint file")
    ... except NotRegularFileError as err:
    ...     print(err)
    checkpoint file /dev/null: is a character device, not a regular file
    """


class DestinationError(ValueError):
    """A path that cannot receive a file: a directory, device, FIFO or socket, a parent that is a
    file or missing, or a directory that is not writable. The message names the path.

    >>> try:
    ...     check_destination("/dev/null", what="--out")
    ... except DestinationError as err:
    ...     print(err)
    --out /dev/null: is a character device, not a regular file; give the path of a file
    """


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)  # elsewhere: set and restore (briefly visible to other threads)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still done
        pass
    finally:
        os.close(fd)


_FILE_KINDS = [
    (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
]


def _kind_of(mode: int) -> str:
    for test, kind in _FILE_KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def check_destination(path: PathLike, what: str = "destination", create_parents: bool = True) -> Path:
    """Check that a file can be written at ``path`` without harming what is there; the real path.

    Call it before long work (training) so a bad ``--out`` fails at once, not after an epoch.
    :func:`save` and :func:`write_atomic` call it too. Nothing is created.

    - An existing ``path`` must be a regular file: a directory, device (``/dev/null``), FIFO or
      socket is refused, because the atomic rename would replace it with a regular file.
    - A symlink is followed: its target is checked and returned, so the file it points to is
      replaced and the link itself stays.
    - The parent directory must exist (or, with ``create_parents``, its nearest existing ancestor
      must be a directory) and be writable.

    Args:
        path: the file to write.
        what: how the caller names the path in messages, e.g. ``"--out"`` or ``"checkpoint"``.
        create_parents: accept missing parent directories (the writer will create them);
            False refuses them.

    Returns:
        The path to write: ``path`` itself, or the target of a symlink.

    Raises:
        DestinationError: the message starts with ``what`` and ``path`` and says what is wrong.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_destination(folder / "runs" / "model.safetensors") == folder / "runs" / "model.safetensors"
    True
    >>> try:
    ...     check_destination(folder, what="--out")
    ... except DestinationError as err:
    ...     print(str(err).split(": ")[1])
    is a directory, not a regular file; give the path of a file
    """
    original = Path(path)
    label = f"{what} {original}"
    target, via = original, ""
    if original.is_symlink():
        target = Path(os.path.realpath(original))
        via = f" (the symlink points to {target})"
    try:
        mode: int | None = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as e:
        raise DestinationError(f"{label}: cannot be checked{via} ({e.strerror or e})") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise DestinationError(
            f"{label}: is {_kind_of(mode)}, not a regular file{via}; give the path of a file"
        )
    parent = target.parent
    ancestor = parent
    while not os.path.exists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not os.path.isdir(ancestor):
        raise DestinationError(f"{label}: {ancestor} is a file, not a directory{via}")
    if ancestor != parent and not create_parents:
        raise DestinationError(f"{label}: the directory {parent} does not exist{via}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DestinationError(f"{label}: {ancestor} is not writable{via}")
    return target


def check_regular_file(path: PathLike, what: str = "file") -> Path:
    """Check, without opening it, that ``path`` is a regular file to read; return it as a Path.

    Call it before ``open``: opening a FIFO for reading blocks until some process opens it for
    writing (forever, for a file given by mistake), and a device such as ``/dev/zero`` never
    ends. Every reader in :mod:`tinytorch.core.io` calls it, as should any reader of a file a
    user names (tokenizer files, files in a model directory). A symlink is followed.

    Args:
        path: the file to read.
        what: how the caller names the file in messages, e.g. ``"checkpoint file"``.

    Returns:
        ``Path(path)``.

    Raises:
        FileNotFoundError: nothing is at ``path`` (or a parent is not a directory); the message
            names ``what`` and the path.
        NotRegularFileError: ``path`` is a directory, device, FIFO or socket:
            ``"checkpoint file f: is a FIFO (named pipe), not a regular file"``.
        OSError: ``path`` cannot be examined (permission denied); the error names it.

    >>> import os, tempfile, pathlib
    >>> fifo = pathlib.Path(tempfile.mkdtemp()) / "f"
    >>> os.mkfifo(fifo)
    >>> try:
    ...     check_regular_file(fifo, "checkpoint file")
    ... except NotRegularFileError as err:
    ...     print(str(err).split(": ")[1])
    is a FIFO (named pipe), not a regular file
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", str(path)) from None
    _refuse_irregular(path, mode, what)
    return path


def _refuse_irregular(path: Path, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(f"{what} {path}: is {_kind_of(mode)}, not a regular file")


# Not O_NONBLOCK alone: it keeps open() from waiting for a FIFO's writer, but the reads after it
# would still wait or end early; the stat before refuses, the fstat after catches a swap between.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _open_regular_file(path: PathLike, what: str):
    """``check_regular_file``, then open for binary reading, checking the opened file again."""
    path = check_regular_file(path, what)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _refuse_irregular(path, os.fstat(fd).st_mode, what)
    except BaseException:
        os.close(fd)
        raise
    return path, os.fdopen(fd, "rb")


_STALE_LEGACY_SECONDS = 3600


def _temp_prefix(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a pid we cannot ask about: keep its file
    return True


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Remove temp files an earlier, killed writer of ``directory/name`` left behind.

    Only names this module creates are touched: ``.<name>.tmp-<pid>-<8 chars>`` whose process is
    gone, and ``.<name>.<8 chars>.tmp`` (the previous naming, without a pid) older than an hour.
    """
    if os.name == "nt":  # os.kill(pid, 0) terminates the process on Windows
        return
    current = re.compile(rf"\.{re.escape(name)}\.tmp-(\d+)-[a-z0-9_]{{8}}")
    legacy = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = current.fullmatch(entry.name)
        if match is None and not legacy.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                continue
            if match is not None:
                pid = int(match.group(1))
                if pid == os.getpid() or _process_alive(pid):
                    continue
            elif now - info.st_mtime < _STALE_LEGACY_SECONDS:
                continue
            os.unlink(entry.path)
        except OSError:
            pass  # another writer removed it first, or we may not: not our business


def _write_error(label: str, error: OSError) -> OSError:
    reason = error.strerror or str(error)
    wrapped = type(error)(f"{label}: could not write it ({reason}); the previous file, if any, "
                          "is unchanged")
    wrapped.errno = error.errno
    return wrapped


def write_atomic(path: PathLike, payload: bytes | Iterable[Any], what: str = "file") -> Path:
    """Write ``payload`` to ``path`` so that ``path`` is either the old file or the new one.

    The bytes go to a temp file ``.<name>.tmp-<pid>-<random>`` in the same directory, which is
    fsynced and renamed over ``path``; the directory is fsynced too. Temp files that killed
    writers of the same ``path`` left behind are removed first. Errors (disk full, read-only
    directory, ...) name ``path``; the previous file is intact and the temp file removed.

    Args:
        path: the file to write (checked by :func:`check_destination`; a symlink's target is
            written); missing parent directories are created.
        payload: the bytes, or an iterable of bytes-like chunks written in order (so a large
            file is never assembled in memory).
        what: how ``path`` is named in error messages.

    Returns:
        The path written (the target if ``path`` is a symlink).

    Raises:
        DestinationError: ``path`` is not a regular file or its directory cannot hold one.
        OSError: writing failed; the message names ``path``.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.json"
    >>> write_atomic(path, b'{"a": 1}') == path, path.read_bytes()
    (True, b'{"a": 1}')
    """
    label = f"{what} {path}"
    target = check_destination(path, what)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(label, e) from e
    _remove_stale_temps(directory, target.name)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=_temp_prefix(target.name), suffix="", delete=False
        ) as f:
            tmp_name = f.name
            chunks = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_directory(directory)
    except OSError as e:
        raise _write_error(label, e) from e
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target
