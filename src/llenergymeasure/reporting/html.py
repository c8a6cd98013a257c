"""One self-contained HTML page: styles, plotly.js and every figure inline, so it opens offline
and makes no network request.

plotly.js carries URLs it never fetches here (map tile servers, SVG namespaces); inside the
page's scripts every ``://`` is written ``:\\/\\/`` (the same string to JavaScript), so a text
search of the page for ``http://`` or ``https://`` finds nothing.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from llenergymeasure._version import __version__
from llenergymeasure.reporting.context import EnergyMethod, Environment, ReportContext
from llenergymeasure.reporting.deps import require
from llenergymeasure.reporting.figures import Figure
from llenergymeasure.reporting.tables import TableData
from llenergymeasure.results.warning_codes import warning_meaning

# No logo link, no "share to the cloud" button; selection tools are of no use here.
PLOTLY_CONFIG = (
    '{"displaylogo": false, "responsive": true, '
    '"modeBarButtonsToRemove": ["sendChartToCloud", "select2d", "lasso2d"]}'
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1.5rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.55rem; text-align: left;
         vertical-align: top; }
th { background: #f4f6f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.meta, .note, .caption { color: #555; font-size: 0.9rem; }
.caption { margin: 0.2rem 0 1.6rem; max-width: 70rem; }
.figure { border: 1px solid #eee; margin-top: 0.8rem; }
.warning { color: #8a4b00; }
code { background: #f4f6f7; padding: 0 0.2rem; }
"""


@dataclass(frozen=True)
class Page:
    """Everything the page shows."""

    sources: list[str]
    summary: TableData
    denominators: TableData
    comparison: TableData | None
    serving: list[TableData]
    serving_figures: list[Figure]
    attribution: list[TableData]
    attribution_figures: list[Figure]
    pareto: list[Figure]
    sweeps: list[Figure]
    timelines: list[Figure]
    notes: list[str]
    context: ReportContext


def script_text(code: str) -> str:
    """JavaScript safe inside ``<script>``: no ``</`` (would end it) and no ``://``."""
    return code.replace("</", "<\\/").replace("://", ":\\/\\/")


def render(page: Page) -> str:
    """The whole HTML document."""
    plotly_js = require("plotly.offline").get_plotlyjs()
    counter = itertools.count(1)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>llem report</title>",
        f"<style>{STYLE}</style>",
        f"<script>{script_text(plotly_js)}</script>",
        "</head><body>",
        "<h1>LLenergyMeasure report</h1>",
        _meta(page.sources),
        "<h2>Summary</h2>",
        _table(page.summary),
        '<h2 id="denominators">Energy per unit of work</h2>',
        _table(page.denominators),
    ]
    if page.comparison is not None:
        parts += ["<h2>Comparison</h2>", _table(page.comparison)]
    if page.serving:
        parts += ['<h2 id="serving">Serving under load</h2>', *map(_table, page.serving)]
        parts += _figures(page.serving_figures, counter)
    parts += ['<h2 id="attribution">Energy per request and per phase</h2>']
    parts += [*map(_table, page.attribution), *_figures(page.attribution_figures, counter)]
    parts += _figure_section("Energy against speed and latency (Pareto)", page.pareto, counter)
    parts += _figure_section("Swept parameters", page.sweeps, counter)
    parts += _figure_section("Device timelines", page.timelines, counter)
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in page.notes]
    parts += _method_section(page.context.methods)
    parts += _warning_section(page.context)
    parts += _environment_section(page.context.environments)
    parts.append("</body></html>")
    return "\n".join(parts)


def _meta(sources: Sequence[str]) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in sources)
    return (
        f'<p class="meta">Generated {now} by llenergymeasure {html.escape(__version__)} '
        f'from:</p><ul class="meta">{items}</ul>'
    )


def _table(table: TableData, numeric: bool = True) -> str:
    """The table; cells that start like a number are right-aligned where ``numeric``."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(table.headers) else ""
    body = "".join(
        "<tr>" + "".join(_cell(i, c, numeric) for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return (
        f'<p class="caption">{html.escape(table.title)}</p>'
        f"<table>{thead}<tbody>{body}</tbody></table>{notes}"
    )


def _cell(index: int, text: str, numeric_table: bool) -> str:
    numeric = numeric_table and index > 0 and text[:1] in "0123456789+-—["
    return (
        f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"
    )


def _figure_section(
    title: str, figures: Sequence[Figure], counter: itertools.count[int]
) -> list[str]:
    if not figures:
        return []
    return [f"<h2>{html.escape(title)}</h2>", *_figures(figures, counter)]


def _figures(figures: Sequence[Figure], counter: itertools.count[int]) -> list[str]:
    """Each figure's plot and numbered caption."""
    parts = []
    for figure in figures:
        number = next(counter)
        div_id = f"figure-{number}"
        parts += [
            f'<div class="figure llem-figure" id="{div_id}"></div>',
            "<script>"
            + script_text(
                f'Plotly.newPlot("{div_id}", Object.assign({figure.figure.to_json()}, '
                f"{{config: {PLOTLY_CONFIG}}}));"
            )
            + "</script>",
            f'<p class="caption"><b>Figure {number}.</b> {html.escape(figure.caption)}</p>',
        ]
    return parts


