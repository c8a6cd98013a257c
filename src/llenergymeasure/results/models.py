"""Result models. Loading tolerates fields added later: every field beyond the core has a
default, and unknown fields from newer versions are ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.flops import FlopsMetrics
from llenergymeasure.results.warning_codes import WarningCode, warning_meaning

SCHEMA_VERSION = "1.0"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LatencyStats(_Lenient):
    """Distribution of one latency, in seconds, computed from raw per-request samples."""

    n: int = 0
    mean_s: float | None = None
    median_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None


class EnergyMetrics(_Lenient):
    """What the energy sampler measured over the window, and how."""

    method: str
    scope: list[str] = Field(default_factory=list)
    is_estimate: bool = False
    energy_total_j: float | None = None
    energy_by_domain_j: dict[str, float] = Field(default_factory=dict)
    duration_s: float | None = None
    sample_count: int = 0
    co2_kg: float | None = None
    co2_source: str | None = None
    carbon_intensity_g_per_kwh: float | None = None
    pue: float | None = None
    """Power usage effectiveness applied (user config / LLEM_PUE; None in older results)."""
    energy_facility_j: float | None = None
    """energy_total_j x pue: the facility's energy, on which co2_kg is based."""
    uncertainty_j: float | None = None
    baseline_power_w: float | None = None
    baseline_power_by_domain_w: dict[str, float] = Field(default_factory=dict)
    baseline_from_cache: bool | None = None
    baseline_age_s: float | None = None
    energy_adjusted_j: float | None = None
    energy_adjusted_by_domain_j: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class TelemetrySummary(_Lenient):
    """Device state over the measured window, from the telemetry timeseries."""

    interval_ms: int
    n_samples: int = 0
    devices: list[str] = Field(default_factory=list)
    mean_power_w: float | None = None
    max_power_w: float | None = None
    max_temperature_c: float | None = None
    temperature_drift_c: float | None = None
    throttled_fraction: float | None = None
    mean_utilisation_pct: float | None = None


class PerformanceMetrics(_Lenient):
    """Throughput, latency, memory and energy normalised per unit of work.

    Every figure counts the requests that completed, as ``vllm bench serve`` does: a failed
    request (``RequestRecord.error``; the server backend records them) adds to ``n_failed``
    only, and its partial output counts in no token total, throughput, energy denominator or
    latency distribution. Requests submitted = ``n_requests + n_failed``.
    """

    duration_s: float
    n_requests: int
    """Requests that completed."""
    total_input_tokens: int
    """Prompt tokens of the completed requests."""
    total_output_tokens: int
    """Output tokens of the completed requests."""
    n_failed: int = 0
    """Requests that failed (an engine backend raises instead, so older results have 0)."""
    error_rate: float = 0.0
    """n_failed / requests submitted (0 when nothing was submitted)."""
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    """The most common reasons requests failed (up to 3), each with how many failed so."""
    output_tokens_per_s: float | None = None
    input_tokens_per_s: float | None = None
    requests_per_s: float | None = None
    energy_per_output_token_j: float | None = None
    energy_per_request_j: float | None = None
    energy_per_output_token_adjusted_j: float | None = None
    energy_per_request_adjusted_j: float | None = None
    energy_per_total_token_j: float | None = None
    """Energy per token processed, input and output alike (prefill-heavy work compares here)."""
    energy_per_total_token_adjusted_j: float | None = None
    energy_per_1k_requests_wh: float | None = None
    """Watt-hours per 1,000 completed requests: AIEnergyScore's published unit."""
    energy_per_1k_requests_adjusted_wh: float | None = None
    ttft: LatencyStats = Field(default_factory=LatencyStats)
    itl: LatencyStats = Field(default_factory=LatencyStats)
    tpot: LatencyStats = Field(default_factory=LatencyStats)
    """Time per output token after the first, one sample per request (see RequestRecord.tpot_s)."""
    e2e_latency: LatencyStats = Field(default_factory=LatencyStats)
    peak_memory_mb: float | None = None
    peak_memory_scope: str | None = None

    @property
    def n_submitted(self) -> int:
        """Requests submitted: completed and failed."""
        return self.n_requests + self.n_failed

    def failure_reasons_text(self) -> str:
        """``reason (count); ...`` for the most common reasons, then how many failed for
        other ones (empty when none failed)."""
        parts = [f"{reason} ({count})" for reason, count in self.failure_reasons.items()]
        others = self.n_failed - sum(self.failure_reasons.values())
        if others > 0:
            parts.append(f"{others} for other reasons")
        return "; ".join(parts)


