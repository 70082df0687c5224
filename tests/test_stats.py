"""Statements and their combination: contrasts with the seed as the unit, TOST, Holm, the verdict.

Each test either compares with scipy's own t tests on the same numbers, or draws many seeded
tables with a known truth and checks how often a decision is wrong (binomial bounds of 3 to 4
standard errors, so a seeded draw cannot flake).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alvit.book import stats
from alvit.book.stats import CANNOT_SAY, FAILS, HOLDS, INCONCLUSIVE


def one_cell(*seeds: float) -> stats.Contrast:
    return stats.contrast(np.array([[seeds]]), np.array([1.0]))


def binomial_margin(p: float, tables: int, ses: float = 3.0) -> float:
    return ses * np.sqrt(p * (1 - p) / tables)


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


def test_a_contrast_of_many_cells_is_the_t_test_of_one_number_per_seed():
    """The seed is the unit: the weighted sum of a seed's cells, then a one-sample t test over seeds."""
    rng = np.random.default_rng(3)
    cells = rng.normal(0.02, 0.05, size=(6, 4))  # six cells (say three strategies at two rates), four seeds
    weights = np.array([1, 1, 1, -1, -1, -1]) / 3  # mean at one rate minus mean at the other
    est = stats.contrast(cells[None], weights)
    per_seed = weights @ cells
    reference = scipy_stats.ttest_1samp(per_seed, 0.0, alternative="greater")
    assert est.value[0] == pytest.approx(per_seed.mean())
    assert est.df[0] == 3 and est.seeds[0] == 4
    assert est.p_above()[0] == pytest.approx(reference.pvalue)
    # ... which is the paired t test of the two rates' per-seed means
    paired = scipy_stats.ttest_rel(cells[:3].mean(axis=0), cells[3:].mean(axis=0), alternative="greater")
    assert est.p_above()[0] == pytest.approx(paired.pvalue)


def test_a_seed_missing_in_one_weighted_cell_leaves_that_seed_out():
    cells = np.array([[0.10, 0.12, 0.11, np.nan], [0.02, 0.01, 0.04, 0.03], [9.0, np.nan, np.nan, np.nan]])
    est = stats.contrast(cells[None], np.array([1.0, -1.0, 0.0]))  # the third cell is not weighed
    reference = scipy_stats.ttest_1samp(cells[0, :3] - cells[1, :3], 0.0, alternative="greater")
    assert est.seeds[0] == 3 and est.p_above()[0] == pytest.approx(reference.pvalue)


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_with_no_effect_one_cell_confirms_at_the_nominal_rate(seeds):
    """The old percentile bootstrap said "holds" in 10% of null tables at 3 seeds; the t test keeps 5%."""
    rng = np.random.default_rng(seeds)
    tables = 20_000
    est = stats.contrast(rng.normal(0.0, 0.02, size=(tables, 1, seeds)), np.array([1.0]))
    confirmed = (est.p_above() <= stats.ALPHA).mean()
    refuted = (est.p_below() <= stats.ALPHA).mean()
    bound = binomial_margin(0.05, tables)
    assert abs(confirmed - 0.05) < bound and abs(refuted - 0.05) < bound
    low, high = est.interval(0.95)
    assert abs(((low <= 0) & (high >= 0)).mean() - 0.95) < bound


def test_many_cells_with_a_spread_that_changes_with_noise_keep_the_level():
    rng = np.random.default_rng(7)
    spreads = np.repeat([0.005, 0.02, 0.08], 3)  # three noise rates, three cells each
    values = rng.normal(0.0, spreads[None, :, None], size=(20_000, 9, 3))
    est = stats.contrast(values, np.full(9, 1 / 9))
    assert (est.p_above() <= stats.ALPHA).mean() < 0.05 + binomial_margin(0.05, 20_000)


def shared_seed_tables(icc: float, tables: int, cells: int, seeds: int, rng: np.random.Generator) -> np.ndarray:
    """``[tables, cells, seeds]`` of unit variance: a seed effect shared by every cell (share ``icc``) plus noise."""
    shared = rng.standard_normal((tables, 1, seeds))
    own = rng.standard_normal((tables, cells, seeds))
    return np.sqrt(icc) * shared + np.sqrt(1 - icc) * own


