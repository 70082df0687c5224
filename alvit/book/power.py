"""How sure the verdicts are: their operating characteristics for a profile's grid, by simulation.

``alvit power PROFILE`` asks, for each of the six claims and each number of seeds: if the claim
were true with an effect of A seed-to-seed standard deviations, how often would the book say
*holds* (power) and how often *does not hold* (a false refutation); and if it were false, how
often would it say *holds* (a false confirmation), both where nothing differs and at the claim's
least favourable false configuration. It judges simulated final-round tables of the profile's
exact grid (settings, models, strategies, noise rates) with the same code that judges the book
(:func:`alvit.book.claims.judge_settings`). Every share comes with its Monte Carlo standard
error, ``sqrt(p (1 - p) / tables)``.

**The spreads.** A run's final accuracy, ECE and Brier are its cell's mean plus independent
normal seed noise whose standard deviation depends on the setting, the metric and the **noise
rate**: ``sd[metric][rate]``. They are estimated from the runs present, for each (setting, noise
rate), as the within-cell standard deviation over seeds pooled over the rate's cells (every
model and strategy with two seeds or more: ``sqrt(sum (n_c - 1) s_c^2 / sum (n_c - 1))``), or given
(``--sd``, one for every rate or one per rate), else :data:`DEFAULT_SD`, which the report's first
line then says.

**The effects.** An effect of A is A times the setting's *pooled* sd of the metric (the root mean
square of its per-rate sds), the same absolute size at every rate, so a claim is harder to
confirm at the rates where seeds disagree most. Every statement is a paired contrast, so the
cells' common level cancels and only the claim's effect is put in:

1. accuracy falls by A at every step between neighbouring noise rates, for every model;
2. vit_l32 is A ahead of every other model in accuracy, ECE and Brier, at every rate;
3. vit_l32 is A ahead of vit_l16 in accuracy at every rate (the FLOPs ratio is a fact about the
   models, not a random outcome; it is taken as 4);
4. the SwinV2 models lose A more accuracy than the ViTs at every rate above the lowest;
5. entropy and GCI-ViTAL gain A accuracy over random at moderate noise and nothing elsewhere;
6. entropy and GCI-ViTAL have A more ECE and Brier than random at every rate, and 2A at high noise.

For a profile that acquires with calibrated probabilities (``acq.calibrate``), the study's question
B too: each value a practitioner can use (noisy, aware) raises accuracy by A over none at every
noisy rate, for every strategy that reads probabilities. As the book judges them, the paper's
claims are simulated on the grid of the configurations that acquire as the paper did (``none``),
and question B on the whole grid, each strategy named with its ``acq.calibrate``
(``entropy · aware``, :func:`alvit.book.summary.acquisition_name`).

Claim 5's "no gain" statements are equivalence tests with a margin of 0.01 in accuracy, an
absolute size, so its figures hold at the spreads they assume only; :meth:`PowerReport.sd_curve`
gives its power against a seed sd the same at every rate.

**False claims.** "Nothing differs" is no effect at all. The *least favourable* false
configuration of an intersection-union rule is every statement but one true by far (here
:data:`STRONG_EFFECT` pooled sds) and that one exactly at its boundary (:func:`least_favourable`
names it for each claim); P(holds) there approaches the level, 5%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from alvit.book import claims, stats, summary
from alvit.book.claims import Cube
from alvit.errors import ConfigError
from alvit.flags import MIN_TABLES, SEED_COUNTS

if TYPE_CHECKING:
    from alvit.config import ExperimentConfig

DEFAULT_SD = 0.02  # about the seed-to-seed spread of fine-tuned accuracy; used where no runs show one
DEFAULT_EFFECT = 2.0  # in pooled seed-to-seed standard deviations
DEFAULT_TABLES = 200
DEFAULT_SEEDS = (3, 5, 10)
TARGET_POWER = 0.8
MAX_SEEDS = SEED_COUNTS[1]
CURVE_SEEDS = tuple(range(2, 13))
STRONG_EFFECT = 10.0  # pooled sds: how true the other statements of a least favourable false claim are
SD_CURVE = tuple(float(s) for s in np.geomspace(0.001, 0.3, 16))  # claim 5's power against the seed sd
METRICS = claims.METRICS
METRIC_NAMES = {"test_acc": "accuracy", "ece": "ECE", "brier": "Brier"}
SIMULATED_GFLOPS = {"vit_l16": 4.0, "vit_l32": 1.0}
CLAIM_METRICS = {2: METRICS, 6: METRICS}  # the metrics a claim's statements read; the others read accuracy alone
FALSE_TABLES = 5  # false claims are simulated in this many times the tables: their shares are read against 5%
RUNS, GIVEN, DEFAULT = "runs", "given", "default"  # where a rate's spread came from
PRACTICAL_SUFFIXES = tuple(f" · {value}" for value in claims.PRACTICAL_CALIBRATION)  # question B's judged names


def _key(rate: float) -> float:
    """A noise rate as a dictionary key that survives float round-trips (0.30000000000000004)."""
    return round(float(rate), 6)


@dataclass(frozen=True)
class SettingGrid:
    """One setting's grid and the seed-to-seed spread assumed for each metric at each noise rate.

    ``sd[metric]`` and ``sd_source`` have one entry per rate of ``rates``; a source is
    :data:`RUNS`, :data:`GIVEN` or :data:`DEFAULT`.
    """

    name: str
    models: tuple[str, ...]
    strategies: tuple[str, ...]
    rates: tuple[float, ...]
    sd: dict[str, tuple[float, ...]]
    sd_source: tuple[str, ...]

    def pooled(self, metric: str) -> float:
        """The root mean square of ``metric``'s per-rate sds: the unit of an effect."""
        return float(np.sqrt(np.mean(np.square(self.sd[metric]))))

    def with_sd(self, sd: float) -> SettingGrid:
        """This grid with the seed sd ``sd`` for every metric at every rate."""
        spreads = {metric: (sd,) * len(self.rates) for metric in METRICS}
        return replace(self, sd=spreads, sd_source=(GIVEN,) * len(self.rates))


