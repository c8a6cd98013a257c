"""The report's tables as plain cells, rendered by both the terminal and the HTML page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from llenergymeasure.reporting.attribution import PHASES, ConfigurationAttribution
from llenergymeasure.reporting.compare import Comparison, MetricDifference
from llenergymeasure.reporting.serving import (
    CAP_KEY,
    RATE_KEY,
    ServingPoint,
    ServingView,
    load_text,
    slo_targets,
)
from llenergymeasure.reporting.summary import DENOMINATORS, ConfigurationSummary
from llenergymeasure.results.models import LatencyStats
from llenergymeasure.results.stats import Summary

POOLED = "pooled over all requests"
"""How the summary and serving tables' latency percentiles are taken (the comparison's are not:
see :data:`~llenergymeasure.reporting.compare.COMPARED`)."""
SUMMARY_TITLE = (
    "ranked by energy per output token: mean ± 95% CI half-width over cycles (Student t); "
    "latency p50/p95 pooled over every request of every cycle"
)


@dataclass(frozen=True)
class TableData:
    """A titled table of text cells, with notes printed under it; the columns headed by one
    of ``prose`` hold text that may wrap between words (the others, figures and names, keep
    each cell on one line); the first ``keys`` columns name a row."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    prose: tuple[str, ...] = ()
    keys: int = 1


def number(value: float | None, digits: int = 4) -> str:
    """A value to ``digits`` significant figures, or an em dash."""
    return "—" if value is None else f"{value:.{digits}g}"


ROUNDING = 1e-12
"""A half-width below this share of the mean is rounding in the sums of equal values: 0."""


def mean_ci(summary: Summary, scale: float = 1.0) -> str:
    """``mean ± half-width`` (no interval below two cycles)."""
    if summary.mean is None:
        return "—"
    text = number(summary.mean * scale)
    half_width = summary.ci95_half_width
    if half_width is not None:
        half_width = 0.0 if half_width <= ROUNDING * abs(summary.mean) else half_width
        text += f" ± {half_width * scale:.2g}"
    return text


def _p50_p95_ms(stats: LatencyStats) -> str:
    if stats.median_s is None or stats.p95_s is None:
        return "—"
    return f"{stats.median_s * 1e3:.4g} / {stats.p95_s * 1e3:.4g}"


def _method(summary: ConfigurationSummary) -> str:
    text = ", ".join(summary.energy_methods) or "—"
    return f"{text} (estimate)" if summary.is_estimate else text


def _warnings(summary: ConfigurationSummary) -> str:
    """Warning codes, with ``(k/n)`` where only k of the n cycles carry one."""
    return ", ".join(
        code if count == summary.n_cycles else f"{code} ({count}/{summary.n_cycles})"
        for code, count in sorted(summary.warnings.items())
    )


def _cycles(summary: ConfigurationSummary) -> str:
    return (
        f"{summary.n_cycles} (+{summary.n_failed} failed)"
        if summary.n_failed
        else str(summary.n_cycles)
    )


def summary_table(summaries: Sequence[ConfigurationSummary]) -> TableData:
    """One row per configuration, ranked by J/token."""
    adjusted = any(s.j_per_token_adjusted.mean is not None for s in summaries)
    headers = ["configuration", "cycles", "J/token"]
    headers += ["J/token idle-adj."] if adjusted else []
    headers += [
        "output tokens/s",
        f"TTFT p50/p95 ms, {POOLED}",
        f"ITL p50/p95 ms, {POOLED}",
        "mean power W",
        "energy method",
        "warnings",
    ]
    rows = []
    for s in summaries:
        row = [s.label, _cycles(s), mean_ci(s.j_per_token)]
        row += [mean_ci(s.j_per_token_adjusted)] if adjusted else []
        row += [
            mean_ci(s.tokens_per_s),
            _p50_p95_ms(s.ttft),
            _p50_p95_ms(s.itl),
            mean_ci(s.mean_power_w),
            _method(s),
            _warnings(s),
        ]
        rows.append(row)
    notes = [
        f"{s.label}: latency not pooled, {s.latency_note}" for s in summaries if s.latency_note
    ]
    if any(s.n_cycles == 2 for s in summaries):
        notes.append(
            "intervals from 2 cycles use t(0.975, 1) = 12.7 and are wide; run more cycles "
            "(the publication profile runs at least 5) for tight ones"
        )
    notes.append(
        "mean power = energy ÷ the energy sampler's window, per cycle; a warning marked (k/n) "
        "applies to k of n cycles, unmarked to all"
    )
    return TableData(SUMMARY_TITLE, headers, rows, notes, ("energy method", "warnings"))


DENOMINATOR_TITLE = (
    "energy per unit of work, gross and idle-adjusted: mean ± 95% CI half-width over cycles "
    "(Student t)"
)


