"""Static reading of Python source for `tito reuse`: logical lines, imports and a symbol graph.

Only the standard library is used (`ast`, `tokenize`), and nothing here imports the code it
reads, so it works on any tree of `.py` files: an installed wheel, an editable checkout or a
test fixture.

Definitions (the same ones `docs/architecture.md` prints):

* **Logical line** - a line as Python's tokenizer defines it: one `NEWLINE` token, i.e. one
  simple statement or one compound-statement header (`def f(x):`, `if a:`), however many
  physical lines it is wrapped over. Blank lines and comment-only lines are never logical
  lines. A docstring (a string expression that is the first statement of a module, class or
  function) is not counted. Counting logical rather than physical lines makes the figure
  independent of formatting (a call wrapped over five lines is one line).
* **Symbol** - a top-level function, class, or `NAME = ...` assignment (constants, aliases
  such as `Dense = Linear`) of a module. A class includes its methods. Its lines are the
  logical lines inside its span, decorators included.
* **Reference** - a name or attribute chain in executed code (type annotations are skipped:
  they never run) that resolves, through the module's imports and re-exports, to a symbol:
  `Tensor` after `from tinytorch.core import Tensor`, `F.linear` after `import ... as F`,
  `nn.init.kaiming_uniform_`. Base classes and decorators are references like any other.

The analysis is name-based: a local variable that shadows a top-level name is read as that
name, and code reached only through `getattr`, strings or instances (`x.relu()` on a Tensor
some caller passed in) is not a reference. Imports inside a function are bound for the whole
symbol that contains them.
"""

from __future__ import annotations

import ast
import bisect
import io
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

#: Top-level import names that are ours; everything else is third-party or stdlib.
OUR_TOP_LEVEL = ("tinytorch", "tito")
#: PEP 420 namespace packages: `tinytorch` itself belongs to no distribution.
NAMESPACES = ("tinytorch",)


# ----------------------------------------------------------------------------- files


@dataclass(frozen=True)
class SourceFile:
    """One `.py` file and the dotted module name it is imported as."""

    module: str
    path: Path
    is_package: bool  # an `__init__.py`: relative imports resolve against the module itself

    @property
    def package(self) -> str:
        """The package that `from . import x` in this file refers to."""
        return self.module if self.is_package else self.module.rpartition(".")[0]