@pytest.mark.parametrize("icc", [0.25, 0.5])
@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_a_seed_effect_shared_by_the_cells_of_a_rate_keeps_the_level_and_the_coverage(icc, seeds):
    """Seven cells of one noise rate whose runs share the seed's draws (intra-class correlation ``icc``).

    The mean over cells is tested with no effect: it is confirmed in at most 5% of tables and its
    90% interval covers 90%. Counting every run as its own replicate (one t test on the 7 x seeds
    runs, the plausible wrong line) is shown to fail the same tables, so this test can tell.
    """
    tables, cells = 20_000, 7
    values = shared_seed_tables(icc, tables, cells, seeds, np.random.default_rng([seeds, int(icc * 100)]))
    est = stats.contrast(values, np.full(cells, 1 / cells))
    confirmed = (est.p_above() <= stats.ALPHA).mean()
    assert confirmed <= 0.05 + binomial_margin(0.05, tables), confirmed
    low, high = est.interval(0.9)
    covered = ((low <= 0) & (high >= 0)).mean()
    assert abs(covered - 0.9) <= binomial_margin(0.1, tables, 4), covered
    runs_as_replicates = scipy_stats.ttest_1samp(values.reshape(tables, -1), 0.0, axis=1, alternative="greater")
    assert (runs_as_replicates.pvalue <= stats.ALPHA).mean() > 0.1


def test_a_cell_with_one_seed_cannot_say_and_prints_no_estimate():
    est = stats.contrast(np.array([[[0.3, np.nan], [0.3, 0.31]]]), np.array([0.5, 0.5]))
    assert not est.judgeable[0] and est.seeds[0] == 1
    assert stats.judge([stats.effect_test("gain", est)]).verdict[0] == CANNOT_SAY
    assert est.format() == f"cannot say (1 seed; a spread needs at least {stats.MIN_SEEDS})"


def test_a_contrast_of_cells_with_no_runs_has_no_estimate():
    est = stats.contrast(np.full((1, 2, 3), np.nan), np.array([1.0, -1.0]))
    assert est.seeds[0] == 0 and not np.isfinite(est.value[0])
    assert "+0.000" not in est.format() and est.format().startswith("cannot say (no seed with every run")
    assert stats.judge([stats.no_gain_test("none", est)]).verdict[0] == CANNOT_SAY


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


# --- edge cases of the estimate: one seed, no spread, several tables --------------------------


def test_one_complete_seed_gives_its_own_contrast_and_no_evidence():
    """The mean of one number is that number; with no spread to estimate, no test can reject."""
    est = stats.contrast(np.array([[[0.30, np.nan], [0.26, 0.28]]]), np.array([1.0, -1.0]))
    assert est.seeds[0] == 1 and est.value[0] == pytest.approx(0.30 - 0.26)
    assert np.isnan(est.se[0])
    assert est.p_above()[0] == 1.0 and est.p_below()[0] == 1.0
    assert np.isnan(est.interval()[0][0]) and np.isnan(est.interval()[1][0])


@pytest.mark.filterwarnings("error")  # a division by zero would reach the reader's console
def test_runs_that_agree_to_the_last_bit_are_certain_past_the_bound_and_say_nothing_at_it():
    """0.5 is exact in binary, so the spread is exactly 0: t is infinite past the bound, 0/0 at it."""
    est = one_cell(0.5, 0.5, 0.5)
    assert est.se[0] == 0.0
    assert (est.p_above(0.0)[0], est.p_below(0.0)[0]) == (0.0, 1.0)
    assert (est.p_above(1.0)[0], est.p_below(1.0)[0]) == (1.0, 0.0)
    assert (est.p_above(0.5)[0], est.p_below(0.5)[0]) == (1.0, 1.0)
    for level in (0.9, 1.0):  # every interval of a sure value is that value, even the 100% one
        low, high = est.interval(level)
        assert (low[0], high[0]) == (0.5, 0.5)


def test_the_100_percent_interval_of_a_spread_is_the_whole_line():
    low, high = one_cell(0.04, 0.05, 0.06).interval(1.0)
    assert (low[0], high[0]) == (-np.inf, np.inf)