def _method_section(methods: Sequence[EnergyMethod]) -> list[str]:
    parts = ["<h2>How energy was obtained</h2>"]
    for method in methods:
        kind = "estimated (a model, not a measurement)" if method.is_estimate else "measured"
        parts.append(
            f"<p><b>{html.escape(method.method)}</b> over {html.escape(', '.join(method.scope))}"
            f": {kind}; uncertainty {html.escape(_uncertainty(method))}. Used by "
            f"{html.escape(', '.join(method.configurations))}.</p>"
        )
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in method.notes]
    parts.append(
        '<p class="note">Intervals are 95% Student-t confidence intervals of the mean over '
        "cycles; they cover run-to-run variation, not the sampler's own bias. Comparisons use "
        "Welch's unequal-variances t-test over cycles (α = 0.05).</p>"
    )
    return parts


def _uncertainty(method: EnergyMethod) -> str:
    if method.uncertainty_j:
        low, high = min(method.uncertainty_j), max(method.uncertainty_j)
        span = f"{low:.3g} J" if low == high else f"{low:.3g}–{high:.3g} J"
        return f"± {span} per run (the sampler's bound)"
    if method.is_estimate:
        return "unbounded (an estimate has no error bound)"
    return "not reported by the sampler"


def _warning_section(context: ReportContext) -> list[str]:
    parts = ["<h2>Warnings</h2>"]
    if not context.warnings:
        parts.append("<p>No measurement warnings.</p>")
    for code, message in sorted(context.warnings.items()):
        meaning = warning_meaning(code)
        explained = "" if meaning is None else f"<br><i>means: {html.escape(meaning)}</i>"
        parts.append(
            f'<p class="warning"><b>{html.escape(code)}</b>: {html.escape(message)}{explained}</p>'
        )
    parts += [f'<p class="warning">{html.escape(u)}</p>' for u in context.unreadable]
    return parts


def _environment_section(environments: Sequence[Environment]) -> list[str]:
    parts = ["<h2>Environment</h2>"]
    for env in environments:
        parts.append(
            f"<p>Measured on this environment: {html.escape(', '.join(env.configurations))}</p>"
        )
        parts.append(_table(TableData("", ["", ""], _environment_rows(env)), numeric=False))
    return parts


def _environment_rows(env: Environment) -> list[list[str]]:
    s = env.snapshot
    rows = [
        [
            "CPU",
            f"{s.cpu_model or '?'} ({s.cpu_cores_physical or '?'} cores, "
            f"{s.cpu_cores_logical or '?'} threads)",
        ],
        ["memory", f"{s.memory_total_gb} GB" if s.memory_total_gb else "?"],
        ["OS", f"{s.os} ({s.machine})"],
        ["Python", s.python],
        ["container", s.container or "none detected"],
    ]
    for gpu in s.gpus or []:
        rows.append([f"GPU {gpu.get('index')}", _gpu_text(gpu)])
    if not s.gpus:
        rows.append(["GPU", "none"])
    installed = [f"{k} {v}" for k, v in sorted(s.libraries.items()) if v]
    rows.append(["libraries", ", ".join(installed)])
    return rows


def _gpu_text(gpu: dict[str, object]) -> str:
    fields = (
        ("driver", "driver_version"),
        ("CUDA driver", "cuda_driver_version"),
        ("compute capability", "compute_capability"),
        ("power limit W", "power_limit_w"),
        ("max SM clock MHz", "max_sm_clock_mhz"),
        ("persistence mode", "persistence_mode"),
        ("energy counter", "energy_counter"),
    )
    details = ", ".join(
        f"{label} {gpu.get(key)}" for label, key in fields if gpu.get(key) is not None
    )
    simulated = " (simulated)" if gpu.get("simulated") else ""
    return f"{gpu.get('name') or '?'}{simulated}: {details}"
