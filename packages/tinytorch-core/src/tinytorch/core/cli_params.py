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


__all__ = ["FiniteFloat"]
