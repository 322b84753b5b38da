"""Tables that fit the terminal: no cell is ever wrapped or cut; columns are left out instead.

Every perf table is built from (header, justify, priority) columns and rows of strings. When
the table would be wider than the console, the lowest-priority columns are dropped (named in
the caption, with ``--json`` for everything), so a number or a layer name is never broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Column", "fitted_table", "table_width"]


@dataclass(frozen=True)
class Column:
    """One table column: its header, alignment and how much it matters.

    Attributes:
        header: the column title.
        justify: ``"left"`` or ``"right"`` (numbers).
        priority: columns with the lowest priority are dropped first when space runs out.

    >>> Column("fwd ms", priority=9).justify
    'right'
    """

    header: str
    justify: str = "right"
    priority: int = 0


def table_width(widths: Sequence[int]) -> int:
    """Width of a rich box table whose columns hold ``widths`` characters: one space of
    padding each side and one border per column, plus the closing border.

    >>> table_width([5, 10])
    22
    """
    return sum(w + 3 for w in widths) + 1


def fitted_table(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]],
                 width: int, footer: Sequence[Sequence[str]] = ()):
    """A rich ``Table`` of ``rows`` no wider than ``width``: cells never wrap; the
    lowest-priority columns are left out (and named in the caption) until it fits.

    Args:
        title: the table title (wraps between words like any text), or None.
        columns: the columns, in display order.
        rows: one sequence of cell strings per row, in column order.
        width: the console width (``Console().width``).
        footer: rows shown after a separator line (totals).

    Returns:
        a ``rich.table.Table``.

    >>> from rich.console import Console
    >>> cols = [Column("layer", "left", 9), Column("ms", priority=8), Column("note", "left", 0)]
    >>> t = fitted_table(None, cols, [["conv1", "1.25", "x" * 30]], width=24)
    >>> [c.header for c in t.columns], t.caption
    (['layer', 'ms'], 'left out at this width: note (use --json, or a wider terminal)')
    """
    from rich.table import Table

    all_rows = [list(r) for r in rows] + [list(r) for r in footer]
    widths = [max([len(c.header), *(len(r[i]) for r in all_rows)]) for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    by_priority = sorted(keep, key=lambda i: (columns[i].priority, -i))
    while len(keep) > 1 and table_width([widths[i] for i in keep]) > width:
        keep.remove(by_priority.pop(0))
    dropped = [columns[i].header for i in range(len(columns)) if i not in keep]
    caption = (f"left out at this width: {', '.join(dropped)} (use --json, or a wider terminal)"
               if dropped else None)
    table = Table(title=title, caption=caption)
    for i in keep:
        table.add_column(columns[i].header, justify=columns[i].justify, no_wrap=True)
    for r in rows:
        table.add_row(*(r[i] for i in keep))
    if footer:
        table.add_section()
        for r in footer:
            table.add_row(*(r[i] for i in keep))
    return table
