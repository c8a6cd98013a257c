"""Failed requests in the files: requests.parquet's `error` column (and files without it), and a
study's error rate per cycle (results.parquet) and over cycles, with latencies pooled over the
completed requests only."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.io import load_requests, write_experiment, write_requests
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import summary_stats
from llenergymeasure.results.study import StudyEntry, aggregate_study, study_table

RECORDS = [
    RequestRecord(0, 12, 2, 0.0, [0.2, 0.3], [1, 1], 0.3),
    RequestRecord(1, 9, 1, 0.1, [0.15], [1], 0.4, error="stream cut mid-way"),
    RequestRecord(2, 9, 0, 0.2, [], [], 0.25, error="HTTP 500: Internal Server Error"),
]


def test_the_error_column_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "requests.parquet"
    write_requests(RECORDS, path)

    assert load_requests(path) == RECORDS
    assert pq.read_table(path).column("error").to_pylist() == [
        None,
        "stream cut mid-way",
        "HTTP 500: Internal Server Error",
    ]


def test_a_requests_file_from_before_the_error_column_loads_every_request_as_completed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests.parquet"
    write_requests(RECORDS, path)
    pq.write_table(pq.read_table(path).drop_columns(["error"]), path)

    loaded = load_requests(path)
    assert [r.error for r in loaded] == [None] * 3
    assert [r.chunk_times_s for r in loaded] == [r.chunk_times_s for r in RECORDS]


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CONFIG = ExperimentConfig(model="tiny", name="s").model_dump(mode="json")


def completed(index: int, ttft_s: float) -> RequestRecord:
    return RequestRecord(index, 10, 2, 0.0, [ttft_s, ttft_s + 0.1], [1, 1], ttft_s + 0.1)


# Cycle 0: 3 of 4 completed; cycle 1: 2 of 4 (two failed fast, their 0.01 s TTFT left out).
CYCLES = [
    [completed(0, 0.2), completed(1, 0.3), completed(2, 0.4),
     RequestRecord(3, 10, 0, 0.0, [], [], 1.0, error="timeout")],
    [completed(0, 0.5), completed(1, 0.6),
     RequestRecord(2, 10, 1, 0.0, [0.01], [1], 0.02, error="HTTP 500"),
     RequestRecord(3, 10, 1, 0.0, [0.01], [1], 0.02, error="HTTP 500")],
]  # fmt: skip


def make_result(records: list[RequestRecord]) -> ExperimentResult:
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig.model_validate(CONFIG),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0,
        measurement_method="nvml",
        model=ModelInfo(model_id="tiny", source_kind="test", dtype="fp16", device="cpu"),
        environment=EnvironmentSnapshot(python="3", os="test", machine="test"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=2.0),
        energy=EnergyMetrics(method="nvml", energy_total_j=10.0),
        metrics=compute_metrics(records, 2.0, 10.0, MemoryReading(None, "test")),
    )


def test_a_study_gives_the_error_rate_per_cycle_and_over_cycles(tmp_path: Path) -> None:
    entries = []
    for cycle, records in enumerate(CYCLES):
        run = write_experiment(make_result(records), records, tmp_path / "runs", f"s_c{cycle}")
        entries.append(StudyEntry(
            experiment_index=0, cycle_index=cycle, experiment_name="s", status="done",
            result_dir=f"runs/{run.name}",
        ))  # fmt: skip
    study = aggregate_study(tmp_path, "s", "h", {}, [CONFIG], entries, T0, T0)
    (aggregate,) = study.experiments

    assert aggregate.error_rate == summary_stats([0.25, 0.5])
    assert aggregate.ttft_pooled.n == 5 and aggregate.ttft_pooled.min_s == pytest.approx(0.2)
    assert aggregate.e2e_latency_pooled.min_s == pytest.approx(0.3)
    assert aggregate.itl_pooled.n == 5
    assert aggregate.requests_per_s == summary_stats([1.5, 1.0])  # completed / 2 s
    rows = study_table(study, tmp_path).to_pylist()
    assert [r["error_rate"] for r in rows] == [0.25, 0.5]
    assert [r["n_failed_requests"] for r in rows] == [1, 2]
    assert [r["n_requests"] for r in rows] == [3, 2]
