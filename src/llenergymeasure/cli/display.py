"""Rich rendering for the CLI: progress while running, a table of headline metrics after."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from llenergymeasure.cli.live import LiveProgress
from llenergymeasure.flops import FlopsMetrics
from llenergymeasure.harness.observer import PHASE_UNITS
from llenergymeasure.reporting.attribution import PHASES, missing_reason
from llenergymeasure.reporting.layout import Column, FittedTable
from llenergymeasure.reporting.terminal import print_warning
from llenergymeasure.results import (
    EnergyMetrics,
    ExperimentResult,
    Goodput,
    LatencyStats,
    PerformanceMetrics,
    ServingMetrics,
)
from llenergymeasure.results.models import EnergyAttribution
from llenergymeasure.results.warning_codes import WarningCode, warning_meaning


class RichObserver(LiveProgress):
    """Shows each harness phase as a progress bar with its unit, e.g. ``measuring 96/256
    tokens`` (a RunObserver; a ``with`` block shows it)."""

    def __init__(self, console: Console) -> None:
        super().__init__(
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
        )
        self._task: TaskID | None = None

    def phase(self, name: str, total: int | None = None) -> None:
        """Close the previous bar and open one for this phase."""
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total or 1, total=task.total or 1)
        unit = PHASE_UNITS.get(name, "") if total is not None else ""
        self._task = self._progress.add_task(name, total=total, unit=unit)

    def advance(self, n: int) -> None:
        """Move the current bar on."""
        if self._task is not None:
            self._progress.advance(self._task, n)


def _num(value: float | None, unit: str = "", digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}{unit}"


def _ms(stats: LatencyStats) -> str:
    if stats.mean_s is None:
        return "—"
    parts = [(name, getattr(stats, f"{name}_s")) for name in ("median", "p95", "p99")]
    spread = ", ".join(f"{name} {value * 1e3:.1f}" for name, value in parts if value is not None)
    return f"{stats.mean_s * 1e3:.1f} ms ({spread})"


def _energy(energy: EnergyMetrics, kind: str) -> str:
    bound = f" ± {energy.uncertainty_j:.3g}" if energy.uncertainty_j is not None else ""
    return f"{_num(energy.energy_total_j, '', 4)}{bound} J ({kind}, {energy.method})"


def _adjusted(energy: EnergyMetrics) -> str:
    if energy.energy_adjusted_j is None:
        return "— (no idle baseline)"
    source = "cached" if energy.baseline_from_cache else "measured"
    return (
        f"{_num(energy.energy_adjusted_j, ' J', 4)} "
        f"(baseline {energy.baseline_power_w:.3g} W, {source})"
    )


def _also(adjusted: float | None, unit: str = "J") -> str:
    return f" (adjusted {_num(adjusted, f' {unit}', 4)})" if adjusted is not None else ""


def _attribution(result: ExperimentResult) -> list[tuple[str, str]]:
    """Rows for the energy attributed per request and per phase, or one saying why there is
    none (no rows when no energy was measured: the energy row says so)."""
    attribution = result.attribution
    if attribution is None:
        if result.energy.energy_total_j is None:
            return []
        return [("energy / request, phase", f"— ({missing_reason(result)})")]
    spread = attribution.per_request
    per_request = "—"
    if spread.n:
        per_request = (
            f"mean {_num(spread.mean_j, '', 4)} · p50 {_num(spread.median_j, '', 4)} · "
            f"p95 {_num(spread.p95_j, ' J', 4)} ({spread.n} requests)"
        )
    per_token = (
        f"{_num(attribution.energy_per_prompt_token_j, ' J', 4)} · "
        f"{_num(attribution.energy_per_decode_token_j, ' J', 4)}"
    )
    return [
        ("energy / request, attributed", per_request),
        (" · ".join(name for name, _ in PHASES), _phases(attribution)),
        ("J / prompt · decode token", per_token),
    ]


def _phases(attribution: EnergyAttribution) -> str:
    """Prefill, decode and overhead energy, each with its share of the attributed energy."""
    parts = []
    for _, column in PHASES:
        energy_j: float = getattr(attribution, column)
        share = f" ({energy_j / attribution.energy_j:.0%})" if attribution.energy_j else ""
        parts.append(f"{_num(energy_j, ' J', 4)}{share}")
    return " · ".join(parts)


def _co2(energy: EnergyMetrics) -> str:
    if energy.co2_kg is None:
        return "— (set carbon_intensity_g_per_kwh in the user config or LLEM_CARBON_INTENSITY)"
    return f"{energy.co2_kg * 1000:.3g} g ({energy.co2_source})"


def _facility(energy: EnergyMetrics) -> list[tuple[str, str]]:
    """A row for facility energy (IT energy x PUE) when a PUE other than 1 was applied."""
    if energy.pue in (None, 1.0):
        return []
    return [(f"facility energy (PUE {energy.pue:g})", _num(energy.energy_facility_j, " J", 4))]


def _flops(result: ExperimentResult) -> str:
    flops = result.flops
    if flops is None:
        return _NO_FLOPS
    shown = f"{_num(flops.flops_total)} · {_num(flops.energy_per_flop_j, ' J', 3)}"
    return _with_reason(shown, flops, {"flops_total": flops.flops_total,
                                       "energy_per_flop_j": flops.energy_per_flop_j})  # fmt: skip


def _utilisation(result: ExperimentResult) -> str:
    flops = result.flops
    if flops is None:
        return _NO_FLOPS
    shown = f"{_pct(flops.mfu)} · {_pct(flops.mbu)}"
    return _with_reason(shown, flops, {"mfu": flops.mfu, "mbu": flops.mbu})


_NO_FLOPS = "— (this result has no FLOP figures)"


def _with_reason(shown: str, flops: FlopsMetrics, figures: dict[str, float | None]) -> str:
    """The figures as shown, and where one is missing the result's reason for it: the clauses
    of ``flops.reason`` (``names: why; ...``) that name it or all figures."""
    if all(value is not None for value in figures.values()):
        return shown
    wanted = {"all figures", *figures}
    clauses = [
        clause
        for clause in (flops.reason or "").split("; ")
        if wanted & {name.strip() for name in clause.partition(":")[0].split(",")}
    ]
    return f"{shown} ({'; '.join(clauses) or flops.reason or 'no reason recorded'})"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _telemetry(result: ExperimentResult) -> str:
    summary = result.telemetry
    if summary is None:
        return "—"
    parts = [f"{summary.n_samples} samples of {', '.join(summary.devices)}"]
    if summary.mean_power_w is not None:
        parts.append(f"mean {summary.mean_power_w:.0f} W")
    if summary.max_temperature_c is not None:
        parts.append(f"max {summary.max_temperature_c:.0f} °C")
    if summary.mean_utilisation_pct is not None:
        parts.append(f"util {summary.mean_utilisation_pct:.0f}%")
    return ", ".join(parts)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _failed(metrics: PerformanceMetrics) -> list[tuple[str, str]]:
    """A row for failed requests, when any failed: how many, the rate, the main reasons."""
    if not metrics.n_failed:
        return []
    return [(
        "failed requests",
        f"{metrics.n_failed} of {metrics.n_submitted} ({metrics.error_rate:.1%}) — "
        f"{metrics.failure_reasons_text()}",
    )]  # fmt: skip


def _load(result: ExperimentResult) -> str:
    load = result.config.load
    parts: list[str] = [load.mode]
    if load.mode == "rate":
        parts.append(load.arrival)
        if load.arrival == "gamma":
            parts.append(f"burstiness {load.burstiness:g}")
    if load.max_concurrency:
        parts.append(f"max_concurrency {load.max_concurrency}")
    return ", ".join(parts)


def _rates(serving: ServingMetrics) -> str:
    achieved = f"achieved {_rate(serving.achieved_rate_rps)} req/s"
    if serving.mode != "rate":
        return achieved
    return (
        f"requested {_rate(serving.requested_rate_rps)} · "
        f"scheduled {_rate(serving.scheduled_rate_rps)} · {achieved}"
    )


def _steady(serving: ServingMetrics, window_s: float) -> list[tuple[str, str]]:
    steady = serving.steady_state
    if steady is None:
        return [("steady state", f"— ({serving.steady_state_note})")]
    span = (
        f"{steady.duration_s:.3g} s of {window_s:.3g} s ({steady.start_s:.3g}–"
        f"{steady.end_s:.3g} s) · {steady.requests_completed} requests · "
        f"{_num(steady.output_tokens_per_s, ' tok/s', 4)}"
    )
    if steady.energy_j is None:
        return [("steady state", span), ("steady J/token · J/req", f"— ({steady.energy_note})")]
    bound = steady.energy_uncertainty_j
    per_request = _num(steady.energy_per_request_j, "", 4)
    if bound is not None and steady.requests_completed:
        per_request += f" ± {bound / steady.requests_completed:.3g}"
    energy = f"{_num(steady.energy_per_output_token_j, ' J', 4)} · {per_request} J"
    return [("steady state", span), ("steady J/token · J/req", energy)]


def _goodput(goodput: Goodput) -> str:
    targets = ", ".join(
        f"{name.removesuffix('_ms')} ≤ {value:g} ms" for name, value in goodput.targets_ms.items()
    )
    return (
        f"{_num(goodput.goodput_rps, ' req/s', 4)} · {_pct(goodput.good_fraction)} good · "
        f"{_num(goodput.energy_per_good_request_j, ' J', 4)}/good request ({targets})"
    )


def _serving(result: ExperimentResult) -> list[tuple[str, str]]:
    """The serving block: load, rates, in flight, steady state and goodput."""
    serving = result.serving
    if serving is None:
        return []
    rows = [("load", _load(result))]
    if serving.mode != "offline":
        rows += [
            ("arrival rate", _rates(serving)),
            ("in flight", f"peak {serving.peak_in_flight} · mean "
             f"{_num(serving.mean_in_flight)}"),
            *_steady(serving, result.metrics.duration_s),
        ]  # fmt: skip
    if serving.goodput is not None:
        rows.append(("goodput", _goodput(serving.goodput)))
    return rows


_RESULT_COLUMNS = (Column("metric", wrap=True), Column("value", wrap=True, own_line=True))


def result_table(result: ExperimentResult) -> FittedTable:
    """The headline figures of one experiment, laid out for the console's width."""
    energy, metrics = result.energy, result.metrics
    kind = "estimate" if energy.is_estimate else "measured"
    if energy.energy_total_j is None:
        kind = "not measured"
    rows = [
        ("energy", _energy(energy, kind)),
        ("energy, idle-adjusted", _adjusted(energy)),
        ("energy / output token", _num(metrics.energy_per_output_token_j, " J", 4)
         + _also(metrics.energy_per_output_token_adjusted_j)),
        ("energy / request", _num(metrics.energy_per_request_j, " J", 4)
         + _also(metrics.energy_per_request_adjusted_j)),
        ("energy / token in+out", _num(metrics.energy_per_total_token_j, " J", 4)
         + _also(metrics.energy_per_total_token_adjusted_j)),
        ("energy / 1,000 requests", _num(metrics.energy_per_1k_requests_wh, " Wh", 4)
         + _also(metrics.energy_per_1k_requests_adjusted_wh, "Wh")),
        *_attribution(result),
        *_facility(energy),
        ("CO2", _co2(energy)),
        ("output tokens/s", _num(metrics.output_tokens_per_s, "", 4)),
        ("input tokens/s", _num(metrics.input_tokens_per_s, "", 4)),
        ("requests/s", _num(metrics.requests_per_s, "", 4)),
        ("TTFT", _ms(metrics.ttft)),
        ("ITL", _ms(metrics.itl)),
        ("TPOT", _ms(metrics.tpot)),
        ("end-to-end latency", _ms(metrics.e2e_latency)),
        ("requests · tokens in/out", f"{metrics.n_requests} · "
         f"{metrics.total_input_tokens}/{metrics.total_output_tokens}"),
        *_failed(metrics),
        ("measured window", f"{metrics.duration_s:.2f} s"),
        *_serving(result),
        ("peak memory", f"{_num(metrics.peak_memory_mb, ' MB', 5)} ({metrics.peak_memory_scope})"),
        ("FLOPs · J/FLOP", _flops(result)),
        ("MFU · MBU", _utilisation(result)),
        ("device telemetry", _telemetry(result)),
        ("measurement method", f"{result.measurement_method} [{', '.join(energy.scope)}]"),
    ]  # fmt: skip
    title = f"{result.config.model} · {result.config.backend}"
    return FittedTable(title, _RESULT_COLUMNS, rows, show_header=False)


