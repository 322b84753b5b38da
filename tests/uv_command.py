"""How the root tests run uv: from PATH, or as the module pip installed (its script directory
may not be on PATH); a test that needs it is skipped when neither exists."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest


def uv() -> list[str]:
    """The command line that starts uv."""
    if shutil.which("uv"):
        return ["uv"]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    pytest.skip("uv is neither on PATH nor importable")
