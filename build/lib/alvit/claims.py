"""The paper's six claims (STUDY.md), each tested against the results present.

Each check returns a :class:`Verdict`: "holds", "does not hold", or "cannot say" with the reason
(a model or strategy the claim names is absent, or too few noise rates). Evidence is given as
numbers with their spread over seeds, so a reader can judge how firm a verdict is. A verdict is
only as good as the runs behind it: a demo on digits with tiny ViTs speaks to claims 1, 5 and
6 about *those* models, not about the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from alvit.summary import gain_over_baseline, spread

CLAIMS = {
    1: "Accuracy falls as noise rises, for every model.",
    2: "ViTl32 beats ViTb16, ViTb32 and ViTl16 in accuracy and calibration, also at moderate and high noise.",
    3: "ViTl16 is worse than ViTl32 at every noise rate while costing about 4x the FLOPs.",
    4: "The SwinV2 models are less robust to noise than the ViTs at every level.",
    5: "Entropy and GCI-ViTAL beat random in accuracy only at moderate noise (about 0.3 to 0.6).",
    6: "Entropy and GCI-ViTAL are worse calibrated than random, most at high noise.",
}
MODERATE = (0.3, 0.6)
VITS, SWINS = ("vit_b16", "vit_b32", "vit_l16", "vit_l32"), ("swinv2_t", "swinv2_s", "swinv2_b")


@dataclass(frozen=True)
class Verdict:
    claim: int
    statement: str
    verdict: str  # "holds", "does not hold", "cannot say"
    evidence: str


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{mean:+.3f} ± {std:.3f} (n={n})" if n > 1 else f"{mean:+.3f} (n=1)"


def check_claim_1(final: pd.DataFrame) -> Verdict:
    """Per model: Spearman correlation of final accuracy with noise rate, and the drop end to end."""
    rates = sorted(final["noise_rate"].unique())
    if len(rates) < 2:
        return Verdict(1, CLAIMS[1], "cannot say", "needs at least two noise rates")
    parts, holds = [], True
    for model, group in final.groupby("model", sort=True):
        rho = spearmanr(group["noise_rate"], group["test_acc"]).statistic
        low = spread(group[group["noise_rate"] == rates[0]]["test_acc"])
        high = spread(group[group["noise_rate"] == rates[-1]]["test_acc"])
        falls = bool(rho < 0 and high[0] < low[0])
        holds &= falls
        parts.append(f"{model}: mean accuracy over strategies and seeds {low[0]:.3f} at noise {rates[0]:g} -> "
                     f"{high[0]:.3f} at {rates[-1]:g}, Spearman rho {rho:+.2f} over all runs")
    return Verdict(1, CLAIMS[1], "holds" if holds else "does not hold", "; ".join(parts))


def _compare_models(final: pd.DataFrame, better: str, others: tuple[str, ...], metrics: dict[str, int]) -> tuple[bool, list[str]]:
    """Does ``better`` beat each of ``others`` at every noise rate on each metric (sign: +1 higher is better)?"""
    holds, parts = True, []
    for other in others:
        for metric, sign in metrics.items():
            a = final[final["model"] == better].groupby("noise_rate")[metric].mean()
            b = final[final["model"] == other].groupby("noise_rate")[metric].mean()
            diff = (a - b).dropna() * sign
            wins = int((diff > 0).sum())
            holds &= wins == len(diff) and len(diff) > 0
            parts.append(f"{better} vs {other} on {metric}: better at {wins}/{len(diff)} rates")
    return holds, parts


def _needs(final: pd.DataFrame, claim: int, models: tuple[str, ...]) -> Verdict | None:
    missing = [m for m in models if m not in set(final["model"])]
    if missing:
        return Verdict(claim, CLAIMS[claim], "cannot say", f"the results hold no runs of {', '.join(missing)}")
    return None


def check_claim_2(final: pd.DataFrame) -> Verdict:
    absent = _needs(final, 2, ("vit_l32", "vit_b16", "vit_b32", "vit_l16"))
    if absent:
        return absent
    holds, parts = _compare_models(final, "vit_l32", ("vit_b16", "vit_b32", "vit_l16"), {"test_acc": +1, "ece": -1})
    return Verdict(2, CLAIMS[2], "holds" if holds else "does not hold", "; ".join(parts))


def check_claim_3(final: pd.DataFrame) -> Verdict:
    absent = _needs(final, 3, ("vit_l16", "vit_l32"))
    if absent:
        return absent
    from alvit.models import model_flops, resolve_model

    holds, parts = _compare_models(final, "vit_l32", ("vit_l16",), {"test_acc": +1})
    ratio = model_flops(resolve_model("vit_l16"), 10) / model_flops(resolve_model("vit_l32"), 10)
    parts.append(f"FLOPs per image, vit_l16 / vit_l32 = {ratio:.2f}")
    return Verdict(3, CLAIMS[3], "holds" if holds and ratio > 3 else "does not hold", "; ".join(parts))


def check_claim_4(final: pd.DataFrame) -> Verdict:
    present = set(final["model"])
    vits, swins = [m for m in VITS if m in present], [m for m in SWINS if m in present]
    if not vits or not swins:
        return Verdict(4, CLAIMS[4], "cannot say", "needs runs of at least one paper ViT and one SwinV2 model")
    # Robustness: accuracy lost relative to the model's own noise-free accuracy.
    clean = final["noise_rate"].min()
    means = final.groupby(["model", "noise_rate"])["test_acc"].mean()
    loss = {m: (means[m][clean] - means[m]).drop(clean) for m in vits + swins}
    holds, parts = True, []
    for rate in loss[vits[0]].index:
        worst_vit = max(loss[m].get(rate, np.nan) for m in vits)
        best_swin = min(loss[m].get(rate, np.nan) for m in swins)
        holds &= best_swin > worst_vit
        parts.append(f"noise {rate:g}: least SwinV2 loss {best_swin:.3f} vs largest ViT loss {worst_vit:.3f}")
    return Verdict(4, CLAIMS[4], "holds" if holds else "does not hold", "; ".join(parts))


def _gain_claim(final: pd.DataFrame, claim: int, metric: str, sign: int) -> tuple[pd.DataFrame | None, Verdict | None]:
    needed = {"random", "entropy", "gci_vital"} - set(final["strategy"])
    if needed:
        return None, Verdict(claim, CLAIMS[claim], "cannot say", f"the results hold no runs of {', '.join(sorted(needed))}")
    gains = gain_over_baseline(final, metric)
    gains = gains[gains["strategy"].isin(["entropy", "gci_vital"])].assign(gain=lambda d: d["gain"] * sign)
    return gains, None


def check_claim_5(final: pd.DataFrame) -> Verdict:
    """Accuracy gain over random: positive inside the moderate band, not positive outside it."""
    gains, missing = _gain_claim(final, 5, "test_acc", +1)
    if missing:
        return missing
    inside = gains["noise_rate"].between(*MODERATE)
    if not inside.any() or inside.all():
        return Verdict(5, CLAIMS[5], "cannot say", "needs noise rates both inside and outside 0.3-0.6")
    holds, parts = True, []
    for strategy, group in gains.groupby("strategy", sort=True):
        mid = spread(group[group["noise_rate"].between(*MODERATE)]["gain"])
        out = spread(group[~group["noise_rate"].between(*MODERATE)]["gain"])
        holds &= mid[0] > 0 and out[0] <= 0
        parts.append(f"{strategy} - random: {_fmt(*mid)} at noise 0.3-0.6, {_fmt(*out)} elsewhere")
    return Verdict(5, CLAIMS[5], "holds" if holds else "does not hold", "; ".join(parts))


def check_claim_6(final: pd.DataFrame) -> Verdict:
    """ECE excess over random: positive on average, and largest at the highest noise rates."""
    excess, missing = _gain_claim(final, 6, "ece", +1)
    if missing:
        return missing
    rates = sorted(excess["noise_rate"].unique())
    if len(rates) < 2:
        return Verdict(6, CLAIMS[6], "cannot say", "needs at least two noise rates")
    high = rates[len(rates) // 2:]
    holds, parts = True, []
    for strategy, group in excess.groupby("strategy", sort=True):
        overall = spread(group["gain"])
        by_rate = group.groupby("noise_rate")["gain"].mean()
        peak = float(by_rate.idxmax())
        holds &= overall[0] > 0 and peak in high
        parts.append(f"{strategy} ECE - random ECE: {_fmt(*overall)} overall, largest ({by_rate.max():+.3f}) at noise {peak:g}")
    return Verdict(6, CLAIMS[6], "holds" if holds else "does not hold", "; ".join(parts))


def check_all(final: pd.DataFrame) -> list[Verdict]:
    """Every claim, in order."""
    checks = [check_claim_1, check_claim_2, check_claim_3, check_claim_4, check_claim_5, check_claim_6]
    return [check(final) for check in checks]


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([{"claim": v.claim, "statement": v.statement, "verdict": v.verdict, "evidence": v.evidence} for v in verdicts]).set_index("claim")
