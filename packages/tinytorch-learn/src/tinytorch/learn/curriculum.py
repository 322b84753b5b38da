"""The curriculum: modules in the order of the four phases, each a list of exercises.

It is data (``curriculum.json``, shipped in the wheel): adding a module is adding an entry there.
An exercise names its target in the library as ``package.module:Qualname`` (a function) or
``package.module:Class.method`` (a method, a property, a static or class method), a brief, the
library's own tests that check the target, and the cases ``tito learn check`` runs (see
`tinytorch.learn.checks`). A module may name library objects its cases use (``names``), and an
exercise may describe its ``kernel``: a call at a realistic size that ``tito learn milestone
roofline`` times on the student's implementation and the library's, with its FLOPs and bytes.

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

    ``setup`` holds statements run before ``expr`` in the same namespace (after the inputs are
    made), for a case that needs more than one expression: building a model, a helper function.

    >>> Case("a @ b", {"a": "randn(3, 4)", "b": "randn(4, 5)"}).gradcheck
    True
    """
    expr: str
    inputs: dict[str, str] = field(default_factory=dict)
    gradcheck: bool = True
    setup: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kernel:
    """What ``tito learn milestone roofline`` times for an exercise: ``call`` (an expression,
    evaluated with the reference and then with the student's implementation in place, timed)
    after ``inputs`` are made and ``setup`` has run (untimed), and ``count``, an expression giving
    the call's FLOPs and compulsory bytes as a `tinytorch.perf.OpCount` from perf's own formulas
    (``out`` is what the call returned).

    >>> k = load_curriculum().exercise("conv2d", "im2col").kernel
    >>> k.count
    'OpCount(bytes=nbytes(x, out))'
    """
    call: str
    count: str
    inputs: dict[str, str] = field(default_factory=dict)
    setup: tuple[str, ...] = ()


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
    kernel: Kernel | None = None

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
    names: dict[str, str] = field(default_factory=dict)  # case name -> "package.module:attr"

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


def resolve_name(spec: str) -> Any:
    """The library object a module's ``names`` entry points to: ``package.module:attr`` (an
    attribute, dotted for a nested one) or ``package.module`` (the module itself).

    >>> resolve_name("tinytorch.core.data:DataLoader").__name__
    'DataLoader'
    >>> resolve_name("tinytorch.core.kernels").__name__
    'tinytorch.core.kernels'
    """
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _case(c: dict[str, Any]) -> Case:
    return Case(c["expr"], dict(c.get("inputs", {})), c.get("gradcheck", True), tuple(c.get("setup", ())))


def _kernel(k: dict[str, Any] | None) -> Kernel | None:
    if k is None:
        return None
    return Kernel(k["call"], k["count"], dict(k.get("inputs", {})), tuple(k.get("setup", ())))


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
                     tuple(_case(c) for c in e["cases"]), _kernel(e.get("kernel")))
            for e in m["exercises"])
        modules.append(Module(m["name"], m["phase"], m["title"], m["brief"], tuple(m.get("imports", ())),
                              exercises, dict(m.get("names", {}))))
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


def curriculum_markdown(course: Curriculum | None = None) -> str:
    """The curriculum as Markdown, generated from the data so the documentation never drifts
    from it: how many modules and exercises, then a table per phase with each module's title
    and its exercises (each with the library target it replaces; those the roofline milestone
    times are marked).

    >>> text = curriculum_markdown()
    >>> text.splitlines()[0].endswith("exercises in the four phases:")
    True
    >>> "| `autograd` |" in text
    True
    """
    course = course or load_curriculum()
    count = sum(len(m.exercises) for m in course.modules)
    timed = sum(e.kernel is not None for m in course.modules for e in m.exercises)
    lines = [f"{len(course.modules)} modules, {count} exercises in the four phases:", ""]
    for phase, title in course.phases:
        lines += [f"**{title}**", "", "| module | what you build | exercises (the library's target) |",
                  "|---|---|---|"]
        for m in (m for m in course.modules if m.phase == phase):
            exercises = "<br>".join(f"`{e.name}`{' ⏱' if e.kernel else ''} (`{e.target}`)" for e in m.exercises)
            lines.append(f"| `{m.name}` | {m.title} | {exercises} |")
        lines.append("")
    lines.append(f"⏱: one of the {timed} kernels `tito learn milestone roofline` times against the library's.")
    return "\n".join(lines) + "\n"
