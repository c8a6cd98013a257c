"""Statistics over repeated measurements: mean, spread, Student-t intervals, Welch's test.

Pure Python (no scipy): the Student-t distribution comes from the regularised incomplete beta
function, evaluated by its continued fraction, which is accurate to ~1e-12 for any positive
(also fractional) degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from llenergymeasure.results.models import EnergyDistribution, LatencyStats
from llenergymeasure.results.records import RequestRecord

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 500


class Summary(BaseModel):
    """Mean, spread and 95% confidence interval of repeated measurements of one quantity.

    Units-neutral: the fields carry the unit of the measured values (the field that holds a
    Summary names the unit, e.g. ``energy_total_j``).

    Attributes:
        n: how many values were summarised (None values excluded).
        mean: arithmetic mean.
        std: sample standard deviation (ddof=1); None for fewer than 2 values.
        ci95_low: lower bound of the two-sided 95% Student-t confidence interval of the mean.
        ci95_high: upper bound of that interval.
        ci95_half_width: ``t(0.975, n-1) * std / sqrt(n)``.
        cv: coefficient of variation, ``std / mean``; None when the mean is 0.
    """

    model_config = ConfigDict(extra="ignore")

    n: int = 0
    mean: float | None = None
    std: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    ci95_half_width: float | None = None
    cv: float | None = None


def summary_stats(values: Sequence[float | None]) -> Summary:
    """Summarise repeated measurements; None and NaN values are skipped.

    Args:
        values: one value per repetition (e.g. per cycle), in any single unit.

    Returns:
        The summary. With no values every statistic is None; with one value only ``n`` and
        ``mean`` are set.
    """
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(kept)
    if n == 0:
        return Summary()
    mean = math.fsum(kept) / n
    if n == 1:
        return Summary(n=1, mean=mean)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / (n - 1))
    half_width = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return Summary(
        n=n,
        mean=mean,
        std=std,
        ci95_low=mean - half_width,
        ci95_high=mean + half_width,
        ci95_half_width=half_width,
        cv=std / mean if mean != 0 else None,
    )


def combined_ci95_half_width(
    values: Sequence[float], bounds: Sequence[float] | None = None
) -> float | None:
    """Half-width of the 95% interval of the mean of ``values``, widened by a sampler's bound.

    ``t(0.975, n-1) * sqrt(s**2 / n + b**2 / (3 * n))``: ``s`` is the sample std of the
    values (the run-to-run spread) and ``b`` the mean of ``bounds``, each repetition's
    absolute bound on its own value. The bound is treated as a uniform error in ``[-b, b]``
    (variance ``b**2 / 3``), independent from one repetition to the next, and its variance is
    added to the spread's. Without ``bounds`` (a value measured by an estimate, or by a
    sampler that states no bound) the interval covers only the spread: ``summary_stats``'s.

    Args:
        values: one value per repetition (e.g. J per output token per cycle).
        bounds: the absolute bound on each value, in the values' unit; None for none.

    Returns:
        The half-width, in the values' unit; None for fewer than 2 values.

    Raises:
        ValueError: ``bounds`` does not hold one bound per value, or a bound is negative.
    """
    n = len(values)
    if bounds is not None and len(bounds) != n:
        raise ValueError(f"{len(bounds)} bounds for {n} values: give one bound per value")
    if bounds is not None and any(b < 0 for b in bounds):
        raise ValueError("a bound is negative: bounds are absolute half-widths")
    std = summary_stats(values).std
    if std is None:
        return None
    bound = math.fsum(bounds) / n if bounds else 0.0
    return t_quantile(0.975, n - 1) * math.sqrt(std**2 / n + bound**2 / (3 * n))


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's unequal-variances t-test of the means of ``a`` and ``b`` (two-sided).

    Args:
        a: samples of the first group (at least 2).
        b: samples of the second group (at least 2).

    Returns:
        ``(t, dof, p_value)``: the statistic (positive when ``mean(a) > mean(b)``), the
        Welch-Satterthwaite degrees of freedom, and the two-sided p-value. When both groups
        have zero variance the statistic is ±inf (p = 0) for different means, or 0 (p = 1)
        for equal ones, with ``len(a) + len(b) - 2`` degrees of freedom.

    Raises:
        ValueError: a group has fewer than 2 values.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least 2 values in each group")
    first, second = summary_stats(a), summary_stats(b)
    assert first.mean is not None and first.std is not None  # n >= 2
    assert second.mean is not None and second.std is not None
    diff = first.mean - second.mean
    var_a = first.std**2 / first.n
    var_b = second.std**2 / second.n
    se2 = var_a + var_b
    if se2 == 0:
        dof = float(first.n + second.n - 2)
        if diff == 0:
            return 0.0, dof, 1.0
        return math.copysign(math.inf, diff), dof, 0.0
    t = diff / math.sqrt(se2)
    dof = se2**2 / (var_a**2 / (first.n - 1) + var_b**2 / (second.n - 1))
    return t, dof, t_two_sided_p(t, dof)


def t_two_sided_p(t: float, dof: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)`` of Student's t with ``dof`` degrees of freedom."""
    return _t_tails(t, dof)[1]


