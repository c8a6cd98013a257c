"""Whether two compared configurations ran requests of the same lengths.

Energy per request and per token depend on prompt and output lengths as much as on the model,
so a comparison flags configurations whose length distributions differ: the mean or the p95 of
the input or of the output tokens (``result.lengths``, averaged over each configuration's done
cycles) of B differs from A's by more than :data:`LENGTH_TOLERANCE` of A's. Results written
before llem recorded lengths are not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from llenergymeasure.reporting.compare import Comparison
from llenergymeasure.results.models import ExperimentResult, LengthStats

LENGTH_TOLERANCE = 0.05
"""The largest relative difference (B − A over A) of a length statistic still comparable."""

_FIGURES = (
    ("input tokens", "input_tokens", "mean"),
    ("input tokens", "input_tokens", "p95"),
    ("output tokens", "output_tokens", "mean"),
    ("output tokens", "output_tokens", "p95"),
)


def flag_length_difference(
    comparison: Comparison, results: Mapping[str, Sequence[ExperimentResult]]
) -> Comparison:
    """``comparison`` with its ``lengths_warning`` set when A's and B's request lengths differ.

    Args:
        comparison: B against A.
        results: each configuration's done results, by label.
    """
    runs_a, runs_b = results.get(comparison.a, ()), results.get(comparison.b, ())
    differences = [
        text
        for name, field, stat in _FIGURES
        if (text := _difference(name, stat, _figure(runs_a, field, stat),
                                _figure(runs_b, field, stat))) is not None
    ]  # fmt: skip
    if not differences:
        return comparison
    modes = sorted({r.lengths.output_lengths for r in [*runs_a, *runs_b] if r.lengths})
    warning = (
        f"warning: A and B ran requests of different lengths ({'; '.join(differences)}; "
        f"more than {LENGTH_TOLERANCE:.0%} apart), so their energy per request and per token "
        "do not compare like for like: use the same prompts (dataset, n, random_seed) and "
        "output lengths (dataset.output_lengths: from_dataset or distribution generate the "
        f"same lengths on every backend; here {' and '.join(modes)})"
    )
    return replace(comparison, lengths_warning=warning)


def _figure(runs: Sequence[ExperimentResult], field: str, stat: str) -> float | None:
    """The mean over ``runs`` of one length statistic; None when a run did not record it."""
    values = []
    for run in runs:
        stats: LengthStats | None = getattr(run.lengths, field, None) if run.lengths else None
        value = getattr(stats, stat, None) if stats is not None else None
        if value is None:
            return None
        values.append(float(value))
    return math.fsum(values) / len(values) if values else None


def _difference(name: str, stat: str, a: float | None, b: float | None) -> str | None:
    if a is None or b is None or a == b:
        return None
    change = (b - a) / a if a else math.inf
    if abs(change) <= LENGTH_TOLERANCE:
        return None
    return f"{name} {stat} {a:.4g} against {b:.4g}, {change:+.0%}"
