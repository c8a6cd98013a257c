"""The Zeus sampler on the shipped fake zeus: domains, totals, translation, probing."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

import pytest

from llenergymeasure.energy import zeus as zeus_sampler
from llenergymeasure.energy.zeus import INSTALL_HINT, ZeusSampler, probe
from llenergymeasure.errors import DependencyError, SamplerUnavailableError
from llenergymeasure.testing.fake_energy import FakeClock
from llenergymeasure.testing.fake_zeus import (
    CpuDramMeasurement,
    FakeCPUs,
    FakeGPUs,
    FakeZeusSpec,
    Measurement,
    install_fake_zeus,
)


def test_gpu_cpu_and_dram_energy_are_all_in_the_total(clock: FakeClock) -> None:
    spec = FakeZeusSpec(gpu_power_w=(300.0, 100.0), cpu_power_w=(50.0,), dram_power_w=(10.0,))
    with install_fake_zeus(spec, clock=clock) as fake:
        sampler = ZeusSampler(clock=clock, background=False)
        sampler.start()
        clock.advance(2.0)
        reading = sampler.stop()

    assert reading.method == "zeus"
    assert reading.energy_by_domain_j == pytest.approx(
        {"gpu:0": 600.0, "gpu:1": 200.0, "cpu:package-0": 100.0, "dram:package-0": 20.0}
    )
    assert reading.scope == ["gpu:0", "gpu:1", "cpu:package-0", "dram:package-0"]
    assert reading.energy_total_j == pytest.approx(920.0)  # Zeus's total_energy would say 800
    assert reading.duration_s == pytest.approx(2.0)
    assert reading.sample_count == 20  # counter updates spanned, at ~100 ms each
    assert reading.uncertainty_j == pytest.approx(0.1 * 400.0)
    assert any("total_energy counts the GPUs only" in note for note in reading.notes)
    (monitor,) = fake.monitors
    assert monitor.sync_calls == [False, False]  # sync_execution=False at both ends
    assert monitor.approx_instant_energy is True


def test_without_rapl_only_gpus_are_counted_and_the_note_says_so(clock: FakeClock) -> None:
    with install_fake_zeus(FakeZeusSpec(gpu_power_w=(200.0,)), clock=clock):
        sampler = ZeusSampler([0], clock=clock, background=False)
        sampler.start()
        clock.advance(1.0)
        reading = sampler.stop()

    assert reading.scope == ["gpu:0"] and reading.energy_total_j == pytest.approx(200.0)
    assert any("CPU and DRAM energy are not included" in note for note in reading.notes)


def test_a_monitor_without_gpus_is_translated() -> None:
    with install_fake_zeus(FakeZeusSpec(gpu_power_w=())):
        with pytest.raises(SamplerUnavailableError, match="No GPUs available"):
            ZeusSampler([0])
        # Zeus itself builds a monitor of nothing when asked for every GPU of none.
        with pytest.raises(SamplerUnavailableError, match="Zeus found no GPU to measure"):
            ZeusSampler()
    with (
        install_fake_zeus(FakeZeusSpec(gpu_power_w=(1.0,))),
        pytest.raises(SamplerUnavailableError, match="cannot measure the requested GPUs"),
    ):
        ZeusSampler([3])


def test_a_failure_at_the_window_end_keeps_the_run(clock: FakeClock) -> None:
    with install_fake_zeus(FakeZeusSpec(fail_end_window=True), clock=clock):
        sampler = ZeusSampler(clock=clock, background=False)
        sampler.start()
        clock.advance(1.0)
        reading = sampler.stop()

    assert reading.energy_total_j is None and reading.duration_s == pytest.approx(1.0)
    assert reading.warnings[0][0] == "sampler_failed"
    assert "ZeusGPULostError" in reading.warnings[0][1]


def test_probe_explains_missing_zeus_missing_gpus_and_missing_indices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with install_fake_zeus(FakeZeusSpec(gpu_power_w=(1.0, 1.0))):
        assert probe().available
        assert "gpu_indices [2] are not visible to Zeus (2 GPUs)" in probe([0, 2]).reason
    with install_fake_zeus(FakeZeusSpec(gpu_power_w=())):
        assert "Zeus found no usable GPU: NVML and AMDSMI unavailable" in probe().reason
    monkeypatch.setitem(sys.modules, "zeus", None)
    monkeypatch.setitem(sys.modules, "zeus.monitor", None)
    assert probe().reason == f"zeus is not installed: {INSTALL_HINT}"
    with pytest.raises(DependencyError, match="llenergymeasure\\[zeus\\]"):
        ZeusSampler()


def test_measurement_total_counts_gpus_only_as_in_zeus() -> None:
    measurement = Measurement(1.0, {0: 2.0, 1: 3.0}, cpu_energy={0: 10.0})
    assert measurement.total_energy == 5.0


def test_fake_matches_the_installed_zeus() -> None:
    """When the real Zeus is installed, the fake's names and signatures must match it."""
    if "zeus" in sys.modules and hasattr(sys.modules["zeus"], "__llem_fake__"):
        pytest.skip("a fake zeus is installed")
    real_monitor = pytest.importorskip("zeus.monitor")
    with install_fake_zeus() as fake:
        fake_monitor = fake.monitor_class()
        for name in ("__init__", "begin_window", "end_window"):
            real_params = inspect.signature(getattr(real_monitor.ZeusMonitor, name)).parameters
            fake_params = inspect.signature(getattr(fake_monitor, name)).parameters
            assert list(fake_params) == list(real_params), name
        real_fields = list(inspect.signature(real_monitor.Measurement).parameters)
        assert list(inspect.signature(Measurement).parameters) == real_fields
    gpu_common = importlib.import_module("zeus.device.gpu.common")
    cpu_common = importlib.import_module("zeus.device.cpu.common")
    polled = {
        (gpu_common.GPUs, FakeGPUs): (
            "supports_get_total_energy_consumption",
            "get_total_energy_consumption",
            "get_instant_power_usage",
        ),
        (cpu_common.CPUs, FakeCPUs): (
            "get_total_energy_consumption",
            "supports_get_dram_energy_consumption",
        ),
    }
    for (real_class, fake_class), names in polled.items():
        for name in names:
            real_params = inspect.signature(getattr(real_class, name)).parameters
            assert list(inspect.signature(getattr(fake_class, name)).parameters) == list(
                real_params
            ), name
    real_measurement = inspect.signature(cpu_common.CpuDramMeasurement).parameters
    assert list(inspect.signature(CpuDramMeasurement).parameters) == list(real_measurement)


