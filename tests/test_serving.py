"""Serving metrics from synthetic records and a constant-power energy timeline: in flight,
the steady-state rules, rates, the load warnings at their thresholds, SLOs and goodput."""

from __future__ import annotations

from typing import Any

import pytest

from llenergymeasure.config.load import LoadConfig, SloConfig
from llenergymeasure.energy import EnergyReading, EnergyTimeline
from llenergymeasure.harness.checks import (
    GENERATOR_LAG_S,
    RATE_SHORTFALL,
    STEADY_MIN_S,
    UNSATURATED_SHARE,
    serving_warnings,
)
from llenergymeasure.harness.serving import (
    CONCURRENCY_RULE,
    RATE_RULE,
    WindowEnergy,
    achieved_rate_rps,
    goodput,
    judge_requests,
    mean_in_flight,
    meets_slo,
    peak_in_flight,
    scheduled_rate_rps,
    serving_metrics,
    steady_interval,
    steady_state,
)
from llenergymeasure.load import LoadPlan
from llenergymeasure.results.models import LatencyStats, ServingMetrics, SteadyState
from llenergymeasure.results.records import RequestRecord

POWER_W = 200.0


def request(
    index: int, submit_s: float, end_s: float, tokens: int = 4, **fields: Any
) -> RequestRecord:
    """A request whose ``tokens`` one-token chunks are spread evenly up to its end."""
    step_s = (end_s - submit_s) / max(tokens, 1)
    times = [submit_s + step_s * (k + 1) for k in range(tokens)]
    return RequestRecord(index, 10, tokens, submit_s, times, [1] * tokens, end_s, **fields)


def constant_power(until_s: float, step_s: float = 0.5, power_w: float = POWER_W) -> EnergyTimeline:
    """A timeline of reads every ``step_s`` at a constant power, from 0 to ``until_s``."""
    n = round(until_s / step_s)
    return EnergyTimeline({"gpu:0": [(k * step_s, power_w * k * step_s) for k in range(n + 1)]})


def energy(until_s: float = 10.0, align_s: float = 0.0) -> WindowEnergy:
    return WindowEnergy(POWER_W * until_s, constant_power(until_s), align_s, None)


# A concurrency run with a cap of 2: each new request is submitted as one finishes.
POOL = [
    request(0, 0.1, 2.1),
    request(1, 0.2, 3.0),
    request(2, 2.1, 4.0),  # submitted as request 0 ended
    request(3, 3.0, 5.5),
    request(4, 4.0, 5.0),  # the last submission, as request 2 ended
]
POOL_WINDOW_S = 5.5


# --- in flight -------------------------------------------------------------------------------


def test_in_flight_counts_an_end_before_a_submit_at_the_same_instant() -> None:
    records = [request(0, 0.0, 2.0), request(1, 1.0, 3.0), request(2, 2.0, 4.0)]
    assert peak_in_flight(records) == 2  # at 2.0 request 0 ends as request 2 starts
    assert mean_in_flight(records, 0.0, 4.0) == pytest.approx(6.0 / 4.0)
    assert mean_in_flight(records, 1.0, 3.0) == pytest.approx(2.0)
    assert mean_in_flight(records, 3.0, 3.0) is None


def test_the_pool_never_exceeds_its_cap_and_reaches_it() -> None:
    assert peak_in_flight(POOL) == 2


# --- steady state ----------------------------------------------------------------------------


def test_concurrency_steady_state_is_from_the_cap_to_the_first_end_after_the_last_submit() -> None:
    interval = steady_interval("concurrency", POOL, 2)

    assert (interval.start_s, interval.end_s) == (0.2, 5.0)  # request 4 ends first after 4.0
    assert interval.rule == CONCURRENCY_RULE and interval.empty_because is None
    assert interval.start_s > 0 and interval.end_s < POOL_WINDOW_S  # strictly inside


def test_a_pool_that_never_reaches_its_cap_has_no_steady_state() -> None:
    interval = steady_interval("concurrency", POOL, 3)
    assert interval.empty_because is not None
    assert "never reached max_concurrency (3; peak 2)" in interval.empty_because


