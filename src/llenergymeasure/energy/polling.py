"""The background thread a sampler reads its counters from at a fixed interval.

The NVML, Zeus and RAPL samplers each poll during the window, both to follow counters that wrap
or integrate power and to keep every read as the window's
:class:`~llenergymeasure.energy.timeline.EnergyTimeline`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Wait = Callable[[float], bool]
"""Blocks up to the given seconds and returns True once the window is stopping."""


class Poller:
    """Calls ``poll`` every ``interval_s`` from a daemon thread between ``start`` and ``stop``.

    Args:
        poll: one read of every counter; it must not raise (the sampler records its own
            read errors), or the thread ends and later reads are lost.
        interval_s: time between reads.
        name: the thread's name (``llem-<sampler>``).
        wait: how the thread waits between reads: called with ``interval_s``, it blocks up to
            that long and returns True once the window is stopping (default: the stop event).
            Tests pass a scripted one that moves a fake clock, to drive the thread without
            sleeping.
    """

    def __init__(
        self,
        poll: Callable[[], None],
        interval_s: float,
        name: str,
        wait: Wait | None = None,
    ) -> None:
        self._poll = poll
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._wait = self._stopping.wait if wait is None else wait
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start reading in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Signal the thread to stop and wait for its current read to finish."""
        self._stopping.set()
        if self._thread.ident is not None:  # started
            self._thread.join()

    def _run(self) -> None:
        while not self._wait(self._interval_s):
            self._poll()
