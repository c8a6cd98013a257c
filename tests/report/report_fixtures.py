"""Result directories written through the real writers, with known figures: a study of two
configurations × three cycles (one failed), and standalone experiments with telemetry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    MeasurementWarning,
    ModelInfo,
    PhaseTimings,
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


def write_study(root: Path) -> Path:
    """A 2-configuration × 3-cycle study directory (one failed entry), aggregated."""
    folder = root / "study"
    configs = [
        ExperimentConfig(model="tiny", name=f"demo_bs{bs}", pytorch={"batch_size": bs})
        for bs in STUDY_ENERGY_J
    ]
    entries = []
    for index, (config, energies) in enumerate(zip(configs, STUDY_ENERGY_J.values(), strict=True)):
        for cycle, energy_j in enumerate(energies):
            entry = StudyEntry(
                experiment_index=index, cycle_index=cycle, experiment_name=config.name or ""
            )
            if energy_j is None:
                entry.status, entry.error = "failed", "RuntimeError: boom"
            else:
                reqs = records(4, 0.1 * (index + 1) + 0.01 * cycle)
                run = write_experiment(
                    make_result(config, energy_j, reqs), reqs, folder / "runs",
                    f"{config.name}_c{cycle}", timeline(energy_j / DURATION_S),
                )  # fmt: skip
                entry.status, entry.result_dir = "done", f"runs/{run.name}"
            entries.append(entry)
    study = aggregate_study(
        folder, "demo", "hash", {"n_cycles": 3}, [c.model_dump(mode="json") for c in configs],
        entries, T0, T0 + timedelta(hours=1),
    )  # fmt: skip
    write_study_result(study, folder)
    return folder


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