def test_each_table_is_estimated_on_its_own_and_one_with_no_weight_has_no_seed():
    """A table whose weights are all 0 (a slope with a single rate present) has no seed to count,
    whatever the other tables weigh."""
    values = np.array([[[0.10, 0.12, 0.13], [0.02, 0.01, 0.04]], [[0.5, 0.6, 0.7], [0.1, 0.1, 0.1]]])
    est = stats.contrast(values, np.array([[1.0, -1.0], [0.0, 0.0]]))
    reference = scipy_stats.ttest_1samp(values[0, 0] - values[0, 1], 0.0, alternative="greater")
    assert est.seeds.tolist() == [3, 0]
    assert est.value[0] == pytest.approx((values[0, 0] - values[0, 1]).mean()) and np.isnan(est.value[1])
    assert est.p_above()[0] == pytest.approx(reference.pvalue) and est.p_above()[1] == 1.0


def test_an_estimate_prints_with_its_90_percent_t_interval_to_three_decimals():
    """Mean 0.05, sd 0.01 over 3 seeds: half-width t(0.95, 2) * 0.01 / sqrt(3) = 2.92 * 0.00577 = 0.0169."""
    est = one_cell(0.04, 0.05, 0.06)
    assert est.format() == "+0.050 [+0.033, +0.067]"
    assert stats.effect_test("moderate", est).describe() == "moderate +0.050 [+0.033, +0.067]"


def test_a_second_table_prints_its_own_estimate():
    est = stats.contrast(np.array([[[0.04, 0.05, 0.06]], [[-0.1, -0.2, np.nan]]]), np.array([1.0]))
    assert est.format(1) == "-0.150 [-0.466, +0.166]"  # half-width t(0.95, 1) * 0.0707 / sqrt(2) = 6.31 * 0.05
    assert stats.no_gain_test("none", est).describe(1) == "none -0.150 [-0.466, +0.166]"


def test_the_seed_count_is_plural_when_more_than_one_seed_is_too_few(monkeypatch):
    monkeypatch.setattr(stats, "MIN_SEEDS", 3)
    assert one_cell(0.04, 0.05).format() == "cannot say (2 seeds; a spread needs at least 3)"


# --- the weights of a mean, a split and a slope ------------------------------------------------

RATES = np.array([0.0, 0.1, 0.2, 0.3, 0.5])  # noise rates: their spread is below 1
PRESENT = np.array(
    [
        [True, True, True, True, True],
        [True, False, True, True, True],
        [False, True, True, False, True],
        [False, False, True, False, False],
        [False, False, False, False, False],
    ]
)
MEANS = np.array([0.81, 0.77, 0.74, 0.66, 0.52])  # a cell's mean accuracy


@pytest.mark.filterwarnings("error")
def test_mean_weights_give_the_plain_mean_of_the_cells_present():
    weights = stats.mean_weights(PRESENT)
    for table in range(3):
        assert weights[table] @ MEANS == pytest.approx(MEANS[PRESENT[table]].mean())
    assert weights[3].tolist() == [0, 0, 1, 0, 0]
    assert weights[4].tolist() == [0] * 5  # nothing present: nothing weighed (and no division by zero)
    assert (weights[~PRESENT] == 0).all()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("upper", [RATES >= 0.3, (RATES >= 0.3).astype(float)], ids=["flags", "0.0 and 1.0"])
def test_split_weights_give_the_upper_cells_mean_minus_the_other_cells_mean(upper):
    weights = stats.split_weights(upper, PRESENT[:3])
    upper = upper.astype(bool)
    for table in range(3):
        high, low = PRESENT[table] & upper, PRESENT[table] & ~upper
        assert weights[table] @ MEANS == pytest.approx(MEANS[high].mean() - MEANS[low].mean())
    assert (weights[~PRESENT[:3]] == 0).all()


@pytest.mark.filterwarnings("error")
def test_slope_weights_give_the_least_squares_slope_of_the_cells_present():
    """Against numpy's polyfit and scipy's linregress on the cells present; a cell absent weighs 0."""
    weights = stats.slope_weights(RATES, PRESENT)
    for table in range(3):
        rates, means = RATES[PRESENT[table]], MEANS[PRESENT[table]]
        assert weights[table] @ MEANS == pytest.approx(np.polyfit(rates, means, 1)[0])
        assert weights[table] @ MEANS == pytest.approx(scipy_stats.linregress(rates, means).slope)
    assert (weights[~PRESENT] == 0).all()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "rates",
    [
        # three cells (say three models) at one rate: their mean rate is 0.2 + 2.8e-17 in binary, and
        # the residue once gave weights of 1e16, a "slope" of rounding
        pytest.param([0.2, 0.2, 0.2], id="one rate"),
        pytest.param([0.0, 1e-170, 0.0], id="rates whose squared spread underflows"),
    ],
)
def test_a_slope_needs_rates_that_differ_and_otherwise_weighs_nothing(rates):
    """No slope is estimable, so every weight is 0 and the contrast has no seed: it cannot say."""
    present = np.array([[True, True, True], [True, False, False], [False, False, False]])
    weights = stats.slope_weights(np.array(rates), present)
    assert weights.tolist() == [[0.0] * 3] * 3
    assert stats.contrast(np.full((3, 3, 4), 0.8), weights).seeds.tolist() == [0, 0, 0]