def rate_spreads(rows: pd.DataFrame, metric: str) -> dict[float, float]:
    """Per noise rate, the within-cell sd of ``metric`` over seeds pooled over that rate's
    (model, strategy) cells with two seeds or more; rates without such a cell are left out."""
    spreads = {}
    for rate, at_rate in rows.groupby("noise_rate"):
        grouped = at_rate.groupby(["model", "strategy"])[metric]
        dof = (grouped.count() - 1).clip(lower=0)
        if dof.sum() > 0:
            squares = (grouped.var(ddof=1) * dof).sum()  # a one-seed cell's variance is NaN: the sum skips it
            spreads[_key(rate)] = float(np.sqrt(squares / dof.sum()))
    return spreads


def _profile_table(configs: Sequence, strategy_of: Callable[[ExperimentConfig], str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "dataset": c.dataset,
                "noise_kind": c.noise.kind,
                "mode": c.train.mode,
                "model": c.model,
                "strategy": strategy_of(c),
                "noise_rate": float(c.noise.rate),
                "seed": c.seed,
                "run_id": c.run_id,
            }
            for c in configs
        ]
    )


def setting_grids(
    configs: Sequence,
    final: pd.DataFrame | None = None,
    sd: float | Mapping[float, float] | None = None,
    strategy_of: Callable[[ExperimentConfig], str] = attrgetter("strategy"),
) -> list[SettingGrid]:
    """The settings of a profile's ``configs``, each with its spread per metric and noise rate.

    ``sd``: one sd for every rate, or ``{rate: sd}`` naming every noise rate of the profile; else
    the spreads of the runs in ``final`` (:func:`rate_spreads`), else :data:`DEFAULT_SD`.
    ``strategy_of`` names a configuration's strategy in the grid (question B's names it with its
    acq.calibrate, as ``final``'s must be).
    """
    table = _profile_table(configs, strategy_of)
    rates = sorted({_key(r) for r in table["noise_rate"]})
    if isinstance(sd, Mapping):
        given = {_key(r): float(s) for r, s in sd.items()}
        if sorted(given) != rates:
            listed = ", ".join(f"{r:g}" for r in rates)
            raise ConfigError(
                f"--sd names the noise rates {', '.join(f'{r:g}' for r in sorted(given))}, but the profile's are "
                f"{listed}: give one sd for every rate (e.g. 0.02), or RATE:SD for each of {listed}"
            )
    final = None if final is None or final.empty else summary.with_mode(final)
    grids = []
    for (dataset, kind, mode), rows in table.groupby(summary.SETTING, sort=True):
        setting_rates = tuple(sorted({_key(r) for r in rows["noise_rate"]}))
        present = (
            None
            if final is None
            else final[(final["dataset"] == dataset) & (final["noise_kind"] == kind) & (final["mode"] == mode)]
        )
        spreads, sources = {}, []
        if sd is not None:
            per_rate = given if isinstance(sd, Mapping) else dict.fromkeys(setting_rates, float(sd))
            spreads = {metric: tuple(per_rate[r] for r in setting_rates) for metric in METRICS}
            sources = [GIVEN] * len(setting_rates)
        else:
            measured = {metric: ({} if present is None else rate_spreads(present, metric)) for metric in METRICS}
            for metric in METRICS:  # a spread of 0 (every seed agrees) is what the runs show, and kept
                spreads[metric] = tuple(measured[metric].get(r, DEFAULT_SD) for r in setting_rates)
            sources = [RUNS if r in measured["test_acc"] else DEFAULT for r in setting_rates]
        grids.append(
            SettingGrid(
                summary.setting_name(dataset, kind, mode),
                tuple(sorted(rows["model"].unique())),
                tuple(sorted(rows["strategy"].unique())),
                setting_rates,
                spreads,
                tuple(sources),
            )
        )
    return grids


@dataclass(frozen=True)
class SeedEffect:
    """A shared seed effect among the runs of one noise rate (its models x strategies), in one setting.

    Per rate: the intra-class correlation of the additive model ``run = cell + seed + error``
    (``(MS_seed - MS_error) / (MS_seed + (C - 1) MS_error)``, C cells; below 0 by chance when
    there is none) and the F test of the seed term; ``p`` combines the rates' F tests by Fisher's
    method (under no seed effect, runs are independent and so are the rates' tests).
    """

    setting: str
    metric: str
    rates: tuple[float, ...]
    icc: tuple[float, ...]
    p_by_rate: tuple[float, ...]
    p: float

    @property
    def mean_icc(self) -> float:
        return float(np.mean(self.icc))

    def describe(self) -> str:
        """``ICC 0.05 (per rate -0.21 to 0.33), p = 0.45``."""
        return (
            f"ICC {self.mean_icc:+.2f} on average over {len(self.rates)} noise rates "
            f"({min(self.icc):+.2f} to {max(self.icc):+.2f}), p = {self.p:.2g}"
        )


