"""The probing factory: auto order, explicit choices, and the registry seam."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

import pytest

from llenergymeasure.config.models import EnergyConfig, SamplerName
from llenergymeasure.energy import codecarbon
from llenergymeasure.energy.base import Availability
from llenergymeasure.energy.factory import (
    SAMPLER_PRIORITY,
    SAMPLERS,
    SamplerEntry,
    create_sampler,
    probe_samplers,
    resolve_sampler_name,
)
from llenergymeasure.energy.null import NullSampler
from llenergymeasure.energy.rapl import RaplSampler
from llenergymeasure.errors import ConfigError, SamplerUnavailableError
from llenergymeasure.testing.fake_energy import FakeClock, FakePowercapTree


@pytest.fixture(autouse=True)
def no_gpu_samplers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make zeus and nvml unavailable, so these tests mean the same on a GPU machine."""
    for module in ("zeus", "zeus.monitor", "pynvml"):
        monkeypatch.setitem(sys.modules, module, None)


@pytest.fixture
def no_codecarbon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make codecarbon look uninstalled (a None entry makes its import fail)."""
    monkeypatch.setitem(sys.modules, "codecarbon", None)


def test_priority_is_zeus_nvml_rapl_codecarbon_null() -> None:
    assert SAMPLER_PRIORITY == ("zeus", "nvml", "rapl", "codecarbon", "null")


def test_config_offers_exactly_the_registered_samplers() -> None:
    assert set(get_args(SamplerName)) == {"auto", *SAMPLER_PRIORITY}


def test_auto_picks_rapl_when_counters_are_readable(tree: FakePowercapTree) -> None:
    sampler = create_sampler(EnergyConfig(sampler="auto"), rapl_root=tree.root)

    assert isinstance(sampler, RaplSampler)


def test_auto_falls_back_to_codecarbon_without_rapl(tmp_path: Path) -> None:
    pytest.importorskip("codecarbon")

    assert resolve_sampler_name("auto", rapl_root=tmp_path / "absent") == "codecarbon"


@pytest.mark.usefixtures("no_codecarbon")
def test_auto_falls_back_to_null_without_rapl_or_codecarbon(
    tmp_path: Path, clock: FakeClock
) -> None:
    config = EnergyConfig(sampler="auto")

    sampler = create_sampler(config, clock=clock, rapl_root=tmp_path / "absent")

    assert isinstance(sampler, NullSampler)


@pytest.mark.usefixtures("no_codecarbon")
def test_probe_reports_every_sampler_with_reasons(tmp_path: Path) -> None:
    report = probe_samplers(rapl_root=tmp_path / "absent")

    assert list(report) == list(SAMPLER_PRIORITY)
    assert "no powercap interface" in report["rapl"].reason
    assert not report["codecarbon"].available
    assert codecarbon.INSTALL_HINT in report["codecarbon"].reason
    assert report["null"].available


def test_explicit_unavailable_sampler_raises_with_the_reason(tmp_path: Path) -> None:
    config = EnergyConfig(sampler="rapl")

    with pytest.raises(SamplerUnavailableError, match=r"'rapl'.*no powercap interface"):
        create_sampler(config, rapl_root=tmp_path / "absent")


@pytest.mark.usefixtures("no_codecarbon")
def test_explicit_codecarbon_without_the_package_says_how_to_install() -> None:
    with pytest.raises(
        SamplerUnavailableError, match=r"pip install 'llenergymeasure\[codecarbon\]'"
    ):
        resolve_sampler_name("codecarbon")


def test_explicit_choice_skips_better_samplers(tree: FakePowercapTree, clock: FakeClock) -> None:
    sampler = create_sampler(EnergyConfig(sampler="null"), clock=clock, rapl_root=tree.root)
    sampler.start()
    clock.now_s += 1.5

    assert sampler.stop().duration_s == 1.5


def test_config_interval_and_clock_reach_the_sampler(
    tree: FakePowercapTree, clock: FakeClock
) -> None:
    config = EnergyConfig(sampler="rapl", sample_interval_ms=60_000)
    sampler = create_sampler(config, clock=clock, rapl_root=tree.root)
    sampler.start()
    tree.advance("intel-rapl:0", 3.0)
    clock.now_s += 4.0

    reading = sampler.stop()

    assert reading.duration_s == 4.0
    assert reading.sample_count == 2  # the 60 s interval never fired
    assert reading.energy_total_j == pytest.approx(3.0)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'rapl'"):
        resolve_sampler_name("rappl")


def test_a_registered_sampler_ranks_by_its_place_in_the_registry(tmp_path: Path) -> None:
    # How zeus/nvml will slot in front: one more entry, first in order.
    first = SamplerEntry(
        probe=lambda context: Availability(True),
        create=lambda context: NullSampler(context.clock),
    )
    registry = {"first": first, **SAMPLERS}

    assert resolve_sampler_name("auto", registry=registry) == "first"
    assert next(iter(probe_samplers(rapl_root=tmp_path, registry=registry))) == "first"


def test_auto_with_nothing_available_lists_every_reason() -> None:
    unavailable = SamplerEntry(
        probe=lambda context: Availability(False, "nope"),
        create=lambda context: NullSampler(),
    )

    with pytest.raises(SamplerUnavailableError, match="a: nope; b: nope"):
        resolve_sampler_name("auto", registry={"a": unavailable, "b": unavailable})