class SteadyState(_Lenient):
    """The steady-state sub-window of a serving run (ramp-up and drain left out) and what
    was measured inside it. Times are seconds from the measured window's start; a completion
    or an output chunk counts when its time lies in ``(start_s, end_s]``."""

    start_s: float
    end_s: float
    duration_s: float
    rule: str
    """How the interval was found, in words (see ``harness.serving``)."""
    requests_completed: int = 0
    output_tokens: int = 0
    output_tokens_per_s: float | None = None
    mean_in_flight: float | None = None
    energy_j: float | None = None
    energy_uncertainty_j: float | None = None
    """An absolute bound on ``energy_j``: the timeline's read spacing and staleness at each
    end, and how far the sampler's clock may lie from the window's."""
    energy_per_output_token_j: float | None = None
    energy_per_request_j: float | None = None
    energy_note: str | None = None
    """Why ``energy_j`` is None (e.g. a sampler that reports only a total), else None."""


class Goodput(_Lenient):
    """Requests that met every latency target of ``load.slo``, over the measured window."""

    targets_ms: dict[str, float] = Field(default_factory=dict)
    good_requests: int = 0
    good_fraction: float | None = None
    """Good requests / all requests."""
    goodput_rps: float | None = None
    """Good requests / the measured window's duration."""
    energy_per_good_request_j: float | None = None
    """The measured window's energy / good requests (None when none was good)."""


class ServingMetrics(_Lenient):
    """How a serving run (``load.mode`` rate or concurrency) met its load: rates, the
    generator's lag, requests in flight, the steady-state window and goodput. An offline run
    with ``load.slo`` has only ``mode`` ("offline") and ``goodput``."""

    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")

    mode: str
    requested_rate_rps: float | None = None
    """``load.request_rate`` (inf = all at once; written "Infinity"); None in concurrency mode."""
    scheduled_rate_rps: float | None = None
    """The seeded schedule's own rate, (n - 1) / last arrival: a Poisson schedule of n
    arrivals differs from the requested rate by about 1/sqrt(n). None without a schedule or
    for an infinite rate."""
    achieved_rate_rps: float | None = None
    """(n - 1) / (last submit - first submit), from the records."""
    max_concurrency: int | None = None
    submit_lag: LatencyStats = Field(default_factory=LatencyStats)
    """Actual submit - scheduled arrival - slot wait, per request (rate mode)."""
    peak_in_flight: int | None = None
    """The most requests in flight at once (submit to end); None for an offline run."""
    mean_in_flight: float | None = None
    """Time-averaged requests in flight over the measured window."""
    steady_state: SteadyState | None = None
    steady_state_note: str | None = None
    """Why ``steady_state`` is None in a serving run (e.g. the cap was never reached)."""
    goodput: Goodput | None = None


class EnergyDistribution(_Lenient):
    """The spread of one energy figure over requests, in joules."""

    n: int = 0
    mean_j: float | None = None
    median_j: float | None = None
    p95_j: float | None = None
    min_j: float | None = None
    max_j: float | None = None


