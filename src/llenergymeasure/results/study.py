"""A study's results: per-experiment statistics over cycles, and the study-level files.

A study directory holds one result directory per (experiment, cycle) and, written here,
``study_result.json`` (a :class:`StudyResult`) and ``results.parquet`` (one row per experiment ×
cycle, config fields as columns, for pandas/duckdb). Statistics over cycles use Student-t
confidence intervals; latency percentiles are recomputed from the pooled raw per-request samples
of all finished cycles (completed requests only), never averaged.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure._version import __version__
from llenergymeasure.config.dotted import flatten
from llenergymeasure.errors import ResultsError, describe_os_error
from llenergymeasure.fileio import replace_atomically, write_text_atomically
from llenergymeasure.results.io import (
    REQUESTS_FILE,
    RESULT_FILE,
    load_requests,
    load_result,
)
from llenergymeasure.results.models import ExperimentResult, LatencyStats, MeasurementWarning
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import (
    Summary,
    combined_ci95_half_width,
    request_latencies,
    summary_stats,
)
from llenergymeasure.results.warning_codes import WarningCode

if TYPE_CHECKING:  # pyarrow (a third of a second) loads only when results.parquet is written
    import pyarrow as pa

STUDY_SCHEMA_VERSION = "1.0"
STUDY_RESULT_FILE = "study_result.json"
STUDY_TABLE_FILE = "results.parquet"

StudyStatus = Literal["pending", "running", "done", "failed", "skipped"]


class _Lenient(BaseModel):
    # configs may hold inf (load.request_rate); JSON has none, so it is written "Infinity"
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")


class StudyEntry(_Lenient):
    """One (experiment, cycle) of a study and how it went.

    Attributes:
        experiment_index: position of the experiment in the study's resolved list.
        cycle_index: 0-based cycle.
        experiment_name: the experiment's label.
        status: pending, running, done, failed or skipped.
        result_dir: the run's result directory, relative to the study directory.
        error: why it failed (one line).
        exit_code: the isolated child's exit code, when it ended abnormally.
        stderr_tail: the last part of the child's output, when it failed.
        started_at: when the run started.
        ended_at: when the run ended.
        execution: the execution settings the run ran under (a resume may change some, such
            as ``cycle_order``; see ``StudyResult.mixed_execution``); None until it runs.
        set_aside: partial result directories of an interrupted attempt, moved out of the way
            (relative to the study directory, under ``runs/.partial/``).
    """

    experiment_index: int
    cycle_index: int
    experiment_name: str
    status: StudyStatus = "pending"
    result_dir: str | None = None
    error: str | None = None
    exit_code: int | None = None
    stderr_tail: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    execution: dict[str, Any] | None = None
    set_aside: list[str] = Field(default_factory=list)


class ExperimentAggregate(_Lenient):
    """One experiment's figures over its finished cycles.

    Each :class:`Summary` holds the mean, sample std, 95% Student-t confidence interval and
    coefficient of variation of one per-cycle figure (in the unit its name ends with). The
    ``*_pooled`` latency distributions are computed from every raw sample of every completed
    request of every finished cycle together (failed requests count only in ``error_rate``,
    failed / submitted per cycle). The energy per unit of work is summarised raw and
    idle-adjusted (J per output token, per total token, per request; Wh per 1,000 requests);
    ``energy_per_prompt_token_j`` and ``energy_per_decode_token_j`` summarise the cycles with
    an energy attribution (``ExperimentResult.attribution``). The serving figures
    (``steady_state_*``, ``achieved_rate_rps``, ``goodput_rps``, ``good_fraction``) summarise
    the cycles that have them (serving runs; goodput only with ``load.slo``).
    """

    experiment_index: int
    experiment_name: str
    config: dict[str, Any] = Field(default_factory=dict)
    n_cycles_done: int = 0
    energy_total_j: Summary = Field(default_factory=Summary)
    energy_adjusted_j: Summary = Field(default_factory=Summary)
    energy_per_output_token_j: Summary = Field(default_factory=Summary)
    energy_per_output_token_adjusted_j: Summary = Field(default_factory=Summary)
    energy_per_total_token_j: Summary = Field(default_factory=Summary)
    energy_per_total_token_adjusted_j: Summary = Field(default_factory=Summary)
    energy_per_request_j: Summary = Field(default_factory=Summary)
    energy_per_request_adjusted_j: Summary = Field(default_factory=Summary)
    energy_per_1k_requests_wh: Summary = Field(default_factory=Summary)
    energy_per_1k_requests_adjusted_wh: Summary = Field(default_factory=Summary)
    energy_per_prompt_token_j: Summary = Field(default_factory=Summary)
    energy_per_decode_token_j: Summary = Field(default_factory=Summary)
    output_tokens_per_s: Summary = Field(default_factory=Summary)
    requests_per_s: Summary = Field(default_factory=Summary)
    error_rate: Summary = Field(default_factory=Summary)
    ttft_mean_s: Summary = Field(default_factory=Summary)
    itl_mean_s: Summary = Field(default_factory=Summary)
    tpot_mean_s: Summary = Field(default_factory=Summary)
    e2e_mean_s: Summary = Field(default_factory=Summary)
    steady_state_energy_per_request_j: Summary = Field(default_factory=Summary)
    steady_state_energy_per_output_token_j: Summary = Field(default_factory=Summary)
    achieved_rate_rps: Summary = Field(default_factory=Summary)
    goodput_rps: Summary = Field(default_factory=Summary)
    good_fraction: Summary = Field(default_factory=Summary)
    ttft_pooled: LatencyStats = Field(default_factory=LatencyStats)
    itl_pooled: LatencyStats = Field(default_factory=LatencyStats)
    tpot_pooled: LatencyStats = Field(default_factory=LatencyStats)
    e2e_latency_pooled: LatencyStats = Field(default_factory=LatencyStats)
    energy_per_output_token_ci95_half_width_j: float | None = None
    """Half-width of the 95% interval of the mean J per output token that adds the sampler's
    bound to the spread over cycles (:func:`token_energy_interval`); None for fewer than 2
    cycles with an energy figure."""
    energy_per_output_token_ci95_pct: float | None = None
    """That half-width as a percentage of the mean (what ``execution.target_ci_pct`` bounds)."""
    energy_per_output_token_ci_note: str | None = None
    """Why the interval covers only the run-to-run spread (an estimate, or no sampler bound)."""
    ci_converged: bool | None = None
    """Whether the interval is within ``execution.target_ci_pct``; None without a target."""


class StudyResult(_Lenient):
    """Everything a study produced: per-experiment statistics, every entry, and its files.

    Attributes:
        name: the study's name.
        study_design_hash: identifies the resolved experiments (a resume must match it).
        started_at: when the study (first) started.
        ended_at: when its last run ended.
        execution: the execution protocol (cycles, order, gaps, timeout) the study was
            started with, ``n_cycles`` raised by any top-up.
        mixed_execution: the execution fields whose value was not the same for every entry
            that ran (e.g. ``cycle_order`` changed on a resume; each entry's ``execution``
            says what it ran under). Empty when one protocol ran throughout. ``n_cycles`` is
            never listed: a top-up adds cycles without changing the protocol.
        experiments: one aggregate per experiment, in index order.
        entries: every (experiment, cycle) with its status.
        failed: the entries that failed.
        skipped: the entries that were skipped.
        files: paths, relative to the study directory, of every result directory and file.
        target_ci_pct: the target on the 95% interval of J per output token that decided
            how many cycles ran (``execution.target_ci_pct``); None: ``n_cycles`` cycles.
        n_cycles_run: how many cycles ran (an entry of each done or failed); None in files
            written before it was recorded.
        warnings: caveats about the study as a whole (``ci_not_converged``: the
            configurations whose interval missed the target when the cycles ran out).
        output_dir: the study directory (set on load; not written to the file).
    """

    schema_version: str = STUDY_SCHEMA_VERSION
    llem_version: str = __version__
    name: str
    study_design_hash: str
    started_at: datetime
    ended_at: datetime
    execution: dict[str, Any] = Field(default_factory=dict)
    mixed_execution: list[str] = Field(default_factory=list)
    experiments: list[ExperimentAggregate] = Field(default_factory=list)
    entries: list[StudyEntry] = Field(default_factory=list)
    failed: list[StudyEntry] = Field(default_factory=list)
    skipped: list[StudyEntry] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    target_ci_pct: float | None = None
    n_cycles_run: int | None = None
    warnings: list[MeasurementWarning] = Field(default_factory=list)
    output_dir: str | None = Field(None, exclude=True)


def _steady(result: ExperimentResult, name: str) -> float | None:
    """A steady-state figure of a serving run (None where there is none)."""
    steady = result.serving.steady_state if result.serving else None
    return None if steady is None else cast(float | None, getattr(steady, name))


def _goodput(result: ExperimentResult, name: str) -> float | None:
    """A goodput figure of a run with ``load.slo`` (None without)."""
    good = result.serving.goodput if result.serving else None
    return None if good is None else cast(float | None, getattr(good, name))


def _attributed(result: ExperimentResult, name: str) -> float | None:
    """A figure of the run's energy attribution (None without an energy timeline)."""
    attribution = result.attribution
    return None if attribution is None else cast(float | None, getattr(attribution, name))


