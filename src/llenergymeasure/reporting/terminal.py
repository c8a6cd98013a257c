"""The report in the terminal: rich tables, the warnings in full, failed entries."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from llenergymeasure.reporting.attribution import ConfigurationAttribution
from llenergymeasure.reporting.compare import Comparison
from llenergymeasure.reporting.context import ReportContext
from llenergymeasure.reporting.layout import Column, FittedTable
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


def fitted_table(data: TableData) -> FittedTable:
    """The table laid out to fit the console (:mod:`llenergymeasure.reporting.layout`): its
    ``prose`` columns wrap between words, the others keep each value on one line, and a split
    repeats its ``keys`` columns."""
    columns = [Column(header, wrap=header in data.prose) for header in data.headers]
    return FittedTable(data.title, columns, data.rows, keys=data.keys)


def _print_table(console: Console, data: TableData) -> None:
    """The table, then its notes."""
    console.print(fitted_table(data))
    for note in data.notes:
        style = "yellow" if note.startswith("warning") else "dim"
        console.print(f"[{style}]{escape(note)}[/]", soft_wrap=True)


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
    _print_table(console, summary_table(summaries))
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
