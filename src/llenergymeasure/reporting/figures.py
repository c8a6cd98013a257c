"""Comparison figures (plotly): Pareto fronts of energy against speed and latency, the
effect of each swept parameter, energy and latency against the load (the serving view), and
where the energy went (per request, per phase).
Every figure comes with a caption saying what is plotted, how it was obtained, its uncertainty
and the warnings that apply."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from llenergymeasure.reporting.attribution import PHASES, ConfigurationAttribution
from llenergymeasure.reporting.deps import require
from llenergymeasure.reporting.serving import (
    RATE_KEY,
    ServingGroup,
    ServingLine,
    ServingPoint,
    Window,
    load_text,
)
from llenergymeasure.reporting.summary import ConfigurationSummary, line_label, value_text
from llenergymeasure.results.stats import Summary, t_quantile

J_PER_TOKEN = "energy per output token (J)"
CI_TEXT = (
    "Whiskers: 95% Student-t confidence interval of the mean over cycles (none for a "
    "configuration with one cycle)."
)


@dataclass(frozen=True)
class Figure:
    """A plotly figure with its title and caption."""

    title: str
    caption: str
    figure: Any


@dataclass(frozen=True)
class Axis:
    """One Pareto x axis: its label, a configuration's value (with its interval, if any), and
    whether more is better."""

    label: str
    summary: Callable[[ConfigurationSummary], Summary]
    higher_is_better: bool
    note: str


def _ms(value_s: float | None) -> Summary:
    """A pooled percentile in ms: a value without an interval."""
    return Summary(n=1, mean=None if value_s is None else value_s * 1e3)


PARETO_AXES = (
    Axis(
        "output tokens/s",
        lambda s: s.tokens_per_s,
        True,
        "x: mean output tokens/s over cycles, with its 95% CI.",
    ),
    Axis(
        "TTFT p95 over all requests, pooled (ms)",
        lambda s: _ms(s.ttft.p95_s),
        False,
        "x: 95th percentile of time to first token over every request of every cycle "
        "(pooled raw samples; a percentile has no interval here).",
    ),
    Axis(
        "ITL p95 over all requests, pooled (ms)",
        lambda s: _ms(s.itl.p95_s),
        False,
        "x: 95th percentile of inter-token latency over every token gap of every cycle "
        "(pooled raw samples).",
    ),
)


def pareto_optimal(points: Sequence[tuple[float, float]], higher_x_is_better: bool) -> list[bool]:
    """For (x, y) points where lower y is better: True where no other point is at least as
    good on both and better on one."""
    sign = 1.0 if higher_x_is_better else -1.0

    def dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
        better_or_equal = sign * p[0] >= sign * q[0] and p[1] <= q[1]
        return better_or_equal and (sign * p[0] > sign * q[0] or p[1] < q[1])

    return [not any(dominates(other, point) for other in points) for point in points]


def pareto_figure(
    summaries: Sequence[ConfigurationSummary], axis: Axis, context: str
) -> Figure | None:
    """J/token against ``axis``, each point a configuration, the Pareto front marked; None
    when no configuration has both figures."""
    go = require("plotly.graph_objects")
    shown = [
        s for s in summaries if s.j_per_token.mean is not None and axis.summary(s).mean is not None
    ]
    if not shown:
        return None
    points = [(float(axis.summary(s).mean or 0), float(s.j_per_token.mean or 0)) for s in shown]
    optimal = pareto_optimal(points, axis.higher_is_better)
    figure = go.Figure()
    for is_optimal in (True, False):
        chosen = [i for i, flag in enumerate(optimal) if flag is is_optimal]
        if chosen:
            figure.add_trace(_pareto_trace(go, shown, points, chosen, axis, is_optimal))
    front = sorted(p for p, flag in zip(points, optimal, strict=True) if flag)
    if len(front) > 1:
        figure.add_trace(
            go.Scatter(
                x=[p[0] for p in front],
                y=[p[1] for p in front],
                mode="lines",
                line={"dash": "dot", "color": "#c0392b"},
                name="Pareto front",
                hoverinfo="skip",
            )
        )
    better = "right" if axis.higher_is_better else "left"
    title = f"Energy per output token vs {axis.label}"
    figure.update_layout(**_layout(title, axis.label, J_PER_TOKEN))
    mark_cuts(go, figure)
    cut = cut_cycles([s.j_per_token for s in shown] + [axis.summary(s) for s in shown])
    caption = (
        f"Each point is a configuration; ★ marks the Pareto-optimal ones (no other is both "
        f"cheaper and better on x). Better is down and to the {better}. {axis.note} "
        f"y: mean J/token over cycles. {CI_TEXT}{cut_note(cut)} {context}"
    )
    return Figure(title, caption, figure)


def _pareto_trace(
    go: Any,
    shown: Sequence[ConfigurationSummary],
    points: Sequence[tuple[float, float]],
    chosen: Sequence[int],
    axis: Axis,
    is_optimal: bool,
) -> Any:
    labels = [shown[i].label for i in chosen]
    return go.Scatter(
        x=[points[i][0] for i in chosen],
        y=[points[i][1] for i in chosen],
        error_y=_whiskers([shown[i].j_per_token for i in chosen]),
        error_x=_whiskers([axis.summary(shown[i]) for i in chosen]),
        mode="markers+text" if len(shown) <= 12 else "markers",
        text=labels,
        textposition=[label_position(points[i], points) for i in chosen],
        cliponaxis=False,
        marker={
            "symbol": "star" if is_optimal else "circle",
            "size": 14 if is_optimal else 9,
            "color": "#c0392b" if is_optimal else "#7f8c8d",
        },
        name="Pareto-optimal" if is_optimal else "dominated",
        hovertemplate="%{text}<br>x=%{x:.4g}<br>J/token=%{y:.4g}<extra></extra>",
    )


def label_position(point: tuple[float, float], points: Sequence[tuple[float, float]]) -> str:
    """Where a point's label goes: towards the middle of the plot (left of a point in the right
    half, below one in the top half), so no label runs past the plot's edge."""
    x_mid = max(p[0] for p in points) / 2  # both axes start at zero
    y_mid = max(p[1] for p in points) / 2
    vertical = "bottom" if point[1] > y_mid else "top"
    return f"{vertical} {'left' if point[0] > x_mid else 'right'}"


