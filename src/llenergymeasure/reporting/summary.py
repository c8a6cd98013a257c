"""Per-configuration figures over cycles: the numbers every table and plot of a report shows.

A configuration is a study's experiment (its cycles are the repetitions) or one standalone
experiment directory (one cycle). Per-cycle figures are summarised with a Student-t 95%
confidence interval; latency percentiles are recomputed from the pooled raw per-request samples
of all done cycles (``requests.parquet``), never averaged.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llenergymeasure.errors import ResultsError
from llenergymeasure.results.io import load_requests
from llenergymeasure.results.models import LatencyStats
from llenergymeasure.results.stats import (
    Summary,
    combined_ci95_half_width,
    completed,
    latency_stats,
    summary_stats,
)


@dataclass(frozen=True)
class Denominator:
    """One unit of work energy is divided by: its label, its results columns (raw and
    idle-adjusted) and the unit of the figure."""

    label: str
    column: str
    adjusted_column: str
    unit: str


DENOMINATORS = (
    Denominator(
        "per output token", "energy_per_output_token_j", "energy_per_output_token_adjusted_j", "J"
    ),
    Denominator(
        "per token in+out", "energy_per_total_token_j", "energy_per_total_token_adjusted_j", "J"
    ),
    Denominator("per request", "energy_per_request_j", "energy_per_request_adjusted_j", "J"),
    Denominator(
        "per 1,000 requests",
        "energy_per_1k_requests_wh",
        "energy_per_1k_requests_adjusted_wh",
        "Wh",
    ),
)
"""Every energy denominator of a result, the headline (J per output token) first."""


@dataclass
class ConfigurationSummary:
    """One configuration of a report.

    Attributes:
        label: the ``configuration`` label of its rows.
        study_dir: the study it belongs to (None for a standalone experiment).
        rows: its rows of the results DataFrame (every status).
        config: its ``config.*`` values (from its first row).
        n_cycles: done cycles.
        n_failed: failed or unfinished entries.
        j_per_token: energy per output token (J) over done cycles.
        j_per_token_adjusted: idle-adjusted energy per output token (J).
        tokens_per_s: output tokens per second.
        mean_power_w: energy ÷ energy window per cycle (W), what the energy figures imply.
        ttft: time to first token, pooled over every request of every done cycle.
        itl: inter-token latency, pooled likewise.
        latency_note: why the pooled latencies (and request energies) are missing, when they
            are.
        energy_per_unit: each :data:`DENOMINATORS` column (raw and idle-adjusted) -> its
            summary over done cycles.
        request_energy_j: the energy attributed to each completed request of every done cycle
            (``requests.parquet`` ``energy_j``; empty without an energy attribution).
        energy_methods: the energy sampler(s) used.
        is_estimate: some cycle's energy is an estimate, not a measurement.
        warnings: warning code -> how many done cycles carry it.
    """

    label: str
    study_dir: str | None
    rows: Any
    config: dict[str, Any]
    n_cycles: int
    n_failed: int
    j_per_token: Summary
    j_per_token_adjusted: Summary
    tokens_per_s: Summary
    mean_power_w: Summary
    ttft: LatencyStats = field(default_factory=LatencyStats)
    itl: LatencyStats = field(default_factory=LatencyStats)
    latency_note: str | None = None
    energy_per_unit: dict[str, Summary] = field(default_factory=dict)
    request_energy_j: list[float] = field(default_factory=list)
    energy_methods: list[str] = field(default_factory=list)
    is_estimate: bool = False
    warnings: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> Any:
        """The rows of done cycles."""
        return self.rows[self.rows["status"] == "done"]


def summarise(frame: Any) -> list[ConfigurationSummary]:
    """One summary per configuration, ranked by mean J/token (configurations without it last).

    Args:
        frame: a DataFrame from :func:`~llenergymeasure.reporting.loading.load_results`.
    """
    summaries = [
        _summarise_one(str(label), rows)
        for label, rows in frame.groupby("configuration", sort=False)
    ]
    return sorted(summaries, key=_rank)


def _rank(summary: ConfigurationSummary) -> float:
    mean = summary.j_per_token.mean
    return mean if mean is not None else math.inf


def _summarise_one(label: str, rows: Any) -> ConfigurationSummary:
    done = rows[rows["status"] == "done"]
    config = {k: _plain(v) for k, v in rows.iloc[0].items() if str(k).startswith("config.")}
    pooled = _pooled(done)
    codes = Counter(c for text in done.get("warning_codes", []) for c in _codes(text))
    methods = done["energy_method"].dropna().unique() if "energy_method" in done else []
    return ConfigurationSummary(
        label=label,
        study_dir=_plain(rows["study_dir"].iloc[0]) if "study_dir" in rows else None,
        rows=rows,
        config=config,
        n_cycles=len(done),
        n_failed=len(rows) - len(done),
        j_per_token=j_per_token_summary(done),
        j_per_token_adjusted=summary_stats(
            cycle_values(done, "energy_per_output_token_adjusted_j")
        ),
        tokens_per_s=summary_stats(cycle_values(done, "output_tokens_per_s")),
        mean_power_w=summary_stats(mean_power_values(done)),
        ttft=pooled.ttft,
        itl=pooled.itl,
        latency_note=pooled.note,
        energy_per_unit={
            column: summary_stats(cycle_values(done, column))
            for d in DENOMINATORS
            for column in (d.column, d.adjusted_column)
        },
        request_energy_j=pooled.request_energy_j,
        energy_methods=sorted(str(m) for m in methods),
        is_estimate=any(v is True or v is np.True_ for v in done.get("energy_is_estimate", [])),
        warnings=dict(codes),
    )


def _plain(value: Any) -> Any:
    """A numpy scalar (as pandas hands out) as the Python value it holds; NaN as None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _codes(text: Any) -> list[str]:
    return [c for c in str(text).split(",") if c] if isinstance(text, str) else []


