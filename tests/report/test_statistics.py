"""Per-configuration statistics, comparisons with Welch's t-test, Pareto fronts, sweeps and
telemetry phases, against hand-computed values."""

from __future__ import annotations

import math

import pytest
from report_fixtures import STUDY_ENERGY_J, Written

import llenergymeasure as llem
from llenergymeasure.reporting import compare, summarise
from llenergymeasure.reporting.figures import pareto_optimal
from llenergymeasure.reporting.summary import swept_parameters
from llenergymeasure.reporting.timeline import PhaseSpan, phase_spans
from llenergymeasure.results.io import load_requests
from llenergymeasure.results.stats import (
    combined_ci95_half_width,
    latency_stats,
    summary_stats,
    t_quantile,
)


def test_configurations_ranked_by_j_per_token_with_student_t_interval(written: Written) -> None:
    summaries = summarise(llem.load_results([written.study, written.experiment_a]))
    assert [s.label for s in summaries] == ["demo_bs8", "demo_bs1", "solo_a"]
    bs8, bs1, solo = summaries
    tokens = 16  # 4 requests × 4 tokens
    values = [e / tokens for e in STUDY_ENERGY_J[1] if e is not None]
    expected = summary_stats(values)
    assert bs1.j_per_token.mean == pytest.approx(expected.mean)
    # every cycle states its sampler's bound (0.5 J): the interval adds it to the spread
    bound = 0.5 / tokens
    combined = combined_ci95_half_width(values, [bound] * len(values))
    assert combined is not None and expected.ci95_half_width is not None
    assert bs1.j_per_token.ci95_half_width == pytest.approx(combined)
    assert combined > expected.ci95_half_width
    n = len(values)
    assert combined == pytest.approx(
        t_quantile(0.975, n - 1) * math.sqrt(expected.std**2 / n + bound**2 / (3 * n))
    )
    assert (bs8.n_cycles, bs8.n_failed, solo.n_cycles) == (2, 1, 1)
    assert solo.j_per_token.ci95_half_width is None  # one cycle: no interval
    assert bs1.mean_power_w.mean == pytest.approx(33.0 / 4.0)
    assert bs1.warnings == {"short_window": 3} and bs1.energy_methods == ["nvml"]


def test_latency_percentiles_are_pooled_from_raw_requests(written: Written) -> None:
    (bs1,) = [s for s in summarise(llem.load_results(written.study)) if s.label == "demo_bs1"]
    ttfts = [
        r.ttft_s for d in bs1.done["result_dir"] for r in load_requests(d) if r.ttft_s is not None
    ]
    assert len(ttfts) == 12
    assert bs1.ttft.p95_s == pytest.approx(latency_stats(ttfts).p95_s)


def test_welch_comparison_matches_hand_computation(written: Written) -> None:
    by_label = {s.label: s for s in summarise(llem.load_results(written.study))}
    result = compare(by_label["demo_bs1"], by_label["demo_bs8"])
    energy = next(m for m in result.metrics if m.metric == "energy_total_j")
    # A = [30, 33, 36] (mean 33, var 9), B = [12, 13] (mean 12.5, var 0.5)
    se = math.sqrt(9 / 3 + 0.5 / 2)
    dof = se**4 / ((9 / 3) ** 2 / 2 + (0.5 / 2) ** 2 / 1)
    assert energy.difference == pytest.approx(-20.5)
    assert energy.ci95_high is not None and energy.ci95_low is not None
    half = (energy.ci95_high - energy.ci95_low) / 2
    from llenergymeasure.results.stats import t_quantile

    assert half == pytest.approx(t_quantile(0.975, dof) * se)
    assert energy.significant is True and energy.p_value is not None and energy.p_value < 0.05
    assert result.note is None and energy.relative == pytest.approx(-20.5 / 33)


def test_single_runs_say_no_statistical_comparison_is_possible(written: Written) -> None:
    a, b = summarise(llem.load_results([written.experiment_a, written.experiment_b]))
    result = compare(a, b)
    assert result.note is not None and "no statistical comparison possible" in result.note
    assert all(m.p_value is None and m.ci95_low is None for m in result.metrics)
    j = next(m for m in result.metrics if m.metric == "energy_per_output_token_j")
    assert j.difference == pytest.approx(j.mean_b - j.mean_a)


@pytest.mark.parametrize(
    ("points", "higher_x", "expected"),
    [
        ([(1, 5), (2, 4), (3, 6), (2, 4.5)], True, [False, True, True, False]),
        ([(1, 5), (2, 4), (3, 6)], False, [True, True, False]),
        ([(1, 1), (1, 1)], True, [True, True]),  # ties dominate neither
    ],
)
def test_pareto_front(
    points: list[tuple[float, float]], higher_x: bool, expected: list[bool]
) -> None:
    assert pareto_optimal(points, higher_x) == expected


def test_swept_parameters_are_the_config_fields_that_differ(written: Written) -> None:
    summaries = summarise(llem.load_results(written.study))
    assert swept_parameters(summaries) == ["config.pytorch.batch_size"]


def test_phase_spans_run_to_the_next_phase() -> None:
    spans = phase_spans([0.0, 1.0, 2.0, 2.5, 3.0, 4.0], ["w", "w", "b", "x", "x", "x"])
    assert spans == [
        PhaseSpan("w", 0.0, 2.0, 2),
        PhaseSpan("b", 2.0, 2.5, 1),
        PhaseSpan("x", 2.5, 4.0, 3),
    ]


@pytest.mark.parametrize(("width", "split"), [(200, False), (60, True)])
def test_terminal_table_splits_when_the_figures_do_not_fit(
    written: Written, width: int, split: bool
) -> None:
    from rich.console import Console

    console = Console(width=width, record=True)
    llem.report(written.study, console=console)
    lines = console.export_text().splitlines()
    summary = lines[: next(i for i, line in enumerate(lines) if line.startswith("└")) + 1]
    header = " ".join(line for line in summary if line.startswith("┃"))
    assert ("warnings" in header) is not split  # split: later columns in a second table
    assert "configuration" in header and "cycles" in header  # the first columns first
    assert all(len(line) <= width for line in lines if line.startswith(("┃", "│")))


def test_figures_equal_but_for_rounding_differ_by_zero(
    written: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.1 + 0.2 and 0.3 are the same ITL computed two ways: "+5.551e-17 ms" said nothing
    import importlib

    compare_module = importlib.import_module("llenergymeasure.reporting.compare")

    by_label = {s.label: s for s in summarise(llem.load_results(written.study))}
    a, b = by_label["demo_bs1"], by_label["demo_bs8"]
    monkeypatch.setattr(
        compare_module, "_values", lambda summary, _: [0.1 + 0.2] * 2 if summary is a else [0.3] * 2
    )
    result = compare(a, b)
    assert result.metrics and all(m.difference == 0.0 for m in result.metrics)
