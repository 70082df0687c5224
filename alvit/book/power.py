"""How sure the verdicts are: their operating characteristics for a profile's grid, by simulation.

``alvit power PROFILE`` asks, for each of the six claims and each number of seeds: if the claim
were true with an effect of A seed-to-seed standard deviations, how often would the book say
*holds* (power) and how often *does not hold* (a false refutation); and if nothing differed, how
often would it say *holds* (a false confirmation)? It judges simulated final-round tables of the
profile's exact grid (settings, models, strategies, noise rates) with the same code that judges
the book (:func:`alvit.book.claims.judge_settings`).

The simulation is :mod:`alvit.sweep.simulate`'s effect model reduced to what a verdict sees, one
number per run and metric: a run's final accuracy, ECE and Brier are its cell's mean plus
independent normal seed noise of standard deviation S (per setting and metric). Every statement
is a paired contrast, so the cells' common level cancels and only the claim's effect is put in,
in units of S:

1. accuracy falls by A over the profile's noise range, linearly, for every model;
2. vit_l32 is A ahead of every other model in accuracy, ECE and Brier, at every rate;
3. vit_l32 is A ahead of vit_l16 in accuracy at every rate (the FLOPs ratio is a fact about the
   models, not a random outcome; it is taken as 4);
4. the SwinV2 models lose A more accuracy than the ViTs at every rate above the lowest;
5. entropy and GCI-ViTAL gain A accuracy over random at moderate noise and nothing elsewhere;
6. entropy and GCI-ViTAL have A more ECE and Brier than random at every rate, and 2A at high noise.

"False" is "nothing differs": no effect at all. (Holds is an intersection-union test, so the
worst case over every false configuration is bounded by the level, 5%, too.) S defaults to the
pooled within-cell standard deviation of the runs present in each setting, else ``DEFAULT_SD``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alvit.book import claims, stats, summary
from alvit.book.claims import Cube
from alvit.errors import ConfigError
from alvit.flags import MIN_TABLES, SEED_COUNTS

DEFAULT_SD = 0.02  # about the seed-to-seed spread of fine-tuned accuracy; used where no runs show one
DEFAULT_EFFECT = 2.0  # in seed-to-seed standard deviations
DEFAULT_TABLES = 200
DEFAULT_SEEDS = (3, 5, 10)
TARGET_POWER = 0.8
MAX_SEEDS = SEED_COUNTS[1]
CURVE_SEEDS = tuple(range(2, 13))
METRICS = claims.METRICS
SIMULATED_GFLOPS = {"vit_l16": 4.0, "vit_l32": 1.0}


@dataclass(frozen=True)
class SettingGrid:
    """One setting's grid and the seed-to-seed spread assumed for each metric."""

    name: str
    models: tuple[str, ...]
    strategies: tuple[str, ...]
    rates: tuple[float, ...]
    sd: dict[str, float]
    sd_source: str


def spread(rows: pd.DataFrame, metric: str) -> float:
    """Pooled within-cell standard deviation of ``metric`` over seeds (NaN with fewer than two seeds)."""
    grouped = rows.groupby(["model", "strategy", "noise_rate"])[metric]
    dof = (grouped.count() - 1).clip(lower=0)
    squares = grouped.var(ddof=1).fillna(0.0) * dof
    return float(np.sqrt(squares.sum() / dof.sum())) if dof.sum() > 0 else float("nan")


