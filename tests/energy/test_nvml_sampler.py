"""The NVML sampler on the fake pynvml: counters, integration, fallbacks, failures, bounds."""

from __future__ import annotations

import pytest

from llenergymeasure.devices import get_gpus
from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.energy.nvml import (
    NvmlSampler,
    counter_bound_j,
    integration_bound_j,
    probe,
    select_gpus,
    trapezoid_j,
)
from llenergymeasure.errors import EnergySamplerError, SamplerUnavailableError
from llenergymeasure.testing import FakeGpuSpec, FakeNvml, install_fake_pynvml
from llenergymeasure.testing import fake_pynvml as fp
from llenergymeasure.testing.fake_energy import FakeClock, ScriptedWait


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def measure(
    specs: list[FakeGpuSpec], clock: FakeClock, seconds: float, interval_s: float = 0.1
) -> tuple[EnergyReading, FakeNvml]:
    """Run one window of ``seconds``, polling every ``interval_s`` on the fake clock."""
    with install_fake_pynvml(specs, clock=clock) as fake:
        sampler = NvmlSampler(get_gpus(), round(interval_s * 1000), clock, background=False)
        sampler.start()
        for _ in range(round(seconds / interval_s)):
            clock.advance(interval_s)
            sampler.poll()
        return sampler.stop(), fake


def codes(reading: EnergyReading) -> list[str]:
    return [code for code, _ in reading.warnings]


def test_counter_and_integrated_energy_agree_on_constant_power(clock: FakeClock) -> None:
    reading, _ = measure([FakeGpuSpec(power_w=250.0)], clock, seconds=4.0)

    assert reading.method == "nvml" and reading.scope == ["gpu:0"]
    assert reading.energy_total_j == pytest.approx(1000.0)  # 250 W x 4 s, from the counter
    assert reading.duration_s == pytest.approx(4.0)
    assert reading.sample_count == 42  # the read at start, 40 polls and the read at stop
    assert "counter_mismatch" not in codes(reading)
    assert any("1000.000 J from the total-energy counter" in n for n in reading.notes)
    assert any("cross-check 1000.000 J from 42 instant power samples" in n for n in reading.notes)
    assert codes(reading) == ["simulated_device"]


def test_not_supported_counter_falls_back_to_integrated_power(clock: FakeClock) -> None:
    schedule = [(0.0, 100.0), (1.05, 300.0)]  # a step between two polls
    reading, fake = measure([FakeGpuSpec(power_w=schedule, energy_counter=False)], clock, 2.0)

    exact = fake.energy_j(0, 0.0, 2.0)
    assert exact == pytest.approx(1.05 * 100 + 0.95 * 300)
    assert reading.energy_total_j == pytest.approx(exact, abs=reading.uncertainty_j)
    assert reading.uncertainty_j == pytest.approx(0.1 * 200 / 2)  # one interval spans the step
    assert any("no energy counter; trapezoid rule" in n for n in reading.notes)


def test_instant_field_unsupported_falls_back_to_power_usage_and_says_so(clock: FakeClock) -> None:
    spec = FakeGpuSpec(power_w=150.0, energy_counter=False, power_instant=False)
    reading, fake = measure([spec], clock, seconds=3.0)

    assert reading.energy_total_j == pytest.approx(450.0)
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 32
    assert any(
        "31 average power samples" in n or "32 average power samples" in n for n in reading.notes
    )
    assert any("1-second average" in n for n in reading.notes)


def test_a_gpu_lost_mid_window_keeps_the_energy_so_far_with_a_warning(clock: FakeClock) -> None:
    # gpu:0 is lost between the polls at 0.9 s and 1.0 s.
    specs = [FakeGpuSpec(power_w=200.0, fail_at_s=0.95), FakeGpuSpec(power_w=100.0)]
    reading, _ = measure(specs, clock, seconds=2.0)

    assert reading.energy_by_domain_j["gpu:0"] == pytest.approx(200.0 * 0.9)  # last good read
    assert reading.energy_by_domain_j["gpu:1"] == pytest.approx(200.0)
    assert reading.energy_total_j == pytest.approx(380.0)
    (failure,) = [m for c, m in reading.warnings if c == "sampler_failed"]
    assert (
        "gpu:0" in failure
        and "GPU is lost" in failure
        and "covers only the first 0.90 s" in failure
    )
    # The uncovered 1.1 s of gpu:0 at its 200 W peak widens the bound.
    assert reading.uncertainty_j == pytest.approx(0.1 * 200 + 1.1 * 200 + 0.1 * 100)


def test_a_driver_error_to_the_end_keeps_the_energy_so_far_with_a_warning(
    clock: FakeClock,
) -> None:
    spec = FakeGpuSpec(power_w=200.0, fail_at_s=0.95, fail_error=fp.NVML_ERROR_TIMEOUT)
    reading, _ = measure([spec], clock, seconds=2.0)

    assert reading.energy_total_j == pytest.approx(200.0 * 0.9)
    (failure,) = [m for c, m in reading.warnings if c == "sampler_failed"]
    assert "reads failed at the window's end" in failure and "Timeout" in failure
    assert any("12 reads failed and were skipped" in note for note in reading.notes)  # 11 + final