def _per_request(result: ExperimentResult, name: str) -> float | None:
    """A statistic of the energy attributed per completed request (None without)."""
    attribution = result.attribution
    spread = None if attribution is None else attribution.per_request
    return None if spread is None else cast(float | None, getattr(spread, name))


# Energy per unit of work, raw and idle-adjusted: each a per-cycle column of results.parquet
# and an ExperimentAggregate field of the same name.
_DENOMINATORS = (
    "energy_per_output_token_j", "energy_per_output_token_adjusted_j",
    "energy_per_total_token_j", "energy_per_total_token_adjusted_j",
    "energy_per_request_j", "energy_per_request_adjusted_j",
    "energy_per_1k_requests_wh", "energy_per_1k_requests_adjusted_wh",
)  # fmt: skip


def _metric(name: str) -> Callable[[ExperimentResult], float | None]:
    """Read ``name`` from a result's metrics."""
    return lambda r: cast(float | None, getattr(r.metrics, name))


# Per-cycle figures summarised over cycles; each field of ExperimentAggregate of that name.
_SUMMARISED: dict[str, Callable[[ExperimentResult], float | None]] = {
    "energy_total_j": lambda r: r.energy.energy_total_j,
    "energy_adjusted_j": lambda r: r.energy.energy_adjusted_j,
    **{name: _metric(name) for name in _DENOMINATORS},
    "energy_per_prompt_token_j": lambda r: _attributed(r, "energy_per_prompt_token_j"),
    "energy_per_decode_token_j": lambda r: _attributed(r, "energy_per_decode_token_j"),
    "output_tokens_per_s": lambda r: r.metrics.output_tokens_per_s,
    "requests_per_s": lambda r: r.metrics.requests_per_s,
    "error_rate": lambda r: r.metrics.error_rate,
    "ttft_mean_s": lambda r: r.metrics.ttft.mean_s,
    "itl_mean_s": lambda r: r.metrics.itl.mean_s,
    "tpot_mean_s": lambda r: r.metrics.tpot.mean_s,
    "e2e_mean_s": lambda r: r.metrics.e2e_latency.mean_s,
    "steady_state_energy_per_request_j": lambda r: _steady(r, "energy_per_request_j"),
    "steady_state_energy_per_output_token_j": lambda r: _steady(r, "energy_per_output_token_j"),
    "achieved_rate_rps": lambda r: r.serving.achieved_rate_rps if r.serving else None,
    "goodput_rps": lambda r: _goodput(r, "goodput_rps"),
    "good_fraction": lambda r: _goodput(r, "good_fraction"),
}