def _crosses_zero(summary: Summary) -> bool:
    half_width = summary.ci95_half_width
    return summary.mean is not None and half_width is not None and half_width > summary.mean


def _whiskers(summaries: Sequence[Summary]) -> dict[str, Any]:
    """95% CI whiskers of the means, the lower one cut at zero where it would cross it: none of
    the quantities plotted can be negative (:func:`mark_cuts` marks the cuts)."""
    up = [s.ci95_half_width or 0.0 for s in summaries]
    down = [min(w, s.mean) if _crosses_zero(s) and s.mean is not None else w
            for s, w in zip(summaries, up, strict=True)]  # fmt: skip
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down,
            "visible": any(up), "thickness": 1.2}  # fmt: skip


CUT_NAME = "95% CI cut at 0"
_CUT_SYMBOLS = {"error_y": "triangle-down-open", "error_x": "triangle-left-open"}


def mark_cuts(go: Any, figure: Any) -> None:
    """A marker (▽, or ◁ on x) at zero under every whisker :func:`_whiskers` cut there, in the
    subplot of its trace; one legend entry for them all."""
    first = True
    for trace in list(figure.data):
        for key, symbol in _CUT_SYMBOLS.items():
            error = getattr(trace, key, None)
            if error is None or error.arrayminus is None:
                continue
            cut = [i for i, (down, up) in enumerate(zip(error.arrayminus, error.array,
                   strict=True)) if down < up]  # fmt: skip
            if not cut:
                continue
            x = [0.0 if key == "error_x" else trace.x[i] for i in cut]
            y = [0.0 if key == "error_y" else trace.y[i] for i in cut]
            figure.add_trace(_cut_trace(go, trace, x, y, symbol, first))
            first = False


