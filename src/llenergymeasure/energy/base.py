"""The energy-sampler interface every measurement method implements.

A sampler is started just before the measured window and stopped right after it; ``stop``
returns an :class:`EnergyReading`. Samplers never raise vendor exceptions: they translate them
into :class:`~llenergymeasure.errors.EnergySamplerError` (or degrade to a reading with notes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from llenergymeasure.energy.timeline import EnergyTimeline
from llenergymeasure.results.warning_codes import WarningCode

Clock = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic`` unless a test injects another)."""


@dataclass(frozen=True)
class Availability:
    """Whether a sampler can run on this machine, and why not when it cannot."""

    available: bool
    reason: str = ""


@dataclass(frozen=True)
class EnergyReading:
    """What a sampler measured over one window.

    Attributes:
        method: sampler name (``rapl``, ``codecarbon``, ``null``, ...).
        scope: the devices/domains counted, e.g. ``["cpu:package-0", "dram:package-0"]``.
        energy_total_j: total energy over the window in joules, or None when nothing was measured.
        energy_by_domain_j: the total split by device/domain (same keys as ``scope``).
        duration_s: the window's length by the sampler's clock.
        sample_count: counter reads or power samples taken inside the window.
        is_estimate: True when the figure is modelled (e.g. TDP x load), not read from a meter.
        notes: human-readable caveats about how the figure was obtained.
        co2_kg: emissions in kg CO2eq when the sampler knows a grid carbon intensity
            (CodeCarbon does), else None; never a made-up intensity.
        uncertainty_j: an absolute bound on ``energy_total_j`` in joules derived from how it
            was obtained (counter update period, sampling interval and coverage); None when
            no bound can be given (e.g. a TDP model, or nothing measured).
        warnings: ``(code, message)`` pairs the harness copies onto the result's warnings
            (e.g. ``(WarningCode.COUNTER_MISMATCH, "...")``).
        timeline: the window's reads as cumulative energy over time (seconds from ``start``),
            from which any sub-interval's energy is computed; None for a sampler that reports
            only a total (CodeCarbon) or measures nothing.
    """

    method: str
    scope: list[str]
    energy_total_j: float | None
    energy_by_domain_j: dict[str, float]
    duration_s: float
    sample_count: int
    is_estimate: bool = False
    notes: list[str] = field(default_factory=list)
    co2_kg: float | None = None
    uncertainty_j: float | None = None
    warnings: list[tuple[WarningCode, str]] = field(default_factory=list)
    timeline: EnergyTimeline | None = None


@runtime_checkable
class EnergySampler(Protocol):
    """Measures energy between ``start`` and ``stop``. One window per instance."""

    name: str

    def start(self) -> None:
        """Begin the measured window (take the first counter read / start polling)."""

    def stop(self) -> EnergyReading:
        """End the window and return what was measured."""