# Per-cycle columns of results.parquet: name (with unit) -> (Arrow type alias, value from a
# result); the alias names a pyarrow type (pa.type_for_alias) so pyarrow loads only on writing.
_ROW_METRICS: dict[str, tuple[str, Callable[[ExperimentResult], Any]]] = {
    "energy_total_j": ("float64", lambda r: r.energy.energy_total_j),
    "energy_adjusted_j": ("float64", lambda r: r.energy.energy_adjusted_j),
    **{name: ("float64", _metric(name)) for name in _DENOMINATORS},
    # the energy attribution (null without an energy timeline)
    "prefill_energy_j": ("float64", lambda r: _attributed(r, "prefill_energy_j")),
    "decode_energy_j": ("float64", lambda r: _attributed(r, "decode_energy_j")),
    "overhead_energy_j": ("float64", lambda r: _attributed(r, "overhead_energy_j")),
    "energy_per_prompt_token_j": ("float64", lambda r: _attributed(r, "energy_per_prompt_token_j")),
    "energy_per_decode_token_j": ("float64", lambda r: _attributed(r, "energy_per_decode_token_j")),
    "request_energy_mean_j": ("float64", lambda r: _per_request(r, "mean_j")),
    "request_energy_median_j": ("float64", lambda r: _per_request(r, "median_j")),
    "request_energy_p95_j": ("float64", lambda r: _per_request(r, "p95_j")),
    "output_tokens_per_s": ("float64", lambda r: r.metrics.output_tokens_per_s),
    "input_tokens_per_s": ("float64", lambda r: r.metrics.input_tokens_per_s),
    "requests_per_s": ("float64", lambda r: r.metrics.requests_per_s),
    "ttft_mean_s": ("float64", lambda r: r.metrics.ttft.mean_s),
    "ttft_p95_s": ("float64", lambda r: r.metrics.ttft.p95_s),
    "itl_mean_s": ("float64", lambda r: r.metrics.itl.mean_s),
    "itl_p95_s": ("float64", lambda r: r.metrics.itl.p95_s),
    "tpot_mean_s": ("float64", lambda r: r.metrics.tpot.mean_s),
    "tpot_p95_s": ("float64", lambda r: r.metrics.tpot.p95_s),
    "e2e_mean_s": ("float64", lambda r: r.metrics.e2e_latency.mean_s),
    "e2e_p95_s": ("float64", lambda r: r.metrics.e2e_latency.p95_s),
    "scheduled_rate_rps": (
        "float64",
        lambda r: r.serving.scheduled_rate_rps if r.serving else None,
    ),
    "achieved_rate_rps": ("float64", lambda r: r.serving.achieved_rate_rps if r.serving else None),
    "steady_state_duration_s": ("float64", lambda r: _steady(r, "duration_s")),
    "steady_state_energy_per_request_j": ("float64", lambda r: _steady(r, "energy_per_request_j")),
    "steady_state_energy_per_output_token_j": (
        "float64",
        lambda r: _steady(r, "energy_per_output_token_j"),
    ),
    "goodput_rps": ("float64", lambda r: _goodput(r, "goodput_rps")),
    "good_fraction": ("float64", lambda r: _goodput(r, "good_fraction")),
    "duration_s": ("float64", lambda r: r.metrics.duration_s),
    "n_requests": ("int64", lambda r: r.metrics.n_requests),
    "n_failed_requests": ("int64", lambda r: r.metrics.n_failed),
    "error_rate": ("float64", lambda r: r.metrics.error_rate),
    "total_output_tokens": ("int64", lambda r: r.metrics.total_output_tokens),
    "measurement_method": ("string", lambda r: r.measurement_method),
    "is_estimate": ("bool", lambda r: r.energy.is_estimate),
}


