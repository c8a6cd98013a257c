"""Progress events of a running study (the CLI shows them with rich)."""

from __future__ import annotations

from typing import Protocol

from llenergymeasure.results.study import StudyEntry


class StudyObserver(Protocol):
    """Receives a study's progress."""

    def started(self, study_dir: str, total: int, already_done: int) -> None:
        """The study begins (or resumes) with ``total`` runs, ``already_done`` of them done."""

    def waiting(self, seconds: float, reason: str) -> None:
        """A cool-down gap of ``seconds`` begins."""

    def running(self, position: int, total: int, entry: StudyEntry, n_cycles: int) -> None:
        """Run ``position`` of ``total`` starts, in cycle ``entry.cycle_index + 1`` of the
        ``n_cycles`` scheduled. With ``execution.target_ci_pct`` both grow as cycles are added
        (a ``note`` says why each one is)."""

    def finished(self, entry: StudyEntry) -> None:
        """A run ended (done or failed)."""

    def phase(self, name: str) -> None:
        """The running experiment entered phase ``name`` (``loading model``, ``warmup``,
        ``idle baseline (<s> s)``, ``measuring``: :mod:`llenergymeasure.harness.observer`).
        The local runner reports them from its child; Ray and Docker runs do not."""

    def note(self, message: str) -> None:
        """Something the user should know (a killed run's result adopted or set aside)."""


class SilentStudyObserver:
    """The null observer."""

    def started(self, study_dir: str, total: int, already_done: int) -> None:
        """Ignore."""

    def waiting(self, seconds: float, reason: str) -> None:
        """Ignore."""

    def running(self, position: int, total: int, entry: StudyEntry, n_cycles: int) -> None:
        """Ignore."""

    def finished(self, entry: StudyEntry) -> None:
        """Ignore."""

    def phase(self, name: str) -> None:
        """Ignore."""

    def note(self, message: str) -> None:
        """Ignore."""
