"""The null sampler: times the window and measures no energy (so no timeline either)."""

from __future__ import annotations

import time

from llenergymeasure.energy.base import Clock, EnergyReading
from llenergymeasure.errors import EnergySamplerError


class NullSampler:
    """Stands in when no energy source works: the reading has a duration and null energy.

    Args:
        clock: monotonic clock in seconds for the window's duration.
    """

    name = "null"

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._start_s: float | None = None

    def start(self) -> None:
        """Note the window's start time."""
        self._start_s = self._clock()

    def stop(self) -> EnergyReading:
        """Return a reading with the window's duration and no energy.

        Raises:
            EnergySamplerError: ``start`` was not called.
        """
        if self._start_s is None:
            raise EnergySamplerError("NullSampler.stop() called before start()")
        return EnergyReading(
            method=self.name,
            scope=[],
            energy_total_j=None,
            energy_by_domain_j={},
            duration_s=self._clock() - self._start_s,
            sample_count=0,
            notes=["no energy source: the null sampler only times the window; energy is null"],
        )
