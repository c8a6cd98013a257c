"""`llem report`: a thin wrapper over :func:`llenergymeasure.reporting.report`."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape


def execute_report(
    results: list[Path], html: Path | None, compare: list[str] | None, console: Console
) -> int:
    """Print the report (and write the HTML page); returns the exit code.

    Raises:
        LLEMError: bad paths (exit 2), a missing ``[report]`` extra (exit 1), unreadable files.
    """
    from llenergymeasure.reporting import report

    outcome = report(results, html=html, compare_labels=compare or None, console=console)
    if outcome.html_path is not None:
        console.print(f"report: [bold]{escape(str(outcome.html_path))}[/]", soft_wrap=True)
    return 0