def test_rate_steady_state_runs_from_the_first_completion_to_the_last_arrival() -> None:
    records = [request(i, float(i), i + 1.5) for i in range(4)]
    interval = steady_interval("rate", records, None)
    assert (interval.start_s, interval.end_s, interval.rule) == (1.5, 3.0, RATE_RULE)
    assert interval.empty_because is None


def test_arrivals_all_before_the_first_completion_leave_no_rate_steady_state() -> None:
    records = [request(i, 0.0, 2.0 + i) for i in range(4)]  # request_rate: inf
    interval = steady_interval("rate", records, None)
    assert interval.empty_because is not None
    assert "last arrival (0.000 s) came before the first completion (2.000 s)" in (
        interval.empty_because
    )


def test_the_steady_state_counts_what_lies_in_it_and_its_energy_from_the_timeline() -> None:
    interval = steady_interval("concurrency", POOL, 2)  # (0.2, 5.0]
    state = steady_state(interval, POOL, energy(POOL_WINDOW_S))

    assert state.duration_s == pytest.approx(4.8)
    assert state.requests_completed == 4  # all but request 3 (5.5)
    # every chunk of requests 0, 1, 2 and 4 (4 each); of request 3 (3.625, 4.25, 4.875, 5.5)
    # the first three
    assert state.output_tokens == 19
    assert state.output_tokens_per_s == pytest.approx(19 / 4.8)
    assert state.energy_j == pytest.approx(POWER_W * 4.8)
    assert state.energy_per_output_token_j == pytest.approx(POWER_W * 4.8 / 19)
    assert state.energy_per_request_j == pytest.approx(POWER_W * 4.8 / 4)
    # the bound: the read segment (0.5 s at 200 W) holding each end
    assert state.energy_uncertainty_j == pytest.approx(2 * POWER_W * 0.5)
    assert state.mean_in_flight == pytest.approx(mean_in_flight(POOL, 0.2, 5.0))
    assert state.energy_note is None


def test_the_clock_alignment_widens_the_bound_by_its_energy_at_each_end() -> None:
    interval = steady_interval("concurrency", POOL, 2)
    aligned = steady_state(interval, POOL, energy(POOL_WINDOW_S, align_s=0.01))
    plain = steady_state(interval, POOL, energy(POOL_WINDOW_S))
    assert aligned.energy_j == plain.energy_j
    assert aligned.energy_uncertainty_j is not None and plain.energy_uncertainty_j is not None
    assert aligned.energy_uncertainty_j - plain.energy_uncertainty_j == pytest.approx(
        2 * 0.01 * POWER_W
    )


def test_a_sampler_with_only_a_total_gives_no_steady_state_energy_and_says_why() -> None:
    total_only = EnergyReading("codecarbon", ["cpu"], 1100.0, {"cpu": 1100.0}, 5.5, 3)
    window = WindowEnergy.of(total_only, 0.0)
    state = steady_state(steady_interval("concurrency", POOL, 2), POOL, window)

    assert state.energy_j is None and state.energy_per_request_j is None
    assert state.energy_note is not None
    assert "'codecarbon' sampler reports only a total" in state.energy_note
    assert state.requests_completed == 4 and state.output_tokens == 19  # the rest stands


def test_no_energy_at_all_is_said_so() -> None:
    nothing = EnergyReading("null", [], None, {}, 5.5, 0)
    assert WindowEnergy.of(nothing, 0.0).missing == "no energy was measured (sampler 'null')"
    with_timeline = EnergyReading(
        "nvml", ["gpu:0"], 1.0, {"gpu:0": 1.0}, 5.5, 9, timeline=constant_power(5.5)
    )
    assert WindowEnergy.of(with_timeline, 0.0).missing is None


def test_a_timeline_that_does_not_cover_the_interval_gives_a_note() -> None:
    short = WindowEnergy(1.0, constant_power(3.0), 0.0, None)
    state = steady_state(steady_interval("concurrency", POOL, 2), POOL, short)
    assert state.energy_j is None and state.energy_note is not None
    assert "does not cover 0.200-5.000 s" in state.energy_note


# --- rates -----------------------------------------------------------------------------------


