"""`llem report`: a thin wrapper over :func:`llenergymeasure.reporting.report`."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape


def execute_report(
    results: list[Path],
    html: Path | None,
    compare: list[str] | None,
    slo_attainment: float | None,
    console: Console,
) -> int:
    """Print the report (and write the HTML page); returns the exit code.

    Args:
        slo_attainment: ``--slo-attainment``; None keeps the library's default.

    Raises:
        LLEMError: bad paths or an attainment outside (0, 1] (exit 2), a missing ``[report]``
            extra (exit 1), unreadable files.
    """
    from llenergymeasure.reporting import report
    from llenergymeasure.reporting.serving import DEFAULT_SLO_ATTAINMENT

    attainment = DEFAULT_SLO_ATTAINMENT if slo_attainment is None else slo_attainment
    outcome = report(
        results,
        html=html,
        compare_labels=compare or None,
        slo_attainment=attainment,
        console=console,
    )
    if outcome.html_path is not None:
        console.print(f"report: [bold]{escape(str(outcome.html_path))}[/]", soft_wrap=True)
    return 0