def setting_grids(configs: Sequence, final: pd.DataFrame | None = None, sd: float | None = None) -> list[SettingGrid]:
    """The settings of a profile's ``configs``, each with its spread: ``sd``, else the runs', else the default."""
    table = pd.DataFrame(
        [
            {
                "dataset": c.dataset,
                "noise_kind": c.noise.kind,
                "mode": c.train.mode,
                "model": c.model,
                "strategy": c.strategy,
                "noise_rate": float(c.noise.rate),
            }
            for c in configs
        ]
    )
    grids = []
    final = None if final is None else summary.with_mode(final)
    for (dataset, kind, mode), rows in table.groupby(summary.SETTING, sort=True):
        name = summary.setting_name(dataset, kind, mode)
        present = (
            None
            if final is None or final.empty
            else final[(final["dataset"] == dataset) & (final["noise_kind"] == kind) & (final["mode"] == mode)]
        )
        if sd is not None:
            spreads, source = {metric: sd for metric in METRICS}, "given"
        elif present is not None and np.isfinite(spread(present, "test_acc")):
            spreads = {metric: spread(present, metric) for metric in METRICS}
            spreads = {m: (s if np.isfinite(s) and s > 0 else DEFAULT_SD) for m, s in spreads.items()}
            source = f"runs present ({present['run_id'].nunique() if 'run_id' in present else len(present)} runs)"
        else:
            spreads, source = {metric: DEFAULT_SD for metric in METRICS}, "default"
        grids.append(
            SettingGrid(
                name,
                tuple(sorted(rows["model"].unique())),
                tuple(sorted(rows["strategy"].unique())),
                tuple(sorted(rows["noise_rate"].unique())),
                spreads,
                source,
            )
        )
    return grids


def claim_effects(claim: int, grid: SettingGrid, effect: float) -> dict[str, np.ndarray]:
    """Cell means ``[models, strategies, rates]`` of each metric when ``claim`` is true at ``effect`` (in sds)."""
    shape = (len(grid.models), len(grid.strategies), len(grid.rates))
    means = {metric: np.zeros(shape) for metric in METRICS}
    rates = np.asarray(grid.rates)
    models, strategies = np.array(grid.models), np.array(grid.strategies)
    if claim == 1 and len(rates) > 1:
        means["test_acc"][:] = -effect * (rates - rates.min()) / (rates.max() - rates.min())
    elif claim in (2, 3):
        winner = models == "vit_l32"
        means["test_acc"][winner] += effect
        if claim == 2:
            means["ece"][winner] -= effect
            means["brier"][winner] -= effect
    elif claim == 4:
        swin = np.isin(models, claims.SWINS)
        means["test_acc"][np.ix_(swin, np.ones(len(strategies), bool), rates > rates.min())] -= effect
    elif claim == 5:
        uncertain = np.isin(strategies, claims.UNCERTAINTY)
        means["test_acc"][:, uncertain] += effect * claims.band(rates, "moderate")
    elif claim == 6:
        uncertain = np.isin(strategies, claims.UNCERTAINTY)
        for metric in claims.CALIBRATION:
            means[metric][:, uncertain] += effect * (1 + claims.band(rates, "high"))
    return means


def simulated_cube(
    grid: SettingGrid, means: dict[str, np.ndarray], seeds: int, tables: int, rng: np.random.Generator
) -> Cube:
    """``tables`` final-round tables of ``grid``: ``means`` (in sds) plus seed noise, scaled by each metric's sd."""
    shape = (tables, *means["test_acc"].shape, seeds)
    metrics = {
        metric: grid.sd[metric] * (means[metric][None, ..., None] + rng.standard_normal(shape)) for metric in METRICS
    }
    return Cube(grid.models, grid.strategies, np.asarray(grid.rates, float), metrics, dict(SIMULATED_GFLOPS))


@dataclass(frozen=True)
class Characteristics:
    """How often a claim is called what, at one number of seeds (each a share of the tables)."""

    seeds: int
    holds_if_true: float
    fails_if_true: float
    holds_if_false: float


def characteristics(
    claim: int, grids: list[SettingGrid], seeds: int, effect: float, tables: int, seed: int = 0
) -> Characteristics:
    """Shares of ``tables`` simulated tables judged holds / does not hold, claim true and claim false."""
    shares = []
    for truth in (True, False):
        rng = np.random.default_rng([seed, claim, seeds, int(truth)])
        cubes = {
            g.name: simulated_cube(g, claim_effects(claim, g, effect if truth else 0.0), seeds, tables, rng)
            for g in grids
        }
        verdicts = claims.judge_settings(claim, cubes)[0].verdict
        shares.append(((verdicts == stats.HOLDS).mean(), (verdicts == stats.FAILS).mean()))
    return Characteristics(seeds, float(shares[0][0]), float(shares[0][1]), float(shares[1][0]))