def _cut_trace(go: Any, trace: Any, x: list[Any], y: list[Any], symbol: str, legend: bool) -> Any:
    return go.Scatter(
        x=x, y=y, xaxis=trace.xaxis, yaxis=trace.yaxis, mode="markers", name=CUT_NAME,
        legendgroup=CUT_NAME, showlegend=legend, cliponaxis=False,
        marker={"symbol": symbol, "size": 11, "color": "#c0392b"},
        hovertemplate="the 95% CI runs below 0 (too few cycles): cut at 0<extra></extra>",
    )  # fmt: skip


def cut_cycles(summaries: Iterable[Summary]) -> list[int]:
    """The numbers of cycles behind the intervals that cross zero (sorted, each once)."""
    return sorted({s.n for s in summaries if _crosses_zero(s)})


def cut_note(cycles: Sequence[int]) -> str:
    """What the caption says where whiskers were cut at zero (nothing where none was)."""
    if not cycles:
        return ""
    fewest = cycles[0]
    counts = ", ".join(map(str, cycles))
    return (
        f" A 95% CI that would run below zero is cut at zero and marked ▽ (◁ on x): the "
        f"quantity cannot be negative; the interval is that wide because there are too few "
        f"cycles (n={counts}: with n={fewest} the half-width is t(0.975, {fewest - 1}) = "
        f"{t_quantile(0.975, fewest - 1):.3g} standard errors; run more cycles)."
    )


def _layout(title: str, x_label: str, y_label: str) -> dict[str, Any]:
    """Both axes start at zero (every quantity plotted is a non-negative amount)."""
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_label}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": y_label}, "rangemode": "tozero"},
        "template": "plotly_white",
        "height": 460,
        "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
        "legend": {"orientation": "h", "y": -0.18},
    }


def sweep_figure(
    summaries: Sequence[ConfigurationSummary],
    parameter: str,
    others: Sequence[str],
    context: str,
    suffix: str = "",
) -> Figure:
    """J/token and output tokens/s against ``parameter``, one line per combination of the
    ``others`` swept parameters."""
    go = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    name = parameter.removeprefix("config.")
    figure = subplots.make_subplots(
        rows=1, cols=2, subplot_titles=(J_PER_TOKEN, "output tokens/s"), horizontal_spacing=0.12
    )
    lines: dict[str, list[ConfigurationSummary]] = {}
    for s in summaries:
        lines.setdefault(line_label(s, others), []).append(s)
    for index, (line, members) in enumerate(lines.items()):
        members = sorted(members, key=lambda s: _sort_key(s.config.get(parameter)))
        x = [value_text(s.config.get(parameter)) for s in members]
        for col, pick in ((1, _j_per_token), (2, _tokens_per_s)):
            figure.add_trace(
                _sweep_trace(go, x, [pick(s) for s in members], line, index, col == 1),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text=name, type="category")
    figure.update_yaxes(rangemode="tozero")
    figure.update_layout(
        title={"text": f"Effect of {name}{suffix}"},
        template="plotly_white",
        height=440,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "h", "y": -0.2, "title": {"text": "other parameters: "}},
    )
    mark_cuts(go, figure)
    cut = cut_cycles(pick(s) for s in summaries for pick in (_j_per_token, _tokens_per_s))
    caption = (
        f"Mean over cycles against {name}; one line per combination of the other swept "
        f"parameters. {CI_TEXT}{cut_note(cut)} {context}"
    )
    return Figure(f"Effect of {name}{suffix}", caption, figure)


def _j_per_token(s: ConfigurationSummary) -> Summary:
    return s.j_per_token


def _tokens_per_s(s: ConfigurationSummary) -> Summary:
    return s.tokens_per_s


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, value_text(value))


