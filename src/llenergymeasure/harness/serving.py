"""How a serving run met its load, from its request records and the window's energy timeline.

Every time here is in seconds from the measured window's start (the records' own clock).

**In flight.** A request is in flight from its ``submit_s`` (handed to the engine) to its
``end_s``; where one ends as another is submitted at the same instant, the end counts first,
so a closed-loop pool never seems above its cap. ``mean_in_flight`` is the time average (the
summed overlap of every request with an interval, over the interval's length).

**Steady state** leaves out the ramp-up (the engine filling) and the drain (the last requests
finishing alone), which distort energy per token:

* ``concurrency`` mode (as the ML.ENERGY benchmark does with ``max_num_seqs``): from when the
  requests in flight first reach ``max_concurrency`` to the first completion after the last
  submission, the moment in-flight requests first fall below the cap during the drain;
* ``rate`` mode: from the first completion (before it, requests only arrive) to the last
  arrival (after it, they only complete): the interval where arrivals and completions balance.

Where the engine reports its own count of running requests (a server's ``/metrics``, read
into the telemetry timeline: see :func:`running_counts`), concurrency mode starts at the first
read of that count at or above ``max_concurrency`` taken once the client has that many in
flight: requests sent may still wait in the server's queue, and the engine is full only once
it runs them all (reads before then count other clients' requests, or are stale). The count
is read once per telemetry interval, so the start is at most one interval late, never early.

A completion or an output chunk belongs to the interval ``(start_s, end_s]`` when its time lies
in it (the half-open form counts nothing twice where intervals meet). The interval's energy
comes from :meth:`EnergyTimeline.interval`: the timeline's zero is the sampler's ``start()``,
taken just before the window's zero, so the harness passes how far apart they can be
(``align_s``) and the bound grows by ``align_s`` × power at each end.

**Goodput** (``load.slo``): a request is good when it meets every target set (see
:func:`meets_slo`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from llenergymeasure.config.load import LoadConfig, SloConfig
from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.energy.timeline import EnergyTimeline
from llenergymeasure.harness.metrics import per_unit
from llenergymeasure.load import LoadPlan
from llenergymeasure.results.models import Goodput, ServingMetrics, SteadyState
from llenergymeasure.results.records import RequestRecord, TelemetrySample
from llenergymeasure.results.stats import completed as completed_records
from llenergymeasure.results.stats import latency_stats

CONCURRENCY_RULE = (
    "concurrency: from when in-flight requests first reach max_concurrency to the first "
    "completion after the last submission"
)
CONCURRENCY_SERVER_RULE = (
    "concurrency: from the first read of the server's own count of running requests (its "
    "/metrics) at max_concurrency, once that many are in flight, to the first completion "
    "after the last submission"
)
RATE_RULE = "rate: from the first completion to the last arrival"

ServerCounts = Sequence[tuple[float, int]]
"""The server's own count of running requests: ``(time, count)`` in time order."""


@dataclass(frozen=True)
class WindowEnergy:
    """What the serving figures need from the window's energy reading.

    Attributes:
        total_j: the whole window's energy (None when nothing was measured).
        timeline: the reads over time (None for a sampler that reports only a total).
        align_s: how far the timeline's zero (the sampler's ``start()``) may lie from the
            window's zero; it widens every interval's bound.
        missing: why no sub-window's energy can be known (None when there is a timeline).
    """

    total_j: float | None
    timeline: EnergyTimeline | None
    align_s: float
    missing: str | None

    @classmethod
    def of(cls, reading: EnergyReading, align_s: float) -> WindowEnergy:
        """The window energy of a sampler's reading."""
        missing = None
        if reading.energy_total_j is None:
            missing = f"no energy was measured (sampler '{reading.method}')"
        elif reading.timeline is None:
            missing = (
                f"the '{reading.method}' sampler reports only a total for the window, not a "
                "timeline, so no sub-window's energy is known"
            )
        return cls(reading.energy_total_j, reading.timeline, align_s, missing)


