"""Statements and their combination: t contrasts that keep their level at 2-5 seeds, TOST, Holm, the verdict.

Each test either compares with scipy's own t tests on the same numbers, or draws many seeded
tables with a known truth and checks how often a decision is wrong (binomial bounds, so a
seeded draw cannot flake).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alvit.book import stats
from alvit.book.stats import CANNOT_SAY, FAILS, HOLDS, INCONCLUSIVE


def one_cell(*seeds: float) -> stats.Contrast:
    return stats.contrast(np.array([[seeds]]), np.array([1.0]))


# --- the contrast and its interval -----------------------------------------------------------


def test_one_cell_is_the_one_sample_t_test():
    values = [0.03, 0.05, -0.01]
    est = one_cell(*values)
    reference = scipy_stats.ttest_1samp(values, 0.0, alternative="greater")
    assert est.value[0] == pytest.approx(np.mean(values))
    assert est.df[0] == pytest.approx(2)
    assert est.p_above(0.0)[0] == pytest.approx(reference.pvalue)
    low, high = est.interval(0.9)
    ci = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(0.9)
    assert (low[0], high[0]) == pytest.approx((ci.low, ci.high))


def test_cells_of_one_noise_rate_pool_their_spread():
    cells = np.array([[[0.1, 0.2, 0.3], [0.5, 0.4, 0.9]]])  # two cells, one stratum
    est = stats.contrast(cells, np.array([0.5, 0.5]))
    pooled = (np.var(cells[0, 0], ddof=1) + np.var(cells[0, 1], ddof=1)) / 2
    assert est.se[0] == pytest.approx(np.sqrt(pooled * (0.25 / 3 + 0.25 / 3)))
    assert est.df[0] == pytest.approx(4)


def test_cells_of_different_noise_rates_combine_by_welch_satterthwaite():
    a, b = [0.80, 0.82, 0.79, 0.85], [0.70, 0.60, 0.75]
    est = stats.contrast(np.array([[a + [np.nan] * 0, b + [np.nan]]]), np.array([1.0, -1.0]), strata=np.array([0, 1]))
    welch = scipy_stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert est.p_above(0.0)[0] == pytest.approx(welch.pvalue)


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_with_no_effect_one_cell_confirms_at_the_nominal_rate(seeds):
    """The old percentile bootstrap said "holds" in 10% of null tables at 3 seeds; the t test keeps 5%."""
    rng = np.random.default_rng(seeds)
    tables = 20_000
    est = stats.contrast(rng.normal(0.0, 0.02, size=(tables, 1, seeds)), np.array([1.0]))
    confirmed = (est.p_above() <= stats.ALPHA).mean()
    refuted = (est.p_below() <= stats.ALPHA).mean()
    bound = 3 * np.sqrt(0.05 * 0.95 / tables)
    assert abs(confirmed - 0.05) < bound and abs(refuted - 0.05) < bound
    low, high = est.interval(0.95)
    assert abs(((low <= 0) & (high >= 0)).mean() - 0.95) < bound


def test_many_cells_with_a_spread_that_changes_with_noise_keep_the_level():
    rng = np.random.default_rng(7)
    spreads = np.repeat([0.005, 0.02, 0.08], 3)  # three noise rates, three cells each
    values = rng.normal(0.0, spreads[None, :, None], size=(20_000, 9, 3))
    est = stats.contrast(values, np.full(9, 1 / 9), strata=np.repeat([0, 1, 2], 3))
    assert (est.p_above() <= stats.ALPHA).mean() < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 20_000)


def test_a_cell_with_one_seed_leaves_the_statement_unjudged():
    est = stats.contrast(np.array([[[0.3, np.nan], [0.3, 0.31]]]), np.array([0.5, 0.5]))
    assert not est.judgeable[0]
    verdict = stats.judge([stats.effect_test("gain", est)]).verdict[0]
    assert verdict == INCONCLUSIVE


def test_runs_that_agree_exactly_are_a_certain_difference():
    est = one_cell(0.1, 0.1, 0.1)
    assert est.p_above()[0] < 1e-12 and est.p_below()[0] > 1 - 1e-12  # float rounding leaves a hair of spread


# --- statements ------------------------------------------------------------------------------


def test_an_effect_holds_above_zero_is_refuted_below_and_is_inconclusive_across():
    assert stats.judge([stats.effect_test("gain", one_cell(0.05, 0.06, 0.04))]).verdict[0] == HOLDS
    assert stats.judge([stats.effect_test("gain", one_cell(-0.05, -0.06, -0.04))]).verdict[0] == FAILS
    assert stats.judge([stats.effect_test("gain", one_cell(0.05, -0.06, 0.04))]).verdict[0] == INCONCLUSIVE


def test_no_gain_is_two_one_sided_tests_within_the_margin():
    margin = stats.NO_GAIN_MARGIN
    assert stats.judge([stats.no_gain_test("none", one_cell(0.0, 0.001, -0.001))]).verdict[0] == HOLDS
    assert stats.judge([stats.no_gain_test("none", one_cell(0.05, 0.051, 0.049))]).verdict[0] == FAILS
    assert stats.judge([stats.no_gain_test("none", one_cell(-0.05, -0.051, -0.049))]).verdict[0] == FAILS
    assert stats.judge([stats.no_gain_test("none", one_cell(0.0, 0.05, -0.04))]).verdict[0] == INCONCLUSIVE
    assert (
        stats.judge([stats.no_gain_test("none", one_cell(margin * 0.9, margin * 0.9, margin * 0.9))]).verdict[0]
        == HOLDS
    )


# --- a claim: intersection-union for holds, Holm for does not hold ----------------------------


def test_holm_steps_down_and_stops_at_the_first_survivor():
    rejected = stats.holm(np.array([[0.01, 0.04, 0.03]]), alpha=0.05)
    assert rejected.tolist() == [[True, False, False]]  # 0.01 <= 0.05/3; then 0.03 > 0.05/2 stops it
    assert stats.holm(np.array([[0.01, 0.02, 0.04]])).tolist() == [[True, True, True]]


def test_a_claim_holds_only_when_every_statement_holds():
    strong, weak = one_cell(0.05, 0.06, 0.04), one_cell(0.05, -0.06, 0.04)
    assert stats.judge([stats.effect_test("a", strong), stats.effect_test("b", strong)]).verdict[0] == HOLDS
    assert stats.judge([stats.effect_test("a", strong), stats.effect_test("b", weak)]).verdict[0] == INCONCLUSIVE


def test_a_refutation_must_survive_holm_over_the_claims_statements():
    borderline = one_cell(-0.02, -0.01, -0.025)  # one-sided p about 0.03: refuted alone
    assert stats.judge([stats.effect_test("a", borderline)]).verdict[0] == FAILS
    others = [stats.effect_test(str(i), one_cell(0.05, 0.06, 0.04)) for i in range(5)]
    assert stats.judge([stats.effect_test("a", borderline), *others]).verdict[0] == INCONCLUSIVE


def test_missing_runs_say_cannot_say_unless_a_refutation_stands():
    strong = stats.effect_test("a", one_cell(0.05, 0.06, 0.04))
    refuted = stats.effect_test("b", one_cell(-0.5, -0.6, -0.4))
    missing = stats.missing_test("c", "no runs of vit_l32")
    assert stats.judge([strong, missing]).verdict[0] == CANNOT_SAY
    assert stats.judge([refuted, missing]).verdict[0] == FAILS
    assert stats.judge([]).verdict[0] == CANNOT_SAY


def test_facts_hold_or_refute_with_certainty():
    assert stats.judge([stats.fact_test("ratio", True, "= 4.00")]).verdict[0] == HOLDS
    assert stats.judge([stats.fact_test("ratio", False, "= 1.00")]).verdict[0] == FAILS
    assert stats.judge([stats.fact_test("ratio", None, "unknown")]).verdict[0] == CANNOT_SAY
