"""The numbers a power simulation draws from, on grids small enough to work out by hand.

:mod:`alvit.book.power` estimates each noise rate's seed spread from the runs (:func:`rate_spreads`),
tests the runs for a seed effect they share (:func:`seed_term`, :func:`seed_effect`), puts each
claim's effect into the cell means (:func:`claim_effects`), makes each claim false in exactly one
statement (:func:`least_favourable`), and draws tables around those means (:func:`simulated_cube`).
Here each is checked against a value written out by hand, or computed by a reference written here
(a least-squares ANOVA, scipy's Fisher combination), without simulating a single verdict: these
tests take milliseconds, so they run once per mutant of the module.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from alvit.book import power

# Per metric, four per-rate sds whose root mean square (the pooled sd, the unit of an effect) is round:
# sqrt((1 + 49 + 1 + 49) / 4) = 5, sqrt((1 + 1 + 9 + 25) / 4) = 3 and 4, in hundredths.
POOLED = {"test_acc": 0.05, "ece": 0.03, "brier": 0.04}
SPREADS = {"test_acc": (0.01, 0.07, 0.01, 0.07), "ece": (0.01, 0.01, 0.03, 0.05), "brier": (0.04,) * 4}
MODELS = ("swinv2_t", "vit_b16", "vit_l16", "vit_l32")
STRATEGIES = ("entropy", "gci_vital", "random")
# 0 is low noise, 0.3 and 0.5 moderate, 0.8 high.
GRID = power.SettingGrid("toy · flip", MODELS, STRATEGIES, (0.0, 0.3, 0.5, 0.8), SPREADS, (power.GIVEN,) * 4)
EFFECT = 2.0
ACC, ECE, BRIER = (EFFECT * POOLED[m] for m in power.METRICS)  # an effect of 2 pooled sds, absolute
STRONG_ACC = power.STRONG_EFFECT * POOLED["test_acc"]


def zeros() -> np.ndarray:
    return np.zeros((len(MODELS), len(STRATEGIES), 4))


def assert_means(means: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    """Every metric's cell means are the expected ones; a metric not named is 0 in every cell."""
    assert set(means) == set(power.METRICS)
    for metric in power.METRICS:
        assert means[metric] == pytest.approx(expected.get(metric, zeros()), abs=1e-12), metric


# --- the spreads ------------------------------------------------------------------------------


def runs(rate: float, cells: dict[tuple[str, str], list[float]], metric: str = "test_acc") -> pd.DataFrame:
    """One row per run at ``rate``: each (model, strategy) cell's values, seed 0 upwards."""
    return pd.DataFrame(
        [
            {"noise_rate": rate, "model": model, "strategy": strategy, "seed": seed, metric: value}
            for (model, strategy), values in cells.items()
            for seed, value in enumerate(values)
        ]
    )


def test_a_rates_spread_pools_the_cells_with_two_seeds_or_more_by_their_degrees_of_freedom():
    """At noise 0.3 (written 0.1 * 3, a key of 0.3): a cell of three seeds (variance 0.01, 2 degrees of
    freedom), one of two (variance 0.02, 1), one of a single seed and one whose metric is missing in
    every run (no degrees of freedom): sqrt((2 * 0.01 + 1 * 0.02) / 3). At noise 0.5, one cell of two
    seeds is enough; at noise 0.8, no cell has two seeds, and the rate is left out."""
    rows = pd.concat(
        [
            runs(
                0.1 * 3,
                {
                    ("a", "random"): [0.5, 0.6, 0.7],
                    ("a", "entropy"): [0.2, 0.4],
                    ("b", "random"): [0.9],
                    ("b", "entropy"): [np.nan, np.nan],
                },
            ),
            runs(0.5, {("a", "random"): [0.1, 0.3], ("b", "random"): [0.8]}),
            runs(0.8, {("a", "random"): [0.1], ("b", "random"): [0.7]}),
        ]
    )
    spreads = power.rate_spreads(rows, "test_acc")
    assert list(spreads) == [0.3, 0.5]
    assert spreads[0.3] == pytest.approx(np.sqrt(0.04 / 3))
    assert spreads[0.5] == pytest.approx(np.sqrt(0.02))


def test_a_rate_whose_runs_all_agree_has_a_spread_of_zero():
    rows = runs(0.2, {("a", "random"): [0.5, 0.5], ("b", "random"): [0.7, 0.7, 0.7]}, metric="brier")
    assert power.rate_spreads(rows, "brier") == {0.2: 0.0}


