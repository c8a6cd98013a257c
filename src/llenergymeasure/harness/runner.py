"""One experiment, end to end.

preflight → environment snapshot → load (timed) → prepare prompts → warmup → thermal floor →
idle baseline → **measured window** → metrics, warnings, result. Telemetry runs throughout,
each sample tagged with its phase. Only inference runs inside the measured window.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from llenergymeasure._version import __version__
from llenergymeasure.backends import Backend, create_backend
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets import (
    OutputLengthPlan,
    load_prompt_set,
    plan_output_lengths,
    validate_source,
)
from llenergymeasure.devices import get_gpus, gpu_snapshot
from llenergymeasure.energy import (
    EnergyReading,
    EnergySampler,
    EnergyTimeline,
    NullSampler,
    create_sampler,
)
from llenergymeasure.errors import LLEMError
from llenergymeasure.flops import compute_flops_metrics
from llenergymeasure.harness.attribution import Attributed, attribute_energy
from llenergymeasure.harness.baseline import Baseline, BaselineCache, measure_baseline
from llenergymeasure.harness.carbon import compute_co2, user_carbon_intensity, user_pue
from llenergymeasure.harness.checks import (
    baseline_warnings,
    config_warnings,
    context_warnings,
    device_warnings,
    energy_metrics,
    failed_request_warnings,
    sampler_warnings,
    serving_warnings,
    stability_warnings,
    telemetry_warnings,
    version_warnings,
    window_warnings,
)
from llenergymeasure.harness.contention import contention_warnings, summarise_contention
from llenergymeasure.harness.environment import snapshot_environment
from llenergymeasure.harness.lengths import request_lengths
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.harness.observer import RunObserver, SilentObserver
from llenergymeasure.harness.server import (
    remote_server_host,
    remote_server_warnings,
    server_energy_notes,
    server_pids,
    server_sources,
)
from llenergymeasure.harness.serving import (
    WindowEnergy,
    judge_requests,
    running_counts,
    serving_metrics,
)
from llenergymeasure.harness.stability import wait_until_stable
from llenergymeasure.load import LoadPlan, plan_load
from llenergymeasure.results.models import (
    Contention,
    DatasetInfo,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord, TelemetrySample
from llenergymeasure.results.stats import completed
from llenergymeasure.telemetry import TelemetryPoller, TelemetrySource, default_sources, summarise

Clock = Callable[[], float]
SamplerFactory = Callable[[], EnergySampler]


@dataclass
class ExperimentRun:
    """A finished experiment: the result, its raw records, its telemetry timeline and its
    energy timeline.

    Record and telemetry timestamps are seconds from the start of the measured window; the
    energy timeline's are from the sampler's ``start()``, taken just before (at most
    ``harness.serving.WindowEnergy.align_s`` apart). ``energy_timeline`` is None for a sampler
    that reports only a total. The records carry their attributed energy
    (``harness.attribution``; None without an energy timeline).
    """

    result: ExperimentResult
    records: list[RequestRecord]
    timeseries: list[TelemetrySample]
    energy_timeline: EnergyTimeline | None = None


@dataclass
class _Window:
    """The measured window: its records (``slo_met`` judged, energy attributed) with the
    attribution's summary, reading and plan; ``start_s`` is its zero on the harness clock,
    ``align_s`` how long ``sampler.start()`` took (the sampler's zero lies that close before
    the window's)."""

    attributed: Attributed
    reading: EnergyReading
    start_s: float
    duration_s: float
    plan: LoadPlan
    align_s: float

    @property
    def records(self) -> list[RequestRecord]:
        return self.attributed.records


@dataclass
class _Phases:
    model: ModelInfo
    model_load_s: float
    warmup_s: float
    stable: bool | None
    baseline: Baseline | None
    window: _Window
    dataset: DatasetInfo
    output_lengths: OutputLengthPlan


def run_experiment(
    config: ExperimentConfig,
    *,
    backend: Backend | None = None,
    sampler_factory: SamplerFactory | None = None,
    telemetry_sources: Sequence[TelemetrySource] | None = None,
    baseline_cache: BaselineCache | None = None,
    clock: Clock = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    observer: RunObserver | None = None,
) -> ExperimentRun:
    """Measure one experiment.

    Args:
        config: the validated experiment.
        backend: an inference backend (default: the registry's backend for ``config.backend``).
        sampler_factory: builds a fresh energy sampler per window (baseline and measurement;
            default: the factory's choice for ``config.energy``). A server on another
            machine (``backend: server``) always gets the null sampler: its energy is not
            this machine's (:mod:`llenergymeasure.harness.server`).
        telemetry_sources: what the telemetry poller reads (default: the GPUs, else the CPU,
            other work on the machine (``result.contention``; without it None) and a
            server's ``/metrics``).
        baseline_cache: where idle baselines are cached (default: the user cache dir).
        clock: monotonic clock in seconds for phase and window timing.
        sleep: used for the thermal floor and the baseline window (tests pass a no-op).
        observer: receives progress events.

    Raises:
        LLEMError: any failure, already translated (config, dependency, backend, sampler).
    """
    observer = observer or SilentObserver()
    started_at = datetime.now(timezone.utc)
    validate_source(config.dataset)  # bad prompts fail before a model is loaded
    remote_host = remote_server_host(config)
    new_sampler = sampler_factory or (lambda: create_sampler(config.energy))
    if remote_host is not None:
        new_sampler = NullSampler
    window_sampler = new_sampler()  # an unavailable sampler fails before loading too
    backend = backend or create_backend(config.backend, clock=clock)
    gpus = get_gpus()
    environment = snapshot_environment(gpu_snapshot(gpus))
    poller = TelemetryPoller(
        telemetry_sources
        if telemetry_sources is not None
        else default_sources(gpus, server_pids(config, remote_host)) + server_sources(config),
        config.telemetry.interval_ms,
        clock,
    )
    if config.telemetry.enabled:
        poller.start()
    try:
        phases = _run_phases(
            config, backend, window_sampler, new_sampler, baseline_cache, poller, clock, sleep,
            observer,
        )  # fmt: skip
    finally:
        backend.unload()
        samples = poller.stop()
    timeseries = [_shift_sample(s, phases.window.start_s) for s in samples]
    contention = summarise_contention(samples, poller.sources)
    result = _build_result(
        config, backend, phases, timeseries, started_at, environment, remote_host, contention
    )
    window = phases.window
    return ExperimentRun(result, window.records, timeseries, window.reading.timeline)


def _run_phases(
    config: ExperimentConfig,
    backend: Backend,
    window_sampler: EnergySampler,
    new_sampler: SamplerFactory,
    baseline_cache: BaselineCache | None,
    poller: TelemetryPoller,
    clock: Clock,
    sleep: Callable[[float], None],
    observer: RunObserver,
) -> _Phases:
    poller.set_phase("load")
    observer.phase("loading model")
    t0 = clock()
    model_info = backend.load(config)
    model_load_s = clock() - t0
    prompt_set = load_prompt_set(config.dataset, config.n, config.random_seed, backend.codec)
    prepared = backend.prepare(prompt_set.prompts)
    lengths = plan_output_lengths(
        config.dataset, prompt_set.prompts, config.max_output_tokens, config.random_seed
    )
    poller.set_phase("warmup")
    warmup_s = _warmup(backend, config, prepared, clock, observer)
    sleep(config.warmup.thermal_floor_s)
    stable = wait_until_stable(poller, config.warmup, clock, sleep)
    poller.set_phase("baseline")
    baseline = _baseline(config, window_sampler.name, new_sampler, baseline_cache, sleep, observer)
    poller.set_phase("window")
    window = _measure(backend, window_sampler, prepared, lengths, config, clock, observer)
    poller.set_phase("after")
    return _Phases(
        model_info, model_load_s, warmup_s, stable, baseline, window, prompt_set.info, lengths
    )


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


def _baseline(
    config: ExperimentConfig,
    sampler_name: str,
    new_sampler: SamplerFactory,
    cache: BaselineCache | None,
    sleep: Callable[[float], None],
    observer: RunObserver,
) -> Baseline | None:
    """Reuse a fresh-enough cached idle baseline, else measure (and cache) one."""
    settings = config.baseline
    if not settings.enabled or sampler_name == "null":
        return None
    cache = cache or BaselineCache()
    key = cache.key(sampler_name)
    cached = cache.get(key, settings.cache_ttl_s, time.time())
    if cached is not None:
        return cached
    observer.phase(f"idle baseline ({settings.duration_s:g} s)")
    measured = measure_baseline(new_sampler(), settings.duration_s, sleep)
    if measured is not None:
        cache.put(key, measured)
    return measured


def _measure(
    backend: Backend,
    sampler: EnergySampler,
    prompts: list[list[int]],
    lengths: OutputLengthPlan,
    config: ExperimentConfig,
    clock: Clock,
    observer: RunObserver,
) -> _Window:
    """The measured window: the sampler brackets inference and nothing else; each request
    generates the length ``lengths`` gives it (``fixed``: up to ``max_output_tokens``).

    Records are timed from ``t_start``, read right after ``sampler.start()`` returns; the
    sampler's timeline starts inside that call, at most ``t_start - t_before`` earlier.
    """
    observer.phase("measuring", total=len(prompts) * config.max_output_tokens)  # output tokens
    plan = plan_load(config.load, len(prompts), config.random_seed)
    backend.reset_peak_memory()
    t_before = clock()
    sampler.start()
    t_start = clock()
    try:
        records = backend.run(
            prompts,
            config.max_output_tokens,
            on_progress=observer.advance,
            load=plan,
            output_lengths=lengths.lengths,
        )
    except BaseException:
        with contextlib.suppress(LLEMError):  # the inference error is the one to report
            sampler.stop()
        raise
    t_end = clock()
    reading = sampler.stop()
    judged = judge_requests([_relative(r, t_start) for r in records], config.load.slo)
    attributed = attribute_energy(judged, reading, t_start - t_before)
    return _Window(attributed, reading, t_start, t_end - t_start, plan, t_start - t_before)


def _build_result(
    config: ExperimentConfig,
    backend: Backend,
    phases: _Phases,
    timeseries: list[TelemetrySample],
    started_at: datetime,
    environment: EnvironmentSnapshot,
    remote_host: str | None,
    contention: Contention | None,
) -> ExperimentResult:
    window, reading = phases.window, phases.window.reading
    co2 = compute_co2(reading.energy_total_j, reading.co2_kg, user_carbon_intensity(), user_pue())
    energy = energy_metrics(reading, phases.baseline, co2, time.time())
    energy.notes += server_energy_notes(config, remote_host) + window.attributed.energy_notes
    telemetry = (
        summarise(timeseries, "window", config.telemetry.interval_ms) if timeseries else None
    )
    flops = compute_flops_metrics(
        phases.model.details.get("architecture") or {},
        completed(window.records),  # work delivered: failed requests' tokens are not counted
        window.duration_s,
        reading.energy_total_j,
        phases.model.dtype,
        _gpu_name(phases.model, environment),
        batch_size=backend.concurrency,
        n_devices=max(1, sum(key.startswith("gpu:") for key in reading.energy_by_domain_j)),
    )
    metrics = compute_metrics(
        window.records, window.duration_s, reading.energy_total_j, backend.peak_memory(),
        energy.energy_adjusted_j,
    )  # fmt: skip
    serving = serving_metrics(
        config.load, window.plan, window.records, window.duration_s,
        WindowEnergy.of(reading, window.align_s), running_counts(timeseries),
    )  # fmt: skip
    warnings = (
        window_warnings(reading, window.duration_s)
        + remote_server_warnings(remote_host)
        + failed_request_warnings(metrics)
        + serving_warnings(serving, window.duration_s)
        + sampler_warnings(reading)
        + telemetry_warnings(telemetry)
        + context_warnings(phases.baseline, config.baseline.enabled, co2)
        + baseline_warnings(phases.baseline, reading)
        + stability_warnings(phases.stable, config.warmup.stabilise_timeout_s)
        + device_warnings(environment.gpus)
        + config_warnings(config)
        + version_warnings(config.backend, environment.libraries)
        + contention_warnings(contention)
    )
    return ExperimentResult(
        llem_version=__version__,
        config=config,
        measurement_config_hash=config.measurement_config_hash(),
        started_at=started_at,
        ended_at=datetime.now(timezone.utc),
        measurement_method=reading.method,
        model=phases.model,
        environment=environment.model_copy(update={"server": phases.model.details.get("server")}),
        timings=PhaseTimings(
            model_load_s=phases.model_load_s,
            warmup_s=phases.warmup_s,
            thermal_floor_s=config.warmup.thermal_floor_s,
            window_s=window.duration_s,
        ),
        dataset=phases.dataset,
        lengths=request_lengths(phases.output_lengths, window.records),
        energy=energy,
        attribution=window.attributed.summary,
        metrics=metrics,
        telemetry=telemetry,
        flops=flops,
        serving=serving,
        contention=contention,
        warnings=warnings,
    )


def _gpu_name(model: ModelInfo, environment: EnvironmentSnapshot) -> str | None:
    """The GPU the model ran on, as NVML names it (None on CPU)."""
    if not model.device.startswith("cuda") or not environment.gpus:
        return None
    index = int(model.device.partition(":")[2] or 0)
    matching = [g for g in environment.gpus if g.get("index") == index] or environment.gpus
    name = matching[0].get("name")
    return str(name) if name else None


def _relative(record: RequestRecord, origin_s: float) -> RequestRecord:
    """The record with every timestamp measured from the window start."""
    return replace(
        record,
        submit_s=record.submit_s - origin_s,
        chunk_times_s=[t - origin_s for t in record.chunk_times_s],
        end_s=record.end_s - origin_s,
        scheduled_s=None if record.scheduled_s is None else record.scheduled_s - origin_s,
    )


def _shift_sample(sample: TelemetrySample, origin_s: float) -> TelemetrySample:
    return replace(sample, timestamp_s=sample.timestamp_s - origin_s)
