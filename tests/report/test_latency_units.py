"""One unit for each latency across the report, and each TTFT/ITL percentile labelled with how
it was taken (#18 item 13): the summary and serving tables and the Pareto plots pool every
request of every cycle; the comparison averages each cycle's own percentile (the t-test needs
one value per cycle). Both in ms, in the terminal and the HTML page."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from report_fixtures import Written
from rich.console import Console

import llenergymeasure as llem
from llenergymeasure.reporting.summary import cycle_values

POOLED = "pooled over all requests"
PER_CYCLE = "mean over cycles of each cycle's"


@pytest.fixture
def outcome(written: Written, tmp_path: Path) -> tuple[llem.Report, str, str]:
    """The two-configuration study's report: the result, the terminal text, the page's text
    (tags removed)."""
    console = Console(width=250, record=True, color_system=None)
    report = llem.report(written.study, html=tmp_path / "r.html", console=console)
    page = html.unescape(re.sub(r"<[^>]+>", " ", (tmp_path / "r.html").read_text()))  # its text
    return report, console.export_text(), page


def test_the_comparison_shows_latency_in_ms_labelled_as_a_mean_of_cycle_percentiles(
    outcome: tuple[llem.Report, str, str],
) -> None:
    report, terminal, page = outcome
    assert report.comparison is not None
    latency = [d for d in report.comparison.metrics if d.metric.startswith(("ttft", "itl"))]
    assert len(latency) == 4
    by_label = {s.label: s for s in report.configurations}
    for d in latency:
        assert d.unit == "ms"
        percentile = d.label.split()[1].rstrip(",")
        assert d.label.endswith(f"{PER_CYCLE} {percentile}")  # "TTFT p95, ... p95"
        seconds = cycle_values(by_label[report.comparison.a].done, d.metric)
        assert d.mean_a == pytest.approx(1e3 * sum(seconds) / len(seconds))
        for text in (terminal, page):
            assert d.label in text
            assert re.search(rf"{re.escape(d.label)}\W+{d.mean_a:.4g} ms", text)


def test_every_pooled_latency_says_so_and_is_in_ms(outcome: tuple[llem.Report, str, str]) -> None:
    _, terminal, page = outcome
    for text in (terminal, page):
        assert f"TTFT p50/p95 ms, {POOLED}" in text and f"ITL p50/p95 ms, {POOLED}" in text
    assert "TTFT p95 over all requests, pooled (ms)" in page  # a Pareto axis


def test_no_latency_is_shown_in_seconds(outcome: tuple[llem.Report, str, str]) -> None:
    _, terminal, page = outcome
    for text in (terminal, page):
        rows = [line for line in text.splitlines() if re.search(r"\b(TTFT|ITL)\b", line)]
        assert rows
        assert not [row for row in rows if re.search(r"\d s\b", row)]
