"""The `tito` group: built-ins plus lazily loaded `tito.commands` plugins.

Startup cost matters (`tito --help` is run constantly), so this module imports click and
metadata helpers only: no rich, no numpy, and no plugin module until its command is invoked.
"""

from __future__ import annotations

from typing import Any

import click

from tito.builtins import BUILTINS
from tito.discovery import Plugin, PluginLoadError, discover_plugins, installed_distributions
from tito.errors import user_errors


def _broken_command(name: str, error: PluginLoadError) -> click.Command:
    """A stand-in for a plugin that failed to load: whatever arguments it gets (even
    --help), it reports the load error as one line and exits 1."""

    def fail() -> None:
        raise error

    return click.Command(
        name,
        callback=fail,
        help=f"[broken] {error.reason}",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class TitoGroup(click.Group):
    """A click group that adds the `tito.commands` entry points to its built-in commands.

    Plugins are listed from metadata (name, distribution, version) and imported only in
    `get_command`, i.e. when invoked; `format_commands` is overridden because click's default
    would call `get_command` - and so import every plugin - just to print `--help`.
    `invoke` converts exceptions into one-line errors (see `tito.errors`), which makes the
    console script and `CliRunner(cli)` behave identically.
    """

    def usable_plugins(self) -> dict[str, Plugin]:
        """Plugins by name, leaving out those whose name clashes (built-ins win)."""
        plugins = discover_plugins(frozenset(self.commands))
        return {p.name: p for p in plugins if p.clash is None}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugin command names, sorted; read from metadata, nothing imported."""
        return sorted(set(self.commands) | set(self.usable_plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``: a built-in, the loaded plugin group, or a stand-in that reports
        the plugin's load error (so one broken plugin never breaks the others); None if unknown.
        """
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        plugin = self.usable_plugins().get(cmd_name)
        if plugin is None:
            return None
        try:
            return plugin.load()
        except PluginLoadError as exc:
            return _broken_command(cmd_name, exc)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the Plugin commands and Built-in commands sections of ``--help`` without importing plugins."""
        plugins = [(p.name, p.short_help) for p in self.usable_plugins().values()]
        builtins = [(n, c) for n, c in sorted(self.commands.items()) if not c.hidden]
        width = max((len(name) for name, _ in plugins + builtins), default=0)
        limit = formatter.width - 6 - width
        with formatter.section("Plugin commands"):
            if plugins:
                formatter.write_dl(plugins)
            else:
                formatter.write_text("none installed (try: pip install tinytorch-core)")
        with formatter.section("Built-in commands"):
            formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in builtins])

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, turning library errors into one red line and exit code 1 (see ``tito.errors``)."""
        with user_errors():
            return super().invoke(ctx)


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`--version`: one line per installed TinyTorch distribution, since they version
    independently and a single number would say nothing."""
    if not value or ctx.resilient_parsing:
        return
    for name, version in installed_distributions():
        click.echo(f"{name} {version}")
    ctx.exit()


@click.group(cls=TitoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Show every installed TinyTorch distribution and exit.",
)
def cli() -> None:
    """TinyTorch command line.

    Commands come from the installed TinyTorch packages (entry-point group tito.commands);
    see `tito plugins` for what is installed and whether it loads.
    """


for _command in BUILTINS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`tito`); also used by `python -m tito`."""
    cli.main(args=argv, prog_name="tito")