def denominator_table(summaries: Sequence[ConfigurationSummary]) -> TableData:
    """Per configuration a row of every energy denominator gross, and one idle-adjusted where
    some cycle has an idle baseline."""
    headers = ["configuration", "energy"]
    headers += [f"{d.unit} {d.label}" for d in DENOMINATORS]
    rows = []
    for s in summaries:
        rows.append(
            [s.label, "gross", *(mean_ci(s.energy_per_unit[d.column]) for d in DENOMINATORS)]
        )
        adjusted = [s.energy_per_unit[d.adjusted_column] for d in DENOMINATORS]
        if any(a.mean is not None for a in adjusted):
            rows.append([s.label, "idle-adjusted", *map(mean_ci, adjusted)])
    notes = [
        "gross: the measured window's energy; idle-adjusted: less the idle baseline's power × "
        "the window. Tokens in+out: prompt and output tokens of the completed requests; "
        "per 1,000 requests in Wh (J per request × 1000 / 3600, AIEnergyScore's unit). Only "
        "completed requests count"
    ]
    return TableData(DENOMINATOR_TITLE, headers, rows, notes, keys=2)


def _spread(view: ConfigurationAttribution) -> list[str]:
    d = view.per_request
    if not d.n:
        return ["—"] * 5
    return [str(d.n), number(d.mean_j), number(d.median_j), number(d.p95_j),
            f"{number(d.min_j)}–{number(d.max_j)}"]  # fmt: skip


REQUEST_ENERGY_TITLE = (
    "energy per request (J), attributed from the energy timeline: every completed request of "
    "every done cycle pooled"
)


def request_energy_table(views: Sequence[ConfigurationAttribution]) -> TableData:
    """Per configuration, the distribution of the energy attributed to each request."""
    headers = ["configuration", "requests", "mean J", "p50 J", "p95 J", "min–max J"]
    rows = [[v.configuration.label, *_spread(v)] for v in views]
    notes = [f"{v.configuration.label}: {v.missing}" for v in views if v.missing]
    return TableData(REQUEST_ENERGY_TITLE, headers, rows, notes)


PHASE_TITLE = (
    "energy per phase (J per cycle): steps that ran a prefill, steps that only decoded, and "
    "overhead no step claims; mean ± 95% CI over cycles (share of the three)"
)


def _part(view: ConfigurationAttribution, column: str) -> str:
    share = view.share(column)
    text = mean_ci(view.phases[column])
    return text if share is None else f"{text} ({share:.0%})"


def phase_table(views: Sequence[ConfigurationAttribution]) -> TableData:
    """Per configuration, the prefill/decode/overhead split and J per prompt and decode token."""
    headers = ["configuration", *(f"{name} J" for name, _ in PHASES)]
    headers += ["J/prompt token", "J/decode token"]
    rows = [
        [
            v.configuration.label,
            *(_part(v, column) for _, column in PHASES),
            mean_ci(v.energy_per_prompt_token_j),
            mean_ci(v.energy_per_decode_token_j),
        ]
        for v in views
    ]
    notes = [f"{v.configuration.label}: {n}" for v in views for n in v.notes]
    notes.append(
        "J/prompt token: prefill steps' energy ÷ prompt tokens prefilled; J/decode token: "
        "decode-only steps' energy ÷ the tokens they produced"
    )
    return TableData(PHASE_TITLE, headers, rows, notes)


def attribution_tables(views: Sequence[ConfigurationAttribution]) -> list[TableData]:
    """The per-request and per-phase tables; where no configuration has an attribution, one
    table saying why for each."""
    if any(v.attributed for v in views):
        return [request_energy_table(views), phase_table(views)]
    rows = [[v.configuration.label, v.missing or "—"] for v in views]
    title = "energy per request and per phase: no configuration has an energy attribution"
    return [TableData(title, ["configuration", "attribution"], rows, prose=("attribution",))]


def _signed(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:+.4g} {unit}"


def _interval(d: MetricDifference) -> str:
    if d.ci95_low is None or d.ci95_high is None:
        return "—"
    return f"[{d.ci95_low:+.3g}, {d.ci95_high:+.3g}]"


def _verdict(d: MetricDifference) -> str:
    if d.p_value is None:
        return "—"
    word = "yes" if d.significant else "no"
    return f"{word} (p={d.p_value:.2g})"


def _with_n(mean: float, unit: str, n: int, cycles: int) -> str:
    """The mean and unit, with its count where fewer cycles than done have the figure."""
    text = f"{number(mean)} {unit}"
    return text if n == cycles else f"{text} (n={n})"


