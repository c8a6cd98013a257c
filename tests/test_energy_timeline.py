"""EnergyTimeline: any interval's energy from cumulative reads, with a bound."""

from __future__ import annotations

import pytest

from llenergymeasure.energy import EnergyTimeline
from llenergymeasure.energy.timeline import cumulative


def _constant(power_w: float, period_s: float, n: int, stale_s: float = 0.0) -> EnergyTimeline:
    points = [(i * period_s, power_w * i * period_s) for i in range(n + 1)]
    return EnergyTimeline({"gpu:0": points}, stale_s=stale_s, source="test")


def test_a_sub_interval_of_constant_power_is_power_times_duration() -> None:
    timeline = _constant(300.0, 0.1, 100)
    energy = timeline.interval(2.05, 7.05)
    assert energy is not None
    assert energy.energy_j == pytest.approx(1500.0)
    assert energy.by_domain_j == {"gpu:0": pytest.approx(1500.0)}
    # one 0.1 s segment at each end: 2 x 30 J
    assert energy.uncertainty_j == pytest.approx(60.0)


def test_staleness_and_alignment_widen_the_bound_by_power_times_seconds() -> None:
    energy = _constant(300.0, 0.1, 100, stale_s=0.1).interval(2.0, 7.0, align_s=0.01)
    assert energy is not None
    assert energy.uncertainty_j == pytest.approx(2 * (30.0 + 0.11 * 300.0))


def test_more_frequent_reads_give_a_tighter_bound() -> None:
    coarse = _constant(300.0, 0.5, 20).interval(2.2, 7.3)
    fine = _constant(300.0, 0.05, 200).interval(2.2, 7.3)
    assert coarse is not None and fine is not None
    assert fine.uncertainty_j < coarse.uncertainty_j


def test_domains_add_up() -> None:
    timeline = EnergyTimeline(
        {"gpu:0": [(0.0, 0.0), (10.0, 1000.0)], "gpu:1": [(0.0, 0.0), (10.0, 500.0)]}
    )
    energy = timeline.interval(0.0, 10.0)
    assert energy is not None and energy.energy_j == pytest.approx(1500.0)


@pytest.mark.parametrize(("start_s", "end_s"), [(-1.0, 5.0), (5.0, 11.0), (6.0, 6.0), (7.0, 6.0)])
def test_an_interval_outside_the_reads_or_empty_has_no_energy(start_s: float, end_s: float) -> None:
    assert _constant(100.0, 1.0, 10).interval(start_s, end_s) is None


def test_shifted_moves_every_time_and_keeps_the_energy() -> None:
    timeline = _constant(100.0, 1.0, 10).shifted(-2.0)
    assert timeline.points["gpu:0"][0] == (-2.0, 0.0)
    energy = timeline.interval(0.0, 4.0)
    assert energy is not None and energy.energy_j == pytest.approx(400.0)


def test_cumulative_sums_deltas_from_zero() -> None:
    assert cumulative([(0.0, 0.0), (1.0, 5.0), (2.0, 2.5)]) == [(0.0, 0.0), (1.0, 5.0), (2.0, 7.5)]