def j_per_token_summary(done: Any) -> Summary:
    """J per output token over done cycles. Where every cycle states its sampler's bound and
    none is an estimate, the 95% interval combines the run-to-run spread with that bound
    (``results.stats.combined_ci95_half_width``, as ``study_result.json`` does); otherwise it
    covers only the spread."""
    values = cycle_values(done, "energy_per_output_token_j")
    summary = summary_stats(values)
    bounds = _bounds_per_token(done)
    half = combined_ci95_half_width(values, bounds) if bounds is not None else None
    if summary.mean is None or half is None or bounds is None or len(bounds) != len(values):
        return summary
    return summary.model_copy(
        update={"ci95_half_width": half, "ci95_low": summary.mean - half,
                "ci95_high": summary.mean + half}
    )  # fmt: skip


def _bounds_per_token(done: Any) -> list[float] | None:
    """Each done cycle's sampler bound on its J per output token (uncertainty_j / output
    tokens); None when a cycle is an estimate or states no bound."""
    columns = ("energy_per_output_token_j", "energy_uncertainty_j", "total_output_tokens")
    if any(column not in done for column in columns):
        return None
    if any(v is True or v is np.True_ for v in done.get("energy_is_estimate", [])):
        return None
    bounds: list[float] = []
    for value, bound, tokens in zip(*(done[column] for column in columns), strict=True):
        if not _finite(value):
            continue
        if not _finite(bound) or not _finite(tokens) or tokens <= 0:
            return None
        bounds.append(float(bound) / float(tokens))
    return bounds


def cycle_values(done: Any, column: str) -> list[float]:
    """The finite values of ``column`` over done cycles (missing column: none)."""
    if column not in done:
        return []
    return [float(v) for v in done[column] if _finite(v)]


def mean_power_values(done: Any) -> list[float]:
    """Per done cycle, energy over the energy window (W)."""
    if "energy_total_j" not in done or "energy_duration_s" not in done:
        return []
    pairs = zip(done["energy_total_j"], done["energy_duration_s"], strict=True)
    return [float(e) / float(d) for e, d in pairs if _finite(e) and _finite(d) and d > 0]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class _Pooled:
    """What the raw requests of every done cycle give together (``note``: why nothing)."""

    ttft: LatencyStats = field(default_factory=LatencyStats)
    itl: LatencyStats = field(default_factory=LatencyStats)
    request_energy_j: list[float] = field(default_factory=list)
    note: str | None = None


def _pooled(done: Any) -> _Pooled:
    """TTFT, ITL and attributed energy over every completed raw request of every done cycle."""
    ttft: list[float] = []
    itl: list[float] = []
    energy_j: list[float] = []
    for run_dir in done["result_dir"]:
        try:
            records = completed(load_requests(Path(str(run_dir))))
        except ResultsError as exc:  # names the file and why
            return _Pooled(note=f"raw requests unreadable: {exc}")
        ttft.extend(r.ttft_s for r in records if r.ttft_s is not None)
        itl.extend(gap for r in records for gap in r.itl_s)
        energy_j.extend(r.energy_j for r in records if r.energy_j is not None)
    return _Pooled(latency_stats(ttft), latency_stats(itl), energy_j)


def swept_parameters(summaries: Sequence[ConfigurationSummary]) -> list[str]:
    """``config.*`` fields whose value differs between configurations (the name excluded)."""
    keys = list(dict.fromkeys(k for s in summaries for k in s.config))
    return [
        key
        for key in keys
        if key != "config.name" and len({value_text(s.config.get(key)) for s in summaries}) > 1
    ]


def value_text(value: Any) -> str:
    """A config value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def line_label(summary: ConfigurationSummary, others: Sequence[str]) -> str:
    """The line a configuration belongs to in a plot against one parameter: its values of the
    ``others`` swept parameters (``all`` when there are none)."""
    text = ", ".join(
        f"{o.removeprefix('config.')}={value_text(summary.config.get(o))}" for o in others
    )
    return text or "all"