def comparison_table(comparison: Comparison) -> TableData:
    """Each metric of B against A: means, difference, its 95% CI and Welch's test."""
    headers = ["metric", "A", "B", "B − A", "change", "95% CI of B − A", "significant"]
    rows = [
        [
            d.label,
            _with_n(d.mean_a, d.unit, d.n_a, comparison.n_a),
            _with_n(d.mean_b, d.unit, d.n_b, comparison.n_b),
            _signed(d.difference, d.unit),
            "—" if d.relative is None else f"{d.relative:+.1%}",
            _interval(d),
            _verdict(d),
        ]
        for d in comparison.metrics
    ]
    notes = [text for text in (comparison.lengths_warning, comparison.note) if text]
    notes.append(
        "significant: Welch's t-test over cycles, two-sided, α = 0.05; latency rows (ms) are "
        "the mean over cycles of each cycle's own percentile, not the percentile pooled over "
        "all requests of the summary table (the two can even rank configurations apart); mean "
        "power = energy ÷ window"
    )
    title = (
        f"A = {comparison.a} ({comparison.n_a} cycles) against B = {comparison.b} "
        f"({comparison.n_b} cycles): difference of the means over cycles"
    )
    return TableData(title, headers, rows, notes, ("metric",))


SERVING_TITLE = (
    "serving under load: J/request and output tokens/s over the steady-state window where "
    "every cycle has one, else over the whole measured window (column 'window'); mean ± 95% "
    "CI over cycles; TTFT and ITL p95 pooled over every request of every cycle"
)


def serving_table(view: ServingView) -> TableData:
    """One row per configuration run under load, by group, line and load."""
    headers = ["configuration", "load", "achieved req/s", "J/request", "output tokens/s"]
    headers += ["window", f"TTFT p95 ms, {POOLED}", f"ITL p95 ms, {POOLED}"]
    slo = view.has_slo
    headers += ["SLO targets ms", "good fraction", "goodput req/s", "J/good request"] if slo else []
    rows = [_serving_row(point, slo) for point in view.points]
    notes = [f"{p.configuration.label}: {note}" for p in view.points for note in p.notes]
    notes.append(
        "achieved req/s: arrivals per second from the submit times; a rate of inf submits "
        "every request at once"
    )
    return TableData(SERVING_TITLE, headers, rows, notes, ("load", "window", "SLO targets ms"))


def _serving_row(point: ServingPoint, slo: bool) -> list[str]:
    row = [
        point.configuration.label,
        _load(point),
        mean_ci(point.achieved_rate_rps),
        mean_ci(point.j_per_request.summary),
        mean_ci(point.tokens_per_s.summary),
        _window(point),
        number(point.ttft_p95_ms),
        number(point.itl_p95_ms),
    ]
    if slo:
        row += [
            slo_targets(point.configuration) or "—",
            mean_ci(point.good_fraction),
            mean_ci(point.goodput_rps),
            mean_ci(point.j_per_good_request),
        ]
    return row


def _load(point: ServingPoint) -> str:
    """The configuration's load: its rate and its cap, as set."""
    config = point.configuration.config
    rate, cap = config.get(RATE_KEY), config.get(CAP_KEY)
    parts = [] if rate is None else [_with_unit(RATE_KEY, float(rate))]
    if cap is not None:
        parts.append(("≤ " if parts else "") + _with_unit(CAP_KEY, float(cap)))
    return ", ".join(parts) or "—"


def _with_unit(load_key: str, value: float) -> str:
    text = load_text(load_key, value)
    if math.isinf(value):
        return text
    return f"{text} req/s" if load_key == RATE_KEY else f"{text} in flight"


def _window(point: ServingPoint) -> str:
    energy, speed = point.j_per_request.window, point.tokens_per_s.window
    return energy if energy == speed else f"J: {energy}; tokens/s: {speed}"


def knee_table(view: ServingView) -> TableData | None:
    """Per line with SLOs, its knee and the J/request there; None when no line has SLOs."""
    headers = ["group", "line", "knee", "J/request there", "good fraction there"]
    rows = []
    for group in view.groups:
        for line in group.lines:
            if line.knee is None:
                continue
            point = line.knee.point
            if point is None:
                rows.append([group.title, line.label, "none", "—", "—"])
                continue
            j_per_request = f"{mean_ci(point.j_per_request.summary)} ({point.j_per_request.window})"
            load = _with_unit(group.load_key, point.load)
            rows.append(
                [group.title, line.label, load, j_per_request, mean_ci(point.good_fraction)]
            )
    if not rows:
        return None
    title = (
        f"SLO knee per line: the highest load whose good fraction (requests meeting every SLO "
        f"target, mean over cycles) is at least {view.attainment:g} (--slo-attainment)"
    )
    notes = ["none: no load of the line reaches it"] if any(r[2] == "none" for r in rows) else []
    return TableData(title, headers, rows, notes, ("group", "line", "J/request there"))


def serving_tables(view: ServingView | None) -> list[TableData]:
    """The serving table, then the knee table where some line has SLOs (none offline)."""
    if view is None:
        return []
    knees = knee_table(view)
    return [serving_table(view)] + ([knees] if knees is not None else [])
