"""Every table of `llem run`, `llem report` and `llem config` shows every value whole at any
width from 60 columns up, piped or not (#18 item 10): one table where it fits, else the
columns split over several tables, else one block per row (reporting/layout.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from report_fixtures import (
    DURATION_S,
    SERVING_STUDY,
    arrival_good,
    make_result,
    records,
    serving_metrics,
    write_serving_study,
    write_study_of,
)
from rich.console import Console
from typer.testing import CliRunner

import llenergymeasure as llem
from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.cli import app
from llenergymeasure.cli.display import result_table
from llenergymeasure.cli.study_display import print_study, study_table
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.reporting.layout import Column, FittedTable
from llenergymeasure.reporting.tables import (
    TableData,
    attribution_tables,
    comparison_table,
    denominator_table,
    serving_tables,
    summary_table,
)
from llenergymeasure.results.models import EnergyAttribution, EnergyDistribution, ExperimentResult
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.study import load_study_result

WIDTHS = (60, 80, 200)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)  # seven configurations
N_CYCLES = 3
BOX = "┃│┏┡└┗┣┠╇╈"


def words(output: str) -> set[str]:
    """The output's whitespace-separated words, table borders removed; a block's ``header:``
    label also counts as the header's last word."""
    found = set(re.split(rf"[\s{BOX}]+", output))
    return found | {word.removesuffix(":") for word in found}


def cells_of(tables: Iterable[TableData]) -> list[str]:
    """Every title, header, cell and note of the tables."""
    cells: list[str] = []
    for table in tables:
        cells += [table.title, *table.headers, *table.notes]
        cells += [cell for row in table.rows for cell in row]
    return cells


def assert_every_value_whole(output: str, cells: Sequence[str], width: int) -> None:
    """Each word of each cell is a word of the output; nothing cut with "…"; no table line is
    wider than the console."""
    shown = words(output)
    missing = sorted({word for cell in cells for word in cell.split() if word not in shown})
    assert not missing, f"cropped or split at {width} columns: {missing[:10]}"
    assert "…" not in output
    table_lines = [line for line in output.splitlines() if line[:1] in BOX]
    assert table_lines, "no table drawn"  # the rows are checked above, in whatever layout
    assert all(len(line) <= width for line in table_lines)


def rendered(print_to: Console) -> str:
    return print_to.export_text()


def attribution(cycle: int) -> EnergyAttribution:
    return EnergyAttribution(
        model="tokens in flight", energy_j=15.0 + cycle, prefill_energy_j=5.0,
        decode_energy_j=9.0 + cycle, overhead_energy_j=1.0, prompt_tokens=40, decode_tokens=12,
        energy_per_prompt_token_j=0.125, energy_per_decode_token_j=(9.0 + cycle) / 12,
        per_request=EnergyDistribution(n=4, mean_j=3.75, median_j=3.5, p95_j=5.0 + cycle,
                                       min_j=2.0, max_j=6.0 + cycle),
    )  # fmt: skip


def label(batch_size: int) -> str:
    return f"smollm2-135m_pytorch_bs{batch_size}"


def seven_configuration_run(
    index: int, cycle: int, config: ExperimentConfig
) -> tuple[ExperimentResult, list[RequestRecord]]:
    """Figures with many digits: energy falls with the batch size, latency rises; an idle
    baseline on every run and an attribution on every other configuration."""
    energy_j = 789.123 / (index + 1) * (1 + 0.037 * cycle)
    reqs = records(4, 0.7899 + 0.1123 * index + 0.0131 * cycle)
    adjusted_j = energy_j * 0.61
    result = make_result(config, energy_j, reqs)
    baseline = {"energy_adjusted_j": adjusted_j, "baseline_power_w": energy_j * 0.39 / DURATION_S}
    metrics = compute_metrics(reqs, DURATION_S, energy_j, MemoryReading(None, "t"), adjusted_j)
    update = {"energy": result.energy.model_copy(update=baseline), "metrics": metrics}
    if index % 2 == 0:
        update["attribution"] = attribution(cycle)
    return result.model_copy(update=update), reqs


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study of seven configurations × three cycles."""
    configs = [
        ExperimentConfig(model="tiny", name=label(bs), pytorch={"batch_size": bs})
        for bs in BATCH_SIZES
    ]
    root = tmp_path_factory.mktemp("widths")
    return write_study_of(root / "seven", configs, N_CYCLES, seven_configuration_run)


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving study (two arrival processes × three rates, SLOs) with two cycles."""
    return write_serving_study(tmp_path_factory.mktemp("serve"), SERVING_STUDY, arrival_good, 2)


