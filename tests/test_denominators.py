"""Every energy denominator, raw and idle-adjusted, in the result and the `llem run` table;
negative per-domain idle-adjusted energy kept, with a note saying which domains and why; the
run table's energy per request and per phase (or why there is none)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from rich.console import Console

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.cli.display import result_table
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.energy import EnergyReading
from llenergymeasure.harness.baseline import Baseline
from llenergymeasure.harness.carbon import compute_co2
from llenergymeasure.harness.checks import energy_metrics
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.models import (
    EnergyAttribution,
    EnergyDistribution,
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
NO_CO2 = compute_co2(None, None, None)


def records() -> list[RequestRecord]:
    """Three requests: two completed (10 + 20 prompt tokens, 4 + 6 output), one failed."""
    return [
        RequestRecord(0, 10, 4, 0.0, [0.1, 0.2, 0.3, 0.4], [1] * 4, 0.4),
        RequestRecord(1, 20, 6, 0.0, [0.1 * k for k in range(1, 7)], [1] * 6, 0.6),
        RequestRecord(2, 30, 1, 0.0, [0.2], [1], 0.2, error="HTTP 500"),
    ]


def test_every_denominator_raw_and_adjusted_over_the_completed_requests() -> None:
    metrics = compute_metrics(records(), 2.0, 72.0, MemoryReading(None, "test"), 36.0)
    assert metrics.energy_per_output_token_j == pytest.approx(72.0 / 10)
    assert metrics.energy_per_output_token_adjusted_j == pytest.approx(36.0 / 10)
    assert metrics.energy_per_total_token_j == pytest.approx(72.0 / 40)  # (10 + 20) in, 10 out
    assert metrics.energy_per_total_token_adjusted_j == pytest.approx(36.0 / 40)
    assert metrics.energy_per_request_j == pytest.approx(36.0)
    assert metrics.energy_per_request_adjusted_j == pytest.approx(18.0)
    # 36 J per request = 36,000 J per 1,000 requests = 10 Wh
    assert metrics.energy_per_1k_requests_wh == pytest.approx(10.0)
    assert metrics.energy_per_1k_requests_adjusted_wh == pytest.approx(5.0)


def test_denominators_are_null_without_energy_or_without_completed_requests() -> None:
    metrics = compute_metrics(records(), 2.0, None, MemoryReading(None, "test"))
    assert metrics.energy_per_1k_requests_wh is None
    assert metrics.energy_per_1k_requests_adjusted_wh is None
    failed = [records()[2]]
    metrics = compute_metrics(failed, 2.0, 72.0, MemoryReading(None, "test"), 36.0)
    assert metrics.energy_per_1k_requests_wh is None and metrics.energy_per_request_j is None


def reading(ram_j: float) -> EnergyReading:
    """10 s over a CPU package (300 J, 30 W) and a RAM domain."""
    by_domain = {"cpu:package-0": 300.0, "dram:package-0": ram_j}
    return EnergyReading(
        "rapl", list(by_domain), sum(by_domain.values()), by_domain, 10.0, 100, notes=["rapl note"]
    )


BASELINE = Baseline(12.0, {"cpu:package-0": 10.0, "dram:package-0": 2.0}, 5.0, 1000.0, "rapl")


def test_negative_domain_is_kept_and_a_note_names_it_and_says_why() -> None:
    """The quickstart's case: the RAM domain drew 1.39 W in the window against a 2 W idle
    baseline, so its idle-adjusted energy is -6.1 J."""
    energy = energy_metrics(reading(13.9), BASELINE, NO_CO2, now=1010.0)
    assert energy.energy_adjusted_by_domain_j["dram:package-0"] == pytest.approx(-6.1)
    assert energy.energy_adjusted_by_domain_j["cpu:package-0"] == pytest.approx(200.0)
    assert energy.energy_adjusted_j == pytest.approx(313.9 - 120.0)
    assert energy.notes[0] == "rapl note"  # the sampler's notes stay first
    (note,) = energy.notes[1:]
    assert "negative for dram:package-0 -6.1 J" in note
    assert "idle baseline 2 W, window mean 1.39 W" in note
    assert "cpu:package-0" not in note
    assert "not clipped to 0" in note and "baseline was taken under other conditions" in note


def test_no_note_when_every_domain_is_at_or_above_its_baseline() -> None:
    energy = energy_metrics(reading(20.0), BASELINE, NO_CO2, now=1010.0)
    assert energy.energy_adjusted_by_domain_j["dram:package-0"] == pytest.approx(0.0)
    assert energy.notes == ["rapl note"]


def result(**update: object) -> ExperimentResult:
    """A run of 16 requests, 160 in / 320 out tokens, 96 J (48 J adjusted) over 8 s."""
    reqs = [RequestRecord(i, 10, 20, 0.0, [0.5], [20], 0.5) for i in range(16)]
    shown = ExperimentResult(
        llem_version="test",
        config=ExperimentConfig(model="some-org/some-model"),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0,
        measurement_method="nvml",
        model=ModelInfo(model_id="m", source_kind="test", dtype="bf16", device="cuda:0"),
        environment=EnvironmentSnapshot(python="3", os="linux", machine="x86_64"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=8.0),
        energy=EnergyMetrics(
            method="nvml", scope=["gpu:0"], energy_total_j=96.0, energy_adjusted_j=48.0,
            baseline_power_w=6.0, baseline_from_cache=False,
        ),
        metrics=compute_metrics(reqs, 8.0, 96.0, MemoryReading(None, "test"), 48.0),
        energy_timeline_file="energy_timeline.parquet",
    )  # fmt: skip
    return shown.model_copy(update=update)


ATTRIBUTION = EnergyAttribution(
    model="tokens in flight", energy_j=96.0, prefill_energy_j=24.0, decode_energy_j=64.0,
    overhead_energy_j=8.0, prefill_steps=2, decode_steps=19, prompt_tokens=160,
    decode_tokens=304, energy_per_prompt_token_j=0.15, energy_per_decode_token_j=64 / 304,
    per_request=EnergyDistribution(n=16, mean_j=6.0, median_j=5.5, p95_j=9.25, min_j=4.0,
                                   max_j=11.0),
)  # fmt: skip


def table_text(shown: ExperimentResult, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(result_table(shown))
    return console.export_text()


def render(shown: ExperimentResult) -> str:
    return " ".join(table_text(shown, 200).split())


def test_run_table_shows_every_denominator_raw_and_adjusted() -> None:
    text = render(result())
    assert "energy / output token │ 0.3 J (adjusted 0.15 J)" in text  # the headline row
    assert "energy / token in+out │ 0.2 J (adjusted 0.1 J)" in text  # 96 J / 480 tokens
    assert "energy / request │ 6 J (adjusted 3 J)" in text
    assert "energy / 1,000 requests │ 1.667 Wh (adjusted 0.8333 Wh)" in text  # 6 J × 1000 / 3600


def test_run_table_shows_energy_per_request_and_the_prefill_decode_split() -> None:
    text = render(result(attribution=ATTRIBUTION))
    assert "energy / request, attributed │ mean 6 · p50 5.5 · p95 9.25 J (16 requests)" in text
    assert "prefill · decode · overhead │ 24 J (25%) · 64 J (67%) · 8 J (8%)" in text
    assert "J / prompt · decode token │ 0.15 J · 0.2105 J" in text


def test_run_table_says_why_a_run_has_no_attribution() -> None:
    text = render(result(energy_timeline_file=None, energy=result().energy.model_copy(
        update={"method": "codecarbon"})))  # fmt: skip
    assert (
        "energy / request, phase │ — (the codecarbon sampler reports only the window's total, "
        "no energy timeline to attribute over)"
    ) in text
    unmeasured = result(energy=EnergyMetrics(method="null"))
    assert "energy / request, phase" not in render(unmeasured)


def test_run_table_rows_fit_80_columns_without_losing_a_figure() -> None:
    shown = result(attribution=ATTRIBUTION)
    narrow = table_text(shown, 80)
    assert max(len(line) for line in narrow.splitlines()) <= 80 and "…" not in narrow
    words = lambda text: re.findall(r"[^\s│┃─━┏┓┗┛┡┩└┘┌┐]+", text)  # noqa: E731
    assert sorted(words(narrow)) == sorted(words(table_text(shown, 200)))