def test_transient_read_errors_are_skipped_and_noted(clock: FakeClock) -> None:
    with install_fake_pynvml([FakeGpuSpec(power_w=100.0)], clock=clock) as fake:
        sampler = NvmlSampler(get_gpus(), 100, clock, background=False)
        sampler.start()
        clock.advance(0.5)
        fake.lose_gpu(0, fp.NVML_ERROR_TIMEOUT)
        sampler.poll()
        fake.recover_gpu(0)
        clock.advance(0.5)
        reading = sampler.stop()

    assert reading.energy_total_j == pytest.approx(100.0)
    assert "sampler_failed" not in codes(reading)
    assert any("1 reads failed and were skipped" in note for note in reading.notes)


def test_a_gpu_lost_before_the_window_gives_null_energy_not_an_exception(clock: FakeClock) -> None:
    with install_fake_pynvml([FakeGpuSpec(fail_after_calls=1)], clock=clock):
        sampler = NvmlSampler(get_gpus(), 100, clock, background=False)  # discovery: 1 call
        sampler.start()
        clock.advance(1.0)
        reading = sampler.stop()

    assert reading.energy_total_j is None and reading.uncertainty_j is None
    assert "sampler_failed" in codes(reading)


def test_multi_gpu_energy_per_device_and_total(clock: FakeClock) -> None:
    specs = [FakeGpuSpec(power_w=300.0), FakeGpuSpec(power_w=100.0, energy_counter=False)]
    reading, _ = measure(specs, clock, seconds=2.0)

    assert reading.scope == ["gpu:0", "gpu:1"]
    assert reading.energy_by_domain_j == pytest.approx({"gpu:0": 600.0, "gpu:1": 200.0})
    assert reading.energy_total_j == pytest.approx(800.0)
    # Counter: period x end power; integration of constant power: no error term.
    assert reading.uncertainty_j == pytest.approx(0.1 * 300)


def test_counter_and_integration_disagreeing_raises_counter_mismatch(clock: FakeClock) -> None:
    # A counter that updates once a second misses most of a 2.5 s window's last second.
    clock.advance(0.05)
    spec = FakeGpuSpec(power_w=100.0, counter_update_s=1.0)
    reading, _ = measure([spec], clock, seconds=2.5)

    (message,) = [m for c, m in reading.warnings if c == "counter_mismatch"]
    assert "energy counter 200.00 J and integrated instant power 250.00 J" in message


def test_visible_indices_select_gpus_and_unknown_ones_are_refused() -> None:
    with install_fake_pynvml(3):
        assert [g.index for g in select_gpus([2, 0])] == [2, 0]
        with pytest.raises(SamplerUnavailableError, match=r"gpu_indices \[5\] are not visible"):
            select_gpus([0, 5])
        assert probe([1]).available and not probe([9]).available


def test_mig_instances_of_one_gpu_are_measured_once(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-a,MIG-b")
    spec = FakeGpuSpec(power_w=100.0, mig_uuids=("MIG-a", "MIG-b"))
    reading, _ = measure([spec], clock, seconds=1.0)

    assert reading.scope == ["gpu:0"] and reading.energy_total_j == pytest.approx(100.0)


def test_the_background_thread_polls_at_the_interval(clock: FakeClock) -> None:
    ticks = ScriptedWait(clock, ticks=5)
    with install_fake_pynvml([FakeGpuSpec(power_w=100.0, energy_counter=False)], clock=clock):
        sampler = NvmlSampler(get_gpus(), interval_ms=10, clock=clock, wait=ticks)
        sampler.start()
        reading = sampler.stop()  # joins the thread, which runs its 5 ticks first

    assert ticks.waited_s == [0.01] * 6  # it waited one interval between polls, then stopped
    assert reading.sample_count == 7  # the read at start, 5 polls by the thread, the final read
    assert reading.duration_s == pytest.approx(0.05)
    assert reading.energy_total_j == pytest.approx(100.0 * 0.05)  # integrated from its samples


def test_misuse_is_an_error() -> None:
    with install_fake_pynvml(1):
        sampler = NvmlSampler(get_gpus(), background=False)
        with pytest.raises(EnergySamplerError, match="before start"):
            sampler.stop()
        sampler.start()
        with pytest.raises(EnergySamplerError, match="twice"):
            sampler.start()
    with pytest.raises(SamplerUnavailableError):
        NvmlSampler([])


def test_trapezoid_arithmetic() -> None:
    samples = [(0.0, 100.0), (0.5, 300.0), (1.5, 300.0), (2.0, 0.0)]

    assert trapezoid_j(samples) == pytest.approx(0.5 * 200 + 1.0 * 300 + 0.5 * 150)
    assert trapezoid_j(samples[:1]) == 0.0


def test_integration_bound_for_a_known_scenario() -> None:
    samples = [(0.0, 100.0), (0.1, 300.0), (0.2, 300.0), (0.6, 300.0)]  # one missed 0.4 s gap

    bound = integration_bound_j(samples, window=(0.0, 0.65), interval_s=0.1)

    shape = 0.1 * 200 / 2  # the step between the first two samples
    gaps = (0.4 - 0.2) + 0.05  # the part of the gap beyond two intervals, and the uncovered end
    assert bound == pytest.approx(shape + gaps * 300)
    assert integration_bound_j(samples, (0.0, 0.6), 0.1, averaging_s=1.0) == pytest.approx(
        shape + 0.2 * 300 + 1.0 * 200
    )


def test_counter_bound_takes_the_larger_end_power() -> None:
    assert counter_bound_j(0.1, power_start_w=100.0, power_end_w=400.0) == pytest.approx(40.0)


def test_this_machine_without_a_driver_cannot_use_nvml() -> None:
    pytest.importorskip("pynvml")
    result = probe()
    if result.available:
        pytest.skip("this machine has an NVIDIA GPU")
    assert "driver" in result.reason