def _entry_columns() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "experiment_index": pa.int64(),
        "experiment_name": pa.string(),
        "cycle_index": pa.int64(),
        "status": pa.string(),
        "result_dir": pa.string(),
        "error": pa.string(),
        "started_at": pa.timestamp("us", tz="UTC"),
    }


def aggregate_study(
    study_dir: Path,
    name: str,
    design_hash: str,
    execution: dict[str, Any],
    experiments: Sequence[dict[str, Any]],
    entries: Sequence[StudyEntry],
    started_at: datetime,
    ended_at: datetime,
) -> StudyResult:
    """Statistics over cycles for every experiment of a study, from its result directories.

    Args:
        study_dir: the study directory; entries' ``result_dir`` are relative to it.
        name: the study's name.
        design_hash: its study_design_hash.
        execution: the execution protocol as run.
        experiments: the resolved experiment configs (JSON-able dicts), in index order.
        entries: every (experiment, cycle) and its status.
        started_at: when the study started.
        ended_at: when it ended.

    With ``execution["target_ci_pct"]`` set, each aggregate says whether its interval of J
    per output token is within the target, and the study warns ``ci_not_converged`` naming
    those that are not (the cycles ran out first).

    Raises:
        ResultsError: a done entry's result or requests cannot be read.
    """
    target = execution.get("target_ci_pct")
    target_ci_pct = None if target is None else float(target)
    aggregates = [
        _aggregate_experiment(study_dir, index, config, entries, target_ci_pct)
        for index, config in enumerate(experiments)
    ]
    n_cycles_run = len({e.cycle_index for e in entries if e.status in ("done", "failed")})
    return StudyResult(
        name=name,
        study_design_hash=design_hash,
        started_at=started_at,
        ended_at=ended_at,
        execution=execution,
        mixed_execution=mixed_execution(execution, entries),
        experiments=aggregates,
        entries=list(entries),
        failed=[e for e in entries if e.status == "failed"],
        skipped=[e for e in entries if e.status == "skipped"],
        files=_study_files(study_dir, entries),
        target_ci_pct=target_ci_pct,
        n_cycles_run=n_cycles_run,
        warnings=_not_converged(aggregates, target_ci_pct, n_cycles_run),
    )


