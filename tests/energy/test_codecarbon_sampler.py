"""CodeCarbon sampler: a real offline run here, and fakes for the ways CodeCarbon fails."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.codecarbon import INSTALL_HINT, J_PER_KWH, CodeCarbonSampler, probe
from llenergymeasure.energy.rapl import probe as probe_rapl
from llenergymeasure.errors import DependencyError, EnergySamplerError
from llenergymeasure.testing.fake_energy import FakeClock


def test_real_offline_run_splits_cpu_and_ram_and_marks_estimates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("codecarbon")
    monkeypatch.chdir(tmp_path)  # CodeCarbon would write emissions.csv here if asked to
    sampler = CodeCarbonSampler(interval_ms=100, country_iso_code="FRA")
    sampler.start()
    _busy(0.3)

    reading = sampler.stop()

    assert reading.method == "codecarbon"
    assert reading.energy_total_j is not None and reading.energy_total_j > 0
    assert set(reading.energy_by_domain_j) >= {"cpu", "ram"}
    assert reading.energy_by_domain_j["cpu"] > 0 and reading.energy_by_domain_j["ram"] > 0
    assert reading.energy_total_j == pytest.approx(sum(reading.energy_by_domain_j.values()))
    assert reading.scope == list(reading.energy_by_domain_j)
    assert reading.duration_s >= 0.3  # the window encloses the work (no upper bound: CI stalls)
    assert reading.sample_count >= 2
    assert reading.is_estimate  # RAM is always modelled
    assert any(note.startswith("ram: estimated") for note in reading.notes)
    if not probe_rapl().available:
        assert any(
            note.startswith("cpu: estimated by CodeCarbon from TDP") for note in reading.notes
        )
    assert reading.co2_kg is not None and reading.co2_kg > 0
    assert any("France (FRA)" in note for note in reading.notes)
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert capfd.readouterr().err == ""  # CodeCarbon's logging silenced


class FakeTracker:
    """Stands in for OfflineEmissionsTracker; ``stop`` returns what the test sets."""

    def __init__(self, stop_result: float | None = 1e-6, hardware: list[Any] | None = None) -> None:
        self.stop_result = stop_result
        self._hardware = hardware or []
        self._power_measurement_count = 3
        self.force_carbon_intensity_g_co2e_kwh = None
        self.final_emissions_data: Any = None

    def get_detected_hardware(self) -> dict[str, Any]:
        return {}

    def start(self) -> None:
        pass

    def stop(self) -> float | None:
        if self.stop_result is not None:
            self.final_emissions_data = SimpleNamespace(
                cpu_energy=2 / J_PER_KWH,
                ram_energy=1 / J_PER_KWH,
                gpu_energy=0.0,
                emissions=self.stop_result,
                country_iso_code=None,
                country_name=None,
            )
        return self.stop_result


class CPU:
    """Named like CodeCarbon's CPU class, which the sampler classifies by name and mode."""

    def __init__(self, mode: str) -> None:
        self._mode = mode
        self._tdp = 65


class RAM:
    pass


class GPU:
    pass


def test_stop_returning_none_is_an_error(clock: FakeClock) -> None:
    sampler = CodeCarbonSampler(clock=clock, tracker_factory=lambda: FakeTracker(None))
    sampler.start()

    with pytest.raises(EnergySamplerError, match="returned no result"):
        sampler.stop()


def test_an_exception_codecarbon_swallows_is_raised(clock: FakeClock) -> None:
    suppress = pytest.importorskip("codecarbon.core.util").suppress

    class FailingTracker(FakeTracker):
        @suppress(Exception)  # what CodeCarbon wraps start/stop in: log and return None
        def start(self) -> None:
            raise RuntimeError("no hardware")

    sampler = CodeCarbonSampler(clock=clock, tracker_factory=FailingTracker)

    with pytest.raises(EnergySamplerError, match=r"during start.*no hardware") as info:
        sampler.start()
    assert isinstance(info.value.__cause__, RuntimeError)


def test_an_exception_codecarbon_raises_is_translated(clock: FakeClock) -> None:
    class BrokenTracker(FakeTracker):
        def stop(self) -> float | None:
            raise KeyError("cpu_energy")

    sampler = CodeCarbonSampler(clock=clock, tracker_factory=BrokenTracker)
    sampler.start()

    with pytest.raises(EnergySamplerError, match="during stop"):
        sampler.stop()


def test_reading_converts_kwh_and_classifies_each_domain(clock: FakeClock) -> None:
    hardware = [CPU("intel_rapl"), RAM(), GPU()]
    sampler = CodeCarbonSampler(clock=clock, tracker_factory=lambda: FakeTracker(hardware=hardware))
    sampler.start()
    clock.now_s += 2.0

    reading = sampler.stop()

    assert reading.energy_by_domain_j == {
        "cpu": pytest.approx(2.0),
        "ram": pytest.approx(1.0),
        "gpu": 0.0,  # tracked, so reported even at zero
    }
    assert reading.duration_s == 2.0
    assert reading.sample_count == 3
    assert reading.notes[0] == "cpu: measured by CodeCarbon from RAPL counters"
    assert reading.notes[1].startswith("ram: estimated")
    assert reading.notes[2].startswith("gpu: measured")
    assert reading.is_estimate  # the RAM part is modelled


def test_only_a_total_so_no_timeline_and_a_note_saying_so(clock: FakeClock) -> None:
    sampler = CodeCarbonSampler(clock=clock, tracker_factory=FakeTracker)
    sampler.start()

    reading = sampler.stop()

    assert reading.timeline is None
    assert reading.notes[-1] == (
        "codecarbon reports only a total: sub-window (steady-state) energy cannot be computed"
    )


def test_cpu_load_mode_is_an_estimate_and_untracked_gpu_is_left_out(clock: FakeClock) -> None:
    sampler = CodeCarbonSampler(
        clock=clock, tracker_factory=lambda: FakeTracker(hardware=[CPU("cpu_load"), RAM()])
    )
    sampler.start()

    reading = sampler.stop()

    assert reading.scope == ["cpu", "ram"]
    assert reading.is_estimate
    assert reading.notes[0].startswith("cpu: estimated by CodeCarbon from TDP x CPU load (TDP 65 W")


def test_no_country_means_no_co2(clock: FakeClock) -> None:
    sampler = CodeCarbonSampler(clock=clock, tracker_factory=FakeTracker)
    sampler.start()

    reading = sampler.stop()

    assert reading.co2_kg is None
    assert any(note.startswith("co2: not reported") for note in reading.notes)


def test_probe_and_constructor_without_codecarbon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)

    availability = probe()

    assert not availability.available
    assert INSTALL_HINT in availability.reason
    with pytest.raises(DependencyError, match="codecarbon"):
        CodeCarbonSampler()


def test_start_twice_and_stop_before_start_are_errors(clock: FakeClock) -> None:
    sampler = CodeCarbonSampler(clock=clock, tracker_factory=FakeTracker)
    with pytest.raises(EnergySamplerError, match="before start"):
        sampler.stop()
    sampler.start()
    with pytest.raises(EnergySamplerError, match="twice"):
        sampler.start()


def test_is_an_energy_sampler(clock: FakeClock) -> None:
    assert isinstance(CodeCarbonSampler(clock=clock, tracker_factory=FakeTracker), EnergySampler)


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
