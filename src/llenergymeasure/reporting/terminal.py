"""The report in the terminal: rich tables, the warnings in full, failed entries."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.reporting.compare import Comparison
from llenergymeasure.reporting.context import ReportContext
from llenergymeasure.reporting.summary import ConfigurationSummary
from llenergymeasure.reporting.tables import TableData, comparison_table, summary_table


def rich_table(data: TableData) -> Table:
    """A rich Table of the cells, the first column kept on one line."""
    table = Table(title=escape(data.title), title_justify="left")
    for index, header in enumerate(data.headers):
        table.add_column(escape(header), no_wrap=index == 0, overflow="fold")
    for row in data.rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


WIDE_COLUMNS = 140  # narrower consoles get the trailing text columns as lines under the table
TEXT_COLUMNS = 2  # summary table: energy method, warnings


def _print_table(console: Console, data: TableData, text_columns: int = 0) -> None:
    """The table; on a narrow console its last ``text_columns`` columns (long text) are
    printed as one line per row under it instead."""
    moved = text_columns if console.width < WIDE_COLUMNS else 0
    keep = len(data.headers) - moved
    console.print(
        rich_table(TableData(data.title, data.headers[:keep], [r[:keep] for r in data.rows]))
    )
    for row in data.rows if moved else []:
        details = "; ".join(
            f"{header} {cell}"
            for header, cell in zip(data.headers[keep:], row[keep:], strict=True)
            if cell
        )
        console.print(f"{escape(row[0])}: {escape(details)}", soft_wrap=True)
    for note in data.notes:
        console.print(f"[dim]{escape(note)}[/]", soft_wrap=True)


def print_report(
    console: Console,
    summaries: Sequence[ConfigurationSummary],
    comparison: Comparison | None,
    context: ReportContext,
) -> None:
    """Summary table, comparison (if any), every warning's text, failed entries."""
    _print_table(console, summary_table(summaries), TEXT_COLUMNS)
    if comparison is not None:
        _print_table(console, comparison_table(comparison))
    for code, message in sorted(context.warnings.items()):
        console.print(f"[yellow]warning ({escape(code)}):[/] {escape(message)}", soft_wrap=True)
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
