"""When each request arrives: the seeded schedule of ``load.mode: rate``.

The first request arrives at 0; each later one after a gap drawn from the arrival
distribution, as ``vllm bench serve`` does: exponential gaps of mean ``1/rate`` (poisson),
gamma gaps of shape ``burstiness`` and the same mean (gamma), or exactly ``1/rate`` (constant).
An infinite rate puts every arrival at 0. The same seed gives the same schedule.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from llenergymeasure.config.load import Arrival, LoadConfig, LoadMode


@dataclass(frozen=True)
class LoadPlan:
    """How one measured window submits its requests.

    Attributes:
        mode: the ``load.mode``.
        offsets_s: per request, its scheduled arrival in seconds from the window's start
            (``rate`` mode); None submits every request as soon as a slot allows.
        max_concurrency: requests in flight at most (None = no cap).
    """

    mode: LoadMode = "offline"
    offsets_s: tuple[float, ...] | None = None
    max_concurrency: int | None = None

    @property
    def expected_duration_s(self) -> float | None:
        """When the last request is scheduled to arrive (None without a schedule)."""
        return self.offsets_s[-1] if self.offsets_s else None


OFFLINE = LoadPlan()
"""Every request at once, no cap: today's batch run."""


def plan_load(load: LoadConfig, n: int, seed: int) -> LoadPlan:
    """The plan for ``n`` requests under ``load`` (schedules are seeded by ``seed``)."""
    if load.mode == "offline":
        return OFFLINE
    if load.mode == "concurrency":
        return LoadPlan("concurrency", None, load.max_concurrency)
    assert load.request_rate is not None  # the config requires it in rate mode
    offsets = arrival_offsets_s(load.request_rate, load.arrival, load.burstiness, n, seed)
    return LoadPlan("rate", tuple(offsets), load.max_concurrency)


def arrival_offsets_s(
    rate: float, arrival: Arrival, burstiness: float, n: int, seed: int
) -> list[float]:
    """Arrival times of ``n`` requests, in seconds from the first (which arrives at 0)."""
    if n <= 0:
        return []
    if math.isinf(rate):
        return [0.0] * n
    rng = random.Random(seed)
    shape = 1.0 if arrival == "poisson" else burstiness
    offsets = [0.0]
    for _ in range(n - 1):
        # gamma with mean 1/rate; shape 1 is the exponential (Poisson arrivals)
        gap = 1.0 / rate if arrival == "constant" else rng.gammavariate(shape, 1 / (rate * shape))
        offsets.append(offsets[-1] + gap)
    return offsets
