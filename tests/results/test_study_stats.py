"""Statistics over cycles: Student-t quantiles, confidence intervals, CV, Welch's t-test."""

from __future__ import annotations

import math

import pytest

from llenergymeasure.results.stats import (
    Summary,
    summary_stats,
    t_cdf,
    t_quantile,
    t_two_sided_p,
    welch_t_test,
)

# Reference quantiles of Student's t (standard tables, 10 significant digits).
T_TABLE = [
    (0.975, 1, 12.70620474),
    (0.975, 2, 4.302652730),
    (0.975, 4, 2.776445105),
    (0.975, 10, 2.228138852),
    (0.975, 30, 2.042272456),
    (0.995, 5, 4.032142984),
    (0.05, 3, -2.353363435),
    (0.5, 7, 0.0),
]


@pytest.mark.parametrize(("p", "dof", "expected"), T_TABLE)
def test_t_quantile_matches_tables(p: float, dof: int, expected: float) -> None:
    assert t_quantile(p, dof) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_t_cdf_matches_closed_forms() -> None:
    # dof=1 is the Cauchy distribution; dof=2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    assert t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-13)
    assert t_cdf(-1.0, 1) == pytest.approx(0.25, abs=1e-13)
    assert t_cdf(2.0, 2) == pytest.approx(0.5 + 2 / (2 * math.sqrt(6)), abs=1e-13)
    assert t_cdf(0.0, 5) == 0.5
    assert t_two_sided_p(0.0, 5) == pytest.approx(1.0)
    assert t_two_sided_p(math.inf, 5) == 0.0


def test_t_quantile_inverts_the_cdf_for_fractional_dof() -> None:
    for p in (0.6, 0.9, 0.975, 0.9999):
        assert t_cdf(t_quantile(p, 7.5), 7.5) == pytest.approx(p, abs=1e-13)


def test_t_functions_reject_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="p must be"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0.9, 0)


def test_ci_of_one_two_three() -> None:
    summary = summary_stats([1.0, 2.0, 3.0])
    assert summary.n == 3 and summary.mean == pytest.approx(2.0)
    assert summary.std == pytest.approx(1.0)
    # t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321
    assert summary.ci95_half_width == pytest.approx(2.484137712, rel=1e-9)
    assert summary.ci95_low == pytest.approx(2.0 - 2.484137712, rel=1e-9)
    assert summary.ci95_high == pytest.approx(2.0 + 2.484137712, rel=1e-9)
    assert summary.cv == pytest.approx(0.5)


def test_ci_uses_sample_std_and_n_minus_one_dof() -> None:
    values = [10.0, 12.0, 11.0, 13.0, 9.0]
    summary = summary_stats(values)
    std = math.sqrt(sum((v - 11.0) ** 2 for v in values) / 4)
    assert summary.std == pytest.approx(std)
    assert summary.ci95_half_width == pytest.approx(2.776445105 * std / math.sqrt(5))
    assert summary.cv == pytest.approx(std / 11.0)


def test_one_value_has_a_mean_only() -> None:
    assert summary_stats([5.0]) == Summary(n=1, mean=5.0)


def test_no_values_give_an_empty_summary() -> None:
    empty = summary_stats([])
    assert empty.n == 0
    assert [empty.mean, empty.std, empty.ci95_low, empty.ci95_high, empty.cv] == [None] * 5
    assert summary_stats([None, None]) == empty


def test_none_and_nan_values_are_skipped() -> None:
    summary = summary_stats([1.0, None, 3.0, math.nan])
    assert summary.n == 2 and summary.mean == pytest.approx(2.0)
    assert summary.std == pytest.approx(math.sqrt(2))
    # t(0.975, 1) * sqrt(2) / sqrt(2)
    assert summary.ci95_half_width == pytest.approx(12.70620474, rel=1e-9)


def test_cv_is_none_for_a_zero_mean() -> None:
    summary = summary_stats([-1.0, 1.0])
    assert summary.mean == 0 and summary.std is not None and summary.cv is None


def test_identical_values_have_a_zero_width_interval() -> None:
    summary = summary_stats([4.0, 4.0, 4.0])
    assert summary.std == 0 and summary.ci95_half_width == 0 and summary.cv == 0


def test_summary_round_trips_through_json() -> None:
    summary = summary_stats([1.0, 2.0, 4.0])
    assert Summary.model_validate_json(summary.model_dump_json()) == summary


# Welch's t-test, example 1 of the Wikipedia article (scipy.stats.ttest_ind, equal_var=False:
# t = -2.4553564, dof = 24.988529, p = 0.0213780).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_t_test_known_example() -> None:
    t, dof, p = welch_t_test(A1, A2)
    assert t == pytest.approx(-2.4553564, rel=1e-7)
    assert dof == pytest.approx(24.988529, rel=1e-7)
    assert p == pytest.approx(0.0213780, rel=1e-5)
    t_swapped, dof_swapped, p_swapped = welch_t_test(A2, A1)
    assert t_swapped == pytest.approx(-t) and dof_swapped == pytest.approx(dof)
    assert p_swapped == pytest.approx(p)


def test_welch_t_test_unequal_sizes_and_variances() -> None:
    # Hand computation: means 2 and 11, variances 1 and 46/3, sizes 3 and 4.
    a, b = [1.0, 2.0, 3.0], [7.0, 9.0, 12.0, 16.0]
    va, vb = 1.0 / 3, (16 + 4 + 1 + 25) / 3 / 4
    t, dof, p = welch_t_test(a, b)
    assert t == pytest.approx((2 - 11) / math.sqrt(va + vb))
    assert dof == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 3))
    # scipy.stats.ttest_ind(a, b, equal_var=False): t = -4.4090815, dof = 3.5046729, p = 0.0155437.
    assert t == pytest.approx(-4.4090815) and dof == pytest.approx(3.5046729)
    assert p == pytest.approx(0.0155437, rel=1e-5)


def test_welch_t_test_edge_cases() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        welch_t_test([1.0], [1.0, 2.0])
    assert welch_t_test([1.0, 1.0], [1.0, 1.0]) == (0.0, 2.0, 1.0)
    t, _, p = welch_t_test([2.0, 2.0], [1.0, 1.0, 1.0])
    assert t == math.inf and p == 0.0
