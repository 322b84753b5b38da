"""The import graph of tinytorch.core, read from the source with ``ast``.

The engine's layers import downwards only: ``autograd`` <- ``tensor``/``ops`` <- ``functional``
<- ``nn`` ... A module importing ``functional`` from below (even lazily, inside a method) is a
cycle in disguise, and a cycle among top-level imports makes the import order matter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tinytorch.core

CORE = Path(tinytorch.core.__file__).parent
PACKAGE = "tinytorch.core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


MODULES = {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(node: ast.AST, module: str, top_level_only: bool) -> set[str]:
    """The core modules that ``node``'s import statements name (resolving relative imports)."""
    is_package = MODULES[module].name == "__init__.py"
    found: set[str] = set()
    children = ast.iter_child_nodes(node)
    for child in children:
        if isinstance(child, ast.Import):
            found |= {a.name for a in child.names}
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = module.split(".")
                base = base[: len(base) - child.level + (1 if is_package else 0)]
                target = ".".join(base + ([child.module] if child.module else []))
            else:
                target = child.module or ""
            for alias in child.names:  # `from . import ops` names the module ops
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        if top_level_only and (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.ClassDef, ast.Lambda))
                               or _is_type_checking(child)):
            continue
        found |= _imports(child, module, top_level_only)
    # A package's own __init__ runs before its submodules anyway: not an edge.
    return {m for m in found if m in MODULES and not f"{module}.".startswith(f"{m}.")}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {name: _imports(ast.parse(path.read_text()), name, top_level_only)
            for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}  # state: 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_graph_reader_sees_real_edges():
    graph = _graph(top_level_only=True)
    assert "tinytorch.core.autograd" in graph["tinytorch.core.tensor"]
    assert "tinytorch.core.ops" in graph["tinytorch.core.tensor"]
    assert "tinytorch.core.tensor" in graph["tinytorch.core.functional"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_engine_modules_never_import_functional():
    graph = _graph(top_level_only=False)  # lazy imports inside functions count too
    for low in ("autograd", "tensor", "ops", "kernels"):
        assert f"{PACKAGE}.functional" not in graph[f"{PACKAGE}.{low}"], (
            f"{low}.py imports functional: softmax-like elementary ops belong in ops.py"
        )


def test_kernels_import_nothing_of_tinytorch():
    assert _graph(top_level_only=False)[f"{PACKAGE}.kernels"] == set()


def test_no_cycle_among_top_level_imports():
    assert _cycles(_graph(top_level_only=True)) == []
