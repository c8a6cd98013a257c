"""The seeded arrival schedule and the plan each load mode gives."""

from __future__ import annotations

import math
import statistics
from itertools import pairwise

import pytest

from llenergymeasure.config.models import LoadConfig
from llenergymeasure.load import arrival_offsets_s, plan_load
from llenergymeasure.load.schedule import OFFLINE


def test_offline_is_every_request_at_once_without_a_cap() -> None:
    assert plan_load(LoadConfig(), 10, 1) is OFFLINE
    assert OFFLINE.offsets_s is None and OFFLINE.max_concurrency is None


def test_concurrency_mode_has_a_cap_and_no_schedule() -> None:
    plan = plan_load(LoadConfig(mode="concurrency", max_concurrency=4), 10, 1)
    assert (plan.mode, plan.offsets_s, plan.max_concurrency) == ("concurrency", None, 4)
    assert plan.expected_duration_s is None


def test_rate_mode_schedules_every_request_from_zero() -> None:
    plan = plan_load(LoadConfig(mode="rate", request_rate=4, max_concurrency=2), 40, 7)
    assert plan.offsets_s is not None and len(plan.offsets_s) == 40
    assert plan.offsets_s[0] == 0.0
    assert list(plan.offsets_s) == sorted(plan.offsets_s)
    assert plan.max_concurrency == 2
    assert plan.expected_duration_s == plan.offsets_s[-1]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    first = arrival_offsets_s(4.0, "poisson", 1.0, 50, 3)
    assert first == arrival_offsets_s(4.0, "poisson", 1.0, 50, 3)
    assert first != arrival_offsets_s(4.0, "poisson", 1.0, 50, 4)


def test_constant_arrivals_are_evenly_spaced() -> None:
    offsets = arrival_offsets_s(5.0, "constant", 1.0, 6, 0)
    assert offsets == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_an_infinite_rate_puts_every_arrival_at_zero() -> None:
    assert arrival_offsets_s(math.inf, "poisson", 1.0, 5, 0) == [0.0] * 5


def test_poisson_gaps_have_mean_one_over_rate_and_unit_coefficient_of_variation() -> None:
    offsets = arrival_offsets_s(4.0, "poisson", 1.0, 4001, 11)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.05)
    assert statistics.stdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.06)


def test_burstiness_below_one_makes_gaps_more_variable_at_the_same_mean() -> None:
    offsets = arrival_offsets_s(4.0, "gamma", 0.25, 4001, 11)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.1)
    # the coefficient of variation of a gamma of shape k is 1/sqrt(k) = 2
    assert statistics.stdev(gaps) / statistics.fmean(gaps) == pytest.approx(2.0, rel=0.1)


def test_no_requests_no_schedule() -> None:
    assert arrival_offsets_s(4.0, "poisson", 1.0, 0, 0) == []
