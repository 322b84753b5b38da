"""The measurements behind `tito reuse` (DESIGN.md §8), as plain functions on plain data.

1. Edges - every import of ours in a distribution's files, mapped to the distribution that
   provides the imported package, versus the distribution's declared `Requires-Dist` (extras
   excluded: `pip install tinytorch-vision` does not bring its `[cli]` extra) and versus the
   package graph (`ALLOWED_GRAPH`). Each violation is a `Problem` with file:line.
2. Code share of a domain package P - `core_lines_used / (core_lines_used + P_own_lines)`:
   `core_lines_used` are the logical lines of the core symbols P's code refers to, closed
   over what those symbols use inside core; `P_own_lines` are the logical lines of all of P's
   `.py` files, `cli.py` and `__init__.py` included (it is all code P ships and maintains).
   Both sides use `tito.codeindex`'s logical-line counter.
3. Component share - see `tito.components`.

Everything takes `DistSource`s, so the tests run it on fixture directories and `tito reuse`
runs it on the installed distributions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tito.codeindex import CodeIndex, ParsedModule, Symbol, root_of
from tito.components import CORE_PACKAGES, ComponentShare, RegisteredModel, measure_model
from tito.discovery import normalize
from tito.distfiles import DistSource

CORE = "tinytorch-core"
CLI = "tito-cli"
#: The course over the library (`tito learn`): it imports every package by design, so it is
#: held to the graph but has no code share (it reuses the library as a student's workbench).
LEARN = "tinytorch-learn"

#: DESIGN.md §2: which TinyTorch distributions each one may import.
ALLOWED_GRAPH: dict[str, frozenset[str]] = {
    CORE: frozenset(),
    "tinytorch-vision": frozenset({CORE}),
    "tinytorch-language": frozenset({CORE}),
    "tinytorch-perf": frozenset({CORE}),
    LEARN: frozenset({CORE, "tinytorch-vision", "tinytorch-language", "tinytorch-perf"}),
    CLI: frozenset(),
}

#: Who provides each package of ours when that distribution is not installed (an import of
#: `tinytorch.language` must still be recognised in a venv that only has tinytorch-vision).
KNOWN_PROVIDERS: dict[str, str] = {
    "tinytorch.core": CORE,
    "tinytorch.vision": "tinytorch-vision",
    "tinytorch.language": "tinytorch-language",
    "tinytorch.perf": "tinytorch-perf",
    "tinytorch.learn": LEARN,
    "tito": CLI,
}

DEFAULT_FLOOR = 0.70

#: Printed by `tito reuse --json` (and so on docs/architecture.md): what each figure means.
DEFINITIONS: dict[str, str] = {
    "logical_line": (
        "A logical line as Python's tokenizer defines it (one NEWLINE token): one simple "
        "statement or one compound-statement header, however many physical lines it is "
        "wrapped over. Blank lines, comment lines and docstrings are not counted."
    ),
    "code_share": (
        "core_lines_used / (core_lines_used + own_lines). core_lines_used: logical lines of "
        "the core functions, classes and module-level assignments the package's code refers "
        "to (through imports, re-exports and attribute access such as F.linear; annotations "
        "excluded), closed transitively over what those use inside core; a class counts with "
        "all its methods. own_lines: logical lines of every .py file the package ships, "
        "cli.py and __init__.py included."
    ),
    "component_share": (
        "For each model a package registers under the tinytorch.models entry points: the "
        "fraction of module instances (model.named_modules(), the model itself included) "
        "whose class is defined in tinytorch.core, and the fraction of parameter elements "
        "registered directly by such modules (a shared parameter counted once)."
    ),
    "edges": (
        "Every import of tinytorch.* or tito in a distribution's files, at any depth "
        "(lazy imports included), must target a distribution it declares in Requires-Dist "
        "(extras do not count) and that the package graph allows."
    ),
}


@dataclass(frozen=True)
class Edge:
    """One import of another distribution's package."""

    source: str  # the importing distribution
    target: str | None  # the providing distribution; None if nobody provides it
    module: str  # the imported module
    file: str
    line: int

    def as_dict(self) -> dict[str, Any]:
        """The edge for ``tito reuse --json``."""
        return {"target": self.target, "module": self.module, "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Problem:
    """Something `--check` fails on; `kind` is undeclared, forbidden, unknown, model or source."""

    kind: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.file else self.message

    def as_dict(self) -> dict[str, Any]:
        """The problem for ``tito reuse --json``."""
        return {"kind": self.kind, "message": self.message, "file": self.file, "line": self.line}


# ----------------------------------------------------------------------------- edges


def providers(sources: Mapping[str, DistSource]) -> dict[str, str]:
    """Package root (`tinytorch.core`) -> distribution, installed ones first."""
    found = dict(KNOWN_PROVIDERS)
    for source in sources.values():
        for root in source.roots:
            found[root] = source.name
    return found


def import_edges(
    source: DistSource, index: CodeIndex, provided_by: Mapping[str, str]
) -> list[Edge]:
    """Imports in `source`'s files of packages that `source` does not provide itself."""
    own = source.roots
    edges = []
    for parsed in index.modules.values():
        for stmt in parsed.import_statements():
            root = root_of(stmt.module)
            if root is None or root in own:
                continue
            edges.append(
                Edge(source.name, provided_by.get(root), stmt.module, str(parsed.file.path), stmt.line)
            )
    return sorted(edges, key=lambda e: (e.file, e.line, e.module))


def edge_problems(
    source: DistSource, edges: Iterable[Edge], allowed: Mapping[str, frozenset[str]] | None
) -> list[Problem]:
    """The edges that `source`'s metadata does not declare or that the graph forbids.

    A distribution missing from `allowed` is held to its Requires-Dist only."""
    permitted = None if allowed is None else allowed.get(source.name)
    problems = []
    for edge in edges:
        where = {"file": edge.file, "line": edge.line}
        if edge.target is None:
            problems.append(Problem(
                "unknown",
                f"imports {edge.module}, which no TinyTorch distribution provides",
                **where,
            ))
            continue
        if edge.target not in source.runtime_requires:
            extra = source.extra_requires.get(edge.target)
            why = (
                f"declares it only in the [{extra}] extra, which a plain install does not bring"
                if extra
                else "does not declare it in Requires-Dist"
            )
            problems.append(Problem(
                "undeclared",
                f"imports {edge.module} from {edge.target}, but {source.name} {why}",
                **where,
            ))
        if permitted is not None and edge.target not in permitted:
            may = ", ".join(sorted(permitted)) or "no other TinyTorch distribution"
            problems.append(Problem(
                "forbidden",
                f"imports {edge.module}: the package graph forbids {source.name} -> "
                f"{edge.target} ({source.name} may import {may})",
                **where,
            ))
    return problems


# ----------------------------------------------------------------------------- code share


@dataclass(frozen=True)
class CodeShare:
    """A domain package's code share: ``share = core_lines_used / (core_lines_used + own_lines)``.

    Attributes:
        core_lines_used: logical lines of the core symbols it uses, closed over what they use.
        own_lines: logical lines of every file the package ships.
        core_lines_total: logical lines of all of core.
        direct: the core symbols the package refers to itself.
        used: the closure, ``"module:name"`` -> logical lines.

    >>> CodeShare(core_lines_used=16, own_lines=6, core_lines_total=40, direct=(), used={}).share
    0.7272727272727273
    """
    core_lines_used: int
    own_lines: int
    core_lines_total: int
    direct: tuple[Symbol, ...]  # core symbols the package refers to itself
    used: dict[str, int]  # the closure: "module:name" -> logical lines

    @property
    def share(self) -> float | None:
        total = self.core_lines_used + self.own_lines
        return self.core_lines_used / total if total else None

    def as_dict(self) -> dict[str, Any]:
        """The figures for ``tito reuse --json``."""
        return {
            "share": self.share,
            "core_lines_used": self.core_lines_used,
            "own_lines": self.own_lines,
            "core_lines_total": self.core_lines_total,
            "core_symbols_referenced": [str(s) for s in self.direct],
            "core_symbols_used": self.used,
        }


def referenced_symbols(index: CodeIndex, parsed: ParsedModule) -> set[Symbol]:
    """Every symbol of `index` that a whole module's code refers to."""
    return index.references(parsed, parsed.tree)


def code_share(core: CodeIndex, package: CodeIndex) -> CodeShare:
    """Measure how much of core `package` uses, in logical lines (see the module docstring)."""
    both = core.merged(package)
    direct: set[Symbol] = set()
    for parsed in package.modules.values():
        direct |= {s for s in referenced_symbols(both, parsed) if s.module in core.modules}
    used = core.closure(direct)
    return CodeShare(
        core_lines_used=core.lines_of(used),
        own_lines=package.logical_lines,
        core_lines_total=core.logical_lines,
        direct=tuple(sorted(direct)),
        used={str(s): core.symbol_lines(s) for s in sorted(used)},
    )


# ----------------------------------------------------------------------------- reports


@dataclass
class PackageReport:
    """Everything ``tito reuse`` measured about one distribution: edges, problems, code and component share."""
    name: str
    version: str
    role: str  # core, domain or cli
    location: str
    files: int = 0
    own_lines: int = 0
    edges: list[Edge] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    code: CodeShare | None = None
    code_note: str | None = None  # why there is no code share
    models: list[ComponentShare] = field(default_factory=list)
    entry_points: tuple[tuple[str, str, str], ...] = ()

    @property
    def imports(self) -> dict[str, int]:
        """Imports per target distribution."""
        return dict(sorted(Counter(e.target or "?" for e in self.edges).items()))

    def as_dict(self, floor: float | None = None) -> dict[str, Any]:
        """The report for ``tito reuse --json``."""
        return {
            "name": self.name,
            "version": self.version,
            "role": self.role,
            "location": self.location,
            "files": self.files,
            "own_lines": self.own_lines,
            "imports": self.imports,
            "edges": [e.as_dict() for e in self.edges],
            "problems": [p.as_dict() for p in self.problems],
            "code_share": self.code.as_dict() if self.code else None,
            "code_note": self.code_note,
            "floor": floor,
            "models": [m.as_dict() for m in self.models],
            "entry_points": [
                {"group": g, "name": n, "value": v} for g, n, v in self.entry_points
            ],
        }


def role_of(name: str, core_name: str = CORE) -> str:
    """``"core"``, ``"cli"`` (tito-cli), ``"course"`` (tinytorch-learn) or ``"domain"`` for a
    distribution name.

    >>> role_of("tinytorch-core"), role_of("tito-cli"), role_of("tinytorch-vision"), role_of("tinytorch-learn")
    ('core', 'cli', 'domain', 'course')
    """
    if name == core_name:
        return "core"
    return {CLI: "cli", LEARN: "course"}.get(name, "domain")


def analyze(
    sources: Mapping[str, DistSource],
    *,
    only: Iterable[str] | None = None,
    allowed: Mapping[str, frozenset[str]] | None = ALLOWED_GRAPH,
    core_name: str = CORE,
    models: Iterable[RegisteredModel] = (),
    unreadable: Mapping[str, str] | None = None,
) -> list[PackageReport]:
    """A report per distribution in `only` (default: all of `sources`).

    `models` are the `tinytorch.models` entry points to build (pass none to skip the
    component share); `unreadable` maps distributions whose files could not be found to
    the reason, which becomes a problem of that distribution."""
    provided_by = providers(sources)
    names = sorted(set(only) if only is not None else set(sources) | set(unreadable or {}))
    core_source = sources.get(core_name)
    core_index = CodeIndex.from_files(core_source.files) if core_source else None
    core_packages = tuple(sorted(core_source.roots)) if core_source else CORE_PACKAGES
    by_dist: dict[str, list[RegisteredModel]] = {}
    for model in models:
        by_dist.setdefault(model.distribution, []).append(model)

    reports = []
    for name in names:
        if name not in sources:
            reason = (unreadable or {}).get(name, f"{name} is not installed")
            reports.append(PackageReport(name, "?", role_of(name, core_name), "?",
                                         problems=[Problem("source", reason)]))
            continue
        source = sources[name]
        index = core_index if name == core_name and core_index else CodeIndex.from_files(source.files)
        report = PackageReport(
            name, source.version, role_of(name, core_name), source.location,
            files=len(source.files), own_lines=index.logical_lines,
            entry_points=source.entry_points,
        )
        report.edges = import_edges(source, index, provided_by)
        report.problems = edge_problems(source, report.edges, allowed)
        if report.role == "domain":
            if core_index is None:
                report.code_note = f"{core_name} is not installed: nothing to measure against"
            else:
                report.code = code_share(core_index, index)
        else:
            report.code_note = {"core": "core is what is reused", "cli": "the CLI",
                                "course": "the course over every package (not a domain package)"}[report.role]
        for model in by_dist.get(name, []):
            share, error = measure_model(model, core_packages)
            if share is not None:
                report.models.append(share)
            else:
                report.problems.append(Problem("model", error or "unknown error"))
        reports.append(report)
    return reports


# ----------------------------------------------------------------------------- the check


def parse_floor(text: str, known: Iterable[str]) -> tuple[str | None, float]:
    """`0.7` -> (None, 0.7), the default floor; `perf=0.3` or `tinytorch-perf=0.3` ->
    ('tinytorch-perf', 0.3). Raises ValueError naming what is wrong."""
    name, sep, value = text.rpartition("=")
    try:
        floor = float(value)
    except ValueError:
        raise ValueError(f"floor {text!r}: expected a number such as 0.70 or NAME=0.70") from None
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor {text!r}: a share is between 0 and 1, got {floor}")
    if not sep:
        return None, floor
    return canonical_name(name, known), floor


def canonical_name(name: str, known: Iterable[str]) -> str:
    """`language` or `tinytorch_language` -> `tinytorch-language` (one of `known`)."""
    known = list(known)
    name = normalize(name)
    for candidate in (name, f"tinytorch-{name}"):
        if candidate in known:
            return candidate
    raise ValueError(f"unknown package {name!r}; known: {', '.join(sorted(known))}")


def check_failures(
    reports: Iterable[PackageReport], default_floor: float, floors: Mapping[str, float]
) -> list[str]:
    """One message per package that fails `--check`: any problem, or a domain package whose
    code share is below its floor (or cannot be measured while its floor is above 0)."""
    failures = []
    for report in reports:
        if report.problems:
            count = len(report.problems)
            failures.append(f"{report.name} has {count} problem{'s' * (count != 1)} (listed in the report)")
        if report.role != "domain":
            continue
        floor = floors.get(report.name, default_floor)
        share = report.code.share if report.code else None
        if share is None:
            if floor > 0:
                why = report.code_note or "it has no code"
                failures.append(f"{report.name} has no code share to check ({why}); floor {floor:.2f}")
        elif share < floor:
            failures.append(f"{report.name} code share {share:.3f} is below the floor {floor:.2f}")
    return failures


def floor_for(report: PackageReport, default_floor: float, floors: Mapping[str, float]) -> float | None:
    """The code-share floor a report must meet (``floors[name]`` or the default); None for core and tito-cli."""
    return floors.get(report.name, default_floor) if report.role == "domain" else None


def report_json(
    reports: list[PackageReport],
    default_floor: float,
    floors: Mapping[str, float],
    failures: list[str],
) -> dict[str, Any]:
    """The `tito reuse --json` document (docs/architecture.md is generated from it)."""
    return {
        "definitions": DEFINITIONS,
        "graph": {name: sorted(targets) for name, targets in ALLOWED_GRAPH.items()},
        "packages": [r.as_dict(floor_for(r, default_floor, floors)) for r in reports],
        "check": {
            "default_floor": default_floor,
            "floors": dict(floors),
            "failures": failures,
            "ok": not failures,
        },
    }