@dataclass(frozen=True)
class SteadyInterval:
    """The steady-state interval found in the records, or why there is none.

    Attributes:
        start_s: where it starts.
        end_s: where it ends (at or before ``start_s`` when it is empty).
        rule: the rule that found it, in words.
        empty_because: why there is no interval (None when there is one).
    """

    start_s: float
    end_s: float
    rule: str
    empty_because: str | None = None


def serving_metrics(
    load: LoadConfig,
    plan: LoadPlan,
    records: Sequence[RequestRecord],
    window_s: float,
    energy: WindowEnergy,
    server_running: ServerCounts = (),
) -> ServingMetrics | None:
    """The serving section of a result: None for an offline run without ``load.slo``; for an
    offline run with one, only its goodput (mode ``offline``).

    Args:
        load: the experiment's ``load:`` section.
        plan: the plan the window ran (its schedule gives the scheduled rate).
        records: the window's records, ``slo_met`` set (see :func:`judge_requests`).
        window_s: the measured window's length.
        energy: the window's energy and timeline.
        server_running: the server's own running-request counts in the window (empty when
            the engine reports none); they find where a concurrency cap is reached.
    """
    good = goodput(records, load.slo, window_s, energy.total_j)
    if not load.is_serving:
        return None if good is None else ServingMetrics(mode="offline", goodput=good)
    steady = steady_interval(plan.mode, records, plan.max_concurrency, server_running)
    return ServingMetrics(
        mode=plan.mode,
        requested_rate_rps=load.request_rate,
        scheduled_rate_rps=scheduled_rate_rps(plan),
        achieved_rate_rps=achieved_rate_rps(records),
        max_concurrency=plan.max_concurrency,
        submit_lag=latency_stats([lag for r in records if (lag := r.submit_lag_s) is not None]),
        peak_in_flight=peak_in_flight(records),
        mean_in_flight=mean_in_flight(records, 0.0, window_s),
        steady_state=None if steady.empty_because else steady_state(steady, records, energy),
        steady_state_note=steady.empty_because,
        goodput=good,
    )


def scheduled_rate_rps(plan: LoadPlan) -> float | None:
    """The schedule's own rate, (n - 1) / last arrival; None without a schedule or when every
    arrival is at 0 (an infinite rate)."""
    offsets = plan.offsets_s
    if not offsets or len(offsets) < 2 or offsets[-1] <= 0:
        return None
    return (len(offsets) - 1) / offsets[-1]


def achieved_rate_rps(records: Sequence[RequestRecord]) -> float | None:
    """(n - 1) / (last submit - first submit); None for fewer than two requests or when all
    were submitted at one instant."""
    if len(records) < 2:
        return None
    submits = [r.submit_s for r in records]
    span_s = max(submits) - min(submits)
    return (len(records) - 1) / span_s if span_s > 0 else None


def _events(records: Sequence[RequestRecord]) -> list[tuple[float, int]]:
    """``(time, +1 submit / -1 end)``, in time order with ends first at equal times."""
    return sorted([(r.submit_s, 1) for r in records] + [(r.end_s, -1) for r in records])


def peak_in_flight(records: Sequence[RequestRecord]) -> int:
    """The most requests in flight at once."""
    peak = count = 0
    for _, step in _events(records):
        count += step
        peak = max(peak, count)
    return peak


def mean_in_flight(records: Sequence[RequestRecord], start_s: float, end_s: float) -> float | None:
    """Time-averaged requests in flight over ``[start_s, end_s]`` (None for an empty interval)."""
    if end_s <= start_s:
        return None
    overlap_s = sum(max(0.0, min(r.end_s, end_s) - max(r.submit_s, start_s)) for r in records)
    return overlap_s / (end_s - start_s)


def running_counts(samples: Sequence[TelemetrySample]) -> list[tuple[float, int]]:
    """The server's own running-request counts among the measured window's telemetry
    samples, ``(time, count)`` in time order (empty when it reports none)."""
    return sorted(
        (s.timestamp_s, s.requests_running)
        for s in samples
        if s.phase == "window" and s.requests_running is not None
    )


