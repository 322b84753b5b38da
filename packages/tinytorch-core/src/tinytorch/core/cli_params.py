"""click parameter types shared by the ``tito`` commands of every package (imported by CLIs only).

``click.FloatRange`` lets ``nan`` through every bound (``nan < 0`` and ``nan > 0`` are both
false) and accepts ``inf``: ``--time-budget nan`` would train forever. `FiniteFloat` refuses both.

>>> import click
>>> FiniteFloat(min=0, min_open=True).convert("1.5", None, None)
1.5
>>> try:
...     FiniteFloat(min=0, min_open=True).convert("nan", None, None)
... except click.BadParameter as e:
...     print(e.message)
'nan' is not a finite number.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.FloatRange):
    """A ``click.FloatRange`` (same arguments: ``min``, ``max``, ``min_open``, ``max_open``,
    ``clamp``) that also refuses ``nan`` and ``±inf``.

    >>> FiniteFloat(0, 1).convert("0.25", None, None)
    0.25
    """

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def given_on_command_line(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was typed on the command line (not left at its default).

    ``--resume`` refuses a typed option that contradicts the checkpoint, and takes the
    checkpoint's value for one left at its default.

    >>> @click.command()
    ... @click.option("--lr", default=1.0)
    ... @click.pass_context
    ... def cmd(ctx, lr):
    ...     print(given_on_command_line(ctx, "lr"))
    >>> cmd(["--lr", "2"], standalone_mode=False)
    True
    """
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def relaunch_on_ranks(ctx: click.Context, nproc: str, command: tuple[str, ...], batch_size: int | None,
                      unit: str, limit: int | None = None, oversubscribe: bool = False) -> None:
    """With ``--nproc N`` > 1, run this command again on N ranks and exit with their code.

    Returns (doing nothing) for one rank, or inside a rank already. A batch that N ranks cannot
    split evenly is a usage error naming ``--nproc``.

    Args:
        ctx: the command's click context (its exit code is the ranks').
        nproc: the ``--nproc`` value, ``N`` or ``auto``.
        command: the tito sub-command, e.g. ``("vision", "train")``.
        batch_size: the global batch, or None when the command will pick it.
        unit: what a batch row is called in the message (``images``, ``sequences``).
        limit: the ``--limit`` on the training rows, if any (N ranks need at least N).
        oversubscribe: ``--oversubscribe``: allow more ranks than this machine's cores.

    >>> relaunch_on_ranks(None, "1", ("vision", "train"), 128, "images")  # one rank: nothing to do
    """
    from .launch import LaunchError, relaunch, resolve_nproc

    try:
        n = resolve_nproc(nproc)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--nproc") from None
    if batch_size is not None and (batch_size < n or batch_size % n):
        raise click.BadParameter(f"{n} ranks cannot split a batch of {batch_size} {unit} evenly; use a "
                                 f"--batch-size that is a multiple of {n}", param_hint="--nproc")
    if limit is not None and limit < n:
        raise click.BadParameter(f"{n} ranks cannot share {limit} training {unit} (--limit)", param_hint="--nproc")
    try:
        code = relaunch(n, command=command, oversubscribe=oversubscribe)
    except (LaunchError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    if code is not None:
        ctx.exit(code)


__all__ = ["FiniteFloat", "given_on_command_line", "relaunch_on_ranks"]