def testable(claim: int, grids: list[SettingGrid]) -> str | None:
    """Why the profile's grid cannot test ``claim`` (None if it can)."""
    tests = [
        t
        for g in grids
        for t in claims.TESTS[claim](simulated_cube(g, claim_effects(claim, g, 0.0), 2, 1, np.random.default_rng(0)))
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
    claim: int
    statement: str
    untestable: str | None
    rows: list[Characteristics] = field(default_factory=list)
    seeds_for_80: int | None = None


@dataclass
class PowerReport:
    profile: str
    effect: float
    tables: int
    settings: list[SettingGrid]
    claims: list[ClaimPower]
    seed: int = 0
    measured: dict[tuple[int, int], Characteristics] = field(default_factory=dict, repr=False)

    def at(self, claim: int, seeds: int) -> Characteristics:
        """``claim``'s characteristics at ``seeds`` seeds, simulated once however often asked for
        (the table, the search for 80% power and the curve ask for many of the same)."""
        if (claim, seeds) not in self.measured:
            self.measured[claim, seeds] = characteristics(
                claim, self.settings, seeds, self.effect, self.tables, self.seed
            )
        return self.measured[claim, seeds]

    def fewest_seeds(self, claim: int, target: float = TARGET_POWER) -> int | None:
        """The fewest seeds (2 to :data:`MAX_SEEDS`) whose power reaches ``target``; None if none does."""
        return next((n for n in range(2, MAX_SEEDS + 1) if self.at(claim, n).holds_if_true >= target), None)

    def curve(self, seeds: Sequence[int] = CURVE_SEEDS) -> pd.DataFrame:
        """P(holds | true) of every claim the grid can test, at each of ``seeds``: columns claim, seeds, power."""
        rows = [
            {"claim": power.claim, "seeds": n, "power": self.at(power.claim, n).holds_if_true}
            for power in self.claims
            if power.untestable is None
            for n in seeds
        ]
        return pd.DataFrame(rows, columns=["claim", "seeds", "power"])

    def table(self) -> pd.DataFrame:
        """One row per claim and number of seeds."""
        rows = []
        for power in self.claims:
            for row in power.rows:
                rows.append(
                    {
                        "claim": power.claim,
                        "seeds": row.seeds,
                        "P(holds | true)": row.holds_if_true,
                        "P(does not hold | true)": row.fails_if_true,
                        "P(holds | false)": row.holds_if_false,
                        "seeds for 80% power": str(power.seeds_for_80 or f"more than {MAX_SEEDS}"),
                    }
                )
        return pd.DataFrame(rows)

    def to_json(self) -> dict:
        return {
            "profile": self.profile,
            "effect_in_sd": self.effect,
            "tables": self.tables,
            "settings": [asdict(s) for s in self.settings],
            "claims": [
                {
                    "claim": p.claim,
                    "statement": p.statement,
                    "untestable": p.untestable,
                    "seeds_for_80_percent_power": p.seeds_for_80,
                    "rows": [asdict(r) for r in p.rows],
                }
                for p in self.claims
            ],
        }

    def format(self) -> str:
        """The report as text: the spreads assumed, then a line per claim and number of seeds."""
        lines = [
            f"profile {self.profile}: effect {self.effect:g} seed-sds, {self.tables} simulated tables per estimate"
        ]
        for s in self.settings:
            lines.append(
                f"  {s.name}: sd accuracy {s.sd['test_acc']:.4f}, ECE {s.sd['ece']:.4f}, "
                f"Brier {s.sd['brier']:.4f} ({s.sd_source})"
            )
        lines.append(
            f"{'claim':>5} {'seeds':>5} {'P(holds|true)':>14} {'P(not|true)':>12} {'P(holds|false)':>15}  seeds for 80%"
        )
        for power in self.claims:
            if power.untestable:
                lines.append(f"{power.claim:>5}  not testable in this grid: {power.untestable}")
                continue
            needed = power.seeds_for_80 if power.seeds_for_80 is not None else f"more than {MAX_SEEDS}"
            for i, row in enumerate(power.rows):
                lines.append(
                    f"{power.claim:>5} {row.seeds:>5} {row.holds_if_true:>14.3f} {row.fails_if_true:>12.3f} "
                    f"{row.holds_if_false:>15.3f}  {needed if i == 0 else ''}"
                )
        return "\n".join(lines)


def power_report(
    profile_name: str,
    grids: list[SettingGrid],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    effect: float = DEFAULT_EFFECT,
    tables: int = DEFAULT_TABLES,
    seed: int = 0,
) -> PowerReport:
    """Operating characteristics of every claim at each of ``seeds``, and the fewest seeds for 80% power."""
    report = PowerReport(profile_name, effect, tables, grids, [], seed)
    for claim, statement in claims.CLAIMS.items():
        power = ClaimPower(claim, statement, testable(claim, grids))
        if power.untestable is None:
            power.rows = [report.at(claim, n) for n in seeds]
            power.seeds_for_80 = report.fewest_seeds(claim)
        report.claims.append(power)
    return report


def check_arguments(seeds: Sequence[int], effect: float, sd: float | None, tables: int) -> None:
    """One sentence for a value outside its range (the command line checks the same where it parses)."""
    if not seeds or any(not SEED_COUNTS[0] <= n <= SEED_COUNTS[1] for n in seeds):
        raise ConfigError(f"seeds must be numbers of seeds from {SEED_COUNTS[0]} to {SEED_COUNTS[1]}, e.g. 3,5,10")
    if not 0 < effect <= 100:  # False for NaN too
        raise ConfigError(
            f"the effect must be a number of seed-sds above 0 and at most 100 (e.g. {DEFAULT_EFFECT:g}), not {effect}"
        )
    if sd is not None and not 0 < sd <= 1:
        raise ConfigError(f"the seed-to-seed sd must be above 0 and at most 1 (e.g. {DEFAULT_SD:g}), not {sd}")
    if tables < MIN_TABLES:
        raise ConfigError(f"tables must be at least {MIN_TABLES} (default {DEFAULT_TABLES}), not {tables}")


def profile_power(
    profile_path: str | Path,
    runs_dir: str | Path | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    effect: float = DEFAULT_EFFECT,
    sd: float | None = None,
    tables: int = DEFAULT_TABLES,
) -> PowerReport:
    """The power report of a profile; spreads from the finished runs in ``runs_dir`` (default: its output)."""
    from alvit import paths
    from alvit.book.summary import final_rounds
    from alvit.profile import load_profile
    from alvit.results import load_runs

    check_arguments(seeds, effect, sd, tables)
    profile = load_profile(profile_path)
    folder = paths.resolve(runs_dir if runs_dir is not None else profile.output)
    final = None
    if sd is None and Path(folder).is_dir():
        runs, _ = load_runs(folder)
        final = final_rounds(runs) if not runs.empty else None
    return power_report(profile.name, setting_grids(profile.configs, final, sd), sorted(set(seeds)), effect, tables)


def settling_sentences(verdicts: Sequence[claims.Verdict], report: PowerReport, seeds_now: int) -> list[str]:
    """One sentence per inconclusive verdict: how many seeds at this spread would settle it."""
    sentences = []
    by_claim = {power.claim: power for power in report.claims}
    for verdict in verdicts:
        if verdict.verdict != stats.INCONCLUSIVE:
            continue
        needed, effect = by_claim[verdict.claim].seeds_for_80, f"{report.effect:g} seed-sds"
        if needed is None:
            sentences.append(
                f"Claim {verdict.claim} is inconclusive, and even {MAX_SEEDS} seeds at this spread would "
                f"confirm a true effect of {effect} less than 80% of the time: it needs a larger effect "
                f"or less seed-to-seed noise."
            )
        elif needed > seeds_now:
            sentences.append(
                f"Claim {verdict.claim} is inconclusive with {seeds_now} seeds; about {needed} seeds at "
                f"this spread would settle it (they confirm a true effect of {effect} 80% of the time)."
            )
        else:
            sentences.append(
                f"Claim {verdict.claim} is inconclusive although {seeds_now} seeds confirm a true effect "
                f"of {effect} at least 80% of the time: any effect in these runs is smaller than that, "
                f"and more seeds would only settle a smaller one."
            )
    return sentences
