"""The curriculum: modules in the order of the four phases, each a list of exercises.

It is data (``curriculum.json``, shipped in the wheel): adding a module is adding an entry there.
An exercise names its target in the library as ``package.module:Qualname`` (a function) or
``package.module:Class.method``, a brief, the library's own tests that check the target, and the
cases ``tito learn check`` runs (see `tinytorch.learn.checks`).

>>> course = load_curriculum()
>>> [m.name for m in course.modules][:3]
['tensor-ops', 'autograd', 'layers']
>>> course.exercise("autograd", "matmul_backward").target
'tinytorch.core.ops:MatMulFunction.backward'
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

#: What the curriculum file's ``format_version`` must be.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Case:
    """One check: an expression over generated inputs, run on the reference and on the student's
    implementation (see `tinytorch.learn.checks`).

    >>> Case("a @ b", {"a": "randn(3, 4)", "b": "randn(4, 5)"}).gradcheck
    True
    """
    expr: str
    inputs: dict[str, str] = field(default_factory=dict)
    gradcheck: bool = True


@dataclass(frozen=True)
class Exercise:
    """One function or method a student writes.

    >>> ex = load_curriculum().exercise("autograd", "mean_backward")
    >>> ex.qualified, ex.resolve().qualname
    ('autograd/mean_backward', 'MeanFunction.backward')
    """
    module: str
    name: str
    target: str
    brief: str
    tests: tuple[str, ...]
    cases: tuple[Case, ...]

    @property
    def qualified(self) -> str:
        """``module/exercise``, the name used in messages and grades."""
        return f"{self.module}/{self.name}"

    def resolve(self) -> Target:
        """The live object behind ``target`` (see `Target`)."""
        return Target.parse(self.target)


@dataclass(frozen=True)
class Module:
    """A course module: exercises a student completes in one file, ``<name>.py``.

    >>> load_curriculum().module("tensor-ops").filename
    'tensor_ops.py'
    """
    name: str
    phase: str
    title: str
    brief: str
    imports: tuple[str, ...]
    exercises: tuple[Exercise, ...]

    @property
    def filename(self) -> str:
        """The student's file for this module."""
        return self.name.replace("-", "_") + ".py"

    def exercise(self, name: str) -> Exercise:
        """The exercise called ``name`` (ValueError listing the module's exercises otherwise)."""
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise ValueError(
            f"module {self.name!r} has no exercise {name!r}; its exercises: "
            + ", ".join(ex.name for ex in self.exercises))


@dataclass(frozen=True)
class Curriculum:
    """The phases (name, title) and the modules in course order.

    >>> [name for name, _ in load_curriculum().phases]
    ['foundation', 'vision', 'language', 'systems']
    """
    phases: tuple[tuple[str, str], ...]
    modules: tuple[Module, ...]

    def module(self, name: str) -> Module:
        """The module called ``name`` (ValueError listing the known ones otherwise)."""
        for m in self.modules:
            if m.name == name:
                return m
        raise ValueError(
            f"unknown module {name!r}; the modules are: " + ", ".join(m.name for m in self.modules))

    def exercise(self, module: str, name: str) -> Exercise:
        """The exercise ``name`` of ``module``."""
        return self.module(module).exercise(name)


@dataclass(frozen=True)
class Target:
    """A resolved target: the module that holds it, the class (for a method) and the name.

    >>> t = Target.parse("tinytorch.core.ops:MatMulFunction.backward")
    >>> t.module_name, t.owner_name, t.attr
    ('tinytorch.core.ops', 'MatMulFunction', 'backward')
    """
    module_name: str
    owner_name: str | None  # the class of a method, None for a module-level function
    attr: str

    @classmethod
    def parse(cls, spec: str) -> Target:
        """Read ``package.module:function`` or ``package.module:Class.method``."""
        module_name, sep, qualname = spec.partition(":")
        parts = qualname.split(".")
        if not sep or not module_name or not qualname or len(parts) > 2 or not all(parts):
            raise ValueError(
                f"target must be 'package.module:function' or 'package.module:Class.method', got {spec!r}")
        return cls(module_name, parts[0] if len(parts) == 2 else None, parts[-1])

    @property
    def module(self) -> Any:
        return importlib.import_module(self.module_name)

    @property
    def owner(self) -> Any:
        """The object whose attribute is replaced: the class, or the module."""
        module = self.module
        return getattr(module, self.owner_name) if self.owner_name else module

    def current(self) -> Any:
        """What the target attribute holds now (the reference, unless substituted)."""
        owner = self.owner
        return owner.__dict__[self.attr] if self.owner_name else getattr(owner, self.attr)

    @property
    def qualname(self) -> str:
        return f"{self.owner_name}.{self.attr}" if self.owner_name else self.attr


def _build(data: dict[str, Any]) -> Curriculum:
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"curriculum format_version must be {FORMAT_VERSION}, got {data.get('format_version')!r}")
    phases = tuple((p["name"], p["title"]) for p in data["phases"])
    phase_names = [p[0] for p in phases]
    modules = []
    for m in data["modules"]:
        if m["phase"] not in phase_names:
            raise ValueError(f"module {m['name']!r}: unknown phase {m['phase']!r} (phases: {phase_names})")
        exercises = tuple(
            Exercise(m["name"], e["name"], e["target"], e["brief"], tuple(e.get("tests", ())),
                     tuple(Case(c["expr"], dict(c.get("inputs", {})), c.get("gradcheck", True))
                           for c in e["cases"]))
            for e in m["exercises"])
        modules.append(Module(m["name"], m["phase"], m["title"], m["brief"], tuple(m.get("imports", ())),
                              exercises))
    order = [phase_names.index(m.phase) for m in modules]
    if order != sorted(order):
        raise ValueError("curriculum modules must be listed in the order of the phases")
    return Curriculum(phases, tuple(modules))


_cached: Curriculum | None = None


def load_curriculum() -> Curriculum:
    """The curriculum shipped with this package (read once).

    >>> load_curriculum().module("autograd").phase
    'foundation'
    """
    global _cached
    if _cached is None:
        text = resources.files(__package__).joinpath("curriculum.json").read_text(encoding="utf-8")
        _cached = _build(json.loads(text))
    return _cached
