"""Failed requests (RequestRecord.error): counted, their rate and reasons reported, and left out
of every figure, as `vllm bench serve` leaves them out: latencies, tokens, throughput, energy
per unit and FLOPs count only the completed requests."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from llenergymeasure.backends.base import MemoryReading, ProgressCallback
from llenergymeasure.cli.display import result_table
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.flops import compute_flops_metrics
from llenergymeasure.harness import run_experiment
from llenergymeasure.harness.baseline import BaselineCache
from llenergymeasure.harness.checks import failed_request_warnings
from llenergymeasure.harness.metrics import compute_metrics, failure_reasons
from llenergymeasure.load import LoadPlan
from llenergymeasure.reporting.loading import load_results
from llenergymeasure.reporting.summary import summarise
from llenergymeasure.results.io import load_requests, write_experiment
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.testing.fake_backend import ScriptedBackend
from llenergymeasure.testing.fake_energy import ConstantPowerSampler, FakeClock

MEMORY = MemoryReading(None, "test")


def done(index: int, n_in: int, times: list[float]) -> RequestRecord:
    """A completed request submitted at 0, one token per chunk."""
    return RequestRecord(index, n_in, len(times), 0.0, times, [1] * len(times), times[-1])


def failed(
    index: int, error: str, times: Sequence[float] = (), end_s: float = 5.0
) -> RequestRecord:
    """A failed request that received ``times`` chunks (one token each) before failing."""
    return RequestRecord(index, 30, len(times), 0.0, list(times), [1] * len(times), end_s,
                         error=error)  # fmt: skip


# Two completed requests and three failed ones: a stream cut after a fast start (its TTFT,
# 0.01 s, and end-to-end 9 s would pull every percentile) and two HTTP 500s with no output.
MIXED = [
    done(0, 10, [0.2, 0.3, 0.4]),
    failed(1, "stream cut mid-way", [0.01, 0.02, 0.03, 9.0], end_s=9.0),
    done(2, 20, [0.5, 0.7]),
    failed(3, "HTTP 500"),
    failed(4, "HTTP 500"),
]


def test_only_completed_requests_count_in_latency_tokens_throughput_and_energy() -> None:
    metrics = compute_metrics(MIXED, 2.0, 100.0, MEMORY, energy_adjusted_j=60.0)

    assert (metrics.n_requests, metrics.n_failed, metrics.n_submitted) == (2, 3, 5)
    assert metrics.error_rate == pytest.approx(0.6)
    assert metrics.failure_reasons == {"HTTP 500": 2, "stream cut mid-way": 1}
    assert (metrics.total_input_tokens, metrics.total_output_tokens) == (30, 5)
    assert metrics.output_tokens_per_s == pytest.approx(2.5)
    assert metrics.input_tokens_per_s == pytest.approx(15.0)
    assert metrics.requests_per_s == pytest.approx(1.0)
    assert metrics.energy_per_request_j == pytest.approx(50.0)  # 100 J / 2 completed
    assert metrics.energy_per_request_adjusted_j == pytest.approx(30.0)
    assert metrics.energy_per_output_token_j == pytest.approx(20.0)
    assert metrics.energy_per_total_token_j == pytest.approx(100.0 / 35)
    assert (metrics.ttft.n, metrics.ttft.min_s, metrics.ttft.max_s) == (2, 0.2, 0.5)
    assert metrics.itl.n == 3 and metrics.itl.max_s == pytest.approx(0.2)
    assert metrics.tpot.n == 2 and metrics.tpot.mean_s == pytest.approx(0.15)
    assert metrics.e2e_latency.n == 2 and metrics.e2e_latency.max_s == pytest.approx(0.7)


def test_without_failures_the_error_rate_is_zero_and_nothing_is_left_out() -> None:
    metrics = compute_metrics([r for r in MIXED if not r.failed], 2.0, 100.0, MEMORY)

    assert (metrics.n_requests, metrics.n_failed, metrics.error_rate) == (2, 0, 0.0)
    assert metrics.failure_reasons == {}
    assert failed_request_warnings(metrics) == []


def test_every_request_failed_gives_empty_figures_not_a_crash() -> None:
    records = [r for r in MIXED if r.failed]
    metrics = compute_metrics(records, 2.0, 100.0, MEMORY, energy_adjusted_j=60.0)

    assert (metrics.n_requests, metrics.n_failed, metrics.error_rate) == (0, 3, 1.0)
    assert (metrics.total_input_tokens, metrics.total_output_tokens) == (0, 0)
    assert metrics.output_tokens_per_s == 0.0 and metrics.requests_per_s == 0.0
    assert metrics.energy_per_request_j is None and metrics.energy_per_output_token_j is None
    assert metrics.energy_per_total_token_adjusted_j is None
    assert metrics.ttft.n == 0 and metrics.ttft.mean_s is None
    assert metrics.e2e_latency.p95_s is None
    (warning,) = failed_request_warnings(metrics)
    assert warning.message.startswith("3 of 3 requests failed (100.0%)")
    assert compute_metrics(records, 0.0, None, MEMORY).output_tokens_per_s is None


def test_no_requests_at_all_have_a_zero_error_rate() -> None:
    metrics = compute_metrics([], 1.0, 10.0, MEMORY)
    assert (metrics.n_requests, metrics.n_failed, metrics.error_rate) == (0, 0, 0.0)


def test_the_three_most_common_reasons_are_kept_with_their_counts() -> None:
    errors = ["timeout"] * 3 + ["HTTP 503"] * 2 + ["malformed event", "HTTP 500"]
    records = [failed(i, e) for i, e in enumerate(errors)] + [done(9, 5, [0.1])]

    assert failure_reasons(records) == {"timeout": 3, "HTTP 503": 2, "malformed event": 1}
    assert list(failure_reasons(records)) == ["timeout", "HTTP 503", "malformed event"]
    metrics = compute_metrics(records, 1.0, None, MEMORY)
    assert metrics.failure_reasons_text() == (
        "timeout (3); HTTP 503 (2); malformed event (1); 1 for other reasons"
    )


def test_the_warning_gives_the_count_the_rate_and_the_reasons() -> None:
    (warning,) = failed_request_warnings(compute_metrics(MIXED, 2.0, 100.0, MEMORY))

    assert warning.code == "requests_failed" and warning.meaning
    assert warning.message.startswith(
        "3 of 5 requests failed (60.0%): HTTP 500 (2); stream cut mid-way (1)."
    )
    assert "count only the 2 completed" in warning.message


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_result(metrics: PerformanceMetrics) -> ExperimentResult:
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig(model="some-org/some-model"),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0,
        measurement_method="nvml",
        model=ModelInfo(model_id="m", source_kind="test", dtype="bf16", device="cuda:0"),
        environment=EnvironmentSnapshot(python="3", os="linux", machine="x86_64"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=2.0),
        energy=EnergyMetrics(method="nvml", scope=["gpu:0"], energy_total_j=100.0),
        metrics=metrics,
    )


def render(shown: ExperimentResult, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(result_table(shown))
    return console.export_text()


def test_the_run_table_has_a_failed_requests_line_only_when_some_failed() -> None:
    text = " ".join(render(make_result(compute_metrics(MIXED, 2.0, 100.0, MEMORY)), 200).split())
    assert "failed requests │ 3 of 5 (60.0%) — HTTP 500 (2); stream cut mid-way (1)" in text
    assert "requests · tokens in/out │ 2 · 30/5" in text

    completed_only = compute_metrics([r for r in MIXED if not r.failed], 2.0, 100.0, MEMORY)
    assert "failed requests" not in render(make_result(completed_only), 200)


def words(text: str) -> list[str]:
    """The words of a rendered table, without its borders."""
    return re.findall(r"[^\s│┃─━┏┓┗┛┡┩└┘┌┐]+", text)


def test_the_failed_requests_line_is_not_cropped_at_80_columns() -> None:
    reasons = [
        "HTTP 503 Service Unavailable from http://127.0.0.1:8000/v1/completions",
        "the stream ended after 17 chunks without a [DONE] event",
        "no first byte within timeout_s 30 s",
        "malformed event",
    ]
    records = [failed(i, reason) for i, reason in enumerate(reasons * 2)] + [done(9, 5, [0.1])]
    shown = make_result(compute_metrics(records, 2.0, 100.0, MEMORY))

    narrow = render(shown, 80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "…" not in narrow
    assert sorted(words(narrow)) == sorted(words(render(shown, 200)))
    assert "2 for other reasons" in " ".join(narrow.split())


def test_old_results_load_with_no_failures() -> None:
    data = make_result(compute_metrics(MIXED[:1], 2.0, 100.0, MEMORY)).model_dump(mode="json")
    for key in ("n_failed", "error_rate", "failure_reasons"):
        del data["metrics"][key]

    metrics = ExperimentResult.model_validate(data).metrics
    assert (metrics.n_failed, metrics.error_rate, metrics.failure_reasons) == (0, 0.0, {})


def test_the_report_frame_has_the_error_rate_and_pools_only_completed_latencies(
    tmp_path: Path,
) -> None:
    result = make_result(compute_metrics(MIXED, 2.0, 100.0, MEMORY))
    write_experiment(result, MIXED, tmp_path, "run")

    frame = load_results(tmp_path)
    assert frame["n_failed_requests"].tolist() == [3]
    assert frame["error_rate"].tolist() == [pytest.approx(0.6)]
    assert frame["n_requests"].tolist() == [2]
    (summary,) = summarise(frame)
    assert (summary.ttft.n, summary.ttft.min_s) == (2, 0.2)
    assert summary.itl.n == 3


# The harness, end to end: a backend that records failed requests among completed ones.
ARCHITECTURE = {
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128,
    "vocab_size": 1000,
}  # fmt: skip


class FailingBackend(ScriptedBackend):
    """Serves prompts one after another, one token per 0.5 s of the fake clock; every
    request whose index is odd fails with HTTP 500 after its first token."""

    details: ClassVar[Mapping[str, Any]] = {"architecture": ARCHITECTURE}

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        assert output_lengths is None, "this fake generates fixed lengths only"
        records = []
        for index, _ in enumerate(prompts):
            submit = self.clock()
            n = 1 if index % 2 else 4
            times = [self.clock.advance(0.5) for _ in range(n)]
            record = RequestRecord(index, 10, n, submit, times, [1] * n, times[-1])
            records.append(replace(record, error="HTTP 500") if index % 2 else record)
        return records


def test_a_run_with_failed_requests_reports_them_and_counts_only_completed_work(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    config = ExperimentConfig.model_validate(
        {"model": "m", "n": 4, "max_output_tokens": 4, "warmup": {"n_warmup": 0}}
    )

    def sleep(seconds: float) -> None:
        clock.advance(seconds)

    run = run_experiment(
        config, backend=FailingBackend(clock),
        sampler_factory=lambda: ConstantPowerSampler(clock, 100.0),
        clock=clock, sleep=sleep, telemetry_sources=[],
        baseline_cache=BaselineCache(tmp_path / "b.json"),
    )  # fmt: skip
    result = run.result

    assert (result.metrics.n_requests, result.metrics.n_failed) == (2, 2)
    assert result.metrics.total_output_tokens == 8
    assert result.metrics.energy_per_request_j == pytest.approx(100.0 * 10 * 0.5 / 2)
    assert "requests_failed" in [w.code for w in result.warnings]
    completed = [r for r in run.records if not r.failed]
    expected = compute_flops_metrics(ARCHITECTURE, completed, 5.0, None, "fp32", None)
    everything = compute_flops_metrics(ARCHITECTURE, run.records, 5.0, None, "fp32", None)
    assert result.flops is not None and result.flops.flops_total == expected.flops_total
    assert expected.flops_total != everything.flops_total
    out = write_experiment(result, run.records, tmp_path, "run")
    assert [r.error for r in load_requests(out)] == [None, "HTTP 500", None, "HTTP 500"]
