"""Submit requests on a :class:`LoadPlan`: at their scheduled times, under a concurrency cap.

A backend hands :func:`drive` a coroutine that submits one request and returns its
:class:`RequestRecord` once it finishes (stamping ``submit_s`` as it hands the request to the
engine). The driver runs on the backend's event loop:

* with a schedule, it sleeps until each arrival is due (``asyncio.sleep``; the record keeps
  ``scheduled_s`` so the lag is measured, never assumed);
* with ``max_concurrency``, a due request waits for a free slot (its ``slot_wait_s``), so a
  cap with no schedule is a closed-loop pool: a new request as each finishes;
* without either, every request is submitted at once (an offline batch).

Requests are submitted in index order. The first failure cancels the requests still running
and the arrivals not yet made, and is raised as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from llenergymeasure.load.schedule import LoadPlan
from llenergymeasure.results.records import RequestRecord

SubmitRequest = Callable[[int], Awaitable[RequestRecord]]
"""Submits request ``index`` and returns its record when it finishes."""


async def drive(
    plan: LoadPlan,
    n: int,
    submit: SubmitRequest,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[RequestRecord]:
    """Run ``n`` requests on ``plan``; their records in index order."""
    return await _Run(plan, submit, clock, sleep).all(n)


class _Run:
    """One window's submissions: the slots, the tasks and the first failure."""

    def __init__(
        self,
        plan: LoadPlan,
        submit: SubmitRequest,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.plan, self.submit, self.clock, self.sleep = plan, submit, clock, sleep
        self.slots = asyncio.Semaphore(plan.max_concurrency) if plan.max_concurrency else None
        self.failures: list[BaseException] = []
        self.failed = asyncio.Event()
        self.tasks: list[asyncio.Task[RequestRecord]] = []
        self.origin_s = clock()

    async def all(self, n: int) -> list[RequestRecord]:
        try:
            for index in range(n):
                await self.arrival(index)
                slot_wait_s = await _acquire(self.slots, self.clock)
                if self.failed.is_set():
                    break
                self.tasks.append(asyncio.ensure_future(self.one(index, slot_wait_s)))
            if self.tasks:
                await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            await _cancel(self.tasks)
        if self.failures:
            raise self.failures[0]
        return [task.result() for task in self.tasks]

    async def arrival(self, index: int) -> None:
        """Wait until request ``index`` is due (or a request fails meanwhile)."""
        if self.plan.offsets_s is None:
            return
        delay_s = self.origin_s + self.plan.offsets_s[index] - self.clock()
        if delay_s > 0:
            await _unless(self.failed, self.sleep(delay_s))

    async def one(self, index: int, slot_wait_s: float) -> RequestRecord:
        try:
            record = await self.submit(index)
        except BaseException as exc:
            self.failures.append(exc)
            self.failed.set()
            raise
        finally:
            if self.slots is not None:
                self.slots.release()
        record.slot_wait_s = slot_wait_s
        if self.plan.offsets_s is not None:
            record.scheduled_s = self.origin_s + self.plan.offsets_s[index]
        return record


async def _unless(failed: asyncio.Event, waiting: Awaitable[None]) -> None:
    """Wait for ``waiting``, or less when a request fails meanwhile."""
    pending = {asyncio.ensure_future(waiting), asyncio.ensure_future(failed.wait())}
    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def _acquire(slots: asyncio.Semaphore | None, clock: Callable[[], float]) -> float:
    """Take a slot (waiting for one if all are in use); returns the seconds waited."""
    if slots is None:
        return 0.0
    if not slots.locked():
        await slots.acquire()
        return 0.0
    start_s = clock()
    await slots.acquire()
    return clock() - start_s


async def _cancel(tasks: list[asyncio.Task[RequestRecord]]) -> None:
    """Cancel the requests still running (after a failure or an interrupt) and wait for them;
    every failure is retrieved here (the first is raised by the caller)."""
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