def steady_interval(
    mode: str,
    records: Sequence[RequestRecord],
    max_concurrency: int | None,
    server_running: ServerCounts = (),
) -> SteadyInterval:
    """The steady-state interval of a ``rate`` or ``concurrency`` run (module docstring);
    ``server_running`` (the engine's own counts) finds where a concurrency cap is reached."""
    if not records:
        rule = CONCURRENCY_RULE if mode == "concurrency" else RATE_RULE
        return SteadyInterval(0.0, 0.0, rule, "the window has no requests")
    if mode == "concurrency":
        assert max_concurrency is not None  # the config requires it in concurrency mode
        return _concurrency_interval(records, max_concurrency, server_running)
    return _rate_interval(records)


def _rate_interval(records: Sequence[RequestRecord]) -> SteadyInterval:
    last_submit_s = max(r.submit_s for r in records)
    ends_s = [r.end_s for r in completed_records(records)]  # a fast failure is no completion
    if not ends_s:
        return SteadyInterval(last_submit_s, last_submit_s, RATE_RULE, "no request completed")
    first_end_s = min(ends_s)
    if last_submit_s <= first_end_s:
        return SteadyInterval(first_end_s, last_submit_s, RATE_RULE, (
            f"the last arrival ({last_submit_s:.3f} s) came before the first completion "
            f"({first_end_s:.3f} s): arrivals and completions never overlap (a higher "
            "request_rate than the engine serves, or too few requests)"
        ))  # fmt: skip
    return SteadyInterval(first_end_s, last_submit_s, RATE_RULE)


def _concurrency_interval(
    records: Sequence[RequestRecord], cap: int, server_running: ServerCounts
) -> SteadyInterval:
    start_s = _cap_reached_s(records, cap)
    if start_s is None:
        return SteadyInterval(0.0, 0.0, CONCURRENCY_RULE, (
            f"the requests in flight never reached max_concurrency ({cap}; peak "
            f"{peak_in_flight(records)}): each finished before the pool refilled"
        ))  # fmt: skip
    rule = CONCURRENCY_SERVER_RULE if server_running else CONCURRENCY_RULE
    if server_running:
        server_start_s = _server_cap_reached_s(server_running, cap, start_s)
        if isinstance(server_start_s, str):
            return SteadyInterval(0.0, 0.0, rule, server_start_s)
        start_s = server_start_s
    last_submit_s = max(r.submit_s for r in records)
    later = [r.end_s for r in records if r.end_s > last_submit_s]
    if not later:
        return SteadyInterval(start_s, last_submit_s, rule, (
            f"no request completed after the last submission ({last_submit_s:.3f} s)"
        ))  # fmt: skip
    end_s = min(later)
    if end_s <= start_s:
        return SteadyInterval(start_s, end_s, rule, (
            f"the cap was reached at {start_s:.3f} s, no earlier than the first completion "
            f"after the last submission ({end_s:.3f} s)"
        ))  # fmt: skip
    return SteadyInterval(start_s, end_s, rule)


def _server_cap_reached_s(server_running: ServerCounts, cap: int, sent_s: float) -> float | str:
    """The first read of the server's running count at ``cap`` or more, at or after
    ``sent_s`` (when the client had ``cap`` in flight); why there is none, when none is."""
    reads = [(time_s, count) for time_s, count in server_running if time_s >= sent_s]
    reached_s = next((time_s for time_s, count in reads if count >= cap), None)
    if reached_s is not None:
        return reached_s
    return (
        f"the server's own count of running requests never reached max_concurrency ({cap}; "
        f"peak {max((c for _, c in reads), default=0)} in {len(reads)} reads of its /metrics "
        f"after {cap} were in flight at {sent_s:.3f} s): it runs fewer at once (e.g. vLLM's "
        "--max-num-seqs), or each read fell where the pool was refilling"
    )