def mixed_execution(execution: Mapping[str, Any], entries: Sequence[StudyEntry]) -> list[str]:
    """The execution fields whose value differs between ``execution`` and the settings any
    entry ran under, sorted; not those that decide how many cycles run (``n_cycles``,
    ``target_ci_pct``, ``max_cycles``): they change no run's protocol."""
    ran = [e.execution for e in entries if e.execution is not None]
    keys = {key for settings in ran for key in settings} - _CYCLE_COUNT_FIELDS
    return sorted(key for key in keys if any(s.get(key) != execution.get(key) for s in ran))


_CYCLE_COUNT_FIELDS = {"n_cycles", "target_ci_pct", "max_cycles"}


@dataclass(frozen=True)
class TokenEnergyInterval:
    """The 95% interval of a configuration's mean J per output token over its finished
    cycles (:func:`token_energy_interval`).

    Attributes:
        n: the cycles with a J per output token (done, with an energy figure).
        mean_j: their mean; None without any.
        half_width_j: the half-width; None for fewer than 2 cycles.
        note: why it covers only the run-to-run spread, when it does.
    """

    n: int
    mean_j: float | None
    half_width_j: float | None
    note: str | None

    @property
    def pct(self) -> float | None:
        """The half-width as a percentage of the mean; None without one (or a mean of 0)."""
        if self.half_width_j is None or not self.mean_j:
            return None
        return 100.0 * self.half_width_j / abs(self.mean_j)

    def within(self, target_pct: float) -> bool:
        """Whether the half-width is at most ``target_pct`` % of the mean (never without an
        interval: fewer than 2 cycles cannot converge)."""
        pct = self.pct
        return pct is not None and pct <= target_pct


