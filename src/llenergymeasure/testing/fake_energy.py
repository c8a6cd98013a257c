"""Fakes for testing energy code on any machine: a powercap tree, a settable clock and a
scripted wait that drives a sampler's polling thread on that clock."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.energy.base import EnergyReading

# What many Intel CPUs report: about 262 kJ, so a counter wraps every ~20 min at 200 W.
DEFAULT_MAX_ENERGY_RANGE_UJ = 262_143_328_850


class FakePowercapTree:
    """A ``/sys/class/powercap`` tree written into a directory.

    Each package ``N`` gets a zone ``intel-rapl:N`` (``package-N``) with a ``core`` subzone
    ``intel-rapl:N:0`` and, when ``dram`` is True, a ``dram`` subzone ``intel-rapl:N:1``.
    With ``psys`` a platform zone ``intel-rapl:<packages>`` is added, which samplers must not
    count. Zones are addressed by directory name, e.g. ``"intel-rapl:0:1"``.

    Args:
        root: directory to write into (created if missing); pass it as the sampler's root.
        packages: number of CPU packages.
        dram: whether each package has a DRAM subzone.
        psys: whether to add a platform (psys) zone.
        max_energy_range_uj: where every counter wraps back to 0.
        start_uj: the counters' initial value.
    """

    def __init__(
        self,
        root: Path,
        *,
        packages: int = 1,
        dram: bool = True,
        psys: bool = False,
        max_energy_range_uj: int = DEFAULT_MAX_ENERGY_RANGE_UJ,
        start_uj: int = 0,
    ) -> None:
        self.root = root
        self.max_energy_range_uj = max_energy_range_uj
        self._write(root / "intel-rapl" / "enabled", "1")  # the control type, not a zone
        for n in range(packages):
            self._add_zone(f"intel-rapl:{n}", f"package-{n}", start_uj)
            self._add_zone(f"intel-rapl:{n}:0", "core", start_uj)
            if dram:
                self._add_zone(f"intel-rapl:{n}:1", "dram", start_uj)
        if psys:
            self._add_zone(f"intel-rapl:{packages}", "psys", start_uj)

    def energy_uj(self, zone: str) -> int:
        """The zone's counter as the kernel would report it."""
        return int((self.root / zone / "energy_uj").read_text())

    def set_energy_uj(self, zone: str, value_uj: int) -> None:
        """Set the zone's counter (must lie within 0..max_energy_range_uj)."""
        if not 0 <= value_uj <= self.max_energy_range_uj:
            raise ValueError(f"{value_uj} is outside 0..{self.max_energy_range_uj}")
        self._write(self.root / zone / "energy_uj", str(value_uj))

    def advance(self, zone: str, joules: float) -> None:
        """Add energy to the zone's counter, wrapping past ``max_energy_range_uj``."""
        value_uj = self.energy_uj(zone) + round(joules * 1_000_000)
        self.set_energy_uj(zone, value_uj % (self.max_energy_range_uj + 1))

    def _add_zone(self, zone: str, name: str, start_uj: int) -> None:
        self._write(self.root / zone / "name", name)
        self._write(self.root / zone / "max_energy_range_uj", str(self.max_energy_range_uj))
        self.set_energy_uj(zone, start_uj)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        # Write then rename, so a sampler polling in another thread never sees a half file.
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(f"{text}\n")
        partial.replace(path)


class FakeClock:
    """A monotonic clock (seconds) that moves only when ``now_s`` is changed."""

    def __init__(self, now_s: float = 0.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> float:
        """Move the clock on by ``seconds`` and return the new time."""
        self.now_s += seconds
        return self.now_s


class ConstantPowerSampler:
    """An energy sampler drawing ``power_w`` on one ``domain`` for as long as ``clock`` says
    the window lasted (no timeline), with ``sample_count`` reads."""

    name = "fake"

    def __init__(
        self, clock: FakeClock, power_w: float, domain: str = "dev0", sample_count: int = 10
    ) -> None:
        self.clock, self.power_w, self.domain = clock, power_w, domain
        self.sample_count = sample_count
        self.t0_s = 0.0

    def start(self) -> None:
        """Start the window at the clock's time."""
        self.t0_s = self.clock()

    def stop(self) -> EnergyReading:
        """``power_w`` × the window's duration."""
        duration_s = self.clock() - self.t0_s
        energy_j = self.power_w * duration_s
        return EnergyReading(
            "fake", [self.domain], energy_j, {self.domain: energy_j}, duration_s,
            self.sample_count,
        )  # fmt: skip


class ScriptedWait:
    """A sampler thread's wait (``Poller``'s ``wait``) that moves a :class:`FakeClock` instead
    of sleeping: ``ticks`` intervals pass, one per call, then the window stops.

    Attributes:
        waited_s: the timeout of every call, in order.
    """

    def __init__(self, clock: FakeClock, ticks: int) -> None:
        self.clock = clock
        self.left = ticks
        self.waited_s: list[float] = []

    def __call__(self, timeout_s: float) -> bool:
        self.waited_s.append(timeout_s)
        if self.left == 0:
            return True
        self.left -= 1
        self.clock.advance(timeout_s)
        return False