def t_cdf(t: float, dof: float) -> float:
    """Cumulative distribution function of Student's t with ``dof`` degrees of freedom."""
    central, outer = _t_tails(t, dof)
    return 0.5 + central / 2 if t > 0 else outer / 2


def t_quantile(p: float, dof: float) -> float:
    """Inverse CDF of Student's t: the ``t`` with ``t_cdf(t, dof) == p``, for 0 < p < 1.

    Solved by bisection (the CDF is monotonic) to about 1e-13 relative accuracy.
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, dof)
    # Compare whichever of P(|T| < t) and P(|T| >= t) is small, so neither loses precision.
    use_outer = p > 0.75
    target = 2 * (1 - p) if use_outer else 2 * p - 1

    def below(t: float) -> bool:
        central, outer = _t_tails(t, dof)
        return outer > target if use_outer else central < target

    low, high = 0.0, 1.0
    while below(high):
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if below(mid):
            low = mid
        else:
            high = mid
        if high - low <= 1e-14 * high:
            break
    return (low + high) / 2


def _t_tails(t: float, dof: float) -> tuple[float, float]:
    """``(P(|T| < |t|), P(|T| >= |t|))`` for Student's t, each without cancellation."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    if math.isinf(t):
        return 1.0, 0.0
    t2 = t * t
    # P(|T| < t) = I_y(1/2, dof/2) with y = t^2 / (dof + t^2); its complement is the tail.
    return _betainc_pair(0.5, dof / 2, t2 / (dof + t2), dof / (dof + t2))


def _betainc_pair(a: float, b: float, x: float, one_minus_x: float) -> tuple[float, float]:
    """``(I_x(a, b), 1 - I_x(a, b))``, the regularised incomplete beta and its complement.

    ``one_minus_x`` is passed in so callers can supply it without rounding loss.
    """
    if x <= 0:
        return 0.0, 1.0
    if one_minus_x <= 0:
        return 1.0, 0.0
    front = math.exp(
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log(one_minus_x)
    )
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) covers the other side.
    if x < (a + 1) / (a + b + 2):
        value = front * _betacf(a, b, x) / a
        return value, 1.0 - value
    complement = front * _betacf(b, a, one_minus_x) / b
    return 1.0 - complement, complement


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            step = d * c
            h *= step
        if abs(step - 1.0) < _EPS:
            break
    return h


def latency_stats(samples_s: Sequence[float]) -> LatencyStats:
    """Mean, median, p95, p99, min and max of raw samples (linear interpolation)."""
    if not samples_s:
        return LatencyStats()
    values = np.asarray(samples_s, dtype=float)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return LatencyStats(
        n=len(values),
        mean_s=float(values.mean()),
        median_s=float(p50),
        p95_s=float(p95),
        p99_s=float(p99),
        min_s=float(values.min()),
        max_s=float(values.max()),
    )


def completed(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """The records of requests that completed. A failed one (``RequestRecord.error``) counts
    in no latency, token or energy figure, only in the error rate (as ``vllm bench serve``)."""
    return [r for r in records if not r.failed]


@dataclass(frozen=True)
class RequestLatencies:
    """The latency distributions of a set of requests (see :func:`request_latencies`)."""

    ttft: LatencyStats
    itl: LatencyStats
    tpot: LatencyStats
    e2e_latency: LatencyStats


def request_latencies(records: Iterable[RequestRecord]) -> RequestLatencies:
    """TTFT, ITL (every gap), TPOT and end-to-end latency from the raw samples of the
    completed requests; failed ones are left out (:func:`completed`)."""
    done = completed(records)
    return RequestLatencies(
        ttft=latency_stats([t for r in done if (t := r.ttft_s) is not None]),
        itl=latency_stats([gap for r in done for gap in r.itl_s]),
        tpot=latency_stats([t for r in done if (t := r.tpot_s) is not None]),
        e2e_latency=latency_stats([r.e2e_s for r in done]),
    )


def energy_distribution(values_j: Sequence[float | None]) -> EnergyDistribution:
    """Mean, median, p95, min and max of per-request energies in joules (None values are
    left out), by the latency percentiles' method; empty for none."""
    stats = latency_stats([value for value in values_j if value is not None])
    return EnergyDistribution(
        n=stats.n,
        mean_j=stats.mean_s,
        median_j=stats.median_s,
        p95_j=stats.p95_s,
        min_j=stats.min_s,
        max_j=stats.max_s,
    )
