"""The report in the terminal: rich tables, the warnings in full, failed entries."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.reporting.attribution import ConfigurationAttribution
from llenergymeasure.reporting.compare import Comparison
from llenergymeasure.reporting.context import ReportContext
from llenergymeasure.reporting.serving import ServingView
from llenergymeasure.reporting.summary import ConfigurationSummary
from llenergymeasure.reporting.tables import (
    TableData,
    attribution_tables,
    comparison_table,
    denominator_table,
    serving_tables,
    summary_table,
)
from llenergymeasure.results.warning_codes import warning_meaning


def rich_table(data: TableData) -> Table:
    """A rich Table of the cells: figures kept on one line, the label column folds to fit."""
    table = Table(title=escape(data.title), title_justify="left")
    for header, width in zip(data.headers, _min_widths(data), strict=True):
        table.add_column(escape(header), overflow="fold", min_width=width)
    for row in data.rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _min_widths(data: TableData) -> list[int]:
    """Figures never wrap mid-number (their headers may); the label column folds to fit."""
    widest = [max((len(row[i]) for row in data.rows), default=1) for i in range(len(data.headers))]
    return [min(widest[0], 12), *widest[1:]]


def _fits(data: TableData, width: int) -> bool:
    return sum(w + 3 for w in _min_widths(data)) + 1 <= width  # padding 2 + a border each


def _transposed(data: TableData) -> TableData:
    """Rows become columns: the first header labels the metric rows, each row a column."""
    columns = [data.headers[0], *(row[0] for row in data.rows)]
    rows = [[header, *(row[index] for row in data.rows)]
            for index, header in enumerate(data.headers[1:], start=1)]  # fmt: skip
    return TableData(data.title, columns, rows, data.notes)


WIDE_COLUMNS = 140  # narrower consoles get the trailing text columns as lines under the table
TEXT_COLUMNS = 2  # summary table: energy method, warnings


def _print_table(console: Console, data: TableData, text_columns: int = 0) -> None:
    """The table; on a narrow console its last ``text_columns`` columns (long text) are
    printed as one line per row under it instead."""
    moved = text_columns if console.width < WIDE_COLUMNS else 0
    keep = len(data.headers) - moved
    kept = TableData(data.title, data.headers[:keep], [r[:keep] for r in data.rows])
    if not _fits(kept, console.width):
        kept = _transposed(kept)  # too narrow for the figures: one column per configuration
    console.print(rich_table(kept))
    for row in data.rows if moved else []:
        details = "; ".join(
            f"{header} {cell}"
            for header, cell in zip(data.headers[keep:], row[keep:], strict=True)
            if cell
        )
        console.print(f"{escape(row[0])}: {escape(details)}", soft_wrap=True)
    for note in data.notes:
        console.print(f"[dim]{escape(note)}[/]", soft_wrap=True)


def print_warning(console: Console, code: str, message: str) -> None:
    """One warning: its code and message, then what the code means (where this version lists
    it; a result from a newer version may carry a code it does not know)."""
    console.print(f"[yellow]warning ({escape(code)}):[/] {escape(message)}", soft_wrap=True)
    meaning = warning_meaning(code)
    if meaning is not None:
        console.print(f"  [dim]{escape(code)} means: {escape(meaning)}[/]", soft_wrap=True)


def print_report(
    console: Console,
    summaries: Sequence[ConfigurationSummary],
    comparison: Comparison | None,
    serving: ServingView | None,
    context: ReportContext,
    attribution: Sequence[ConfigurationAttribution],
) -> None:
    """Summary table, every energy denominator, comparison (if any), the serving view's tables
    (if any configuration ran under load), energy per request and per phase, every warning's
    text, failed entries."""
    _print_table(console, summary_table(summaries), TEXT_COLUMNS)
    _print_table(console, denominator_table(summaries))
    if comparison is not None:
        _print_table(console, comparison_table(comparison))
    for table in [*serving_tables(serving), *attribution_tables(attribution)]:
        _print_table(console, table)
    for code, message in sorted(context.warnings.items()):
        print_warning(console, code, message)
    for problem in context.unreadable:
        console.print(f"[red]unreadable:[/] {escape(problem)}", soft_wrap=True)
    for summary in summaries:
        failed = summary.rows[summary.rows["status"] != "done"]
        for _, row in failed.iterrows():
            console.print(
                f"[red]{escape(str(row['status']))}[/] {escape(summary.label)} cycle "
                f"{int(row['cycle_index']) + 1}: {escape(str(row.get('error') or ''))}",
                soft_wrap=True,
            )
