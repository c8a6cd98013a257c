"""Checks of a load run computed from its request records alone, independent of the harness:
how many requests were in flight at once, and whether submit gaps look exponential (a
Kolmogorov-Smirnov test, without scipy)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from llenergymeasure.results.records import RequestRecord

KS_ALPHA = 0.01


def peak_in_flight(records: Sequence[RequestRecord]) -> int:
    """Most requests in flight at once: each is in flight over [submit_s, end_s) (an end at a
    submit's instant comes first)."""
    events = sorted([(r.submit_s, 1) for r in records] + [(r.end_s, -1) for r in records])
    return max(itertools.accumulate(change for _, change in events))


def submit_gaps_s(records: Sequence[RequestRecord]) -> list[float]:
    """Gaps between consecutive actual submit times."""
    submits = sorted(r.submit_s for r in records)
    return [later - earlier for earlier, later in itertools.pairwise(submits)]


def ks_exponential(samples: Sequence[float], rate: float) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic D of ``samples`` against the exponential at ``rate``, and
    its asymptotic critical value at ``KS_ALPHA`` (c(alpha) / sqrt(n))."""
    ordered = sorted(samples)
    n = len(ordered)
    d = 0.0
    for i, x in enumerate(ordered):
        cdf = 1.0 - math.exp(-rate * x)
        d = max(d, (i + 1) / n - cdf, cdf - i / n)
    return d, math.sqrt(-math.log(KS_ALPHA / 2) / 2) / math.sqrt(n)
