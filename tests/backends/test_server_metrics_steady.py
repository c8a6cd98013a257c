"""The concurrency steady state found with the server's own running-request count."""

from __future__ import annotations

from llenergymeasure.harness.serving import (
    CONCURRENCY_RULE,
    CONCURRENCY_SERVER_RULE,
    running_counts,
    steady_interval,
)
from llenergymeasure.results.records import RequestRecord, TelemetrySample


def request(index: int, submit_s: float, end_s: float) -> RequestRecord:
    return RequestRecord(index, 10, 1, submit_s, [end_s], [1], end_s)


# A pool of 2: requests 0 and 1 sent at 0.0 and 0.1 (the client's count reaches 2 at 0.1);
# 2 and 3 refill it as 0 and 1 end; the last submission is at 2.0, the first completion
# after it at 2.5.
POOL = [request(0, 0.0, 1.0), request(1, 0.1, 2.0), request(2, 1.0, 2.5), request(3, 2.0, 3.0)]


def test_without_server_counts_the_clients_in_flight_count_decides() -> None:
    interval = steady_interval("concurrency", POOL, 2)
    assert (interval.start_s, interval.end_s, interval.rule) == (0.1, 2.5, CONCURRENCY_RULE)


def test_the_server_running_its_cap_starts_the_steady_state() -> None:
    # the server still queued request 1 until its read at 0.4
    counts = [(0.05, 1), (0.2, 1), (0.4, 2), (0.6, 2), (2.7, 1)]
    interval = steady_interval("concurrency", POOL, 2, counts)
    assert (interval.start_s, interval.end_s) == (0.4, 2.5)
    assert interval.rule == CONCURRENCY_SERVER_RULE and interval.empty_because is None


def test_reads_before_the_client_has_the_cap_in_flight_do_not_count() -> None:
    # another client's requests (or a stale read) put the server at 2 before ours were sent
    counts = [(0.0, 2), (0.05, 2), (0.3, 2)]
    assert steady_interval("concurrency", POOL, 2, counts).start_s == 0.3


def test_a_server_that_never_runs_the_cap_has_no_steady_state_and_says_why() -> None:
    counts = [(0.2, 1), (1.0, 1), (2.2, 1)]  # e.g. vLLM --max-num-seqs 1
    interval = steady_interval("concurrency", POOL, 2, counts)
    assert interval.empty_because is not None
    assert "never reached max_concurrency (2; peak 1 in 3 reads" in interval.empty_because
    assert "--max-num-seqs" in interval.empty_because


def test_a_cap_first_read_after_the_drain_began_leaves_no_interval() -> None:
    interval = steady_interval("concurrency", POOL, 2, [(2.6, 2)])
    assert interval.empty_because is not None and "no earlier than" in interval.empty_because


def test_rate_mode_ignores_server_counts() -> None:
    interval = steady_interval("rate", POOL, None, [(0.4, 2)])
    assert (interval.start_s, interval.end_s) == (1.0, 2.0)


def test_running_counts_are_the_windows_server_reads_in_time_order() -> None:
    samples = [
        TelemetrySample(0.5, "server", "window", requests_running=3),
        TelemetrySample(0.1, "server", "window", requests_running=1),
        TelemetrySample(0.2, "server", "warmup", requests_running=4),
        TelemetrySample(0.3, "cpu", "window", utilisation_pct=50.0),
        TelemetrySample(0.4, "server", "window", kv_cache_usage_pct=10.0),
    ]
    assert running_counts(samples) == [(0.1, 1), (0.5, 3)]