def seed_term(values: np.ndarray) -> tuple[float, float]:
    """The seed term of a two-way layout without replication, ``values`` ``[cells, seeds]``: (ICC, p of F).

    NaN, NaN when the layout has fewer than two cells or seeds, or no residual spread.
    """
    cells, seeds = values.shape
    if cells < 2 or seeds < 2:
        return math.nan, math.nan
    grand = values.mean()
    by_seed = values.mean(axis=0)
    residual = values - values.mean(axis=1, keepdims=True) - by_seed[None, :] + grand
    ms_seed = cells * np.sum((by_seed - grand) ** 2) / (seeds - 1)
    df_error = (cells - 1) * (seeds - 1)
    ms_error = np.sum(residual**2) / df_error
    if not ms_error > 0:
        return math.nan, math.nan
    icc = (ms_seed - ms_error) / (ms_seed + (cells - 1) * ms_error)
    return float(icc), float(scipy_stats.f.sf(ms_seed / ms_error, seeds - 1, df_error))


def seed_effect(rows: pd.DataFrame, setting: str, metric: str = "test_acc") -> SeedEffect | None:
    """The shared seed effect of ``metric`` in one setting's final rounds; None where no rate can show one.

    At each rate the layout is the (model, strategy) cells that have every seed of that rate.
    """
    rates, iccs, ps = [], [], []
    for rate, at_rate in rows.groupby("noise_rate"):
        layout = at_rate.pivot_table(index=["model", "strategy"], columns="seed", values=metric, aggfunc="mean")
        icc, p = seed_term(layout.dropna().to_numpy(float))
        if np.isfinite(p):
            rates.append(_key(rate))
            iccs.append(icc)
            ps.append(p)
    if not rates:
        return None
    fisher = float(scipy_stats.chi2.sf(-2 * np.sum(np.log(np.maximum(ps, 1e-300))), 2 * len(ps)))
    return SeedEffect(setting, metric, tuple(rates), tuple(iccs), tuple(ps), fisher)


def claim_effects(claim: int | str, grid: SettingGrid, effect: float) -> dict[str, np.ndarray]:
    """Cell means ``[models, strategies, rates]`` of each metric when ``claim`` is true at ``effect``
    (in pooled sds of the metric, the same absolute size at every rate)."""
    shape = (len(grid.models), len(grid.strategies), len(grid.rates))
    means = {metric: np.zeros(shape) for metric in METRICS}
    size = {metric: effect * grid.pooled(metric) for metric in METRICS}
    rates = np.asarray(grid.rates)
    models, strategies = np.array(grid.models), np.array(grid.strategies)
    if claim == 1:
        means["test_acc"][:] = -size["test_acc"] * np.arange(len(rates))  # rates ascend: a step of A each
    elif claim in (2, 3):
        winner = models == "vit_l32"
        means["test_acc"][winner] += size["test_acc"]
        if claim == 2:
            means["ece"][winner] -= size["ece"]
            means["brier"][winner] -= size["brier"]
    elif claim == 4:
        swin = np.isin(models, claims.SWINS)
        means["test_acc"][np.ix_(swin, np.ones(len(strategies), bool), rates > rates.min())] -= size["test_acc"]
    elif claim == 5:
        uncertain = np.isin(strategies, claims.UNCERTAINTY)
        means["test_acc"][:, uncertain] += size["test_acc"] * claims.band(rates, "moderate")
    elif claim == 6:
        uncertain = np.isin(strategies, claims.UNCERTAINTY)
        for metric in claims.CALIBRATION:
            means[metric][:, uncertain] += size[metric] * (1 + claims.band(rates, "high"))
    elif claim == "B":
        practical = np.array([name.endswith(PRACTICAL_SUFFIXES) for name in strategies], dtype=bool)
        means["test_acc"][np.ix_(np.ones(len(models), bool), practical, rates > 0)] += size["test_acc"]
    return means


def least_favourable(claim: int | str, grid: SettingGrid) -> tuple[dict[str, np.ndarray], str]:
    """The cell means of ``claim``'s least favourable false configuration in ``grid``, and it in words.

    Every statement but one is true by :data:`STRONG_EFFECT` pooled sds; that one sits exactly at
    its boundary (an effect of 0, or a gain of exactly the no-gain margin), so the claim is false
    and P(holds) is as high as a false claim's can be, about the level.
    """
    means = claim_effects(claim, grid, STRONG_EFFECT)
    rates, models, strategies = np.asarray(grid.rates), list(grid.models), list(grid.strategies)
    strong = f"{STRONG_EFFECT:g} pooled sds"
    acc = means["test_acc"]
    if claim == 1:
        model, step = 0, (len(rates) - 2) // 2
        acc[model, :, step + 1 :] += STRONG_EFFECT * grid.pooled("test_acc")
        return means, (
            f"every model falls by {strong} at every step, except {models[model]}, level from noise "
            f"{rates[step]:g} to {rates[step + 1]:g}"
        )
    if claim == 2:
        winner, rival, moderate = models.index("vit_l32"), models.index("vit_b16"), claims.band(rates, "moderate")
        means["ece"][rival, :, moderate] = means["ece"][winner, :, moderate]
        return means, f"vit_l32 ahead by {strong} everywhere, except level with vit_b16 in ECE at moderate noise"
    if claim == 3:
        middle = len(rates) // 2
        acc[models.index("vit_l32"), :, middle] = acc[models.index("vit_l16"), :, middle]
        return means, f"vit_l32 ahead of vit_l16 by {strong} at every rate except noise {rates[middle]:g}, level there"
    if claim == 4:
        middle = 1 + (len(rates) - 1) // 2
        acc[:, :, middle] = 0.0
        return means, (
            f"the SwinV2 models lose {strong} more accuracy than the ViTs at every rate above the lowest, "
            f"except noise {rates[middle]:g}, the same there"
        )
    if claim == 5:
        entropy = strategies.index("entropy")
        acc[:, entropy, claims.band(rates, "high")] = stats.NO_GAIN_MARGIN
        return means, (
            f"entropy and GCI-ViTAL gain {strong} at moderate noise and nothing at low noise; at high noise "
            f"GCI-ViTAL gains nothing and entropy exactly the {stats.NO_GAIN_MARGIN:g} margin"
        )
    if claim == 6:
        entropy = strategies.index("entropy")
        means["ece"][:, entropy] = STRONG_EFFECT * grid.pooled("ece")
        return means, (
            f"entropy and GCI-ViTAL have {strong} more ECE and Brier than random everywhere and twice that at "
            f"high noise, except entropy's ECE excess, the same at high noise as elsewhere"
        )
    if claim == "B":
        last = PRACTICAL_SUFFIXES[-1]
        acc[:, [name.endswith(last) for name in strategies]] = 0.0
        first, last = claims.PRACTICAL_CALIBRATION[0], claims.PRACTICAL_CALIBRATION[-1]
        return means, (f"acq.calibrate {first} raises accuracy by {strong} at every noisy rate, {last} not at all")
    raise ValueError(f"no claim {claim}")