def print_result(console: Console, result: ExperimentResult, *, verbose: bool = False) -> None:
    """Table, warnings (one line per code; each in full when ``verbose``), where the files are."""
    console.print(result_table(result))
    if verbose:
        for warning in result.warnings:
            print_warning(console, warning.code, warning.message)
    else:
        print_warning_lines(console, result)
    if result.output_dir:
        console.print(f"results: [bold]{escape(result.output_dir)}[/]", soft_wrap=True)


# What `llem run` offers against a warning, said under the warning lines.
_REMEDIES = {WarningCode.BASELINE_STALE.value: "llem run --fresh-baseline measures a new one"}


def print_warning_lines(console: Console, result: ExperimentResult) -> None:
    """One line per warning code: the code, how many warnings carry it, and what it means,
    cut to the console width; then where the full texts are (``-v``, result.json)."""
    counts = Counter(warning.code for warning in result.warnings)
    for code, count in counts.items():
        meaning = warning_meaning(code) or next(
            w.message for w in result.warnings if w.code == code
        )  # a code from a newer version: its first message
        line = Text.assemble(
            ("warning ", "yellow"),
            (code, "bold yellow"),
            f" ×{count}" if count > 1 else "",
            f": {meaning}",
        )
        console.print(line, no_wrap=True, overflow="ellipsis")
    if not counts:
        return
    where = f"{result.output_dir}/result.json" if result.output_dir else "result.json"
    hints = [f"full texts: llem run -v, or warnings in {where}"]
    hints += [f"{code}: {_REMEDIES[code]}" for code in counts if code in _REMEDIES]
    for hint in hints:
        console.print(Text(hint, style="dim"), soft_wrap=True)