def test_the_real_zeus_measures_the_fake_pynvml() -> None:
    """Where Zeus is installed, it runs unchanged on the fake NVML and reads its power.

    In a fresh process, because Zeus binds ``pynvml`` when it is first imported.
    """
    if "zeus" in sys.modules and hasattr(sys.modules["zeus"], "__llem_fake__"):
        pytest.skip("a fake zeus is installed")
    pytest.importorskip("zeus.monitor")
    code = (
        "import time\n"
        "from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml\n"
        "with install_fake_pynvml([FakeGpuSpec(power_w=250.0)]):\n"
        "    from llenergymeasure.energy.zeus import ZeusSampler\n"
        "    sampler = ZeusSampler([0])\n"
        "    sampler.start(); time.sleep(0.2); reading = sampler.stop()\n"
        "print(reading.timeline.points['gpu:0'][-1][1] / reading.energy_by_domain_j['gpu:0'])\n"
        "print(reading.energy_by_domain_j['gpu:0'] / reading.duration_s)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    *_, polled_share, power_w = result.stdout.strip().splitlines()
    assert float(power_w) == pytest.approx(250.0, rel=0.05)
    assert float(polled_share) == pytest.approx(1.0, rel=0.05)  # the timeline's reads agree


def test_this_machine_without_zeus_says_how_to_install_it() -> None:
    try:
        import zeus  # noqa: F401
    except ImportError:
        assert probe().reason == f"zeus is not installed: {INSTALL_HINT}"
    else:
        pytest.skip("zeus is installed here")
    assert zeus_sampler.WINDOW_KEY
