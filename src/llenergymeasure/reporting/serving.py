"""The serving view: what a request costs, and how fast it is served, as the load grows.

Configurations run under load (``load.mode`` rate or concurrency) are grouped per study and
mode. In each group the load axis is the request rate (``inf`` = all at once, kept at the
right end), or the concurrency cap where that is what varies (always in concurrency mode); one
line per combination of the other swept parameters. J/request and output tokens/s come from
the steady-state window where every done cycle of the configuration has one, else from the
whole measured window, and say which; TTFT and ITL p95 are pooled over every request.

With SLOs (``load.slo``), each line's knee is the highest load whose good fraction (requests
meeting every target, mean over cycles) reaches the attainment threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llenergymeasure.errors import ConfigError
from llenergymeasure.reporting.summary import (
    ConfigurationSummary,
    cycle_values,
    line_label,
    swept_parameters,
)
from llenergymeasure.results.stats import Summary, summary_stats

DEFAULT_SLO_ATTAINMENT = 0.9
"""The good fraction a load must reach to count as meeting its SLOs (``--slo-attainment``)."""

MODE_KEY = "config.load.mode"
RATE_KEY = "config.load.request_rate"
CAP_KEY = "config.load.max_concurrency"
SLO_PREFIX = "config.load.slo."

_TOLERANCE = 1e-9  # a mean of fractions may round below them: (0.85 + 0.95) / 2 < 0.9

Window = Literal["steady state", "whole window"]


@dataclass(frozen=True)
class Windowed:
    """A figure over cycles and the window it was measured over."""

    summary: Summary
    window: Window


@dataclass(frozen=True)
class ServingPoint:
    """One configuration under load.

    Attributes:
        configuration: its summary (label, config, pooled latencies).
        load: the group's load value: requests/s, or the concurrency cap (inf: a rate of inf,
            all at once, or no cap).
        j_per_request: energy per request (J), over cycles.
        tokens_per_s: output tokens per second, over cycles.
        achieved_rate_rps: arrivals per second achieved, over cycles.
        good_fraction: share of requests meeting every SLO target (no values without SLOs).
        goodput_rps: good requests per second.
        j_per_good_request: energy per good request (J).
        notes: why a steady-state figure is missing (no steady state, or its energy), as the
            results say, each once.
    """

    configuration: ConfigurationSummary
    load: float
    j_per_request: Windowed
    tokens_per_s: Windowed
    achieved_rate_rps: Summary
    good_fraction: Summary
    goodput_rps: Summary
    j_per_good_request: Summary
    notes: list[str]

    @property
    def ttft_p95_ms(self) -> float | None:
        """95th percentile TTFT over every request of every cycle, in ms."""
        p95 = self.configuration.ttft.p95_s
        return None if p95 is None else p95 * 1e3

    @property
    def itl_p95_ms(self) -> float | None:
        """95th percentile inter-token latency over every gap of every cycle, in ms."""
        p95 = self.configuration.itl.p95_s
        return None if p95 is None else p95 * 1e3


@dataclass(frozen=True)
class Knee:
    """Where a line stops meeting its SLOs: ``point`` is the highest load whose good
    fraction reaches the threshold, or None when no load does."""

    point: ServingPoint | None


@dataclass(frozen=True)
class ServingLine:
    """One line of a group: configurations that differ only in the load.

    Attributes:
        label: the other swept parameters' values (``all`` when none).
        points: by load, lowest first.
        knee: the highest load meeting the SLOs; None when no point of the line has SLOs.
    """

    label: str
    points: list[ServingPoint]
    knee: Knee | None


@dataclass(frozen=True)
class ServingGroup:
    """The configurations of one study (or the standalone ones) in one load mode.

    Attributes:
        title: the study directory's name (or ``standalone experiments``) and the mode.
        mode: ``rate`` or ``concurrency``.
        load_key: the ``config.*`` column on the load axis (:data:`RATE_KEY` or
            :data:`CAP_KEY`).
        lines: one per combination of the other swept parameters.
    """

    title: str
    mode: str
    load_key: str
    lines: list[ServingLine]

    @property
    def configurations(self) -> list[ConfigurationSummary]:
        """Its configurations, by line and load."""
        return [p.configuration for line in self.lines for p in line.points]

    @property
    def load_label(self) -> str:
        """The load axis's name, with its unit."""
        return "request rate (requests/s)" if self.load_key == RATE_KEY else "max concurrency"


@dataclass(frozen=True)
class ServingView:
    """Every serving configuration of a report, and the threshold its knees use."""

    attainment: float
    groups: list[ServingGroup]

    @property
    def points(self) -> list[ServingPoint]:
        """Every point, by group, line and load."""
        return [p for group in self.groups for line in group.lines for p in line.points]

    @property
    def has_slo(self) -> bool:
        """Some configuration was judged against SLOs."""
        return any(line.knee is not None for group in self.groups for line in group.lines)


