"""The HTML report's axes and whiskers (#18 items 11 and 12): quantities that cannot be
negative are drawn from zero, a 95% interval that would cross zero is cut there, marked, and the
caption says why (too few cycles); point labels stay inside the plot; a constant series gets an
axis from zero, not one magnifying noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from report_fixtures import (
    SERVING_STUDY,
    Written,
    arrival_good,
    make_result,
    records,
    write_serving_study,
    write_study_of,
)

import llenergymeasure as llem
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.reporting.api import serving_figures, sweep_figures
from llenergymeasure.reporting.context import gather_context
from llenergymeasure.reporting.figures import (
    CUT_NAME,
    PARETO_AXES,
    Figure,
    label_position,
    pareto_figure,
)
from llenergymeasure.reporting.serving import serving_view
from llenergymeasure.reporting.summary import ConfigurationSummary, summarise
from llenergymeasure.reporting.timeline import timeline_figure, y_axis
from llenergymeasure.results.models import ExperimentResult
from llenergymeasure.results.records import RequestRecord

# Per cycle: energy (J) and output tokens/s, far apart, so two cycles give intervals that
# reach below zero (t(0.975, 1) = 12.7).
ENERGY_J = (5.0, 60.0)
TOKENS_PER_S = (2.0, 40.0)


def two_cycle_run(
    index: int, cycle: int, config: ExperimentConfig
) -> tuple[ExperimentResult, list[RequestRecord]]:
    reqs = records(4, 0.1 * (index + 1))
    result = make_result(config, ENERGY_J[cycle] * (index + 1), reqs)
    speed = {"output_tokens_per_s": TOKENS_PER_S[cycle] * (index + 1)}
    return result.model_copy(update={"metrics": result.metrics.model_copy(update=speed)}), reqs


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory: pytest.TempPathFactory) -> list[ConfigurationSummary]:
    configs = [
        ExperimentConfig(model="tiny", name=f"weep_bs{bs}", pytorch={"batch_size": bs})
        for bs in (1, 4)
    ]
    root = tmp_path_factory.mktemp("axes")
    study = write_study_of(root / "two", configs, 2, two_cycle_run)
    return summarise(llem.load_results(study))


def layout_of(figure: Figure) -> dict[str, Any]:
    layout: dict[str, Any] = figure.figure.to_plotly_json()["layout"]
    return layout


def whiskered(figure: Figure) -> list[Any]:
    return [t for t in figure.figure.data if t.name != CUT_NAME and t.error_y.array is not None]


def assert_cut_at_zero(figure: Figure, key: str = "error_y") -> None:
    """Every lower whisker of ``key`` ends at or above zero, at least one was cut there, and a
    cut marker sits at zero under each cut one."""
    coordinate = "y" if key == "error_y" else "x"
    cut_points = []
    for trace in whiskered(figure):
        error = getattr(trace, key)
        values = getattr(trace, coordinate)
        for value, down, up in zip(values, error.arrayminus, error.array, strict=True):
            assert value - down >= 0
            if down < up:
                assert value - down == pytest.approx(0.0)
                cut_points.append(value)
    assert cut_points, "no interval was cut"
    symbol = "triangle-down-open" if key == "error_y" else "triangle-left-open"
    marks = [t for t in figure.figure.data if t.name == CUT_NAME and t.marker.symbol == symbol]
    at_zero = [v for t in marks for v in getattr(t, coordinate)]
    assert len(at_zero) == len(cut_points) and all(v == 0.0 for v in at_zero)


def test_pareto_axes_start_at_zero_and_whiskers_are_cut_there(
    two_cycles: list[ConfigurationSummary],
) -> None:
    figure = pareto_figure(two_cycles, PARETO_AXES[0], "")
    assert figure is not None

    layout = layout_of(figure)
    assert layout["xaxis"]["rangemode"] == "tozero" and layout["yaxis"]["rangemode"] == "tozero"
    assert_cut_at_zero(figure, "error_y")  # J/token
    assert_cut_at_zero(figure, "error_x")  # output tokens/s
    assert "cut at zero" in figure.caption
    assert "too few cycles (n=2" in figure.caption and "t(0.975, 1) = 12.7" in figure.caption


def test_sweep_panels_start_at_zero_and_whiskers_are_cut_there(
    two_cycles: list[ConfigurationSummary],
) -> None:
    (figure,) = sweep_figures(two_cycles, "")

    layout = layout_of(figure)
    assert layout["yaxis"]["rangemode"] == "tozero" and layout["yaxis2"]["rangemode"] == "tozero"
    assert_cut_at_zero(figure)
    marks = [t for t in figure.figure.data if t.name == CUT_NAME]
    assert {t.yaxis for t in marks} == {"y", "y2"}  # each in its own panel
    assert "too few cycles (n=2" in figure.caption


def test_an_interval_above_zero_is_not_cut_and_not_mentioned(written: Written) -> None:
    summaries = summarise(llem.load_results(written.study))  # 3 cycles, tight intervals
    figure = pareto_figure(summaries, PARETO_AXES[0], "")
    assert figure is not None

    for trace in whiskered(figure):
        assert list(trace.error_y.arrayminus) == list(trace.error_y.array)
    assert not [t for t in figure.figure.data if t.name == CUT_NAME]
    assert "cut at zero" not in figure.caption


def test_serving_panels_start_at_zero_and_labels_are_not_clipped(tmp_path: Path) -> None:
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good, 2)
    view = serving_view(summarise(llem.load_results(study)), 0.9)
    (figure,) = serving_figures(view)

    layout = layout_of(figure)
    y_axes = [key for key in layout if key.startswith("yaxis")]
    assert len(y_axes) == 6 and all(layout[key]["rangemode"] == "tozero" for key in y_axes)
    knees = [t for t in figure.figure.data if str(t.name).startswith("knee of")]
    assert knees and all(t.cliponaxis is False for t in knees)


def test_pareto_labels_point_into_the_plot_and_are_not_clipped(
    two_cycles: list[ConfigurationSummary],
) -> None:
    figure = pareto_figure(two_cycles, PARETO_AXES[0], "")
    assert figure is not None

    labelled = [t for t in figure.figure.data if t.text is not None]
    assert labelled and all(t.cliponaxis is False for t in labelled)
    points = [(0.0, 0.0), (10.0, 1.0), (100.0, 0.2), (20.0, 9.0)]
    assert label_position((100.0, 0.2), points) == "top left"  # right edge: label to the left
    assert label_position((20.0, 9.0), points) == "bottom right"  # top: label below
    assert label_position((10.0, 1.0), points) == "top right"


def test_a_constant_series_is_drawn_from_zero(written: Written) -> None:
    summaries = summarise(llem.load_results(written.experiment_b))
    (run,) = gather_context(summaries).results["solo_b"]
    shown = timeline_figure("solo_b", run, "")
    assert isinstance(shown, Figure)

    layout = layout_of(shown)
    axis_of = {t.name: t.yaxis for t in shown.figure.data if t.name and " " in t.name}
    axes = {name: layout["yaxis" + axis.removeprefix("y")] for name, axis in axis_of.items()}
    assert axes["gpu:0 clock (MHz)"]["range"] == pytest.approx([0, 1540])  # 1400 MHz throughout
    assert axes["gpu:0 power (W)"]["range"] == pytest.approx([0, 2.75])  # 2.5 W throughout
    temperature = axes["gpu:0 temperature (°C)"]  # 47-54.5 °C: fitted, not from 0
    assert temperature["rangemode"] == "nonnegative" and "range" not in temperature


@pytest.mark.parametrize(
    ("values", "axis"),
    [
        ([2595.5, 2596.2, 2597.0], {"range": [0.0, 2597.0 * 1.1]}),  # the CPU clock of #18
        ([80.0, 83.0], {"range": [0.0, 83.0 * 1.1]}),  # within 5 % of its value
        ([40.0, 60.0], {"rangemode": "nonnegative"}),
        ([0.0, 0.0], {"range": [0.0, 1.0]}),
        ([], {"range": [0.0, 1.0]}),
    ],
)
def test_a_near_constant_series_gets_an_axis_from_zero(
    values: list[float], axis: dict[str, Any]
) -> None:
    assert y_axis(values) == axis
