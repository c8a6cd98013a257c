"""Time-stamped cumulative energy: the energy of any interval inside a measured window.

A sampler that reads a counter (NVML's total-energy counter, RAPL) or integrates power keeps
its readings as an :class:`EnergyTimeline`: per domain, points ``(t_s, cumulative_j)`` with
``t_s`` in seconds from the sampler's ``start()`` and ``cumulative_j`` the energy since then.
:meth:`EnergyTimeline.interval` gives the energy between two moments with an absolute bound,
so a steady-state sub-window is measured from the same reads as the whole window.

The bound of an interval ``[a, b]``, per domain, sums at each end:

* the energy of the segment (between two reads) that contains the end: the cumulative value
  there is interpolated linearly, and the true value lies anywhere within that segment's
  energy (a conservative bound that needs no assumption about power's shape);
* ``(stale_s + align_s) × the segment's mean power``: a counter read returns the value of its
  last update (``stale_s``, NVML's ~100 ms update period; 0 for integrated power), and the
  caller's clock and the sampler's may be offset by up to ``align_s``.

With reads every 100 ms at 700 W, each end adds about 70 J + 70 J; over a one-minute interval
(42 kJ) the bound is under 1%.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

EnergyPoint = tuple[float, float]
"""``(t_s, cumulative_j)``: seconds from the sampler's start, joules since then."""


@dataclass(frozen=True)
class IntervalEnergy:
    """The energy of one interval, summed over the timeline's domains."""

    energy_j: float
    uncertainty_j: float
    by_domain_j: dict[str, float]


@dataclass(frozen=True)
class EnergyTimeline:
    """Cumulative energy per domain over one window.

    Attributes:
        points: domain (the keys of ``EnergyReading.energy_by_domain_j``) -> ``(t_s,
            cumulative_j)`` points in time order, starting at ``(t0, 0.0)``. A domain whose
            reads failed keeps what it has (fewer than two points: no interval is covered),
            so an interval is never summed without it.
        stale_s: how old a read can be when taken (the counter's update period; 0 for
            integrated instantaneous power); one value, the largest, for every domain.
        source: how the points were obtained, e.g. ``"nvml total-energy counter"``.
        notes: caveats about the points (mixed sources, reads that failed).
    """

    points: Mapping[str, Sequence[EnergyPoint]]
    stale_s: float = 0.0
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def covers(self, start_s: float, end_s: float) -> bool:
        """Whether every domain has reads at or around both ends of ``[start_s, end_s]``."""
        return bool(self.points) and all(
            len(p) >= 2 and p[0][0] <= start_s and end_s <= p[-1][0] for p in self.points.values()
        )

    def interval(self, start_s: float, end_s: float, align_s: float = 0.0) -> IntervalEnergy | None:
        """Energy between ``start_s`` and ``end_s`` (timeline seconds) with its bound; None when
        the interval is empty or not covered by the reads."""
        if end_s <= start_s or not self.covers(start_s, end_s):
            return None
        by_domain: dict[str, float] = {}
        bound = 0.0
        for domain, points in self.points.items():
            low, low_bound = _at(points, start_s, self.stale_s + align_s)
            high, high_bound = _at(points, end_s, self.stale_s + align_s)
            by_domain[domain] = max(0.0, high - low)
            bound += low_bound + high_bound
        return IntervalEnergy(sum(by_domain.values()), bound, by_domain)

    def shifted(self, offset_s: float) -> EnergyTimeline:
        """The same timeline with ``offset_s`` added to every time."""
        moved = {d: [(t + offset_s, e) for t, e in p] for d, p in self.points.items()}
        return EnergyTimeline(moved, self.stale_s, self.source, list(self.notes))


def _at(points: Sequence[EnergyPoint], t_s: float, lag_s: float) -> tuple[float, float]:
    """Cumulative energy at ``t_s`` (linear between reads) and the bound of that value."""
    times = [t for t, _ in points]
    right = min(max(bisect_right(times, t_s), 1), len(points) - 1)
    (t0, e0), (t1, e1) = points[right - 1], points[right]
    span_s = t1 - t0
    segment_j = max(0.0, e1 - e0)
    if span_s <= 0:
        return e1, segment_j
    value = e0 + (e1 - e0) * (t_s - t0) / span_s
    return value, segment_j + lag_s * segment_j / span_s


def largest_stale_s(stale_s_by_domain: Mapping[str, float]) -> tuple[float, list[str]]:
    """One ``stale_s`` for domains read with different update periods: the largest, which
    bounds them all, and a note listing each when they differ (none when they agree)."""
    values = set(stale_s_by_domain.values())
    if len(values) <= 1:
        return max(values, default=0.0), []
    listed = ", ".join(f"{domain} {s:g} s" for domain, s in stale_s_by_domain.items())
    return max(values), [f"stale_s is the largest of the domains' ({listed}): it bounds them all"]


def integrated(samples: Sequence[tuple[float, float]]) -> list[EnergyPoint]:
    """Power samples ``(t_s, power_w)`` as cumulative points: the running trapezoid integral
    at every sample, from ``(t0, 0.0)``."""
    if not samples:
        return []
    deltas = [(t1, (t1 - t0) * (p0 + p1) / 2) for (t0, p0), (t1, p1) in pairwise(samples)]
    return cumulative([(samples[0][0], 0.0), *deltas])


def cumulative(deltas: Sequence[tuple[float, float]]) -> list[EnergyPoint]:
    """``(t_s, joules since the previous point)`` deltas as cumulative points from 0."""
    total = 0.0
    points: list[EnergyPoint] = []
    for t_s, delta_j in deltas:
        total += delta_j
        points.append((t_s, total))
    return points
