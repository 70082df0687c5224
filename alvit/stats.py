"""How sure a comparison is: paired differences, a bootstrap over seeds, and three-way outcomes.

Every comparison in the book is *paired by seed*: two runs that share dataset, noise kind,
noise rate and seed share the noisy oracle and the clean initial set, so their difference is
the effect being compared and little else. A comparison is a table of such differences, one per
(cell, seed), where a cell is what the comparison averages over (models, rates, strategies).

The statistic is the mean over cells of each cell's mean over seeds. Its 95% interval is a
percentile bootstrap that resamples the seeds *within each cell* (2,000 resamples, fixed seed):
the spread comes only from run-to-run variation, never from mixing cells. A test then reads:

- ``holds`` when the whole interval lies above zero (or above the margin, see below);
- ``does not hold`` when it lies at or below zero (the opposite is established, or no effect);
- ``inconclusive`` when it straddles zero, or a cell has fewer than two seeds (no spread to judge).

"No gain" statements (claim 5 outside the moderate band) are tested as equivalence: they hold
when the upper end of the interval is at most ``NO_GAIN_MARGIN``, fail when a gain is
established (lower end above zero), and are inconclusive otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

HOLDS, FAILS, INCONCLUSIVE, CANNOT_SAY = "holds", "does not hold", "inconclusive", "cannot say"
OUTCOMES = (HOLDS, FAILS, INCONCLUSIVE, CANNOT_SAY)
RESAMPLES = 2_000
LEVEL = 0.95
MIN_SEEDS = 2
NO_GAIN_MARGIN = 0.01  # one point of accuracy: a "gain" smaller than this counts as none

# A statistic maps the cell means [B, C] (B resamples of C cells) to [B] values; the cells'
# keys come along as a table, so a statistic can weigh or split cells (e.g. by noise rate).
Statistic = Callable[[pd.DataFrame, np.ndarray], np.ndarray]


def mean_of_cells(cells: pd.DataFrame, means: np.ndarray) -> np.ndarray:
    """The default statistic: every cell weighs the same."""
    return means.mean(axis=1)


@dataclass(frozen=True)
class Estimate:
    """A statistic of paired differences with its bootstrap interval."""

    value: float
    low: float
    high: float
    cells: int
    min_seeds: int

    def format(self, digits: int = 3) -> str:
        """``+0.031 [+0.012, +0.050]``."""
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def estimate(diffs: pd.DataFrame, cell_keys: list[str], statistic: Statistic = mean_of_cells,
             value: str = "diff", seed: int = 0) -> Estimate:
    """Point value and ``LEVEL`` interval of ``statistic`` over ``diffs`` (one row per cell and seed)."""
    groups = [group[value].to_numpy(float) for _, group in diffs.groupby(cell_keys, sort=True)] if cell_keys \
        else [diffs[value].to_numpy(float)]
    cells = diffs[cell_keys].drop_duplicates().sort_values(cell_keys).reset_index(drop=True) if cell_keys \
        else pd.DataFrame(index=[0])
    point = np.array([[g.mean() for g in groups]])
    rng = np.random.default_rng(seed)
    resampled = np.column_stack([g[rng.integers(0, len(g), size=(RESAMPLES, len(g)))].mean(axis=1) for g in groups])
    draws = statistic(cells, resampled)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(float(statistic(cells, point)[0]), float(low), float(high), len(groups), min(len(g) for g in groups))


def positive(est: Estimate) -> str:
    """Is the effect above zero? (see the module docstring)"""
    if est.min_seeds < MIN_SEEDS:
        return INCONCLUSIVE
    if est.low > 0:
        return HOLDS
    return FAILS if est.high <= 0 else INCONCLUSIVE


def no_gain(est: Estimate, margin: float = NO_GAIN_MARGIN) -> str:
    """Is there no gain larger than ``margin``? (an equivalence test, see the module docstring)"""
    if est.low > 0 and est.min_seeds >= MIN_SEEDS:
        return FAILS
    if est.min_seeds < MIN_SEEDS:
        return INCONCLUSIVE
    return HOLDS if est.high <= margin else INCONCLUSIVE


def combine(outcomes: list[str]) -> str:
    """A conjunction of tests: any failure fails it, then missing runs, then doubt; else it holds."""
    for outcome in (FAILS, CANNOT_SAY, INCONCLUSIVE):
        if outcome in outcomes:
            return outcome
    return HOLDS if outcomes else CANNOT_SAY


def paired(final: pd.DataFrame, metric: str, keys: list[str], column: str, better: object, worse: object,
           sign: int = +1) -> pd.DataFrame:
    """Differences ``sign * (metric[better] - metric[worse])`` of runs matched on ``keys``.

    ``column`` is what differs between the two sides (``model`` or ``strategy``); ``keys``
    must include ``seed`` and everything else the pair shares. Rows: ``keys + ["diff"]``.
    """
    a = final[final[column] == better].set_index(keys)[metric]
    b = final[final[column] == worse].set_index(keys)[metric]
    both = a.index.intersection(b.index)
    diff = sign * (a.loc[both] - b.loc[both])
    return diff.rename("diff").reset_index()
