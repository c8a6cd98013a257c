"""Idle baseline, CO2, telemetry summaries and the warnings that depend on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.energy import EnergyReading
from llenergymeasure.errors import ConfigError
from llenergymeasure.harness.baseline import Baseline, BaselineCache, measure_baseline
from llenergymeasure.harness.carbon import compute_co2, user_carbon_intensity
from llenergymeasure.harness.checks import context_warnings, energy_metrics, telemetry_warnings
from llenergymeasure.results.records import TelemetrySample
from llenergymeasure.telemetry import CpuTelemetrySource, TelemetryPoller, summarise
from llenergymeasure.testing.fake_energy import FakeClock


class ConstantPowerSampler:
    name = "const"

    def __init__(self, clock: FakeClock, power_by_domain_w: dict[str, float]) -> None:
        self.clock, self.power = clock, power_by_domain_w

    def start(self) -> None:
        self.t0 = self.clock()

    def stop(self) -> EnergyReading:
        duration = self.clock() - self.t0
        by_domain = {k: p * duration for k, p in self.power.items()}
        return EnergyReading("const", list(by_domain), sum(by_domain.values()), by_domain,
                             duration, 100)  # fmt: skip


def test_baseline_measures_mean_idle_power_per_domain() -> None:
    clock = FakeClock()
    sampler = ConstantPowerSampler(clock, {"gpu:0": 60.0, "gpu:1": 40.0})
    baseline = measure_baseline(sampler, 5.0, sleep=clock.advance)
    assert baseline is not None
    assert baseline.power_w == pytest.approx(100.0)
    assert baseline.power_by_domain_w == pytest.approx({"gpu:0": 60.0, "gpu:1": 40.0})


def test_adjusted_energy_subtracts_baseline_power_times_duration() -> None:
    window = EnergyReading("x", ["gpu:0", "gpu:1"], 3000.0, {"gpu:0": 2000.0, "gpu:1": 1000.0},
                           10.0, 100)  # fmt: skip
    baseline = Baseline(100.0, {"gpu:0": 60.0, "gpu:1": 40.0}, 5.0, 1000.0, "x")
    energy = energy_metrics(window, baseline, compute_co2(None, None, None), now=1060.0)
    assert energy.energy_adjusted_j == pytest.approx(3000.0 - 100.0 * 10.0)
    assert energy.energy_adjusted_by_domain_j == pytest.approx({"gpu:0": 1400.0, "gpu:1": 600.0})
    assert energy.baseline_age_s == pytest.approx(60.0) and energy.baseline_power_w == 100.0


def test_baseline_cache_respects_ttl_and_keeps_other_keys(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path / "baselines.json")
    cache.put("a", Baseline(10.0, {"cpu": 10.0}, 5.0, 1000.0, "rapl"))
    cache.put("b", Baseline(20.0, {"cpu": 20.0}, 5.0, 1000.0, "rapl"))
    hit = cache.get("a", ttl_s=100.0, now=1050.0)
    assert hit is not None and hit.from_cache and hit.power_w == 10.0
    assert cache.get("a", ttl_s=100.0, now=1200.0) is None  # expired
    assert cache.get("b", ttl_s=100.0, now=1050.0) is not None
    (tmp_path / "baselines.json").write_text("not json")
    assert cache.get("a", ttl_s=100.0, now=1050.0) is None


def test_co2_from_user_intensity_else_sampler_else_none(monkeypatch: pytest.MonkeyPatch) -> None:
    co2 = compute_co2(3.6e6, None, 400.0)  # 1 kWh at 400 g/kWh
    assert co2.co2_kg == pytest.approx(0.4) and co2.source == "user intensity"
    assert compute_co2(1.0, 0.002, None).source == "codecarbon"
    assert compute_co2(1.0, None, None).co2_kg is None
    monkeypatch.setenv("LLEM_CARBON_INTENSITY", "250")
    assert user_carbon_intensity() == 250.0
    monkeypatch.setenv("LLEM_CARBON_INTENSITY", "lots")
    with pytest.raises(ConfigError, match="LLEM_CARBON_INTENSITY='lots'"):
        user_carbon_intensity()


def test_pue_scales_facility_energy_and_co2() -> None:
    co2 = compute_co2(3.6e6, None, 400.0, pue=1.5)  # 1 kWh IT energy, 1.5 kWh at the meter
    assert co2.energy_facility_j == pytest.approx(5.4e6)
    assert co2.co2_kg == pytest.approx(0.6)
    assert co2.source == "user intensity x PUE 1.5"
    from_codecarbon = compute_co2(1.0, 0.002, None, pue=1.2)
    assert from_codecarbon.co2_kg == pytest.approx(0.0024)
    assert from_codecarbon.source == "codecarbon x PUE 1.2"
    assert compute_co2(2.0, None, None).energy_facility_j == 2.0  # PUE 1: the IT energy


def test_context_warnings() -> None:
    none = compute_co2(None, None, None)
    codes = {w.code for w in context_warnings(None, True, none)}
    assert codes == {"baseline_missing", "co2_not_computed"}
    baseline = Baseline(1.0, {}, 1.0, 0.0, "x")
    assert context_warnings(baseline, True, compute_co2(1.0, 0.1, None)) == []


def sample(t: float, device: str, phase: str, temp: float, throttle: str) -> TelemetrySample:
    return TelemetrySample(t, device, phase, power_w=100.0 + t, temperature_c=temp,
                           throttle_reasons=throttle, throttled=bool(throttle))  # fmt: skip


def test_summary_covers_the_window_phase_only_and_flags_drift_and_throttling() -> None:
    samples = [
        sample(-1.0, "gpu:0", "warmup", 90.0, "sw_thermal"),
        sample(0.0, "gpu:0", "window", 50.0, ""),
        sample(1.0, "gpu:0", "window", 53.0, "sw_power_cap"),
        sample(2.0, "gpu:0", "window", 56.5, ""),
        sample(2.0, "gpu:1", "window", 40.0, ""),
    ]
    summary = summarise(samples, "window", 100)
    assert summary.n_samples == 4 and summary.devices == ["gpu:0", "gpu:1"]
    assert summary.max_temperature_c == 56.5 and summary.temperature_drift_c == pytest.approx(6.5)
    assert summary.throttled_fraction == pytest.approx(0.25)
    assert summary.mean_power_w == pytest.approx(101.25)
    assert {w.code for w in telemetry_warnings(summary)} == {"thermal_drift", "throttling"}


def test_poller_tags_phases_and_survives_a_failing_source() -> None:
    class Broken:
        def read(self, timestamp_s: float) -> list[TelemetrySample]:
            raise RuntimeError("sensor gone")

    clock = FakeClock()
    poller = TelemetryPoller([CpuTelemetrySource(), Broken()], 100, clock)
    poller.set_phase("warmup")
    poller.poll()
    poller.set_phase("window")
    clock.advance(0.1)
    poller.poll()
    samples = poller.stop()
    assert [(s.phase, s.device) for s in samples] == [("warmup", "cpu"), ("window", "cpu")]
    assert samples[1].memory_used_mb and samples[1].utilisation_pct is not None
    assert poller.errors == ["Broken: sensor gone"] * 2


def temps(values: list[float], power: float = 100.0) -> list[TelemetrySample]:
    return [TelemetrySample(float(i), "gpu:0", "", power_w=power, temperature_c=t)
            for i, t in enumerate(values)]  # fmt: skip


def test_stability_judges_temperature_and_power_per_device() -> None:
    from llenergymeasure.config import WarmupConfig
    from llenergymeasure.harness.stability import is_stable

    settings = WarmupConfig(stabilise_temperature_c=1.0, stabilise_power_pct=5.0)
    assert is_stable(temps([60.0, 60.4, 60.8]), settings) is True
    assert is_stable(temps([60.0, 61.5]), settings) is False
    drifting_power = [TelemetrySample(0.0, "gpu:0", power_w=100.0),
                      TelemetrySample(1.0, "gpu:0", power_w=120.0)]  # fmt: skip
    assert is_stable(drifting_power, settings) is False
    assert is_stable([TelemetrySample(0.0, "cpu", utilisation_pct=5.0)] * 3, settings) is None


def test_wait_until_stable_times_out_with_a_verdict() -> None:
    from llenergymeasure.config import WarmupConfig
    from llenergymeasure.harness.stability import wait_until_stable

    class Heating:
        def read(self, timestamp_s: float) -> list[TelemetrySample]:
            return [TelemetrySample(timestamp_s, "gpu:0", temperature_c=40 + timestamp_s)]

    clock = FakeClock()
    poller = TelemetryPoller([Heating()], 100, clock)

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        poller.poll()

    settings = WarmupConfig(stabilise_timeout_s=10.0, stabilise_window_s=3.0)
    poller.poll()
    assert wait_until_stable(poller, settings, clock, sleep) is False
    assert clock() >= 10.0
    assert wait_until_stable(poller, WarmupConfig(), clock, sleep) is None  # disabled


def test_wait_until_stable_returns_once_a_full_window_is_flat() -> None:
    from llenergymeasure.config import WarmupConfig
    from llenergymeasure.harness.stability import wait_until_stable

    class Settled:
        def read(self, timestamp_s: float) -> list[TelemetrySample]:
            return [TelemetrySample(timestamp_s, "gpu:0", temperature_c=55.0, power_w=80.0)]

    clock = FakeClock()
    poller = TelemetryPoller([Settled()], 100, clock)

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        poller.poll()

    poller.poll()
    settings = WarmupConfig(stabilise_timeout_s=30.0, stabilise_window_s=3.0)
    assert wait_until_stable(poller, settings, clock, sleep) is True
    assert 3.0 <= clock() < 5.0


def test_an_untested_library_version_is_a_result_warning() -> None:
    """A run measured with LLEM_ALLOW_UNTESTED=1 says so on the result, not only in a log."""
    from llenergymeasure.harness.checks import version_warnings

    (warning,) = version_warnings("vllm", {"vllm": "0.40.0"})
    assert warning.code == "untested_version"
    assert "vllm 0.40.0 is outside the tested range" in warning.message
    assert version_warnings("vllm", {"vllm": "0.32.0+cpu"}) == []
