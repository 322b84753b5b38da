"""A gradebook over student workspaces: per student and exercise, the score and the output.

Every exercise is worth one point; a module whose file a workspace lacks scores 0 with that
said in its output. `to_gradescope` writes Gradescope's autograder ``results.json`` schema
(``score``, ``tests[]`` with ``name``, ``score``, ``max_score``, ``output``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checks import check_module
from .curriculum import load_curriculum
from .substitute import StudentFileError


def grade(directories: Sequence[str | Path], modules: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One record per workspace: ``{"student", "score", "max_score", "exercises": [...]}``.

    ``modules`` limits the grading (default: every module of which any workspace has a file).
    A file that does not load scores 0 on each of its exercises, with the reason as output.
    """
    course = load_curriculum()
    folders = [Path(d) for d in directories]
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"DIRECTORIES: {folder} is not a directory")
    chosen = [course.module(name) for name in modules] if modules else [
        m for m in course.modules if any((f / m.filename).exists() for f in folders)]
    book = []
    for folder in folders:
        rows = []
        for m in chosen:
            try:
                results = [r.to_dict() for r in check_module(m, folder)]
            except StudentFileError as err:
                results = [{"module": m.name, "exercise": e.name, "status": "error", "passed": False,
                            "cases_passed": 0, "cases": len(e.cases), "message": str(err)}
                           for e in m.exercises]
            rows += results
        for r in rows:
            r["score"], r["max_score"] = (1.0 if r["passed"] else 0.0), 1.0
        book.append({"student": folder.name or str(folder), "path": str(folder),
                     "score": sum(r["score"] for r in rows), "max_score": float(len(rows)),
                     "exercises": rows})
    return book


def to_gradescope(record: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's autograder ``results.json`` for one student's record from `grade`.

    >>> to_gradescope({"score": 1.0, "exercises": [{"module": "m", "exercise": "e", "score": 1.0,
    ...     "max_score": 1.0, "status": "pass", "cases_passed": 2, "cases": 2, "message": ""}]})["tests"][0]["name"]
    'm/e'
    """
    tests = []
    for r in record["exercises"]:
        output = f"{r['status']} ({r['cases_passed']}/{r['cases']} cases)"
        if r["message"]:
            output += f": {r['message']}"
        tests.append({"name": f"{r['module']}/{r['exercise']}", "score": r["score"],
                      "max_score": r["max_score"], "output": output,
                      "status": "passed" if r["score"] == r["max_score"] else "failed"})
    return {"score": record["score"], "tests": tests}
