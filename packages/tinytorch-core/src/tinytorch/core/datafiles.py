"""Data files: where they live, how they are downloaded, and which data sets exist.

One data story for every package:

- `data_root` is *the* data folder: ``$TINYTORCH_DATA`` if set (made absolute), else the user
  cache folder of the platform (``$XDG_CACHE_HOME/tinytorch`` or ``~/.cache/tinytorch`` on
  Linux, ``~/Library/Caches/tinytorch`` on macOS, ``%LOCALAPPDATA%\\tinytorch`` on Windows).
  Each data set has its own subfolder.
- `download` fetches one `RemoteFile` into a ``<name>.part`` file, resuming an interrupted
  download with an HTTP ``Range`` request, checks its sha256, then renames it into place, so a
  file under its real name is always complete and verified.
- Data sets are registered by the domain packages through the ``tinytorch.datasets``
  entry-point group (name -> a `DatasetFiles`, or a zero-argument function returning one), so
  core knows no vision and no language; `tito data list` and `tito data download NAME` use them.
- `MissingDataError` says which files are expected where and prints the download command.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

DATA_ENV = "TINYTORCH_DATA"
ENTRY_POINT_GROUP = "tinytorch.datasets"


def user_cache_dir() -> Path:
    """The platform's cache folder for TinyTorch (see the module docstring).

    >>> user_cache_dir().name in ("tinytorch", "Cache")
    True
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) / "tinytorch" if base else Path.home() / "AppData" / "Local" / "tinytorch"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "tinytorch"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "tinytorch"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$TINYTORCH_DATA``, else the user cache folder.

    Args:
        root: an explicit folder (``~`` is expanded), or None to use the environment.

    Returns:
        The absolute folder under which each data set has its own subfolder.

    >>> data_root("/data/sets").as_posix()
    '/data/sets'
    """
    if root is None:
        root = os.environ.get(DATA_ENV) or user_cache_dir()
    return Path(root).expanduser().absolute()


# ------------------------------------------------------------------------------- one file


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: where to get it and how to recognise a good copy.

    ``sha256`` lists accepted checksums of the file itself (mirrors re-compress, so there may be
    several); ``content_sha256`` is the checksum of the gzip-decompressed bytes, which is the same
    for every faithful copy, whatever its gzip wrapper.

    Args:
        name: the file name in the data set's folder.
        urls: where to download it from, tried in order.
        sha256: accepted sha256 checksums of the file.
        size: expected size in bytes, if known.
        content_sha256: sha256 of the gzip-decompressed content, if known.

    >>> RemoteFile("t10k-labels-idx1-ubyte.gz", ("https://example.org/t10k-labels-idx1-ubyte.gz",),
    ...            size=4542).describe()
    '4,542 bytes'
    """

    name: str
    urls: tuple[str, ...]
    sha256: tuple[str, ...] = ()
    size: int | None = None
    content_sha256: str | None = None

    def describe(self) -> str:
        """Size and checksum in words, for error messages ("no published checksum" if unknown).

        >>> RemoteFile("a.gz", (), ("ab12",), 10).describe()
        '10 bytes, sha256 ab12'
        """
        parts = []
        if self.size is not None:
            parts.append(f"{self.size:,} bytes")
        if self.sha256:
            parts.append(f"sha256 {self.sha256[0]}")
        elif self.content_sha256:
            parts.append(f"decompressed sha256 {self.content_sha256}")
        return ", ".join(parts) if parts else "no published checksum"