def least_favourable_means(claim: int | str, grids: list[SettingGrid]) -> list[dict[str, np.ndarray]]:
    """The least favourable false configuration over several settings: the first setting's (one
    statement at its boundary), every other setting true by :data:`STRONG_EFFECT` pooled sds."""
    return [least_favourable(claim, grids[0])[0]] + [claim_effects(claim, g, STRONG_EFFECT) for g in grids[1:]]


def least_favourable_words(claim: int | str, grids: list[SettingGrid]) -> str:
    """:func:`least_favourable_means` in words."""
    words = f"{least_favourable(claim, grids[0])[1]}, in {grids[0].name}"
    return words + (f"; the claim true by {STRONG_EFFECT:g} pooled sds in every other setting" if grids[1:] else "")


def simulated_cube(
    grid: SettingGrid,
    means: dict[str, np.ndarray],
    seeds: int,
    tables: int,
    rng: np.random.Generator,
    metrics: Sequence[str] = METRICS,
) -> Cube:
    """``tables`` final-round tables of ``grid``: ``means`` plus independent normal seed noise of each
    metric's sd at each noise rate (only ``metrics``, accuracy first, are drawn)."""
    shape = (tables, *means["test_acc"].shape, seeds)
    drawn = {}
    for metric in metrics:
        sd = np.asarray(grid.sd[metric], dtype=float)[None, None, None, :, None]  # one per rate
        drawn[metric] = means[metric][None, ..., None] + sd * rng.standard_normal(shape)
    return Cube(grid.models, grid.strategies, np.asarray(grid.rates, float), drawn, dict(SIMULATED_GFLOPS))


def monte_carlo_se(share: float, tables: int) -> float:
    """The standard error of a share of ``tables`` independent tables."""
    return math.sqrt(share * (1 - share) / tables)


@dataclass(frozen=True)
class Characteristics:
    """How often a claim is called what, at one number of seeds: the true claim's shares of ``tables``
    tables, the false claim's of ``false_tables``."""

    seeds: int
    tables: int
    holds_if_true: float
    fails_if_true: float
    false_tables: int
    holds_if_nothing_differs: float
    holds_if_least_favourable: float

    def to_json(self) -> dict:
        def share(value: float, tables: int) -> dict:
            return {"share": value, "se": monte_carlo_se(value, tables), "tables": tables}

        return {
            "seeds": self.seeds,
            "holds_if_true": share(self.holds_if_true, self.tables),
            "fails_if_true": share(self.fails_if_true, self.tables),
            "holds_if_nothing_differs": share(self.holds_if_nothing_differs, self.false_tables),
            "holds_if_least_favourable": share(self.holds_if_least_favourable, self.false_tables),
        }


def _stream(claim: int | str) -> int:
    """A claim as a key of its random streams: its number, or a study question's letter past them (B: 166)."""
    return claim if isinstance(claim, int) else 100 + ord(claim)


def _verdicts(claim: int | str, grids: list[SettingGrid], means: list[dict], seeds: int, tables: int, key: list[int]):
    rng = np.random.default_rng(key)
    metrics = CLAIM_METRICS.get(claim, ("test_acc",))
    cubes = {g.name: simulated_cube(g, m, seeds, tables, rng, metrics) for g, m in zip(grids, means)}
    return claims.judge_settings(claim, cubes)[0].verdict


def power_of(claim: int | str, grids: list[SettingGrid], seeds: int, effect: float, tables: int, seed: int = 0):
    """(P(holds), P(does not hold)) of ``claim`` true at ``effect``, from ``tables`` simulated tables."""
    verdicts = _verdicts(
        claim, grids, [claim_effects(claim, g, effect) for g in grids], seeds, tables, [seed, _stream(claim), seeds, 0]
    )
    return float((verdicts == stats.HOLDS).mean()), float((verdicts == stats.FAILS).mean())


def false_confirmations(claim: int | str, grids: list[SettingGrid], seeds: int, tables: int, seed: int = 0):
    """(P(holds | nothing differs), P(holds | least favourable false)) of ``claim``."""
    key = _stream(claim)
    nothing = _verdicts(
        claim, grids, [claim_effects(claim, g, 0.0) for g in grids], seeds, tables, [seed, key, seeds, 1]
    )
    worst = _verdicts(claim, grids, least_favourable_means(claim, grids), seeds, tables, [seed, key, seeds, 2])
    return float((nothing == stats.HOLDS).mean()), float((worst == stats.HOLDS).mean())


