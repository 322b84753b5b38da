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
    """Make ``factory`` available by ``name`` in this process (overrides an entry point).

    Args:
        name: the model's name (as ``tito performance profile NAME`` would use).
        factory: a zero-argument callable returning ``(model, example_input)``.

    >>> from tinytorch.core import nn, randn
    >>> register_model("doc-mlp", lambda: (nn.Linear(4, 2), randn(1, 4)))
    >>> "doc-mlp" in available_models()
    True
    >>> unregister_model("doc-mlp")
    """
    if not callable(factory):
        raise TypeError(f"register_model: factory for {name!r} must be callable, got {factory!r}")
    _local[name] = factory


def unregister_model(name: str) -> None:
    """Remove a model added with ``register_model`` (no error if absent)."""
    _local.pop(name, None)


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> list[str]:
    """Names of every model an installed package (or ``register_model``) provides.

    >>> isinstance(available_models(), list)
    True
    """
    return sorted(set(_entry_points()) | set(_local))


def unknown_model_message(name: str) -> str:
    """The error text for an unknown model name, listing the registered ones."""
    names = available_models()
    listed = ", ".join(names) if names else "none (install tinytorch-vision or tinytorch-language)"
    return f"unknown model {name!r}; registered models: {listed}"


def load_model(name: str) -> tuple[Any, Any]:
    """``(model, example_input)`` from the factory registered as ``name``.

    Raises:
        ValueError: no such model, or its entry point failed to load (named in one line).

    >>> from tinytorch.core import nn, randn
    >>> register_model("doc-linear", lambda: (nn.Linear(4, 2), randn(1, 4)))
    >>> model, x = load_model("doc-linear")
    >>> model(x).shape
    (1, 2)
    >>> unregister_model("doc-linear")
    """
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
