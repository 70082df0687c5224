"""Each claim's statements on small cubes built by hand, checked against references written here.

A cube holds a few models, strategies, noise rates and three seeds, with per-run numbers set in the
test. For every statement the test says which runs it compares and how (the per-seed contrast,
computed here by indexing the hand-built array), and checks the estimate and its p-values against
scipy's one-sample t test on those per-seed numbers (the seed is the unit), then the verdict. A
statement that cannot be judged must say so in the sentence a reader sees. Every cube holds two
identical tables, so that a statement that forgets how many tables it judges shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from alvit.book import claims, stats
from alvit.book.stats import CANNOT_SAY, FAILS, HOLDS, INCONCLUSIVE

TABLES = 2
SEEDS = 3
VITS = ("vit_b16", "vit_b32", "vit_l16", "vit_l32")


def cube(metrics: dict[str, np.ndarray], models, strategies, rates, gflops=None, seeds=()) -> claims.Cube:
    """A cube of ``TABLES`` identical tables; ``metrics[name]`` is ``[models, strategies, rates, seeds]``."""
    stacked = {name: np.stack([np.asarray(values, float)] * TABLES) for name, values in metrics.items()}
    return claims.Cube(tuple(models), tuple(strategies), np.array(rates, float), stacked, gflops or {}, seeds)


def noise(shape, seed: int, sd: float = 0.005) -> np.ndarray:
    """Run-to-run noise of its own for every run, so that per-seed contrasts have a spread."""
    return sd * np.random.default_rng(seed).standard_normal(shape)


def assert_effect(test: stats.Test, per_seed: np.ndarray) -> None:
    """``test`` is "the mean of ``per_seed`` is above zero", tested with the seed as the unit."""
    assert test.available and test.judgeable.tolist() == [True] * TABLES, test.describe()
    np.testing.assert_allclose(test.contrast.value, [np.mean(per_seed)] * TABLES, atol=1e-12)
    np.testing.assert_allclose(test.p_hold, scipy_stats.ttest_1samp(per_seed, 0.0, alternative="greater").pvalue)
    np.testing.assert_allclose(test.p_refute, scipy_stats.ttest_1samp(per_seed, 0.0, alternative="less").pvalue)


def assert_no_gain(test: stats.Test, per_seed: np.ndarray, margin: float = stats.NO_GAIN_MARGIN) -> None:
    """``test`` is "the mean of ``per_seed`` lies within ±margin" as two one-sided t tests (TOST)."""
    above = scipy_stats.ttest_1samp(per_seed, -margin, alternative="greater").pvalue
    below = scipy_stats.ttest_1samp(per_seed, margin, alternative="less").pvalue
    np.testing.assert_allclose(test.contrast.value, [np.mean(per_seed)] * TABLES, atol=1e-12)
    np.testing.assert_allclose(test.p_hold, max(above, below))


def assert_cannot_say(test: stats.Test, name: str, why: str) -> None:
    """``test`` is the statement ``name``, not judged, for the reason ``why`` (a reader's sentence)."""
    assert (test.name, test.detail, test.available) == (name, why, False)
    assert test.p_hold.shape == test.judgeable.shape == (TABLES,)
    assert test.describe() == f"{name}: {why}"


def named(tests: list[stats.Test]) -> dict[str, stats.Test]:
    return {test.name: test for test in tests}


# --- noise bands -----------------------------------------------------------------------------


def test_every_rate_falls_in_exactly_one_band_with_the_edges_in_moderate():
    """low < 0.3 <= moderate <= 0.6 < high; a rate within rounding (1e-9) of an edge is on the edge."""
    rates = np.array([0.0, 0.29, 0.3 - 1e-9, 0.3, 0.1 * 3, 0.45, 0.6, 0.7 - 0.1, 0.6 + 1e-9, 0.61, 0.9])
    expected = {
        "low": [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "moderate": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0],
        "high": [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        "all": [1] * len(rates),
    }
    for name, members in expected.items():
        assert claims.band(rates, name).tolist() == [bool(m) for m in members], name


# --- the cube ----------------------------------------------------------------------------------


def test_a_cube_given_no_seeds_numbers_them_from_zero_and_a_statement_on_it_is_judged():
    acc = np.zeros((1, 1, 2, SEEDS))
    acc[..., 0, :] = 0.9 + noise(SEEDS, 0)
    simulated = cube({"test_acc": acc}, ("vit_b16",), ("random",), (0.0, 0.5))
    assert simulated.seeds == (0, 1, 2)
    assert simulated.gap() is None
    assert_effect(claims.tests_claim_1(simulated)[0], acc[0, 0, 0] - acc[0, 0, 1])


def test_a_cube_of_two_seeds_can_be_judged_and_of_none_says_so():
    two = cube({"test_acc": np.ones((1, 1, 1, 2))}, ("vit_b16",), ("random",), (0.0,))
    assert two.gap() is None
    none = cube({"test_acc": np.ones((1, 1, 1, 0))}, ("vit_b16",), ("random",), (0.0,))
    assert none.gap() == "only seed none in these runs; a spread needs at least 2 seeds"


def test_a_cube_from_rows_keeps_the_seeds_names():
    final = pd.DataFrame({"model": "vit_b16", "strategy": "random", "noise_rate": 0.2, "seed": [7], "test_acc": [0.9]})
    one = claims.Cube.from_rows(final)
    assert one.seeds == (7,) and one.gflops == {}
    assert one.gap() == "only seed 7 in these runs; a spread needs at least 2 seeds"
    three = claims.Cube.from_rows(pd.concat([final.assign(seed=s) for s in (3, 5, 9)]))
    assert three.seeds == (3, 5, 9) and three.gap() is None


def test_a_gap_over_every_run_names_the_missing_ones():
    acc = np.ones((2, 2, 2, SEEDS))
    acc[1, 0, 1, 2] = np.nan
    missing = cube({"test_acc": acc}, ("vit_b16", "vit_l32"), ("entropy", "random"), (0.0, 0.5))
    assert missing.gap() == "missing runs: entropy at noise 0.5 (vit_l32, seed 2)"
    assert missing.gap(models=("vit_b16",)) is None
    assert missing.gap(strategies=("random",)) is None
    assert missing.gap(rates=np.array([True, False])) is None
    assert missing.gap(rates=[0, 1]) == "missing runs: entropy at noise 0.5 (vit_l32, seed 2)"  # a mask, not positions


# --- claim 1: accuracy falls as noise rises, for every model ---------------------------------


def test_claim_1_tests_every_step_of_every_model_on_its_mean_over_strategies():
    """vit_b16 rises from noise 0.2 to 0.4 (by 0.04); every other step falls by 0.06."""
    rates = np.array([0.0, 0.2, 0.4])
    acc = 0.9 - 0.3 * rates[None, None, :, None] + noise((2, 2, 3, SEEDS), 1)
    acc[0, :, 2] += 0.1
    tests = claims.tests_claim_1(cube({"test_acc": acc}, ("vit_b16", "vit_l32"), ("entropy", "random"), rates))
    steps = [("vit_b16", 0, 1), ("vit_b16", 1, 2), ("vit_l32", 0, 1), ("vit_l32", 1, 2)]
    assert [t.name for t in tests] == [f"{m} from noise {rates[lo]:g} to {rates[hi]:g}" for m, lo, hi in steps]
    for test, (model, low, high) in zip(tests, steps):
        m = ("vit_b16", "vit_l32").index(model)
        assert_effect(test, acc[m, :, low].mean(axis=0) - acc[m, :, high].mean(axis=0))
    judgement = stats.judge(tests)
    assert judgement.verdict[0] == FAILS
    assert judgement.refuted[0].tolist() == [False, True, False, False]


def test_claim_1_has_a_statement_per_model_at_two_rates_and_cannot_say_at_one():
    acc = 0.9 + noise((2, 1, 2, SEEDS), 2)
    two = claims.tests_claim_1(cube({"test_acc": acc}, ("vit_b16", "vit_l32"), ("random",), (0.1, 0.3)))
    assert [t.name for t in two] == ["vit_b16 from noise 0.1 to 0.3", "vit_l32 from noise 0.1 to 0.3"]
    (one,) = claims.tests_claim_1(cube({"test_acc": acc[:, :, :1]}, ("vit_b16", "vit_l32"), ("random",), (0.1,)))
    assert_cannot_say(one, "every step", "needs at least two noise rates")


def test_claim_1_a_missing_run_spoils_only_its_own_models_step():
    rates = np.array([0.0, 0.2, 0.4])
    acc = 0.9 - 0.3 * rates[None, None, :, None] + noise((2, 2, 3, SEEDS), 3)
    acc[0, 0, 2, 1] = np.nan  # vit_b16, entropy, noise 0.4, seed 1
    tests = named(claims.tests_claim_1(cube({"test_acc": acc}, ("vit_b16", "vit_l32"), ("entropy", "random"), rates)))
    assert_cannot_say(
        tests["vit_b16 from noise 0.2 to 0.4"],
        "vit_b16 from noise 0.2 to 0.4",
        "missing runs: entropy at noise 0.4 (vit_b16, seed 1)",
    )
    assert_effect(tests["vit_b16 from noise 0 to 0.2"], acc[0, :, 0].mean(axis=0) - acc[0, :, 1].mean(axis=0))
    assert_effect(tests["vit_l32 from noise 0.2 to 0.4"], acc[1, :, 1].mean(axis=0) - acc[1, :, 2].mean(axis=0))


# --- claim 2: vit_l32 beats its rivals in accuracy and calibration ---------------------------


def l32_ahead(rates: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """vit_l32 ahead of rival i by (0.02 + 0.01 i) (1 + rate) in accuracy and half that in ECE and Brier."""
    lead = np.array([0.02, 0.03, 0.04, 0.0])[:, None, None, None] * (1 + rates[None, None, :, None])
    shape = (4, 2, len(rates), SEEDS)
    return {
        "test_acc": 0.8 - lead + noise(shape, seed),
        "ece": 0.05 + lead / 2 + noise(shape, seed + 1),
        "brier": 0.2 + lead / 2 + noise(shape, seed + 2),
    }


def test_claim_2_compares_vit_l32_with_each_rival_on_each_metric_over_all_moderate_and_high_noise():
    rates = np.array([0.2, 0.4, 0.8])
    metrics = l32_ahead(rates, 4)
    tests = claims.tests_claim_2(cube(metrics, VITS, ("entropy", "random"), rates))
    expected = []
    for i, rival in enumerate(VITS[:3]):
        for metric, label, sign in (("test_acc", "accuracy", 1), ("ece", "ECE", -1), ("brier", "Brier", -1)):
            advantage = sign * (metrics[metric][3] - metrics[metric][i])  # [strategies, rates, seeds]
            for band, kept in (("all", [0, 1, 2]), ("moderate", [1]), ("high", [2])):
                expected.append((f"over {rival}, {label}, {band} noise", advantage[:, kept].mean(axis=(0, 1))))
    assert [t.name for t in tests] == [name for name, _ in expected]
    for test, (_, per_seed) in zip(tests, expected):
        assert_effect(test, per_seed)
    assert stats.judge(tests).verdict[0] == HOLDS


def test_claim_2_says_which_noise_band_has_no_runs():
    rates = np.array([0.0, 0.1, 0.2])
    tests = named(claims.tests_claim_2(cube(l32_ahead(rates, 5), VITS, ("entropy", "random"), rates)))
    assert len(tests) == 27
    assert_cannot_say(
        tests["over vit_b16, accuracy, moderate noise"],
        "over vit_b16, accuracy, moderate noise",
        "no runs at moderate noise (0.3 to 0.6); the noise rates present are 0, 0.1, 0.2",
    )
    assert_cannot_say(
        tests["over vit_l16, Brier, high noise"],
        "over vit_l16, Brier, high noise",
        "no runs at high noise (above 0.6); the noise rates present are 0, 0.1, 0.2",
    )
    assert tests["over vit_b32, ECE, all noise"].available


def test_claim_2_a_missing_ece_run_spoils_only_the_ece_statements_over_that_rival():
    rates = np.array([0.2, 0.4, 0.8])
    metrics = l32_ahead(rates, 6)
    metrics["ece"][0, 1, 1, 0] = np.nan  # vit_b16, random, noise 0.4, seed 0
    tests = named(claims.tests_claim_2(cube(metrics, VITS, ("entropy", "random"), rates)))
    for band in ("all", "moderate"):
        name = f"over vit_b16, ECE, {band} noise"
        assert_cannot_say(tests[name], name, "missing runs: random at noise 0.4 (vit_b16, seed 0)")
    assert tests["over vit_b16, ECE, high noise"].available and tests["over vit_b16, Brier, all noise"].available
    ece = -(metrics["ece"][3] - metrics["ece"][1])
    assert_effect(tests["over vit_b32, ECE, all noise"], ece.mean(axis=(0, 1)))


def test_claim_2_cannot_say_without_a_rival():
    rates = np.array([0.2, 0.4])
    metrics = {name: values[[0, 2, 3]] for name, values in l32_ahead(rates, 7).items()}
    (test,) = claims.tests_claim_2(cube(metrics, ("vit_b16", "vit_l16", "vit_l32"), ("entropy", "random"), rates))
    assert_cannot_say(test, "vit_l32 against its rivals", "no runs of vit_b32")


# --- claim 3: vit_l16 worse than vit_l32 at every rate, at about 4x the FLOPs ------------------


L_MODELS = ("vit_b16", "vit_l16", "vit_l32")


def test_claim_3_compares_vit_l32_with_vit_l16_at_each_rate_and_states_the_flops_ratio():
    rates = np.array([0.0, 0.4])
    acc = 0.8 + noise((3, 2, 2, SEEDS), 8)
    acc[2] += 0.03
    acc[0] += 0.2  # vit_b16 far ahead: a statement that read it would not hold
    acc[0, 0, 1, 2] = np.nan  # and one of its runs missing, which claim 3 does not need
    gflops = {"vit_b16": 35.1, "vit_l16": 123.2, "vit_l32": 30.8}
    tests = claims.tests_claim_3(cube({"test_acc": acc}, L_MODELS, ("entropy", "random"), rates, gflops))
    assert [t.name for t in tests] == ["at noise 0", "at noise 0.4", "FLOPs per image vit_l16 / vit_l32"]
    for test, r in zip(tests, range(2)):
        assert_effect(test, (acc[2, :, r] - acc[1, :, r]).mean(axis=0))
    assert tests[2].describe() == "FLOPs per image vit_l16 / vit_l32 = 4.00"
    assert tests[2].p_hold.tolist() == [0.0] * TABLES
    assert stats.judge(tests).verdict[0] == HOLDS


@pytest.mark.parametrize("ratio, holds", [(3.0, True), (5.0, True), (2.9, False), (5.1, False)])
def test_claim_3_counts_3x_to_5x_the_flops_as_about_4x(ratio, holds):
    acc = 0.8 + noise((3, 1, 1, SEEDS), 9)
    gflops = {"vit_l16": 10.0 * ratio, "vit_l32": 10.0}
    fact = claims.tests_claim_3(cube({"test_acc": acc}, L_MODELS, ("random",), (0.2,), gflops))[-1]
    assert fact.describe() == f"FLOPs per image vit_l16 / vit_l32 = {ratio:.2f}"
    assert fact.p_hold.tolist() == [0.0 if holds else 1.0] * TABLES


@pytest.mark.parametrize("gflops", [{}, {"vit_l32": 30.8}, {"vit_l16": 123.2}])
def test_claim_3_cannot_say_the_flops_ratio_without_both_models_flops(gflops):
    acc = 0.8 + noise((3, 1, 1, SEEDS), 10)
    fact = claims.tests_claim_3(cube({"test_acc": acc}, L_MODELS, ("random",), (0.2,), gflops))[-1]
    assert not fact.available and fact.p_hold.shape == (TABLES,)
    assert fact.describe() == "FLOPs per image vit_l16 / vit_l32: unknown (runs without gflops_per_image)"


def test_claim_3_names_the_runs_it_lacks_and_cannot_say_without_vit_l16():
    acc = 0.8 + noise((3, 1, 2, SEEDS), 11)
    acc[1:, 0, 1] = np.nan  # vit_l16 and vit_l32, every seed at noise 0.4
    tests = claims.tests_claim_3(cube({"test_acc": acc}, L_MODELS, ("random",), (0.0, 0.4)))
    assert tests[0].available
    assert_cannot_say(tests[1], "at noise 0.4", "missing runs: random at noise 0.4 (vit_l16, vit_l32, every seed)")
    without = cube({"test_acc": acc[[0, 2]]}, ("vit_b16", "vit_l32"), ("random",), (0.0, 0.4))
    (test,) = claims.tests_claim_3(without)
    assert_cannot_say(test, "vit_l32 against vit_l16", "no runs of vit_l16")


# --- claim 4: SwinV2 less robust than the ViTs ---------------------------------------------------


SWIN_AND_VIT = ("deit_s", "swinv2_b", "swinv2_t", "vit_b16", "vit_l32")  # deit_s is in neither family


def test_claim_4_compares_the_accuracy_lost_since_the_lowest_rate_swin_against_vit():
    """A model's loss at rate r is its accuracy at the lowest rate minus at r (same strategy and seed);
    the statement at r is the mean SwinV2 loss minus the mean ViT loss, over strategies."""
    rates = np.array([0.0, 0.3, 0.6])
    slope = np.array([0.9, 0.5, 0.6, 0.2, 0.3])[:, None, None, None]  # deit_s loses most, but is no SwinV2
    acc = 0.9 - slope * rates[None, None, :, None] + noise((5, 2, 3, SEEDS), 12)
    acc[0, 0, :, 0] = np.nan  # deit_s has missing runs, which claim 4 does not need
    tests = claims.tests_claim_4(cube({"test_acc": acc}, SWIN_AND_VIT, ("entropy", "random"), rates))
    assert [t.name for t in tests] == ["at noise 0.3", "at noise 0.6"]
    loss = acc[:, :, :1] - acc  # [models, strategies, rates, seeds]
    for test, r in zip(tests, (1, 2)):
        swin, vit = loss[1:3, :, r].mean(axis=0), loss[3:5, :, r].mean(axis=0)
        assert_effect(test, (swin - vit).mean(axis=0))
    assert stats.judge(tests).verdict[0] == HOLDS


def test_claim_4_needs_the_lowest_rate_and_its_own_rate_only():
    rates = np.array([0.0, 0.3, 0.6])
    acc = 0.9 - 0.3 * rates[None, None, :, None] + noise((5, 2, 3, SEEDS), 13)
    at_lowest, at_highest = acc.copy(), acc.copy()
    at_lowest[3, 1, 0, 2] = np.nan  # vit_b16, random, noise 0, seed 2
    at_highest[2, 0, 2, 0] = np.nan  # swinv2_t, entropy, noise 0.6, seed 0
    for test in claims.tests_claim_4(cube({"test_acc": at_lowest}, SWIN_AND_VIT, ("entropy", "random"), rates)):
        assert_cannot_say(test, test.name, "missing runs: random at noise 0 (vit_b16, seed 2)")
    middle, last = claims.tests_claim_4(cube({"test_acc": at_highest}, SWIN_AND_VIT, ("entropy", "random"), rates))
    assert middle.available
    assert_cannot_say(last, "at noise 0.6", "missing runs: entropy at noise 0.6 (swinv2_t, seed 0)")


@pytest.mark.parametrize(
    "models, rates",
    [
        (("vit_b16", "vit_l32"), (0.0, 0.3)),
        (("swinv2_b", "swinv2_t"), (0.0, 0.3)),
        (("swinv2_t", "vit_b16"), (0.3,)),
    ],
    ids=["no SwinV2", "no ViT", "one rate"],
)
def test_claim_4_cannot_say_without_both_families_and_two_rates(models, rates):
    acc = 0.9 + noise((len(models), 1, len(rates), SEEDS), 14)
    (test,) = claims.tests_claim_4(cube({"test_acc": acc}, models, ("random",), rates))
    assert_cannot_say(test, "SwinV2 against ViT", "needs a paper ViT, a SwinV2 model and two noise rates")


def test_claim_4_has_one_statement_at_two_rates():
    acc = 0.9 + noise((2, 1, 2, SEEDS), 15)
    (test,) = claims.tests_claim_4(cube({"test_acc": acc}, ("swinv2_t", "vit_b16"), ("random",), (0.0, 0.3)))
    assert test.name == "at noise 0.3"


# --- claims 5 and 6: uncertainty sampling against random ----------------------------------------


STRATEGIES = ("entropy", "gci_vital", "random")


def test_claim_5_tests_a_gain_at_moderate_noise_and_none_below_or_above():
    rates = np.array([0.1, 0.4, 0.5, 0.8])
    acc = 0.8 + noise((2, 3, 4, SEEDS), 16, sd=0.001)
    acc[:, :2, 1:3] += 0.05  # both uncertainty strategies gain 0.05 at moderate noise
    acc[0, 2, 0, 1] = np.nan  # a random run of the first model at noise 0.1 is missing
    tests = claims.tests_claim_5(cube({"test_acc": acc}, ("vit_b16", "vit_l32"), STRATEGIES, rates))
    names = [f"{s}, {band} noise" for s in ("entropy", "gci_vital") for band in ("low", "moderate", "high")]
    assert [t.name for t in tests] == names
    for test, name in zip(tests, names):
        strategy, band = STRATEGIES.index(name.split(",")[0]), name.split(" ")[1]
        gain = (acc[:, strategy] - acc[:, 2])[:, {"low": [0], "moderate": [1, 2], "high": [3]}[band]]
        if band == "low":
            assert_cannot_say(test, name, "missing runs: random at noise 0.1 (vit_b16, seed 1)")
        elif band == "moderate":
            assert_effect(test, gain.mean(axis=(0, 1)))
        else:
            assert_no_gain(test, gain.mean(axis=(0, 1)))
            assert test.p_hold[0] < stats.ALPHA
    assert stats.judge(tests).verdict[0] == CANNOT_SAY


def test_claim_5_a_missing_run_of_one_strategy_spoils_only_its_own_statements():
    rates = np.array([0.1, 0.4, 0.8])
    acc = 0.8 + noise((1, 3, 3, SEEDS), 17, sd=0.001)
    acc[:, :2, 1] += 0.05
    acc[0, 1, 1, 0] = np.nan  # gci_vital at noise 0.4, seed 0
    tests = named(claims.tests_claim_5(cube({"test_acc": acc}, ("vit_b16",), STRATEGIES, rates)))
    assert_cannot_say(
        tests["gci_vital, moderate noise"],
        "gci_vital, moderate noise",
        "missing runs: gci_vital at noise 0.4 (vit_b16, seed 0)",
    )
    assert_effect(tests["entropy, moderate noise"], acc[0, 0, 1] - acc[0, 2, 1])


def test_claim_5_says_which_band_has_no_runs_and_cannot_say_without_an_uncertainty_strategy():
    acc = 0.8 + noise((1, 3, 2, SEEDS), 18)
    tests = named(claims.tests_claim_5(cube({"test_acc": acc}, ("vit_b16",), STRATEGIES, (0.1, 0.4))))
    assert_cannot_say(
        tests["gci_vital, high noise"],
        "gci_vital, high noise",
        "no runs at high noise (above 0.6); the noise rates present are 0.1, 0.4",
    )
    (test,) = claims.tests_claim_5(cube({"test_acc": acc[:, [0, 2]]}, ("vit_b16",), ("entropy", "random"), (0.1, 0.4)))
    assert_cannot_say(test, "uncertainty against random", "no runs of gci_vital")


def test_claim_6_tests_the_excess_overall_and_at_high_noise_against_the_rest():
    """Excess over random: ECE 0.02 below 0.6 and 0.06 above; Brier the same, halved."""
    rates = np.array([0.2, 0.4, 0.8])
    step = np.where(rates > 0.6, 0.06, 0.02)[None, None, :, None] * np.array([1, 1, 0])[None, :, None, None]
    metrics = {
        "test_acc": 0.8 + noise((2, 3, 3, SEEDS), 19),
        "ece": 0.05 + step + noise((2, 3, 3, SEEDS), 20),
        "brier": 0.2 + step / 2 + noise((2, 3, 3, SEEDS), 21),
    }
    tests = claims.tests_claim_6(cube(metrics, ("vit_b16", "vit_l32"), STRATEGIES, rates))
    expected = []
    for s, strategy in enumerate(STRATEGIES[:2]):
        for metric, label in (("ece", "ECE"), ("brier", "Brier")):
            excess = metrics[metric][:, s] - metrics[metric][:, 2]  # [models, rates, seeds]
            expected.append((f"{strategy}, {label} overall", excess.mean(axis=(0, 1))))
            high_minus_rest = excess[:, 2].mean(axis=0) - excess[:, :2].mean(axis=(0, 1))
            expected.append((f"{strategy}, {label} high minus rest", high_minus_rest))
    assert [t.name for t in tests] == [name for name, _ in expected]
    for test, (_, per_seed) in zip(tests, expected):
        assert_effect(test, per_seed)
    assert stats.judge(tests).verdict[0] == HOLDS


@pytest.mark.parametrize("rates", [(0.2, 0.4), (0.7, 0.8)], ids=["none above 0.6", "all above 0.6"])
def test_claim_6_cannot_say_whether_high_noise_is_worst_without_rates_on_both_sides(rates):
    metrics = {name: 0.1 + noise((1, 3, 2, SEEDS), 22) for name in ("test_acc", "ece", "brier")}
    tests = claims.tests_claim_6(cube(metrics, ("vit_b16",), STRATEGIES, rates))
    assert [t.name for t in tests] == [
        f"{s}, {label} {what}"
        for s in ("entropy", "gci_vital")
        for label in ("ECE", "Brier")
        for what in ("overall", "high minus rest")
    ]
    for test in tests[1::2]:
        assert_cannot_say(test, test.name, "needs rates on both sides of 0.6")
    assert all(test.available for test in tests[::2])


def test_claim_6_a_missing_run_spoils_only_the_statements_of_its_metric_and_strategy():
    rates = np.array([0.2, 0.8])
    metrics = {name: 0.1 + noise((1, 3, 2, SEEDS), 23 + i) for i, name in enumerate(("test_acc", "ece", "brier"))}
    metrics["ece"][0, 1, 1, 2] = np.nan  # gci_vital's ECE at noise 0.8, seed 2
    tests = named(claims.tests_claim_6(cube(metrics, ("vit_b16",), STRATEGIES, rates)))
    for name in ("gci_vital, ECE overall", "gci_vital, ECE high minus rest"):
        assert_cannot_say(tests[name], name, "missing runs: gci_vital at noise 0.8 (vit_b16, seed 2)")
    assert tests["gci_vital, Brier overall"].available and tests["entropy, ECE high minus rest"].available
    excess = metrics["ece"][0, 0] - metrics["ece"][0, 2]
    assert_effect(tests["entropy, ECE overall"], excess.mean(axis=0))


def test_claims_5_and_6_cannot_say_without_random():
    acc = 0.8 + noise((1, 2, 2, SEEDS), 26)
    without = cube({"test_acc": acc, "ece": acc, "brier": acc}, ("vit_b16",), ("entropy", "gci_vital"), (0.2, 0.8))
    for tests in (claims.tests_claim_5(without), claims.tests_claim_6(without)):
        (test,) = tests
        assert_cannot_say(test, "uncertainty against random", "no runs of random")


# --- question A: temperature scaling on noisy labels ---------------------------------------------


A_MODELS = ("vit_b16", "vit_l32", "swinv2_t")


def repaired_ece(rates: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Three models x two strategies: after the true-label fit 0.03 (plus 0.01 per model); after the noisy-label fit 0.03 + 0.1 rate,
    and 0.02 more at rate 0 than the true fit (so a statement that read rate 0 would show); noise-aware 0.035."""
    shape = (3, 2, len(rates), SEEDS)
    extra = 0.1 * rates[None, None, :, None] + 0.02 * (rates == 0)[None, None, :, None]
    model = np.array([0.0, 0.01, 0.02])[:, None, None, None]  # each model leaves 0.01 more than the one before
    return {
        "test_acc": 0.8 + noise(shape, seed),
        "ts_true_ece": 0.03 + model + noise(shape, seed + 1),
        "ts_noisy_ece": 0.03 + model + extra + noise(shape, seed + 2),
        "ts_aware_ece": 0.035 + model + noise(shape, seed + 3),
    }


def test_question_a_compares_the_three_temperatures_pooled_over_models_and_strategies():
    rates = np.array([0.0, 0.4, 0.8])
    ece = repaired_ece(rates, 27)
    tests = claims.tests_study_a(cube(ece, A_MODELS, ("entropy", "random"), rates))
    noisy, true, aware = (ece[name] for name in claims.REPAIRED_ECE)
    cell_rates = np.tile(rates, 6)  # the cells of one seed: models x strategies x rates
    excess = (noisy - true).reshape(-1, SEEDS)
    slopes = [np.polyfit(cell_rates, excess[:, seed], 1)[0] for seed in range(SEEDS)]
    expected = [
        ("noisy-label fit leaves more ECE than true-label fit", (noisy - true)[:, :, 1:].mean(axis=(0, 1, 2))),
        ("that excess grows with noise", np.array(slopes)),
        ("noise-aware fit leaves less ECE than noisy-label fit", (noisy - aware)[:, :, 1:].mean(axis=(0, 1, 2))),
        (
            "noise-aware fit leaves at most 0.01 more ECE than true-label fit",
            (true - aware + 0.01)[:, :, 1:].mean(axis=(0, 1, 2)),
        ),
    ]
    assert [t.name for t in tests] == [name for name, _ in expected]
    for test, (_, per_seed) in zip(tests, expected):
        assert_effect(test, per_seed)
    assert stats.judge(tests).verdict[0] == HOLDS


@pytest.mark.parametrize("metric", claims.REPAIRED_ECE)
def test_question_a_needs_every_temperatures_ece(metric):
    rates = np.array([0.0, 0.4])
    ece = repaired_ece(rates, 28)
    ece[metric][1, 0, 1, 1] = np.nan  # vit_l32, entropy, noise 0.4, seed 1
    tests = claims.tests_study_a(cube(ece, A_MODELS, ("entropy", "random"), rates))
    assert len(tests) == 4
    for test in tests:
        assert_cannot_say(test, test.name, "missing runs: entropy at noise 0.4 (vit_l32, seed 1)")


@pytest.mark.parametrize("rates", [(0.5,), (0.0,)], ids=["one noisy rate", "no noisy rate"])
def test_question_a_cannot_say_without_a_noisy_rate_and_a_second_rate(rates):
    (test,) = claims.tests_study_a(cube(repaired_ece(np.array(rates), 29), A_MODELS, ("entropy", "random"), rates))
    assert_cannot_say(test, "temperature scaling", "needs a noise rate above 0 and two rates")


def test_question_a_is_four_statements_at_two_rates_and_cannot_say_without_post_hoc_calibration():
    ece = repaired_ece(np.array([0.0, 0.4]), 30)
    assert len(claims.tests_study_a(cube(ece, A_MODELS, ("entropy", "random"), (0.0, 0.4)))) == 4
    before = cube({"test_acc": ece["test_acc"]}, A_MODELS, ("entropy", "random"), (0.0, 0.4))
    (test,) = claims.tests_study_a(before)
    assert_cannot_say(test, "temperature scaling", "runs without post-hoc calibration")


# --- check_claim: settings, evidence and verdict ---------------------------------------------------


def claim_3_rows(setting_leads: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Final rounds of vit_l16 and vit_l32 (random sampling, noise 0.2, seeds 0-2): per (dataset, noise
    kind), vit_l32's accuracy minus vit_l16's at each seed."""
    rows = []
    for (dataset, kind), leads in setting_leads.items():
        for seed, lead in enumerate(leads):
            for model, acc, gflops in (("vit_l16", 0.8, 123.2), ("vit_l32", 0.8 + lead, 30.8)):
                rows.append(
                    dict(dataset=dataset, noise_kind=kind, model=model, strategy="random", noise_rate=0.2, seed=seed)
                    | dict(test_acc=acc, ece=0.1, brier=0.1, gflops_per_image=gflops)
                )
    return pd.DataFrame(rows)


def interval(leads: list[float]) -> str:
    """The per-seed leads' mean and 90% t interval, as the evidence prints them."""
    mean, se = np.mean(leads), scipy_stats.sem(leads)
    low, high = scipy_stats.t.interval(0.9, len(leads) - 1, loc=mean, scale=se)
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def test_the_evidence_lists_every_setting_and_statement_with_its_outcome():
    ahead, behind = [0.03, 0.04, 0.035], [-0.03, -0.04, -0.035]
    verdict = claims.check_claim(3, claim_3_rows({("cifar10", "flip"): ahead, ("cifar100", "flip"): behind}))
    flops = "FLOPs per image vit_l16 / vit_l32 = 4.00 (holds)"
    assert verdict == claims.Verdict(
        3,
        claims.CLAIMS[3],
        FAILS,
        f"cifar10 · flip: holds; 2 of 2 statements hold: at noise 0.2 {interval(ahead)} (holds); {flops}"
        f" | cifar100 · flip: does not hold; 1 of 2 statements hold, 1 refuted: at noise 0.2 {interval(behind)}"
        f" (refuted); {flops}",
        {"cifar10 · flip": HOLDS, "cifar100 · flip": FAILS},
    )


def test_each_setting_is_told_the_outcomes_of_its_own_statements():
    ahead, behind = [0.03, 0.04, 0.035], [-0.03, -0.04, -0.035]
    final = claim_3_rows({("cifar10", "flip"): ahead, ("cifar100", "flip"): ahead, ("cifar100", "pairflip"): behind})
    assert claims.check_claim(3, final).settings == {
        "cifar10 · flip": HOLDS,
        "cifar100 · flip": HOLDS,
        "cifar100 · pairflip": FAILS,
    }


def test_a_setting_whose_seeds_disagree_is_inconclusive():
    verdict = claims.check_claim(3, claim_3_rows({("cifar10", "flip"): [0.05, -0.04, 0.02]}))
    assert verdict.verdict == INCONCLUSIVE and verdict.settings == {"cifar10 · flip": INCONCLUSIVE}


@pytest.mark.parametrize("claim", [1, "A", "B"])
def test_a_claim_on_no_runs_cannot_say_and_says_there_are_none(claim):
    empty = claim_3_rows({}).reindex(columns=["dataset", "noise_kind", "model", "strategy", "noise_rate", "seed"])
    assert claims.check_claim(claim, empty) == claims.Verdict(
        claim, claims.STATEMENTS[claim], CANNOT_SAY, "no finished runs"
    )


def test_question_b_is_judged_on_the_runs_that_acquire_with_a_temperature():
    """Question B reads every run, its strategy named with its acq.calibrate; the paper's claims only
    the runs without one."""
    rows = []
    for calibrate, gain in (("none", 0.0), ("noisy", 0.02), ("aware", 0.03)):
        for rate, seed in ((0.0, 0), (0.0, 1), (0.0, 2), (0.4, 0), (0.4, 1), (0.4, 2)):
            acc = (
                0.8 + gain * (rate > 0) + 0.002 * seed * (calibrate == "aware") + 0.001 * seed * (calibrate == "noisy")
            )
            rows.append(
                dict(dataset="cifar10", noise_kind="flip", model="vit_b16", strategy="entropy", noise_rate=rate)
                | dict(seed=seed, acq_calibrate=calibrate, test_acc=acc, ece=0.1, brier=0.1)
            )
    verdict = claims.check_claim("B", pd.DataFrame(rows))
    noisy = interval([0.02, 0.021, 0.022])
    aware = interval([0.03, 0.032, 0.034])
    assert verdict.verdict == HOLDS
    assert verdict.evidence == (
        f"cifar10 · flip: holds; 2 of 2 statements hold: noisy: accuracy gain over none {noisy} (holds); "
        f"aware: accuracy gain over none {aware} (holds)"
    )
