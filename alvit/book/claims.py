"""The paper's six claims, each tested against the results present.

A claim is tested separately in every *setting* (a dataset and a noise kind) the results hold:
a model that wins on CIFAR-10 and loses on CIFAR-100 does not "beat" it. Within a setting, a
claim is a list of statements (every rate, every rival, every metric it names), each a test of
a paired contrast with the seed as the unit (:mod:`alvit.book.stats`); the statements of all
settings together are the claim, judged as one: it *holds* only if every statement holds, and it
*does not hold* only if a refutation survives Holm's correction over all of them. Calibration
claims (2 and 6) are tested on ECE and on the Brier score (the paper reported Brier), and hold
only if they hold on both. A statement that lacks a run it needs says *cannot say* and names it.

The tests work on a :class:`Cube`, one setting's final-round metrics as dense arrays with a
leading axis of tables, so that :mod:`alvit.book.power` judges thousands of simulated tables with the
very code that judges the book's one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from alvit.book import stats, summary
from alvit.book.stats import CANNOT_SAY, FAILS, HOLDS, INCONCLUSIVE, Test
from alvit.book.summary import by_setting

CLAIMS = {
    1: "Accuracy falls as noise rises, for every model.",
    2: "ViTl32 beats ViTb16, ViTb32 and ViTl16 in accuracy and calibration, also at moderate and high noise.",
    3: "ViTl16 is worse than ViTl32 at every noise rate while costing about 4x the FLOPs.",
    4: "The SwinV2 models are less robust to noise than the ViTs at every level.",
    5: "Entropy and GCI-ViTAL beat random in accuracy only at moderate noise (about 0.3 to 0.6).",
    6: "Entropy and GCI-ViTAL are worse calibrated than random, most at high noise.",
}
# The study's own questions, beyond the paper's: judged by the same rule, shown apart from the paper's.
STUDY_CLAIMS = {
    "A": (
        "Temperature scaling fitted on the noisy held-out labels leaves more test ECE than fitted on the "
        "true labels, increasingly with noise; noise-aware temperature scaling closes the gap."
    ),
    "B": (
        "Acquiring with temperature-scaled probabilities raises final accuracy over acquiring with the model's "
        "own under label noise, with the temperature fitted on the noisy held-out labels and with the "
        "noise-aware one."
    ),
}
VITS, SWINS = ("vit_b16", "vit_b32", "vit_l16", "vit_l32"), ("swinv2_t", "swinv2_s", "swinv2_b")
L32_RIVALS = ("vit_b16", "vit_b32", "vit_l16")
UNCERTAINTY = ("entropy", "gci_vital")
MODERATE = (0.3, 0.6)  # the paper's "moderate" noise; "low" is below it, "high" above
FLOPS_RATIO = (3.0, 5.0)  # "about 4x"
CALIBRATION = {"ece": "ECE", "brier": "Brier"}
METRICS = ("test_acc", "ece", "brier")
REPAIRED_ECE = ("ts_noisy_ece", "ts_true_ece", "ts_aware_ece")  # test ECE after each temperature
GAP_CLOSED = 0.01  # ECE within one point of the true-label fit's counts as the gap closed
# Question B judges the acq.calibrate values a practitioner can use; "true" (the true labels' fit) is an
# oracle bound, shown beside them but not judged.
PRACTICAL_CALIBRATION = ("noisy", "aware")
RULE = (
    f"Every comparison pairs runs that share dataset, noise kind, noise rate and seed (hence the same "
    f"noisy oracle and initial set), and the **seed is the unit**: for each seed the comparison is computed "
    f"on that seed's runs, averaged over the cells it weighs (the models, strategies or noise rates of the "
    f"statement), and the estimate is the mean over seeds with a t interval on seeds − 1 degrees of freedom. "
    f"Runs of one seed share its random draws (oracle, initial set, initial weights, random sampling's "
    f"queries) across models, strategies and noise rates, so they are not independent replicates; seeds "
    f"are, which keeps the interval's coverage whatever the runs of a seed share and however the spread "
    f"changes with the noise rate. Each statement is a one-sided test at level {stats.ALPHA:g}, shown as a "
    f"{1 - 2 * stats.ALPHA:.0%} interval: an effect is established when the interval lies above zero; "
    f'"no gain" (claim 5 outside moderate noise) is an equivalence test (two one-sided tests) that holds when '
    f"the interval lies within ±{stats.NO_GAIN_MARGIN:g}. Claim 1 is a statement per model and per step "
    f"between neighbouring noise rates, so a curve that rises or stays level anywhere is not confirmed. A "
    f"claim is all its statements on every dataset and noise kind present. It **holds** when every statement "
    f"holds (intersection-union: if any part of the claim is false, this happens with probability at most "
    f"{stats.ALPHA:g}); it **does not hold** when the opposite of a statement is established after Holm's "
    f"correction over all of the claim's statements (if the claim is true, this happens with probability at "
    f"most {stats.ALPHA:g}); it **cannot say** when a statement lacks runs it needs (a model, strategy, "
    f"noise rate or seed, named in the evidence) or has fewer than {stats.MIN_SEEDS} seeds, and none is "
    f"refuted; it is **inconclusive** otherwise. Noise bands: low < {MODERATE[0]:g} <= moderate "
    f"<= {MODERATE[1]:g} < high. The promises assume that the per-seed comparisons are roughly normal."
)


@dataclass(frozen=True)
class Cube:
    """One setting's final-round metrics: ``metrics[name]`` is ``[T, models, strategies, rates, seeds]``.

    T is the number of tables (1 for a book, many in a power simulation); NaN marks a missing run.
    ``seeds`` names the seed axis; ``gflops`` maps each model to its forward GFLOPs per image (NaN
    where unknown).
    """

    models: tuple[str, ...]
    strategies: tuple[str, ...]
    rates: np.ndarray
    metrics: dict[str, np.ndarray]
    gflops: dict[str, float] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.seeds:  # a simulated cube: seeds 0 to N - 1
            object.__setattr__(self, "seeds", tuple(range(next(iter(self.metrics.values())).shape[-1])))

    @property
    def tables(self) -> int:
        return next(iter(self.metrics.values())).shape[0]

    @cached_property
    def _missing(self) -> dict[str, np.ndarray]:
        """Per metric, ``[models, strategies, rates, seeds]``: the run lacks a value in some table."""
        return {name: ~np.isfinite(values).all(axis=0) for name, values in self.metrics.items()}

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> Cube:
        """The cube of one setting's final rounds (one table): every model, strategy, rate and seed present."""
        models = tuple(sorted(rows["model"].unique()))
        strategies = tuple(sorted(rows["strategy"].unique()))
        rates = np.array(sorted(rows["noise_rate"].unique()), dtype=float)
        seeds = tuple(int(seed) for seed in sorted(rows["seed"].unique()))
        index = pd.MultiIndex.from_product([models, strategies, rates, seeds])
        grouped = rows.groupby(["model", "strategy", "noise_rate", "seed"])
        shape = (1, len(models), len(strategies), len(rates), len(seeds))
        metrics = {
            name: grouped[name].mean().reindex(index).to_numpy(float).reshape(shape)
            for name in METRICS + REPAIRED_ECE
            if name in rows
        }
        gflops = rows.groupby("model")["gflops_per_image"].mean().to_dict() if "gflops_per_image" in rows else {}
        return cls(models, strategies, rates, metrics, gflops, seeds)

    def of_model(self, metric: str, model: str) -> np.ndarray:
        """``[T, strategies, rates, seeds]``."""
        return self.metrics[metric][:, self.models.index(model)]

    def of_strategy(self, metric: str, strategy: str) -> np.ndarray:
        """``[T, models, rates, seeds]``."""
        return self.metrics[metric][:, :, self.strategies.index(strategy)]

    def of_all(self, metric: str) -> np.ndarray:
        """``[T, models x strategies, rates, seeds]``: every (model, strategy) a cell of its own."""
        values = self.metrics[metric]
        return values.reshape(values.shape[0], -1, *values.shape[3:])

    def gap(
        self,
        metrics: tuple[str, ...] = ("test_acc",),
        models: tuple[str, ...] | None = None,
        strategies: tuple[str, ...] | None = None,
        rates: np.ndarray | None = None,
    ) -> str | None:
        """Why a statement on these runs cannot be judged, in words; None when it can.

        The runs are ``models`` x ``strategies`` x the noise rates where the mask ``rates`` is
        True x every seed (None: all of an axis). Every one needs a value of every metric of
        ``metrics`` in every table, and there must be at least :data:`stats.MIN_SEEDS` seeds.
        """
        if len(self.seeds) < stats.MIN_SEEDS:
            listed = ", ".join(str(s) for s in self.seeds) or "none"
            return f"only seed {listed} in these runs; a spread needs at least {stats.MIN_SEEDS} seeds"
        models = self.models if models is None else models
        strategies = self.strategies if strategies is None else strategies
        rates = np.ones(len(self.rates), bool) if rates is None else np.asarray(rates, bool)
        picked = np.ix_(  # and every seed
            [self.models.index(m) for m in models],
            [self.strategies.index(s) for s in strategies],
            np.flatnonzero(rates),
        )
        missing = np.zeros((len(models), len(strategies), int(rates.sum()), len(self.seeds)), bool)
        for metric in metrics:
            missing |= self._missing[metric][picked]
        if not missing.any():
            return None
        every_model = len(models) == len(self.models)
        return "missing runs: " + describe_missing(
            missing, models, strategies, self.rates[rates], self.seeds, every_model
        )


