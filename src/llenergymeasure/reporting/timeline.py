"""Device timelines from ``timeseries.parquet``: power per device, temperature, clocks,
utilisation and memory over time, with the warmup, baseline and measured window shaded.

Where telemetry has no power reading (a CPU run: psutil reports none), the power panel shows
what the energy sampler implies instead, energy ÷ window as a flat line over the measured
window, labelled as such (and as an estimate where the sampler estimates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llenergymeasure.reporting.deps import require
from llenergymeasure.reporting.figures import Figure
from llenergymeasure.results.models import ExperimentResult

# Timeseries column -> panel title.
PANELS = {
    "power_w": "power (W)",
    "temperature_c": "temperature (°C)",
    "clock_mhz": "clock (MHz)",
    "utilisation_pct": "utilisation (%)",
    "memory_used_mb": "memory used (MB)",
    "requests_running": "requests running",
    "requests_waiting": "requests waiting",
    "kv_cache_usage_pct": "KV-cache usage (%)",
}
# Harness phase -> (label, RGB) of its shaded band; other phases (load, after) stay clear.
SHADED = {
    "warmup": ("warmup", "243, 156, 18"),
    "baseline": ("idle baseline", "127, 140, 141"),
    "window": ("measured window", "39, 174, 96"),
}


@dataclass(frozen=True)
class PhaseSpan:
    """A harness phase from its first sample to the first sample of the next phase (s)."""

    phase: str
    start_s: float
    end_s: float
    n_samples: int = 1

    @property
    def drawn(self) -> bool:
        """Shaded: a phase we shade, long enough to have two samples (a cached baseline is
        marked but takes no time)."""
        return self.phase in SHADED and self.n_samples >= 2 and self.end_s > self.start_s


def phase_spans(timestamps: Sequence[float], phases: Sequence[str]) -> list[PhaseSpan]:
    """Consecutive runs of one phase in time order, each ending where the next begins."""
    ordered = sorted(zip(timestamps, phases, strict=True))
    spans: list[PhaseSpan] = []
    for time_s, phase in ordered:
        if spans and spans[-1].phase == phase:
            spans[-1] = replace(spans[-1], n_samples=spans[-1].n_samples + 1)
            continue
        if spans:
            spans[-1] = replace(spans[-1], end_s=time_s)
        spans.append(PhaseSpan(phase, time_s, time_s))
    if spans:
        spans[-1] = replace(spans[-1], end_s=ordered[-1][0])
    return spans


def timeline_figure(label: str, result: ExperimentResult, cycle_note: str) -> Figure | str:
    """The device timeline of one run, or a sentence saying why there is none."""
    if not result.timeseries_file or not result.output_dir:
        return f"{label}: no telemetry timeline (telemetry was off for this run)."
    path = Path(result.output_dir) / result.timeseries_file
    pd = require("pandas")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        return f"{label}: telemetry timeline unreadable ({path}: {exc})."
    estimate = _energy_line(result) if frame["power_w"].isna().all() else None
    panels = [c for c in PANELS if c in frame and frame[c].notna().any()]
    if estimate is not None and "power_w" not in panels:
        panels.insert(0, "power_w")
    if not panels:
        return f"{label}: the telemetry timeline has no readings."
    figure = _panels_figure(frame, panels, estimate)
    spans = phase_spans(list(frame["timestamp_s"]), list(frame["phase"].fillna("")))
    _shade(figure, spans)
    _phase_legend(figure, spans)
    title = f"Device timeline: {label}"
    figure.update_layout(
        title={"text": title},
        template="plotly_white",
        height=170 * len(panels) + 120,
        margin={"l": 70, "r": 30, "t": 70, "b": 50},
        legend={"orientation": "h", "y": -0.08},
    )
    figure.update_xaxes(
        title_text="time from the start of the measured window (s)", row=len(panels)
    )
    return Figure(title, _caption(result, estimate is not None, cycle_note), figure)


def _panels_figure(frame: Any, panels: list[str], estimate: dict[str, Any] | None) -> Any:
    go = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    figure = subplots.make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=[PANELS[p] for p in panels],
    )
    for row, column in enumerate(panels, start=1):
        for device, samples in frame.groupby("device", sort=True):
            samples = samples.sort_values("timestamp_s")
            if samples[column].notna().any():
                figure.add_trace(
                    go.Scatter(
                        x=samples["timestamp_s"],
                        y=samples[column],
                        mode="lines",
                        name=f"{device} {PANELS[column]}",
                        connectgaps=False,
                    ),
                    row=row,
                    col=1,
                )
        values = list(frame[column].dropna())
        if column == "power_w" and estimate is not None:
            figure.add_trace(go.Scatter(**estimate), row=row, col=1)
            values += estimate["y"]
        figure.update_yaxes(**y_axis(values), row=row, col=1)
    return figure


NEAR_CONSTANT = 0.05
"""A series whose spread is at most this share of its largest value is drawn from zero."""


def y_axis(values: Sequence[float]) -> dict[str, Any]:
    """A panel's y-axis settings. A constant or near-constant series is drawn from zero to 10 %
    above its largest value (a clock steady at 2,596 MHz is a flat line, not noise across a
    1.5 MHz axis); any other is fitted to the data but never below zero (every panel's
    quantity is non-negative)."""
    largest = max((abs(v) for v in values), default=0.0)
    if not largest:
        return {"range": [0.0, 1.0]}
    if max(values) - min(values) <= NEAR_CONSTANT * largest:
        return {"range": [0.0, largest * 1.1]}
    return {"rangemode": "nonnegative"}


def _energy_line(result: ExperimentResult) -> dict[str, Any] | None:
    """Mean power implied by the energy figure, drawn over the measured window."""
    energy = result.energy
    if energy.energy_total_j is None or not energy.duration_s:
        return None
    power_w = energy.energy_total_j / energy.duration_s
    kind = "estimated" if energy.is_estimate else "measured"
    return {
        "x": [0.0, energy.duration_s],
        "y": [power_w, power_w],
        "mode": "lines",
        "line": {"dash": "dash", "color": "#c0392b", "width": 2},
        "name": f"{kind} mean power from {energy.method} ({', '.join(energy.scope)})",
    }


def _shade(figure: Any, spans: Sequence[PhaseSpan]) -> None:
    for span in (s for s in spans if s.drawn):
        figure.add_vrect(
            x0=span.start_s,
            x1=span.end_s,
            fillcolor=f"rgba({SHADED[span.phase][1]}, 0.18)",
            line_width=0,
            layer="below",
            row="all",
            col=1,
        )


def _phase_legend(figure: Any, spans: Sequence[PhaseSpan]) -> None:
    """A legend entry (a square of the band's colour) for each shaded phase present."""
    go = require("plotly.graph_objects")
    present = [p for p in SHADED if any(s.phase == p and s.drawn for s in spans)]
    for phase in present:
        text, rgb = SHADED[phase]
        figure.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"symbol": "square", "size": 14, "color": f"rgba({rgb}, 0.5)"},
                name=f"{text} (shaded)",
            ),
            row=1,
            col=1,
        )


def _caption(result: ExperimentResult, estimated_power: bool, cycle_note: str) -> str:
    interval = result.telemetry.interval_ms if result.telemetry else None
    every = f"every {interval} ms" if interval else "at the configured interval"
    text = (
        f"Telemetry sampled {every}, per device. Shaded (see legend): warmup, idle baseline "
        "and the measured window; a phase too short for two samples (a cached baseline) is "
        "not shaded; before warmup the model loads. "
        f"{cycle_note}"
    )
    if estimated_power:
        energy = result.energy
        text += (
            " Telemetry has no power reading on this device (CPU), so the power panel shows "
            f"the energy sampler's mean over the window ({energy.method}"
            f"{', an estimate, not a measurement' if energy.is_estimate else ''}): energy ÷ "
            "window, flat because the sampler reports a total, not a time course."
        )
    elif result.telemetry is None or result.telemetry.mean_power_w is None:
        text += " No power was recorded and no energy figure exists to stand in for it."
    return text
