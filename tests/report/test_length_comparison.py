"""``llem report`` flags a comparison of runs whose request lengths differ (the mean or p95 of
the input or output tokens more than 5 % apart), in the terminal and in the HTML page; runs of
equal lengths, or without recorded lengths, are not flagged."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import make_result, records
from rich.console import Console

import llenergymeasure as llem
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import LengthStats, RequestLengths

pytest.importorskip("pandas")

FLAG = "warning: A and B ran requests of different lengths"


def lengths(output_mean: float, output_p95: float, mode: str = "fixed") -> RequestLengths:
    return RequestLengths(
        output_lengths=mode,
        input_tokens=LengthStats(n=4, mean=10.0, p50=10.0, p95=10.0),
        output_tokens=LengthStats(n=4, mean=output_mean, p50=output_mean, p95=output_p95),
    )


def written(folder: Path, name: str, measured: RequestLengths | None) -> Path:
    reqs = records(4, 0.2)
    result = make_result(ExperimentConfig(model="tiny", name=name), 20.0, reqs, lengths=measured)
    return write_experiment(result, reqs, folder, name)


def compared(tmp_path: Path, a: RequestLengths | None, b: RequestLengths | None) -> tuple[str, str]:
    """The terminal text and the HTML page of ``llem.report`` comparing A with B."""
    runs = [written(tmp_path, "a", a), written(tmp_path, "b", b)]
    console = Console(record=True, width=200)
    page = tmp_path / "report.html"
    llem.report(runs, html=page, console=console)
    return console.export_text(), page.read_text(encoding="utf-8")


def test_different_output_lengths_are_flagged(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    text, page = compared(tmp_path, lengths(64.0, 64.0), lengths(32.0, 60.0, "distribution"))
    flagged = " ".join(text.split())
    assert (
        f"{FLAG} (output tokens mean 64 against 32, -50%; output tokens p95 64 against 60, "
        "-6%; more than 5% apart)" in flagged
    )
    assert "here distribution and fixed" in flagged
    assert FLAG in page


def test_lengths_within_five_percent_are_not_flagged(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    text, page = compared(tmp_path, lengths(64.0, 64.0), lengths(62.0, 66.0))
    assert FLAG not in text and FLAG not in page


def test_results_without_recorded_lengths_are_not_judged(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    text, _ = compared(tmp_path, lengths(64.0, 64.0), None)
    assert FLAG not in text