def _cap_reached_s(records: Sequence[RequestRecord], cap: int) -> float | None:
    """When the requests in flight first reach ``cap`` (None when they never do)."""
    count = 0
    for time_s, step in _events(records):
        count += step
        if count >= cap:
            return time_s
    return None


def steady_state(
    interval: SteadyInterval, records: Sequence[RequestRecord], energy: WindowEnergy
) -> SteadyState:
    """What was done and spent inside a (non-empty) steady-state interval."""
    start_s, end_s = interval.start_s, interval.end_s
    duration_s = end_s - start_s
    done = completed_records(records)  # a failed request held a slot but completed nothing
    completed = sum(start_s < r.end_s <= end_s for r in done)
    tokens = sum(
        n
        for r in done
        for t, n in zip(r.chunk_times_s, r.chunk_tokens, strict=True)
        if start_s < t <= end_s
    )
    measured = None
    note = energy.missing
    if energy.timeline is not None:
        measured = energy.timeline.interval(start_s, end_s, energy.align_s)
        if measured is None:
            note = (
                f"the energy timeline does not cover {start_s:.3f}-{end_s:.3f} s "
                "(its reads start later or end sooner)"
            )
    energy_j = None if measured is None else measured.energy_j
    return SteadyState(
        start_s=start_s,
        end_s=end_s,
        duration_s=duration_s,
        rule=interval.rule,
        requests_completed=completed,
        output_tokens=tokens,
        output_tokens_per_s=tokens / duration_s,
        mean_in_flight=mean_in_flight(records, start_s, end_s),
        energy_j=energy_j,
        energy_uncertainty_j=None if measured is None else measured.uncertainty_j,
        energy_per_output_token_j=per_unit(energy_j, tokens),
        energy_per_request_j=per_unit(energy_j, completed),
        energy_note=note,
    )


def meets_slo(record: RequestRecord, slo: SloConfig) -> bool:
    """Whether a request meets every target of ``slo`` (each ``<=`` its target).

    ``ttft_ms`` is judged on its TTFT, ``itl_ms`` on the mean gap between its output chunks,
    ``tpot_ms`` on its TPOT, ``e2e_ms`` on its end-to-end latency. A request with no output
    fails the TTFT, ITL and TPOT targets; one with a single chunk has no gap (it meets
    ``itl_ms``) and one with a single token no TPOT (it meets ``tpot_ms``), as ``vllm bench``
    counts its TPOT as 0. A failed request (``record.failed``) is never good.
    """
    if record.failed:
        return False
    ttft_s = record.ttft_s
    gaps_s = record.itl_s
    measured_s = {
        "ttft_ms": ttft_s,
        "itl_ms": sum(gaps_s) / len(gaps_s) if gaps_s else 0.0,
        "tpot_ms": record.tpot_s or 0.0,
        "e2e_ms": record.e2e_s,
    }
    if ttft_s is None or record.output_tokens == 0:
        measured_s.update(ttft_ms=None, itl_ms=None, tpot_ms=None)
    return all(
        (value := measured_s[name]) is not None and value * 1e3 <= target_ms
        for name, target_ms in slo.targets_ms().items()
    )


def judge_requests(records: Sequence[RequestRecord], slo: SloConfig | None) -> list[RequestRecord]:
    """The records with ``slo_met`` set (left None without ``slo``)."""
    if slo is None:
        return list(records)
    return [replace(r, slo_met=meets_slo(r, slo)) for r in records]


def goodput(
    records: Sequence[RequestRecord],
    slo: SloConfig | None,
    window_s: float,
    energy_total_j: float | None,
) -> Goodput | None:
    """Good requests (``slo_met``) over the measured window; None without ``slo``."""
    if slo is None:
        return None
    good = sum(bool(r.slo_met) for r in records)
    return Goodput(
        targets_ms=slo.targets_ms(),
        good_requests=good,
        good_fraction=good / len(records) if records else None,
        goodput_rps=good / window_s if window_s > 0 else None,
        energy_per_good_request_j=per_unit(energy_total_j, good),
    )
