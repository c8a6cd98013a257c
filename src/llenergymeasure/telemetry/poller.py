"""A background thread that samples device state at a fixed interval.

Sources are pluggable: GPUs report power, temperature, memory, utilisation, clocks and
throttle reasons; where there is no GPU the CPU source records utilisation, frequency and the
process's memory, so every run has a timeline; the contention source records other work on
the machine (``telemetry.contention``). Each sample is tagged with the harness phase
(baseline, warmup, window) so plots can shade them. The poller never reads energy counters:
those belong to the energy sampler.

A source with a ``min_interval_s`` attribute (an expensive one) is read at most that often by
the background loop, and at every phase change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import psutil

from llenergymeasure.devices import Gpu, is_throttled
from llenergymeasure.results.models import TelemetrySummary
from llenergymeasure.results.records import TelemetrySample
from llenergymeasure.telemetry.contention import (
    CONTENTION_DEVICE,
    ContentionSource,
    default_root_pids,
)


class TelemetrySource(Protocol):
    """Reads the current state of the devices it covers."""

    def read(self, timestamp_s: float) -> list[TelemetrySample]:
        """One sample per device, stamped with ``timestamp_s``."""


class CpuTelemetrySource:
    """System CPU utilisation and frequency, and this process's resident memory (psutil)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first call only primes the counter

    def read(self, timestamp_s: float) -> list[TelemetrySample]:
        """The CPU's state now."""
        frequency = psutil.cpu_freq()
        return [
            TelemetrySample(
                timestamp_s=timestamp_s,
                device="cpu",
                memory_used_mb=self._process.memory_info().rss / 2**20,
                utilisation_pct=psutil.cpu_percent(interval=None),
                clock_mhz=frequency.current if frequency else None,
            )
        ]


class GpuTelemetrySource:
    """Power, temperature, memory, SM utilisation, clocks and clock-event reasons per GPU."""

    def __init__(self, gpus: Sequence[Gpu]) -> None:
        self._gpus = list(gpus)

    def read(self, timestamp_s: float) -> list[TelemetrySample]:
        """Every GPU's state now."""
        return [self._sample(gpu, timestamp_s) for gpu in self._gpus]

    @staticmethod
    def _sample(gpu: Gpu, timestamp_s: float) -> TelemetrySample:
        state = gpu.read_state()
        reasons = state.clock_event_reasons
        return TelemetrySample(
            timestamp_s=timestamp_s,
            device=gpu.key,
            power_w=state.power_w,
            temperature_c=state.temperature_c,
            memory_used_mb=state.memory_used_mb,
            utilisation_pct=state.sm_utilisation_pct,
            clock_mhz=state.sm_clock_mhz,
            throttle_reasons=",".join(reasons) if reasons is not None else None,
            throttled=is_throttled(reasons) if reasons is not None else None,
        )


def default_sources(gpus: Sequence[Gpu], own_pids: Sequence[int] = ()) -> list[TelemetrySource]:
    """The given GPUs, or the CPU where there are none; and other work on the machine.

    ``own_pids`` are processes outside this run's tree whose work is the run's own (a local
    server it measures but did not start): they and their descendants are not other work.
    """
    devices: TelemetrySource = GpuTelemetrySource(gpus) if gpus else CpuTelemetrySource()
    roots = (*default_root_pids(), *own_pids)
    return [devices, ContentionSource(gpus, root_pids=roots)]


class TelemetryPoller:
    """Samples every source every ``interval_ms`` on a daemon thread.

    Args:
        sources: what to read (GPUs, or the CPU when there is none).
        interval_ms: time between samples.
        clock: monotonic clock in seconds (timestamps are on this clock).
    """

    def __init__(
        self,
        sources: Sequence[TelemetrySource],
        interval_ms: int = 100,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._sources = list(sources)
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._samples: list[TelemetrySample] = []
        self._last_read_s: dict[int, float] = {}
        self._phase = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    @property
    def sources(self) -> tuple[TelemetrySource, ...]:
        """What the poller reads."""
        return tuple(self._sources)

    def set_phase(self, phase: str) -> None:
        """Tag the following samples with ``phase``; sample every source now if the poller is
        running, so even a phase shorter than the interval has a sample at its start."""
        self._phase = phase
        if self._thread is not None:
            self.poll(every_source=True)

    def poll(self, every_source: bool = False) -> None:
        """Take one sample from every source that is due (all of them with
        ``every_source``); a failing source is noted, not fatal."""
        with self._lock:
            self._poll_locked(every_source)

    def _poll_locked(self, every_source: bool) -> None:
        now = self._clock()
        for source in self._sources:
            if not every_source and not self._due(source, now):
                continue
            self._last_read_s[id(source)] = now
            try:
                rows = source.read(now)
            except Exception as exc:  # telemetry must never end a measurement
                self.errors.append(f"{type(source).__name__}: {exc}")
                continue
            self._samples += [_with_phase(row, self._phase) for row in rows]

    def _due(self, source: TelemetrySource, now: float) -> bool:
        """Whether ``source``'s ``min_interval_s`` (if it has one) has passed since its last
        read."""
        last = self._last_read_s.get(id(source))
        return last is None or now - last >= getattr(source, "min_interval_s", 0.0)

    def since(self, timestamp_s: float) -> list[TelemetrySample]:
        """Samples taken at or after ``timestamp_s`` (on the poller's clock)."""
        with self._lock:
            return [s for s in self._samples if s.timestamp_s >= timestamp_s]

    def start(self) -> None:
        """Begin sampling in the background."""
        self._thread = threading.Thread(target=self._loop, name="llem-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> list[TelemetrySample]:
        """Stop sampling and return every sample taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return list(self._samples)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._interval_s)


def _with_phase(sample: TelemetrySample, phase: str) -> TelemetrySample:
    return TelemetrySample(**{**sample.__dict__, "phase": phase})


def summarise(samples: Sequence[TelemetrySample], phase: str, interval_ms: int) -> TelemetrySummary:
    """Power, temperature, throttling and utilisation over the samples of one phase (the
    contention rows are not a device's: ``harness.contention`` summarises them)."""
    rows = [s for s in samples if s.phase == phase and s.device != CONTENTION_DEVICE]
    power = [s.power_w for s in rows if s.power_w is not None]
    temps = _per_device_temperatures(rows)
    throttled = [s.throttled for s in rows if s.throttled is not None]
    utilisation = [s.utilisation_pct for s in rows if s.utilisation_pct is not None]
    return TelemetrySummary(
        interval_ms=interval_ms,
        n_samples=len(rows),
        devices=sorted({s.device for s in rows}),
        mean_power_w=sum(power) / len(power) if power else None,
        max_power_w=max(power) if power else None,
        max_temperature_c=max((t for ts in temps.values() for t in ts), default=None),
        temperature_drift_c=max((ts[-1] - ts[0] for ts in temps.values()), default=None),
        throttled_fraction=sum(throttled) / len(throttled) if throttled else None,
        mean_utilisation_pct=sum(utilisation) / len(utilisation) if utilisation else None,
    )


def _per_device_temperatures(rows: Sequence[TelemetrySample]) -> dict[str, list[float]]:
    temps: dict[str, list[float]] = {}
    for row in rows:
        if row.temperature_c is not None:
            temps.setdefault(row.device, []).append(row.temperature_c)
    return temps
