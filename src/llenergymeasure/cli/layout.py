"""Tables that never crop a value: a table where the console is wide enough, else one block
per row.

A rich table on a narrow console cuts cells with "…" (or folds a name mid-word). Here each
column says whether its cells may wrap between words (``wrap``); a table is drawn only when
every unwrapped cell fits on one line and every word of a wrapped cell fits its column.
Otherwise each row becomes a block: its first cell, then the other cells as ``header: value``
lines that the console wraps between words. All cells are plain text (no rich markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

_BORDER = 3  # a column's padding (1 + 1) and its left border
_INDENT = 2  # a block's lines under the row's first cell


@dataclass(frozen=True)
class Column:
    """One column of a :func:`fitted` table.

    Attributes:
        header: its heading (a block's ``header:`` label).
        wrap: its cells may wrap between words (prose); otherwise each stays on one line.
        min_width: the narrowest a wrapped column may be drawn in a table.
        own_line: in blocks, its cell is a paragraph of its own with no label (a description).
    """

    header: str
    wrap: bool = False
    min_width: int = 0
    own_line: bool = False


def fitted(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> RenderableType:
    """The rows as a table when it fits ``width`` columns without cutting a value, else as
    one block per row (:mod:`llenergymeasure.cli.layout`)."""
    widths = _column_widths(columns, rows, width)
    if widths is None:
        return _blocks(title, columns, rows)
    table = Table(title=Text(title), title_justify="left")
    for column, column_width in zip(columns, widths, strict=True):
        table.add_column(
            Text(column.header), width=column_width, no_wrap=not column.wrap, overflow="fold"
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _longest(texts: Sequence[str]) -> int:
    return max((len(text) for text in texts), default=1)


def _longest_word(texts: Sequence[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


def _least_width(column: Column, cells: Sequence[str]) -> int:
    """A wrapped column needs its longest word (and its min_width); others their longest
    cell. Either way the header may wrap between its words."""
    needed = max(_longest_word(cells), column.min_width) if column.wrap else _longest(cells)
    return max(needed, _longest_word([column.header]))


def _column_widths(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> list[int] | None:
    """Each column's width in a table that fits ``width``; None when no table fits."""
    cells = [[row[i] for row in rows] for i in range(len(columns))]
    least = [_least_width(column, col) for column, col in zip(columns, cells, strict=True)]
    most = [max(low, _longest(col)) for low, col in zip(least, cells, strict=True)]
    spare = width - 1 - sum(least) - _BORDER * len(columns)
    return None if spare < 0 else _share(least, most, spare)


def _share(least: list[int], most: list[int], spare: int) -> list[int]:
    """Widen columns from ``least`` towards ``most`` by ``spare`` in all: the least-needy
    first, each by at most an even share of what is left (short cells stay on one line)."""
    widths = list(least)
    order = sorted(range(len(widths)), key=lambda i: most[i] - least[i])
    for done, index in enumerate(order):
        grant = min(most[index] - least[index], spare // (len(order) - done))
        widths[index] += grant
        spare -= grant
    return widths


def _blocks(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> RenderableType:
    """One block per row: the first cell in bold, then ``header: value`` (non-empty cells,
    joined by " · ") and each ``own_line`` cell as a paragraph, indented."""
    parts: list[RenderableType] = [Text(title, style="bold italic")]
    for row in rows:
        parts.append(Text(row[0], style="bold"))
        labelled = [
            f"{column.header}: {cell}"
            for column, cell in zip(columns[1:], row[1:], strict=True)
            if cell and not column.own_line
        ]
        paragraphs = [" · ".join(labelled)] if labelled else []
        paragraphs += [cell for column, cell in zip(columns[1:], row[1:], strict=True)
                       if cell and column.own_line]  # fmt: skip
        parts += [Padding(Text(text), (0, 0, 0, _INDENT), expand=False) for text in paragraphs]
    return Group(*parts)