def test_the_scheduled_rate_is_the_schedules_own() -> None:
    assert scheduled_rate_rps(LoadPlan("rate", (0.0, 0.5, 1.0, 2.0))) == pytest.approx(1.5)
    assert scheduled_rate_rps(LoadPlan("rate", (0.0, 0.0, 0.0))) is None  # inf
    assert scheduled_rate_rps(LoadPlan("concurrency", None, 2)) is None
    assert scheduled_rate_rps(LoadPlan("rate", (0.0,))) is None


def test_the_achieved_rate_is_from_the_submits() -> None:
    records = [request(i, 1.0 + 0.5 * i, 9.0) for i in range(5)]
    assert achieved_rate_rps(records) == pytest.approx(4 / 2.0)
    assert achieved_rate_rps(records[:1]) is None
    assert achieved_rate_rps([request(0, 1.0, 2.0), request(1, 1.0, 2.0)]) is None


# --- the serving section ---------------------------------------------------------------------


def test_an_offline_run_has_no_serving_section_unless_slo_is_set() -> None:
    records = [request(0, 0.0, 1.0)]
    offline = LoadConfig()
    assert serving_metrics(offline, LoadPlan(), records, 1.0, energy()) is None

    with_slo = LoadConfig(slo=SloConfig(e2e_ms=2000))
    judged = judge_requests(records, with_slo.slo)
    serving = serving_metrics(with_slo, LoadPlan(), judged, 1.0, energy())
    assert serving is not None and serving.mode == "offline"
    assert serving.steady_state is None and serving.peak_in_flight is None
    assert serving.goodput is not None and serving.goodput.good_requests == 1


def test_a_concurrency_run_gets_every_serving_figure() -> None:
    load = LoadConfig(mode="concurrency", max_concurrency=2)
    serving = serving_metrics(
        load, LoadPlan("concurrency", None, 2), POOL, POOL_WINDOW_S, energy(POOL_WINDOW_S)
    )
    assert serving is not None
    assert serving.mode == "concurrency" and serving.max_concurrency == 2
    assert serving.requested_rate_rps is None and serving.scheduled_rate_rps is None
    assert serving.achieved_rate_rps == pytest.approx(4 / 3.9)
    assert serving.peak_in_flight == 2 and serving.submit_lag.n == 0
    assert serving.steady_state is not None and serving.steady_state.start_s == 0.2
    assert serving.steady_state_note is None and serving.goodput is None


def test_a_rate_run_records_its_submit_lag_and_an_infinite_rate_round_trips() -> None:
    records = [
        request(i, 0.01 * i + 0.002, 3.0 + i, scheduled_s=0.01 * i, slot_wait_s=0.0)
        for i in range(3)
    ]
    load = LoadConfig(mode="rate", request_rate=float("inf"))
    serving = serving_metrics(load, LoadPlan("rate", (0.0, 0.0, 0.0)), records, 6.0, energy())
    assert serving is not None
    assert serving.submit_lag.n == 3 and serving.submit_lag.mean_s == pytest.approx(0.002)
    assert serving.steady_state is None and serving.steady_state_note  # all arrive first
    text = serving.model_dump_json()
    assert '"requested_rate_rps":"Infinity"' in text
    assert ServingMetrics.model_validate_json(text).requested_rate_rps == float("inf")


# --- warnings --------------------------------------------------------------------------------


def steady(duration_s: float, mean_in_flight: float | None = None) -> SteadyState:
    return SteadyState(
        start_s=1.0,
        end_s=1.0 + duration_s,
        duration_s=duration_s,
        rule=RATE_RULE,
        mean_in_flight=mean_in_flight,
    )


def codes(serving: ServingMetrics, window_s: float = 60.0) -> list[str]:
    return [w.code for w in serving_warnings(serving, window_s)]


@pytest.mark.parametrize(
    ("duration_s", "window_s", "warned"),
    [
        (STEADY_MIN_S, 60.0, False),
        (STEADY_MIN_S - 0.1, 40.0, True),  # under 30 s
        (31.0, 62.0, False),  # exactly half the window
        (31.0, 62.2, True),  # under half the window
    ],
)
def test_steady_state_short_at_its_thresholds(
    duration_s: float, window_s: float, warned: bool
) -> None:
    serving = ServingMetrics(mode="rate", steady_state=steady(duration_s))
    assert codes(serving, window_s) == (["steady_state_short"] if warned else [])