def token_energy_interval(results: Sequence[ExperimentResult]) -> TokenEnergyInterval:
    """The 95% interval of the mean J per output token over ``results`` (one per cycle):
    the spread over cycles and the sampler's own bound on each cycle's figure
    (``energy.uncertainty_j / metrics.total_output_tokens``), combined by
    :func:`~llenergymeasure.results.stats.combined_ci95_half_width`. Where a cycle's energy is
    an estimate or its sampler states no bound, the interval covers only the spread, and
    ``note`` says so. Cycles without a J per output token (no energy measured) are left out.
    """
    measured = [r for r in results if r.metrics.energy_per_output_token_j is not None]
    values = [cast(float, r.metrics.energy_per_output_token_j) for r in measured]
    bounds = [_token_bound_j(r) for r in measured]
    note = _spread_only(measured)
    kept = None if note is not None else [cast(float, b) for b in bounds]
    return TokenEnergyInterval(
        n=len(values),
        mean_j=math.fsum(values) / len(values) if values else None,
        half_width_j=combined_ci95_half_width(values, kept),
        note=note,
    )


def _token_bound_j(result: ExperimentResult) -> float | None:
    """The sampler's bound on the run's J per output token; None where it states none."""
    bound_j, tokens = result.energy.uncertainty_j, result.metrics.total_output_tokens
    return None if bound_j is None or tokens <= 0 else bound_j / tokens


def _spread_only(results: Sequence[ExperimentResult]) -> str | None:
    """Why the sampler's bound cannot widen these cycles' interval; None where it can."""
    estimates = sorted({r.energy.method for r in results if r.energy.is_estimate})
    if estimates:
        return (
            "covers only the run-to-run spread: the energy is an estimate "
            f"({', '.join(estimates)}), with no measured bound"
        )
    unbounded = sorted({r.energy.method for r in results if _token_bound_j(r) is None})
    if unbounded:
        return (
            "covers only the run-to-run spread: the sampler "
            f"({', '.join(unbounded)}) states no uncertainty bound"
        )
    return None


def token_energy_intervals(
    study_dir: Path, entries: Sequence[StudyEntry], n_experiments: int
) -> list[TokenEnergyInterval]:
    """Each experiment's :func:`token_energy_interval`, in index order, from the
    ``result.json`` of its done entries (a failed entry counts as missing).

    Raises:
        ResultsError: a done entry's result cannot be read.
    """
    return [
        token_energy_interval([load_result(_run_dir(study_dir, e)) for e in _done(entries, i)])
        for i in range(n_experiments)
    ]


def _done(entries: Sequence[StudyEntry], index: int) -> list[StudyEntry]:
    """Experiment ``index``'s done entries, by cycle."""
    mine = (e for e in entries if e.experiment_index == index and e.status == "done")
    return sorted(mine, key=lambda e: e.cycle_index)


def _not_converged(
    aggregates: Sequence[ExperimentAggregate], target_ci_pct: float | None, n_cycles_run: int
) -> list[MeasurementWarning]:
    """The ``ci_not_converged`` warning naming the configurations whose interval missed the
    target; none where every one is within it (or there is no target)."""
    missed = [a for a in aggregates if a.ci_converged is False]
    if target_ci_pct is None or not missed:
        return []
    named = ", ".join(_interval_text(a) for a in missed)
    return [
        MeasurementWarning.of(
            WarningCode.CI_NOT_CONVERGED,
            f"after {n_cycles_run} cycles (the execution.max_cycles limit) the 95% interval "
            f"of J per output token is wider than ±{target_ci_pct:g} % of the mean for "
            f"{len(missed)} of {len(aggregates)} configurations: {named}",
        )
    ]


def _interval_text(aggregate: ExperimentAggregate) -> str:
    pct = aggregate.energy_per_output_token_ci95_pct
    if pct is not None:
        return f"{aggregate.experiment_name} (±{pct:.3g} %)"
    n = aggregate.energy_per_output_token_j.n
    return f"{aggregate.experiment_name} (no interval: {n} cycles with a J per output token)"