def _sweep_trace(
    go: Any, x: list[str], values: list[Summary], line: str, index: int, legend: bool
) -> Any:
    return go.Scatter(
        x=x,
        y=[v.mean for v in values],
        error_y=_whiskers(values),
        mode="lines+markers",
        name=line,
        legendgroup=line,
        showlegend=legend,
        marker={"color": _PALETTE[index % len(_PALETTE)]},
        line={"color": _PALETTE[index % len(_PALETTE)]},
    )


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


class _Value(NamedTuple):
    """A point's value in one panel (with its interval, if any), and the window it covers."""

    summary: Summary
    window: Window | None = None


def _one(value: float | None) -> _Value:
    """A value without an interval (a pooled percentile)."""
    return _Value(Summary(n=1, mean=value))


@dataclass(frozen=True)
class _Panel:
    """One panel of the serving figure: its title and how to read a point's value."""

    title: str
    value: Callable[[ServingPoint], _Value]
    legend: bool = False
    """The panel whose traces make the legend (one whose markers are all filled)."""


SERVING_PANELS = (
    _Panel("J/request", lambda p: _Value(p.j_per_request.summary, p.j_per_request.window)),
    _Panel("output tokens/s", lambda p: _Value(p.tokens_per_s.summary, p.tokens_per_s.window)),
    _Panel("TTFT p95, pooled (ms)", lambda p: _one(p.ttft_p95_ms), legend=True),
    _Panel("ITL p95, pooled (ms)", lambda p: _one(p.itl_p95_ms)),
)
SLO_PANELS = (
    _Panel("good fraction (met every SLO)", lambda p: _Value(p.good_fraction)),
    _Panel("goodput (good requests/s)", lambda p: _Value(p.goodput_rps)),
)
_SYMBOLS: dict[Window | None, str] = {
    "steady state": "circle",
    "whole window": "circle-open",
    None: "circle",
}


def serving_figure(group: ServingGroup, attainment: float, context: str) -> Figure:
    """J/request, output tokens/s, TTFT p95 and ITL p95 against the group's load, one line
    per combination of the other swept parameters; with SLOs, also the good fraction (the
    attainment threshold dashed) and goodput, and each line's knee starred."""
    go = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    slo = any(line.knee is not None for line in group.lines)
    panels = SERVING_PANELS + (SLO_PANELS if slo else ())
    rows = len(panels) // 2
    figure = subplots.make_subplots(
        rows=rows, cols=2, subplot_titles=[p.title for p in panels], horizontal_spacing=0.12,
        vertical_spacing=0.3 / rows,
    )  # fmt: skip
    for index, line in enumerate(group.lines):
        _add_line(go, figure, group, line, panels, _PALETTE[index % len(_PALETTE)])
    if slo:
        figure.add_hline(
            y=attainment, row=3, col=1, line={"dash": "dash", "color": "#c0392b"},
            annotation_text=f"attainment {attainment:g}",
        )  # fmt: skip
    loads = sorted({p.load for line in group.lines for p in line.points})
    figure.update_xaxes(
        type="category", categoryorder="array",
        categoryarray=[load_text(group.load_key, v) for v in loads],
    )  # fmt: skip
    figure.update_xaxes(title_text=group.load_label, row=rows)
    figure.update_yaxes(rangemode="tozero")
    title = f"Serving under load: {group.title}"
    figure.update_layout(
        title={"text": title}, template="plotly_white", height=300 * rows + 140,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "h", "y": -0.08, "title": {"text": "other parameters: "}},
    )  # fmt: skip
    mark_cuts(go, figure)
    values = [panel.value(p).summary for panel in panels for ln in group.lines for p in ln.points]
    caption = _serving_caption(group, slo, attainment, context, cut_note(cut_cycles(values)))
    return Figure(title, caption, figure)


