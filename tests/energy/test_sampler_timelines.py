"""Every sampler that can keeps its reads as an EnergyTimeline: sub-window energy with a bound.

For each: points start at ``(t0, 0.0)`` and are in time order, the last cumulative value is the
domain's reported energy, the whole covered span gives the total, a sub-window of known
constant power gives power x duration within the bound, and more frequent reads give a
tighter bound. (CodeCarbon and null, which give None, are checked in their own tests.)
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llenergymeasure.devices import COUNTER_UPDATE_PERIOD_S, get_gpus
from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.energy.nvml import AVERAGE_POWER_WINDOW_S, NvmlSampler
from llenergymeasure.energy.rapl import RAPL_UPDATE_PERIOD_S, RaplSampler
from llenergymeasure.energy.timeline import (
    EnergyTimeline,
    IntervalEnergy,
    integrated,
    largest_stale_s,
)
from llenergymeasure.energy.zeus import ZeusSampler, zeus_method
from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml
from llenergymeasure.testing.fake_energy import FakeClock, FakePowercapTree, ScriptedWait
from llenergymeasure.testing.fake_zeus import FakeZeusSpec, install_fake_zeus


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def timeline_of(reading: EnergyReading) -> EnergyTimeline:
    """The reading's timeline, checked against the reading's own figures."""
    timeline = reading.timeline
    assert timeline is not None
    assert set(timeline.points) == set(reading.energy_by_domain_j)
    for domain, points in timeline.points.items():
        assert points[0][1] == 0.0
        assert [t for t, _ in points] == sorted(t for t, _ in points)
        assert [e for _, e in points] == sorted(e for _, e in points)
        assert points[-1][1] == pytest.approx(reading.energy_by_domain_j[domain])
    start_s = max(points[0][0] for points in timeline.points.values())
    end_s = min(points[-1][0] for points in timeline.points.values())
    whole = timeline.interval(start_s, end_s)
    assert whole is not None and whole.uncertainty_j >= 0
    assert whole.energy_j == pytest.approx(reading.energy_total_j)
    return timeline


def within_bound(energy: IntervalEnergy | None, expected_j: float) -> IntervalEnergy:
    assert energy is not None and energy.uncertainty_j >= 0
    assert abs(energy.energy_j - expected_j) <= energy.uncertainty_j + 1e-9
    return energy


# --- NVML ------------------------------------------------------------------------------------


def nvml_window(
    specs: list[FakeGpuSpec], clock: FakeClock, seconds: float, interval_s: float = 0.1
) -> EnergyReading:
    with install_fake_pynvml(specs, clock=clock):
        sampler = NvmlSampler(get_gpus(), round(interval_s * 1000), clock, background=False)
        sampler.start()
        for _ in range(round(seconds / interval_s)):
            clock.advance(interval_s)
            sampler.poll()
        return sampler.stop()


def test_nvml_keeps_every_counter_read(clock: FakeClock) -> None:
    reading = nvml_window([FakeGpuSpec(power_w=250.0)], clock, seconds=4.0)

    timeline = timeline_of(reading)
    points = timeline.points["gpu:0"]
    assert len(points) == 42 and points[0] == (0.0, 0.0)  # start, 40 polls, stop
    assert points[-1] == pytest.approx((4.0, 1000.0))
    assert timeline.stale_s == COUNTER_UPDATE_PERIOD_S
    assert timeline.source == "nvml: gpu:0 total-energy counter"
    within_bound(timeline.interval(1.03, 2.97), 250.0 * 1.94)


def test_nvml_bound_shrinks_with_more_frequent_reads(clock: FakeClock) -> None:
    coarse = nvml_window([FakeGpuSpec(power_w=250.0)], clock, seconds=4.0, interval_s=0.5)
    fine = nvml_window([FakeGpuSpec(power_w=250.0)], FakeClock(), seconds=4.0, interval_s=0.05)

    coarse_j = within_bound(timeline_of(coarse).interval(1.03, 2.97), 250.0 * 1.94)
    fine_j = within_bound(timeline_of(fine).interval(1.03, 2.97), 250.0 * 1.94)
    assert fine_j.uncertainty_j < coarse_j.uncertainty_j


def test_nvml_without_a_counter_integrates_power(clock: FakeClock) -> None:
    schedule = [(0.0, 100.0), (1.05, 300.0)]  # a step between two polls
    spec = FakeGpuSpec(power_w=schedule, energy_counter=False)
    with install_fake_pynvml([spec], clock=clock) as fake:
        sampler = NvmlSampler(get_gpus(), 100, clock, background=False)
        sampler.start()
        for _ in range(20):
            clock.advance(0.1)
            sampler.poll()
        reading = sampler.stop()

    timeline = timeline_of(reading)
    assert timeline.stale_s == 0.0
    assert timeline.source == "nvml: gpu:0 integrated instant power"
    energy = within_bound(timeline.interval(0.5, 1.5), fake.energy_j(0, 0.5, 1.5))
    assert energy.energy_j == pytest.approx(100 * 0.55 + 300 * 0.45)


def test_nvml_averaged_power_is_as_stale_as_its_window(clock: FakeClock) -> None:
    spec = FakeGpuSpec(power_w=150.0, energy_counter=False, power_instant=False)
    reading = nvml_window([spec], clock, seconds=3.0)

    assert timeline_of(reading).stale_s == AVERAGE_POWER_WINDOW_S


def test_nvml_mixed_devices_take_the_larger_staleness_and_say_so(clock: FakeClock) -> None:
    specs = [FakeGpuSpec(power_w=300.0), FakeGpuSpec(power_w=100.0, energy_counter=False)]
    reading = nvml_window(specs, clock, seconds=2.0)

    timeline = timeline_of(reading)
    assert timeline.stale_s == COUNTER_UPDATE_PERIOD_S
    assert "gpu:0 total-energy counter; gpu:1 integrated instant power" in timeline.source
    assert timeline.notes == [
        "stale_s is the largest of the domains' (gpu:0 0.1 s, gpu:1 0 s): it bounds them all"
    ]
    within_bound(timeline.interval(0.5, 1.5), 400.0)


def test_nvml_a_failed_gpu_has_points_up_to_its_failure(clock: FakeClock) -> None:
    specs = [FakeGpuSpec(power_w=200.0, fail_at_s=0.95), FakeGpuSpec(power_w=100.0)]
    reading = nvml_window(specs, clock, seconds=2.0)

    timeline = reading.timeline
    assert timeline is not None
    assert timeline.points["gpu:0"][-1] == pytest.approx((0.9, 180.0))
    assert timeline.points["gpu:1"][-1] == pytest.approx((2.0, 200.0))
    assert timeline.interval(0.5, 1.5) is None  # gpu:0 was not read after 0.9 s
    within_bound(timeline.interval(0.2, 0.8), 300.0 * 0.6)
    assert any("gpu:0: reads end at 0.90 s (lost" in note for note in timeline.notes)


def test_nvml_a_gpu_never_read_is_left_out_and_none_measured_gives_no_timeline(
    clock: FakeClock,
) -> None:
    with install_fake_pynvml([FakeGpuSpec(fail_after_calls=1)], clock=clock):
        sampler = NvmlSampler(get_gpus(), 100, clock, background=False)
        sampler.start()
        clock.advance(1.0)
        reading = sampler.stop()

    assert reading.energy_total_j is None and reading.timeline is None


def test_nvml_a_counter_that_went_back_mid_window_is_not_trusted(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A driver reload resets the counter; here it ends above its start value, which the
    # first-to-last delta alone would have reported as energy.
    counter_mj = iter([5_000, 6_000, 1_000, 9_000])
    with install_fake_pynvml([FakeGpuSpec(power_w=100.0)], clock=clock):
        (gpu,) = get_gpus()
        monkeypatch.setattr(gpu, "total_energy_mj", lambda: next(counter_mj))
        sampler = NvmlSampler([gpu], 100, clock, background=False)
        sampler.start()
        for _ in range(3):
            clock.advance(1.0)
            sampler.poll()
        reading = sampler.stop()

    assert reading.energy_total_j == pytest.approx(300.0)  # the integrated power instead
    assert timeline_of(reading).source == "nvml: gpu:0 integrated instant power"


def test_nvml_background_thread_reads_go_on_the_timeline(clock: FakeClock) -> None:
    wait = ScriptedWait(clock, ticks=5)
    with install_fake_pynvml([FakeGpuSpec(power_w=100.0)], clock=clock):
        sampler = NvmlSampler(get_gpus(), interval_ms=10, clock=clock, wait=wait)
        sampler.start()
        reading = sampler.stop()

    points = timeline_of(reading).points["gpu:0"]
    assert [t for t, _ in points] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.05])


# --- Zeus ------------------------------------------------------------------------------------


def zeus_window(
    spec: FakeZeusSpec, clock: FakeClock, seconds: float, interval_s: float = 0.1
) -> EnergyReading:
    with install_fake_zeus(spec, clock=clock):
        sampler = ZeusSampler(interval_ms=round(interval_s * 1000), clock=clock, background=False)
        sampler.start()
        for _ in range(round(seconds / interval_s)):
            clock.advance(interval_s)
            sampler.poll()
        return sampler.stop()


def test_zeus_polls_gpu_and_rapl_counters(clock: FakeClock) -> None:
    spec = FakeZeusSpec(gpu_power_w=(300.0, 100.0), cpu_power_w=(50.0,), dram_power_w=(10.0,))
    reading = zeus_window(spec, clock, seconds=2.0)

    timeline = timeline_of(reading)
    assert set(timeline.points) == {"gpu:0", "gpu:1", "cpu:package-0", "dram:package-0"}
    assert all(len(points) == 22 for points in timeline.points.values())  # start, 20, stop
    assert timeline.points["gpu:0"][-1] == pytest.approx((2.0, 600.0))
    assert timeline.stale_s == COUNTER_UPDATE_PERIOD_S
    assert timeline.source == (
        "zeus: gpu:0 total-energy counter; gpu:1 total-energy counter; package-0 RAPL counters"
    )
    assert "package-0 0.001 s" in timeline.notes[1]
    energy = within_bound(timeline.interval(0.55, 1.45), 460.0 * 0.9)
    assert energy.by_domain_j["dram:package-0"] == pytest.approx(9.0)


def test_zeus_bound_shrinks_with_more_frequent_reads(clock: FakeClock) -> None:
    spec = FakeZeusSpec(gpu_power_w=(300.0,))
    coarse = zeus_window(spec, clock, seconds=2.0, interval_s=0.5)
    fine = zeus_window(spec, FakeClock(), seconds=2.0, interval_s=0.05)

    coarse_j = within_bound(timeline_of(coarse).interval(0.55, 1.45), 300.0 * 0.9)
    fine_j = within_bound(timeline_of(fine).interval(0.55, 1.45), 300.0 * 0.9)
    assert fine_j.uncertainty_j < coarse_j.uncertainty_j


def test_zeus_integrates_the_power_of_a_gpu_without_a_counter(clock: FakeClock) -> None:
    reading = zeus_window(FakeZeusSpec(gpu_power_w=(200.0,), old_gpus=(0,)), clock, 1.0)

    timeline = timeline_of(reading)
    assert timeline.source == "zeus: gpu:0 integrated instant power"
    assert timeline.stale_s == 0.0
    within_bound(timeline.interval(0.25, 0.75), 100.0)


def test_zeus_background_thread_polls_at_the_interval(clock: FakeClock) -> None:
    wait = ScriptedWait(clock, ticks=4)
    with install_fake_zeus(FakeZeusSpec(gpu_power_w=(100.0,)), clock=clock):
        sampler = ZeusSampler(interval_ms=250, clock=clock, wait=wait)
        sampler.start()
        reading = sampler.stop()

    assert wait.waited_s == [0.25] * 5
    points = timeline_of(reading).points["gpu:0"]
    assert [t for t, _ in points] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    assert reading.energy_total_j == pytest.approx(100.0)


def test_zeus_skips_failed_reads_and_notes_them(clock: FakeClock) -> None:
    with install_fake_zeus(FakeZeusSpec(gpu_power_w=(100.0,)), clock=clock) as fake:
        sampler = ZeusSampler(clock=clock, background=False)
        sampler.start()
        clock.advance(0.5)
        fake.lose_gpu(0)
        sampler.poll()
        fake.recover_gpu(0)
        clock.advance(0.5)
        reading = sampler.stop()

    timeline = timeline_of(reading)
    assert [t for t, _ in timeline.points["gpu:0"]] == [0.0, 1.0]
    assert any("gpu:0: 1 reads failed and were skipped" in n for n in timeline.notes)
    assert any("ZeusGPULostError" in n for n in timeline.notes)


def test_zeus_without_a_measurement_has_no_timeline(clock: FakeClock) -> None:
    with install_fake_zeus(FakeZeusSpec(fail_end_window=True), clock=clock):
        sampler = ZeusSampler(clock=clock, background=False)
        sampler.start()
        clock.advance(1.0)
        assert sampler.stop().timeline is None


def test_zeus_before_0_13_spells_the_methods_in_camel_case() -> None:
    legacy = SimpleNamespace(getTotalEnergyConsumption=lambda index: 42)
    current = SimpleNamespace(get_total_energy_consumption=lambda index: 7)

    read = zeus_method(legacy, "get_total_energy_consumption", "getTotalEnergyConsumption")
    assert read(0) == 42
    assert zeus_method(current, "get_total_energy_consumption", "getTotalEnergyConsumption")(0) == 7


# --- RAPL ------------------------------------------------------------------------------------

NEVER_MS = 3_600_000  # background interval long enough that only the test's polls count


def rapl_window(
    root: Path, tree: FakePowercapTree, clock: FakeClock, seconds: float, interval_s: float
) -> EnergyReading:
    """Package 0 at 40 W and its DRAM at 5 W, polled every ``interval_s``."""
    sampler = RaplSampler(root, interval_ms=NEVER_MS, clock=clock)
    sampler.start()
    for _ in range(round(seconds / interval_s)):
        clock.advance(interval_s)
        tree.advance("intel-rapl:0", 40.0 * interval_s)
        tree.advance("intel-rapl:0:1", 5.0 * interval_s)
        sampler.poll()
    return sampler.stop()


def test_rapl_keeps_every_read_across_wraparounds(tmp_path: Path, clock: FakeClock) -> None:
    tree = FakePowercapTree(tmp_path, max_energy_range_uj=10_000_000)  # wraps every 10 J
    reading = rapl_window(tree.root, tree, clock, seconds=2.0, interval_s=0.1)

    timeline = timeline_of(reading)
    assert timeline.points["cpu:package-0"][-1] == pytest.approx((2.0, 80.0))  # 8 wraps
    assert len(timeline.points["dram:package-0"]) == 22
    assert timeline.stale_s == RAPL_UPDATE_PERIOD_S
    within_bound(timeline.interval(0.55, 1.45), 45.0 * 0.9)


def test_rapl_bound_shrinks_with_more_frequent_reads(tmp_path: Path, clock: FakeClock) -> None:
    coarse_tree = FakePowercapTree(tmp_path / "coarse")
    fine_tree = FakePowercapTree(tmp_path / "fine")
    coarse = rapl_window(coarse_tree.root, coarse_tree, clock, seconds=2.0, interval_s=0.5)
    fine = rapl_window(fine_tree.root, fine_tree, FakeClock(), seconds=2.0, interval_s=0.05)

    coarse_j = within_bound(timeline_of(coarse).interval(0.55, 1.45), 45.0 * 0.9)
    fine_j = within_bound(timeline_of(fine).interval(0.55, 1.45), 45.0 * 0.9)
    assert fine_j.uncertainty_j < coarse_j.uncertainty_j


def test_rapl_a_failed_read_adds_no_point_to_any_domain(
    tree: FakePowercapTree, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampler = RaplSampler(tree.root, interval_ms=NEVER_MS, clock=clock)
    sampler.start()
    clock.advance(1.0)
    tree.advance("intel-rapl:0", 10.0)
    read_text = Path.read_text

    def dram_unreadable(path: Path, *args: object, **kwargs: object) -> str:
        if path.parent.name == "intel-rapl:1:1":  # the last domain read
            raise OSError("gone")
        return read_text(path)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_text", dram_unreadable)
        with pytest.raises(Exception, match="gone"):
            sampler.poll()
    reading = sampler.stop()

    timeline = timeline_of(reading)
    assert all(len(points) == 2 for points in timeline.points.values())
    assert reading.energy_by_domain_j["cpu:package-0"] == pytest.approx(10.0)


# --- helpers -------------------------------------------------------------------------------------


def test_integrated_is_the_running_trapezoid() -> None:
    samples = [(1.0, 100.0), (1.5, 300.0), (2.5, 300.0)]

    assert integrated(samples) == [(1.0, 0.0), (1.5, 100.0), (2.5, 400.0)]
    assert integrated([]) == []


def test_largest_stale_s_notes_only_a_mix() -> None:
    assert largest_stale_s({"a": 0.1, "b": 0.1}) == (0.1, [])
    assert largest_stale_s({}) == (0.0, [])
    stale_s, notes = largest_stale_s({"a": 0.1, "b": 0.001})
    assert stale_s == 0.1 and notes == [
        "stale_s is the largest of the domains' (a 0.1 s, b 0.001 s): it bounds them all"
    ]