def test_a_missing_steady_state_is_warned_with_the_reason() -> None:
    serving = ServingMetrics(mode="concurrency", steady_state_note="the cap was never reached")
    (warning,) = serving_warnings(serving, 60.0)
    assert warning.code == "steady_state_short"
    assert "no steady-state window: the cap was never reached" in warning.message


@pytest.mark.parametrize(
    ("cap", "mean", "warned"),
    [(10, UNSATURATED_SHARE * 10, False), (10, 7.99, True), (None, 1.0, False)],
)
def test_load_unsaturated_at_its_threshold(cap: int | None, mean: float, warned: bool) -> None:
    serving = ServingMetrics(
        mode="concurrency", max_concurrency=cap, steady_state=steady(60.0, mean)
    )
    assert codes(serving) == (["load_unsaturated"] if warned else [])


@pytest.mark.parametrize(
    ("rate_rps", "p99_s", "warned"),
    [
        (1.0, GENERATOR_LAG_S, False),  # 10 ms is also 1 % of the 1 s gap
        (1.0, 0.0101, True),
        (0.5, 0.0101, True),  # above 10 ms though under 1 % of the 2 s gap
        (10.0, 0.0009, False),
        (10.0, 0.0011, True),  # above 1 % of the 100 ms gap though under 10 ms
        (None, 1.0, False),  # no finite schedule (concurrency, or inf)
    ],
)
def test_generator_lag_at_its_thresholds(
    rate_rps: float | None, p99_s: float, warned: bool
) -> None:
    serving = ServingMetrics(
        mode="rate",
        scheduled_rate_rps=rate_rps,
        achieved_rate_rps=rate_rps,
        submit_lag=LatencyStats(n=40, p99_s=p99_s),
        steady_state=steady(60.0),
    )
    assert codes(serving) == (["generator_lag"] if warned else [])


@pytest.mark.parametrize(("achieved", "warned"), [(3.81, False), (3.79, True)])
def test_rate_not_achieved_against_the_schedules_own_rate(achieved: float, warned: bool) -> None:
    serving = ServingMetrics(
        mode="rate",
        requested_rate_rps=5.0,  # the seeded schedule came out at 4/s: that is what counts
        scheduled_rate_rps=4.0,
        achieved_rate_rps=achieved,
        steady_state=steady(60.0),
    )
    warnings = serving_warnings(serving, 60.0)
    assert [w.code for w in warnings] == (["rate_not_achieved"] if warned else [])
    if warned:
        assert f"{RATE_SHORTFALL:.0%}" in warnings[0].message
        assert all(f in warnings[0].message for f in ("3.79/s", "schedule's 4/s", "requested 5/s"))


def test_an_offline_serving_section_raises_no_load_warnings() -> None:
    assert serving_warnings(ServingMetrics(mode="offline"), 1.0) == []
    assert serving_warnings(None, 1.0) == []


# --- SLOs and goodput ------------------------------------------------------------------------


def timed(ttft_s: float, gaps_s: list[float], **fields: Any) -> RequestRecord:
    """Submitted at 0, first chunk at ``ttft_s``, then chunks after ``gaps_s``."""
    times = [ttft_s]
    for gap in gaps_s:
        times.append(times[-1] + gap)
    n = len(times)
    return RequestRecord(0, 5, n, 0.0, times, [1] * n, times[-1], **fields)


# ttft 100 ms; gaps 40 and 60 ms: mean ITL 50 ms; e2e 200 ms; TPOT (200-100)/2 = 50 ms
TIMED = timed(0.1, [0.04, 0.06])


@pytest.mark.parametrize(
    ("targets", "met"),
    [
        ({"ttft_ms": 100.0}, True),
        ({"ttft_ms": 99.0}, False),
        ({"itl_ms": 50.0}, True),
        ({"itl_ms": 49.0}, False),  # the mean gap counts, not the largest (60 ms)
        ({"tpot_ms": 50.0}, True),
        ({"tpot_ms": 49.0}, False),
        ({"e2e_ms": 200.0}, True),
        ({"e2e_ms": 199.0}, False),
        ({"ttft_ms": 100.0, "e2e_ms": 199.0}, False),  # every target must be met
        ({"ttft_ms": 100.0, "itl_ms": 55.0, "tpot_ms": 51.0, "e2e_ms": 201.0}, True),
    ],
)
def test_each_slo_target_is_judged_on_its_own_figure(targets: dict[str, float], met: bool) -> None:
    assert meets_slo(TIMED, SloConfig(**targets)) is met


