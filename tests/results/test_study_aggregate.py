"""Study aggregation from real result directories: statistics over cycles, pooled percentiles,
failed entries, study_result.json and results.parquet."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ResultsError
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results import StudyResult, load_study_result
from llenergymeasure.results.io import RESULT_FILE, write_experiment
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    Goodput,
    ModelInfo,
    PhaseTimings,
    ServingMetrics,
    SteadyState,
)
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import summary_stats
from llenergymeasure.results.study import (
    STUDY_RESULT_FILE,
    STUDY_TABLE_FILE,
    StudyEntry,
    aggregate_study,
    study_table,
    write_study_result,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
CONFIGS = [
    ExperimentConfig(
        model="tiny", name="a", precision="fp16", chat_template=False, pytorch={"batch_size": 1}
    ).model_dump(mode="json"),
    ExperimentConfig(
        model="tiny", name="b", precision="bf16", pytorch={"batch_size": 8}
    ).model_dump(mode="json"),
]
# Per cycle: energy (J) and each request's TTFT (s). Cycle 2 of "a" has one slow first token, so
# the pooled p95 differs from the mean of per-cycle p95s.
CYCLES: dict[int, list[tuple[float, list[float]]]] = {
    0: [(10.0, [0.1, 0.2, 0.3]), (12.0, [0.1, 0.2, 0.4]), (14.0, [0.1, 0.2, 3.0])],
    1: [(20.0, [0.5, 0.6, 0.7]), (0.0, []), (22.0, [0.5, 0.7, 0.9])],
}
FAILED = (1, 1)
ITL_S = 0.05


def make_records(ttfts: list[float]) -> list[RequestRecord]:
    """Requests submitted at 0 that stream 3 tokens: first after ``ttft``, then every ITL_S."""
    records = []
    for index, ttft in enumerate(ttfts):
        times = [ttft + k * ITL_S for k in range(3)]
        records.append(RequestRecord(index, 10, 3, 0.0, times, [1, 1, 1], times[-1]))
    return records


def make_result(config: dict[str, Any], energy_j: float, records: list[RequestRecord]) -> Any:
    duration_s = 4.0
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig.model_validate(config),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=duration_s),
        measurement_method="nvml",
        model=ModelInfo(model_id="tiny", source_kind="test", dtype="fp16", device="cpu"),
        environment=EnvironmentSnapshot(python="3", os="test", machine="test"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=duration_s),
        energy=EnergyMetrics(
            method="nvml", energy_total_j=energy_j, energy_adjusted_j=energy_j - 1.0
        ),
        metrics=compute_metrics(
            records, duration_s, energy_j, MemoryReading(None, "test"), energy_j - 1.0
        ),
    )


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """A study directory with 2 experiments × 3 cycles written as real result directories."""
    folder = tmp_path / "study"
    for experiment, cycles in CYCLES.items():
        for cycle, (energy_j, ttfts) in enumerate(cycles):
            if (experiment, cycle) == FAILED:
                continue
            records = make_records(ttfts)
            result = make_result(CONFIGS[experiment], energy_j, records)
            write_experiment(result, records, folder / "runs", f"{'ab'[experiment]}_c{cycle}")
    (folder / "manifest.json").write_text("{}")
    return folder


def make_entries(folder: Path) -> list[StudyEntry]:
    runs = sorted(p.name for p in (folder / "runs").iterdir())
    entries = []
    for experiment in CYCLES:
        for cycle in range(3):
            entry = StudyEntry(
                experiment_index=experiment,
                cycle_index=cycle,
                experiment_name="ab"[experiment],
                started_at=T0 + timedelta(minutes=cycle),
            )
            if (experiment, cycle) == FAILED:
                entry.status, entry.error, entry.exit_code = "failed", "RuntimeError: boom", 1
            else:
                entry.status = "done"
                entry.result_dir = next(
                    f"runs/{r}" for r in runs if r.startswith(f"{'ab'[experiment]}_c{cycle}")
                )
            entries.append(entry)
    return entries


def aggregate(folder: Path) -> StudyResult:
    return aggregate_study(
        folder,
        "demo",
        "abc123",
        {"n_cycles": 3, "cycle_order": "interleaved"},
        CONFIGS,
        make_entries(folder),
        T0,
        T0 + timedelta(hours=1),
    )


def test_statistics_over_cycles(study_dir: Path) -> None:
    study = aggregate(study_dir)
    a, b = study.experiments
    assert (a.experiment_name, a.n_cycles_done, b.experiment_name, b.n_cycles_done) == (
        "a",
        3,
        "b",
        2,
    )
    assert a.config == CONFIGS[0]
    assert a.energy_total_j == summary_stats([10.0, 12.0, 14.0])
    assert a.energy_total_j.mean == pytest.approx(12.0) and a.energy_total_j.std == pytest.approx(2)
    assert a.energy_total_j.ci95_half_width == pytest.approx(4.302652730 * 2 / np.sqrt(3))
    assert a.energy_adjusted_j.mean == pytest.approx(11.0)
    # 9 output tokens per cycle
    assert a.energy_per_output_token_j.mean == pytest.approx(12.0 / 9)
    assert a.energy_per_output_token_adjusted_j.mean == pytest.approx(11.0 / 9)
    assert a.output_tokens_per_s.mean == pytest.approx(9 / 4.0) and a.output_tokens_per_s.std == 0
    assert a.requests_per_s.mean == pytest.approx(3 / 4.0)
    assert a.ttft_mean_s.n == 3 and a.itl_mean_s.mean == pytest.approx(ITL_S)
    assert a.ttft_mean_s.mean is not None
    assert a.e2e_mean_s.mean == pytest.approx(a.ttft_mean_s.mean + 2 * ITL_S)
    # the failed cycle does not count
    assert b.energy_total_j == summary_stats([20.0, 22.0])


def test_latency_percentiles_are_pooled_from_raw_samples(study_dir: Path) -> None:
    a = aggregate(study_dir).experiments[0]
    ttfts = [t for _, cycle in CYCLES[0] for t in cycle]
    assert a.ttft_pooled.n == 9
    assert a.ttft_pooled.p95_s == pytest.approx(np.percentile(ttfts, 95))
    assert a.ttft_pooled.p99_s == pytest.approx(np.percentile(ttfts, 99))
    assert a.ttft_pooled.median_s == pytest.approx(np.median(ttfts))
    mean_of_p95s = np.mean([np.percentile(cycle, 95) for _, cycle in CYCLES[0]])
    assert a.ttft_pooled.p95_s != pytest.approx(mean_of_p95s)
    assert a.itl_pooled.n == 18 and a.itl_pooled.p95_s == pytest.approx(ITL_S)
    assert a.e2e_latency_pooled.max_s == pytest.approx(3.0 + 2 * ITL_S)


def test_failed_entries_and_files_are_listed(study_dir: Path) -> None:
    study = aggregate(study_dir)
    assert [(e.experiment_index, e.cycle_index) for e in study.failed] == [FAILED]
    assert study.failed[0].error == "RuntimeError: boom" and study.skipped == []
    assert len(study.entries) == 6
    for entry in study.entries:
        if entry.result_dir is not None:
            assert entry.result_dir in study.files
            assert f"{entry.result_dir}/{RESULT_FILE}" in study.files
            assert f"{entry.result_dir}/requests.parquet" in study.files
    assert "manifest.json" in study.files
    assert all(not Path(f).is_absolute() for f in study.files)


def test_results_parquet_has_one_row_per_experiment_and_cycle(study_dir: Path) -> None:
    study = aggregate(study_dir)
    write_study_result(study, study_dir)
    frame = pd.read_parquet(study_dir / STUDY_TABLE_FILE)
    assert len(frame) == 6
    assert list(frame[["experiment_index", "cycle_index"]].itertuples(index=False)) == [
        (e, c) for e in (0, 1) for c in range(3)
    ]
    assert list(frame["status"]) == ["done"] * 4 + ["failed", "done"]
    assert list(frame["config.pytorch.batch_size"]) == [1, 1, 1, 8, 8, 8]
    assert list(frame["config.precision"]) == ["fp16"] * 3 + ["bf16"] * 3
    assert "config.energy.sampler" in frame.columns
    # a field that is False in one experiment and "auto" in another becomes text
    assert set(frame["config.chat_template"]) == {"false", "auto"}
    assert frame["energy_total_j"].tolist()[:4] == [10.0, 12.0, 14.0, 20.0]
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom" and pd.isna(failed["result_dir"])
    for column in ("energy_total_j", "energy_per_output_token_j", "ttft_p95_s", "duration_s"):
        assert pd.isna(failed[column])
    assert pd.isna(failed["measurement_method"]) and pd.isna(failed["is_estimate"])
    done = frame.iloc[2]
    assert done["ttft_p95_s"] == pytest.approx(np.percentile([0.1, 0.2, 3.0], 95))
    assert done["itl_mean_s"] == pytest.approx(ITL_S)
    assert done["output_tokens_per_s"] == pytest.approx(9 / 4.0)
    assert done["input_tokens_per_s"] == pytest.approx(30 / 4.0)
    assert done["measurement_method"] == "nvml" and not done["is_estimate"]
    assert done["started_at"] == pd.Timestamp(T0 + timedelta(minutes=2))
    expected = {
        "energy_adjusted_j", "energy_per_output_token_j", "requests_per_s", "ttft_mean_s",
        "itl_p95_s", "e2e_mean_s", "duration_s",
    }  # fmt: skip
    assert expected <= set(frame.columns)


def test_study_table_types_survive_an_all_failed_experiment(study_dir: Path) -> None:
    study = aggregate(study_dir)
    for entry in study.entries:
        entry.status, entry.result_dir = "failed", None
    table = study_table(study, study_dir)
    assert table.num_rows == 6 and table.schema.field("energy_total_j").type == "double"
    assert table.column("energy_total_j").null_count == 6


def test_study_result_json_round_trips(study_dir: Path) -> None:
    study = aggregate(study_dir)
    path = write_study_result(study, study_dir)
    assert path == study_dir / STUDY_RESULT_FILE and study.output_dir == str(study_dir)
    assert {STUDY_RESULT_FILE, STUDY_TABLE_FILE} <= set(study.files)
    assert "output_dir" not in json.loads(path.read_text())
    assert not [p for p in study_dir.iterdir() if p.name.startswith(".")]  # no temp files left

    loaded = load_study_result(study_dir)
    assert loaded == study
    assert load_study_result(path) == study
    assert loaded.experiments[0].ttft_pooled == study.experiments[0].ttft_pooled
    assert loaded.failed[0].exit_code == 1


def test_study_result_tolerates_unknown_and_missing_fields(study_dir: Path) -> None:
    path = write_study_result(aggregate(study_dir), study_dir)
    data = json.loads(path.read_text())
    data["field_from_the_future"] = {"x": 1}
    data["experiments"][0]["new_metric_j"] = {"n": 3}
    del data["skipped"]
    del data["experiments"][0]["itl_mean_s"]
    path.write_text(json.dumps(data))
    loaded = load_study_result(path)
    assert loaded.skipped == [] and loaded.experiments[0].itl_mean_s.n == 0


def test_rewriting_replaces_the_study_files(study_dir: Path) -> None:
    study = aggregate(study_dir)
    write_study_result(study, study_dir)
    study.name = "renamed"
    write_study_result(study, study_dir)
    assert load_study_result(study_dir).name == "renamed"
    assert len(pd.read_parquet(study_dir / STUDY_TABLE_FILE)) == 6


def test_loading_a_missing_or_broken_study_is_a_results_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no study result"):
        load_study_result(tmp_path)
    (tmp_path / STUDY_RESULT_FILE).write_text("{not json")
    with pytest.raises(ResultsError, match="not a readable"):
        load_study_result(tmp_path)


def test_a_done_entry_without_its_result_is_a_results_error(study_dir: Path) -> None:
    entries = make_entries(study_dir)
    entries[0].result_dir = "runs/missing"
    with pytest.raises(ResultsError):
        aggregate_study(study_dir, "demo", "h", {}, CONFIGS, entries, T0, T0)


def test_an_experiment_without_done_cycles_has_empty_statistics(study_dir: Path) -> None:
    entries = [e for e in make_entries(study_dir) if e.experiment_index == 0]
    study = aggregate_study(study_dir, "demo", "h", {}, CONFIGS, entries, T0, T0)
    b = study.experiments[1]
    assert (b.experiment_name, b.n_cycles_done, b.energy_total_j.mean) == ("b", 0, None)
    assert b.ttft_pooled.n == 0


def test_config_columns_flatten_sections_and_keep_types(tmp_path: Path) -> None:
    configs: list[dict[str, Any]] = [
        {"backend": "pytorch", "pytorch": {"batch_size": 4, "extra": {}}, "temperature": None},
        {"backend": "other", "pytorch": None, "temperature": 0.7, "gpus": [0, 1]},
    ]
    entries = [
        StudyEntry(experiment_index=i, cycle_index=0, experiment_name=f"e{i}", status="skipped")
        for i in range(2)
    ]
    study = aggregate_study(tmp_path, "s", "h", {}, configs, entries, T0, T0)
    assert [e.cycle_index for e in study.skipped] == [0, 0]
    table = study_table(study, tmp_path)
    rows = table.to_pylist()
    assert "config.pytorch" not in table.column_names
    assert [r["config.pytorch.batch_size"] for r in rows] == [4, None]
    assert [r["config.pytorch.extra"] for r in rows] == ["{}", None]
    assert [r["config.temperature"] for r in rows] == [None, 0.7]
    assert [r["config.gpus"] for r in rows] == [None, "[0, 1]"]
    assert table.schema.field("config.pytorch.batch_size").type == "int64"
    assert [r["status"] for r in rows] == ["skipped", "skipped"]


SERVING_CONFIG = ExperimentConfig(
    model="tiny", name="s", load={"mode": "rate", "request_rate": 4.0, "slo": {"ttft_ms": 250}}
).model_dump(mode="json")
# Per cycle: steady-state J/request and J/output token, achieved rate, goodput, good fraction
SERVING_CYCLES = [(30.0, 3.0, 3.9, 2.0, 0.5), (34.0, 3.4, 4.1, 3.0, 0.75)]


def serving(cycle: tuple[float, float, float, float, float]) -> ServingMetrics:
    per_request_j, per_token_j, achieved_rps, goodput_rps, good_fraction = cycle
    steady = SteadyState(
        start_s=0.5, end_s=3.5, duration_s=3.0, rule="rate", energy_per_request_j=per_request_j,
        energy_per_output_token_j=per_token_j,
    )  # fmt: skip
    return ServingMetrics(
        mode="rate",
        requested_rate_rps=4.0,
        scheduled_rate_rps=4.2,
        achieved_rate_rps=achieved_rps,
        steady_state=steady,
        goodput=Goodput(goodput_rps=goodput_rps, good_fraction=good_fraction),
    )


def test_serving_figures_are_summarised_over_cycles_and_tabled_per_cycle(tmp_path: Path) -> None:
    entries = []
    for cycle, figures in enumerate(SERVING_CYCLES):
        records = make_records([0.1, 0.2, 0.3])
        result = make_result(SERVING_CONFIG, 10.0, records)
        result.serving = serving(figures)
        run = write_experiment(result, records, tmp_path / "runs", f"s_c{cycle}")
        entries.append(StudyEntry(
            experiment_index=0, cycle_index=cycle, experiment_name="s", status="done",
            result_dir=f"runs/{run.name}",
        ))  # fmt: skip
    study = aggregate_study(tmp_path, "s", "h", {}, [SERVING_CONFIG], entries, T0, T0)
    (aggregate,) = study.experiments

    assert aggregate.steady_state_energy_per_request_j == summary_stats([30.0, 34.0])
    assert aggregate.steady_state_energy_per_output_token_j.mean == pytest.approx(3.2)
    assert aggregate.achieved_rate_rps.mean == pytest.approx(4.0)
    assert aggregate.goodput_rps.mean == pytest.approx(2.5)
    assert aggregate.good_fraction.mean == pytest.approx(0.625)

    rows = study_table(study, tmp_path).to_pylist()
    assert [r["achieved_rate_rps"] for r in rows] == [3.9, 4.1]
    assert [r["scheduled_rate_rps"] for r in rows] == [4.2, 4.2]
    assert [r["steady_state_energy_per_request_j"] for r in rows] == [30.0, 34.0]
    assert [r["steady_state_duration_s"] for r in rows] == [3.0, 3.0]
    assert [r["goodput_rps"] for r in rows] == [2.0, 3.0]


def test_offline_cycles_have_no_serving_statistics(study_dir: Path) -> None:
    a = aggregate(study_dir).experiments[0]
    assert a.steady_state_energy_per_request_j.n == 0 and a.goodput_rps.mean is None
    assert pd.isna(study_table(aggregate(study_dir), study_dir).to_pandas()["goodput_rps"]).all()


def test_an_infinite_request_rate_keeps_the_swept_column_numeric(tmp_path: Path) -> None:
    configs = [
        ExperimentConfig(model="m", load={"mode": "rate", "request_rate": rate}).model_dump(
            mode="json"
        )
        for rate in (2.0, float("inf"))
    ]
    entries = [
        StudyEntry(experiment_index=i, cycle_index=0, experiment_name=f"e{i}", status="skipped")
        for i in range(2)
    ]
    study = aggregate_study(tmp_path, "s", "h", {}, configs, entries, T0, T0)
    column = "config.load.request_rate"
    table = study_table(study, tmp_path)
    assert table.schema.field(column).type == "double"
    assert table.column(column).to_pylist() == [2.0, float("inf")]

    write_study_result(study, tmp_path)  # JSON has no inf: written "Infinity", not null
    loaded = load_study_result(tmp_path)
    assert loaded.experiments[1].config["load"]["request_rate"] == "Infinity"
    assert study_table(loaded, tmp_path).column(column).to_pylist() == [2.0, float("inf")]
