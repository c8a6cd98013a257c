"""The shared submit driver: schedule, concurrency cap, order and failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from llenergymeasure.load import LoadPlan, drive
from llenergymeasure.results.records import RequestRecord


class VirtualTime:
    """An event-loop-free clock: ``sleep`` moves it instead of waiting."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        for _ in range(10):  # what is ready runs first, then the time passes
            await asyncio.sleep(0)
        self.now_s += delay_s


def _service(
    time: VirtualTime, duration_s: float, in_flight: list[int], peak: list[int]
) -> Callable[[int], Awaitable[RequestRecord]]:
    """A request that takes ``duration_s`` of virtual time, counting requests in flight."""

    async def submit(index: int) -> RequestRecord:
        record = RequestRecord(index, 3, 0, time.clock())
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        for _ in range(3):  # yield to the other requests while "generating"
            await asyncio.sleep(0)
        in_flight[0] -= 1
        record.end_s = record.submit_s + duration_s
        return record

    return submit


def _run(
    plan: LoadPlan, n: int, time: VirtualTime, duration_s: float = 0.5
) -> tuple[list[RequestRecord], int]:
    in_flight, peak = [0], [0]
    records = asyncio.run(
        drive(plan, n, _service(time, duration_s, in_flight, peak), time.clock, time.sleep)
    )
    return records, peak[0]


def test_offline_submits_everything_at_once_in_order() -> None:
    time = VirtualTime()
    records, peak = _run(LoadPlan(), 5, time)
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert {r.submit_s for r in records} == {100.0}
    assert all(r.scheduled_s is None and r.submit_lag_s is None for r in records)
    assert peak == 5


def test_a_schedule_submits_each_request_when_due_and_records_it() -> None:
    time = VirtualTime()
    records, _ = _run(LoadPlan("rate", (0.0, 0.5, 1.25)), 3, time)
    assert [r.scheduled_s for r in records] == [100.0, 100.5, 101.25]
    assert [r.submit_s for r in records] == [100.0, 100.5, 101.25]
    assert [r.submit_lag_s for r in records] == [0.0, 0.0, 0.0]


def test_a_cap_keeps_in_flight_requests_at_most_the_cap_and_reaches_it() -> None:
    time = VirtualTime()
    records, peak = _run(LoadPlan("concurrency", None, 2), 6, time)
    assert peak == 2
    assert [r.index for r in records] == list(range(6))
    assert all(r.scheduled_s is None for r in records)


def test_a_late_submission_shows_as_lag_and_a_slot_wait_is_not_lag() -> None:
    time = VirtualTime()

    async def slow_sleep(delay_s: float) -> None:  # the loop wakes 3 ms late
        await time.sleep(delay_s + 0.003)

    records = asyncio.run(
        drive(
            LoadPlan("rate", (0.0, 1.0)), 2, _service(time, 0.1, [0], [0]), time.clock, slow_sleep
        )
    )
    assert records[1].submit_lag_s == pytest.approx(0.003)
    assert records[1].slot_wait_s == 0.0


def test_the_first_failure_is_raised_and_no_later_request_is_submitted() -> None:
    time = VirtualTime()
    submitted: list[int] = []

    async def submit(index: int) -> RequestRecord:
        submitted.append(index)
        await asyncio.sleep(0)
        if index == 1:
            raise RuntimeError("engine died")
        return RequestRecord(index, 1, 0, time.clock())

    with pytest.raises(RuntimeError, match="engine died"):
        asyncio.run(
            drive(LoadPlan("rate", (0.0, 1.0, 2.0, 3.0)), 4, submit, time.clock, time.sleep)
        )
    assert submitted == [0, 1]


def test_a_failure_while_arrivals_wait_for_a_slot_stops_them_and_cancels_the_rest() -> None:
    time = VirtualTime()
    submitted: list[int] = []
    cancelled: list[int] = []

    async def submit(index: int) -> RequestRecord:
        submitted.append(index)
        try:
            for _ in range(3 if index == 0 else 1000):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            cancelled.append(index)
            raise
        raise RuntimeError(f"request {index} failed")

    with pytest.raises(RuntimeError, match="request 0 failed"):
        asyncio.run(drive(LoadPlan("concurrency", None, 2), 5, submit, time.clock, time.sleep))
    assert submitted == [0, 1]
    assert cancelled == [1]
