"""CodeCarbon sampler: CodeCarbon's offline tracker, with its CPU/RAM/GPU split and CO2.

CodeCarbon is imported only when a sampler is built. Its tracker methods catch their own
exceptions, log them and return None; this module turns both into ``EnergySamplerError``.
Where CodeCarbon has no energy counter it models power (CPU: TDP x load; RAM: a constant per
memory module), and the reading is then marked as an estimate with notes saying which parts.

Timeline: none. CodeCarbon accumulates energy inside its tracker and reports only the window's
total at ``stop``, so the reading's ``timeline`` is None (with :data:`NO_TIMELINE_NOTE`) and a
sub-window's energy, such as a steady-state interval's, cannot be computed.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

from llenergymeasure.energy.base import Availability, Clock, EnergyReading
from llenergymeasure.errors import DependencyError, EnergySamplerError, LLEMError

INSTALL_HINT = "pip install 'llenergymeasure[codecarbon]'"
J_PER_KWH = 3.6e6
_MAX_MEASURE_POWER_S = 1.0
NO_TIMELINE_NOTE = (
    "codecarbon reports only a total: sub-window (steady-state) energy cannot be computed"
)
# CodeCarbon CPU modes that read an energy counter; every other mode models power.
_MEASURED_CPU_MODES = {
    "intel_rapl": "RAPL counters",
    "windows_emi": "the Windows Energy Meter Interface",
    "intel_power_gadget": "Intel Power Gadget",
}


class CodeCarbonTracker(Protocol):
    """The part of CodeCarbon's ``OfflineEmissionsTracker`` this sampler uses."""

    def get_detected_hardware(self) -> dict[str, Any]:
        """Detect the CPU, RAM and GPUs to track (slow the first time in a process)."""

    def start(self) -> None:
        """Start tracking."""

    def stop(self) -> float | None:
        """Stop tracking; return kg CO2eq, or None when CodeCarbon swallowed an error."""


TrackerFactory = Callable[[], CodeCarbonTracker]


def probe() -> Availability:
    """Say whether CodeCarbon is installed (without importing it)."""
    if importlib.util.find_spec("codecarbon") is None:
        return Availability(False, f"codecarbon is not installed: {INSTALL_HINT}")
    return Availability(True)


class CodeCarbonSampler:
    """Energy and CO2 over one window from CodeCarbon's offline tracker.

    The tracker is built, and its hardware detected, in the constructor so that the measured
    window only pays for ``start`` and ``stop`` (about a millisecond each once warm).

    Args:
        interval_ms: CodeCarbon's measurement interval (capped at 1 s).
        clock: monotonic clock in seconds for the window's duration.
        country_iso_code: 3-letter ISO code for the grid's carbon intensity. None leaves it to
            CodeCarbon's config (``CODECARBON_COUNTRY_ISO_CODE``); with none, CO2 is not reported.
        tracker_factory: builds the tracker (tests pass a fake); default: an offline tracker.

    Raises:
        DependencyError: codecarbon is not installed.
        EnergySamplerError: CodeCarbon failed to set up.
    """

    name = "codecarbon"

    def __init__(
        self,
        interval_ms: int = 100,
        *,
        clock: Clock = time.monotonic,
        country_iso_code: str | None = None,
        tracker_factory: TrackerFactory | None = None,
    ) -> None:
        measure_power_s = min(interval_ms / 1000, _MAX_MEASURE_POWER_S)
        factory = tracker_factory or _offline_tracker_factory(measure_power_s, country_iso_code)
        with _guarded("setup"):
            self._tracker = factory()
            self._tracker.get_detected_hardware()
        self._clock = clock
        self._start_s: float | None = None

    def start(self) -> None:
        """Start CodeCarbon's tracker.

        Raises:
            EnergySamplerError: CodeCarbon failed to start, or ``start`` was called twice.
        """
        if self._start_s is not None:
            raise EnergySamplerError("CodeCarbonSampler.start() called twice; use one per window")
        with _guarded("start"):
            self._tracker.start()
        self._start_s = self._clock()

    def stop(self) -> EnergyReading:
        """Stop the tracker and return its energy split, CO2 and how each part was obtained.

        Raises:
            EnergySamplerError: ``start`` was not called, or CodeCarbon returned no result.
        """
        if self._start_s is None:
            raise EnergySamplerError("CodeCarbonSampler.stop() called before start()")
        duration_s = self._clock() - self._start_s
        with _guarded("stop"):
            emissions_kg = self._tracker.stop()
        data = getattr(self._tracker, "final_emissions_data", None)
        if emissions_kg is None or data is None:
            raise EnergySamplerError(
                "CodeCarbon's tracker.stop() returned no result (it returns None on failure)"
            )
        return _reading(self._tracker, data, duration_s)


class _Source(NamedTuple):
    """How CodeCarbon obtained one domain's energy."""

    measured: bool
    note: str


