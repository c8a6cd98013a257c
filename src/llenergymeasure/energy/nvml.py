"""NVML sampler: per-GPU energy from the total-energy counter, cross-checked by polled power.

For each GPU the sampler reads ``nvmlDeviceGetTotalEnergyConsumption`` (mJ; Volta and newer;
the driver updates it about every 100 ms) at the window's ends, and a background thread polls
power every ``interval_ms`` (instantaneous power from ``NVML_FI_DEV_POWER_INSTANT`` where the
driver has it, else ``nvmlDeviceGetPowerUsage``, a 1-second average on Ampere and newer) and
integrates it with the trapezoid rule over monotonic timestamps. The counter is the reported
figure where it exists; the integral is reported where it does not (before Volta), and is kept
in the notes as a cross-check where both exist, with a ``counter_mismatch`` warning beyond 5%.

A GPU that fails mid-window (lost, driver error) keeps the energy read up to its last good
read, with a ``sampler_failed`` warning; ``stop`` never raises for device errors.

Timeline: every read is kept, so the reading's :class:`EnergyTimeline` gives any sub-window's
energy. Per GPU (``gpu:<i>``, the reading's keys) its points are, where the counter is the
reported figure, every counter read (seconds from ``start``, joules since the first read;
``stale_s`` = the counter's update period), else the cumulative trapezoid integral of the power
samples (``stale_s`` 0 for instantaneous power, the averaging window for the driver's 1-second
average, whose reads lag by up to that much). Where GPUs mix the two, ``stale_s`` is the largest
(one value bounds every domain). A GPU that failed has points up to its last good read only.

Ownership of NVML energy: the factory builds exactly one sampler per experiment, and ``nvml``
and ``zeus`` are alternative values of ``energy.sampler``, so only one of them reads the GPU
energy counters. The telemetry poller reads power, temperature, clocks and memory through
:meth:`~llenergymeasure.devices.Gpu.read_state`, which never touches the energy counter.
(Reading a counter never resets it, so a second reader could not corrupt the figure; the rule
keeps one source of truth for what is reported.)

All GPU access goes through :mod:`llenergymeasure.devices`; pynvml is never imported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from llenergymeasure import devices
from llenergymeasure.devices import (
    COUNTER_UPDATE_PERIOD_S,
    Gpu,
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
)
from llenergymeasure.energy.base import Availability, Clock, EnergyReading
from llenergymeasure.energy.polling import Poller, Wait
from llenergymeasure.energy.timeline import (
    EnergyPoint,
    EnergyTimeline,
    integrated,
    largest_stale_s,
)
from llenergymeasure.errors import EnergySamplerError, SamplerUnavailableError, describe_exception
from llenergymeasure.results.warning_codes import WarningCode

AVERAGE_POWER_WINDOW_S = 1.0
"""The averaging window of ``nvmlDeviceGetPowerUsage`` on Ampere and newer."""
MISMATCH_TOLERANCE = 0.05
"""Counter and integrated energy further apart than this fraction raise ``counter_mismatch``."""

PowerSample = tuple[float, float]
"""``(timestamp_s, power_w)``."""
CounterRead = tuple[float, int]
"""``(timestamp_s, energy_mj)``: one read of the total-energy counter."""


def probe(gpu_indices: Sequence[int] | None = None) -> Availability:
    """Say whether the NVML sampler can measure the requested GPUs here, and why not."""
    try:
        select_gpus(gpu_indices)
    except SamplerUnavailableError as exc:
        return Availability(False, str(exc))
    return Availability(True)


def select_gpus(gpu_indices: Sequence[int] | None = None) -> list[Gpu]:
    """The visible GPUs to measure (``cuda:N`` indices; None = every visible GPU).

    Raises:
        SamplerUnavailableError: no GPU can be read, or a requested index is not visible.
    """
    gpus = devices.get_gpus()
    if not gpus:
        raise SamplerUnavailableError(devices.probe().reason)
    if gpu_indices is None:
        return gpus
    by_index = {gpu.index: gpu for gpu in gpus}
    missing = [i for i in gpu_indices if i not in by_index]
    if missing:
        raise SamplerUnavailableError(
            f"gpu_indices {missing} are not visible; visible GPUs: "
            f"{', '.join(str(i) for i in by_index) or 'none'}"
        )
    return [by_index[i] for i in gpu_indices]


def trapezoid_j(samples: Sequence[PowerSample]) -> float:
    """Energy in J of power samples ``(t_s, power_w)`` by the trapezoid rule."""
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(samples))


def integration_bound_j(
    samples: Sequence[PowerSample],
    window: tuple[float, float],
    interval_s: float,
    averaging_s: float = 0.0,
) -> float:
    """A bound on how far the trapezoid integral of ``samples`` is from the window's energy.

    Three terms, in joules:

    * between two samples ``Δt`` apart the true mean power lies between their powers when
      power moves monotonically between them, so the trapezoid is off by at most
      ``Δt·|ΔP|/2`` per interval (0 for constant power);
    * time the samples do not cover (before the first, after the last, and the part of any
      interval longer than twice ``interval_s``, when a poll was missed) could have drawn up
      to the highest power seen: ``gap_s × max(P)``;
    * an averaged power reading (``averaging_s`` > 0) lags the true power, shifting energy
      across the window's ends by up to ``averaging_s × (max(P) − min(P))``.

    It assumes the sensor itself is right; NVIDIA quotes about ±5% for board power.
    """
    if not samples:
        return 0.0
    powers = [p for _, p in samples]
    shape = sum((t1 - t0) * abs(p1 - p0) / 2 for (t0, p0), (t1, p1) in pairwise(samples))
    missed = sum(max(0.0, (t1 - t0) - 2 * interval_s) for (t0, _), (t1, _) in pairwise(samples))
    edges = max(0.0, samples[0][0] - window[0]) + max(0.0, window[1] - samples[-1][0])
    lag = averaging_s * (max(powers) - min(powers))
    return shape + (missed + edges) * max(powers) + lag


def counter_bound_j(update_period_s: float, power_start_w: float, power_end_w: float) -> float:
    """A bound on a counter delta's error from the counter's update period.

    A read returns the value of the last update, so each end of the window misses up to one
    period of energy: ``update_period_s × P`` at that end. Both ends err the same way (late),
    so their errors partly cancel and the delta is off by at most the larger of the two:
    ``update_period_s × max(P_start, P_end)`` — about the period × the mean power.
    """
    return update_period_s * max(power_start_w, power_end_w)


@dataclass
class _Device:
    """One GPU's reads in the window."""

    gpu: Gpu
    has_counter: bool = True
    counter_reads: list[CounterRead] = field(default_factory=list)
    samples: list[PowerSample] = field(default_factory=list)
    failure: str | None = None
    last_read_ok: bool = True
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def note_error(self, exc: Exception) -> None:
        """Count a failed read, keeping the first few distinct messages."""
        self.error_count += 1
        message = str(exc) if isinstance(exc, GpuError) else describe_exception(exc)
        if message not in self.errors and len(self.errors) < 3:
            self.errors.append(message)

    @property
    def last_good_s(self) -> float | None:
        """When this GPU was last read successfully."""
        times = [t for t, _ in [*self.samples[-1:], *self.counter_reads[-1:]]]
        return max(times) if times else None


