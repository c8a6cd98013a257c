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

Only one sampler owns the GPU energy counters per experiment; see :mod:`energy.nvml`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

from llenergymeasure.devices import COUNTER_UPDATE_PERIOD_S
from llenergymeasure.energy.base import Availability, Clock, EnergyReading
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


class ZeusSampler:
    """Energy over one window from a Zeus ``ZeusMonitor``.

    Args:
        gpu_indices: GPUs to measure (``cuda:N`` indices); None = every GPU Zeus sees.
        cpu_indices: RAPL packages to measure; None = every readable package (none where
            RAPL is missing or root-only), [] = GPUs only.
        interval_ms: unused (Zeus reads counters at the window's ends); kept for the factory.
        clock: monotonic clock in seconds for the window's duration.
        approx_instant_energy: let Zeus replace a zero reading by power x duration.
        monitor_class: the ZeusMonitor class (default: import Zeus); the test seam.

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
        self._approx = approx_instant_energy
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
