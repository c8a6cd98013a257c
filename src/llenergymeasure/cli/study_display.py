"""Rich rendering of a study: a progress bar with ETA while it runs, a ranked table after."""

from __future__ import annotations

import time
from collections.abc import Callable

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
)
from rich.text import Text

from llenergymeasure.cli.live import LiveProgress
from llenergymeasure.reporting.layout import Column, FittedTable
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


class StudyEta:
    """The time a study has left, from the runs finished since it started (or resumed).

    A run's time is the study's wall time so far over the runs finished (cool-down gaps
    included); what is left is that times the runs left, less what the current run has had
    (never below the runs after it). Unknown until the first run ends.

    Args:
        clock: monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._started_s: float | None = None
        self._last_end_s: float | None = None
        self._n_finished = 0

    def start(self) -> None:
        """The study starts (or resumes) now."""
        self._started_s = self._clock()

    def run_finished(self) -> None:
        """A run ended now (done or failed)."""
        self._n_finished += 1
        self._last_end_s = self._clock()

    def remaining_s(self, runs_left: int) -> float | None:
        """Seconds until ``runs_left`` more runs end, or None before any run has ended."""
        if self._started_s is None or self._last_end_s is None:
            return None
        if runs_left <= 0:
            return 0.0
        per_run_s = (self._last_end_s - self._started_s) / self._n_finished
        running_s = self._clock() - self._last_end_s
        return max(per_run_s * (runs_left - 1), per_run_s * runs_left - running_s)


class EtaColumn(ProgressColumn):
    """``ETA 0:12:34`` from a :class:`StudyEta` (``ETA -:--:--`` until a run has ended)."""

    def __init__(self, eta: StudyEta) -> None:
        super().__init__()
        self._eta = eta

    def render(self, task: Task) -> Text:
        """The estimate for the runs the bar has left."""
        left = int(task.remaining) if task.remaining is not None else 0
        seconds = self._eta.remaining_s(left)
        if seconds is None:
            return Text("ETA -:--:--", style="progress.remaining")
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"ETA {hours:d}:{minutes:02d}:{secs:02d}", style="progress.remaining")


class RichStudyObserver(LiveProgress):
    """Experiment i/N, cycle c/C, the current label and its experiment's phase, elapsed time,
    ETA and, when a power reader is given (a GPU machine), the devices' live power (a
    StudyObserver; a ``with`` block shows it).

    Attributes:
        study_dir: the study directory, once the study has started.
    """

    def __init__(
        self,
        console: Console,
        power_reader: PowerReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console
        self._eta = StudyEta(clock)
        columns: list[ProgressColumn] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            EtaColumn(self._eta),
        ]
        if power_reader is not None:
            columns.append(LivePowerColumn(power_reader))
        super().__init__(Progress(*columns, console=console))
        self._task: TaskID | None = None
        self._label = ""
        self.study_dir: str | None = None

    def started(self, study_dir: str, total: int, already_done: int) -> None:
        """Open the bar (a resumed study starts with its finished runs counted)."""
        self.study_dir = study_dir
        self._console.print(f"study directory: [bold]{escape(study_dir)}[/]", soft_wrap=True)
        self._task = self._progress.add_task("study", total=total, completed=already_done)
        self._eta.start()

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
        self._eta.run_finished()
        if self._task is not None:
            self._progress.advance(self._task)

    def phase(self, name: str) -> None:
        """Show the running experiment's phase after its label."""
        if self._task is not None:
            self._progress.update(self._task, description=f"{self._label} · {escape(name)}")

    def note(self, message: str) -> None:
        """Print it above the bar."""
        self._console.print(f"[yellow]note[/]: {escape(message)}", soft_wrap=True)

    def _describe(self, text: str) -> None:
        self._label = text
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


_STUDY_COLUMNS = tuple(
    Column(header)
    for header in ("experiment", "cycles", "J/token", "tokens/s", "TTFT p50/p95", "ITL p50/p95")
)


def study_table(study: StudyResult) -> FittedTable:
    """One row per configuration, ranked by mean J/token (95 % CI over cycles), laid out for
    the console's width."""
    title = (
        f"study {study.name}: ranked by J/token (mean ± 95% CI over cycles; latency in ms, "
        "p50/p95 over every request of every cycle, pooled)"
    )
    rows = [
        [
            aggregate.experiment_name,
            str(aggregate.n_cycles_done),
            _mean_ci(aggregate.energy_per_output_token_j),
            _mean_ci(aggregate.output_tokens_per_s),
            f"{_ms(aggregate.ttft_pooled.median_s)}/{_ms(aggregate.ttft_pooled.p95_s)}",
            f"{_ms(aggregate.itl_pooled.median_s)}/{_ms(aggregate.itl_pooled.p95_s)}",
        ]
        for aggregate in sorted(study.experiments, key=_rank)
    ]
    return FittedTable(title, _STUDY_COLUMNS, rows)


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
