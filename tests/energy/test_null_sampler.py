"""The null sampler times the window and reports no energy."""

from __future__ import annotations

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.null import NullSampler
from llenergymeasure.errors import EnergySamplerError
from llenergymeasure.testing.fake_energy import FakeClock


def test_reading_has_duration_and_null_energy(clock: FakeClock) -> None:
    sampler = NullSampler(clock)
    sampler.start()
    clock.now_s += 3.25

    reading = sampler.stop()

    assert reading.method == "null"
    assert reading.duration_s == 3.25
    assert reading.energy_total_j is None
    assert reading.energy_by_domain_j == {}
    assert reading.scope == []
    assert reading.sample_count == 0
    assert reading.co2_kg is None
    assert reading.timeline is None
    assert any("no energy source" in note for note in reading.notes)


def test_stop_before_start_is_an_error() -> None:
    with pytest.raises(EnergySamplerError, match="before start"):
        NullSampler().stop()


def test_is_an_energy_sampler() -> None:
    assert isinstance(NullSampler(), EnergySampler)
