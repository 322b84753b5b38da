"""Models registered by installed packages, found through the ``tinytorch.models`` entry points.

Each entry point maps a name to a zero-argument factory returning ``(model, example_input)``.
tinytorch-vision registers small_cnn, deep_cnn, wide_cnn and mlp; tinytorch-language registers
tinygpt. Perf never imports those packages: whatever is installed is what it can profile.
``register_model`` adds one in-process (notebooks, tests).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "tinytorch.models"

_local: dict[str, Callable[[], tuple[Any, Any]]] = {}


def register_model(name: str, factory: Callable[[], tuple[Any, Any]]) -> None:
    """Make ``factory`` available by ``name`` in this process (overrides an entry point)."""
    if not callable(factory):
        raise TypeError(f"register_model: factory for {name!r} must be callable, got {factory!r}")
    _local[name] = factory


def unregister_model(name: str) -> None:
    _local.pop(name, None)


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> list[str]:
    """Names of every model an installed package (or ``register_model``) provides."""
    return sorted(set(_entry_points()) | set(_local))


def unknown_model_message(name: str) -> str:
    names = available_models()
    listed = ", ".join(names) if names else "none (install tinytorch-vision or tinytorch-language)"
    return f"unknown model {name!r}; registered models: {listed}"


def load_model(name: str) -> tuple[Any, Any]:
    """``(model, example_input)`` from the factory registered as ``name``."""
    if name in _local:
        factory = _local[name]
    else:
        ep = _entry_points().get(name)
        if ep is None:
            raise ValueError(unknown_model_message(name))
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plugin must say so in one line
            raise ValueError(f"model {name!r} ({ep.value}) failed to load: "
                             f"{type(exc).__name__}: {exc}") from exc
    result = factory()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"model factory {name!r} must return (model, example_input), "
                        f"got {type(result).__name__}")
    return result
