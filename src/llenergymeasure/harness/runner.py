"""One experiment, end to end: preflight, snapshot, load, warmup, measured window, metrics.

Only inference runs inside the measured window; loading, warmup, prompt encoding of the
dataset and result writing happen outside it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from llenergymeasure._version import __version__
from llenergymeasure.backends import Backend, RequestRecord, create_backend
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets import load_prompts, validate_source
from llenergymeasure.energy import EnergyReading, EnergySampler, create_sampler
from llenergymeasure.errors import LLEMError
from llenergymeasure.harness.checks import energy_metrics, measurement_warnings
from llenergymeasure.harness.environment import snapshot_environment
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.harness.observer import RunObserver, SilentObserver
from llenergymeasure.results.models import (
    ExperimentResult,
    PhaseTimings,
)

Clock = Callable[[], float]


@dataclass
class ExperimentRun:
    """A finished experiment: the result and its raw per-request records."""

    result: ExperimentResult
    records: list[RequestRecord]


@dataclass
class _Window:
    records: list[RequestRecord]
    reading: EnergyReading
    duration_s: float


def run_experiment(
    config: ExperimentConfig,
    *,
    backend: Backend | None = None,
    sampler: EnergySampler | None = None,
    clock: Clock = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    observer: RunObserver | None = None,
) -> ExperimentRun:
    """Measure one experiment.

    Args:
        config: the validated experiment.
        backend: an inference backend (default: the registry's backend for ``config.backend``).
        sampler: an energy sampler (default: the factory's choice for ``config.energy``).
        clock: monotonic clock in seconds for phase and window timing.
        sleep: used for the thermal floor (tests pass a no-op).
        observer: receives progress events.

    Raises:
        LLEMError: any failure, already translated (config, dependency, backend, sampler).
    """
    observer = observer or SilentObserver()
    started_at = datetime.now(timezone.utc)
    validate_source(config.dataset)  # bad prompts fail before a model is loaded
    sampler = sampler or create_sampler(config.energy)
    backend = backend or create_backend(config.backend, clock=clock)
    environment = snapshot_environment()

    observer.phase("loading model")
    t0 = clock()
    model_info = backend.load(config)
    model_load_s = clock() - t0
    try:
        prompts = load_prompts(config.dataset, config.n, config.random_seed, codec=backend.codec)
        prepared = backend.prepare(prompts)
        warmup_s = _warmup(backend, config, prepared, clock, observer)
        sleep(config.warmup.thermal_floor_s)
        window = _measure(backend, sampler, prepared, config, clock, observer)
    finally:
        backend.unload()

    metrics = compute_metrics(
        window.records, window.duration_s, window.reading.energy_total_j, backend.peak_memory()
    )
    result = ExperimentResult(
        llem_version=__version__,
        config=config,
        measurement_config_hash=config.measurement_config_hash(),
        started_at=started_at,
        ended_at=datetime.now(timezone.utc),
        measurement_method=window.reading.method,
        model=model_info,
        environment=environment,
        timings=PhaseTimings(
            model_load_s=model_load_s,
            warmup_s=warmup_s,
            thermal_floor_s=config.warmup.thermal_floor_s,
            window_s=window.duration_s,
        ),
        energy=energy_metrics(window.reading),
        metrics=metrics,
        warnings=measurement_warnings(window.reading, window.duration_s),
    )
    return ExperimentRun(result, window.records)


def _warmup(
    backend: Backend,
    config: ExperimentConfig,
    prompts: list[list[int]],
    clock: Clock,
    observer: RunObserver,
) -> float:
    """Run ``n_warmup`` short batches of the measured batch size; returns their duration."""
    n_runs = config.warmup.n_warmup
    observer.phase("warmup", total=n_runs)
    batch = prompts[: backend.concurrency]
    t0 = clock()
    for _ in range(n_runs):
        backend.run(batch, config.warmup.max_output_tokens)
        observer.advance(1)
    return clock() - t0


def _measure(
    backend: Backend,
    sampler: EnergySampler,
    prompts: list[list[int]],
    config: ExperimentConfig,
    clock: Clock,
    observer: RunObserver,
) -> _Window:
    """The measured window: the sampler brackets inference and nothing else."""
    observer.phase("measuring", total=len(prompts))
    backend.reset_peak_memory()
    sampler.start()
    t_start = clock()
    try:
        records = backend.run(prompts, config.max_output_tokens, on_progress=observer.advance)
    except BaseException:
        _stop_quietly(sampler)
        raise
    t_end = clock()
    reading = sampler.stop()
    return _Window([_relative(r, t_start) for r in records], reading, t_end - t_start)


def _stop_quietly(sampler: EnergySampler) -> None:
    with contextlib.suppress(LLEMError):  # the inference error is the one to report
        sampler.stop()


def _relative(record: RequestRecord, origin_s: float) -> RequestRecord:
    """The record with every timestamp measured from the window start."""
    return replace(
        record,
        submit_s=record.submit_s - origin_s,
        chunk_times_s=[t - origin_s for t in record.chunk_times_s],
        end_s=record.end_s - origin_s,
    )
