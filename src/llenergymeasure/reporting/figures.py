"""Comparison figures (plotly): Pareto fronts of energy against speed and latency, and the
effect of each swept parameter. Every figure comes with a caption saying what is plotted, how
it was obtained, its uncertainty and the warnings that apply."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.reporting.deps import require
from llenergymeasure.reporting.summary import ConfigurationSummary
from llenergymeasure.results.stats import Summary

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
    """One Pareto x axis: its label, how to read a configuration's value and interval, and
    whether more is better."""

    label: str
    value: Callable[[ConfigurationSummary], float | None]
    half_width: Callable[[ConfigurationSummary], float | None]
    higher_is_better: bool
    note: str


PARETO_AXES = (
    Axis(
        "output tokens/s",
        lambda s: s.tokens_per_s.mean,
        lambda s: s.tokens_per_s.ci95_half_width,
        True,
        "x: mean output tokens/s over cycles, with its 95% CI.",
    ),
    Axis(
        "TTFT p95 (ms)",
        lambda s: None if s.ttft.p95_s is None else s.ttft.p95_s * 1e3,
        lambda s: None,
        False,
        "x: 95th percentile of time to first token over every request of every cycle "
        "(pooled raw samples; a percentile has no interval here).",
    ),
    Axis(
        "ITL p95 (ms)",
        lambda s: None if s.itl.p95_s is None else s.itl.p95_s * 1e3,
        lambda s: None,
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
    shown = [s for s in summaries if s.j_per_token.mean is not None and axis.value(s) is not None]
    if not shown:
        return None
    points = [(float(axis.value(s) or 0), float(s.j_per_token.mean or 0)) for s in shown]
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
    caption = (
        f"Each point is a configuration; ★ marks the Pareto-optimal ones (no other is both "
        f"cheaper and better on x). Better is down and to the {better}. {axis.note} "
        f"y: mean J/token over cycles. {CI_TEXT} {context}"
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
        error_y=_whiskers([shown[i].j_per_token.ci95_half_width for i in chosen]),
        error_x=_whiskers([axis.half_width(shown[i]) for i in chosen]),
        mode="markers+text" if len(shown) <= 12 else "markers",
        text=labels,
        textposition=[_POSITIONS[i % len(_POSITIONS)] for i in chosen],
        marker={
            "symbol": "star" if is_optimal else "circle",
            "size": 14 if is_optimal else 9,
            "color": "#c0392b" if is_optimal else "#7f8c8d",
        },
        name="Pareto-optimal" if is_optimal else "dominated",
        hovertemplate="%{text}<br>x=%{x:.4g}<br>J/token=%{y:.4g}<extra></extra>",
    )


_POSITIONS = ("top right", "bottom left", "top left", "bottom right")  # fewer overlaps


def _whiskers(half_widths: Sequence[float | None]) -> dict[str, Any]:
    values = [w if w is not None else 0.0 for w in half_widths]
    return {"type": "data", "array": values, "visible": any(values), "thickness": 1.2}


def _layout(title: str, x_label: str, y_label: str) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_label}},
        "yaxis": {"title": {"text": y_label}},
        "template": "plotly_white",
        "height": 460,
        "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
        "legend": {"orientation": "h", "y": -0.18},
    }


def swept_parameters(summaries: Sequence[ConfigurationSummary]) -> list[str]:
    """``config.*`` fields whose value differs between configurations (the name excluded)."""
    keys = list(dict.fromkeys(k for s in summaries for k in s.config))
    return [
        key
        for key in keys
        if key != "config.name" and len({_text(s.config.get(key)) for s in summaries}) > 1
    ]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


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
        key = ", ".join(f"{o.removeprefix('config.')}={_text(s.config.get(o))}" for o in others)
        lines.setdefault(key or "all", []).append(s)
    for index, (line, members) in enumerate(lines.items()):
        members = sorted(members, key=lambda s: _sort_key(s.config.get(parameter)))
        x = [_text(s.config.get(parameter)) for s in members]
        for col, pick in ((1, _j_per_token), (2, _tokens_per_s)):
            figure.add_trace(
                _sweep_trace(go, x, [pick(s) for s in members], line, index, col == 1),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text=name, type="category")
    figure.update_layout(
        title={"text": f"Effect of {name}{suffix}"},
        template="plotly_white",
        height=440,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "h", "y": -0.2, "title": {"text": "other parameters: "}},
    )
    caption = (
        f"Mean over cycles against {name}; one line per combination of the other swept "
        f"parameters. {CI_TEXT} {context}"
    )
    return Figure(f"Effect of {name}{suffix}", caption, figure)


def _j_per_token(s: ConfigurationSummary) -> Summary:
    return s.j_per_token


def _tokens_per_s(s: ConfigurationSummary) -> Summary:
    return s.tokens_per_s


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _text(value))


def _sweep_trace(
    go: Any, x: list[str], values: list[Summary], line: str, index: int, legend: bool
) -> Any:
    return go.Scatter(
        x=x,
        y=[v.mean for v in values],
        error_y=_whiskers([v.ci95_half_width for v in values]),
        mode="lines+markers",
        name=line,
        legendgroup=line,
        showlegend=legend,
        marker={"color": _PALETTE[index % len(_PALETTE)]},
        line={"color": _PALETTE[index % len(_PALETTE)]},
    )


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