@dataclass
class _DeviceResult:
    energy_j: float | None
    uncertainty_j: float | None
    sample_count: int
    notes: list[str]
    warnings: list[tuple[WarningCode, str]]
    points: list[EnergyPoint]
    """The reads behind ``energy_j`` as timeline points (empty when nothing was measured)."""
    timeline_source: str
    stale_s: float


class NvmlSampler:
    """Per-GPU energy over one window from NVML (see the module docstring for the method).

    Args:
        gpus: the GPUs to measure (:func:`select_gpus`, or fakes in tests). GPUs that are the
            same physical device (two MIG instances of one GPU) are measured once.
        interval_ms: power polling interval.
        clock: monotonic clock in seconds, for timestamps and the window's duration.
        counter_update_s: the counter's update period, used for its uncertainty and as the
            timeline's ``stale_s``.
        background: poll from a daemon thread; tests pass False and call :meth:`poll`.
        wait: how the thread waits between polls (see :class:`~.polling.Poller`); tests pass
            a scripted one that moves a fake clock, to drive the thread without sleeping.

    Raises:
        SamplerUnavailableError: ``gpus`` is empty.
    """

    name = "nvml"

    def __init__(
        self,
        gpus: Sequence[Gpu],
        interval_ms: int = 100,
        clock: Clock = time.monotonic,
        *,
        counter_update_s: float = COUNTER_UPDATE_PERIOD_S,
        background: bool = True,
        wait: Wait | None = None,
    ) -> None:
        if not gpus:
            raise SamplerUnavailableError("no GPU to measure")
        unique = {gpu.vendor_index: gpu for gpu in reversed(gpus)}  # first of each device wins
        self._devices = [_Device(gpu) for gpu in gpus if unique[gpu.vendor_index] is gpu]
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._counter_update_s = counter_update_s
        self._poller = (
            Poller(self.poll, self._interval_s, "llem-nvml", wait) if background else None
        )
        self._start_s: float | None = None
        self._stop_s: float | None = None

    def start(self) -> None:
        """Read every counter and power once, then start polling.

        A GPU that fails here is reported by ``stop`` (``sampler_failed``), not raised.

        Raises:
            EnergySamplerError: ``start`` was already called.
        """
        if self._start_s is not None:
            raise EnergySamplerError("NvmlSampler.start() called twice; use one per window")
        self._start_s = self._clock()
        for device in self._devices:
            self._read(device, first=True)
        if self._poller is not None:
            self._poller.start()

    def poll(self) -> None:
        """Read every live GPU's counter and power now (the thread calls this each interval).

        Raises:
            EnergySamplerError: the window has not started.
        """
        if self._start_s is None:
            raise EnergySamplerError("NvmlSampler.poll() called before start()")
        for device in self._devices:
            if device.failure is None:
                self._read(device)

    def stop(self) -> EnergyReading:
        """Stop polling, take the final reads and return the window's energy.

        Device failures never raise: a GPU that failed keeps the energy read before it
        failed (or None), with a ``sampler_failed`` warning.

        Raises:
            EnergySamplerError: ``start`` was not called.
        """
        if self._start_s is None:
            raise EnergySamplerError("NvmlSampler.stop() called before start()")
        if self._poller is not None:
            self._poller.stop()
        self.poll()
        self._stop_s = self._clock()
        for device in self._devices:
            if device.failure is None and not device.last_read_ok:  # the final read failed
                device.failure = f"reads failed at the window's end ({device.errors[-1]})"
        results = {d.gpu.key: self._result(d) for d in self._devices}
        measured = {key: r.energy_j for key, r in results.items() if r.energy_j is not None}
        bounds = [r.uncertainty_j for r in results.values()]
        warnings = [w for r in results.values() for w in r.warnings]
        # The harness warns (too_few_samples) when even the least-read GPU has < 10 reads.
        sample_count = min(r.sample_count for r in results.values())
        notes = [note for r in results.values() for note in r.notes]
        if any(d.gpu.simulated for d in self._devices):
            message = "pynvml is llenergymeasure's fake (llenergymeasure.testing): synthetic energy"
            notes.append(message)
            warnings.append((WarningCode.SIMULATED_DEVICE, message))
        return EnergyReading(
            method=self.name,
            scope=list(results),
            energy_total_j=sum(measured.values()) if measured else None,
            energy_by_domain_j=measured,
            duration_s=self._stop_s - self._start_s,
            sample_count=sample_count,
            notes=notes,
            uncertainty_j=sum(b for b in bounds if b is not None) if measured else None,
            warnings=warnings,
            timeline=_timeline(results, self._devices),
        )

    def _read(self, device: _Device, *, first: bool = False) -> None:
        gpu = device.gpu
        try:
            if device.has_counter:
                self._read_counter(device, first=first)
            power_w = gpu.power_w()
            device.samples.append((self._clock(), power_w))
            device.last_read_ok = True
        except GpuLostError as exc:
            device.failure = (
                f"lost {self._clock() - self._window_start():.2f} s into the window ({exc})"
            )
        except Exception as exc:  # GpuError, or anything unforeseen: never lose the run
            device.note_error(exc)
            device.last_read_ok = False
            if first and not device.counter_reads:
                device.has_counter = False  # a counter that missed the start would undercount

    def _read_counter(self, device: _Device, *, first: bool) -> None:
        try:
            energy_mj = device.gpu.total_energy_mj()
        except GpuNotSupportedError:
            if not first:
                raise
            device.has_counter = False  # before Volta: power integration only
            return
        device.counter_reads.append((self._clock(), energy_mj))

    def _window_start(self) -> float:
        return self._start_s if self._start_s is not None else self._clock()

    def _result(self, device: _Device) -> _DeviceResult:
        window = (self._window_start(), self._clock() if self._stop_s is None else self._stop_s)
        key = device.gpu.key
        notes: list[str] = []
        warnings: list[tuple[WarningCode, str]] = []
        source = device.gpu.power_source or "unknown"
        integrated_j = trapezoid_j(device.samples) if len(device.samples) >= 2 else None
        averaging_s = AVERAGE_POWER_WINDOW_S if source == "average" else 0.0
        integration_bound = integration_bound_j(
            device.samples, window, self._interval_s, averaging_s
        )
        counter_j = _counter_j(device)
        energy_j: float | None = counter_j
        if counter_j is not None:
            uncertainty_j: float | None = self._counter_uncertainty(device, window, counter_j)
            notes.append(f"{key}: {counter_j:.3f} J from the total-energy counter")
            if integrated_j is not None:
                notes.append(
                    f"{key}: cross-check {integrated_j:.3f} J from {len(device.samples)} "
                    f"{source} power samples (trapezoid, ±{integration_bound:.3f} J)"
                )
                mismatch = _mismatch(key, counter_j, integrated_j, source)
                if mismatch is not None:
                    warnings.append(mismatch)
        else:
            energy_j = integrated_j
            uncertainty_j = integration_bound if integrated_j is not None else None
            reason = "no energy counter" if not device.has_counter else "counter unreadable"
            if integrated_j is not None:
                notes.append(
                    f"{key}: {integrated_j:.3f} J integrated from {len(device.samples)} "
                    f"{source} power samples ({reason}; trapezoid rule)"
                )
        if source == "average":
            notes.append(
                f"{key}: power read as the driver's {AVERAGE_POWER_WINDOW_S:.0f}-second average "
                "(NVML_FI_DEV_POWER_INSTANT unsupported): short phases are smeared"
            )
        if device.error_count:
            notes.append(
                f"{key}: {device.error_count} reads failed and were skipped (the gaps widen the "
                f"bound): {'; '.join(device.errors)}"
            )
        failure = _failure_warning(device, energy_j, window)
        if failure is not None:
            warnings.append(failure)
        count = max(len(device.counter_reads), len(device.samples))
        points, timeline_source, stale_s = self._points(device, counter_j is not None, averaging_s)
        return _DeviceResult(
            energy_j, uncertainty_j, count, notes, warnings, points, timeline_source, stale_s
        )

    def _points(
        self, device: _Device, from_counter: bool, averaging_s: float
    ) -> tuple[list[EnergyPoint], str, float]:
        """The reads behind the device's energy as timeline points, their source and
        ``stale_s``: every counter read, else the running integral of the power samples."""
        start_s = self._window_start()
        if from_counter:
            first_mj = device.counter_reads[0][1]
            points = [(t - start_s, (mj - first_mj) / 1000) for t, mj in device.counter_reads]
            return points, "total-energy counter", self._counter_update_s
        points = [(t - start_s, e) for t, e in integrated(device.samples)]
        source = device.gpu.power_source or "unknown"
        return points, f"integrated {source} power", averaging_s

    def _counter_uncertainty(
        self, device: _Device, window: tuple[float, float], counter_j: float
    ) -> float:
        """Update period × the larger end power, plus any uncovered tail × the peak power."""
        powers = [p for _, p in device.samples]
        first_s, last_s = device.counter_reads[0][0], device.counter_reads[-1][0]
        mean_w = counter_j / (last_s - first_s) if last_s > first_s else 0.0
        start_w, end_w = (powers[0], powers[-1]) if powers else (mean_w, mean_w)
        bound = counter_bound_j(self._counter_update_s, start_w, end_w)
        if device.failure is not None:  # the window's tail after the failure is not counted
            bound += max(0.0, window[1] - last_s) * max([*powers, mean_w])
        return bound


