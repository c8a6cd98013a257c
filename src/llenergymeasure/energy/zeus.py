"""Zeus sampler: one ``ZeusMonitor`` measurement window over the GPUs and, where RAPL is
readable, the CPU packages and DRAM.

Zeus (ml-energy/zeus, the optional extra ``llenergymeasure[zeus]``) is imported only when a
sampler is built or probed. It reads each GPU's total-energy counter at the window's ends
(Volta and newer; older GPUs are polled by a Zeus helper process) and the RAPL package/DRAM
counters. ``Measurement.total_energy`` sums the GPUs only, so this sampler adds the domains
itself and lists every one it counted in ``scope``: ``gpu:<i>`` (``cuda:<i>`` after
``CUDA_VISIBLE_DEVICES``), ``cpu:package-<i>`` and ``dram:package-<i>`` (the same keys as the
``rapl`` sampler).

Windows are opened with ``sync_execution=False``: every backend returns only once its outputs
are on the host, so there is no queued GPU work to wait for, and engines that run in another
process (vLLM, TensorRT-LLM) could not be synchronised from here anyway. Zeus's
``approx_instant_energy`` replaces a zero reading (a window shorter than the counter's ~100 ms
update period) by instantaneous power x duration; such windows get a warning from the harness.

Timeline: ``ZeusMonitor`` only reports a window's total, so during the window a background
thread reads the same cumulative counters through the monitor's device managers every
``interval_ms`` (``monitor.gpus.get_total_energy_consumption(i)``, mJ; ``monitor.cpus.
get_total_energy_consumption(i)``, a ``CpuDramMeasurement`` in mJ with RAPL wraparounds
already counted; for a GPU before Volta, ``get_instant_power_usage(i)``, mW, integrated by the
trapezoid rule, as Zeus's own power monitor does). Each domain's points are ``(seconds from
start, joules since the first read)``; ``stale_s`` is the largest update period among the
domains read: the GPU counter's ~100 ms, RAPL's ~1 ms, 0 for integrated instantaneous power.
The reported totals stay ZeusMonitor's (its reads at the window's ends, microseconds from the
timeline's first and last reads). Zeus before 0.13 spells these methods in camelCase
(``getTotalEnergyConsumption``); both spellings are accepted.

Only one sampler owns the GPU energy counters per experiment; see :mod:`energy.nvml`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from llenergymeasure.devices import COUNTER_UPDATE_PERIOD_S
from llenergymeasure.energy.base import Availability, Clock, EnergyReading
from llenergymeasure.energy.polling import Poller, Wait
from llenergymeasure.energy.rapl import RAPL_UPDATE_PERIOD_S
from llenergymeasure.energy.timeline import (
    EnergyPoint,
    EnergyTimeline,
    integrated,
    largest_stale_s,
)
from llenergymeasure.errors import (
    DependencyError,
    EnergySamplerError,
    SamplerUnavailableError,
    describe_exception,
)
from llenergymeasure.results.warning_codes import WarningCode

INSTALL_HINT = "pip install 'llenergymeasure[zeus]'"
WINDOW_KEY = "llenergymeasure-window"


def import_zeus_monitor() -> Any:
    """``zeus.monitor.ZeusMonitor``, imported now.

    Raises:
        DependencyError: Zeus is not installed (the message says how to install it).
    """
    try:
        return importlib.import_module("zeus.monitor").ZeusMonitor
    except ImportError as exc:
        raise DependencyError(f"zeus is not installed: {INSTALL_HINT}") from exc


def probe(gpu_indices: Sequence[int] | None = None) -> Availability:
    """Say whether Zeus is installed and sees the GPUs to measure, and why not."""
    try:
        import_zeus_monitor()
        device = importlib.import_module("zeus.device")
    except DependencyError as exc:
        return Availability(False, str(exc))
    except ImportError as exc:
        return Availability(False, f"zeus is installed but cannot be imported: {exc}")
    try:
        count = len(device.get_gpus())
    except Exception as exc:  # Zeus raises its own ZeusGPUInitError, or a vendor error
        return Availability(False, f"Zeus found no usable GPU: {exc}")
    if count == 0:
        return Availability(False, "Zeus found no GPU (use the rapl sampler for CPU only)")
    missing = [i for i in gpu_indices or [] if not 0 <= i < count]
    if missing:
        return Availability(False, f"gpu_indices {missing} are not visible to Zeus ({count} GPUs)")
    return Availability(True)


def zeus_method(manager: Any, name: str, legacy_name: str) -> Callable[..., Any]:
    """A Zeus device manager's method by its name (Zeus ≥ 0.13), else its camelCase one.

    Raises:
        AttributeError: the manager has neither.
    """
    method: Callable[..., Any] | None = getattr(manager, name, None)
    return method if method is not None else getattr(manager, legacy_name)


def _gpu_energy_j(gpus: Any, index: int) -> dict[str, float]:
    read = zeus_method(gpus, "get_total_energy_consumption", "getTotalEnergyConsumption")
    return {f"gpu:{index}": read(index) / 1000}


def _gpu_power_w(gpus: Any, index: int) -> dict[str, float]:
    read = zeus_method(gpus, "get_instant_power_usage", "getInstantPowerUsage")
    return {f"gpu:{index}": read(index) / 1000}


def _cpu_energy_j(cpus: Any, index: int) -> dict[str, float]:
    read = zeus_method(cpus, "get_total_energy_consumption", "getTotalEnergyConsumption")
    measurement = read(index)
    values = {f"cpu:package-{index}": measurement.cpu_mj / 1000}
    if measurement.dram_mj is not None:
        values[f"dram:package-{index}"] = measurement.dram_mj / 1000
    return values


@dataclass
class _Source:
    """One Zeus read taken every poll: cumulative joules (or watts, for ``is_power``) per key."""

    name: str
    kind: str
    read: Callable[[], dict[str, float]]
    stale_s: float
    is_power: bool = False
    reads: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def points(self, key: str) -> list[EnergyPoint]:
        """``key``'s reads as cumulative points from ``(t0, 0.0)``."""
        series = [(t_s, values[key]) for t_s, values in self.reads if key in values]
        if self.is_power:
            return integrated(series)
        return [(t_s, value - series[0][1]) for t_s, value in series]