def sha256_of(path: Path, decompress: bool = False) -> str:
    """sha256 of a file (of its gzip-decompressed content with ``decompress``).

    Args:
        path: the file to hash (read in 1 MiB chunks).
        decompress: hash the gzip-decompressed content instead of the file's bytes.

    Returns:
        The hex digest.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "abc.txt"
    ...     _ = path.write_bytes(b"abc")
    ...     sha256_of(path)
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    digest = hashlib.sha256()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, spec: RemoteFile) -> tuple[str, str]:
    """(status, detail) of a local file: ``verified``, ``missing``, ``corrupt`` or ``unverified``.

    Args:
        path: the local copy.
        spec: what a good copy looks like (checksums, size).

    Returns:
        The status and a human-readable detail (what matched, or what was expected).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "abc.txt"
    ...     _ = path.write_bytes(b"abc")
    ...     good = RemoteFile("abc.txt", (), (sha256_of(path),))
    ...     verify(path, good), verify(path, RemoteFile("abc.txt", (), ("0" * 64,)))[0]
    (('verified', 'sha256 matches'), 'corrupt')
    """
    if not path.exists():
        return "missing", f"expected {spec.describe()}"
    size = path.stat().st_size
    try:
        if spec.sha256 and sha256_of(path) in spec.sha256:
            return "verified", "sha256 matches"
        if spec.content_sha256:
            if sha256_of(path, decompress=True) == spec.content_sha256:
                return "verified", "decompressed sha256 matches"
            return "corrupt", f"checksum mismatch (got {size:,} bytes; expected {spec.describe()})"
    except (OSError, EOFError, zlib.error) as err:
        return "corrupt", f"unreadable ({err}); expected {spec.describe()}"
    if spec.sha256:
        return "corrupt", f"checksum mismatch (got {size:,} bytes; expected {spec.describe()})"
    return "unverified", "no published checksum"


def _fetch(url: str, part: Path, size: int | None, timeout: float) -> None:
    """Bring ``part`` to the whole content of ``url``, continuing what it already holds."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not a prefix of the file we want
        part.unlink()
        have = 0
    if size is not None and have == size:
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after byte `have`: the part is complete
            return
        raise
    with response:
        # 206 continues at `have`; any other answer (200, a file:// URL) is the whole file.
        resumed = have and getattr(response, "status", None) == 206 and (
            response.headers.get("Content-Range", "").startswith(f"bytes {have}-"))
        expected = response.headers.get("Content-Length")
        got = 0
        with open(part, "ab" if resumed else "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                got += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    if expected is not None and expected.isdigit() and got < int(expected):
        # what arrived stays in the .part file; the next call asks for the rest
        raise ConnectionError(f"the connection closed after {got:,} of {int(expected):,} bytes; "
                              "run the download again to resume it")


def download(spec: RemoteFile, folder: Path, timeout: float = 60.0) -> Path:
    """Fetch ``spec`` into ``folder``: resumable ``.part`` file, sha256 check, atomic rename.

    An interrupted download leaves ``folder/<name>.part``; the next call continues it with an
    HTTP ``Range`` request (a server that ignores it sends the whole file again). A copy that
    fails its checksum is deleted and refused, so it is never renamed into place.

    Args:
        spec: the file to fetch; its ``urls`` are tried in order until one gives a good copy.
        folder: where to put it (created if missing).
        timeout: seconds to wait for each connection.

    Returns:
        The path of the downloaded file, ``folder / spec.name``.

    Raises:
        OSError: no URL gave a copy that verifies; the message lists each URL's error.

    Any URL ``urllib`` can open works, so a local ``file://`` copy shows it offline:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     src = Path(tmp) / "abc.txt"
    ...     _ = src.write_bytes(b"abc")
    ...     spec = RemoteFile("copy.txt", (src.as_uri(),), (sha256_of(src),))
    ...     download(spec, Path(tmp) / "data").read_bytes()
    b'abc'
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target, part = folder / spec.name, folder / f"{spec.name}.part"
    errors = []
    for url in spec.urls:
        try:
            _fetch(url, part, spec.size, timeout)
            status, detail = verify(part, spec)
            if status not in ("verified", "unverified"):
                part.unlink(missing_ok=True)  # a bad copy is never continued nor kept
                raise ValueError(f"downloaded {url} but {detail}")
            os.replace(part, target)
            return target
        except (OSError, http.client.HTTPException, ValueError) as err:
            # a cut connection (IncompleteRead) keeps what arrived in the .part file, to resume
            errors.append(f"{url}: {type(err).__name__}: {err}")
    raise OSError(
        f"could not download {spec.name} ({'; '.join(errors)}). Offline? Put the file in {folder} "
        f"({spec.describe()})"
    )


# ------------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class DatasetFiles:
    """A data set's files, as a domain package registers it (entry-point group
    ``tinytorch.datasets``).

    Args:
        name: the name users type (``tito data download NAME``).
        folder: its subfolder of the data root.
        files: what to download.
        description: one line for ``tito data list``.
        unpack: called with the folder after a download (e.g. to extract an archive), or None.
        ready: whether the folder holds a usable copy, if the downloaded files alone do not
            say so (e.g. extracted batches); None means "every file is there".

    >>> spec = DatasetFiles("tiny", "tiny", (RemoteFile("a.txt", ("https://example.org/a.txt",)),),
    ...                     "an example")
    >>> spec.download_command
    'tito data download tiny'
    """

    name: str
    folder: str
    files: tuple[RemoteFile, ...]
    description: str
    unpack: Callable[[Path], None] | None = None
    ready: Callable[[Path], bool] | None = None

    @property
    def download_command(self) -> str:
        """The command that downloads this data set."""
        return f"tito data download {self.name}"

    def path(self, root: str | os.PathLike | None = None) -> Path:
        """Its folder under `data_root` (``root`` if given)."""
        return data_root(root) / self.folder

    def is_present(self, root: str | os.PathLike | None = None) -> bool:
        """Whether its files are in place (by name; `verify` checks their contents)."""
        folder = self.path(root)
        if self.ready is not None:
            return self.ready(folder)
        return all((folder / f.name).is_file() for f in self.files)


class MissingDataError(FileNotFoundError):
    """A data set's files are not where they are expected; the message says where, and the
    command that downloads them.

    >>> spec = DatasetFiles("tiny", "tiny", (), "an example")
    >>> "tito data download tiny" in str(MissingDataError(spec, "/data/tiny", ["a.txt"]))
    True
    """

    def __init__(self, spec: DatasetFiles, folder: str | os.PathLike, names: list[str], hint: str = ""):
        self.spec, self.folder = spec, Path(folder)
        super().__init__(
            f"{spec.name}: expected {', '.join(names)} in {folder}{hint}; download them with "
            f"`{spec.download_command}` (into ${DATA_ENV}, else {user_cache_dir()})"
        )


def registered_datasets() -> dict[str, DatasetFiles]:
    """Every data set the installed packages register, by name (entry-point group
    ``tinytorch.datasets``).

    Raises:
        TypeError: an entry point gives something that is not a `DatasetFiles`.

    >>> isinstance(registered_datasets(), dict)
    True
    """
    found: dict[str, DatasetFiles] = {}
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        value = entry.load()
        spec = value if isinstance(value, DatasetFiles) else value()
        if not isinstance(spec, DatasetFiles):
            raise TypeError(f"entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP}) must give a "
                            f"DatasetFiles, got {type(spec).__name__}")
        found[spec.name] = spec
    return found


def get_dataset_files(name: str) -> DatasetFiles:
    """The registered data set ``name``.

    Raises:
        ValueError: no installed package registers it; the message lists those that do.

    >>> get_dataset_files("no-such-data")
    Traceback (most recent call last):
    ...
    ValueError: unknown data set 'no-such-data'; installed packages provide: ...
    """
    known = registered_datasets()
    if name not in known:
        raise ValueError(f"unknown data set {name!r}; installed packages provide: "
                         f"{', '.join(known) or 'none (install tinytorch-vision or tinytorch-language)'}")
    return known[name]


def dataset_folder(name: str | DatasetFiles, root: str | os.PathLike | None = None) -> Path:
    """The folder of a data set, checked to be there.

    Args:
        name: a registered data set (``tito data list``), or its `DatasetFiles`.
        root: the data root (default `data_root`).

    Raises:
        MissingDataError: the files are not there; the message gives the download command.

    >>> import tempfile
    >>> spec = DatasetFiles("tiny", "tiny", (RemoteFile("a.txt", ()),), "an example")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     dataset_folder(spec, tmp)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tinytorch.core.datafiles.MissingDataError: tiny: expected a.txt in ...; download them with `tito data download tiny` ...
    """
    spec = name if isinstance(name, DatasetFiles) else get_dataset_files(name)
    folder = spec.path(root)
    if not spec.is_present(root):
        raise MissingDataError(spec, folder, [f.name for f in spec.files])
    return folder


def fetch_dataset(name: str, root: str | os.PathLike | None = None,
                  report: Callable[[str], None] | None = None, timeout: float = 60.0) -> Path:
    """Download the registered data set ``name`` (what is missing or fails its checksum),
    resuming interrupted files, then unpack it if it needs that.

    Args:
        name: a registered data set.
        root: the data root (default `data_root`).
        report: called with one line per file (what was done).
        timeout: seconds to wait for each connection.

    Returns:
        The data set's folder.

    Raises:
        OSError: a file could not be downloaded or failed its checksum (see `download`).

    >>> fetch_dataset("gpt2-tokenizer")  # doctest: +SKIP
    PosixPath('/home/me/.cache/tinytorch/gpt2')
    """
    spec = get_dataset_files(name)
    folder = spec.path(root)
    say = report or (lambda line: None)
    for file in spec.files:
        target = folder / file.name
        status, detail = verify(target, file) if target.exists() else ("missing", "")
        if status in ("verified", "unverified"):
            say(f"{target}: already there ({detail})")
            continue
        if status == "corrupt":
            say(f"{target}: {detail}; downloading it again")
            target.unlink()
        download(file, folder, timeout)
        say(f"{target}: downloaded, {verify(target, file)[1]}")
    if spec.unpack is not None and not spec.is_present(root):
        spec.unpack(folder)
        say(f"{folder}: unpacked")
    return folder


__all__ = [
    "DATA_ENV", "DatasetFiles", "MissingDataError", "RemoteFile", "data_root", "dataset_folder",
    "download", "fetch_dataset", "get_dataset_files", "registered_datasets", "sha256_of",
    "user_cache_dir", "verify",
]
