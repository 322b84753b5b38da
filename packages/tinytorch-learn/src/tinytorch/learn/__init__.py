"""tinytorch.learn: a course path through TinyTorch. A student writes the library's ops from
briefs and generated stubs, checks them against the library, and trains the models on them.

>>> from tinytorch.learn import load_curriculum
>>> [m.phase for m in load_curriculum().modules][0]
'foundation'
"""

from importlib import metadata as _metadata

from .checks import ExerciseResult, check_module, compare
from .curriculum import (
    Case,
    Curriculum,
    Exercise,
    Kernel,
    Module,
    Target,
    curriculum_markdown,
    load_curriculum,
)
from .grade import grade, to_gradescope
from .stubs import module_source
from .substitute import ReferenceUsed, StudentFileError, substituted
from .workspace import read_state, start, status

__version__ = _metadata.version("tinytorch-learn")  # the one source: pyproject.toml

__all__ = [
    "load_curriculum", "Curriculum", "Module", "Exercise", "Case", "Kernel", "Target", "curriculum_markdown",
    "module_source",
    "start", "status", "read_state", "check_module", "ExerciseResult", "compare", "substituted",
    "ReferenceUsed", "StudentFileError", "grade", "to_gradescope",
]