def characteristics(
    claim: int | str, grids: list[SettingGrid], seeds: int, effect: float, tables: int, seed: int = 0
) -> Characteristics:
    """Shares of ``tables`` simulated tables judged holds / does not hold with the claim true, and of
    :data:`FALSE_TABLES` times as many judged holds with it false."""
    holds, fails = power_of(claim, grids, seeds, effect, tables, seed)
    nothing, worst = false_confirmations(claim, grids, seeds, FALSE_TABLES * tables, seed)
    return Characteristics(seeds, tables, holds, fails, FALSE_TABLES * tables, nothing, worst)


def testable(claim: int | str, grids: list[SettingGrid]) -> str | None:
    """Why the profile's grid cannot test ``claim`` (None if it can)."""
    if not grids:
        return "no configuration of the profile acquires as the paper did (acq.calibrate none)"
    tests = [
        t
        for g in grids
        for t in claims.ALL_TESTS[claim](
            simulated_cube(
                g, claim_effects(claim, g, 0.0), 2, 1, np.random.default_rng(0), CLAIM_METRICS.get(claim, ("test_acc",))
            )
        )
    ]
    missing = [t.detail for t in tests if not t.available]
    return missing[0] if missing else None


def seeds_for_power(
    claim: int, grids: list[SettingGrid], effect: float, tables: int, target: float = TARGET_POWER, seed: int = 0
) -> int | None:
    """The fewest seeds (2 to :data:`MAX_SEEDS`) whose power reaches ``target``; None if none does."""
    return PowerReport("", effect, tables, grids, [], seed).fewest_seeds(claim, target)


@dataclass
class ClaimPower:
    claim: int | str
    statement: str
    untestable: str | None
    rows: list[Characteristics] = field(default_factory=list)
    seeds_for_80: int | None = None
    least_favourable: str = ""


