"""`llem report` and llem.report: tables, comparisons, the HTML page, and the exit codes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from report_fixtures import Written
from rich.console import Console
from typer.testing import CliRunner

import llenergymeasure as llem
from llenergymeasure.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["report", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_table_ranked_by_j_per_token_with_warnings(written: Written) -> None:
    code, out = invoke(str(written.study), str(written.experiment_a))
    assert code == 0, out
    assert out.index("demo_bs8") < out.index("demo_bs1") < out.index("solo_a")
    assert "± " in out and "nvml" in out and "short_window" in out
    assert "warning (short_window): window was 4 s" in out
    assert "short_window means: the measured window was short" in out  # the code's meaning
    assert "failed demo_bs8 cycle 2: RuntimeError: boom" in out
    assert "B − A" not in out  # three configurations: no comparison unless asked


def test_two_configurations_are_compared_with_welch(written: Written) -> None:
    code, out = invoke(str(written.study))
    assert code == 0, out
    assert "A = demo_bs1 (3 cycles) against B = demo_bs8 (2 cycles)" in out
    assert re.search(r"J/token\s.*\byes \(p=", out)


def test_compare_picks_two_of_many_and_single_runs_get_no_test(written: Written) -> None:
    code, out = invoke(
        str(written.study), str(written.experiment_a), "--compare", "solo_a", "--compare",
        "demo_bs1",
    )  # fmt: skip
    assert code == 0, out
    assert "no statistical comparison possible: solo_a has 1" in out
    code, out = invoke(str(written.experiment_a), str(written.experiment_b))
    assert code == 0 and "no statistical comparison possible" in out


def test_html_is_one_offline_file_with_every_figure(written: Written, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    code, out = invoke(str(written.study), str(written.experiment_b), "--html", str(target))
    assert code == 0, out
    page = target.read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=""", page)  # nothing external
    # 3 Pareto plots, 1 sweep (batch size), 3 timelines (every configuration has telemetry)
    assert page.count('class="figure llem-figure"') == 7
    assert "Effect of pytorch.batch_size" in page and "Device timeline: solo_b" in page
    assert "Test GPU" in page and "driver 555.1" in page and "torch 2.13.0" in page
    assert "± 0.5 J per run" in page  # the sampler's uncertainty
    assert "<i>means: the measured window was short" in page  # a warning code's meaning
    assert f"report: {target}" in out.replace("\n", "")


def test_library_call_returns_the_figures(written: Written, tmp_path: Path) -> None:
    quiet = Console(quiet=True)
    outcome = llem.report([written.experiment_a, written.experiment_b], console=quiet)
    assert [c.label for c in outcome.configurations] == ["solo_b", "solo_a"]
    assert outcome.comparison is not None and outcome.html_path is None
    again = llem.report(outcome.results, html=tmp_path / "r.html", console=quiet)
    assert again.html_path == tmp_path / "r.html" and again.html_path.is_file()


def test_missing_path_and_empty_directory_exit_2(tmp_path: Path) -> None:
    code, out = invoke(str(tmp_path / "nope"))
    assert code == 2 and "no such file or directory" in out
    (tmp_path / "empty").mkdir()
    code, out = invoke(str(tmp_path / "empty"))
    assert code == 2 and "no results found" in out


def test_unknown_compare_label_exits_2(written: Written) -> None:
    code, out = invoke(str(written.study), "--compare", "demo_bs1", "--compare", "nope")
    assert code == 2 and "unknown configuration 'nope'" in out and "demo_bs8" in out


def test_html_without_plotly_exits_1_with_pip_advice(
    written: Written, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly -> ImportError
    code, out = invoke(str(written.study), "--html", str(tmp_path / "r.html"))
    assert code == 1
    assert "pip install 'llenergymeasure[report]'" in out.replace("\n", "")
    assert not (tmp_path / "r.html").exists()


def test_tables_need_only_pandas(written: Written, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    code, out = invoke(str(written.study))
    assert code == 0 and "demo_bs1" in out


def test_without_pandas_exit_1_with_pip_advice(
    written: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    code, out = invoke(str(written.study))
    assert code == 1
    assert "pip install 'llenergymeasure[report]'" in out.replace("\n", "")
