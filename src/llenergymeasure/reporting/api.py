"""``llem.report``: tables, a comparison and an HTML page from result files (the CLI wraps it)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from llenergymeasure.errors import ConfigError, ResultsError
from llenergymeasure.fileio import write_text_atomically
from llenergymeasure.reporting.attribution import ConfigurationAttribution, attribution_view
from llenergymeasure.reporting.compare import Comparison, compare
from llenergymeasure.reporting.context import ReportContext, gather_context
from llenergymeasure.reporting.deps import require
from llenergymeasure.reporting.figures import (
    PARETO_AXES,
    Figure,
    pareto_figure,
    phase_split_figure,
    phase_token_figure,
    request_energy_figure,
    serving_figure,
    sweep_figure,
)
from llenergymeasure.reporting.html import Page, render
from llenergymeasure.reporting.lengths import flag_length_difference
from llenergymeasure.reporting.loading import UNREADABLE, load_results
from llenergymeasure.reporting.serving import DEFAULT_SLO_ATTAINMENT, ServingView, serving_view
from llenergymeasure.reporting.summary import ConfigurationSummary, summarise, swept_parameters
from llenergymeasure.reporting.tables import (
    attribution_tables,
    comparison_table,
    denominator_table,
    serving_tables,
    summary_table,
)
from llenergymeasure.reporting.terminal import print_report
from llenergymeasure.reporting.timeline import timeline_figure

PathLike = str | os.PathLike[str]


@dataclass
class Report:
    """What :func:`report` produced.

    Attributes:
        results: the loaded rows (one per experiment × cycle), as from ``load_results``.
        configurations: one summary per configuration, ranked by mean J/token.
        comparison: B against A when the report covers (or was asked to compare) two
            configurations.
        serving: the serving view (configurations run under load, their knees); None when
            every configuration ran offline.
        attribution: per configuration (in ranked order) the energy attributed per request
            and per phase, or why there is none.
        html_path: the HTML file written, if one was asked for.
    """

    results: Any
    configurations: list[ConfigurationSummary]
    comparison: Comparison | None
    serving: ServingView | None = None
    attribution: list[ConfigurationAttribution] = field(default_factory=list)
    html_path: Path | None = None


def report(
    results: PathLike | Iterable[PathLike] | Any,
    html: PathLike | None = None,
    *,
    compare_labels: Sequence[str] | None = None,
    slo_attainment: float = DEFAULT_SLO_ATTAINMENT,
    console: Console | None = None,
) -> Report:
    """Print the report's tables and, with ``html``, write a self-contained HTML page.

    Args:
        results: experiment or study directories, result files, folders holding them, or a
            DataFrame from :func:`load_results`.
        html: where to write the HTML page (replaced atomically if it exists).
        compare_labels: two configuration labels to compare (A, then B). Without it, a
            report of exactly two configurations compares them in the order given.
        slo_attainment: the good fraction (0 < x ≤ 1) a load must reach to meet its SLOs;
            the serving view's knee of each line is the highest load that reaches it.
        console: where the tables go (default: stdout; ``Console(quiet=True)`` for none).

    Raises:
        ConfigError: a path is missing or holds no results, a label is unknown, or
            ``slo_attainment`` is not in (0, 1] (exit 2).
        DependencyError: pandas (or, for ``html``, plotly) from the ``[report]`` extra is not
            installed (exit 1).
        ResultsError: a result file or the HTML page cannot be read or written.
    """
    pd = require("pandas")
    if html is not None:
        require("plotly")  # before any work: the tables alone need only pandas
    frame = results if isinstance(results, pd.DataFrame) else load_results(results)
    summaries = summarise(frame)
    comparison = _comparison(summaries, list(dict.fromkeys(frame["configuration"])), compare_labels)
    serving = serving_view(summaries, slo_attainment)
    context = gather_context(summaries)
    context.unreadable[:0] = frame.attrs.get(UNREADABLE, [])  # skipped while loading
    if comparison is not None:
        comparison = flag_length_difference(comparison, context.results)
    attribution = attribution_view(summaries, context.results)
    print_report(console or Console(), summaries, comparison, serving, context, attribution)
    outcome = Report(frame, summaries, comparison, serving, attribution)
    if html is not None:
        page = _page(summaries, comparison, serving, attribution, context, _sources(frame))
        outcome.html_path = _write_report(Path(html), render(page))
    return outcome


def _comparison(
    summaries: Sequence[ConfigurationSummary],
    order: Sequence[str],
    labels: Sequence[str] | None,
) -> Comparison | None:
    by_label = {s.label: s for s in summaries}
    if labels is None:
        return compare(by_label[order[0]], by_label[order[1]]) if len(order) == 2 else None
    if len(labels) != 2:
        raise ConfigError(f"compare takes two configurations, got {len(labels)}")
    unknown = [label for label in labels if label not in by_label]
    if unknown:
        raise ConfigError(
            f"unknown configuration {unknown[0]!r}; the report has: {', '.join(order)}"
        )
    return compare(by_label[labels[0]], by_label[labels[1]])


def _sources(frame: Any) -> list[str]:
    studies = [s for s in dict.fromkeys(frame["study_dir"]) if isinstance(s, str)]
    runs = frame.loc[frame["study_dir"].isna(), "result_dir"]
    return studies + [str(r) for r in runs]


def _page(
    summaries: Sequence[ConfigurationSummary],
    comparison: Comparison | None,
    serving: ServingView | None,
    attribution: Sequence[ConfigurationAttribution],
    context: ReportContext,
    sources: list[str],
) -> Page:
    caption = figure_context(summaries)
    pareto = [f for axis in PARETO_AXES if (f := pareto_figure(summaries, axis, caption))]
    sweeps = sweep_figures(summaries, caption)
    timelines: list[Figure] = []
    notes = [] if sweeps else ["No sweep plots: no study here has configurations that differ."]
    if len(pareto) < len(PARETO_AXES):
        notes.append("Pareto plots need J/token and the x figure; some configurations lack one.")
    for summary in summaries:
        runs = context.results.get(summary.label) or []
        if not runs:
            notes.append(f"{summary.label}: no done cycle, so no timeline.")
            continue
        shown = timeline_figure(summary.label, runs[0], _cycle_note(summary))
        if isinstance(shown, Figure):
            timelines.append(shown)
        else:
            notes.append(shown)
    return Page(
        sources=sources,
        summary=summary_table(summaries),
        denominators=denominator_table(summaries),
        comparison=comparison_table(comparison) if comparison else None,
        serving=serving_tables(serving),
        serving_figures=serving_figures(serving),
        attribution=attribution_tables(attribution),
        attribution_figures=attribution_figures(attribution, caption),
        pareto=pareto,
        sweeps=sweeps,
        timelines=timelines,
        notes=notes,
        context=context,
    )


def serving_figures(view: ServingView | None) -> list[Figure]:
    """One serving figure per study and load mode, its caption naming the energy methods and
    warnings of its configurations (none when every configuration ran offline)."""
    if view is None:
        return []
    return [
        serving_figure(group, view.attainment, figure_context(group.configurations))
        for group in view.groups
    ]


def attribution_figures(views: Sequence[ConfigurationAttribution], caption: str) -> list[Figure]:
    """Energy per request, per phase, and per prompt and decode token (those with data)."""
    made = (make(views, caption) for make in ATTRIBUTION_FIGURES)
    return [figure for figure in made if figure is not None]


ATTRIBUTION_FIGURES = (request_energy_figure, phase_split_figure, phase_token_figure)


def sweep_figures(summaries: Sequence[ConfigurationSummary], caption: str) -> list[Figure]:
    """For each study, one figure per swept parameter (standalone experiments have none)."""
    studies: dict[str, list[ConfigurationSummary]] = {}
    for summary in summaries:
        if summary.study_dir is not None:
            studies.setdefault(summary.study_dir, []).append(summary)
    figures = []
    for study_dir, members in studies.items():
        swept = swept_parameters(members)
        suffix = f" in {Path(study_dir).name}" if len(studies) > 1 else ""
        figures += [
            sweep_figure(members, p, [o for o in swept if o != p], caption, suffix) for p in swept
        ]
    return figures


def _cycle_note(summary: ConfigurationSummary) -> str:
    if summary.n_cycles > 1:
        return f"The first done cycle of {summary.n_cycles} is shown."
    return ""


def figure_context(summaries: Sequence[ConfigurationSummary]) -> str:
    """How the energy behind a figure was obtained and which warnings apply to it."""
    methods = sorted({m for s in summaries for m in s.energy_methods})
    estimate = any(s.is_estimate for s in summaries)
    text = f"Energy: {', '.join(methods) or 'none'}"
    text += " (an estimate, not a measurement)." if estimate else " (measured)."
    codes: Counter[str] = Counter()
    for s in summaries:
        codes.update(s.warnings)
    cycles = sum(s.n_cycles for s in summaries)
    if codes:
        listed = ", ".join(f"{c} ({n}/{cycles} cycles)" for c, n in sorted(codes.items()))
        text += f" Warnings: {listed}; see Warnings below."
    else:
        text += " No measurement warnings."
    return text


def _write_report(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file renamed into place.

    Raises:
        ResultsError: the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, text)
    except OSError as exc:
        raise ResultsError(f"cannot write {path}: {exc}") from None
    return path
