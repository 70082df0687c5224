"""The six claims, each on hand-built results whose right verdict is known.

Every table is built by :func:`results`: a grid of final rounds whose metrics are given by a
formula of (dataset, noise kind, model, strategy, rate, seed). Each run adds seed noise of
``-jitter``, 0 or ``+jitter``, rotated over the three seeds by a hash of the run's cell: it
averages to zero over the seeds of a cell, so the effect put in is the effect measured, and it
does not cancel between the two sides of a pair, so the jitter sets how sure a verdict can be.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from alvit.book import claims, stats
from alvit.book.stats import CANNOT_SAY, FAILS, HOLDS, INCONCLUSIVE

RATES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
PAPER_VITS = ["vit_b16", "vit_b32", "vit_l16", "vit_l32"]
GFLOPS = {
    "vit_b16": 35.1,
    "vit_b32": 8.8,
    "vit_l16": 123.1,
    "vit_l32": 30.8,
    "swinv2_t": 6.0,
    "swinv2_s": 11.7,
    "swinv2_b": 20.6,
}


def results(
    effect: Callable[..., float],
    *,
    datasets=("cifar10", "cifar100"),
    kinds=("flip",),
    models=tuple(PAPER_VITS),
    strategies=("random", "entropy", "gci_vital"),
    rates=tuple(RATES),
    seeds=(0, 1, 2),
    jitter: float = 0.002,
    metric_effects: dict[str, Callable[..., float]] | None = None,
) -> pd.DataFrame:
    """Final rounds: ``test_acc = effect(...) + seed noise``; ``ece``/``brier`` from ``metric_effects`` (default 0.1)."""
    metric_effects = metric_effects or {}
    rows = []
    for dataset, kind, model, strategy, rate, seed in itertools.product(
        datasets, kinds, models, strategies, rates, seeds
    ):
        where = dict(dataset=dataset, kind=kind, model=model, strategy=strategy, rate=rate)
        noise = jitter * ((seed + zlib.crc32(f"{dataset}{kind}{model}{strategy}{rate}".encode())) % 3 - 1)
        rows.append(
            {
                "dataset": dataset,
                "noise_kind": kind,
                "model": model,
                "strategy": strategy,
                "noise_rate": rate,
                "seed": seed,
                "test_acc": effect(**where) + noise,
                "ece": metric_effects.get("ece", lambda **_: 0.1)(**where) + noise,
                "brier": metric_effects.get("brier", lambda **_: 0.1)(**where) + noise,
                "gflops_per_image": GFLOPS.get(model, np.nan),
                **{  # any other metric (the study's): seed noise of its own, so differences between them keep some
                    name: value(**where)
                    + jitter * ((seed + zlib.crc32(f"{dataset}{kind}{model}{strategy}{rate}{name}".encode())) % 3 - 1)
                    for name, value in metric_effects.items()
                    if name not in ("ece", "brier")
                },
            }
        )
    return pd.DataFrame(rows)


def falling(rate, **_):
    return 0.9 - 0.5 * rate


# --- statements and their combination are in tests/test_stats.py ---------------------------


# --- claim 1 ---------------------------------------------------------------------------------


def test_claim_1_holds_when_accuracy_falls_for_every_model_on_every_dataset():
    verdict = claims.check_claim(1, results(falling))
    assert verdict.verdict == HOLDS
    assert verdict.settings == {"cifar10 · flip": HOLDS, "cifar100 · flip": HOLDS}
    assert "cifar10 · flip" in verdict.evidence and "cifar100 · flip" in verdict.evidence


def test_claim_1_fails_when_one_model_rises_on_one_dataset_only():
    def effect(dataset, model, rate, **_):
        return 0.5 + 0.3 * rate if (dataset == "cifar100" and model == "vit_b32") else 0.9 - 0.5 * rate

    verdict = claims.check_claim(1, results(effect))
    assert verdict.verdict == FAILS
    assert verdict.settings == {"cifar10 · flip": HOLDS, "cifar100 · flip": FAILS}


def test_claim_1_is_inconclusive_with_a_single_seed_and_cannot_say_with_one_rate():
    assert claims.check_claim(1, results(falling, seeds=(0,))).verdict == INCONCLUSIVE
    assert claims.check_claim(1, results(falling, rates=(0.3,))).verdict == CANNOT_SAY


# --- claim 2 ---------------------------------------------------------------------------------


def l32_better(by: float, calibration_by: float = 0.02, on=("cifar10", "cifar100")):
    """vit_l32 ahead by ``by`` in accuracy and ``calibration_by`` in ECE and Brier on the datasets ``on``, behind elsewhere."""

    def ahead(dataset, model):
        return 0.0 if model != "vit_l32" else 1.0 if dataset in on else -1.0

    acc = lambda dataset, model, rate, **_: falling(rate) + by * ahead(dataset, model)  # noqa: E731
    cal = lambda dataset, model, **_: 0.1 - calibration_by * ahead(dataset, model)  # noqa: E731
    return acc, {"ece": cal, "brier": cal}


def test_claim_2_holds_when_vit_l32_wins_accuracy_ece_and_brier_everywhere():
    acc, cal = l32_better(0.05)
    verdict = claims.check_claim(2, results(acc, metric_effects=cal))
    assert verdict.verdict == HOLDS
    assert "ECE" in verdict.evidence and "Brier" in verdict.evidence


def test_claim_2_does_not_hold_when_vit_l32_wins_on_one_dataset_and_loses_on_the_other():
    acc, cal = l32_better(0.05, on=("cifar10",))
    verdict = claims.check_claim(2, results(acc, metric_effects=cal))
    assert verdict.verdict == FAILS  # pooled over both datasets the advantage would be zero, not a loss
    assert verdict.settings["cifar10 · flip"] == HOLDS and verdict.settings["cifar100 · flip"] == FAILS


def test_claim_2_does_not_hold_when_better_accuracy_comes_with_worse_calibration():
    acc, _ = l32_better(0.05)
    worse = lambda model, **_: 0.15 if model == "vit_l32" else 0.1  # noqa: E731
    assert claims.check_claim(2, results(acc, metric_effects={"ece": worse, "brier": worse})).verdict == FAILS


def test_claim_2_is_inconclusive_when_seeds_disagree_and_cannot_say_without_a_rival():
    acc, cal = l32_better(0.005, calibration_by=0.005)
    assert claims.check_claim(2, results(acc, metric_effects=cal, jitter=0.05)).verdict == INCONCLUSIVE
    acc, cal = l32_better(0.05)
    absent = results(acc, metric_effects=cal, models=("vit_b16", "vit_l16", "vit_l32"))
    verdict = claims.check_claim(2, absent)
    assert verdict.verdict == CANNOT_SAY and "vit_b32" in verdict.evidence


# --- claim 3 ---------------------------------------------------------------------------------


def test_claim_3_holds_when_vit_l32_wins_at_every_rate_at_a_quarter_of_the_flops():
    acc, _ = l32_better(0.03)
    verdict = claims.check_claim(3, results(acc))
    assert verdict.verdict == HOLDS and "4.00" in verdict.evidence


def test_claim_3_does_not_hold_when_vit_l16_wins_at_one_rate():
    def effect(model, rate, **_):
        if model == "vit_l32":
            return falling(rate) + (-0.03 if rate == 0.2 else 0.03)
        return falling(rate)

    assert claims.check_claim(3, results(effect)).verdict == FAILS


def test_claim_3_does_not_hold_when_the_flops_are_not_about_4x():
    acc, _ = l32_better(0.03)
    final = results(acc)
    final.loc[final["model"] == "vit_l16", "gflops_per_image"] = 30.8
    assert claims.check_claim(3, final).verdict == FAILS


def test_claim_3_cannot_say_without_flops_or_without_vit_l16():
    acc, _ = l32_better(0.03)
    final = results(acc).assign(gflops_per_image=np.nan)
    assert claims.check_claim(3, final).verdict == CANNOT_SAY
    assert claims.check_claim(3, results(acc, models=("vit_b16", "vit_l32"))).verdict == CANNOT_SAY


def test_claim_3_is_inconclusive_when_the_advantage_is_within_seed_noise():
    acc, _ = l32_better(0.002)
    assert claims.check_claim(3, results(acc, jitter=0.05)).verdict == INCONCLUSIVE


# --- claim 4 ---------------------------------------------------------------------------------

SWIN_AND_VIT = ("vit_b16", "vit_l32", "swinv2_t", "swinv2_b")


def robustness(swin_slope: float, vit_slope: float = 0.4):
    return lambda model, rate, **_: 0.95 - (swin_slope if model.startswith("swin") else vit_slope) * rate


def test_claim_4_holds_when_swin_loses_more_accuracy_at_every_rate():
    assert claims.check_claim(4, results(robustness(0.8), models=SWIN_AND_VIT)).verdict == HOLDS


def test_claim_4_does_not_hold_when_swin_is_the_more_robust():
    assert claims.check_claim(4, results(robustness(0.2), models=SWIN_AND_VIT)).verdict == FAILS


def test_claim_4_cannot_say_without_swin_and_is_inconclusive_with_one_seed():
    assert claims.check_claim(4, results(robustness(0.8))).verdict == CANNOT_SAY
    assert claims.check_claim(4, results(robustness(0.8), models=SWIN_AND_VIT, seeds=(0,))).verdict == INCONCLUSIVE


# --- claim 5 ---------------------------------------------------------------------------------


def gain(moderate: float, low: float = 0.0, high: float = 0.0):
    def effect(strategy, rate, **_):
        if strategy == "random":
            return falling(rate)
        bonus = low if rate < 0.3 else moderate if rate <= 0.6 else high
        return falling(rate) + bonus

    return effect


def test_claim_5_holds_with_a_gain_at_moderate_noise_only():
    verdict = claims.check_claim(5, results(gain(0.05)))
    assert verdict.verdict == HOLDS
    assert "entropy, moderate noise +0.050" in verdict.evidence


def test_claim_5_does_not_hold_when_the_gain_extends_to_low_noise():
    verdict = claims.check_claim(5, results(gain(0.05, low=0.05)))
    assert verdict.verdict == FAILS
    assert "entropy, low noise +0.050" in verdict.evidence and "(refuted)" in verdict.evidence


def test_claim_5_does_not_hold_without_a_gain_at_moderate_noise():
    assert claims.check_claim(5, results(gain(-0.02))).verdict == FAILS


def test_claim_5_is_inconclusive_when_the_moderate_gain_is_within_seed_noise():
    assert claims.check_claim(5, results(gain(0.01), jitter=0.05)).verdict == INCONCLUSIVE


def test_claim_5_cannot_say_without_gci_vital_or_without_high_noise():
    assert claims.check_claim(5, results(gain(0.05), strategies=("random", "entropy"))).verdict == CANNOT_SAY
    assert claims.check_claim(5, results(gain(0.05), rates=(0.0, 0.1, 0.3, 0.5))).verdict == CANNOT_SAY


def test_claim_5_keeps_noise_kinds_apart():
    def effect(kind, strategy, rate, **_):
        return (
            gain(0.05)(strategy=strategy, rate=rate)
            if kind == "flip"
            else gain(0.05, low=0.05, high=0.05)(strategy=strategy, rate=rate)
        )

    verdict = claims.check_claim(5, results(effect, kinds=("flip", "pairflip")))
    assert verdict.verdict == FAILS
    assert verdict.settings == {
        "cifar10 · flip": HOLDS,
        "cifar10 · pairflip": FAILS,
        "cifar100 · flip": HOLDS,
        "cifar100 · pairflip": FAILS,
    }


# --- claim 6 ---------------------------------------------------------------------------------


def excess(low: float, high: float):
    return lambda strategy, rate, **_: 0.05 + (0.0 if strategy == "random" else (high if rate > 0.6 else low))


def test_claim_6_holds_when_uncertainty_sampling_is_worse_calibrated_most_at_high_noise():
    calibration = {"ece": excess(0.02, 0.06), "brier": excess(0.02, 0.06)}
    verdict = claims.check_claim(6, results(falling, metric_effects=calibration))
    assert verdict.verdict == HOLDS and "ECE" in verdict.evidence and "Brier" in verdict.evidence


def test_claim_6_does_not_hold_when_the_excess_is_largest_at_low_noise():
    calibration = {"ece": excess(0.06, 0.02), "brier": excess(0.06, 0.02)}
    assert claims.check_claim(6, results(falling, metric_effects=calibration)).verdict == FAILS


def test_claim_6_needs_both_ece_and_brier():
    calibration = {"ece": excess(0.02, 0.06), "brier": excess(-0.02, -0.02)}
    assert claims.check_claim(6, results(falling, metric_effects=calibration)).verdict == FAILS


def test_claim_6_cannot_say_without_random_and_is_inconclusive_in_noise():
    calibration = {"ece": excess(0.02, 0.06), "brier": excess(0.02, 0.06)}
    assert (
        claims.check_claim(6, results(falling, metric_effects=calibration, strategies=("entropy", "gci_vital"))).verdict
        == CANNOT_SAY
    )
    small = {"ece": excess(0.002, 0.004), "brier": excess(0.002, 0.004)}
    assert claims.check_claim(6, results(falling, metric_effects=small, jitter=0.05)).verdict == INCONCLUSIVE


# --- the study's question A: can temperature scaling repair calibration? ---------------------


def repairs(noisy_excess: float, aware_excess: float, grows: bool = True):
    """Test ECE after each temperature: (b) 0.03 everywhere; (a) more by ``noisy_excess`` times the
    rate (``grows``) or times one minus the rate at every noisy rate (shrinking); (c) more than (b)
    by ``aware_excess`` at every noisy rate."""
    shape = (lambda rate: rate) if grows else (lambda rate: (1 - rate) * float(rate > 0))
    return {
        "ts_true_ece": lambda **_: 0.03,
        "ts_noisy_ece": lambda rate, **_: 0.03 + noisy_excess * shape(rate),
        "ts_aware_ece": lambda rate, **_: 0.03 + aware_excess * float(rate > 0),
    }


def test_question_a_holds_when_noisy_labels_over_soften_more_with_noise_and_the_noise_aware_fit_recovers():
    verdict = claims.check_claim("A", results(falling, metric_effects=repairs(0.2, 0.004)))
    assert verdict.verdict == HOLDS, verdict.evidence
    assert verdict.statement == claims.STUDY_CLAIMS["A"]


def test_question_a_does_not_hold_when_the_noise_aware_fit_is_no_better_than_the_noisy_one():
    assert claims.check_claim("A", results(falling, metric_effects=repairs(0.2, 0.2))).verdict == FAILS


def test_question_a_does_not_hold_when_the_excess_shrinks_as_noise_rises():
    verdict = claims.check_claim("A", results(falling, metric_effects=repairs(0.1, 0.0, grows=False)))
    assert verdict.verdict == FAILS and "that excess grows with noise" in verdict.evidence


def test_question_a_is_not_a_paper_claim_and_cannot_say_without_post_hoc_calibration():
    assert "A" not in claims.CLAIMS and [v.claim for v in claims.check_study(results(falling))] == ["A"]
    assert claims.check_claim("A", results(falling)).verdict == CANNOT_SAY  # runs from before calibration


# --- the table -------------------------------------------------------------------------------


def test_the_verdict_table_shows_every_claim_with_its_verdict_per_setting():
    table = claims.verdict_table(claims.check_all(results(falling)))
    assert list(table.index) == [1, 2, 3, 4, 5, 6]
    assert {"statement", "verdict", "cifar10 · flip", "cifar100 · flip"} <= set(table.columns)
    assert set(table["verdict"]) <= set(stats.OUTCOMES)


@pytest.mark.parametrize("claim", [1, 2, 3, 4, 5, 6])
def test_every_claim_says_cannot_say_on_an_empty_table(claim):
    empty = results(falling).iloc[:0]
    assert claims.check_claim(claim, empty).verdict == CANNOT_SAY