def _aggregate_experiment(
    study_dir: Path,
    index: int,
    config: dict[str, Any],
    entries: Sequence[StudyEntry],
    target_ci_pct: float | None,
) -> ExperimentAggregate:
    mine = sorted((e for e in entries if e.experiment_index == index), key=lambda e: e.cycle_index)
    done = _done(entries, index)
    results: list[ExperimentResult] = []
    records: list[RequestRecord] = []
    for entry in done:
        run_dir = _run_dir(study_dir, entry)
        result = load_result(run_dir)
        results.append(result)
        records.extend(load_requests(run_dir / (result.requests_file or REQUESTS_FILE)))
    pooled = request_latencies(records)
    aggregate = ExperimentAggregate(
        experiment_index=index,
        experiment_name=_experiment_name(index, config, mine),
        config=config,
        n_cycles_done=len(done),
        ttft_pooled=pooled.ttft,
        itl_pooled=pooled.itl,
        tpot_pooled=pooled.tpot,
        e2e_latency_pooled=pooled.e2e_latency,
    )
    for field, value in _SUMMARISED.items():
        setattr(aggregate, field, summary_stats([value(r) for r in results]))
    interval = token_energy_interval(results)
    aggregate.energy_per_output_token_ci95_half_width_j = interval.half_width_j
    aggregate.energy_per_output_token_ci95_pct = interval.pct
    aggregate.energy_per_output_token_ci_note = interval.note
    aggregate.ci_converged = None if target_ci_pct is None else interval.within(target_ci_pct)
    return aggregate


def _experiment_name(index: int, config: Mapping[str, Any], entries: Sequence[StudyEntry]) -> str:
    if entries:
        return entries[0].experiment_name
    return str(config.get("name") or f"experiment-{index}")


def _run_dir(study_dir: Path, entry: StudyEntry) -> Path:
    if entry.result_dir is None:
        raise ResultsError(
            f"{entry.experiment_name} cycle {entry.cycle_index + 1} is done but has no "
            "result directory"
        )
    return study_dir / entry.result_dir


def _study_files(study_dir: Path, entries: Sequence[StudyEntry]) -> list[str]:
    """Every result directory an entry points to and every visible file of the study,
    relative, sorted; a result directory no entry points to (left by an interrupted study)
    is not the study's, and neither are its files."""
    runs = {Path(e.result_dir).as_posix() for e in entries if e.result_dir is not None}
    paths = set(runs)
    paths.update(_visible_files(study_dir, study_dir, runs))
    return sorted(paths)