def test_a_request_with_no_output_fails_the_token_targets_but_not_e2e() -> None:
    empty = RequestRecord(0, 5, 0, 0.0, [], [], 0.05)
    for name in ("ttft_ms", "itl_ms", "tpot_ms"):
        assert not meets_slo(empty, SloConfig(**{name: 1e6}))
    assert meets_slo(empty, SloConfig(e2e_ms=100.0))


def test_a_single_chunk_has_no_gap_to_miss() -> None:
    single = timed(0.1, [])
    assert meets_slo(single, SloConfig(itl_ms=1.0, tpot_ms=1.0))


def test_judging_sets_slo_met_only_with_an_slo() -> None:
    assert judge_requests([TIMED], None)[0].slo_met is None
    (judged,) = judge_requests([TIMED], SloConfig(ttft_ms=50.0))
    assert judged.slo_met is False and TIMED.slo_met is None  # a copy, not the original


def test_goodput_counts_good_requests_over_the_window() -> None:
    slo = SloConfig(ttft_ms=100.0, e2e_ms=500.0)
    records = [timed(0.1, [0.05]), timed(0.1, [0.1]), timed(0.2, [0.05]), timed(0.05, [0.1])]
    judged = judge_requests(records, slo)
    assert [r.slo_met for r in judged] == [True, True, False, True]

    good = goodput(judged, slo, window_s=2.0, energy_total_j=300.0)
    assert good is not None
    assert good.targets_ms == {"ttft_ms": 100.0, "e2e_ms": 500.0}
    assert good.good_requests == 3 and good.good_fraction == pytest.approx(0.75)
    assert good.goodput_rps == pytest.approx(1.5)
    assert good.energy_per_good_request_j == pytest.approx(100.0)


def test_goodput_with_nothing_good_has_no_energy_per_good_request() -> None:
    slo = SloConfig(ttft_ms=1.0)
    good = goodput(judge_requests([TIMED], slo), slo, 2.0, 300.0)
    assert good is not None and good.good_requests == 0 and good.good_fraction == 0.0
    assert good.energy_per_good_request_j is None
    assert goodput([TIMED], None, 2.0, 300.0) is None


# --- failed requests ---------------------------------------------------------------------------


def test_a_failed_request_is_never_good_even_when_fast() -> None:
    cut = timed(0.1, [0.04], error="stream cut mid-way")
    assert not meets_slo(cut, SloConfig(ttft_ms=1e6, e2e_ms=1e6))
    assert meets_slo(timed(0.1, [0.04]), SloConfig(ttft_ms=1e6, e2e_ms=1e6))


def test_a_failed_request_counts_no_completion_or_tokens_in_the_steady_state() -> None:
    failed = [*POOL[:3], request(3, 3.0, 4.5, error="HTTP 500"), POOL[4]]
    interval = steady_interval("concurrency", failed, 2)
    state = steady_state(interval, failed, energy(POOL_WINDOW_S))
    # (0.2, 4.5]: the failure at 4.5 ends it; requests 0, 1, 2 complete inside, 3 failed there
    assert (interval.start_s, interval.end_s) == (0.2, 4.5)
    assert state.requests_completed == 3
    assert state.output_tokens == 12 + 2  # request 4's chunks at 4.25 and 4.5; none of 3's
    assert state.mean_in_flight == pytest.approx(mean_in_flight(failed, 0.2, 4.5))  # held a slot


def test_a_fast_failure_does_not_start_the_rate_steady_state() -> None:
    records = [
        request(0, 0.0, 0.2, error="HTTP 500"),
        *(request(i, float(i), i + 1.5) for i in range(1, 4)),
    ]
    assert steady_interval("rate", records, None).start_s == 2.5
    all_failed = [request(i, float(i), i + 0.1, error="HTTP 500") for i in range(3)]
    interval = steady_interval("rate", all_failed, None)
    assert interval.empty_because == "no request completed"