def serving_view(
    summaries: Sequence[ConfigurationSummary], attainment: float = DEFAULT_SLO_ATTAINMENT
) -> ServingView | None:
    """The serving view of ``summaries``; None when none of them ran under load.

    Args:
        summaries: the report's configurations.
        attainment: the good fraction (0 < x ≤ 1) a load must reach to meet its SLOs.

    Raises:
        ConfigError: ``attainment`` is not in (0, 1].
    """
    if not 0 < attainment <= 1:
        raise ConfigError(
            f"slo_attainment must be a fraction of requests in (0, 1], got {attainment:g}"
        )
    serving = [s for s in summaries if s.config.get(MODE_KEY) in ("rate", "concurrency")]
    if not serving:
        return None
    grouped: dict[tuple[str | None, str], list[ConfigurationSummary]] = {}
    for summary in serving:
        grouped.setdefault((summary.study_dir, str(summary.config[MODE_KEY])), []).append(summary)
    groups = [
        _group(study_dir, mode, members, attainment, len(grouped) > 1)
        for (study_dir, mode), members in grouped.items()
    ]
    return ServingView(attainment, groups)


def _group(
    study_dir: str | None,
    mode: str,
    members: list[ConfigurationSummary],
    attainment: float,
    name_mode: bool,
) -> ServingGroup:
    load_key = _load_key(mode, members)
    others = [k for k in swept_parameters(members) if k not in (load_key, MODE_KEY)]
    by_line: dict[str, list[ServingPoint]] = {}
    for summary in members:
        by_line.setdefault(line_label(summary, others), []).append(_point(summary, load_key))
    lines = []
    for label, points in by_line.items():
        ordered = sorted(points, key=lambda p: p.load)
        lines.append(ServingLine(label, ordered, _knee(ordered, attainment)))
    where = Path(study_dir).name if study_dir else "standalone experiments"
    title = f"{where} ({mode} mode)" if name_mode else where
    return ServingGroup(title, mode, load_key, lines)


def _load_key(mode: str, members: Sequence[ConfigurationSummary]) -> str:
    """The request rate, unless the group varies only the concurrency cap."""
    if mode == "concurrency":
        return CAP_KEY
    swept = swept_parameters(members)
    return CAP_KEY if CAP_KEY in swept and RATE_KEY not in swept else RATE_KEY


def _point(summary: ConfigurationSummary, load_key: str) -> ServingPoint:
    done = summary.done
    value = summary.config.get(load_key)
    return ServingPoint(
        configuration=summary,
        load=math.inf if value is None else float(value),  # no cap
        j_per_request=_windowed(done, "steady_state_energy_per_request_j", "energy_per_request_j"),
        tokens_per_s=_windowed(done, "steady_state_output_tokens_per_s", "output_tokens_per_s"),
        achieved_rate_rps=summary_stats(cycle_values(done, "achieved_rate_rps")),
        good_fraction=summary_stats(cycle_values(done, "good_fraction")),
        goodput_rps=summary_stats(cycle_values(done, "goodput_rps")),
        j_per_good_request=summary_stats(cycle_values(done, "energy_per_good_request_j")),
        notes=_notes(done),
    )


def _notes(done: Any) -> list[str]:
    columns = [c for c in ("steady_state_note", "steady_state_energy_note") if c in done]
    return list(dict.fromkeys(v for c in columns for v in done[c] if isinstance(v, str) and v))


def _windowed(done: Any, steady_column: str, whole_column: str) -> Windowed:
    """The steady-state figure where every done cycle has one, else the whole window's (a
    mean mixing the two windows would be neither)."""
    steady = cycle_values(done, steady_column)
    if steady and len(steady) == len(done):
        return Windowed(summary_stats(steady), "steady state")
    return Windowed(summary_stats(cycle_values(done, whole_column)), "whole window")


def _knee(points: Sequence[ServingPoint], attainment: float) -> Knee | None:
    judged = [p for p in points if p.good_fraction.mean is not None]
    if not judged:
        return None
    meeting = [p for p in judged if (p.good_fraction.mean or 0.0) >= attainment - _TOLERANCE]
    return Knee(max(meeting, key=lambda p: p.load) if meeting else None)


def load_text(load_key: str, value: float) -> str:
    """A load as a tick label: ``4``, ``inf (all at once)``, ``no cap``."""
    if math.isinf(value):
        return "inf (all at once)" if load_key == RATE_KEY else "no cap"
    return f"{value:g}"


def slo_targets(summary: ConfigurationSummary) -> str:
    """The configuration's SLO targets as text (``ttft_ms 200, e2e_ms 2000``), or empty."""
    return ", ".join(
        f"{key.removeprefix(SLO_PREFIX)} {value:g}"
        for key, value in summary.config.items()
        if key.startswith(SLO_PREFIX) and isinstance(value, (int, float))
    )