def report_tables(outcome: llem.Report) -> list[TableData]:
    assert outcome.comparison is not None
    return [
        summary_table(outcome.configurations),
        denominator_table(outcome.configurations),
        comparison_table(outcome.comparison),
        *serving_tables(outcome.serving),
        *attribution_tables(outcome.attribution),
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_of_seven_configurations_shows_every_value(seven: Path, width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    labels = [label(1), label(64)]
    outcome = llem.report(seven, compare_labels=labels, console=console)

    output = rendered(console)
    tables = report_tables(outcome)
    assert len(tables) == 5  # summary, denominators, comparison, per request, per phase
    assert_every_value_whole(output, cells_of(tables), width)
    for bs in BATCH_SIZES:
        assert label(bs) in words(output)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_serving_report_shows_every_value(serving: Path, width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    first, second = ("serve_arrival-poisson_rate1", "serve_arrival-constant_rate-inf")
    outcome = llem.report(serving, compare_labels=[first, second], console=console)

    tables = report_tables(outcome)
    assert len(tables) == 6  # summary, denominators, comparison, serving, knee, attribution
    assert_every_value_whole(rendered(console), cells_of(tables), width)


@pytest.mark.parametrize("columns", ["60", "80", None])  # None: piped, rich picks 80
def test_llem_report_piped_or_narrow_shows_every_value(seven: Path, columns: str | None) -> None:
    result = CliRunner().invoke(app, ["report", str(seven)], env={"COLUMNS": columns})

    assert result.exit_code == 0, result.output
    outcome = llem.report(seven, console=Console(quiet=True))
    tables = [summary_table(outcome.configurations), denominator_table(outcome.configurations)]
    assert_every_value_whole(result.output, cells_of(tables), int(columns or 80))


def run_result() -> ExperimentResult:
    """A serving run with SLOs, an idle baseline and an attribution: every row the table has."""
    config = ExperimentConfig(
        model="smollm2-135m", name="a_long_experiment_name_for_the_run_table",
        load={"mode": "rate", "request_rate": 4.0, "max_concurrency": 8,
              "slo": {"ttft_ms": 200}},
    )  # fmt: skip
    result, _ = seven_configuration_run(0, 1, config)
    return result.model_copy(
        update={"serving": serving_metrics(config, 0.9), "attribution": attribution(1)}
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_llem_run_table_shows_every_value(width: int) -> None:
    shown = run_result()
    console = Console(width=width, record=True, color_system=None)
    table = result_table(shown)
    console.print(table)  # print_result's warning lines are cut on purpose (#18 item 8)

    cells = [table.title, *(cell for row in table.rows for cell in row)]
    assert_every_value_whole(rendered(console), cells, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_llem_run_study_table_shows_every_value(seven: Path, width: int) -> None:
    study = load_study_result(seven)
    console = Console(width=width, record=True, color_system=None)
    print_study(console, study)

    table = study_table(study)
    cells = [table.title, *(c.header for c in table.columns)]
    cells += [cell for row in table.rows for cell in row]
    assert len(table.rows) == len(BATCH_SIZES)
    assert_every_value_whole(rendered(console), cells, width)


def test_a_table_too_wide_is_split_with_its_first_column_repeated() -> None:
    columns = [Column("name"), *(Column(f"figure {i}") for i in range(6))]
    rows = [[f"row_{r}", *(f"{r * 1000 + i}.123456" for i in range(6))] for r in range(7)]
    console = Console(width=60, record=True, color_system=None)
    console.print(FittedTable("a title long enough to wrap " * 4, columns, rows))

    output = rendered(console)
    assert output.count("┏") == 2  # two tables of three figures each
    assert all(output.count(f"row_{r}") == 2 for r in range(7))
    assert_every_value_whole(output, [cell for row in rows for cell in row], 60)
    assert max(len(line) for line in output.splitlines()) <= 60  # the title wraps too


def test_a_split_repeats_every_key_column() -> None:
    columns = [Column("configuration"), Column("energy"), *(Column(f"J {i}") for i in range(4))]
    rows = [[name, kind, *(f"{i}.123456 ± 0.0123" for i in range(4))]
            for name in ("bs1", "bs8") for kind in ("gross", "idle-adjusted")]  # fmt: skip
    console = Console(width=60, record=True, color_system=None)
    console.print(FittedTable("t", columns, rows, keys=2))

    output = rendered(console)
    tables = output.count("┏")
    assert tables == 4  # one figure beside the two keys in 60 columns
    assert output.count("idle-adjusted") == 2 * tables  # both rows of each table say which
    assert_every_value_whole(output, [cell for row in rows for cell in row], 60)


def test_a_table_whose_first_column_and_one_other_do_not_fit_becomes_blocks() -> None:
    rows = [["a_name_of_thirty_characters___", "a_figure_of_thirty_characters_"]]
    console = Console(width=40, record=True, color_system=None)
    console.print(FittedTable("t", [Column("name"), Column("figure")], rows))

    assert rendered(console).split() == ["t", rows[0][0], "figure:", rows[0][1]]


@pytest.mark.parametrize("width", range(30, 121, 3))
def test_every_word_is_shown_whole_at_any_width(width: int) -> None:
    columns = [Column("configuration"), Column("J/token"), Column("output tokens/s")]
    columns += [Column("energy method", wrap=True), Column("notes", wrap=True, own_line=True)]
    rows = [
        ["smollm2_bs1", "0.01234 ± 0.0056", "1234.5", "nvml, zeus (estimate)", "a short note"],
        ["smollm2_bs64", "0.5", "12.25 ± 3.1", "codecarbon", "a longer note that has to wrap"],
    ]
    console = Console(width=width, record=True, color_system=None)
    console.print(FittedTable("title", columns, rows))

    output = rendered(console)
    assert_words_whole(output, [cell for row in rows for cell in row])
    assert max(len(line) for line in output.splitlines()) <= width


def assert_words_whole(output: str, cells: Sequence[str]) -> None:
    shown = words(output)
    assert {word for cell in cells for word in cell.split()} <= shown
    assert "…" not in output