def _visible_files(folder: Path, root: Path, runs: set[str]) -> Iterator[str]:
    """Files under ``folder`` whose path has no hidden part (staging and temp files are),
    skipping result directories not in ``runs``."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return
    for child in children:
        if child.name.startswith("."):
            continue
        relative = child.relative_to(root).as_posix()
        if child.is_dir():
            if (child / RESULT_FILE).is_file() and relative not in runs:
                continue
            yield from _visible_files(child, root, runs)
        elif child.is_file():
            yield relative


def write_study_result(study: StudyResult, study_dir: Path) -> Path:
    """Write ``study_result.json`` and ``results.parquet`` into ``study_dir``, each atomically.

    The per-cycle rows of ``results.parquet`` are read from the done entries' ``result.json``.
    ``study.output_dir`` is set to ``study_dir``.

    Returns:
        The path of ``study_result.json``.

    Raises:
        ResultsError: a file could not be written, or a done entry's result cannot be read.
    """
    for file in (STUDY_RESULT_FILE, STUDY_TABLE_FILE):
        if file not in study.files:
            study.files = sorted([*study.files, file])
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = study_table(study, study_dir)
    target = study_dir / STUDY_TABLE_FILE
    try:
        replace_atomically(target, lambda tmp: pq.write_table(table, tmp))
        target = study_dir / STUDY_RESULT_FILE
        write_text_atomically(target, study.model_dump_json(indent=2))
    except OSError as exc:
        raise ResultsError(
            f"cannot write study results: {describe_os_error(exc, target)}"
        ) from None
    except pa.ArrowException as exc:
        raise ResultsError(f"cannot write study results: {target}: {exc}") from None
    study.output_dir = str(study_dir)
    return target


def study_table(study: StudyResult, study_dir: Path) -> pa.Table:
    """One row per entry (experiment × cycle): identity, status, config columns, metrics.

    Config fields become ``config.<dotted.path>`` columns; metric columns are null for entries
    that are not done.

    Raises:
        ResultsError: a done entry's result cannot be read.
    """
    import pyarrow as pa

    configs = {a.experiment_index: a.config for a in study.experiments}
    entries = sorted(study.entries, key=lambda e: (e.experiment_index, e.cycle_index))
    results = [load_result(_run_dir(study_dir, e)) if e.status == "done" else None for e in entries]
    flat = [flatten(configs.get(e.experiment_index, {}), "config") for e in entries]
    config_columns = _config_columns(flat)

    columns: dict[str, pa.Array] = {
        name: pa.array([getattr(e, name) for e in entries], type=kind)
        for name, kind in _entry_columns().items()
    }
    for key in config_columns:
        columns[key] = _config_column([row.get(key) for row in flat])
    for name, (kind, value) in _ROW_METRICS.items():
        arrow_type = pa.type_for_alias(kind)
        columns[name] = pa.array([value(r) if r else None for r in results], type=arrow_type)
    return pa.table(columns)


def _config_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every flattened key in first-seen order, less a section that is null wherever it is not
    expanded into sub-keys (e.g. ``config.pytorch`` beside ``config.pytorch.batch_size``)."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    sections = {key.rsplit(".", 1)[0] for key in keys if "." in key}
    return [
        key for key in keys if key not in sections or any(row.get(key) is not None for row in rows)
    ]


def _config_column(values: list[Any]) -> pa.Array:
    """An Arrow column for one config field: its natural type where every row agrees, else
    text (non-string values as JSON). Numbers beside inf (``load.request_rate: [1, inf]``,
    also as a JSON file spells it, "Infinity") make a float column."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    kinds = {_scalar_kind(v) for v in present}
    if kinds == {"bool"}:
        return pa.array(values, type=pa.bool_())
    if kinds == {"int"}:
        return pa.array(values, type=pa.int64())
    if kinds and kinds <= {"int", "float"}:
        floats = [None if v is None else _NON_FINITE.get(v, v) for v in values]
        return pa.array(floats, type=pa.float64())
    return pa.array([None if v is None else _as_text(v) for v in values], type=pa.string())


_NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
"""How JSON writers (pydantic's ``ser_json_inf_nan="strings"``) spell non-finite floats."""


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float) or (isinstance(value, str) and value in _NON_FINITE):
        return "float"
    return "other"


def _as_text(value: Any) -> str:
    """Strings as they are; anything else as JSON (``false``, ``8``, ``["a"]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def load_study_result(path: str | os.PathLike[str]) -> StudyResult:
    """Load a StudyResult from a study directory or its ``study_result.json``.

    Unknown fields (from newer versions) are ignored; ``output_dir`` is set to the directory.

    Raises:
        ResultsError: the path does not hold a readable study result.
    """
    file = Path(path)
    if file.is_dir():
        file = file / STUDY_RESULT_FILE
    if not file.is_file():
        raise ResultsError(
            f"no study result found at {path} (expected a study directory or {STUDY_RESULT_FILE})"
        )
    try:
        study = StudyResult.model_validate_json(file.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ResultsError(f"{file}: not a readable llenergymeasure study result: {exc}") from None
    study.output_dir = str(file.parent)
    return study