def _add_line(
    go: Any,
    figure: Any,
    group: ServingGroup,
    line: ServingLine,
    panels: Sequence[_Panel],
    color: str,
) -> None:
    """One line's trace in every panel, and its knee's star on the J/request panel."""
    x = [load_text(group.load_key, p.load) for p in line.points]
    for number, panel in enumerate(panels):
        values = [panel.value(p) for p in line.points]
        trace = go.Scatter(
            x=x, y=[v.summary.mean for v in values],
            error_y=_whiskers([v.summary for v in values]),
            mode="lines+markers", name=line.label, legendgroup=line.label,
            showlegend=panel.legend, line={"color": color},
            marker={"color": color, "size": 9, "symbol": [_SYMBOLS[v.window] for v in values]},
        )  # fmt: skip
        figure.add_trace(trace, row=number // 2 + 1, col=number % 2 + 1)
    knee = line.knee.point if line.knee is not None else None
    j_per_request = knee.j_per_request.summary.mean if knee is not None else None
    if knee is not None and j_per_request is not None:
        where = load_text(group.load_key, knee.load)
        figure.add_trace(_knee_trace(go, where, j_per_request, line.label, color), row=1, col=1)


def _knee_trace(go: Any, x: str, j_per_request: float, label: str, color: str) -> Any:
    return go.Scatter(
        x=[x], y=[j_per_request], mode="markers+text", text=[f"knee: {j_per_request:.3g} J"],
        textposition="top center", cliponaxis=False, legendgroup=label, name=f"knee of {label}",
        showlegend=False, hoverinfo="name+y",
        marker={"symbol": "star", "size": 18, "color": color,
                "line": {"color": "#222", "width": 1}},
    )  # fmt: skip


def _serving_caption(
    group: ServingGroup, slo: bool, attainment: float, context: str, cut: str
) -> str:
    text = (
        f"Mean over cycles against {group.load_label}; one line per combination of the other "
        "swept parameters. J/request and output tokens/s: filled markers are the steady-state "
        "window (ramp-up and drain left out), hollow ones the whole measured window (a "
        "configuration without a steady state, or whose sampler reports only a total). TTFT "
        "and ITL: 95th percentile pooled over every request of every cycle."
    )
    if group.load_key == RATE_KEY:
        text += " A rate of inf (every request at once) is the rightmost tick."
    if slo:
        text += (
            f" Good fraction: requests that met every SLO target; the dashed line is the "
            f"attainment threshold {attainment:g}. ★ marks each line's knee, the highest load "
            "whose good fraction reaches it (a line with no ★ has none, or lacks J/request)."
        )
    return f"{text} {CI_TEXT}{cut} {context}"


ATTRIBUTION_TEXT = (
    "Attribution: each interval of the energy timeline is shared among the requests in flight "
    "in proportion to the tokens each processed in it (a prefill counts its prompt tokens at "
    "the step that produced its first token; each decode step one token per request); energy "
    "no step claims (nothing in flight, the tail after the last token) is overhead. A run's "
    "attributions add up to its window energy; the README states the model and its limits."
)
STRIP_MAX_POINTS = 2000  # above this many requests in a configuration, only outliers are drawn


def _not_attributed(views: Sequence[ConfigurationAttribution]) -> str:
    missing = [v.configuration.label for v in views if not v.attributed]
    return f" Not attributed (see the tables): {', '.join(missing)}." if missing else ""


def request_energy_figure(views: Sequence[ConfigurationAttribution], context: str) -> Figure | None:
    """Per configuration, a box of the energy attributed to each completed request with every
    request drawn beside it; None when no configuration has per-request energy."""
    go = require("plotly.graph_objects")
    shown = [v for v in views if v.configuration.request_energy_j]
    if not shown:
        return None
    figure = go.Figure()
    for index, view in enumerate(shown):
        values = view.configuration.request_energy_j
        figure.add_trace(
            go.Box(
                y=values, name=view.configuration.label, boxmean=True, jitter=0.4,
                pointpos=-1.6, marker={"size": 4, "color": _PALETTE[index % len(_PALETTE)]},
                boxpoints="all" if len(values) <= STRIP_MAX_POINTS else "outliers",
            )
        )  # fmt: skip
    title = "Energy per request"
    figure.update_layout(**_layout(title, "configuration", "energy per request (J)"))
    figure.update_layout(showlegend=False)
    caption = (
        "The energy attributed to each completed request (requests.parquet energy_j), every "
        "request of every done cycle of the configuration pooled: the box spans the quartiles "
        "around the median, the dashed line is the mean, each point a request "
        f"(only outliers above {STRIP_MAX_POINTS} requests). {ATTRIBUTION_TEXT}"
        f"{_not_attributed(views)} {context}"
    )
    return Figure(title, caption, figure)


_PHASE_COLOURS = {"prefill": "#e67e22", "decode": "#2980b9", "overhead": "#95a5a6"}


def phase_split_figure(views: Sequence[ConfigurationAttribution], context: str) -> Figure | None:
    """Per configuration, stacked bars of the window's energy spent in prefill steps,
    decode-only steps and overhead; None when no configuration has an attribution."""
    go = require("plotly.graph_objects")
    shown = [v for v in views if v.attributed]
    if not shown:
        return None
    figure = go.Figure()
    labels = [v.configuration.label for v in shown]
    for name, column in PHASES:
        shares = [v.share(column) for v in shown]
        figure.add_trace(
            go.Bar(
                x=labels, y=[v.phases[column].mean for v in shown], name=name,
                marker={"color": _PHASE_COLOURS[name]},
                customdata=[0.0 if share is None else share for share in shares],
                hovertemplate=f"%{{x}}<br>{name}: %{{y:.4g}} J "
                "(%{customdata:.0%})<extra></extra>",
            )
        )  # fmt: skip
    title = "Energy per phase"
    figure.update_layout(**_layout(title, "configuration", "energy per cycle (J)"))
    figure.update_layout(barmode="stack")
    caption = (
        "The window's energy split by step, mean over the done cycles with an attribution: "
        "steps that ran at least one prefill, steps that only decoded, and overhead no step "
        f"claims (hover for each part's share). {ATTRIBUTION_TEXT}{_not_attributed(views)} "
        f"{context}"
    )
    return Figure(title, caption, figure)


def phase_token_figure(views: Sequence[ConfigurationAttribution], context: str) -> Figure | None:
    """Per configuration, J per prompt token beside J per decode token, with 95% CI whiskers;
    None when no configuration has either."""
    go = require("plotly.graph_objects")
    pick: dict[str, Callable[[ConfigurationAttribution], Summary]] = {
        "J per prompt token": lambda v: v.energy_per_prompt_token_j,
        "J per decode token": lambda v: v.energy_per_decode_token_j,
    }
    shown = [v for v in views if any(p(v).mean is not None for p in pick.values())]
    if not shown:
        return None
    figure = go.Figure()
    for (name, value), colour in zip(pick.items(), ("#e67e22", "#2980b9"), strict=True):
        summaries: list[Summary] = [value(v) for v in shown]
        figure.add_trace(
            go.Bar(
                x=[v.configuration.label for v in shown], y=[s.mean for s in summaries],
                error_y=_whiskers(summaries), name=name, marker={"color": colour},
            )
        )  # fmt: skip
    title = "Energy per prompt token and per decode token"
    figure.update_layout(**_layout(title, "configuration", "energy per token (J)"))
    figure.update_layout(barmode="group")
    mark_cuts(go, figure)
    cut = cut_note(cut_cycles(p(v) for v in shown for p in pick.values()))
    caption = (
        "J per prompt token: the energy of the steps that ran a prefill ÷ the prompt tokens "
        "prefilled; J per decode token: the energy of the decode-only steps ÷ the tokens they "
        f"produced; mean over cycles. {CI_TEXT}{cut} {ATTRIBUTION_TEXT}"
        f"{_not_attributed(views)} {context}"
    )
    return Figure(title, caption, figure)
