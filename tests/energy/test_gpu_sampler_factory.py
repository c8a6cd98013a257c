"""The factory with the GPU samplers: auto priority, gpu_indices, reasons on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llenergymeasure.config.models import EnergyConfig
from llenergymeasure.energy.factory import (
    SAMPLER_PRIORITY,
    create_sampler,
    probe_samplers,
    resolve_sampler_name,
)
from llenergymeasure.energy.nvml import NvmlSampler
from llenergymeasure.energy.zeus import ZeusSampler
from llenergymeasure.errors import SamplerUnavailableError
from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml
from llenergymeasure.testing.fake_energy import FakeClock
from llenergymeasure.testing.fake_zeus import FakeZeusSpec, install_fake_zeus


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def no_zeus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make zeus look uninstalled even where it is (a None entry makes its import fail)."""
    monkeypatch.setitem(sys.modules, "zeus", None)
    monkeypatch.setitem(sys.modules, "zeus.monitor", None)


def test_auto_prefers_zeus_then_nvml_then_rapl_codecarbon_null() -> None:
    assert SAMPLER_PRIORITY == ("zeus", "nvml", "rapl", "codecarbon", "null")


def test_auto_picks_zeus_where_it_sees_gpus(tmp_path: Path) -> None:
    with install_fake_pynvml(1), install_fake_zeus(FakeZeusSpec(gpu_power_w=(100.0,))):
        assert resolve_sampler_name("auto", rapl_root=tmp_path) == "zeus"
        assert isinstance(create_sampler(EnergyConfig(), rapl_root=tmp_path), ZeusSampler)


@pytest.mark.usefixtures("no_zeus")
def test_auto_picks_nvml_without_zeus_and_measures_the_configured_gpus(
    tmp_path: Path, clock: FakeClock
) -> None:
    specs = [FakeGpuSpec(power_w=100.0), FakeGpuSpec(power_w=200.0), FakeGpuSpec(power_w=400.0)]
    with install_fake_pynvml(specs, clock=clock):
        sampler = create_sampler(EnergyConfig(gpu_indices=[2, 0]), clock=clock, rapl_root=tmp_path)
        assert isinstance(sampler, NvmlSampler)
        sampler.start()
        clock.advance(1.0)
        reading = sampler.stop()

    assert reading.energy_by_domain_j == pytest.approx({"gpu:2": 400.0, "gpu:0": 100.0})


@pytest.mark.usefixtures("no_zeus")
def test_explicit_nvml_with_a_missing_gpu_index_is_refused(tmp_path: Path) -> None:
    with install_fake_pynvml(1):
        config = EnergyConfig(sampler="nvml", gpu_indices=[1])
        with pytest.raises(SamplerUnavailableError, match=r"'nvml'.*gpu_indices \[1\]"):
            create_sampler(config, rapl_root=tmp_path)
        assert not probe_samplers(rapl_root=tmp_path, gpu_indices=[1])["nvml"].available


@pytest.mark.usefixtures("no_zeus")
def test_probe_without_a_driver_says_why_for_zeus_and_nvml(tmp_path: Path) -> None:
    with install_fake_pynvml(1, library_found=False):
        report = probe_samplers(rapl_root=tmp_path)
        with pytest.raises(SamplerUnavailableError, match="'nvml' is not available: the NVML"):
            create_sampler(EnergyConfig(sampler="nvml"), rapl_root=tmp_path)

    assert list(report) == list(SAMPLER_PRIORITY)
    assert report["zeus"].reason == "zeus is not installed: pip install 'llenergymeasure[zeus]'"
    assert report["nvml"].reason.startswith("the NVML library (libnvidia-ml.so.1) was not found")


def test_this_machine_reports_why_the_gpu_samplers_are_unavailable() -> None:
    """With no fakes, on a machine without an NVIDIA driver (this one)."""
    report = probe_samplers()
    if report["nvml"].available:
        pytest.skip("this machine has an NVIDIA GPU")
    assert "driver" in report["nvml"].reason or "nvidia-ml-py" in report["nvml"].reason
    assert not report["zeus"].available and report["zeus"].reason


def test_gpu_indices_must_be_distinct_and_non_negative() -> None:
    assert EnergyConfig().gpu_indices is None
    assert EnergyConfig(gpu_indices=[1, 0]).gpu_indices == [1, 0]
    with pytest.raises(ValidationError, match="must not repeat"):
        EnergyConfig(gpu_indices=[0, 0])
    with pytest.raises(ValidationError, match=">= 0"):
        EnergyConfig(gpu_indices=[-1])
