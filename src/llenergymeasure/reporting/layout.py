"""Tables that never crop a value, at any console width: the one layout rule of every table
``llem run``, ``llem report`` and ``llem config`` print.

A rich table on a narrow console cuts cells with "…", drops columns, or folds a name mid-word.
Here each column says whether its cells may wrap between words (``wrap``: prose); figures and
names never wrap. At the width it is drawn at, a :class:`FittedTable` is:

1. one table, where every unwrapped cell fits on one line and every word of a wrapped cell
   fits its column;
2. else several tables, each repeating the key columns (the first, or first few: what names
   the row) with as many of the others, in order, as fit;
3. else, where even the keys and one other column do not fit, one block per row: its keys,
   then the other cells as ``header: value`` text that wraps between words.

Headers wrap between their words; the title is a paragraph above that wraps at the width. All
cells are plain text (no rich markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

_BORDER = 3  # a column's padding (1 + 1) and its left border
_INDENT = 2  # a block's lines under the row's first cell


@dataclass(frozen=True)
class Column:
    """One column of a :class:`FittedTable`.

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


@dataclass(frozen=True)
class FittedTable:
    """Rows of text cells laid out for the width they are printed at (see the module).

    Attributes:
        title: a paragraph above the table(s).
        columns: one per cell of a row.
        rows: the cells, plain text.
        show_header: draw the headers in table form (blocks label cells by them regardless,
            except ``own_line`` ones).
        keys: how many leading columns name the row (repeated in every table of a split).
    """

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[str]]
    show_header: bool = True
    keys: int = 1

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from laid_out(self, options.max_width)


def laid_out(table: FittedTable, width: int) -> list[RenderableType]:
    """The title, then the table(s) or blocks that show every cell within ``width``."""
    parts = _parts(table, width)
    shown: list[RenderableType] = [Text(table.title, style="italic")] if table.title else []
    if parts is None:
        return shown + _blocks(table)
    return shown + [_table(table, indices, widths) for indices, widths in parts]


_Part = tuple[list[int], list[int]]
"""The column indices of one table and their widths."""


def _parts(table: FittedTable, width: int) -> list[_Part] | None:
    """The columns split into tables that each fit ``width`` (the keys in each, the rest in
    order, as many to a table as fit); None when the keys and one other do not."""
    keys = list(range(table.keys))
    groups: list[list[int]] = []
    current = list(keys)
    for index in range(table.keys, len(table.columns)):
        if _widths(table, [*current, index], width) is not None:
            current.append(index)
        elif current != keys and _widths(table, [*keys, index], width) is not None:
            groups.append(current)
            current = [*keys, index]
        else:
            return None
    groups.append(current)
    parts = []
    for group in groups:
        widths = _widths(table, group, width)
        if widths is None:  # the keys alone are too wide
            return None
        parts.append((group, widths))
    return parts


def _widths(table: FittedTable, indices: Sequence[int], width: int) -> list[int] | None:
    """Each chosen column's width in a table that fits ``width``; None when none fits."""
    least, most = [], []
    for index in indices:
        column, cells = table.columns[index], [row[index] for row in table.rows]
        header = column.header if table.show_header else ""
        least.append(_least_width(column, cells, header))
        most.append(max(least[-1], _longest(cells), len(header)))
    spare = width - 1 - sum(least) - _BORDER * len(indices)
    return None if spare < 0 else _share(least, most, spare)


def _longest(texts: Sequence[str]) -> int:
    return max((len(text) for text in texts), default=1)


def _longest_word(texts: Sequence[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


def _least_width(column: Column, cells: Sequence[str], header: str) -> int:
    """A wrapped column needs its longest word (and its min_width); others their longest
    cell. Either way its header (empty when not shown) may wrap between its words."""
    needed = max(_longest_word(cells), column.min_width) if column.wrap else _longest(cells)
    return max(needed, _longest_word([header]))


def _share(least: list[int], most: list[int], spare: int) -> list[int]:
    """Widen columns from ``least`` towards ``most`` (its longest cell and header) by
    ``spare`` in all: the least-needy first, each by at most an even share of what is left
    (short cells and headers stay on one line)."""
    widths = list(least)
    order = sorted(range(len(widths)), key=lambda i: most[i] - least[i])
    for done, index in enumerate(order):
        grant = min(most[index] - least[index], spare // (len(order) - done))
        widths[index] += grant
        spare -= grant
    return widths


def _table(table: FittedTable, indices: Sequence[int], widths: Sequence[int]) -> Table:
    """One rich table of the chosen columns at their widths. Every column may wrap: an
    unwrapped one is as wide as its longest cell, so only its header ever does."""
    drawn = Table(show_header=table.show_header)
    for index, column_width in zip(indices, widths, strict=True):
        drawn.add_column(Text(table.columns[index].header), width=column_width, overflow="fold")
    for row in table.rows:
        drawn.add_row(*(Text(row[i]) for i in indices))
    return drawn


def _blocks(table: FittedTable) -> list[RenderableType]:
    """One block per row: its keys in bold, then ``header: value`` (non-empty cells, joined by
    " · ") and each ``own_line`` cell as a paragraph, indented."""
    columns = table.columns[table.keys :]
    parts: list[RenderableType] = []
    for row in table.rows:
        parts.append(Text(" · ".join(row[: table.keys]), style="bold"))
        cells = list(zip(columns, row[table.keys :], strict=True))
        labelled = [f"{c.header}: {cell}" for c, cell in cells if cell and not c.own_line]
        paragraphs = [" · ".join(labelled)] if labelled else []
        paragraphs += [cell for c, cell in cells if cell and c.own_line]
        parts += [Padding(Text(text), (0, 0, 0, _INDENT), expand=False) for text in paragraphs]
    return parts