def module_name(relative: PurePath) -> tuple[str, bool]:
    """`tinytorch/core/nn/__init__.py` -> (`tinytorch.core.nn`, True)."""
    parts = list(relative.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def source_file(root: Path, relative: PurePath) -> SourceFile:
    """A ``SourceFile`` for ``relative`` (a path under ``root``), with its dotted module name."""
    name, is_package = module_name(relative)
    return SourceFile(name, Path(root) / relative, is_package)


def scan_tree(root: Path, top_level: Iterable[str] = OUR_TOP_LEVEL) -> list[SourceFile]:
    """Every `.py` file under `root/<top_level>/`, for a src-layout directory (an editable
    install's source root, or a test fixture)."""
    root = Path(root)
    found = []
    for top in top_level:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(root)
            if "__pycache__" in relative.parts:
                continue
            found.append(source_file(root, relative))
    return found


def root_of(module: str) -> str | None:
    """The distribution-level package a module belongs to: `tinytorch.core.nn` ->
    `tinytorch.core`, `tito.main` -> `tito`; None for the bare namespace and for modules
    that are not ours."""
    parts = module.split(".")
    if parts[0] not in OUR_TOP_LEVEL:
        return None
    if parts[0] in NAMESPACES:
        return ".".join(parts[:2]) if len(parts) > 1 else None
    return parts[0]


# ----------------------------------------------------------------------------- lines


def docstring_nodes(tree: ast.AST) -> list[ast.Expr]:
    """The docstring statements of a module and of every class and function in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.append(body[0])
    return found


_NOT_CODE = {
    tokenize.NL,
    tokenize.COMMENT,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def logical_line_rows(source: str, tree: ast.Module) -> list[int]:
    """Sorted row numbers of the `NEWLINE` token that ends each logical line, docstrings
    excluded. A logical line belongs to a span when this row (its last physical row) does."""
    docstrings = {(d.lineno, d.col_offset) for d in docstring_nodes(tree)}
    rows: list[int] = []
    first: tuple[int, int] | None = None  # where the current logical line starts
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in _NOT_CODE:
            continue
        if tok.type == tokenize.NEWLINE:
            if first is not None and first not in docstrings:
                rows.append(tok.start[0])
            first = None
        elif first is None:
            first = tok.start
    return rows


def count_logical_lines(source: str) -> int:
    """Logical lines of a whole source text (see the module docstring)."""
    return len(logical_line_rows(source, ast.parse(source)))


# ----------------------------------------------------------------------------- imports


@dataclass(frozen=True)
class Binding:
    """What an import binds a local name to: a module, or a member `name` of `module`
    (which may itself turn out to be a submodule)."""

    module: str
    member: str | None = None


@dataclass(frozen=True)
class ImportStatement:
    """One imported module, as an absolute name, with the line of the import."""

    module: str
    line: int


def absolute_module(file: SourceFile, level: int, module: str | None) -> str:
    """Resolve `from ..x import y` (level 2, module `x`) inside `file` to an absolute name."""
    if level == 0:
        return module or ""
    base = file.package.split(".") if file.package else []
    if level - 1 > len(base):
        raise ValueError(
            f"{file.path}: relative import with {level} dots goes above the top-level package"
        )
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def bindings_of(node: ast.Import | ast.ImportFrom, file: SourceFile) -> dict[str, Binding]:
    """The names one import statement binds."""
    bound: dict[str, Binding] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                bound[alias.asname] = Binding(alias.name)
            else:  # `import a.b.c` binds `a`
                top = alias.name.split(".")[0]
                bound[top] = Binding(top)
        return bound
    base = absolute_module(file, node.level, node.module)
    for alias in node.names:
        if alias.name != "*":
            bound[alias.asname or alias.name] = Binding(base, alias.name)
    return bound


def imported_modules(node: ast.Import | ast.ImportFrom, file: SourceFile) -> list[str]:
    """The modules an import statement loads: `from tinytorch import core` loads
    `tinytorch.core` (the namespace alone says nothing), `from tinytorch.core import nn`
    loads `tinytorch.core` (and perhaps a submodule of it, which has the same owner)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = absolute_module(file, node.level, node.module)
    if base in NAMESPACES:
        return [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return [base]


def _walk_skipping_defs(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Module-level statements, descending into `if`/`try`/`with` but not into functions
    or classes."""
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under `node` except type annotations (`x: T`, `-> T`), which never run."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for name, value in ast.iter_fields(current):
            if name in ("annotation", "returns"):
                continue
            if isinstance(value, ast.AST):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, ast.AST))


# ----------------------------------------------------------------------------- modules


@dataclass
class ParsedModule:
    """A parsed file: its logical lines, top-level symbols and import bindings."""

    file: SourceFile
    tree: ast.Module
    rows: list[int]
    symbols: dict[str, list[ast.AST]] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)  # module-level imports

    @classmethod
    def parse(cls, file: SourceFile) -> ParsedModule:
        """Parse ``file`` into its top-level symbols and import bindings (a syntax error names the file)."""
        source = file.path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(source, filename=str(file.path))
        except SyntaxError as exc:
            raise ValueError(f"{file.path}:{exc.lineno}: cannot parse: {exc.msg}") from exc
        parsed = cls(file, tree, logical_line_rows(source, tree))
        for node in tree.body:
            for name in _defined_names(node):
                parsed.symbols.setdefault(name, []).append(node)
        for node in _walk_skipping_defs(tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                parsed.bindings.update(bindings_of(node, file))
        return parsed

    @property
    def name(self) -> str:
        return self.file.module

    @property
    def logical_lines(self) -> int:
        return len(self.rows)

    def lines_in(self, node: ast.AST) -> int:
        """Logical lines inside a top-level statement (decorators included)."""
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        end = node.end_lineno or node.lineno
        return bisect.bisect_right(self.rows, end) - bisect.bisect_left(self.rows, start)

    def import_statements(self) -> list[ImportStatement]:
        """Every import in the file, at any depth (lazy imports inside functions count)."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for module in imported_modules(node, self.file):
                    found.append(ImportStatement(module, node.lineno))
        return sorted(found, key=lambda s: (s.line, s.module))


def _defined_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [node.target.id] if isinstance(node.target, ast.Name) else []
    return []


# ----------------------------------------------------------------------------- resolution


@dataclass(frozen=True, order=True)
class Symbol:
    """A top-level symbol: `module:name`."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"


@dataclass(frozen=True)
class ModuleRef:
    """A reference to a whole module (``import tinytorch.core.functional as F``), not one symbol in it."""
    module: str


Ref = Symbol | ModuleRef


class CodeIndex:
    """Parsed modules that can resolve names across one another (following re-exports such
    as `tinytorch/core/__init__.py`'s `from .tensor import Tensor`)."""

    def __init__(self, modules: Iterable[ParsedModule]) -> None:
        self.modules = {m.name: m for m in modules}
        self._prefixes = set()
        for name in self.modules:
            parts = name.split(".")
            self._prefixes.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))

    @classmethod
    def from_files(cls, files: Iterable[SourceFile]) -> CodeIndex:
        """Parse every file into one index."""
        return cls(ParsedModule.parse(f) for f in files)

    def merged(self, other: CodeIndex) -> CodeIndex:
        """An index of this one's modules and ``other``'s (e.g. a domain package plus core)."""
        return CodeIndex([*self.modules.values(), *other.modules.values()])

    def is_module(self, name: str) -> bool:
        """A known module, or a package prefix of one (such as the `tinytorch` namespace)."""
        return name in self._prefixes

    # -- resolving names

    def resolve_binding(self, binding: Binding, seen: frozenset = frozenset()) -> Ref | None:
        """What an import binding refers to inside the index (following re-exports), or None."""
        if binding.member is None:
            return ModuleRef(binding.module) if self.is_module(binding.module) else None
        return self.resolve_member(binding.module, binding.member, seen)

    def resolve_member(self, module: str, name: str, seen: frozenset = frozenset()) -> Ref | None:
        """What `module.name` is: a symbol defined there, something it imports, or a
        submodule. None when it leads outside the index (third-party, stdlib)."""
        key = (module, name)
        if key in seen:  # an import cycle between re-exports
            return None
        seen = seen | {key}
        parsed = self.modules.get(module)
        if parsed is not None:
            if name in parsed.symbols:
                return Symbol(module, name)
            if name in parsed.bindings:
                ref = self.resolve_binding(parsed.bindings[name], seen)
                if ref is not None:  # else `from . import nn` in a package: the submodule
                    return ref
        submodule = f"{module}.{name}"
        return ModuleRef(submodule) if self.is_module(submodule) else None

    def resolve_expr(
        self, expr: ast.AST, module: ParsedModule, local: dict[str, Binding]
    ) -> Ref | None:
        """Resolve a `Name` or an attribute chain on one, as seen from `module`."""
        if isinstance(expr, ast.Name):
            if expr.id in local:
                return self.resolve_binding(local[expr.id])
            if expr.id in module.symbols:
                return Symbol(module.name, expr.id)
            if expr.id in module.bindings:
                return self.resolve_binding(module.bindings[expr.id])
            return None
        if isinstance(expr, ast.Attribute):
            base = self.resolve_expr(expr.value, module, local)
            if isinstance(base, ModuleRef):
                return self.resolve_member(base.module, expr.attr)
            return base  # an attribute of a class (`Tensor.zeros`) is part of the class
        return None

    def references(self, module: ParsedModule, node: ast.AST) -> set[Symbol]:
        """The symbols that executed code under `node` refers to. Imports inside `node`
        (lazy imports in a function) are bound for all of it."""
        local: dict[str, Binding] = {}
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                local.update(bindings_of(sub, module.file))
        found = set()
        for sub in runtime_nodes(node):
            if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(sub.ctx, ast.Load):
                ref = self.resolve_expr(sub, module, local)
                if isinstance(ref, Symbol):
                    found.add(ref)
        return found

    # -- the symbol graph

    def symbol_nodes(self, symbol: Symbol) -> list[ast.AST]:
        """The top-level statements that define ``symbol`` (a def or class, or assignments)."""
        return self.modules[symbol.module].symbols.get(symbol.name, [])

    def symbol_lines(self, symbol: Symbol) -> int:
        """Logical lines of ``symbol``'s definition (docstrings, comments and blanks excluded)."""
        parsed = self.modules[symbol.module]
        return sum(parsed.lines_in(n) for n in self.symbol_nodes(symbol))

    def dependencies(self, symbol: Symbol) -> set[Symbol]:
        """Symbols that `symbol`'s own code refers to (not including itself)."""
        parsed = self.modules[symbol.module]
        found: set[Symbol] = set()
        for node in self.symbol_nodes(symbol):
            found |= self.references(parsed, node)
        found.discard(symbol)
        return found

    def closure(self, roots: Iterable[Symbol]) -> set[Symbol]:
        """`roots` plus everything they use inside this index, transitively."""
        done: set[Symbol] = set()
        todo = [r for r in roots if r.module in self.modules]
        while todo:
            symbol = todo.pop()
            if symbol in done:
                continue
            done.add(symbol)
            todo.extend(d for d in self.dependencies(symbol) if d not in done)
        return done

    def lines_of(self, symbols: Iterable[Symbol]) -> int:
        """Logical lines of a set of symbols, each top-level statement counted once (in
        `a = b = 1`, `a` and `b` share one line)."""
        seen: set[int] = set()
        total = 0
        for symbol in symbols:
            parsed = self.modules[symbol.module]
            for node in self.symbol_nodes(symbol):
                if id(node) not in seen:
                    seen.add(id(node))
                    total += parsed.lines_in(node)
        return total

    def all_symbols(self) -> list[Symbol]:
        """Every top-level symbol of every module, sorted."""
        return sorted(Symbol(m.name, s) for m in self.modules.values() for s in m.symbols)

    @property
    def logical_lines(self) -> int:
        return sum(m.logical_lines for m in self.modules.values())
