"""The serving view of a report: serving columns in the results frame, the serving table
(steady-state or whole-window figures, said which), the SLO knee per line (none, inf, the
attainment threshold), the HTML section and its figures; offline reports have none of it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import (
    ENERGY_NOTE,
    SERVING_STUDY,
    Written,
    arrival_good,
    write_serving_study,
)
from rich.console import Console
from typer.testing import CliRunner

import llenergymeasure as llem
from llenergymeasure.cli import app
from llenergymeasure.errors import ConfigError
from llenergymeasure.reporting.serving import DEFAULT_SLO_ATTAINMENT, ServingView
from llenergymeasure.reporting.tables import knee_table, serving_table

QUIET = Console(quiet=True)
SERVING_COLUMNS = (
    "load_mode", "request_rate_rps", "max_concurrency", "achieved_rate_rps",
    "steady_state_energy_per_request_j", "steady_state_energy_per_output_token_j",
    "steady_state_output_tokens_per_s", "goodput_rps", "good_fraction", "energy_per_good_request_j",
)  # fmt: skip
POOL_STUDY = {
    "name": "pool", "model": "tiny", "n": 8,
    "load": {"mode": "concurrency", "slo": {"e2e_ms": 1000}},
    "sweep": {"load.max_concurrency": [1, 4, 8]},
}  # fmt: skip
POOL_GOOD = {1: 1.0, 4: 0.92, 8: 0.7}


def _view(outcome: llem.Report) -> ServingView:
    assert outcome.serving is not None
    return outcome.serving


def _knees(view: ServingView) -> dict[str, list[str]]:
    table = knee_table(view)
    assert table is not None
    return {row[1]: row[2:] for row in table.rows}


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_frame_has_the_serving_columns_and_offline_rows_are_null(
    tmp_path: Path, written: Written
) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good)
    frame = llem.load_results([study, written.experiment_a])
    served = frame[frame["load_mode"] == "rate"].set_index("configuration")
    assert len(served) == 6
    inf_rate = served.loc["serve_arrival-poisson_rate-inf"]
    assert math.isinf(inf_rate["request_rate_rps"]) and _is_null(inf_rate["achieved_rate_rps"])
    two = served.loc["serve_arrival-poisson_rate2"]
    assert (two["request_rate_rps"], two["achieved_rate_rps"]) == (2.0, pytest.approx(1.96))
    assert (
        two["steady_state_energy_per_request_j"] == 4.0
        and two["steady_state_output_tokens_per_s"] == 20
    )
    assert (two["good_fraction"], two["goodput_rps"]) == (0.95, 1.9)
    assert two["energy_per_good_request_j"] == pytest.approx(3 / 0.95)
    assert two["steady_state_energy_per_output_token_j"] == 0.5 and _is_null(two["max_concurrency"])
    offline = frame[frame["configuration"] == "solo_a"].iloc[0]
    assert all(_is_null(offline[column]) for column in SERVING_COLUMNS)


def test_serving_table_says_which_window_each_figure_covers(tmp_path: Path) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good)
    table = serving_table(_view(llem.report(study, console=QUIET)))
    rows = {row[0]: dict(zip(table.headers, row, strict=True)) for row in table.rows}
    steady = rows["serve_arrival-constant_rate2"]
    assert steady["load"] == "2 req/s" and steady["achieved req/s"] == "1.96"
    assert steady["J/request"] == "6" and steady["window"] == "steady state"
    assert steady["SLO targets ms"] == "ttft_ms 200" and steady["good fraction"] == "0.6"
    whole = rows["serve_arrival-constant_rate-inf"]  # no steady state: the whole window's
    assert whole["load"] == "inf (all at once)" and whole["window"] == "whole window"
    assert whole["J/request"] == "10"  # 40 J over 4 requests
    mixed = rows["serve_arrival-constant_rate1"]  # a steady state, but no energy for it
    assert mixed["window"] == "J: whole window; tokens/s: steady state"
    assert (mixed["J/request"], mixed["output tokens/s"]) == ("10", "10")
    assert f"serve_arrival-constant_rate1: {ENERGY_NOTE}" in table.notes
    assert [row[0] for row in table.rows][:3] == [
        "serve_arrival-poisson_rate1", "serve_arrival-poisson_rate2",
        "serve_arrival-poisson_rate-inf",
    ]  # fmt: skip


def test_knee_is_the_highest_rate_meeting_the_attainment(tmp_path: Path) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good)
    view = _view(llem.report(study, console=QUIET))
    knees = _knees(view)
    assert knees["load.arrival=poisson"] == ["2 req/s", "4 (steady state)", "0.95"]
    assert knees["load.arrival=constant"] == ["none", "—", "—"]  # 0.8 at best
    table = knee_table(view)
    assert table is not None and "none: no load of the line reaches it" in table.notes

    lenient = _view(llem.report(study, slo_attainment=0.5, console=QUIET))
    knees = _knees(lenient)
    assert knees["load.arrival=poisson"][0] == "inf (all at once)"  # 0.5 at inf reaches 0.5
    assert knees["load.arrival=constant"][:2] == ["2 req/s", "6 (steady state)"]
    assert DEFAULT_SLO_ATTAINMENT == 0.9


def test_knee_at_inf_when_every_rate_meets_the_slo(tmp_path: Path) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, lambda config, cycle: 1.0)
    view = _view(llem.report(study, console=QUIET))
    for line in view.groups[0].lines:
        assert line.knee is not None and line.knee.point is not None
        assert math.isinf(line.knee.point.load)
    table = knee_table(view)
    assert table is not None and all(row[2] == "inf (all at once)" for row in table.rows)
    assert table.notes == []  # no line without a knee to explain


def test_knee_uses_the_mean_over_cycles(tmp_path: Path) -> None:
    """0.85 and 0.95 average to 0.9 (in floating point, 0.8999999999999999): it counts."""
    study = write_serving_study(
        tmp_path, SERVING_STUDY, lambda config, cycle: (0.85, 0.95)[cycle], n_cycles=2
    )
    knees = _knees(_view(llem.report(study, console=QUIET)))
    assert knees["load.arrival=poisson"][0] == "inf (all at once)"
    assert knees["load.arrival=poisson"][2].startswith("0.9 ± ")


def test_no_slo_no_knee_and_no_goodput_columns(tmp_path: Path) -> None:
    without = {**SERVING_STUDY, "load": {"mode": "rate"}}
    study = write_serving_study(tmp_path, without, lambda config, cycle: None)
    view = _view(llem.report(study, console=QUIET))
    assert not view.has_slo and knee_table(view) is None
    assert "good fraction" not in serving_table(view).headers


def test_concurrency_sweep_plots_against_the_cap(tmp_path: Path) -> None:
    study = write_serving_study(
        tmp_path, POOL_STUDY, lambda config, cycle: POOL_GOOD[config.load.max_concurrency or 0]
    )
    view = _view(llem.report(study, console=QUIET))
    (group,) = view.groups
    assert group.load_label == "max concurrency" and group.mode == "concurrency"
    (line,) = group.lines
    assert [p.load for p in line.points] == [1, 4, 8]
    assert _knees(view)["all"][0] == "4 in flight"
    assert [row[1] for row in serving_table(view).rows] == [
        "1 in flight", "4 in flight", "8 in flight"
    ]  # fmt: skip


def test_html_has_the_serving_section_and_figures(tmp_path: Path) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good)
    pool = write_serving_study(
        tmp_path, POOL_STUDY, lambda config, cycle: POOL_GOOD[config.load.max_concurrency or 0]
    )
    page = tmp_path / "report.html"
    llem.report([study, pool], html=page, console=QUIET)
    text = page.read_text(encoding="utf-8")
    assert '<h2 id="serving">Serving under load</h2>' in text
    assert "SLO knee per line" in text and "whole window" in text
    serving = text[text.index('id="serving"') : text.index("(Pareto)")]
    assert serving.count('class="figure llem-figure"') == 2  # one per study
    assert "Serving under load: serve" in serving and "Serving under load: pool" in serving
    assert '"inf (all at once)"' in serving  # the tick, not dropped
    assert "max concurrency" in serving and "attainment 0.9" in serving
    # each caption counts its own study's cycles: 6 rates × arrivals, 3 caps
    assert "short_window (6/6 cycles)" in serving and "short_window (3/3 cycles)" in serving
    assert not re.search(r"https?://", text)


def test_offline_reports_have_no_serving_view(written: Written, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    outcome = llem.report(written.study, html=page, console=QUIET)
    assert outcome.serving is None
    assert "Serving under load" not in page.read_text(encoding="utf-8")


def test_cli_slo_attainment(tmp_path: Path) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(study)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert re.search(r"load\.arrival=poisson\s*│\s*2 req/s", result.output)
    result = runner.invoke(
        app, ["report", str(study), "--slo-attainment", "0.5"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"load\.arrival=constant\s*│\s*2 req/s", result.output)
    result = runner.invoke(app, ["report", str(study), "--slo-attainment", "1.5"])
    assert result.exit_code == 2 and "slo_attainment" in result.output
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        llem.report(study, slo_attainment=0, console=QUIET)
    help_text = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "250"}).output
    assert f"(default {DEFAULT_SLO_ATTAINMENT:g})" in help_text  # the library's default