def _sources(monitor: Any) -> list[_Source]:
    """What to read for every GPU and CPU package the monitor measures."""
    gpus, cpus = monitor.gpus, monitor.cpus
    has_counter = zeus_method(
        gpus, "supports_get_total_energy_consumption", "supportsGetTotalEnergyConsumption"
    )
    sources = [_gpu_source(gpus, i, has_counter(i)) for i in monitor.gpu_indices]
    sources.extend(
        _Source(
            f"package-{i}", "RAPL counters", partial(_cpu_energy_j, cpus, i), RAPL_UPDATE_PERIOD_S
        )
        for i in monitor.cpu_indices
    )
    return sources


def _gpu_source(gpus: Any, index: int, has_counter: bool) -> _Source:
    """The GPU's total-energy counter, or before Volta its power to integrate."""
    name = f"gpu:{index}"
    if has_counter:
        read = partial(_gpu_energy_j, gpus, index)
        return _Source(name, "total-energy counter", read, COUNTER_UPDATE_PERIOD_S)
    read = partial(_gpu_power_w, gpus, index)
    return _Source(name, "integrated instant power", read, 0.0, is_power=True)


class ZeusSampler:
    """Energy over one window from a Zeus ``ZeusMonitor``, with its counters polled for the
    timeline.

    Args:
        gpu_indices: GPUs to measure (``cuda:N`` indices); None = every GPU Zeus sees.
        cpu_indices: RAPL packages to measure; None = every readable package (none where
            RAPL is missing or root-only), [] = GPUs only.
        interval_ms: how often the counters are read for the timeline.
        clock: monotonic clock in seconds for the window's duration and the timeline.
        approx_instant_energy: let Zeus replace a zero reading by power x duration.
        monitor_class: the ZeusMonitor class (default: import Zeus); the test seam.
        background: poll from a daemon thread; tests pass False and call :meth:`poll`.
        wait: how the thread waits between polls (see :class:`~.polling.Poller`); tests pass
            a scripted one that moves a fake clock, to drive the thread without sleeping.

    Raises:
        DependencyError: Zeus is not installed.
        SamplerUnavailableError: Zeus found no GPU, or not the requested ones.
        EnergySamplerError: Zeus failed otherwise while starting.
    """

    name = "zeus"

    def __init__(
        self,
        gpu_indices: Sequence[int] | None = None,
        cpu_indices: Sequence[int] | None = None,
        interval_ms: int = 100,
        clock: Clock = time.monotonic,
        *,
        approx_instant_energy: bool = True,
        monitor_class: Any | None = None,
        background: bool = True,
        wait: Wait | None = None,
    ) -> None:
        monitor_class = monitor_class or import_zeus_monitor()
        self._clock = clock
        try:
            self._monitor = monitor_class(
                gpu_indices=None if gpu_indices is None else list(gpu_indices),
                cpu_indices=None if cpu_indices is None else list(cpu_indices),
                approx_instant_energy=approx_instant_energy,
            )
        except (ValueError, IndexError) as exc:
            # Zeus's EmptyGPUs raises ValueError("No GPUs available."); a missing index
            # raises IndexError.
            raise SamplerUnavailableError(f"Zeus cannot measure the requested GPUs: {exc}") from exc
        except RuntimeError as exc:  # RAPL needs root when cpu_indices are given explicitly
            raise SamplerUnavailableError(f"Zeus cannot read the CPU counters: {exc}") from exc
        except Exception as exc:  # Zeus's own errors (ZeusBaseError) and vendor errors
            raise EnergySamplerError(f"Zeus failed to start: {describe_exception(exc)}") from exc
        if not list(getattr(self._monitor, "gpu_indices", [])):
            # With gpu_indices=None and no GPU, Zeus builds a monitor that measures nothing.
            raise SamplerUnavailableError("Zeus found no GPU to measure")
        try:
            self._sources = _sources(self._monitor)
        except Exception as exc:  # a vendor error asking which GPUs have a counter
            raise EnergySamplerError(f"Zeus failed to start: {describe_exception(exc)}") from exc
        self._approx = approx_instant_energy
        self._interval_s = interval_ms / 1000
        self._poller = (
            Poller(self.poll, self._interval_s, "llem-zeus", wait) if background else None
        )
        self._start_s: float | None = None
        self._start_error: str | None = None

    def start(self) -> None:
        """Open the Zeus measurement window (a failure is reported by ``stop``).

        Raises:
            EnergySamplerError: ``start`` was already called.
        """
        if self._start_s is not None:
            raise EnergySamplerError("ZeusSampler.start() called twice; use one per window")
        self._start_s = self._clock()
        try:
            self._monitor.begin_window(WINDOW_KEY, sync_execution=False)
        except Exception as exc:  # any Zeus failure degrades to a reading with a warning
            self._start_error = describe_exception(exc)
            return
        self.poll()
        if self._poller is not None:
            self._poller.start()

    def poll(self) -> None:
        """Read every counter now for the timeline (the thread calls this each interval).

        A failed read is skipped and counted (``stop`` notes it); it never raises.

        Raises:
            EnergySamplerError: the window has not started.
        """
        if self._start_s is None:
            raise EnergySamplerError("ZeusSampler.poll() called before start()")
        for source in self._sources:
            try:
                values = source.read()
            except Exception as exc:  # a lost GPU or driver error must not lose the run
                source.error_count += 1
                if len(source.errors) < 3 and describe_exception(exc) not in source.errors:
                    source.errors.append(describe_exception(exc))
                continue
            source.reads.append((self._clock() - self._start_s, values))

    def stop(self) -> EnergyReading:
        """Close the window and return per-domain energy; Zeus failures never raise.

        Raises:
            EnergySamplerError: ``start`` was not called.
        """
        if self._start_s is None:
            raise EnergySamplerError("ZeusSampler.stop() called before start()")
        error = self._start_error
        measurement = None
        if error is None:
            if self._poller is not None:
                self._poller.stop()
            self.poll()  # the timeline's last read, just before Zeus's own
            try:
                measurement = self._monitor.end_window(WINDOW_KEY, sync_execution=False)
            except Exception as exc:  # a lost GPU or driver error must not lose the run
                error = describe_exception(exc)
        duration_s = self._clock() - self._start_s
        if measurement is None:
            return self._failed_reading(duration_s, error or "no measurement")
        return self._reading(measurement, duration_s)

    def _reading(self, measurement: Any, duration_s: float) -> EnergyReading:
        by_domain = {f"gpu:{i}": float(j) for i, j in sorted(measurement.gpu_energy.items())}
        cpu = getattr(measurement, "cpu_energy", None) or {}
        dram = getattr(measurement, "dram_energy", None) or {}
        by_domain |= {f"cpu:package-{i}": float(j) for i, j in sorted(cpu.items())}
        by_domain |= {f"dram:package-{i}": float(j) for i, j in sorted(dram.items())}
        gpu_j = [by_domain[k] for k in by_domain if k.startswith("gpu:")]
        notes = [
            f"Zeus window of {float(measurement.time):.3f} s; total = GPUs "
            f"{sum(gpu_j):.3f} J + CPU/DRAM {sum(by_domain.values()) - sum(gpu_j):.3f} J "
            "(Zeus's own total_energy counts the GPUs only)"
        ]
        if not cpu:
            notes.append("no readable RAPL counters: CPU and DRAM energy are not included")
        elif not dram:
            notes.append("no RAPL DRAM zone: memory energy is not included")
        if self._approx and duration_s < 2 * COUNTER_UPDATE_PERIOD_S:
            notes.append(
                "window shorter than two counter updates: Zeus may have replaced a 0 J GPU "
                "reading by instantaneous power x duration (approx_instant_energy)"
            )
        mean_gpu_w = sum(gpu_j) / duration_s if duration_s > 0 else 0.0
        return EnergyReading(
            method=self.name,
            scope=list(by_domain),
            energy_total_j=sum(by_domain.values()),
            energy_by_domain_j=by_domain,
            duration_s=duration_s,
            # Counter updates the window spans: Zeus reads each counter at the ends only, so
            # the figure's granularity is the ~100 ms update period, not a read count.
            sample_count=int(duration_s / COUNTER_UPDATE_PERIOD_S),
            notes=notes,
            # Each GPU counter delta is off by up to one update period of energy (see
            # energy.nvml.counter_bound_j); summed, that is the period x the GPUs' mean power.
            # RAPL counters update every ~1 ms, which is negligible beside it.
            uncertainty_j=COUNTER_UPDATE_PERIOD_S * mean_gpu_w,
            timeline=self._timeline(list(by_domain)),
        )

    def _timeline(self, keys: list[str]) -> EnergyTimeline:
        """The polled reads of every reported domain; a domain never read has no points, so
        no interval is covered without it."""
        points: dict[str, list[EnergyPoint]] = {key: [] for key in keys}
        stale_by_source: dict[str, float] = {}
        kinds: list[str] = []
        errors: list[str] = []
        for source in self._sources:
            read_keys = [key for key in keys if any(key in values for _, values in source.reads)]
            for key in read_keys:
                points[key] = source.points(key)
            if read_keys:
                stale_by_source[source.name] = source.stale_s
                kinds.append(f"{source.name} {source.kind}")
            if source.error_count:
                errors.append(
                    f"{source.name}: {source.error_count} reads failed and were skipped (the "
                    f"gaps widen interval bounds): {'; '.join(source.errors)}"
                )
        stale_s, stale_notes = largest_stale_s(stale_by_source)
        polled = (
            f"the timeline is this sampler's reads every {self._interval_s * 1000:g} ms; the "
            "totals are ZeusMonitor's reads at the window's ends"
        )
        return EnergyTimeline(
            points=points,
            stale_s=stale_s,
            source="zeus: " + "; ".join(kinds),
            notes=[polled, *stale_notes, *errors],
        )

    def _failed_reading(self, duration_s: float, error: str) -> EnergyReading:
        return EnergyReading(
            method=self.name,
            scope=[],
            energy_total_j=None,
            energy_by_domain_j={},
            duration_s=duration_s,
            sample_count=0,
            notes=[f"Zeus failed: {error}"],
            warnings=[
                (WarningCode.SAMPLER_FAILED, f"Zeus measurement failed, energy is null: {error}")
            ],
        )
