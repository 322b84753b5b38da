"""Shared fixtures; the stand-in layers live in perf_standins.py (importable from tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from perf_standins import gpt_factory, small_cnn_factory  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache/tinytorch/hardware.json from tests."""
    monkeypatch.setenv("TINYTORCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def registered_models():
    """Register the stand-ins as models for the CLI (in-process)."""
    from tinytorch.perf import models

    models.register_model("test_cnn", small_cnn_factory)
    models.register_model("test_gpt", gpt_factory)
    yield ["test_cnn", "test_gpt"]
    models.unregister_model("test_cnn")
    models.unregister_model("test_gpt")