@dataclass
class PowerReport:
    """The operating characteristics of every claim for one profile, and what they assume.

    ``origin`` says where the spreads came from (the first line of :meth:`format`);
    ``seed_effects`` holds the runs' shared seed effect per setting (None without runs);
    ``profile_seeds`` is the number of seeds the profile runs.
    """

    profile: str
    effect: float
    tables: int
    settings: list[SettingGrid]
    claims: list[ClaimPower]
    seed: int = 0
    origin: str = ""
    runs_found: int = 0
    runs_expected: int = 0
    seed_effects: dict[str, SeedEffect | None] = field(default_factory=dict)
    profile_seeds: int = 3
    measured: dict[tuple, tuple[float, float]] = field(default_factory=dict, repr=False)
    # Question B's grid: every configuration, each strategy named with its acq.calibrate (``settings``
    # is the paper's claims' grid, the configurations acquiring as the paper did).
    study_settings: list[SettingGrid] = field(default_factory=list)

    def grids_for(self, claim: int | str) -> list[SettingGrid]:
        return self.study_settings if claim == "B" else self.settings

    def power(self, claim: int | str, seeds: int) -> tuple[float, float]:
        """(P(holds | true), P(does not hold | true)), simulated once however often asked for."""
        if ("power", claim, seeds) not in self.measured:
            self.measured["power", claim, seeds] = power_of(
                claim, self.grids_for(claim), seeds, self.effect, self.tables, self.seed
            )
        return self.measured["power", claim, seeds]

    def at(self, claim: int | str, seeds: int) -> Characteristics:
        """``claim``'s characteristics at ``seeds`` seeds."""
        false_tables = FALSE_TABLES * self.tables
        if ("false", claim, seeds) not in self.measured:
            self.measured["false", claim, seeds] = false_confirmations(
                claim, self.grids_for(claim), seeds, false_tables, self.seed
            )
        return Characteristics(
            seeds, self.tables, *self.power(claim, seeds), false_tables, *self.measured["false", claim, seeds]
        )

    def fewest_seeds(self, claim: int | str, target: float = TARGET_POWER) -> int | None:
        """The fewest seeds (2 to :data:`MAX_SEEDS`) whose power reaches ``target``; None if none does."""
        return next((n for n in range(2, MAX_SEEDS + 1) if self.power(claim, n)[0] >= target), None)

    def curve(self, seeds: Sequence[int] = CURVE_SEEDS) -> pd.DataFrame:
        """P(holds | true) of every claim the grid can test, at each of ``seeds``: columns claim, seeds, power."""
        rows = [
            {"claim": power.claim, "seeds": n, "power": self.power(power.claim, n)[0]}
            for power in self.claims
            if power.untestable is None
            for n in seeds
        ]
        return pd.DataFrame(rows, columns=["claim", "seeds", "power"])

    def sd_curve(self, claim: int = 5, sds: Sequence[float] = SD_CURVE) -> pd.DataFrame:
        """P(holds | true) of ``claim`` at the profile's seeds against a seed sd the same for every metric
        and rate: columns sd, power, se (empty if the grid cannot test the claim)."""
        if testable(claim, self.settings) is not None:
            return pd.DataFrame(columns=["sd", "power", "se"])
        if ("sd curve", claim) not in self.measured:
            rows = []
            for sd in sds:
                share, _ = power_of(
                    claim, [g.with_sd(sd) for g in self.settings], self.profile_seeds, self.effect, self.tables
                )
                rows.append({"sd": sd, "power": share, "se": monte_carlo_se(share, self.tables)})
            self.measured["sd curve", claim] = pd.DataFrame(rows)
        return self.measured["sd curve", claim]

    def largest_sd_for(self, claim: int = 5, target: float = TARGET_POWER) -> float | None:
        """The largest sd of :meth:`sd_curve` at which ``claim`` still reaches ``target`` (None if none)."""
        curve = self.sd_curve(claim)
        reached = curve[curve["power"] >= target]
        return float(reached["sd"].max()) if not reached.empty else None

    def spread_table(self) -> pd.DataFrame:
        """The seed sd assumed per setting, metric and noise rate, and where it came from."""
        rows = []
        for grid in self.settings:
            for metric in METRICS:
                rows.append(
                    {
                        "setting": grid.name,
                        "metric": METRIC_NAMES[metric],
                        **{f"{r:g}": sd for r, sd in zip(grid.rates, grid.sd[metric])},
                        "pooled": grid.pooled(metric),
                    }
                )
            rows.append(
                {"setting": grid.name, "metric": "from", **{f"{r:g}": s for r, s in zip(grid.rates, grid.sd_source)}}
            )
        return pd.DataFrame(rows).set_index(["setting", "metric"]).fillna("")

    def table(self) -> pd.DataFrame:
        """One row per claim and number of seeds, each share with its Monte Carlo standard error."""
        rows = []
        for power in self.claims:
            for row in power.rows:
                rows.append(
                    {
                        "claim": power.claim,
                        "seeds": row.seeds,
                        "P(holds | true)": _share(row.holds_if_true, row.tables),
                        "P(does not hold | true)": _share(row.fails_if_true, row.tables),
                        "P(holds | nothing differs)": _share(row.holds_if_nothing_differs, row.false_tables),
                        "P(holds | least favourable false)": _share(row.holds_if_least_favourable, row.false_tables),
                        "seeds for 80% power": str(power.seeds_for_80 or f"more than {MAX_SEEDS}"),
                    }
                )
        return pd.DataFrame(rows)

    def to_json(self) -> dict:
        claim_5 = self.sd_curve(5)
        return {
            "profile": self.profile,
            "effect_in_pooled_sd": self.effect,
            "tables": self.tables,
            "spreads_from": self.origin,
            "runs_found": self.runs_found,
            "runs_expected": self.runs_expected,
            "settings": [{**asdict(s), "pooled_sd": {m: s.pooled(m) for m in METRICS}} for s in self.settings],
            "question_b_settings": [
                {**asdict(s), "pooled_sd": {m: s.pooled(m) for m in METRICS}} for s in self.study_settings
            ],
            "shared_seed_effect": {
                name: (None if effect is None else asdict(effect)) for name, effect in self.seed_effects.items()
            },
            "claims": [
                {
                    "claim": p.claim,
                    "statement": p.statement,
                    "untestable": p.untestable,
                    "least_favourable_false": p.least_favourable,
                    "seeds_for_80_percent_power": p.seeds_for_80,
                    "rows": [r.to_json() for r in p.rows],
                }
                for p in self.claims
            ],
            "claim_5_power_against_sd": {
                "seeds": self.profile_seeds,
                "curve": claim_5.to_dict(orient="records"),
                "largest_sd_for_80_percent": None if claim_5.empty else self.largest_sd_for(5),
            },
        }

    def claim_5_sentence(self) -> str:
        """What claim 5's figures assume, in one sentence (empty if the grid cannot test it)."""
        if self.sd_curve(5).empty:
            return ""
        largest = self.largest_sd_for(5)
        spread = ", ".join(_range(g.sd["test_acc"]) + f" in {g.name}" for g in self.settings)
        where = (
            f"only where the seed sd of accuracy is at most about {largest:.3g}"
            if largest is not None
            else f"at no seed sd from {SD_CURVE[0]:g} to {SD_CURVE[-1]:g}"
        )
        return (
            f'Claim 5\'s "no gain" statements have a fixed margin of {stats.NO_GAIN_MARGIN:g} in accuracy, so its '
            f"figures hold at the spreads assumed here only (accuracy sd {spread}); at the profile's "
            f"{self.profile_seeds} seeds its power reaches {TARGET_POWER:.0%} {where}."
        )

    def format(self) -> str:
        """The report as text: where the spreads came from (first line), the spreads, the runs' shared
        seed effect, a line per claim and number of seeds, and what claim 5's figures assume."""
        worst_se = monte_carlo_se(0.5, self.tables)
        lines = [
            f"profile {self.profile}: {self.origin}; effect {self.effect:g} pooled seed-sds; {self.tables} simulated "
            f"tables per figure of a true claim (Monte Carlo standard error at most {worst_se:.3f}), "
            f"{FALSE_TABLES * self.tables} of a false one"
        ]
        lines.append("seed-to-seed sd per noise rate (pooled over the models and strategies of a rate):")
        for grid in self.settings:
            lines.append(f"  {grid.name}")
            lines.append(f"    {'noise':<9}" + "".join(f"{r:>8g}" for r in grid.rates) + f"{'pooled':>8}")
            for metric in METRICS:
                lines.append(
                    f"    {METRIC_NAMES[metric]:<9}"
                    + "".join(f"{s:>8.4f}" for s in grid.sd[metric])
                    + f"{grid.pooled(metric):>8.4f}"
                )
            lines.append(f"    {'from':<9}" + "".join(f"{s:>8}" for s in grid.sd_source))
        if any(p.claim == "B" for p in self.claims):
            lines.append("question B's grid (every run, each strategy named with its acq.calibrate), accuracy sd:")
            lines += [
                f"  {g.name}: " + ", ".join(f"{s:.4f} at {r:g}" for r, s in zip(g.rates, g.sd["test_acc"]))
                for g in self.study_settings
            ]
        lines.append("shared seed effect in accuracy among the runs of one noise rate (the runs' own):")
        for grid in self.settings:
            effect = self.seed_effects.get(grid.name)
            lines.append(f"  {grid.name}: {effect.describe() if effect else 'no runs with two seeds to test'}")
        lines.append(
            f"{'claim':>5} {'seeds':>5} {'P(holds|true)':>15} {'P(not|true)':>15} {'P(holds|none)':>15} "
            f"{'P(holds|worst)':>15}  seeds for 80%"
        )
        for power in self.claims:
            if power.untestable:
                lines.append(f"{power.claim:>5}  not testable in this grid: {power.untestable}")
                continue
            needed = power.seeds_for_80 if power.seeds_for_80 is not None else f"more than {MAX_SEEDS}"
            for i, row in enumerate(power.rows):
                shares = [_share(s, row.tables) for s in (row.holds_if_true, row.fails_if_true)]
                shares += [
                    _share(s, row.false_tables) for s in (row.holds_if_nothing_differs, row.holds_if_least_favourable)
                ]
                lines.append(
                    f"{power.claim:>5} {row.seeds:>5} "
                    + " ".join(f"{s:>15}" for s in shares)
                    + f"  {needed if i == 0 else ''}"
                )
        lines.append("least favourable false configurations (P(holds|worst)):")
        lines += [f"  {p.claim}: {p.least_favourable}" for p in self.claims if not p.untestable]
        sentence = self.claim_5_sentence()
        if sentence:
            lines.append(sentence)
        return "\n".join(lines)