def describe_missing(
    missing: np.ndarray,
    models: Sequence[str],
    strategies: Sequence[str],
    rates: Sequence[float],
    seeds: Sequence[int],
    every_model: bool = True,
    most: int = 3,
) -> str:
    """``missing`` (``[models, strategies, rates, seeds]`` bool) in words, whole axes said once.

    ``random at noise 0.8 (every model, every seed)``; ``entropy at noise 0.2 (vit_b16, seed 2)``.
    ``every_model``: ``models`` are all the setting's, so all of them may be called "every model".
    At most ``most`` phrases, then how many more runs are missing.
    """

    def names(values: Sequence, chosen: np.ndarray, every: str | None, fmt=str) -> str:
        if every and chosen.all() and len(values) > 1:
            return every
        return ", ".join(fmt(v) for v, c in zip(values, chosen) if c)

    def seed_words(chosen: np.ndarray) -> str:
        if chosen.all() and len(seeds) > 1:
            return "every seed"
        return ("seeds " if chosen.sum() > 1 else "seed ") + names(seeds, chosen, "")

    who_when = {}  # (strategy, rate) -> which models and seeds, in words
    for (s, r), block in ((key, missing[:, key[0], key[1]]) for key in np.ndindex(missing.shape[1:3])):
        if not block.any():
            continue
        rows, cols = block.any(axis=1), block.any(axis=0)
        if (block == np.outer(rows, cols)).all():
            what = f"{names(models, rows, 'every model' if every_model else None)}, {seed_words(cols)}"
        else:
            what = "; ".join(f"{models[m]} {seed_words(block[m])}" for m in np.flatnonzero(rows))
        who_when[s, r] = what
    by_rates: dict[tuple[int, str], list[int]] = {}
    for (s, r), what in who_when.items():
        by_rates.setdefault((s, what), []).append(r)
    by_strategies: dict[tuple[tuple[int, ...], str], list[int]] = {}
    for (s, what), rs in by_rates.items():
        by_strategies.setdefault((tuple(rs), what), []).append(s)
    phrases = []
    for (rs, what), ss in by_strategies.items():
        chosen = np.isin(np.arange(len(strategies)), ss)
        rate_mask = np.isin(np.arange(len(rates)), rs)
        phrases.append(
            f"{names(strategies, chosen, None)} at noise {names(rates, rate_mask, None, lambda r: f'{r:g}')} ({what})"
        )
    shown = "; ".join(phrases[:most])
    if len(phrases) > most:
        rest = int(missing.sum()) - sum(
            int(missing[:, s, r].sum()) for (rs, _), ss in list(by_strategies.items())[:most] for s in ss for r in rs
        )
        shown += f"; and {rest} more run{'s' * (rest > 1)}"
    return shown


