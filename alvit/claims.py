"""The paper's six claims (STUDY.md), each tested against the results present.

A claim is tested separately in every *setting* (a dataset and a noise kind) the results hold,
and holds only if it holds in each: a model that wins on CIFAR-10 and loses on CIFAR-100 does
not "beat" it. Within a setting, every comparison is paired by seed and judged by a bootstrap
interval over seeds (:mod:`alvit.stats`). A claim is a conjunction of such tests (every rate,
every rival, every metric it names), and its verdict is one of four:

- **holds**: every test holds in every setting;
- **does not hold**: some test establishes the opposite (or no effect) somewhere;
- **inconclusive**: no test fails, but some interval straddles zero or has too few seeds;
- **cannot say**: the runs a test needs are missing (a model, a strategy, a noise band).

Each verdict carries one line of evidence per setting, with intervals, so a reader sees what
the verdict rests on. Calibration claims (2 and 6) are tested on ECE and on the Brier score
(the paper reported Brier), and hold only if they hold on both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alvit import stats
from alvit.stats import CANNOT_SAY, FAILS, HOLDS
from alvit.summary import by_setting

CLAIMS = {
    1: "Accuracy falls as noise rises, for every model.",
    2: "ViTl32 beats ViTb16, ViTb32 and ViTl16 in accuracy and calibration, also at moderate and high noise.",
    3: "ViTl16 is worse than ViTl32 at every noise rate while costing about 4x the FLOPs.",
    4: "The SwinV2 models are less robust to noise than the ViTs at every level.",
    5: "Entropy and GCI-ViTAL beat random in accuracy only at moderate noise (about 0.3 to 0.6).",
    6: "Entropy and GCI-ViTAL are worse calibrated than random, most at high noise.",
}
VITS, SWINS = ("vit_b16", "vit_b32", "vit_l16", "vit_l32"), ("swinv2_t", "swinv2_s", "swinv2_b")
UNCERTAINTY = ("entropy", "gci_vital")
MODERATE = (0.3, 0.6)  # the paper's "moderate" noise; "low" is below it, "high" above
FLOPS_RATIO = (3.0, 5.0)  # "about 4x"
CALIBRATION = {"ece": "ECE", "brier": "Brier"}
RULE = (
    f"Every comparison pairs runs that share dataset, noise kind, noise rate and seed (hence the same "
    f"noisy oracle and initial set). Its 95% interval is a percentile bootstrap ({stats.RESAMPLES:,} "
    f"resamples) of the mean paired difference, resampling seeds within each cell. An effect is "
    f"established when the interval lies above zero and refuted when it lies at or below zero; an "
    f"interval across zero, or fewer than {stats.MIN_SEEDS} seeds, is inconclusive. \"No gain\" "
    f"holds when the interval's upper end is at most {stats.NO_GAIN_MARGIN:g}. Noise bands: low "
    f"< {MODERATE[0]:g} <= moderate <= {MODERATE[1]:g} < high. A claim holds only if every test "
    f"holds on every dataset and noise kind present; one refuted test makes it not hold; missing runs "
    f"make it cannot say."
)


@dataclass(frozen=True)
class Verdict:
    claim: int
    statement: str
    verdict: str  # one of alvit.stats.OUTCOMES
    evidence: str
    settings: dict[str, str] = field(default_factory=dict)  # verdict per "dataset · noise kind"


def band(rates: pd.Series, name: str) -> pd.Series:
    """Which rows of ``rates`` fall in the noise band ``name`` (all, low, moderate, high)."""
    eps = 1e-9
    if name == "low":
        return rates < MODERATE[0] - eps
    if name == "moderate":
        return (rates >= MODERATE[0] - eps) & (rates <= MODERATE[1] + eps)
    if name == "high":
        return rates > MODERATE[1] + eps
    return pd.Series(True, index=rates.index)


Check = Callable[[pd.DataFrame], tuple[str, str]]  # one setting's rows -> (outcome, evidence)


def _per_setting(claim: int, final: pd.DataFrame, check: Check) -> Verdict:
    """Run ``check`` on every setting and combine: the claim must hold in each."""
    outcomes, parts, per_setting = [], [], {}
    for name, rows in by_setting(final):
        outcome, evidence = check(rows)
        outcomes.append(outcome)
        per_setting[name] = outcome
        parts.append(f"{name}: {outcome}; {evidence}")
    if not parts:
        return Verdict(claim, CLAIMS[claim], CANNOT_SAY, "no finished runs")
    return Verdict(claim, CLAIMS[claim], stats.combine(outcomes), " | ".join(parts), per_setting)


def _missing(final: pd.DataFrame, column: str, needed: tuple[str, ...]) -> list[str]:
    return [name for name in needed if name not in set(final[column])]


def _tally(outcomes: list[str]) -> str:
    """``8 hold, 2 inconclusive`` for a list of outcomes."""
    counts = pd.Series(outcomes).value_counts()
    return ", ".join(f"{counts[o]} {'hold' if o == HOLDS else o}" for o in stats.OUTCOMES if o in counts)


def _slope(cells: pd.DataFrame, means: np.ndarray) -> np.ndarray:
    """Least-squares slope of the cell means against their noise rate, per resample."""
    x = cells["noise_rate"].to_numpy(float)
    x = x - x.mean()
    return (means * x).sum(axis=1) / (x ** 2).sum()


def check_claim_1(final: pd.DataFrame) -> Verdict:
    """Per model: the slope of final accuracy against noise rate is below zero."""

    def check(rows: pd.DataFrame) -> tuple[str, str]:
        if rows["noise_rate"].nunique() < 2:
            return CANNOT_SAY, "needs at least two noise rates"
        outcomes, parts = [], []
        for model, group in rows.groupby("model", sort=True):
            est = stats.estimate(group, ["strategy", "noise_rate"], _slope, value="test_acc")
            outcomes.append(stats.positive(stats.Estimate(-est.value, -est.high, -est.low, est.cells, est.min_seeds)))
            parts.append(f"{model} slope {est.format()}")
        return stats.combine(outcomes), "accuracy per unit of noise: " + ", ".join(parts)

    return _per_setting(1, final, check)


def _beats(rows: pd.DataFrame, better: str, other: str, metric: str, sign: int, bands: tuple[str, ...]) -> tuple[list[str], str]:
    """Tests that ``better`` beats ``other`` on ``metric`` in each band; evidence of the overall gap."""
    diffs = stats.paired(rows, metric, ["noise_rate", "strategy", "seed"], "model", better, other, sign)
    outcomes = []
    for name in bands:
        part = diffs[band(diffs["noise_rate"], name)]
        outcomes.append(CANNOT_SAY if part.empty else stats.positive(stats.estimate(part, ["noise_rate", "strategy"])))
    overall = stats.estimate(diffs, ["noise_rate", "strategy"]) if not diffs.empty else None
    label = CALIBRATION.get(metric, "accuracy")
    return outcomes, f"{label} {overall.format() if overall else 'no pairs'}"


def check_claim_2(final: pd.DataFrame) -> Verdict:
    """vit_l32 beats each rival on accuracy, ECE and Brier: over all rates, at moderate and at high noise."""
    rivals = ("vit_b16", "vit_b32", "vit_l16")

    def check(rows: pd.DataFrame) -> tuple[str, str]:
        missing = _missing(rows, "model", ("vit_l32", *rivals))
        if missing:
            return CANNOT_SAY, f"no runs of {', '.join(missing)}"
        outcomes, parts = [], []
        for rival in rivals:
            gaps = []
            for metric, sign in (("test_acc", +1), ("ece", -1), ("brier", -1)):
                tests, evidence = _beats(rows, "vit_l32", rival, metric, sign, ("all", "moderate", "high"))
                outcomes += tests
                gaps.append(evidence)
            parts.append(f"vit_l32's advantage over {rival}: " + ", ".join(gaps))
        return stats.combine(outcomes), "; ".join(parts) + f" ({_tally(outcomes)} of the tests over all/moderate/high noise)"

    return _per_setting(2, final, check)


def check_claim_3(final: pd.DataFrame) -> Verdict:
    """vit_l32 beats vit_l16 in accuracy at every rate, and vit_l16 costs 3-5x its FLOPs."""

    def check(rows: pd.DataFrame) -> tuple[str, str]:
        missing = _missing(rows, "model", ("vit_l16", "vit_l32"))
        if missing:
            return CANNOT_SAY, f"no runs of {', '.join(missing)}"
        diffs = stats.paired(rows, "test_acc", ["noise_rate", "strategy", "seed"], "model", "vit_l32", "vit_l16")
        outcomes = [stats.positive(stats.estimate(group, ["strategy"])) for _, group in diffs.groupby("noise_rate")]
        flops = rows.groupby("model")["gflops_per_image"].mean()
        ratio = flops["vit_l16"] / flops["vit_l32"]
        cost = CANNOT_SAY if not np.isfinite(ratio) else HOLDS if FLOPS_RATIO[0] <= ratio <= FLOPS_RATIO[1] else FAILS
        evidence = (f"vit_l32's accuracy advantage {stats.estimate(diffs, ['noise_rate', 'strategy']).format()} overall; "
                    f"per rate {_tally(outcomes)}; FLOPs per image vit_l16 / vit_l32 = "
                    + (f"{ratio:.2f}" if np.isfinite(ratio) else "unknown (runs without gflops_per_image)"))
        return stats.combine([*outcomes, cost]), evidence

    return _per_setting(3, final, check)


def check_claim_4(final: pd.DataFrame) -> Verdict:
    """At every rate above the lowest, the SwinV2 models lose more accuracy than the ViTs.

    A model's loss at rate r is its accuracy at the lowest rate minus at r, for the same
    strategy and seed; the test is on the mean SwinV2 loss minus the mean ViT loss.
    """

    def check(rows: pd.DataFrame) -> tuple[str, str]:
        vits = [m for m in VITS if m in set(rows["model"])]
        swins = [m for m in SWINS if m in set(rows["model"])]
        if not vits or not swins or rows["noise_rate"].nunique() < 2:
            return CANNOT_SAY, "needs a paper ViT, a SwinV2 model and at least two noise rates"
        acc = rows.pivot_table(index=["strategy", "seed"], columns=["model", "noise_rate"], values="test_acc")
        rates = sorted(rows["noise_rate"].unique())
        outcomes, parts = [], []
        for rate in rates[1:]:
            loss = {m: acc[(m, rates[0])] - acc[(m, rate)] for m in vits + swins if (m, rate) in acc and (m, rates[0]) in acc}
            gap = pd.concat([loss[m] for m in swins if m in loss], axis=1).mean(axis=1) \
                - pd.concat([loss[m] for m in vits if m in loss], axis=1).mean(axis=1)
            diffs = gap.dropna().rename("diff").reset_index()
            if diffs.empty:
                outcomes.append(CANNOT_SAY)
                continue
            est = stats.estimate(diffs, ["strategy"])
            outcomes.append(stats.positive(est))
            parts.append(f"{rate:g}: {est.format()}")
        return stats.combine(outcomes), "extra accuracy lost by SwinV2 over the ViTs, by noise rate: " + ", ".join(parts)

    return _per_setting(4, final, check)


def check_claim_5(final: pd.DataFrame) -> Verdict:
    """Gain over random: established at moderate noise, absent (below the margin) at low and at high noise."""

    def check(rows: pd.DataFrame) -> tuple[str, str]:
        missing = _missing(rows, "strategy", ("random", *UNCERTAINTY))
        if missing:
            return CANNOT_SAY, f"no runs of {', '.join(missing)}"
        outcomes, parts = [], []
        for strategy in UNCERTAINTY:
            gains = stats.paired(rows, "test_acc", ["model", "noise_rate", "seed"], "strategy", strategy, "random")
            pieces = []
            for name, test in (("low", stats.no_gain), ("moderate", stats.positive), ("high", stats.no_gain)):
                part = gains[band(gains["noise_rate"], name)]
                if part.empty:
                    outcomes.append(CANNOT_SAY)
                    pieces.append(f"{name} no runs")
                    continue
                est = stats.estimate(part, ["model", "noise_rate"])
                outcomes.append(test(est))
                pieces.append(f"{name} {est.format()} ({test(est)})")
            parts.append(f"{strategy} - random accuracy: " + ", ".join(pieces))
        return stats.combine(outcomes), "; ".join(parts)

    return _per_setting(5, final, check)


def _high_minus_rest(cells: pd.DataFrame, means: np.ndarray) -> np.ndarray:
    """Mean of the high-noise cells minus the mean of the others, per resample."""
    high = band(cells["noise_rate"], "high").to_numpy()
    return means[:, high].mean(axis=1) - means[:, ~high].mean(axis=1)


def check_claim_6(final: pd.DataFrame) -> Verdict:
    """Excess ECE and Brier over random: above zero overall, and larger at high noise than elsewhere."""

    def check(rows: pd.DataFrame) -> tuple[str, str]:
        missing = _missing(rows, "strategy", ("random", *UNCERTAINTY))
        if missing:
            return CANNOT_SAY, f"no runs of {', '.join(missing)}"
        outcomes, parts = [], []
        for strategy in UNCERTAINTY:
            pieces = []
            for metric, label in CALIBRATION.items():
                excess = stats.paired(rows, metric, ["model", "noise_rate", "seed"], "strategy", strategy, "random")
                overall = stats.estimate(excess, ["model", "noise_rate"])
                outcomes.append(stats.positive(overall))
                high = band(excess["noise_rate"], "high")
                if high.all() or not high.any():
                    outcomes.append(CANNOT_SAY)
                    pieces.append(f"{label} {overall.format()} overall, high vs rest: needs rates on both sides of {MODERATE[1]:g}")
                    continue
                peak = stats.estimate(excess, ["model", "noise_rate"], _high_minus_rest)
                outcomes.append(stats.positive(peak))
                pieces.append(f"{label} {overall.format()} overall, high minus rest {peak.format()}")
            parts.append(f"{strategy} - random: " + ", ".join(pieces))
        return stats.combine(outcomes), "; ".join(parts)

    return _per_setting(6, final, check)


CHECKS = (check_claim_1, check_claim_2, check_claim_3, check_claim_4, check_claim_5, check_claim_6)


def check_all(final: pd.DataFrame) -> list[Verdict]:
    """Every claim, in order."""
    return [check(final) for check in CHECKS]


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per claim: overall verdict, the verdict in each setting, then the statement.

    The verdicts come first so that a narrow page shows them beside the claim's number; the long
    statement wraps at the end.
    """
    rows = [{"claim": v.claim, "verdict": v.verdict, **v.settings, "statement": v.statement} for v in verdicts]
    return pd.DataFrame(rows).set_index("claim").fillna("")


def evidence_markdown(verdicts: list[Verdict]) -> str:
    """The verdicts with their evidence as a Markdown list: one item per claim, one sub-item per setting."""
    lines = []
    for v in verdicts:
        lines.append(f"{v.claim}. *{v.statement}* **{v.verdict}**.")
        lines += [f"   - {part}" for part in v.evidence.split(" | ")]
    return "\n".join(lines)