def _share(share: float, tables: int) -> str:
    """``0.675 ± 0.033``; a share of 0 or 1 gets the 95% bound of its side (``0 (< 0.015)``)."""
    bound = 1 - 0.05 ** (1 / tables)  # P(no event in `tables` tables) = 0.05
    if share == 0:
        return f"0 (< {bound:.3f})"
    if share == 1:
        return f"1 (> {1 - bound:.3f})"
    return f"{share:.3f} ± {monte_carlo_se(share, tables):.3f}"


def _range(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.3g}" if math.isclose(low, high) else f"{low:.3g} to {high:.3g}"


def power_report(
    profile_name: str,
    grids: list[SettingGrid],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    effect: float = DEFAULT_EFFECT,
    tables: int = DEFAULT_TABLES,
    seed: int = 0,
    **context,
) -> PowerReport:
    """Operating characteristics of every claim at each of ``seeds``, and the fewest seeds for 80% power.

    ``context``: the :class:`PowerReport` fields that describe where the figures come from
    (origin, runs_found, runs_expected, seed_effects, profile_seeds) and question B's grid
    (study_settings; B is reported where that grid acquires with calibrated probabilities).
    """
    report = PowerReport(profile_name, effect, tables, grids, [], seed, **context)
    questions: dict[int | str, str] = dict(claims.CLAIMS)
    if any(" · " in name for g in report.study_settings for name in g.strategies):  # calibrated acquisition
        questions["B"] = claims.STUDY_CLAIMS["B"]
    for claim, statement in questions.items():
        power = ClaimPower(claim, statement, testable(claim, report.grids_for(claim)))
        if power.untestable is None:
            power.rows = [report.at(claim, n) for n in seeds]
            power.seeds_for_80 = report.fewest_seeds(claim)
            power.least_favourable = least_favourable_words(claim, report.grids_for(claim))
        report.claims.append(power)
    return report


def check_arguments(seeds: Sequence[int], effect: float, sd: float | Mapping[float, float] | None, tables: int) -> None:
    """One sentence for a value outside its range (the command line checks the same where it parses)."""
    if not seeds or any(not SEED_COUNTS[0] <= n <= SEED_COUNTS[1] for n in seeds):
        raise ConfigError(f"seeds must be numbers of seeds from {SEED_COUNTS[0]} to {SEED_COUNTS[1]}, e.g. 3,5,10")
    if not 0 < effect <= 100:  # False for NaN too
        raise ConfigError(
            f"the effect must be a number of seed-sds above 0 and at most 100 (e.g. {DEFAULT_EFFECT:g}), not {effect}"
        )
    spreads = sd.items() if isinstance(sd, Mapping) else [] if sd is None else [(None, sd)]
    for rate, value in spreads:
        if rate is not None and not 0 <= rate < 1:
            raise ConfigError(f"a noise rate in --sd must be from 0 up to 1 (not included), not {rate}")
        if not 0 < value <= 1:
            raise ConfigError(f"the seed-to-seed sd must be above 0 and at most 1 (e.g. {DEFAULT_SD:g}), not {value}")
    if tables < MIN_TABLES:
        raise ConfigError(f"tables must be at least {MIN_TABLES} (default {DEFAULT_TABLES}), not {tables}")


def _origin(
    sd: float | Mapping[float, float] | None,
    grids: list[SettingGrid],
    folder: str,
    found: int,
    expected: int,
    exists: bool,
) -> str:
    """Where the spreads came from, for the report's first line; a default spread is always said."""
    if isinstance(sd, Mapping):
        return "seed sds given per noise rate (--sd " + ",".join(f"{r:g}:{s:g}" for r, s in sorted(sd.items())) + ")"
    if sd is not None:
        return f"seed sd {sd:g} at every noise rate, given (--sd)"
    defaulted = [f"{g.name} noise {r:g}" for g in grids for r, s in zip(g.rates, g.sd_source) if s == DEFAULT]
    if len(defaulted) == sum(len(g.rates) for g in grids):
        where = (
            f"{found} of {expected} runs finished in {folder}, no cell with two seeds"
            if exists
            else f"no run folder {folder} yet, 0 of {expected} runs"
        )
        return f"THE DEFAULT seed sd {DEFAULT_SD:g} at every noise rate, not the runs' ({where}; give --runs or --sd)"
    text = f"seed sds per setting and noise rate from {found} of {expected} runs finished in {folder}"
    if defaulted:
        text += f"; THE DEFAULT {DEFAULT_SD:g} where no cell had two seeds: {', '.join(defaulted)}"
    return text


