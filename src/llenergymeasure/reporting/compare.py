"""Compare two configurations metric by metric: the difference of the means over cycles, its
95% confidence interval, and Welch's unequal-variances t-test.

With fewer than two done cycles on either side there is no spread to test against: the
difference is still given, with no interval, and the comparison says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from llenergymeasure.reporting.summary import (
    ConfigurationSummary,
    cycle_values,
    mean_power_values,
)
from llenergymeasure.results.stats import summary_stats, t_quantile, welch_t_test

ALPHA = 0.05


class Compared(NamedTuple):
    """How a per-cycle metric is shown: its label, its unit, and the factor from the results
    column's unit to it (latencies are recorded in s and shown in ms, as everywhere else)."""

    label: str
    unit: str
    scale: float = 1.0


def _cycle_percentile(name: str, percentile: str) -> Compared:
    # Not the summary's pooled percentile: each cycle's own, averaged (the t-test needs one
    # value per cycle); the label says so, because the two can rank configurations apart.
    return Compared(
        f"{name} {percentile}, mean over cycles of each cycle's {percentile}", "ms", 1e3
    )


# Per-cycle metrics compared, by results column.
COMPARED: dict[str, Compared] = {
    "energy_per_output_token_j": Compared("J/token", "J"),
    "energy_per_output_token_adjusted_j": Compared("J/token idle-adjusted", "J"),
    "energy_per_total_token_j": Compared("J/token in+out", "J"),
    "energy_per_request_j": Compared("J/request", "J"),
    "energy_total_j": Compared("energy", "J"),
    "mean_power_w": Compared("mean power", "W"),
    "output_tokens_per_s": Compared("output tokens/s", "tokens/s"),
    "ttft_median_s": _cycle_percentile("TTFT", "p50"),
    "ttft_p95_s": _cycle_percentile("TTFT", "p95"),
    "itl_median_s": _cycle_percentile("ITL", "p50"),
    "itl_p95_s": _cycle_percentile("ITL", "p95"),
}


@dataclass(frozen=True)
class MetricDifference:
    """One metric of B against A (difference = B − A, in the metric's unit).

    ``ci95_low``/``ci95_high`` bound the difference of the means (Welch-Satterthwaite degrees
    of freedom); they, ``p_value`` and ``significant`` are None without a test.
    """

    metric: str
    label: str
    unit: str
    mean_a: float
    mean_b: float
    n_a: int
    n_b: int
    difference: float
    ci95_low: float | None = None
    ci95_high: float | None = None
    p_value: float | None = None
    significant: bool | None = None

    @property
    def relative(self) -> float | None:
        """The difference as a fraction of A's mean (None when A's mean is 0)."""
        return self.difference / self.mean_a if self.mean_a else None


@dataclass(frozen=True)
class Comparison:
    """B against A, every metric both have; ``note`` says why there is no test, if there is
    none; ``lengths_warning`` that their requests' lengths differ, if they do
    (:mod:`llenergymeasure.reporting.lengths`)."""

    a: str
    b: str
    n_a: int
    n_b: int
    metrics: list[MetricDifference] = field(default_factory=list)
    note: str | None = None
    lengths_warning: str | None = None


def compare(a: ConfigurationSummary, b: ConfigurationSummary) -> Comparison:
    """Each compared metric of ``b`` minus ``a``, with Welch's t-test over their done cycles."""
    differences = [d for column in COMPARED if (d := _difference(column, a, b)) is not None]
    note = None
    if a.n_cycles < 2 or b.n_cycles < 2:
        note = (
            f"no statistical comparison possible: {a.label} has {a.n_cycles} and {b.label} has "
            f"{b.n_cycles} done cycle(s); Welch's t-test needs at least 2 on each side "
            "(run a study with n_cycles >= 2)"
        )
    return Comparison(a.label, b.label, a.n_cycles, b.n_cycles, differences, note)


def _values(summary: ConfigurationSummary, column: str) -> list[float]:
    """Per done cycle, the metric in the unit it is shown in."""
    if column == "mean_power_w":
        return mean_power_values(summary.done)
    scale = COMPARED[column].scale
    return [value * scale for value in cycle_values(summary.done, column)]


def _difference(
    column: str, a: ConfigurationSummary, b: ConfigurationSummary
) -> MetricDifference | None:
    values_a, values_b = _values(a, column), _values(b, column)
    if not values_a or not values_b:
        return None
    label, unit, _ = COMPARED[column]
    mean_a = math.fsum(values_a) / len(values_a)
    mean_b = math.fsum(values_b) / len(values_b)
    # equal figures averaged in a different order differ by rounding only (e.g. 2e-14 ms)
    difference = 0.0 if math.isclose(mean_a, mean_b, rel_tol=1e-12) else mean_b - mean_a
    base = MetricDifference(
        column, label, unit, mean_a, mean_b, len(values_a), len(values_b), difference
    )
    if len(values_a) < 2 or len(values_b) < 2:
        return base
    _, dof, p_value = welch_t_test(values_b, values_a)
    half = t_quantile(1 - ALPHA / 2, dof) * _standard_error(values_a, values_b)
    return replace(
        base,
        ci95_low=base.difference - half,
        ci95_high=base.difference + half,
        p_value=p_value,
        significant=p_value < ALPHA,
    )


def _standard_error(values_a: list[float], values_b: list[float]) -> float:
    """Standard error of the difference of the means (unequal variances)."""
    total = 0.0
    for values in (values_a, values_b):
        std = summary_stats(values).std or 0.0
        total += std**2 / len(values)
    return math.sqrt(total)