class EnergyAttribution(_Lenient):
    """Where the window's energy went: to which requests, and to prefill or decode steps
    (``harness.attribution`` states the model). The per-request figures are the
    ``energy_j``, ``prefill_energy_j``, ``decode_energy_j`` and ``overhead_energy_j`` columns
    of ``requests.parquet``; they add up to ``energy_j`` here, the window's energy.

    A step is the engine producing output: every distinct time an output chunk arrived. A
    step ran a prefill when some request received its first token there; it only decoded
    otherwise.
    """

    model: str
    """The attribution rule, in words."""
    energy_j: float
    """Everything attributed: the window's energy (``energy.energy_total_j``)."""
    prefill_energy_j: float
    """Energy of the steps that ran at least one prefill."""
    decode_energy_j: float
    """Energy of the steps that only decoded."""
    overhead_energy_j: float
    """Energy no step claims (no request in flight; the tail after the last token)."""
    prefill_steps: int = 0
    decode_steps: int = 0
    prompt_tokens: int = 0
    """Prompt tokens prefilled (all records, failed ones included: they drew energy too)."""
    decode_tokens: int = 0
    """Output tokens produced by decode-only steps."""
    energy_per_prompt_token_j: float | None = None
    """prefill_energy_j / prompt_tokens."""
    energy_per_decode_token_j: float | None = None
    """decode_energy_j / decode_tokens."""
    per_request: EnergyDistribution = Field(default_factory=EnergyDistribution)
    """Energy per completed request, over requests."""
    notes: list[str] = Field(default_factory=list)


class Contention(_Lenient):
    """Other work on the machine during the measured window (``telemetry.contention``)."""

    threshold_pct: float
    """``contention`` is warned when mean foreign CPU use is above this share of all CPUs."""
    n_samples: int = 0
    foreign_cpu_pct_mean: float | None = None
    """CPU time used by processes outside this run's process tree over the window, as a
    share of all CPUs' time (100 = every CPU busy with other work the whole window)."""
    foreign_cpu_pct_max: float | None = None
    """The largest share between two samples."""
    top_processes: list[dict[str, Any]] = Field(default_factory=list)
    """The foreign processes that used most CPU: ``pid``, ``name``, ``cpu_s``."""
    foreign_gpu_processes: list[dict[str, Any]] = Field(default_factory=list)
    """Processes outside this run's tree holding a GPU: ``pid``, ``name``, ``gpu``,
    ``used_memory_mb``."""
    notes: list[str] = Field(default_factory=list)


class LengthStats(_Lenient):
    """Distribution of prompt or output lengths (the field holding it names the unit)."""

    n: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None


class DatasetInfo(_Lenient):
    """The prompts a run used: their source, and for a hub dataset the revision loaded."""

    source: str
    """``builtin``, ``synthetic``, ``jsonl``, ``aienergyscore``, ``sharegpt`` or ``hub``."""
    name: str
    """The hub dataset's name, the file's path, or the source for built-in ones."""
    split: str | None = None
    column: str | None = None
    output_column: str | None = None
    revision: str | None = None
    """The hub revision asked for (``dataset.revision``, or the aienergyscore default)."""
    resolved_revision: str | None = None
    """The commit SHA of the hub dataset loaded (read from its Hugging Face cache folder);
    None where it could not be told."""
    n_rows: int | None = None
    """Rows in the file or split (None for synthetic prompts)."""
    n_usable: int | None = None
    """Rows that can serve as prompts (ShareGPT: conversations with at least two turns; a hub
    dataset: rows whose prompt (and reference answer) is non-empty text)."""
    n_pruned: int = 0
    """ShareGPT conversations passed over while selecting for their token lengths (as vllm
    bench serve: prompt or reply under 4 tokens, prompt over 1024, both over 2048)."""