@pytest.mark.filterwarnings("error")
def test_only_a_table_whose_rates_differ_has_a_slope():
    """Three models at 0.2 and one at each of 0.1 and 0.3: with all five the slope is the least-squares
    one; with the three at 0.2 alone there is none, whatever the other table holds."""
    rates = np.array([0.1, 0.2, 0.2, 0.2, 0.3])
    present = np.array([[True] * 5, [False, True, True, True, False]])
    weights = stats.slope_weights(rates, present)
    assert weights[0] @ MEANS == pytest.approx(scipy_stats.linregress(rates, MEANS).slope)
    assert weights[1].tolist() == [0.0] * 5


# --- the tests of a statement against scipy's t tests ------------------------------------------


def test_an_effect_tests_above_zero_to_hold_and_below_zero_to_be_refuted():
    seeds = [0.012, -0.004, 0.021]
    test = stats.effect_test("gain", one_cell(*seeds))
    assert test.p_hold[0] == pytest.approx(scipy_stats.ttest_1samp(seeds, 0.0, alternative="greater").pvalue)
    assert test.p_refute[0] == pytest.approx(scipy_stats.ttest_1samp(seeds, 0.0, alternative="less").pvalue)


@pytest.mark.parametrize(
    "seeds",
    [
        pytest.param([0.016, 0.013, 0.019], id="near the upper margin: Bonferroni doubles the smaller p"),
        pytest.param([0.001, -0.002, 0.002], id="inside the margins: twice the p exceeds 1 and is 1"),
    ],
)
def test_no_gain_is_tost_and_is_refuted_by_the_bonferroni_of_its_two_sides(seeds):
    margin = stats.NO_GAIN_MARGIN
    test = stats.no_gain_test("none", one_cell(*seeds))

    def p(bound, alternative):
        return scipy_stats.ttest_1samp(seeds, bound, alternative=alternative).pvalue

    assert test.p_hold[0] == pytest.approx(max(p(-margin, "greater"), p(margin, "less")))
    assert test.p_refute[0] == pytest.approx(min(1.0, 2 * min(p(margin, "greater"), p(-margin, "less"))))


def test_a_fact_is_certain_and_says_what_it_is():
    true, false, unknown = (
        stats.fact_test("ratio", t, d) for t, d in ((True, "= 4.00"), (False, "= 1.00"), (None, "unknown"))
    )
    assert (true.p_hold.tolist(), true.p_refute.tolist()) == ([0.0], [1.0])  # one table unless told
    assert (false.p_hold.tolist(), false.p_refute.tolist()) == ([1.0], [0.0])
    assert true.describe() == "ratio = 4.00" and unknown.describe() == "ratio: unknown"
    assert stats.fact_test("ratio", True, "= 4.00", tables=3).p_hold.tolist() == [0.0] * 3


def test_a_statement_without_runs_carries_no_evidence_and_says_why():
    missing = stats.missing_test("vit_l32 against vit_l16", "no runs of vit_l32")
    assert (missing.p_hold.tolist(), missing.p_refute.tolist(), missing.judgeable.tolist()) == ([1.0], [1.0], [False])
    assert not missing.available
    assert missing.describe() == "vit_l32 against vit_l16: no runs of vit_l32"
    assert stats.missing_test("a", "why", tables=4).p_refute.tolist() == [1.0] * 4


# --- Holm and the verdict ----------------------------------------------------------------------


