"""Component share: how much of a registered model is built from core's classes.

The models come from the `tinytorch.models` entry points (name -> zero-argument factory that
returns `(model, example_input)`), loaded with `EntryPoint.load()`. That is a run-time lookup,
not an import of tinytorch, so tito-cli keeps its contract of importing nothing of tinytorch;
the model is then inspected duck-typed (`named_modules`, `named_parameters`), the same API
PyTorch modules have.

Definitions: every module instance the model reaches (`model.named_modules()`, the model itself
included, a shared instance counted once) is *from core* when its class is defined in a module
of core's package (`type(m).__module__` is `tinytorch.core` or below it). A parameter belongs to
the module that registers it directly (`named_parameters(recurse=False)`), is counted once
however many modules share it, and weighs its number of elements.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tito.discovery import normalize
from tito.errors import describe

MODELS_GROUP = "tinytorch.models"
CORE_PACKAGES = ("tinytorch.core",)


@dataclass(frozen=True)
class ComponentShare:
    """For one registered model: how many module instances and parameter elements belong to
    classes defined in core (``module_share`` and ``param_share`` are the fractions).

    >>> ComponentShare("net", modules_core=2, modules_total=5, params_core=9, params_total=31).module_share
    0.4
    """
    model: str
    modules_core: int
    modules_total: int
    params_core: int
    params_total: int

    @property
    def module_share(self) -> float | None:
        return self.modules_core / self.modules_total if self.modules_total else None

    @property
    def param_share(self) -> float | None:
        return self.params_core / self.params_total if self.params_total else None

    def as_dict(self) -> dict[str, Any]:
        """The figures (and both shares) for ``tito reuse --json``."""
        return {
            "model": self.model,
            "modules_core": self.modules_core,
            "modules_total": self.modules_total,
            "module_share": self.module_share,
            "params_core": self.params_core,
            "params_total": self.params_total,
            "param_share": self.param_share,
        }


def defined_in(cls: type, packages: Iterable[str]) -> bool:
    """True when ``cls`` is defined in one of ``packages`` (a module of that name or below it).

    >>> from collections import OrderedDict
    >>> defined_in(OrderedDict, ["collections"]), defined_in(OrderedDict, ["tinytorch.core"])
    (True, False)
    """
    module = getattr(cls, "__module__", "") or ""
    return any(module == p or module.startswith(p + ".") for p in packages)


def element_count(param: Any) -> int:
    """Elements of a parameter: `numel()` if it has one (TinyTorch, PyTorch), else `.size`."""
    numel = getattr(param, "numel", None)
    if callable(numel):
        return int(numel())
    size = getattr(param, "size", None)
    return int(size() if callable(size) else size)


def component_share(
    name: str, model: Any, core_packages: Iterable[str] = CORE_PACKAGES
) -> ComponentShare:
    """Count the module instances and parameter elements of `model` whose class is core's."""
    core_packages = tuple(core_packages)
    if not hasattr(model, "named_modules"):
        raise TypeError(
            f"model {name!r} is a {type(model).__name__}, which has no named_modules(); "
            "expected a Module"
        )
    modules_core = modules_total = params_core = params_total = 0
    seen_params: set[int] = set()
    for _, module in model.named_modules():
        in_core = defined_in(type(module), core_packages)
        modules_total += 1
        modules_core += in_core
        for _, param in module.named_parameters(recurse=False):
            if id(param) in seen_params:
                continue
            seen_params.add(id(param))
            n = element_count(param)
            params_total += n
            params_core += n if in_core else 0
    return ComponentShare(name, modules_core, modules_total, params_core, params_total)


@dataclass(frozen=True)
class RegisteredModel:
    """A ``tinytorch.models`` entry point: the model's name, its distribution and ``module:factory``."""
    name: str
    distribution: str
    value: str
    entry_point: md.EntryPoint

    def build(self) -> Any:
        """Load the factory and call it; returns the model (the example input is dropped)."""
        factory = self.entry_point.load()
        result = factory()
        return result[0] if isinstance(result, tuple) else result


def registered_models() -> list[RegisteredModel]:
    """Every `tinytorch.models` entry point, with the distribution that declares it."""
    found = []
    for ep in md.entry_points(group=MODELS_GROUP):
        dist = getattr(ep, "dist", None)
        owner = normalize((dist.metadata["Name"] if dist is not None else None) or "unknown")
        found.append(RegisteredModel(ep.name, owner, ep.value, ep))
    unique = {(m.distribution, m.name): m for m in reversed(found)}  # first found wins
    return sorted(unique.values(), key=lambda m: (m.distribution, m.name))


def measure_model(
    model: RegisteredModel, core_packages: Iterable[str] = CORE_PACKAGES
) -> tuple[ComponentShare | None, str | None]:
    """(share, None), or (None, error) when the model cannot be built: a broken model
    registration must be reported, not crash the report."""
    try:
        # A factory that prints must not corrupt `tito reuse --json` on stdout.
        with contextlib.redirect_stdout(sys.stderr):
            built = model.build()
        return component_share(model.name, built, core_packages), None
    except Exception as exc:  # any failure of a plugin's factory is that plugin's problem
        return None, f"model {model.name!r} ({model.value}) could not be built: {describe(exc)}"