def profile_power(
    profile_path: str | Path,
    runs_dir: str | Path | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    effect: float = DEFAULT_EFFECT,
    sd: float | Mapping[float, float] | None = None,
    tables: int = DEFAULT_TABLES,
) -> PowerReport:
    """The power report of a profile; spreads from the finished runs in ``runs_dir`` (default: its
    output), or ``sd``. A ``runs_dir`` given that is not a folder is one sentence."""
    from alvit import paths
    from alvit.book.summary import final_rounds
    from alvit.profile import load_profile
    from alvit.results import load_runs

    check_arguments(seeds, effect, sd, tables)
    profile = load_profile(profile_path)
    # A --runs typo is refused; the profile's own output may not exist yet (no runs, default spreads).
    folder = paths.runs_folder(runs_dir, profile) if runs_dir is not None else paths.resolve(profile.output)
    expected = {c.run_id for c in profile.configs}
    final = None
    if folder.is_dir():
        runs, _ = load_runs(folder)
        final = final_rounds(runs) if not runs.empty else None
        final = None if final is None else final[final["run_id"].isin(expected)]
    found = 0 if final is None else int(final["run_id"].nunique())
    # As the book judges them: the paper's claims on the runs acquiring as the paper did, question B on all.
    paper = [c for c in profile.configs if c.acq.calibrate == summary.UNCALIBRATED]
    paper_final = None if final is None else summary.paper_protocol(final)
    grids = setting_grids(paper, paper_final, sd) if paper else []
    study = setting_grids(
        profile.configs,
        None if final is None else summary.named_by_acquisition(final),
        sd,
        strategy_of=lambda c: summary.acquisition_name(c.strategy, c.acq.calibrate),
    )
    present = {} if paper_final is None else dict(summary.by_setting(paper_final))
    effects = {g.name: seed_effect(present[g.name], g.name) if g.name in present else None for g in grids}
    return power_report(
        profile.name,
        grids,
        sorted(set(seeds)),
        effect,
        tables,
        origin=_origin(sd, grids, str(runs_dir or profile.output), found, len(expected), folder.is_dir()),
        runs_found=found,
        runs_expected=len(expected),
        seed_effects=effects,
        profile_seeds=len({c.seed for c in profile.configs}),
        study_settings=study,
    )


def question_b_sentence(report: PowerReport, seeds_now: int) -> str:
    """How sure question B's verdict is, in a sentence: its power at ``seeds_now`` seeds, its false
    confirmations, and the seeds that reach 80%; or why the grid cannot test it."""
    power = next((p for p in report.claims if p.claim == "B"), None)
    if power is None:
        return "This profile's grid holds no run acquiring with calibrated probabilities: question B has no power."
    if power.untestable:
        return f"This profile's grid cannot test question B: {power.untestable}."
    row = report.at("B", seeds_now)
    spreads = " and ".join(f"{_range(g.sd['test_acc'])} on {g.name}" for g in report.study_settings)
    reach = (
        f"{power.seeds_for_80} seeds reach 80%"
        if power.seeds_for_80 is not None
        else f"Even {MAX_SEEDS} seeds stay below 80%"
    )

    def count(share: float, tables: int) -> str:
        return f"{round(share * tables):,} of {tables:,}"

    return (
        f"**Its power.** Were each practical temperature to raise final accuracy by {report.effect:g} pooled "
        f"seed-to-seed standard deviations at every noisy rate (the sd of accuracy: {spreads}), {seeds_now} "
        f"seeds would confirm question B in {count(row.holds_if_true, row.tables)} simulated tables and refute "
        f"it in {count(row.fails_if_true, row.tables)}; were it false at its least favourable "
        f"({power.least_favourable}), they would confirm it in "
        f"{count(row.holds_if_least_favourable, row.false_tables)}. {reach} (`alvit power`, and the page "
        f"*How sure are these verdicts?*)."
    )


def settling_sentences(verdicts: Sequence[claims.Verdict], report: PowerReport, seeds_now: int) -> list[str]:
    """One sentence per inconclusive verdict: how many seeds at these spreads would settle it."""
    sentences = []
    by_claim = {power.claim: power for power in report.claims}
    for verdict in verdicts:
        if verdict.verdict != stats.INCONCLUSIVE:
            continue
        needed, effect = by_claim[verdict.claim].seeds_for_80, f"{report.effect:g} pooled seed-sds"
        if needed is None:
            sentences.append(
                f"Claim {verdict.claim} is inconclusive, and even {MAX_SEEDS} seeds at these spreads would "
                f"confirm a true effect of {effect} less than 80% of the time: it needs a larger effect "
                f"or less seed-to-seed noise."
            )
        elif needed > seeds_now:
            sentences.append(
                f"Claim {verdict.claim} is inconclusive with {seeds_now} seeds; about {needed} seeds at "
                f"these spreads would settle it (they confirm a true effect of {effect} 80% of the time)."
            )
        else:
            sentences.append(
                f"Claim {verdict.claim} is inconclusive although {seeds_now} seeds confirm a true effect "
                f"of {effect} at least 80% of the time: any effect in these runs is smaller than that, "
                f"and more seeds would only settle a smaller one."
            )
    return sentences
