"""Putting a student's implementation in place of the library's, and taking it out again.

A function target is rebound in every ``tinytorch.*`` module that holds the reference under any
name (``from .autograd import _unbroadcast`` copies the binding); a method target is replaced on
its class, in the reference's kind: a student writes a plain function, and it becomes a
property, a static method or a class method where the library's was one. `substituted`
restores every binding on exit, also when the check raised.

While a student's file is imported, every target of the module is a tripwire
(`ReferenceUsed` when called), so a file that keeps a reference to the library's implementation
(``ref = MatMulFunction.backward``) holds the tripwire and fails its check; `reference_uses`
finds the plain spellings in the source before anything runs.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .curriculum import Exercise, Module, Target

#: Seconds importing a student's file may take.
IMPORT_SECONDS = 60.0


class StudentFileError(ValueError):
    """The student's file cannot be loaded (missing, a syntax error, an error at import).

    >>> from tinytorch.learn.curriculum import load_curriculum
    >>> try:
    ...     load_student_module(Path("/nowhere/autograd.py"), load_curriculum().module("autograd"))
    ... except StudentFileError as err:
    ...     print(err)
    /nowhere/autograd.py: no such file: the workspace /nowhere (--dir) has no autograd.py; pass --dir the folder `tito learn start autograd --dir DIR` wrote it to, or run that first
    """


class TimeLimitExceeded(BaseException):
    """The student's code ran past its time limit (a BaseException, so that a student's
    ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `TimeLimitExceeded` in the block after ``seconds`` of wall time (with SIGALRM, on
    the main thread of a Unix process; elsewhere the block runs unlimited).

    >>> with time_limit(5):
    ...     sum(range(10))
    45
    """
    import signal
    import threading

    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ReferenceUsed(RuntimeError):
    """The student's code called the library's implementation of the exercise (it kept it at
    import time, when it was a tripwire).

    >>> issubclass(ReferenceUsed, RuntimeError)
    True
    """


def _bindings(target: Target, obj: Any) -> list[tuple[Any, str]]:
    """(namespace owner, name) pairs that hold ``obj``: the target itself, plus, for a function,
    every loaded ``tinytorch.*`` module that imported it by name."""
    if target.owner_name:
        return [(target.owner, target.attr)]
    found = [(target.module, target.attr)]
    for name, module in list(sys.modules.items()):
        if not name.startswith("tinytorch.") or module is None or module is target.module:
            continue
        for attr, value in list(vars(module).items()):
            if value is obj:
                found.append((module, attr))
    return found


def in_kind_of(original: Any, replacement: Any) -> Any:
    """``replacement`` wrapped as ``original`` is: a property, static or class method of a
    class stays one when a student's plain function takes its place.

    >>> class Call:
    ...     @property
    ...     def seconds(self):
    ...         return 1.0
    >>> wrapped = in_kind_of(Call.__dict__["seconds"], lambda self: 2.0)
    >>> isinstance(wrapped, property), wrapped.fget(None)
    (True, 2.0)
    """
    for kind in (property, staticmethod, classmethod):
        if isinstance(original, kind) and not isinstance(replacement, kind):
            return kind(replacement)
    return replacement


def plain_function(obj: Any) -> Any:
    """The function behind a property, static or class method (``obj`` itself otherwise).

    >>> plain_function(property(len)) is len
    True
    """
    if isinstance(obj, property):
        return obj.fget
    if isinstance(obj, (staticmethod, classmethod)):
        return obj.__func__
    return obj


@contextlib.contextmanager
def substituted(replacements: dict[Target, Any]) -> Iterator[None]:
    """Bind each target to its replacement inside the block; restore the references after it,
    whatever happens inside.

    >>> import numpy as np
    >>> from tinytorch.core import kernels
    >>> target = Target.parse("tinytorch.core.kernels:softmax")
    >>> reference = kernels.softmax
    >>> with substituted({target: lambda x, axis=-1: "student"}):
    ...     kernels.softmax(np.zeros(2))
    'student'
    >>> kernels.softmax is reference
    True
    """
    saved: list[tuple[Any, str, Any, bool]] = []
    try:
        for target, replacement in replacements.items():
            original = target.current()
            if target.owner_name:
                replacement = in_kind_of(original, replacement)
            for owner, attr in _bindings(target, original):
                had = attr in vars(owner)
                saved.append((owner, attr, vars(owner).get(attr), had))
                setattr(owner, attr, replacement)
        yield
    finally:
        for owner, attr, value, had in reversed(saved):
            if had:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)


def _tripwire(exercise: Exercise) -> Any:
    def tripwire(*args: Any, **kwargs: Any) -> Any:
        raise ReferenceUsed(
            f"{exercise.qualified}: your file uses the library's own {exercise.resolve().qualname} "
            "(kept at import time); write the implementation yourself")
    return tripwire


def reference_uses(source: str, module: Module) -> dict[str, list[int]]:
    """Exercise name -> lines where ``source`` names that exercise's reference target.

    A method target ``Cls.meth`` is used when ``meth`` is read off something named ``Cls``
    (``MatMulFunction.backward``, ``ops.MatMulFunction.backward``); a function target when it is
    imported by name or read as a module attribute (``kernels.softmax``). Calling an op through
    its public API (``a @ b`` inside another exercise) is allowed.

    >>> from tinytorch.learn.curriculum import load_curriculum
    >>> m = load_curriculum().module("autograd")
    >>> reference_uses("from tinytorch.core.ops import MatMulFunction\\n"
    ...                "def f(self, g):\\n    return MatMulFunction.backward(self, g)\\n", m)
    {'matmul_backward': [3]}
    """
    tree = ast.parse(source)
    hits: dict[str, list[int]] = {}
    for ex in module.exercises:
        t = ex.resolve()
        # the names the target's owner goes by in this file: a class by its name, a module by
        # its last component or an alias (import tinytorch.core.kernels as K)
        owner_names = {t.owner_name or t.module_name.rsplit(".", 1)[-1]}
        if t.owner_name is None:
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for alias in node.names:
                        full = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                        if full == t.module_name and alias.asname:
                            owner_names.add(alias.asname)
        lines = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == t.attr:
                base = node.value
                base_name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
                if base_name in owner_names:
                    lines.append(node.lineno)
            elif isinstance(node, ast.ImportFrom) and t.owner_name is None and node.module:
                if any(a.name == t.attr for a in node.names) and node.module.endswith(
                        t.module_name.rsplit(".", 1)[-1]):
                    lines.append(node.lineno)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "getattr" and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and node.args[1].value == t.attr):
                lines.append(node.lineno)
        if lines:
            hits[ex.name] = sorted(set(lines))
    return hits


def load_student_module(path: Path, module: Module) -> Any:
    """Import the student's file for ``module`` with every target of the module replaced by a
    tripwire (so nothing can keep the reference). Raises `StudentFileError` naming the file."""
    path = Path(path)
    if not path.is_file():
        folder = path.parent.resolve()
        given = "the current directory, the default --dir" if folder == Path.cwd().resolve() else "--dir"
        raise StudentFileError(
            f"{path}: no such file: the workspace {folder} ({given}) has no {path.name}; pass --dir the "
            f"folder `tito learn start {module.name} --dir DIR` wrote it to, or run that first")
    source = path.read_text(encoding="utf-8")
    try:
        compile(source, str(path), "exec")
    except SyntaxError as err:
        raise StudentFileError(f"{path}, line {err.lineno}: syntax error: {err.msg}") from None
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_tinytorch_learn_student_{module.name.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    student = importlib.util.module_from_spec(spec)
    tripwires = {ex.resolve(): _tripwire(ex) for ex in module.exercises}
    with substituted(tripwires):
        try:
            with time_limit(IMPORT_SECONDS):
                spec.loader.exec_module(student)
        except TimeLimitExceeded:
            raise StudentFileError(f"{path}: importing it was still running after {IMPORT_SECONDS:g} s") from None
        except Exception as err:  # the student's code: any error is theirs to see, in one line
            raise StudentFileError(f"{path}: importing it raised {type(err).__name__}: {err}") from None
    return student
