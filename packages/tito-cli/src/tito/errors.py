"""Turning exceptions into one red line and an exit code.

Users of a CLI should never see a traceback for a mistake they can fix (a wrong path, a bad
argument value). Library code raises ValueError/TypeError/OSError/KeyError with a message that
names the problem (DESIGN.md §9); this module converts those - and anything else a plugin
raises - into a `click.ClickException`, which click prints as `Error: ...` and exits with.
Doing the conversion inside the click group (see `tito.main.TitoGroup.invoke`) means the
console script, `python -m tito` and `CliRunner` in tests all behave the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

#: Exceptions that signal a user-fixable problem: only their message is shown.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, KeyError)


def one_line(text: str) -> str:
    """Collapse a (possibly multi-line) message into one line, so the error stays one line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe(exc: BaseException) -> str:
    """`Type: message` for an exception, on one line (just `Type` if it has no message)."""
    message = one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def debug_enabled() -> bool:
    """`TITO_DEBUG=1` lets exceptions through with their traceback, for developers."""
    return os.environ.get("TITO_DEBUG") == "1"


class TitoError(click.ClickException):
    """A ClickException printed as one red `Error: ...` line on stderr; exit code 1."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error: <message>`` in red on stderr (or ``file``)."""
        click.echo(
            click.style(f"Error: {self.format_message()}", fg="red"),
            file=file,
            err=file is None,
            color=self.show_color,
        )


class Interrupted(TitoError):
    """Ctrl-C: one line and the conventional exit code 128 + SIGINT (130)."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")


def translate(exc: BaseException) -> click.ClickException:
    """The ClickException to show for `exc` (which is not already a click exception)."""
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted()
    if isinstance(exc, KeyError):
        # str(KeyError("x")) is "'x'"; show the key as given.
        return TitoError(str(exc.args[0]) if exc.args else "KeyError")
    if isinstance(exc, USER_ERRORS):
        return TitoError(one_line(str(exc)) or type(exc).__name__)
    return TitoError(describe(exc))


@contextmanager
def user_errors() -> Iterator[None]:
    """Run a block, converting any exception into a one-line `TitoError`.

    click's own exceptions (usage errors exit 2, `ctx.exit`, `Abort`) and `SystemExit` pass
    through unchanged, so click's conventions are kept. With `TITO_DEBUG=1` everything is
    re-raised untouched, traceback included.
    """
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except (Exception, KeyboardInterrupt) as exc:
        if debug_enabled():
            raise
        raise translate(exc) from exc