def _reading(tracker: CodeCarbonTracker, data: Any, duration_s: float) -> EnergyReading:
    sources = _sources(tracker)
    by_domain_j = {
        "cpu": float(data.cpu_energy) * J_PER_KWH,
        "ram": float(data.ram_energy) * J_PER_KWH,
    }
    gpu_j = float(data.gpu_energy) * J_PER_KWH
    if gpu_j > 0 or "gpu" in sources:
        by_domain_j["gpu"] = gpu_j
    unknown = _Source(False, "CodeCarbon's source is unknown, so it is treated as an estimate")
    domain_sources = {domain: sources.get(domain, unknown) for domain in by_domain_j}
    co2_kg, co2_note = _co2(tracker, data)
    return EnergyReading(
        method=CodeCarbonSampler.name,
        scope=list(by_domain_j),
        energy_total_j=sum(by_domain_j.values()),
        energy_by_domain_j=by_domain_j,
        duration_s=duration_s,
        sample_count=int(getattr(tracker, "_power_measurement_count", 0)),
        is_estimate=not all(source.measured for source in domain_sources.values()),
        notes=[*(f"{d}: {s.note}" for d, s in domain_sources.items()), co2_note, NO_TIMELINE_NOTE],
        co2_kg=co2_kg,
    )


def _sources(tracker: CodeCarbonTracker) -> dict[str, _Source]:
    """Classify the hardware CodeCarbon set up (its ``_hardware`` list, as of 3.x)."""
    sources: dict[str, _Source] = {}
    for hardware in getattr(tracker, "_hardware", []):
        kind = type(hardware).__name__
        if kind == "CPU":
            sources["cpu"] = _cpu_source(hardware)
        elif kind == "RAM":
            sources["ram"] = _Source(
                False,
                "estimated by CodeCarbon as a constant wattage per memory module (from the "
                "installed RAM size), not measured",
            )
        elif kind == "GPU":
            sources["gpu"] = _Source(True, "measured by CodeCarbon from the GPU driver")
    return sources


def _cpu_source(cpu: Any) -> _Source:
    mode = getattr(cpu, "_mode", "unknown")
    if mode in _MEASURED_CPU_MODES:
        return _Source(True, f"measured by CodeCarbon from {_MEASURED_CPU_MODES[mode]}")
    model = "TDP x CPU load" if mode == "cpu_load" else "a constant share of TDP"
    tdp_w = getattr(cpu, "_tdp", None)
    return _Source(
        False,
        f"estimated by CodeCarbon from {model} (TDP {tdp_w} W, mode '{mode}'), "
        "a model, not a measurement",
    )


def _co2(tracker: CodeCarbonTracker, data: Any) -> tuple[float | None, str]:
    """CO2 only from an intensity CodeCarbon was given or looked up for a known country."""
    forced = getattr(tracker, "force_carbon_intensity_g_co2e_kwh", None)
    if forced is not None:
        return float(data.emissions), f"co2: from the configured intensity {forced} gCO2eq/kWh"
    if data.country_iso_code:
        return float(data.emissions), (
            f"co2: from CodeCarbon's grid intensity for {data.country_name} "
            f"({data.country_iso_code})"
        )
    return None, (
        "co2: not reported, no country given (set country_iso_code or "
        "CODECARBON_COUNTRY_ISO_CODE); CodeCarbon would have used a world average"
    )


def _offline_tracker_factory(
    measure_power_s: float, country_iso_code: str | None
) -> TrackerFactory:
    """Import CodeCarbon and return a builder for a quiet offline tracker.

    Raises:
        DependencyError: codecarbon is not installed.
    """
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError as exc:
        raise DependencyError(f"the codecarbon sampler needs codecarbon: {INSTALL_HINT}") from exc
    location = {"country_iso_code": country_iso_code} if country_iso_code else {}
    tracker: TrackerFactory = functools.partial(
        OfflineEmissionsTracker,
        measure_power_secs=measure_power_s,
        output_methods=[],  # no CSV, API, logger or Prometheus output
        emissions_endpoint=None,
        electricitymaps_api_token=None,  # offline: no grid-intensity API calls
        log_level="error",
        # Whole-machine power, like the RAPL and NVML samplers, so figures are comparable and an
        # idle baseline can be subtracted; "process" would apportion by this process's CPU
        # time and RSS instead.
        tracking_mode="machine",
        # No lock file: CodeCarbon's lock also installs SIGINT/SIGTERM handlers of its own.
        allow_multiple_runs=True,
        pue=1.0,  # device energy; data-centre overhead is not this sampler's business
        **location,
    )
    return tracker


class _SwallowedErrors(logging.Handler):
    """Collects the exceptions CodeCarbon logs (with a traceback) instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


@contextmanager
def _guarded(step: str) -> Iterator[None]:
    """Run CodeCarbon calls with its log captured, raising what failed as EnergySamplerError.

    CodeCarbon's logger is left at ERROR afterwards (what ``log_level="error"`` sets) so its
    background measurement thread stays quiet during the window.
    """
    logger = logging.getLogger("codecarbon")
    saved_handlers = logger.handlers[:]
    swallowed = _SwallowedErrors()
    logger.handlers = [swallowed]
    logger.setLevel(logging.WARNING)
    try:
        yield
    except LLEMError:
        raise
    except Exception as exc:
        raise EnergySamplerError(f"CodeCarbon failed during {step}: {exc!r}") from exc
    finally:
        logger.handlers = saved_handlers
        logger.setLevel(logging.ERROR)
    if swallowed.errors:
        cause = swallowed.errors[0]
        raise EnergySamplerError(f"CodeCarbon failed during {step}: {cause!r}") from cause
