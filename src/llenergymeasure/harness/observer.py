"""How the harness reports progress: a small protocol the CLI implements with rich."""

from __future__ import annotations

from typing import Protocol


class RunObserver(Protocol):
    """Receives progress events from a running experiment."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase began (``total`` requests when it is counted)."""

    def advance(self, n_requests: int) -> None:
        """``n_requests`` more requests of the current phase finished."""


class SilentObserver:
    """The null observer: library calls report nothing unless asked."""

    def phase(self, name: str, total: int | None = None) -> None:
        """Ignore the phase."""

    def advance(self, n_requests: int) -> None:
        """Ignore progress."""
