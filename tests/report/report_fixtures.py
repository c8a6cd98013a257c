"""Result directories written through the real writers, with known figures: a study of two
configurations × three cycles (one failed), and standalone experiments with telemetry."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import build_study_config
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    Goodput,
    MeasurementWarning,
    ModelInfo,
    PhaseTimings,
    ServingMetrics,
    SteadyState,
    TelemetrySummary,
)
from llenergymeasure.results.records import RequestRecord, TelemetrySample
from llenergymeasure.results.study import StudyEntry, aggregate_study, write_study_result

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
DURATION_S = 4.0
# Study: per configuration (batch size), per cycle, the energy in joules (None: failed cycle).
STUDY_ENERGY_J: dict[int, list[float | None]] = {1: [30.0, 33.0, 36.0], 8: [12.0, None, 13.0]}
GPU_ENV = EnvironmentSnapshot(
    python="3.11",
    os="Linux",
    machine="x86_64",
    cpu_model="Test CPU",
    libraries={"torch": "2.13.0", "vllm": None},
    gpus=[{"index": 0, "name": "Test GPU", "driver_version": "555.1", "sm_clock_mhz": 1400}],
)


@dataclass(frozen=True)
class Written:
    """A study directory and two standalone experiment directories."""

    study: Path
    experiment_a: Path
    experiment_b: Path


def records(n: int, ttft_s: float) -> list[RequestRecord]:
    """``n`` requests of 4 tokens each: first after ``ttft_s``, then every 50 ms."""
    out = []
    for index in range(n):
        times = [ttft_s + index * 0.01 + k * 0.05 for k in range(4)]
        out.append(RequestRecord(index, 10, 4, 0.0, times, [1, 1, 1, 1], times[-1]))
    return out


def make_result(
    config: ExperimentConfig, energy_j: float, reqs: list[RequestRecord], **extra: Any
) -> ExperimentResult:
    """A result whose metrics come from the harness's own computation."""
    return ExperimentResult(
        llem_version="test",
        config=config,
        measurement_config_hash="0123456789abcdef",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=DURATION_S),
        measurement_method="nvml",
        model=ModelInfo(model_id="tiny", source_kind="test", dtype="fp16", device="cuda:0"),
        environment=GPU_ENV,
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=DURATION_S),
        energy=EnergyMetrics(
            method="nvml", scope=["gpu:0"], energy_total_j=energy_j, duration_s=DURATION_S,
            uncertainty_j=0.5, sample_count=40,
        ),
        metrics=compute_metrics(reqs, DURATION_S, energy_j, MemoryReading(None, "test"), None),
        telemetry=TelemetrySummary(interval_ms=100, n_samples=3, mean_power_w=energy_j / 4),
        warnings=[MeasurementWarning(code="short_window", message="window was 4 s (< 10 s)")],
        **extra,
    )  # fmt: skip


def timeline(power_w: float) -> list[TelemetrySample]:
    """Two GPUs through warmup, baseline and the window, every 0.5 s."""
    phases = [("warmup", -3.0), ("baseline", -1.5), ("window", 0.0), ("after", DURATION_S)]
    samples = []
    for (phase, start), (_, end) in zip(phases, [*phases[1:], ("", DURATION_S + 0.5)], strict=True):
        t = start
        while t < end:
            for device in ("gpu:0", "gpu:1"):
                samples.append(
                    TelemetrySample(t, device, phase, power_w, 50.0 + t, 1000.0, 90.0, 1400.0)
                )
            t += 0.5
    return samples


RunFigures = Callable[
    [int, int, ExperimentConfig], "tuple[ExperimentResult, list[RequestRecord]] | None"
]
"""(experiment index, cycle, config) -> the run's result and records, or None for a failed cycle."""


def write_study_of(
    folder: Path, configs: list[ExperimentConfig], n_cycles: int, run: RunFigures
) -> Path:
    """A study directory of ``configs`` × ``n_cycles``, each run's figures from ``run``."""
    entries = []
    for index, config in enumerate(configs):
        for cycle in range(n_cycles):
            entry = StudyEntry(
                experiment_index=index, cycle_index=cycle, experiment_name=config.name or ""
            )
            made = run(index, cycle, config)
            if made is None:
                entry.status, entry.error = "failed", "RuntimeError: boom"
            else:
                result, reqs = made
                energy_j = result.energy.energy_total_j or 0.0
                written = write_experiment(
                    result, reqs, folder / "runs", f"{config.name}_c{cycle}",
                    timeline(energy_j / DURATION_S),
                )  # fmt: skip
                entry.status, entry.result_dir = "done", f"runs/{written.name}"
            entries.append(entry)
    study = aggregate_study(
        folder, folder.name, "hash", {"n_cycles": n_cycles},
        [c.model_dump(mode="json") for c in configs], entries, T0, T0 + timedelta(hours=1),
    )  # fmt: skip
    write_study_result(study, folder)
    return folder


