"""Rich rendering of a study: a progress bar with ETA while it runs, a ranked table after."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from llenergymeasure.reporting.terminal import print_warning
from llenergymeasure.results.stats import Summary
from llenergymeasure.results.study import ExperimentAggregate, StudyEntry, StudyResult
from llenergymeasure.study.live_power import PowerReader

POWER_REFRESH_S = 1.0


class LivePowerColumn(ProgressColumn):
    """The devices' total power now, read at most once per ``POWER_REFRESH_S``."""

    def __init__(self, read_w: PowerReader) -> None:
        super().__init__(table_column=None)
        self.max_refresh = POWER_REFRESH_S
        self._read_w = read_w

    def render(self, task: Task) -> Text:
        """``power 245 W``, or ``power —`` when the reading fails."""
        watts = self._read_w()
        return Text(f"power {watts:.0f} W" if watts is not None else "power —", style="cyan")


class RichStudyObserver:
    """Experiment i/N, cycle c/C, the current label, elapsed time, ETA and, when a power
    reader is given (a GPU machine), the devices' live power (a StudyObserver)."""

    def __init__(self, console: Console, power_reader: PowerReader | None = None) -> None:
        self._console = console
        columns: list[ProgressColumn] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]
        if power_reader is not None:
            columns.append(LivePowerColumn(power_reader))
        self._progress = Progress(*columns, console=console)
        self._task: TaskID | None = None

    def __enter__(self) -> RichStudyObserver:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def started(self, study_dir: str, total: int, already_done: int) -> None:
        """Open the bar (a resumed study starts with its finished runs counted)."""
        self._console.print(f"study directory: [bold]{escape(study_dir)}[/]", soft_wrap=True)
        self._task = self._progress.add_task("study", total=total, completed=already_done)

    def waiting(self, seconds: float, reason: str) -> None:
        """Say that a cool-down gap is running."""
        self._describe(f"cooling down {seconds:g} s {reason}")

    def running(self, position: int, total: int, entry: StudyEntry, n_cycles: int) -> None:
        """Show which run is measuring (the bar's total grows as a target adds cycles)."""
        if self._task is not None:
            self._progress.update(self._task, total=total)
        self._describe(
            f"[{position}/{total}] cycle {entry.cycle_index + 1}/{n_cycles} "
            f"{escape(entry.experiment_name)}"
        )

    def finished(self, entry: StudyEntry) -> None:
        """Advance the bar; failures are printed as they happen."""
        if entry.status == "failed":
            self._console.print(
                f"[red]failed[/] {escape(entry.experiment_name)} cycle "
                f"{entry.cycle_index + 1}: {escape(entry.error or '')}"
            )
        if self._task is not None:
            self._progress.advance(self._task)

    def note(self, message: str) -> None:
        """Print it above the bar."""
        self._console.print(f"[yellow]note[/]: {escape(message)}", soft_wrap=True)

    def _describe(self, text: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=text)


def _mean_ci(summary: Summary, scale: float = 1.0, digits: int = 4) -> str:
    if summary.mean is None:
        return "—"
    text = f"{summary.mean * scale:.{digits}g}"
    if summary.ci95_half_width is not None:
        text += f" ± {summary.ci95_half_width * scale:.2g}"
    return text


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.1f}"


def study_table(study: StudyResult) -> Table:
    """One row per configuration, ranked by mean J/token (95 % CI over cycles)."""
    table = Table(
        title=f"study {study.name}: ranked by J/token (mean ± 95% CI over cycles; "
        "latency in ms, p50/p95 pooled over cycles)"
    )
    table.add_column("experiment", no_wrap=True)
    for column in ("cycles", "J/token", "tokens/s", "TTFT", "ITL"):
        table.add_column(column)
    for aggregate in sorted(study.experiments, key=_rank):
        table.add_row(
            escape(aggregate.experiment_name),
            str(aggregate.n_cycles_done),
            _mean_ci(aggregate.energy_per_output_token_j),
            _mean_ci(aggregate.output_tokens_per_s),
            f"{_ms(aggregate.ttft_pooled.median_s)}/{_ms(aggregate.ttft_pooled.p95_s)}",
            f"{_ms(aggregate.itl_pooled.median_s)}/{_ms(aggregate.itl_pooled.p95_s)}",
        )
    return table


def _rank(aggregate: ExperimentAggregate) -> float:
    mean = aggregate.energy_per_output_token_j.mean
    return mean if mean is not None else float("inf")


def print_study(console: Console, study: StudyResult) -> None:
    """The ranked table, failures and where the files are."""
    console.print(study_table(study))
    if study.mixed_execution:
        console.print(
            f"[yellow]note[/]: the entries did not all run under the same "
            f"{', '.join(study.mixed_execution)} (a resume changed it); each entry's "
            "execution in study_result.json says what it ran under"
        )
    for warning in study.warnings:
        print_warning(console, warning.code, warning.message)
    for entry in study.failed:
        console.print(
            f"[red]failed[/] {escape(entry.experiment_name)} cycle {entry.cycle_index + 1}: "
            f"{escape(entry.error or '')}"
        )
    console.print(f"results: [bold]{escape(study.output_dir or '')}[/]", soft_wrap=True)