# --- the runs' shared seed effect ---------------------------------------------------------------


def anova_seed_term(layout: np.ndarray) -> tuple[float, float]:
    """The seed term of ``layout`` ``[cells, seeds]`` by least squares: F is the drop in the residual sum
    of squares when seed dummies join the cell dummies; the ICC is ``(F - 1) / (F + cells - 1)``."""
    cells, seeds = layout.shape
    y = layout.ravel()
    cell_dummies = np.kron(np.eye(cells), np.ones((seeds, 1)))
    seed_dummies = np.kron(np.ones((cells, 1)), np.eye(seeds))[:, 1:]

    def rss(design: np.ndarray) -> float:
        return float(np.sum((y - design @ np.linalg.lstsq(design, y, rcond=None)[0]) ** 2))

    full, cells_only = rss(np.hstack([cell_dummies, seed_dummies])), rss(cell_dummies)
    df_error = (cells - 1) * (seeds - 1)
    f = ((cells_only - full) / (seeds - 1)) / (full / df_error)
    return (f - 1) / (f + cells - 1), float(scipy_stats.f.sf(f, seeds - 1, df_error))


def test_the_seed_term_is_the_least_squares_two_way_anova():
    rng = np.random.default_rng(4)
    layout = rng.normal(size=(6, 3)) + np.array([0.0, 0.5, -0.2])[None, :]  # 6 cells x 3 seeds, a seed effect
    icc, p = anova_seed_term(layout)
    assert power.seed_term(layout) == pytest.approx((icc, p))


def test_the_seed_term_of_the_smallest_layout_two_cells_by_two_seeds_is_the_anova():
    layout = np.array([[0.1, 0.4], [0.3, 0.2]])
    assert power.seed_term(layout) == pytest.approx(anova_seed_term(layout))


