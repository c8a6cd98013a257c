"""Idle baseline power: measured with nothing running, cached per machine and sampler.

``energy_adjusted_j = energy_total_j - baseline_power_w x duration_s`` removes what the
devices draw when idle, leaving the energy attributable to the workload.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.errors import describe_os_error
from llenergymeasure.fileio import write_text_atomically
from llenergymeasure.paths import cache_dir

logger = logging.getLogger(__name__)

BUSY_BASELINE_PCT = 25.0
"""CPUs busier than this (all processes, % of all CPUs' time) during an idle baseline that
counts CPU-side energy: it was not idle (a ``baseline_stale`` warning; never reused from the
cache)."""


@dataclass(frozen=True)
class Baseline:
    """Mean idle power over a baseline window.

    Attributes:
        power_w: total idle power in watts.
        power_by_domain_w: the same per device/domain.
        duration_s: how long the baseline window lasted.
        measured_at: when it was measured (UNIX time, seconds).
        method: the sampler that measured it.
        cpu_busy_pct: how busy the machine's CPUs were meanwhile (all processes, %), or None
            when unknown; a busy machine makes the "idle" power too high.
        from_cache: True when reused from the cache rather than measured for this run.
    """

    power_w: float
    power_by_domain_w: dict[str, float]
    duration_s: float
    measured_at: float
    method: str
    cpu_busy_pct: float | None = None
    from_cache: bool = False

    def age_s(self, now: float) -> float:
        """Seconds since the baseline was measured."""
        return now - self.measured_at

    @property
    def taken_busy(self) -> bool:
        """True when it counts CPU-side energy (a domain other than a GPU) and the CPUs were
        more than :data:`BUSY_BASELINE_PCT` busy meanwhile: its idle power is too high."""
        cpu_side = any(not name.startswith("gpu") for name in self.power_by_domain_w)
        busy = self.cpu_busy_pct
        return cpu_side and busy is not None and busy > BUSY_BASELINE_PCT


def measure_baseline(
    sampler: EnergySampler, duration_s: float, sleep: Callable[[float], None]
) -> Baseline | None:
    """Measure idle power for ``duration_s``; None when the sampler measures no energy."""
    cpu_before = psutil.cpu_times()
    sampler.start()
    sleep(duration_s)
    reading = sampler.stop()
    cpu_busy = cpu_busy_pct(cpu_before, psutil.cpu_times(), duration_s * (psutil.cpu_count() or 1))
    if reading.energy_total_j is None or reading.duration_s <= 0:
        return None
    return Baseline(
        power_w=reading.energy_total_j / reading.duration_s,
        power_by_domain_w={
            k: v / reading.duration_s for k, v in reading.energy_by_domain_j.items()
        },
        duration_s=reading.duration_s,
        measured_at=time.time(),
        method=reading.method,
        cpu_busy_pct=cpu_busy,
    )


def cpu_busy_pct(before: Any, after: Any, expected_cpu_s: float) -> float | None:
    """Share of CPU time spent not idle between two ``psutil.cpu_times()``; None when they
    cover under half the ``expected_cpu_s`` (wall time x CPUs): the wait was not real."""
    total = float(sum(after) - sum(before))
    if total < 0.5 * expected_cpu_s:
        return None
    idle = float(sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in ("idle", "iowait")))
    return max(0.0, min(100.0, 100.0 * (1.0 - idle / total)))


class BaselineCache:
    """A JSON file of baselines keyed by host and sampler, written atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "baselines.json"

    @staticmethod
    def key(sampler_name: str) -> str:
        """Baselines belong to one machine and one way of measuring."""
        return f"{socket.gethostname()}:{sampler_name}"

    def get(self, key: str, ttl_s: float, now: float) -> Baseline | None:
        """The cached baseline if it is younger than ``ttl_s`` and was taken at idle: one
        taken on busy CPUs (:attr:`Baseline.taken_busy`) is measured again instead of
        repeating its ``baseline_stale`` warning until it expires."""
        entry = self._load().get(key)
        try:
            baseline = Baseline(**{**entry, "from_cache": True}) if entry else None
        except TypeError:  # written by another version: measure afresh
            return None
        if baseline is None or baseline.age_s(now) >= ttl_s:
            return None
        if baseline.taken_busy:
            logger.info(
                "the cached idle baseline was taken with the CPUs %.0f%% busy; measuring again",
                baseline.cpu_busy_pct,
            )
            return None
        return baseline

    def put(self, key: str, baseline: Baseline) -> None:
        """Store ``baseline`` under ``key`` (other keys are kept). The cache only saves time:
        a cache that cannot be written (full disk, read-only) is logged, never fatal."""
        entries = self._load()
        entries[key] = {k: v for k, v in asdict(baseline).items() if k != "from_cache"}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.path, json.dumps(entries, indent=2))
        except OSError as exc:
            logger.warning(
                "could not cache the idle baseline (%s); it is measured again next run",
                describe_os_error(exc),
            )

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
