"""Linux powercap (RAPL) sampler: CPU package and DRAM energy counters, wraparound handled.

The kernel exposes one zone per CPU package (``intel-rapl:N``, named ``package-N``; AMD CPUs use
the same names) with subzones such as ``core``, ``uncore`` and ``dram`` (``intel-rapl:N:M``).
``core`` and ``uncore`` are already inside the package figure, and ``psys`` covers the whole
platform, so only package and DRAM zones are summed.

Timeline: every read (the one at ``start``, each background poll, the final one) is kept per
domain (``cpu:package-N``, ``dram:package-N``) as ``(seconds from start, joules since start)``,
wraparounds included, so any sub-window's energy can be taken from the reading's
:class:`EnergyTimeline`. Its ``stale_s`` is :data:`RAPL_UPDATE_PERIOD_S`: the hardware refreshes
the counters about every millisecond, so a read is at most that old.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.energy.base import Availability, Clock, EnergyReading
from llenergymeasure.energy.polling import Poller
from llenergymeasure.energy.timeline import EnergyPoint, EnergyTimeline
from llenergymeasure.errors import EnergySamplerError, SamplerUnavailableError

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
_UJ_PER_J = 1_000_000


@dataclass(frozen=True)
class RaplDomain:
    """One energy counter that is summed: a CPU package or its DRAM subzone.

    Attributes:
        key: scope key, e.g. ``cpu:package-0`` or ``dram:package-0``.
        energy_path: the zone's ``energy_uj`` file.
        max_energy_range_uj: the counter's largest value; it wraps to 0 after it.
    """

    key: str
    energy_path: Path
    max_energy_range_uj: int


def discover_domains(root: Path = DEFAULT_POWERCAP_ROOT) -> list[RaplDomain]:
    """List the package and DRAM counters under a powercap root, in package order.

    Raises:
        EnergySamplerError: a zone's ``name`` or ``max_energy_range_uj`` cannot be read.
    """
    domains: list[RaplDomain] = []
    for index, zone in _indexed(root, "intel-rapl:"):
        package = _read_text(zone / "name")
        if not package.startswith("package-"):
            continue  # psys: the whole platform, which already contains the packages
        domains.append(_domain(f"cpu:{package}", zone))
        domains.extend(
            _domain(f"dram:{package}", sub)
            for _, sub in _indexed(root, f"intel-rapl:{index}:")
            if _read_text(sub / "name") == "dram"
        )
    return domains


def probe(root: Path = DEFAULT_POWERCAP_ROOT) -> Availability:
    """Say whether RAPL counters can be read under ``root``, and why not when they cannot."""
    if not root.is_dir():
        return Availability(
            False, f"no powercap interface at {root} (not Linux, or hidden in a VM/container)"
        )
    try:
        domains = discover_domains(root)
        if not domains:
            return Availability(False, f"no RAPL package zones (intel-rapl:N) under {root}")
        for domain in domains:
            read_energy_uj(domain.energy_path)
    except EnergySamplerError as exc:
        return Availability(False, str(exc))
    return Availability(True)


def read_energy_uj(path: Path) -> int:
    """Read one ``energy_uj`` counter.

    Raises:
        EnergySamplerError: the file cannot be read; permission problems say how to fix them.
    """
    try:
        return int(path.read_text())
    except PermissionError as exc:
        raise EnergySamplerError(
            f"permission denied reading {path}: RAPL counters are root-only since Linux 5.10; "
            "run as root or grant read access (e.g. chmod o+r on the energy_uj files)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise EnergySamplerError(f"cannot read RAPL counter {path}: {exc}") from exc


class RaplSampler:
    """Sums CPU package and DRAM energy from powercap counters over one window.

    A daemon thread reads every counter each ``interval_ms`` and accumulates the deltas, so a
    counter may wrap any number of times during the window as long as it wraps at most once
    between two reads (a wrap takes minutes even at full power).

    Args:
        root: the powercap directory (in tests, a
            :class:`~llenergymeasure.testing.fake_energy.FakePowercapTree`).
        interval_ms: time between background reads.
        clock: monotonic clock in seconds for the window's duration.

    Raises:
        SamplerUnavailableError: no package zone exists under ``root``.
    """

    name = "rapl"

    def __init__(
        self,
        root: Path = DEFAULT_POWERCAP_ROOT,
        interval_ms: int = 100,
        clock: Clock = time.monotonic,
    ) -> None:
        domains = discover_domains(root)
        if not domains:
            raise SamplerUnavailableError(f"no RAPL package zones under {root}")
        self._domains = domains
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._lock = threading.Lock()
        self._poller = Poller(self._poll_in_background, self._interval_s, "llem-rapl")
        self._last_uj: dict[str, int] = {}
        self._total_uj = dict.fromkeys((d.key for d in domains), 0)
        self._points: dict[str, list[EnergyPoint]] = {d.key: [] for d in domains}
        self._read_count = 0
        self._poll_errors: list[str] = []
        self._start_s: float | None = None

    @property
    def sample_count(self) -> int:
        """Counter reads taken so far in this window (each read covers every domain)."""
        return self._read_count

    def start(self) -> None:
        """Take the first reading of every counter and start the background reader."""
        if self._start_s is not None:
            raise EnergySamplerError("RaplSampler.start() called twice; use one per window")
        self._last_uj = self._read_all_uj()
        self._read_count = 1
        self._start_s = self._clock()
        for points in self._points.values():
            points.append((0.0, 0.0))
        self._poller.start()

    def poll(self) -> None:
        """Read every counter now, add the deltas since the previous read and keep the point.

        Either every counter is read and counted or, when one read fails, none is.
        The background thread calls this; tests call it to step the sampler deterministically.

        Raises:
            EnergySamplerError: a counter cannot be read, or the window has not started.
        """
        if self._start_s is None:
            raise EnergySamplerError("RaplSampler.poll() called before start()")
        with self._lock:
            now_uj = self._read_all_uj()
            t_s = self._clock() - self._start_s
            for domain in self._domains:
                self._total_uj[domain.key] += counter_delta_uj(
                    self._last_uj[domain.key], now_uj[domain.key], domain.max_energy_range_uj
                )
                self._points[domain.key].append((t_s, self._total_uj[domain.key] / _UJ_PER_J))
            self._last_uj = now_uj
            self._read_count += 1

    def stop(self) -> EnergyReading:
        """Stop the background reader, take a final reading and return the window's energy.

        Raises:
            EnergySamplerError: ``start`` was not called, or the final read failed.
        """
        if self._start_s is None:
            raise EnergySamplerError("RaplSampler.stop() called before start()")
        duration_s = self._clock() - self._start_s
        self._poller.stop()
        self.poll()
        by_domain_j = {key: uj / _UJ_PER_J for key, uj in self._total_uj.items()}
        total_j = sum(by_domain_j.values())
        return EnergyReading(
            method=self.name,
            scope=list(by_domain_j),
            energy_total_j=total_j,
            energy_by_domain_j=by_domain_j,
            duration_s=duration_s,
            sample_count=self._read_count,
            notes=self._notes(),
            uncertainty_j=rapl_uncertainty_j(total_j, duration_s),
            timeline=EnergyTimeline(
                points={key: list(points) for key, points in self._points.items()},
                stale_s=RAPL_UPDATE_PERIOD_S,
                source="rapl energy_uj counters (wraparounds counted)",
            ),
        )

    def _read_all_uj(self) -> dict[str, int]:
        return {d.key: read_energy_uj(d.energy_path) for d in self._domains}

    def _poll_in_background(self) -> None:
        try:
            self.poll()
        except EnergySamplerError as exc:
            # A missed read loses nothing unless the counter wraps twice before the next
            # one, so keep polling and report the failure on the reading.
            if str(exc) not in self._poll_errors:
                self._poll_errors.append(str(exc))

    def _notes(self) -> list[str]:
        notes = ["RAPL counts CPU packages and DRAM only; GPUs and the rest are not included"]
        if not any(key.startswith("dram:") for key in self._total_uj):
            notes.append("no DRAM zone is exposed here, so memory energy is not included")
        notes.extend(
            f"background read failed (later reads recovered): {e}" for e in self._poll_errors
        )
        return notes


RAPL_UPDATE_PERIOD_S = 0.001
"""RAPL energy counters are refreshed about every millisecond (Intel SDM vol. 3B, 15.10)."""


def rapl_uncertainty_j(energy_j: float, duration_s: float) -> float | None:
    """Bound from counter staleness at both window ends: 2 x update period x mean power."""
    if duration_s <= 0:
        return None
    return 2 * RAPL_UPDATE_PERIOD_S * energy_j / duration_s


def counter_delta_uj(previous_uj: int, now_uj: int, max_energy_range_uj: int) -> int:
    """Energy between two reads of a counter that wraps to 0 after ``max_energy_range_uj``."""
    return (now_uj - previous_uj) % (max_energy_range_uj + 1)


def _indexed(root: Path, prefix: str) -> list[tuple[int, Path]]:
    """Entries named ``prefix<integer>`` under root, sorted numerically (10 after 9)."""
    zones = [(entry.name[len(prefix) :], entry) for entry in root.glob(f"{prefix}*")]
    return sorted((int(suffix), entry) for suffix, entry in zones if suffix.isdigit())


def _domain(key: str, zone: Path) -> RaplDomain:
    max_range = _read_text(zone / "max_energy_range_uj")
    if not max_range.isdigit():
        raise EnergySamplerError(f"bad max_energy_range_uj in {zone}: {max_range!r}")
    return RaplDomain(key, zone / "energy_uj", int(max_range))


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise EnergySamplerError(f"cannot read {path}: {exc}") from exc