@pytest.mark.parametrize("shape", [(1, 3), (3, 1), (1, 1)])
def test_a_layout_of_one_cell_or_one_seed_has_no_seed_term_and_divides_by_nothing(shape):
    """NaN, quietly: no degrees of freedom for the error (one cell) or the seeds (one seed), and no
    division by zero on the way (a warning would be printed in the middle of ``alvit power``'s report)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        icc, p = power.seed_term(np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape))
    assert np.isnan(icc) and np.isnan(p)


def test_an_exactly_additive_layout_has_no_residual_spread_and_so_no_seed_term():
    """Cell plus seed with nothing left over (every mean exact in binary): the F ratio would divide by 0."""
    layout = np.array([[0.0, 2.0], [4.0, 6.0], [1.0, 3.0], [3.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        icc, p = power.seed_term(layout)
    assert np.isnan(icc) and np.isnan(p)


def seed_rows() -> pd.DataFrame:
    """One setting's final rounds: 2 models x 2 strategies, accuracy and ECE of independent draws plus a
    seed effect. Noise 0: seeds 0 to 2, but vit_b16 · random lacks seed 2 (it leaves that rate's layout);
    noise 0.4: every cell has seeds 0 and 1; noise 0.8: seed 0 only (no seed term to test)."""
    rng = np.random.default_rng(7)
    rows = []
    for rate, seeds in ((0.0, 3), (0.4, 2), (0.8, 1)):
        shift = rng.normal(size=seeds)  # the seed effect shared by the cells of a rate
        for model in ("vit_b16", "vit_l32"):
            for strategy in ("entropy", "random"):
                for seed in range(seeds):
                    if (rate, model, strategy, seed) == (0.0, "vit_b16", "random", 2):
                        continue
                    acc, ece = 0.5 + 0.1 * shift[seed] + rng.normal(scale=0.1, size=2)
                    rows.append(
                        {
                            "noise_rate": rate,
                            "model": model,
                            "strategy": strategy,
                            "seed": seed,
                            "test_acc": acc,
                            "ece": ece,
                        }
                    )
    return pd.DataFrame(rows)


def layout_of(rows: pd.DataFrame, rate: float, metric: str, cells: list[tuple[str, str]]) -> np.ndarray:
    """``[cells, seeds]`` of ``metric`` at ``rate``, the cells in the order given."""
    at_rate = rows[rows["noise_rate"] == rate]
    seeds = sorted(at_rate["seed"].unique())
    return np.array(
        [
            [
                at_rate.loc[
                    (at_rate["model"] == m) & (at_rate["strategy"] == s) & (at_rate["seed"] == d), metric
                ].item()
                for d in seeds
            ]
            for m, s in cells
        ]
    )


@pytest.mark.parametrize(("metric", "named"), [("test_acc", ()), ("ece", ("ece",))])
def test_the_shared_seed_effect_tests_each_rates_complete_cells_and_combines_the_rates_by_fisher(metric, named):
    """Accuracy when no metric is named. Noise 0 tests the three cells with every seed, noise 0.4 all four."""
    rows = seed_rows()
    complete = [("vit_b16", "entropy"), ("vit_l32", "entropy"), ("vit_l32", "random")]
    at_0 = anova_seed_term(layout_of(rows, 0.0, metric, complete))
    at_04 = anova_seed_term(layout_of(rows, 0.4, metric, [*complete, ("vit_b16", "random")]))
    effect = power.seed_effect(rows, "cifar10 · flip", *named)
    assert (effect.setting, effect.metric, effect.rates) == ("cifar10 · flip", metric, (0.0, 0.4))
    assert effect.icc == pytest.approx((at_0[0], at_04[0]))
    assert effect.p_by_rate == pytest.approx((at_0[1], at_04[1]))
    fisher = scipy_stats.combine_pvalues([at_0[1], at_04[1]], method="fisher").pvalue
    assert effect.p == pytest.approx(fisher)


def test_runs_of_one_seed_show_no_shared_seed_effect():
    rows = seed_rows()
    assert power.seed_effect(rows[rows["seed"] == 0], "cifar10 · flip") is None


def test_a_rates_p_of_exactly_zero_counts_as_1e_300_in_fishers_method():
    """A seed effect far beyond the residual spread (F about 1e25 on 10 and 40 degrees of freedom) makes the
    rate's F test underflow to p = 0; Fisher's method takes it as 1e-300, quietly, not as the log of 0."""
    cells, seeds = 5, 11
    layout = np.arange(seeds, dtype=float)[None, :] + 1e-15 * np.arange(cells * seeds).reshape(cells, seeds) ** 2
    rows = pd.DataFrame(
        [
            {"noise_rate": 0.2, "model": f"m{c}", "strategy": "random", "seed": s, "test_acc": layout[c, s]}
            for c in range(cells)
            for s in range(seeds)
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        effect = power.seed_effect(rows, "cifar10 · flip")
    assert effect.p_by_rate == (0.0,)
    assert effect.p == pytest.approx(scipy_stats.chi2.sf(-2 * np.log(1e-300), 2)) and effect.p > 0


# --- the cell means of a true claim -------------------------------------------------------------


def test_claim_1_accuracy_falls_by_the_effect_at_every_step_between_neighbouring_rates():
    assert_means(power.claim_effects(1, GRID, EFFECT), {"test_acc": zeros() + [0, -ACC, -2 * ACC, -3 * ACC]})


@pytest.mark.parametrize("claim", [2, 3])
def test_claims_2_and_3_put_vit_l32_ahead_in_accuracy_and_claim_2_in_ece_and_brier_too(claim):
    acc, ece, brier = zeros(), zeros(), zeros()
    acc[3], ece[3], brier[3] = ACC, -ECE, -BRIER  # vit_l32, the last model
    expected = {"test_acc": acc, "ece": ece, "brier": brier} if claim == 2 else {"test_acc": acc}
    assert_means(power.claim_effects(claim, GRID, EFFECT), expected)


def test_claim_4_swinv2_loses_the_effect_at_every_rate_above_the_lowest():
    acc = zeros()
    acc[0, :, 1:] = -ACC  # swinv2_t, the first model
    assert_means(power.claim_effects(4, GRID, EFFECT), {"test_acc": acc})


def test_claim_5_entropy_and_gci_vital_gain_the_effect_at_moderate_noise_only():
    acc = zeros()
    acc[:, :2] = [0, ACC, ACC, 0]  # entropy and gci_vital; noise 0.3 and 0.5 are moderate
    assert_means(power.claim_effects(5, GRID, EFFECT), {"test_acc": acc})


def test_claim_6_entropy_and_gci_vital_have_the_effect_more_ece_and_brier_and_twice_it_at_high_noise():
    ece, brier = zeros(), zeros()
    ece[:, :2] = [ECE, ECE, ECE, 2 * ECE]  # noise 0.8 is high
    brier[:, :2] = [BRIER, BRIER, BRIER, 2 * BRIER]
    assert_means(power.claim_effects(6, GRID, EFFECT), {"ece": ece, "brier": brier})


ACQUISITIONS = ("entropy", "entropy · aware", "entropy · noisy", "entropy · true", "random · noisy")
GRID_B = power.SettingGrid(
    "toy · flip", ("vit_b16", "vit_l32"), ACQUISITIONS, (0.0, 0.4, 0.8), {m: (0.05,) * 3 for m in power.METRICS}, ()
)


def test_question_b_each_practical_temperature_raises_accuracy_by_the_effect_at_every_noisy_rate():
    """aware and noisy are what a practitioner can fit; true (the oracle's) and none are not raised."""
    acc = np.zeros((2, len(ACQUISITIONS), 3))
    acc[:, [1, 2, 4], 1:] = EFFECT * 0.05
    means = power.claim_effects("B", GRID_B, EFFECT)
    assert set(means) == set(power.METRICS)
    assert means["test_acc"] == pytest.approx(acc) and not means["ece"].any() and not means["brier"].any()


@pytest.mark.parametrize("claim", [1, 2, 3, 4, 5, 6, "B"])
def test_a_grid_without_strategies_has_empty_cell_means_for_every_claim(claim):
    """No strategy names a practical temperature either: question B's mask of them is an empty boolean one,
    which indexes nothing (an empty array of another type cannot index at all)."""
    grid = power.SettingGrid("toy · flip", ("vit_b16", "vit_l32"), (), (0.0, 0.4, 0.8), GRID_B.sd, ())
    means = power.claim_effects(claim, grid, EFFECT)
    assert {metric: values.shape for metric, values in means.items()} == dict.fromkeys(power.METRICS, (2, 0, 3))


# --- the least favourable false configuration ---------------------------------------------------


def test_claim_1_least_favourable_is_the_first_model_level_across_the_middle_step():
    acc = zeros() + [0, -STRONG_ACC, -2 * STRONG_ACC, -3 * STRONG_ACC]
    acc[0] = [0, -STRONG_ACC, -STRONG_ACC, -2 * STRONG_ACC]
    means, words = power.least_favourable(1, GRID)
    assert_means(means, {"test_acc": acc})
    assert words == "every model falls by 10 pooled sds at every step, except swinv2_t, level from noise 0.3 to 0.5"


def test_claim_2_least_favourable_is_vit_b16_level_with_vit_l32_in_ece_at_moderate_noise():
    acc, ece, brier = zeros(), zeros(), zeros()
    acc[3], ece[3], brier[3] = STRONG_ACC, -0.3, -0.4  # 10 pooled sds of each metric
    ece[1, :, 1:3] = -0.3  # vit_b16 at noise 0.3 and 0.5
    means, words = power.least_favourable(2, GRID)
    assert_means(means, {"test_acc": acc, "ece": ece, "brier": brier})
    assert words == "vit_l32 ahead by 10 pooled sds everywhere, except level with vit_b16 in ECE at moderate noise"


def test_claim_3_least_favourable_is_vit_l32_level_with_vit_l16_at_the_middle_rate():
    acc = zeros()
    acc[3] = [STRONG_ACC, STRONG_ACC, 0, STRONG_ACC]
    means, words = power.least_favourable(3, GRID)
    assert_means(means, {"test_acc": acc})
    assert words == "vit_l32 ahead of vit_l16 by 10 pooled sds at every rate except noise 0.5, level there"


@pytest.mark.parametrize(
    ("rates", "same"),
    [((0.0, 0.3, 0.5, 0.8), 2), ((0.0, 0.2, 0.4, 0.6, 0.8), 3)],
)
def test_claim_4_least_favourable_is_no_extra_loss_at_the_middle_of_the_rates_above_the_lowest(rates, same):
    """Above the lowest rate, 3 rates (the middle is the 2nd) or 4 (the 2nd of the two middle ones)."""
    grid = power.SettingGrid("toy · flip", MODELS, STRATEGIES, rates, {}, ()).with_sd(0.05)
    acc = np.zeros((len(MODELS), len(STRATEGIES), len(rates)))
    acc[0, :, 1:] = -STRONG_ACC
    acc[0, :, same] = 0
    means, words = power.least_favourable(4, grid)
    assert means["test_acc"] == pytest.approx(acc)
    assert words == (
        "the SwinV2 models lose 10 pooled sds more accuracy than the ViTs at every rate above the lowest, "
        f"except noise {rates[same]:g}, the same there"
    )


def test_claim_5_least_favourable_is_entropy_gaining_exactly_the_margin_at_high_noise():
    acc = zeros()
    acc[:, :2] = [0, STRONG_ACC, STRONG_ACC, 0]
    acc[:, 0, 3] = 0.01  # the no-gain margin, in accuracy
    means, words = power.least_favourable(5, GRID)
    assert_means(means, {"test_acc": acc})
    assert words == (
        "entropy and GCI-ViTAL gain 10 pooled sds at moderate noise and nothing at low noise; at high noise "
        "GCI-ViTAL gains nothing and entropy exactly the 0.01 margin"
    )


def test_claim_6_least_favourable_is_entropys_ece_excess_not_doubling_at_high_noise():
    ece, brier = zeros(), zeros()
    ece[:, :2] = [0.3, 0.3, 0.3, 0.6]  # 10 pooled sds (0.03), twice at noise 0.8
    ece[:, 0] = 0.3
    brier[:, :2] = [0.4, 0.4, 0.4, 0.8]
    means, words = power.least_favourable(6, GRID)
    assert_means(means, {"ece": ece, "brier": brier})
    assert words == (
        "entropy and GCI-ViTAL have 10 pooled sds more ECE and Brier than random everywhere and twice that at "
        "high noise, except entropy's ECE excess, the same at high noise as elsewhere"
    )


def test_question_b_least_favourable_is_the_aware_temperature_raising_nothing():
    acc = np.zeros((2, len(ACQUISITIONS), 3))
    acc[:, [2, 4], 1:] = 0.5  # noisy: 10 pooled sds of 0.05; aware (column 1) nothing
    means, words = power.least_favourable("B", GRID_B)
    assert means["test_acc"] == pytest.approx(acc)
    assert words == "acq.calibrate noisy raises accuracy by 10 pooled sds at every noisy rate, aware not at all"


def test_a_claim_that_does_not_exist_has_no_least_favourable_configuration():
    with pytest.raises(ValueError, match="^no claim 7$"):
        power.least_favourable(7, GRID)


# --- the simulated tables -----------------------------------------------------------------------


def test_a_simulated_table_is_the_cell_means_plus_normal_noise_of_each_rates_sd_accuracy_drawn_first():
    """The same generator, drawn by hand in the same order (accuracy, then ECE, then Brier), gives the
    same tables: each run's value is its cell's mean plus its rate's sd times a standard normal."""
    means = power.claim_effects(6, GRID, EFFECT)
    cube = power.simulated_cube(GRID, means, 3, 2, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    assert (cube.models, cube.strategies, cube.seeds, cube.tables) == (MODELS, STRATEGIES, (0, 1, 2), 2)
    assert cube.rates.dtype == float and list(cube.rates) == [0.0, 0.3, 0.5, 0.8]
    assert cube.gflops == {"vit_l16": 4.0, "vit_l32": 1.0}
    for metric in power.METRICS:
        noise = rng.standard_normal((2, len(MODELS), len(STRATEGIES), 4, 3))
        expected = means[metric][None, ..., None] + np.array(SPREADS[metric])[:, None] * noise
        assert cube.metrics[metric] == pytest.approx(expected, abs=1e-15), metric


def test_a_simulated_table_draws_only_the_metrics_asked_for():
    cube = power.simulated_cube(
        GRID, power.claim_effects(3, GRID, EFFECT), 2, 1, np.random.default_rng(0), ("test_acc",)
    )
    assert list(cube.metrics) == ["test_acc"] and cube.metrics["test_acc"].shape == (1, 4, 3, 4, 2)


def test_a_hand_written_grid_with_integer_rates_still_gives_a_cube_of_float_rates():
    grid = power.SettingGrid("toy · flip", MODELS, STRATEGIES, (0,), {}, ()).with_sd(1)
    cube = power.simulated_cube(grid, power.claim_effects(3, grid, EFFECT), 2, 1, np.random.default_rng(0))
    assert cube.rates.dtype == float


def test_the_monte_carlo_standard_error_of_a_share_is_that_of_a_binomial_proportion():
    assert power.monte_carlo_se(0.2, 100) == pytest.approx(0.04)
    assert power.monte_carlo_se(0.0, 100) == 0.0