def _counter_j(device: _Device) -> float | None:
    energies_mj = [mj for _, mj in device.counter_reads]
    if len(energies_mj) < 2 or any(b < a for a, b in pairwise(energies_mj)):
        return None  # one read only, or the counter went back (driver reload)
    return (energies_mj[-1] - energies_mj[0]) / 1000


def _timeline(
    results: dict[str, _DeviceResult], devices: Sequence[_Device]
) -> EnergyTimeline | None:
    """Every measured GPU's reads as one timeline; None when no GPU was measured."""
    measured = {key: r for key, r in results.items() if r.energy_j is not None}
    if not measured:
        return None
    stale_s, notes = largest_stale_s({key: r.stale_s for key, r in measured.items()})
    notes.extend(
        f"{d.gpu.key}: reads end at {measured[d.gpu.key].points[-1][0]:.2f} s ({d.failure}); "
        "later intervals are not covered"
        for d in devices
        if d.failure is not None and d.gpu.key in measured
    )
    return EnergyTimeline(
        points={key: r.points for key, r in measured.items()},
        stale_s=stale_s,
        source="nvml: " + "; ".join(f"{key} {r.timeline_source}" for key, r in measured.items()),
        notes=notes,
    )


def _mismatch(
    key: str, counter_j: float, integrated_j: float, source: str
) -> tuple[WarningCode, str] | None:
    if counter_j <= 0:
        return None
    difference = abs(counter_j - integrated_j) / counter_j
    if difference <= MISMATCH_TOLERANCE:
        return None
    return (
        WarningCode.COUNTER_MISMATCH,
        f"{key}: energy counter {counter_j:.2f} J and integrated {source} power "
        f"{integrated_j:.2f} J differ by {difference:.0%} (> {MISMATCH_TOLERANCE:.0%}); "
        "the counter is reported",
    )


def _failure_warning(
    device: _Device, energy_j: float | None, window: tuple[float, float]
) -> tuple[WarningCode, str] | None:
    if device.failure is None:
        return None
    key = device.gpu.key
    if energy_j is None:
        message = f"{key}: {device.failure}; no energy could be measured for it"
        return (WarningCode.SAMPLER_FAILED, message)
    last = device.last_good_s or window[0]
    duration = window[1] - window[0]
    share = (last - window[0]) / duration if duration > 0 else 0.0
    return (
        WarningCode.SAMPLER_FAILED,
        f"{key}: {device.failure}; its energy ({energy_j:.2f} J) covers only the first "
        f"{last - window[0]:.2f} s ({share:.0%}) of the window",
    )
