"""Finding what is installed: `tito.commands` plugins and TinyTorch distributions.

Everything here reads package metadata only; a plugin module is imported by `Plugin.load`,
never by discovery, so `tito --help` stays fast and a broken plugin cannot break it.
tito-cli imports nothing of tinytorch: the packages reach it only through entry points.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, replace

import click

from tito.errors import TitoError, describe

GROUP = "tito.commands"


def command_entry_points() -> list[md.EntryPoint]:
    """All entry points in the `tito.commands` group (tests monkeypatch this)."""
    return list(md.entry_points(group=GROUP))


def normalize(name: str) -> str:
    """PEP 503-style name, so `tinytorch_core` and `tinytorch-core` are the same distribution."""
    return name.strip().lower().replace("_", "-").replace(".", "-")


def is_tinytorch(name: str) -> bool:
    """True for a TinyTorch distribution name (normalized): ``tinytorch-*``, ``tinytorch`` or ``tito-cli``.

    >>> is_tinytorch("tinytorch-core"), is_tinytorch("tito-cli"), is_tinytorch("torch")
    (True, True, False)
    """
    return name.startswith("tinytorch-") or name in ("tinytorch", "tito-cli")


def installed_distributions() -> list[tuple[str, str]]:
    """(name, version) of every installed TinyTorch distribution, sorted by name.

    `distributions()` can report one distribution several times (one per sys.path entry);
    the first one wins, as it does for imports.
    """
    found: dict[str, str] = {}
    for dist in md.distributions():
        name = normalize(dist.metadata["Name"] or "")
        if is_tinytorch(name):
            found.setdefault(name, dist.version)
    return sorted(found.items())


class PluginLoadError(TitoError):
    """A plugin that cannot be used; `reason` is the bare `Type: message` for tables."""

    def __init__(self, plugin: Plugin, reason: str) -> None:
        super().__init__(
            f"plugin '{plugin.name}' from {plugin.distribution} failed to load: {reason}"
        )
        self.reason = reason


@dataclass(frozen=True)
class Plugin:
    """One `tito.commands` entry point, described from metadata alone."""

    name: str
    value: str
    distribution: str
    version: str
    entry_point: md.EntryPoint
    clash: str | None = None  # why the name is unusable, e.g. it shadows a built-in

    @classmethod
    def from_entry_point(cls, ep: md.EntryPoint) -> Plugin:
        """Describe an entry point from its metadata (distribution name and version) without loading it."""
        dist = getattr(ep, "dist", None)  # None for EntryPoint objects made by hand
        name = (dist.metadata["Name"] if dist is not None else None) or "unknown"
        version = dist.version if dist is not None else "unknown"
        return cls(ep.name, ep.value, normalize(name), version, ep)

    @property
    def short_help(self) -> str:
        return f"commands from {self.distribution} {self.version}"

    def load(self) -> click.Command:
        """Import the plugin's command; any failure becomes a one-line `PluginLoadError`."""
        if self.clash:
            raise PluginLoadError(self, self.clash)
        try:
            command = self.entry_point.load()
        except Exception as exc:  # a plugin may fail in any way; it must not take tito down
            raise PluginLoadError(self, describe(exc)) from exc
        if not isinstance(command, click.Command):
            reason = f"TypeError: {self.value} is a {type(command).__name__}, not a click command"
            raise PluginLoadError(self, reason)
        return command

    def status(self) -> tuple[str, str | None]:
        """('ok', None) or ('broken', reason), found by actually importing the plugin."""
        try:
            self.load()
        except PluginLoadError as exc:
            return "broken", exc.reason
        return "ok", None


def discover_plugins(builtin_names: set[str] | frozenset[str] = frozenset()) -> list[Plugin]:
    """Every plugin, in name order, with clashes marked (never dropped, so `tito plugins`
    can show them): a plugin may not take a built-in's name, and of two plugins with the
    same name only the first found is usable."""
    plugins: list[Plugin] = []
    seen: dict[str, Plugin] = {}
    for ep in command_entry_points():
        plugin = Plugin.from_entry_point(ep)
        if plugin.name in builtin_names:
            plugin = replace(plugin, clash=f"NameClash: '{ep.name}' is a built-in command")
        elif plugin.name in seen:
            other = seen[plugin.name].distribution
            plugin = replace(plugin, clash=f"NameClash: '{ep.name}' is already provided by {other}")
        else:
            seen[plugin.name] = plugin
        plugins.append(plugin)
    return sorted(plugins, key=lambda p: (p.name, p.clash is not None, p.distribution))
