"""How the harness reports progress: a small protocol the CLI implements with rich.

An experiment's phases, in order: ``loading model``; ``warmup``, counted in warmup runs;
``idle baseline (<s> s)`` when one is measured; ``measuring``, counted in output tokens
(``n x max_output_tokens``; a request that ends early counts its unused tokens as it ends,
see :class:`llenergymeasure.backends.base.TokenProgress`), so the count moves within a batch.
"""

from __future__ import annotations

from typing import Protocol

PHASE_UNITS = {"warmup": "runs", "measuring": "tokens"}
"""What each counted phase counts (a display names it beside the count)."""


class RunObserver(Protocol):
    """Receives progress events from a running experiment."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase began (``total`` of its unit, :data:`PHASE_UNITS`, when counted)."""

    def advance(self, n: int) -> None:
        """``n`` more of the current phase's total are done."""


class SilentObserver:
    """The null observer: library calls report nothing unless asked."""

    def phase(self, name: str, total: int | None = None) -> None:
        """Ignore the phase."""

    def advance(self, n: int) -> None:
        """Ignore progress."""