def write_study(root: Path) -> Path:
    """A 2-configuration × 3-cycle study directory (one failed entry), aggregated."""
    configs = [
        ExperimentConfig(model="tiny", name=f"demo_bs{bs}", pytorch={"batch_size": bs})
        for bs in STUDY_ENERGY_J
    ]

    def run(
        index: int, cycle: int, config: ExperimentConfig
    ) -> tuple[ExperimentResult, list[RequestRecord]] | None:
        energy_j = list(STUDY_ENERGY_J.values())[index][cycle]
        if energy_j is None:
            return None
        reqs = records(4, 0.1 * (index + 1) + 0.01 * cycle)
        return make_result(config, energy_j, reqs), reqs

    return write_study_of(root / "study", configs, 3, run)


def write_all(tmp_path: Path) -> Written:
    """The study, plus experiments 'solo_a' (no telemetry) and 'solo_b' (with telemetry)."""
    solo = tmp_path / "solo"
    a_reqs, b_reqs = records(2, 0.3), records(2, 0.2)
    a = write_experiment(
        make_result(ExperimentConfig(model="tiny", name="solo_a"), 20.0, a_reqs), a_reqs, solo,
        "solo_a",
    )  # fmt: skip
    b = write_experiment(
        make_result(ExperimentConfig(model="tiny", name="solo_b"), 10.0, b_reqs), b_reqs, solo,
        "solo_b", timeline(2.5),
    )  # fmt: skip
    return Written(write_study(tmp_path), a, b)


INF = math.inf
# Serving study: per arrival process (a line), per request rate, the good fraction under the SLO.
SERVING_GOOD: dict[str, dict[float, float]] = {
    "poisson": {1.0: 1.0, 2.0: 0.95, INF: 0.5},  # knee at 2 req/s
    "constant": {1.0: 0.8, 2.0: 0.6, INF: 0.1},  # no rate reaches 0.9
}
SERVING_STUDY = {
    "name": "serve", "model": "tiny", "n": 8,
    "load": {"mode": "rate", "slo": {"ttft_ms": 200}},
    "sweep": {"load.arrival": list(SERVING_GOOD), "load.request_rate": [1, 2, "inf"]},
}  # fmt: skip
GoodFraction = Callable[[ExperimentConfig, int], "float | None"]
"""(config, cycle) -> the run's good fraction (None: no SLO)."""


def steady_j_per_request(config: ExperimentConfig) -> float:
    """The fixture's steady-state J/request: 2 × the rate (5 for inf), 1.5 × that for
    constant arrivals."""
    rate = min(config.load.request_rate or 5.0, 5.0)
    return 2.0 * rate * (1.5 if config.load.arrival == "constant" else 1.0)


ENERGY_NOTE = "the sampler reports only a total"


def serving_metrics(config: ExperimentConfig, good_fraction: float | None) -> ServingMetrics:
    """A serving run's figures: steady-state J/request from :func:`steady_j_per_request`,
    output tokens/s 10 × the rate (50 for inf), 8 requests. Constant arrivals have no steady
    state at a rate of inf, and no steady-state energy at 1 req/s (:data:`ENERGY_NOTE`)."""
    load = config.load
    rate = load.request_rate
    constant = load.arrival == "constant" and load.mode == "rate"
    no_energy = constant and rate == 1.0
    state = SteadyState(
        start_s=0.5, end_s=3.5, duration_s=3.0, rule="test", requests_completed=6,
        output_tokens=24, output_tokens_per_s=10 * min(rate or 5.0, 5.0), mean_in_flight=2.0,
        energy_j=None if no_energy else 12.0,
        energy_per_request_j=None if no_energy else steady_j_per_request(config),
        energy_per_output_token_j=None if no_energy else 0.5,
        energy_note=ENERGY_NOTE if no_energy else None,
    )  # fmt: skip
    goodput = None
    if good_fraction is not None:
        goodput = Goodput(
            targets_ms=load.slo.targets_ms() if load.slo else {},
            good_requests=round(8 * good_fraction), good_fraction=good_fraction,
            goodput_rps=good_fraction * 2.0,
            energy_per_good_request_j=3.0 / good_fraction if good_fraction else None,
        )  # fmt: skip
    return ServingMetrics(
        mode=load.mode, requested_rate_rps=rate, scheduled_rate_rps=rate,
        achieved_rate_rps=None if rate is None or math.isinf(rate) else 0.98 * rate,
        max_concurrency=load.max_concurrency, peak_in_flight=4, mean_in_flight=2.0,
        steady_state=None if constant and rate == INF else state, goodput=goodput,
    )  # fmt: skip


def write_serving_study(
    root: Path, study: dict[str, Any], good: GoodFraction, n_cycles: int = 1
) -> Path:
    """A study of ``study`` (a study file's mapping) with the figures of
    :func:`serving_metrics`; ``good`` gives each run's good fraction. Whole-window energy:
    40 J over 4 requests."""
    configs = build_study_config(copy.deepcopy(study), source="test").experiments_resolved

    def run(
        index: int, cycle: int, config: ExperimentConfig
    ) -> tuple[ExperimentResult, list[RequestRecord]]:
        reqs = records(4, 0.05 * (index + 1))
        serving = serving_metrics(config, good(config, cycle))
        return make_result(config, 40.0, reqs, serving=serving), reqs

    return write_study_of(root / str(study["name"]), configs, n_cycles, run)


def arrival_good(config: ExperimentConfig, cycle: int) -> float | None:
    """The good fraction of :data:`SERVING_GOOD` for the configuration (every cycle)."""
    return SERVING_GOOD[config.load.arrival][config.load.request_rate or 0.0]
