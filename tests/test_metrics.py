"""Metrics are computed from raw samples: percentiles of the pooled samples, energy per unit."""

from __future__ import annotations

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
