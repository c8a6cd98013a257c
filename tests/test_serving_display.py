"""The run table's serving block: what it shows, and that nothing is cropped at 80 columns."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from rich.console import Console

from llenergymeasure.cli.display import result_table
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    Goodput,
    LatencyStats,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
    ServingMetrics,
    SteadyState,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
STEADY = SteadyState(
    start_s=2.5, end_s=42.5, duration_s=40.0, rule="rate", requests_completed=150,
    output_tokens=19200, output_tokens_per_s=480.0, mean_in_flight=7.2, energy_j=12000.0,
    energy_uncertainty_j=150.0, energy_per_output_token_j=0.625, energy_per_request_j=80.0,
)  # fmt: skip
SERVING = ServingMetrics(
    mode="rate", requested_rate_rps=4.0, scheduled_rate_rps=3.87, achieved_rate_rps=3.85,
    max_concurrency=8, submit_lag=LatencyStats(n=160, p99_s=0.002), peak_in_flight=8,
    mean_in_flight=6.4, steady_state=STEADY,
    goodput=Goodput(targets_ms={"ttft_ms": 200.0, "tpot_ms": 50.0}, good_requests=144,
                    good_fraction=0.9, goodput_rps=3.2, energy_per_good_request_j=95.5),
)  # fmt: skip


def result(serving: ServingMetrics | None, **load: object) -> ExperimentResult:
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig(model="some-org/some-model", load=load or {}),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0,
        measurement_method="nvml",
        model=ModelInfo(model_id="m", source_kind="test", dtype="bf16", device="cuda:0"),
        environment=EnvironmentSnapshot(python="3", os="linux", machine="x86_64"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=45.0),
        energy=EnergyMetrics(method="nvml", scope=["gpu:0"], energy_total_j=13000.0),
        metrics=PerformanceMetrics(
            duration_s=45.0, n_requests=160, total_input_tokens=1000, total_output_tokens=20000
        ),
        serving=serving,
    )


def render(shown: ExperimentResult, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(result_table(shown))
    return console.export_text()


RATE = {"mode": "rate", "request_rate": 4.0, "max_concurrency": 8, "slo": {"ttft_ms": 200}}


def test_a_serving_run_shows_load_rates_in_flight_steady_state_and_goodput() -> None:
    text = " ".join(render(result(SERVING, **RATE), 200).split())
    for shown in (
        "load │ rate, poisson, max_concurrency 8",
        "requested 4 · scheduled 3.87 · achieved 3.85 req/s",
        "in flight │ peak 8 · mean 6.4",
        "40 s of 45 s (2.5–42.5 s) · 150 requests · 480 tok/s",
        "0.625 J · 80 ± 1 J",  # ± the bound per request, 150 J / 150
        "3.2 req/s · 90.0% good · 95.5 J/good request (ttft ≤ 200 ms, tpot ≤ 50 ms)",
    ):
        assert shown in text


@pytest.mark.parametrize(
    ("serving", "load"),
    [
        (SERVING, RATE),
        (
            SERVING.model_copy(update={"steady_state": None, "steady_state_note": "x " * 60}),
            RATE,
        ),
        (
            SERVING.model_copy(update={"steady_state": STEADY.model_copy(
                update={"energy_j": None, "energy_note": "the 'codecarbon' sampler reports "
                        "only a total for the window, not a timeline"})}),
            RATE,
        ),
    ],
)  # fmt: skip
def test_nothing_is_cropped_at_80_columns(serving: ServingMetrics, load: dict[str, object]) -> None:
    shown = result(serving, **load)
    narrow = render(shown, 80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "…" not in narrow
    words = lambda text: re.findall(r"[^\s│┃─━┏┓┗┛┡┩└┘┌┐]+", text)  # noqa: E731
    assert sorted(words(narrow)) == sorted(words(render(shown, 200)))


def test_a_concurrency_run_shows_only_its_achieved_rate_and_a_missing_steady_state() -> None:
    serving = ServingMetrics(
        mode="concurrency", achieved_rate_rps=2.5, max_concurrency=4, peak_in_flight=3,
        mean_in_flight=2.1, steady_state_note="the requests in flight never reached 4",
    )  # fmt: skip
    text = " ".join(render(result(serving, mode="concurrency", max_concurrency=4), 200).split())
    assert "arrival rate │ achieved 2.5 req/s" in text
    assert "steady state │ — (the requests in flight never reached 4)" in text
    assert "goodput" not in text


def test_an_offline_run_shows_no_serving_block_and_its_goodput_when_it_has_slos() -> None:
    assert "in flight" not in render(result(None), 200)
    offline = ServingMetrics(mode="offline", goodput=SERVING.goodput)
    text = " ".join(render(result(offline, slo={"ttft_ms": 200}), 200).split())
    assert "load │ offline" in text and "goodput │ 3.2 req/s" in text
    assert "in flight" not in text and "steady state" not in text