def band(rates: np.ndarray, name: str) -> np.ndarray:
    """Which of ``rates`` fall in the noise band ``name`` (all, low, moderate, high)."""
    rates, eps = np.asarray(rates, dtype=float), 1e-9
    if name == "low":
        return rates < MODERATE[0] - eps
    if name == "moderate":
        return (rates >= MODERATE[0] - eps) & (rates <= MODERATE[1] + eps)
    if name == "high":
        return rates > MODERATE[1] + eps
    return np.ones(len(rates), dtype=bool)


BAND_WORDS = {
    "low": f"below {MODERATE[0]:g}",
    "moderate": f"{MODERATE[0]:g} to {MODERATE[1]:g}",
    "high": f"above {MODERATE[1]:g}",
}


def _contrast(
    values: np.ndarray,
    rates: np.ndarray,
    keep: np.ndarray,
    weigh: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> stats.Contrast:
    """Contrast over the cells (group, rate) of ``values`` ``[T, groups, R, N]`` at the rates ``keep``.

    ``weigh(rate_of_cell, present)`` gives the weights (default: the mean of the cells present).
    """
    t, groups, _, n = values.shape
    kept = values[:, :, keep]  # [T, G, R', N]
    cells = kept.reshape(t, groups * kept.shape[2], n)
    rate_of_cell = np.tile(rates[keep], groups)
    present = np.isfinite(cells).any(axis=2)
    weights = stats.mean_weights(present) if weigh is None else weigh(rate_of_cell, present)
    return stats.contrast(cells, weights)


def _statement(
    cube: Cube,
    name: str,
    make: Callable[[str, stats.Contrast], Test],
    values: np.ndarray,
    keep: np.ndarray,
    *,
    models: tuple[str, ...] | None = None,
    strategies: tuple[str, ...] | None = None,
    metrics: tuple[str, ...] = ("test_acc",),
    rates: np.ndarray | None = None,
    weigh: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Test:
    """``make(name, contrast of values at the rates keep)``, or *cannot say* naming the runs it lacks.

    The runs it needs are ``models`` x ``strategies`` x (``rates``, default ``keep``) x every seed.
    """
    why = cube.gap(metrics, models, strategies, keep if rates is None else rates)
    if why:
        return stats.missing_test(name, why, cube.tables)
    return make(name, _contrast(values, cube.rates, keep, weigh))


def _needs(cube: Cube, models: tuple[str, ...] = (), strategies: tuple[str, ...] = ()) -> str | None:
    """Why ``cube`` cannot test a statement about ``models`` and ``strategies`` (None if it can)."""
    absent = [m for m in models if m not in cube.models] + [s for s in strategies if s not in cube.strategies]
    return f"no runs of {', '.join(absent)}" if absent else None


def _no_band(cube: Cube, name: str) -> str:
    listed = ", ".join(f"{r:g}" for r in cube.rates)
    return f"no runs at {name} noise ({BAND_WORDS[name]}); the noise rates present are {listed}"


def tests_claim_1(cube: Cube) -> list[Test]:
    """Per model and per step between neighbouring noise rates: accuracy at the lower rate minus at the
    higher one is above zero (averaged over strategies, seed by seed), so a curve that rises or stays
    level at any step is not confirmed."""
    if len(cube.rates) < 2:
        return [stats.missing_test("every step", "needs at least two noise rates", cube.tables)]
    tests = []
    for model in cube.models:
        accuracy = cube.of_model("test_acc", model)
        for low, high in zip(cube.rates[:-1], cube.rates[1:]):
            keep = np.isin(cube.rates, (low, high))
            tests.append(
                _statement(
                    cube,
                    f"{model} from noise {low:g} to {high:g}",
                    stats.effect_test,
                    accuracy,
                    keep,
                    models=(model,),
                    weigh=lambda rate, present, low=low: stats.split_weights(rate == low, present),
                )
            )
    return tests


def tests_claim_2(cube: Cube) -> list[Test]:
    """vit_l32 ahead of each rival on accuracy, ECE and Brier: over all rates, at moderate and at high noise."""
    why = _needs(cube, ("vit_l32", *L32_RIVALS))
    if why:
        return [stats.missing_test("vit_l32 against its rivals", why, cube.tables)]
    tests = []
    for rival in L32_RIVALS:
        for metric, sign in (("test_acc", +1), ("ece", -1), ("brier", -1)):
            advantage = sign * (cube.of_model(metric, "vit_l32") - cube.of_model(metric, rival))
            label = CALIBRATION.get(metric, "accuracy")
            for name in ("all", "moderate", "high"):
                keep = band(cube.rates, name)
                test_name = f"over {rival}, {label}, {name} noise"
                tests.append(
                    _statement(
                        cube,
                        test_name,
                        stats.effect_test,
                        advantage,
                        keep,
                        models=("vit_l32", rival),
                        metrics=(metric,),
                    )
                    if keep.any()
                    else stats.missing_test(test_name, _no_band(cube, name), cube.tables)
                )
    return tests


def tests_claim_3(cube: Cube) -> list[Test]:
    """vit_l32 ahead of vit_l16 in accuracy at every rate, and vit_l16 costing 3-5x its FLOPs."""
    why = _needs(cube, ("vit_l16", "vit_l32"))
    if why:
        return [stats.missing_test("vit_l32 against vit_l16", why, cube.tables)]
    advantage = cube.of_model("test_acc", "vit_l32") - cube.of_model("test_acc", "vit_l16")
    tests = [
        _statement(
            cube, f"at noise {rate:g}", stats.effect_test, advantage, cube.rates == rate, models=("vit_l16", "vit_l32")
        )
        for rate in cube.rates
    ]
    ratio = cube.gflops.get("vit_l16", np.nan) / cube.gflops.get("vit_l32", np.nan)
    known = bool(np.isfinite(ratio))
    tests.append(
        stats.fact_test(
            "FLOPs per image vit_l16 / vit_l32",
            (FLOPS_RATIO[0] <= ratio <= FLOPS_RATIO[1]) if known else None,
            f"= {ratio:.2f}" if known else "unknown (runs without gflops_per_image)",
            cube.tables,
        )
    )
    return tests


def tests_claim_4(cube: Cube) -> list[Test]:
    """At every rate above the lowest, the SwinV2 models lose more accuracy than the ViTs.

    A model's loss at rate r is its accuracy at the lowest rate minus at r, for the same
    strategy and seed; the test is on the mean SwinV2 loss minus the mean ViT loss.
    """
    vits = tuple(m for m in VITS if m in cube.models)
    swins = tuple(m for m in SWINS if m in cube.models)
    if not vits or not swins or len(cube.rates) < 2:
        return [
            stats.missing_test(
                "SwinV2 against ViT", "needs a paper ViT, a SwinV2 model and two noise rates", cube.tables
            )
        ]
    acc = cube.metrics["test_acc"]  # [T, M, S, R, N]
    loss = acc[:, :, :, :1] - acc  # [T, M, S, R, N], accuracy lost since the lowest rate
    swin = loss[:, [cube.models.index(m) for m in swins]].mean(axis=1)  # [T, S, R, N]
    vit = loss[:, [cube.models.index(m) for m in vits]].mean(axis=1)
    lowest = cube.rates == cube.rates[0]
    return [
        _statement(
            cube,
            f"at noise {rate:g}",
            stats.effect_test,
            swin - vit,
            cube.rates == rate,
            models=swins + vits,
            rates=lowest | (cube.rates == rate),
        )
        for rate in cube.rates[1:]
    ]


def tests_claim_5(cube: Cube) -> list[Test]:
    """Accuracy gain over random: established at moderate noise, absent (within the margin) at low and at high noise."""
    why = _needs(cube, strategies=("random", *UNCERTAINTY))
    if why:
        return [stats.missing_test("uncertainty against random", why, cube.tables)]
    tests = []
    for strategy in UNCERTAINTY:
        gain = cube.of_strategy("test_acc", strategy) - cube.of_strategy("test_acc", "random")
        for name, make in (("low", stats.no_gain_test), ("moderate", stats.effect_test), ("high", stats.no_gain_test)):
            keep = band(cube.rates, name)
            test_name = f"{strategy}, {name} noise"
            tests.append(
                _statement(cube, test_name, make, gain, keep, strategies=("random", strategy))
                if keep.any()
                else stats.missing_test(test_name, _no_band(cube, name), cube.tables)
            )
    return tests


def tests_claim_6(cube: Cube) -> list[Test]:
    """Excess ECE and Brier over random: above zero overall, and larger at high noise than elsewhere."""
    why = _needs(cube, strategies=("random", *UNCERTAINTY))
    if why:
        return [stats.missing_test("uncertainty against random", why, cube.tables)]
    high = band(cube.rates, "high")
    everywhere = np.ones(len(cube.rates), dtype=bool)
    tests = []
    for strategy in UNCERTAINTY:
        for metric, label in CALIBRATION.items():
            excess = cube.of_strategy(metric, strategy) - cube.of_strategy(metric, "random")
            needs = dict(strategies=("random", strategy), metrics=(metric,))
            tests.append(
                _statement(cube, f"{strategy}, {label} overall", stats.effect_test, excess, everywhere, **needs)
            )
            name = f"{strategy}, {label} high minus rest"
            if high.all() or not high.any():
                tests.append(stats.missing_test(name, f"needs rates on both sides of {MODERATE[1]:g}", cube.tables))
                continue
            tests.append(
                _statement(
                    cube,
                    name,
                    stats.effect_test,
                    excess,
                    everywhere,
                    weigh=lambda rate, present: stats.split_weights(band(rate, "high"), present),
                    **needs,
                )
            )
    return tests


def tests_study_a(cube: Cube) -> list[Test]:
    """Over the noisy rates (above 0), pooled over models and strategies: the noisy-label fit leaves
    more ECE than the true-label fit, the more so the higher the rate (slope of the excess on the
    rate, all rates); the noise-aware fit leaves less than the noisy-label fit, and at most
    :data:`GAP_CLOSED` more than the true-label fit (non-inferiority: leaving less is no failure)."""
    if not all(name in cube.metrics for name in REPAIRED_ECE):
        return [stats.missing_test("temperature scaling", "runs without post-hoc calibration", cube.tables)]
    noisy = cube.rates > 0
    if not noisy.any() or len(cube.rates) < 2:
        return [stats.missing_test("temperature scaling", "needs a noise rate above 0 and two rates", cube.tables)]
    fitted_on_noisy, fitted_on_true, aware = (cube.of_all(name) for name in REPAIRED_ECE)
    everywhere = np.ones(len(cube.rates), dtype=bool)

    def statement(name: str, values: np.ndarray, keep: np.ndarray, weigh=None) -> Test:
        return _statement(cube, name, stats.effect_test, values, keep, metrics=REPAIRED_ECE, weigh=weigh)

    return [
        statement("noisy-label fit leaves more ECE than true-label fit", fitted_on_noisy - fitted_on_true, noisy),
        statement("that excess grows with noise", fitted_on_noisy - fitted_on_true, everywhere, stats.slope_weights),
        statement("noise-aware fit leaves less ECE than noisy-label fit", fitted_on_noisy - aware, noisy),
        statement(
            f"noise-aware fit leaves at most {GAP_CLOSED:g} more ECE than true-label fit",
            fitted_on_true - aware + GAP_CLOSED,
            noisy,
        ),
    ]


def tests_study_b(cube: Cube) -> list[Test]:
    """Per practical acq.calibrate value (:data:`PRACTICAL_CALIBRATION`), over the noisy rates (above 0),
    pooled over models and over the strategies that ran both with it and without (named
    ``entropy · aware`` and ``entropy`` in the cube, :func:`alvit.book.summary.named_by_acquisition`) and
    read probabilities: final accuracy with the temperature minus without it is above zero, with the seed as
    the unit (each seed's mean difference over those cells). It needs every run of those strategies, both
    ways, at every noisy rate and seed."""
    from alvit.strategies import STRATEGIES  # which strategies a temperature can change

    noisy = cube.rates > 0
    tests = []
    for value in PRACTICAL_CALIBRATION:
        name = f"{value}: accuracy gain over none"
        paired = [
            s
            for s in cube.strategies
            if s in STRATEGIES and STRATEGIES[s].reads_probabilities and f"{s} · {value}" in cube.strategies
        ]
        if not paired or not noisy.any():
            why = f"no runs with acq.calibrate {value} beside none" if not paired else "needs a noise rate above 0"
            tests.append(stats.missing_test(name, why, cube.tables))
            continue
        gain = np.stack(
            [cube.of_strategy("test_acc", f"{s} · {value}") - cube.of_strategy("test_acc", s) for s in paired], axis=1
        )  # [T, strategies, models, rates, seeds]
        both_ways = tuple(paired) + tuple(f"{s} · {value}" for s in paired)
        cells = gain.reshape(gain.shape[0], -1, *gain.shape[3:])  # [T, strategies x models, rates, seeds]
        tests.append(_statement(cube, name, stats.effect_test, cells, noisy, strategies=both_ways))
    return tests


def rows_for(claim: int | str, final: pd.DataFrame) -> pd.DataFrame:
    """The final rounds ``claim`` is judged on: for question B every run, its strategy named with its
    acq.calibrate; for the others the runs that acquire as the paper did (acq.calibrate none)."""
    return summary.named_by_acquisition(final) if claim == "B" else summary.paper_protocol(final)


TESTS: dict[int, Callable[[Cube], list[Test]]] = {
    1: tests_claim_1,
    2: tests_claim_2,
    3: tests_claim_3,
    4: tests_claim_4,
    5: tests_claim_5,
    6: tests_claim_6,
}
STUDY_TESTS: dict[str, Callable[[Cube], list[Test]]] = {"A": tests_study_a, "B": tests_study_b}
STATEMENTS: dict[int | str, str] = {**CLAIMS, **STUDY_CLAIMS}
ALL_TESTS: dict[int | str, Callable[[Cube], list[Test]]] = {**TESTS, **STUDY_TESTS}


@dataclass(frozen=True)
class Verdict:
    claim: int | str  # a paper claim's number, or a study question's letter
    statement: str
    verdict: str  # one of alvit.book.stats.OUTCOMES
    evidence: str
    settings: dict[str, str] = field(default_factory=dict)  # verdict per "dataset · noise kind"


def judge_settings(claim: int | str, cubes: dict[str, Cube]) -> tuple[stats.Judgement, dict[str, list[Test]]]:
    """Judge ``claim`` on every setting's cube at once: one family of statements across settings."""
    tests = {name: ALL_TESTS[claim](cube) for name, cube in cubes.items()}
    return stats.judge([test for setting in tests.values() for test in setting]), tests


def _setting_outcome(outcomes: list[str]) -> str:
    if FAILS in outcomes:
        return FAILS
    if CANNOT_SAY in outcomes:
        return CANNOT_SAY
    return HOLDS if all(outcome == HOLDS for outcome in outcomes) else INCONCLUSIVE


def check_claim(claim: int | str, final: pd.DataFrame) -> Verdict:
    """The verdict of ``claim`` (a paper claim or a study question) on a table of final rounds, with
    one line of evidence per setting."""
    cubes = {name: Cube.from_rows(rows) for name, rows in by_setting(rows_for(claim, final))}
    if not cubes:
        return Verdict(claim, STATEMENTS[claim], CANNOT_SAY, "no finished runs")
    judgement, tests = judge_settings(claim, cubes)
    parts, per_setting, index = [], {}, 0
    for name, setting_tests in tests.items():
        outcomes = [stats.outcome(judgement, index + i) for i in range(len(setting_tests))]
        index += len(setting_tests)
        per_setting[name] = _setting_outcome(outcomes)
        listed = "; ".join(f"{test.describe()} ({_label(outcome)})" for test, outcome in zip(setting_tests, outcomes))
        parts.append(f"{name}: {per_setting[name]}; {_tally(outcomes)}: {listed}")
    return Verdict(claim, STATEMENTS[claim], str(judgement.verdict[0]), " | ".join(parts), per_setting)


def _label(outcome: str) -> str:
    return "refuted" if outcome == FAILS else outcome


def _tally(outcomes: list[str]) -> str:
    """``8 of 10 statements hold, 1 refuted``."""
    counts = pd.Series([_label(o) for o in outcomes]).value_counts()
    rest = ", ".join(f"{counts[o]} {o}" for o in ("refuted", INCONCLUSIVE, CANNOT_SAY) if o in counts)
    return f"{counts.get(HOLDS, 0)} of {len(outcomes)} statements hold" + (f", {rest}" if rest else "")


def check_all(final: pd.DataFrame) -> list[Verdict]:
    """Every claim of the paper, in order."""
    return [check_claim(claim, final) for claim in CLAIMS]


def check_study(final: pd.DataFrame) -> list[Verdict]:
    """Every question of the study's own (:data:`STUDY_CLAIMS`), in order."""
    return [check_claim(claim, final) for claim in STUDY_CLAIMS]


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
