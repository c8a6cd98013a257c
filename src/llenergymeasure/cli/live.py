"""A rich progress display that lives for one ``with`` block (a run's or a study's)."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

from rich.progress import Progress

_Live = TypeVar("_Live", bound="LiveProgress")


class LiveProgress:
    """Shows ``progress`` from entering the ``with`` block until leaving it, however it is left.

    Args:
        progress: the rich display its subclass updates.
    """

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __enter__(self: _Live) -> _Live:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
