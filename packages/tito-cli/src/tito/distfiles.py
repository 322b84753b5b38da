"""The source files and declared dependencies of installed TinyTorch distributions.

`tito reuse` measures what is *installed* (DESIGN.md §8), so it reads each distribution through
`importlib.metadata`, never the repository. A wheel install lists its files in `RECORD`. An
editable install (the dev workspace) lists only a `.pth` file, so there the source directory is
taken from that `.pth` (a plain path line) or, failing that, from `direct_url.json`; either
way the files are the ones Python actually imports.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import unquote, urlparse

from tito.codeindex import OUR_TOP_LEVEL, SourceFile, root_of, scan_tree, source_file
from tito.discovery import is_tinytorch, normalize


@dataclass(frozen=True)
class Requirement:
    """One `Requires-Dist` line, reduced to what the edge check needs."""

    name: str  # normalized distribution name
    extra: str | None  # the extra it belongs to (`cli`), or None for a plain dependency
    text: str

    @classmethod
    def parse(cls, text: str) -> Requirement:
        """Read one ``Requires-Dist`` line (name, and the extra from its marker).

        >>> Requirement.parse("click>=8; extra == 'cli'").extra
        'cli'
        """
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        if match is None:
            raise ValueError(f"cannot read the distribution name in Requires-Dist {text!r}")
        marker = text.partition(";")[2]
        extra = re.search(r"\bextra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        return cls(normalize(match.group(1)), extra.group(1) if extra else None, text.strip())


@dataclass(frozen=True)
class DistSource:
    """An installed distribution as `tito reuse` sees it."""

    name: str
    version: str
    requires: tuple[Requirement, ...]
    files: tuple[SourceFile, ...]
    location: str  # "wheel", or "editable <dir>", or a fixture directory
    entry_points: tuple[tuple[str, str, str], ...] = ()  # (group, name, value), for the docs

    @property
    def runtime_requires(self) -> frozenset[str]:
        """Distributions a plain `pip install <name>` brings (extras excluded)."""
        return frozenset(r.name for r in self.requires if r.extra is None)

    @property
    def extra_requires(self) -> dict[str, str]:
        """Distribution -> extra, for requirements that only an extra brings."""
        return {r.name: r.extra for r in self.requires if r.extra is not None}

    @property
    def roots(self) -> frozenset[str]:
        """The packages this distribution provides: `tinytorch.core`, `tito`."""
        return frozenset(r for f in self.files if (r := root_of(f.module)) is not None)


def source_from_dir(
    name: str, root: Path, requires: Iterable[str] = (), version: str = "0"
) -> DistSource:
    """A distribution made from a plain src-layout directory (tests use this on fixtures)."""
    return DistSource(
        normalize(name),
        version,
        tuple(Requirement.parse(r) for r in requires),
        tuple(scan_tree(Path(root))),
        str(root),
    )


def editable_roots(dist: md.Distribution) -> list[Path]:
    """Source directories of an editable install, from its `.pth` files or `direct_url.json`."""
    roots: list[Path] = []
    for f in dist.files or []:
        if f.suffix != ".pth":
            continue
        try:
            text = Path(dist.locate_file(f)).read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "import ")) and Path(line).is_dir():
                roots.append(Path(line))
    if roots:
        return roots
    raw = dist.read_text("direct_url.json")
    if raw:
        info = json.loads(raw)
        if info.get("dir_info", {}).get("editable"):
            project = Path(unquote(urlparse(info["url"]).path))
            roots.append(project / "src" if (project / "src").is_dir() else project)
    return roots


def dist_source(dist: md.Distribution) -> DistSource:
    """Describe one installed distribution; raises ValueError when its files cannot be found."""
    name = normalize(dist.metadata["Name"] or "")
    requires = tuple(Requirement.parse(r) for r in dist.requires or [])
    entry_points = tuple(sorted((ep.group, ep.name, ep.value) for ep in dist.entry_points))
    listed = [
        PurePath(str(f))
        for f in dist.files or []
        if f.suffix == ".py" and f.parts and f.parts[0] in OUR_TOP_LEVEL
    ]
    if listed:
        base = Path(dist.locate_file(""))
        files = tuple(source_file(base, rel) for rel in listed)
        return DistSource(name, dist.version, requires, files, "wheel", entry_points)
    roots = editable_roots(dist)
    if not roots:
        raise ValueError(
            f"{name} {dist.version}: its RECORD lists no Python files of ours and it is not an "
            "editable install with a source directory; reinstall it"
        )
    files = tuple(f for root in roots for f in scan_tree(root))
    where = ", ".join(str(r) for r in roots)
    return DistSource(name, dist.version, requires, files, f"editable {where}", entry_points)


def installed_sources() -> tuple[dict[str, DistSource], dict[str, str]]:
    """Every installed TinyTorch distribution by name, and an error message for each one that
    could not be read. The first distribution found for a name wins, as it does for imports."""
    sources: dict[str, DistSource] = {}
    problems: dict[str, str] = {}
    for dist in md.distributions():
        name = normalize(dist.metadata["Name"] or "")
        if not is_tinytorch(name) or name in sources or name in problems:
            continue
        try:
            sources[name] = dist_source(dist)
        except ValueError as exc:
            problems[name] = str(exc)
    return dict(sorted(sources.items())), problems