class RequestLengths(_Lenient):
    """How long the measured requests were: two runs' energy per request and per token compare
    only where these match (``llem report`` flags a comparison where they do not)."""

    output_lengths: str
    """``dataset.output_lengths``: ``fixed`` (up to max_output_tokens, the model may stop
    earlier), ``from_dataset`` or ``distribution`` (each request generates exactly its
    length)."""
    input_tokens: LengthStats
    """Prompt tokens of the completed requests, as the engine received them."""
    output_tokens: LengthStats
    """Output tokens the completed requests generated."""
    requested_output_tokens: LengthStats | None = None
    """The lengths asked of every request (``from_dataset``, ``distribution``); None for
    ``fixed``."""
    n_clipped: int = 0
    """Requested lengths moved into their bounds (a reference answer longer than
    max_output_tokens, a draw outside [min_tokens, max_output_tokens])."""
    notes: list[str] = Field(default_factory=list)


class ModelInfo(_Lenient):
    """What the backend actually loaded."""

    model_id: str
    source_kind: str
    dtype: str
    device: str
    n_parameters: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EnvironmentSnapshot(_Lenient):
    """Hardware and software the measurement ran on."""

    python: str
    os: str
    machine: str
    cpu_model: str | None = None
    cpu_cores_logical: int | None = None
    cpu_cores_physical: int | None = None
    memory_total_gb: float | None = None
    libraries: dict[str, str | None] = Field(default_factory=dict)
    gpus: list[dict[str, Any]] = Field(default_factory=list)
    container: str | None = None
    server: dict[str, Any] | None = None
    """The inference server measured (``backend: server``) as it describes itself: URL,
    served and listed models, ``/version``, the ``Server`` header; None for other backends."""


class MeasurementWarning(_Lenient):
    """A caveat about a figure: a stable code for machines, a sentence for people.

    ``code`` is stored as text, so a result from a newer version, with a code this one does
    not list, still loads; this version writes only :class:`WarningCode` codes (via :meth:`of`).
    """

    code: str
    message: str

    @classmethod
    def of(cls, code: WarningCode, message: str) -> MeasurementWarning:
        """A warning with a listed code."""
        return cls(code=code.value, message=message)

    @property
    def meaning(self) -> str | None:
        """The code's one-line meaning; None for a code this version does not list."""
        return warning_meaning(self.code)


class PhaseTimings(_Lenient):
    """Durations of the phases around the measured window, in seconds."""

    model_load_s: float
    warmup_s: float
    thermal_floor_s: float = 0.0
    window_s: float


class ExperimentResult(_Lenient):
    """Everything one experiment measured, with enough context to judge and reproduce it."""

    schema_version: str = SCHEMA_VERSION
    llem_version: str
    config: ExperimentConfig
    measurement_config_hash: str
    started_at: datetime
    ended_at: datetime
    measurement_method: str
    model: ModelInfo
    environment: EnvironmentSnapshot
    timings: PhaseTimings
    dataset: DatasetInfo | None = None
    """Where the prompts came from (None in results written before it was recorded)."""
    lengths: RequestLengths | None = None
    """Input and output lengths of the measured requests (None in results written before
    they were recorded)."""
    energy: EnergyMetrics
    metrics: PerformanceMetrics
    telemetry: TelemetrySummary | None = None
    flops: FlopsMetrics | None = None
    serving: ServingMetrics | None = None
    """Load, steady state and goodput of a serving run; for an offline run None, or only
    its goodput when ``load.slo`` is set."""
    attribution: EnergyAttribution | None = None
    """Energy per request and per phase; None without an energy timeline."""
    contention: Contention | None = None
    """Other work on the machine during the window; None when it was not watched."""
    warnings: list[MeasurementWarning] = Field(default_factory=list)
    requests_file: str | None = "requests.parquet"
    timeseries_file: str | None = None
    energy_timeline_file: str | None = None
    """``energy_timeline.parquet`` when the sampler kept a timeline, else None."""
    output_dir: str | None = None

    @property
    def energy_total_j(self) -> float | None:
        """Total energy over the measured window in joules (None without an energy source)."""
        return self.energy.energy_total_j