def holm_reference(p_values: list[float], alpha: float) -> list[bool]:
    """Holm (1979) by adjusted p-values: the i-th smallest gets max over j <= i of (m - j + 1) p_(j)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return [a <= alpha for a in adjusted]


def test_holm_matches_the_adjusted_p_values_of_holms_paper():
    rng = np.random.default_rng(11)
    families = rng.uniform(0, 0.08, size=(200, 5))
    families[:20, 1] = families[:20, 0]  # ties
    rejected = stats.holm(families, alpha=0.05)
    assert rejected.tolist() == [holm_reference(list(family), 0.05) for family in families]
    assert rejected.any() and not rejected.all()


def test_holm_rejects_a_p_value_equal_to_its_threshold():
    """0.025 = 0.05 / 2 and 0.05 = 0.05 / 1 exactly in binary: both thresholds are met, so both are rejected."""
    assert stats.holm(np.array([[0.05, 0.025]])).tolist() == [[True, True]]
    assert stats.holm(np.array([[0.05, 0.0250001]])).tolist() == [[False, False]]


def test_holm_works_over_the_last_axis_whatever_the_leading_ones():
    family = np.array([0.01, 0.04, 0.03])
    assert stats.holm(family).tolist() == [True, False, False]
    stacked = np.array([[[0.01, 0.04, 0.03], [0.01, 0.02, 0.04]], [[0.2, 0.01, 0.5], [0.04, 0.03, 0.001]]])
    expected = [[holm_reference(list(f), 0.05) for f in tables] for tables in stacked]
    assert stats.holm(stacked).tolist() == expected


def test_holm_over_no_statements_rejects_nothing():
    rejected = stats.holm(np.zeros((3, 0)))
    assert rejected.shape == (3, 0) and rejected.dtype == bool


def stated(p_hold: float, p_refute: float) -> stats.Test:
    """A statement with given p-values (one table)."""
    return stats.Test("s", np.array([p_hold]), np.array([p_refute]), np.array([True]))


def test_a_statement_holds_and_is_refuted_at_a_p_value_equal_to_the_level():
    """A level-alpha test rejects when p <= alpha."""
    assert stats.judge([stated(stats.ALPHA, 1.0)]).verdict[0] == HOLDS
    assert stats.judge([stated(1.0, stats.ALPHA)]).verdict[0] == FAILS
    assert stats.judge([stated(np.nextafter(stats.ALPHA, 1), 1.0)]).verdict[0] == INCONCLUSIVE


def test_the_level_given_to_judge_is_the_level_of_holds_and_of_holm():
    assert stats.judge([stated(0.08, 1.0)], alpha=0.1).verdict[0] == HOLDS
    two = [stated(1.0, 0.04), stated(1.0, 0.08)]  # Holm at 0.1: 0.04 <= 0.1 / 2, then 0.08 <= 0.1
    assert stats.judge(two, alpha=0.1).refuted.tolist() == [[True, True]]
    assert stats.judge(two).refuted.tolist() == [[False, False]]  # at 0.05: 0.04 > 0.05 / 2


def test_a_claim_with_no_statements_has_empty_flags():
    judgement = stats.judge([])
    for flags in (judgement.holds, judgement.refuted, judgement.usable):
        assert flags.shape == (1, 0) and flags.dtype == bool


def test_each_table_gets_its_own_verdict_and_each_statement_its_own_outcome():
    """Four tables, two statements: refuted, cannot say, holds, inconclusive."""
    a = np.array([[-0.5, -0.6, -0.4], [0.05, 0.06, 0.04], [0.05, 0.06, 0.04], [0.05, 0.06, 0.04]])
    b = np.array([[0.05, 0.06, 0.04], [0.05, np.nan, np.nan], [0.05, 0.06, 0.04], [0.05, -0.06, 0.04]])
    tests = [
        stats.effect_test(name, stats.contrast(v[:, None, :], np.array([1.0]))) for name, v in (("a", a), ("b", b))
    ]
    judgement = stats.judge(tests)
    assert judgement.verdict.tolist() == [FAILS, CANNOT_SAY, HOLDS, INCONCLUSIVE]
    assert judgement.usable.tolist() == [[True, True], [True, False], [True, True], [True, True]]
    assert judgement.holds.tolist() == [[False, True], [True, False], [True, True], [True, False]]
    assert judgement.refuted.tolist() == [[True, False], [False, False], [False, False], [False, False]]
    outcomes = [[stats.outcome(judgement, i, table) for i in range(2)] for table in range(4)]
    assert outcomes == [[FAILS, HOLDS], [HOLDS, CANNOT_SAY], [HOLDS, HOLDS], [HOLDS, INCONCLUSIVE]]
    assert stats.outcome(stats.judge([tests[0]]), 0) == FAILS  # the first table unless told
