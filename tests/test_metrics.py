"""Metrics are computed from raw samples: percentiles of the pooled samples, energy per unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import latency_stats


def record(index: int, submit: float, times: list[float], n_in: int = 10) -> RequestRecord:
    return RequestRecord(index, n_in, len(times), submit, times, [1] * len(times), times[-1])


def test_latency_stats_match_numpy_on_raw_samples() -> None:
    samples = [0.1, 0.2, 0.3, 0.4, 1.0]
    stats = latency_stats(samples)
    assert stats.n == 5 and stats.mean_s == pytest.approx(0.4)
    assert stats.p95_s == pytest.approx(np.percentile(samples, 95))
    assert latency_stats([]).mean_s is None


def test_metrics_pool_itl_samples_instead_of_averaging_percentiles() -> None:
    records = [record(0, 0.0, [1.0, 1.1, 1.2]), record(1, 0.0, [2.0, 3.0])]
    metrics = compute_metrics(records, 4.0, 50.0, MemoryReading(100.0, "test"))
    assert metrics.itl.n == 3
    assert metrics.itl.median_s == pytest.approx(0.1)
    assert metrics.ttft.mean_s == pytest.approx(1.5)
    assert metrics.total_output_tokens == 5 and metrics.output_tokens_per_s == pytest.approx(1.25)
    assert metrics.input_tokens_per_s == pytest.approx(5.0)
    assert metrics.requests_per_s == pytest.approx(0.5)
    assert metrics.energy_per_output_token_j == pytest.approx(10.0)
    assert metrics.energy_per_request_j == pytest.approx(25.0)
    assert metrics.e2e_latency.max_s == pytest.approx(3.0)


def test_no_energy_means_null_per_unit_energy() -> None:
    metrics = compute_metrics([record(0, 0.0, [1.0])], 1.0, None, MemoryReading(None, "n/a"))
    assert metrics.energy_per_output_token_j is None and metrics.energy_per_request_j is None


def test_tpot_and_energy_per_total_token() -> None:
    """TPOT is (e2e - TTFT) / (output tokens - 1) per request; a one-token request has none.
    J per total token divides by input + output tokens."""
    records = [
        RequestRecord(0, 10, 5, 0.0, [0.5, 0.6, 0.7, 0.8, 0.9], [1] * 5, end_s=0.9),
        RequestRecord(1, 6, 1, 0.0, [0.4], [1], end_s=0.4),
    ]
    assert records[0].tpot_s == pytest.approx(0.1)
    assert records[1].tpot_s is None
    metrics = compute_metrics(records, 1.0, 44.0, MemoryReading(None, "cpu"), 22.0)
    assert metrics.tpot.n == 1 and metrics.tpot.mean_s == pytest.approx(0.1)
    assert metrics.energy_per_total_token_j == pytest.approx(44.0 / 22)
    assert metrics.energy_per_total_token_adjusted_j == pytest.approx(1.0)


def test_requests_parquet_carries_tpot(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from llenergymeasure.results.io import load_requests, write_requests

    records = [RequestRecord(0, 3, 3, 0.0, [0.2, 0.3, 0.5], [1, 1, 1], end_s=0.5)]
    write_requests(records, tmp_path / "requests.parquet")
    assert pq.read_table(tmp_path / "requests.parquet").column("tpot_s").to_pylist() == [
        pytest.approx(0.15)
    ]
    assert load_requests(tmp_path / "requests.parquet") == records
