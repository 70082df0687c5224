"""How sure a comparison is: contrasts with the seed as the unit, t intervals, TOST, Holm.

Every comparison in the book is *paired by seed*: runs that share dataset, noise kind and seed
share the noisy oracle's random draws, the clean initial set, the model's initialisation and
random sampling's queries (every stream of :mod:`alvit.seeds` is drawn from the seed alone, at
every noise rate, model and strategy). A comparison is an array of metrics (or of paired
differences), one per *cell* and seed, where a cell is what the comparison weighs (a model at a
noise rate, a strategy, ...).

**The estimate** is a contrast of the cell means, ``sum_c w_c * mean_c`` (a mean of cells, the
high-noise cells minus the others, one rate minus the next).

**The seed is the unit.** Runs of one seed are not independent of each other: they share the
streams above, across cells and across noise rates, so a seed that draws a lucky initial set or
oracle moves many cells at once. Treating the cells of a seed as independent replicates would
understate the uncertainty: with a seed effect shared by seven cells (intra-class correlation
0.5) a pooled-cells 90% interval covers 59%, and its one-sided 5% test rejects a true null 20% of
the time. So each seed contributes one number, the contrast computed on that seed's runs,
``D_k = sum_c w_c * x_ck``, and the estimate is their mean with the one-sample t interval on
``n - 1`` degrees of freedom (``n`` seeds). Whatever the runs of a seed share, and however the
spread changes with the noise rate, the seeds are independent replicates, so its coverage is
exact for normal ``D_k`` at any number of seeds (tested at 2, 3 and 5 with and without a shared
seed effect). The price is degrees of freedom: 2 at 3 seeds, so a statement needs its estimate
about 2.9 standard errors above zero (1.9 at 6 degrees of freedom).

A statement needs every run its cells name at every seed: a missing run, or fewer than
``MIN_SEEDS`` seeds, makes it *cannot say*, and no estimate is printed from runs that are not
there.

**Tests**, each at level ``ALPHA`` (one-sided):

- an *effect* test (the claim says ``theta > 0``) *holds* when ``H0: theta <= 0`` is rejected
  and is *refuted* when ``H0: theta >= 0`` is rejected;
- a *no-gain* test (the claim says ``|theta| <= margin``) is two one-sided tests (TOST): it
  *holds* when both ``theta <= -margin`` and ``theta >= margin`` are rejected, and is *refuted*
  when ``|theta| > margin`` is established (either side, Bonferroni over the two);
- the ``1 - 2 ALPHA`` (90%) interval printed beside a test is the same decision: an effect holds
  when the interval lies above zero; a no-gain test holds when it lies inside the margins.

**A claim** is a conjunction of such tests (:func:`judge`):

- *holds* needs every test to hold (an intersection-union test: if any part of the claim is
  false, P(holds) <= ALPHA);
- *does not hold* needs a refutation that survives Holm's step-down over all the claim's tests
  (if the claim is true, P(does not hold) <= ALPHA);
- *cannot say* when a test cannot be judged (missing runs, too few seeds); otherwise
  *inconclusive*.

Every function takes a leading axis of T independent tables, so the verdict of one book and
the operating characteristics of thousands of simulated ones (:mod:`alvit.book.power`) come from the
same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

HOLDS, FAILS, INCONCLUSIVE, CANNOT_SAY = "holds", "does not hold", "inconclusive", "cannot say"
OUTCOMES = (HOLDS, FAILS, INCONCLUSIVE, CANNOT_SAY)
ALPHA = 0.05
MIN_SEEDS = 2
NO_GAIN_MARGIN = 0.01  # one point of accuracy: a gain smaller than this counts as none


@dataclass(frozen=True)
class Contrast:
    """``sum_c w_c * mean_c`` of T tables, with its standard error and degrees of freedom.

    Every field is ``[T]``; ``seeds`` counts the seeds at which every weighted cell has a run
    (the contrast's units), ``df`` is ``seeds - 1``.
    """

    value: np.ndarray
    se: np.ndarray
    df: np.ndarray
    seeds: np.ndarray

    @property
    def judgeable(self) -> np.ndarray:
        """``[T]`` bool: enough seeds to estimate a spread."""
        return self.seeds >= MIN_SEEDS

    def p_above(self, bound: float = 0.0) -> np.ndarray:
        """One-sided p-value of ``H0: theta <= bound`` (small when theta is established above)."""
        return _p_value(self.value - bound, self.se, self.df)

    def p_below(self, bound: float = 0.0) -> np.ndarray:
        """One-sided p-value of ``H0: theta >= bound`` (small when theta is established below)."""
        return _p_value(bound - self.value, self.se, self.df)

    def interval(self, level: float = 1 - 2 * ALPHA) -> tuple[np.ndarray, np.ndarray]:
        """Two-sided t interval ``(low, high)``, each ``[T]``; the default 90% matches the tests."""
        with np.errstate(invalid="ignore"):
            half = scipy_stats.t.ppf(0.5 + level / 2, self.df) * self.se
        half = np.where(self.se == 0, 0.0, half)
        return self.value - half, self.value + half

    def format(self, table: int = 0, digits: int = 3) -> str:
        """``+0.031 [+0.012, +0.050]`` for one table; no number where there is none to give."""
        if not self.judgeable[table]:
            return f"cannot say ({_seed_count(int(self.seeds[table]))}; a spread needs at least {MIN_SEEDS})"
        value = self.value[table]
        low, high = (bound[table] for bound in self.interval())
        return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _seed_count(n: int) -> str:
    return "no seed with every run" if n == 0 else f"{n} seed" + ("" if n == 1 else "s")


def _p_value(distance: np.ndarray, se: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P(T_df >= distance / se); with no spread (se = 0) it is 0 past the bound and 1 otherwise.

    No spread makes t infinite past the bound or short of it (p 0 or 1) and NaN at the bound; a
    NaN t, or a NaN spread or df <= 0 (fewer than two seeds, where scipy's t is NaN), gives p 1.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = scipy_stats.t.sf(distance / se, df)
    return np.where(np.isfinite(p), p, 1.0)


def contrast(values: np.ndarray, weights: np.ndarray) -> Contrast:
    """The contrast ``sum_c weights[c] * mean over seeds of values[:, c]``, T tables at once, seed as the unit.

    ``values``: ``[T, C, N]`` (C cells, N seeds; NaN where a run is missing); ``weights``: ``[C]``
    or ``[T, C]`` (0 leaves a cell out). Each seed at which every weighted cell has a run gives
    one value ``sum_c weights[c] * values[:, c, seed]``; the estimate is their mean, its standard
    error their standard deviation over the square root of their number.
    """
    values = np.asarray(values, dtype=float)
    t, c, _ = values.shape
    weights = np.broadcast_to(np.asarray(weights, dtype=float), (t, c))
    used = weights != 0  # [T, C]
    present = np.isfinite(values) | ~used[..., None]  # [T, C, N]: a cell left out never misses a run
    complete = present.all(axis=1) & used.any(axis=1, keepdims=True)  # [T, N]
    per_seed = np.einsum("tc,tcn->tn", weights, np.where(present & used[..., None], values, 0.0))
    n = complete.sum(axis=1)  # [T]
    per_seed = np.where(complete, per_seed, 0.0)
    mean = per_seed.sum(axis=1) / np.maximum(n, 1)
    squares = np.where(complete, (per_seed - mean[:, None]) ** 2, 0.0).sum(axis=1)
    variance = np.where(n >= 2, squares / np.maximum(n - 1, 1), np.nan)
    se = np.sqrt(variance / np.maximum(n, 1))
    return Contrast(np.where(n > 0, mean, np.nan), se, (n - 1).astype(float), n)


def mean_weights(present: np.ndarray) -> np.ndarray:
    """``[T, C]`` weights of the plain mean of the cells present (``present``: ``[T, C]`` bool)."""
    count = present.sum(axis=1, keepdims=True)
    return np.where(present, 1.0 / np.maximum(count, 1), 0.0)


def slope_weights(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``[T, C]`` weights of the least-squares slope of the cell means against ``x`` (``[C]``).

    A table whose cells present share one ``x`` (or that has none) has no slope: its weights are 0.
    """
    x = np.broadcast_to(np.asarray(x, dtype=float), present.shape)
    count = np.maximum(present.sum(axis=1, keepdims=True), 1)
    centred = np.where(present, x - np.where(present, x, 0.0).sum(axis=1, keepdims=True) / count, 0.0)
    spread = (centred**2).sum(axis=1, keepdims=True)
    # compared on x itself: equal x leave a rounding residue in centred (the mean of three 0.2 is
    # 0.2 + 2.8e-17), which is no spread; and a spread too small to square is none either
    lowest = np.where(present, x, np.inf).min(axis=1, keepdims=True)
    varies = (lowest < np.where(present, x, -np.inf).max(axis=1, keepdims=True)) & (spread > 0)
    return np.where(varies, centred / np.where(varies, spread, 1.0), 0.0)


def split_weights(upper: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``[T, C]`` weights of (mean of the ``upper`` cells) minus (mean of the other cells present)."""
    upper = np.broadcast_to(np.asarray(upper, dtype=bool), present.shape)
    return mean_weights(present & upper) - mean_weights(present & ~upper)


@dataclass(frozen=True)
class Test:
    """One statement of a claim, judged on T tables.

    ``p_hold`` is the p-value whose rejection establishes the statement, ``p_refute`` the one
    whose rejection establishes its negation (before Holm); both ``[T]``. ``available`` is False
    where the runs it needs are missing (it then says "cannot say"). ``contrast`` is what it
    rests on (None for a fact, such as a FLOPs ratio).
    """

    name: str
    p_hold: np.ndarray
    p_refute: np.ndarray
    judgeable: np.ndarray
    available: bool = True
    contrast: Contrast | None = None
    detail: str = ""

    def describe(self, table: int = 0) -> str:
        """``moderate +0.050 [+0.041, +0.059]`` (the contrast, or the fact's detail)."""
        if self.contrast is not None:
            return f"{self.name} {self.contrast.format(table)}"
        return f"{self.name} {self.detail}" if self.available else f"{self.name}: {self.detail}"


def effect_test(name: str, est: Contrast) -> Test:
    """The statement ``theta > 0``."""
    return Test(name, est.p_above(0.0), est.p_below(0.0), est.judgeable, contrast=est)


def no_gain_test(name: str, est: Contrast, margin: float = NO_GAIN_MARGIN) -> Test:
    """The statement ``|theta| <= margin`` (TOST), refuted when a gap beyond the margin is established."""
    p_hold = np.maximum(est.p_above(-margin), est.p_below(margin))
    p_refute = np.minimum(1.0, 2 * np.minimum(est.p_above(margin), est.p_below(-margin)))
    return Test(name, p_hold, p_refute, est.judgeable, contrast=est)


def fact_test(name: str, true: bool | None, detail: str, tables: int = 1) -> Test:
    """A statement known without sampling error (``None``: unknown, so cannot say)."""
    p = np.full(tables, 0.0 if true else 1.0)
    return Test(name, p, 1.0 - p, np.ones(tables, bool), available=true is not None, detail=detail)


def missing_test(name: str, why: str, tables: int = 1) -> Test:
    """A statement whose runs are missing."""
    ones = np.ones(tables)
    return Test(name, ones, ones, np.zeros(tables, bool), available=False, detail=why)


def holm(p_values: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down over the last axis: ``[T, m]`` p-values -> ``[T, m]`` rejections (FWER <= alpha)."""
    p_values = np.asarray(p_values, dtype=float)
    m = p_values.shape[-1]
    if m == 0:
        return np.zeros_like(p_values, dtype=bool)
    order = np.argsort(p_values, axis=-1)
    ranked = np.take_along_axis(p_values, order, axis=-1)
    passes = ranked <= alpha / (m - np.arange(m))
    passes = np.cumprod(passes, axis=-1).astype(bool)  # stop at the first failure
    rejected = np.zeros_like(passes)
    np.put_along_axis(rejected, order, passes, axis=-1)
    return rejected


@dataclass(frozen=True)
class Judgement:
    """A claim's verdict on T tables: ``verdict`` ``[T]`` of OUTCOMES, and per test ``[T, m]`` flags."""

    verdict: np.ndarray
    holds: np.ndarray
    refuted: np.ndarray
    usable: np.ndarray


def judge(tests: list[Test], alpha: float = ALPHA) -> Judgement:
    """Combine a claim's tests (see the module docstring): IUT for holds, Holm for does not hold.

    A test that cannot be judged (missing runs, too few seeds) counts with p-value 1 in Holm's
    family, so it can never help a refutation, and leaves the claim *cannot say* unless another
    test refutes it.
    """
    if not tests:
        empty = np.zeros((1, 0), bool)
        return Judgement(np.array([CANNOT_SAY], dtype=object), empty, empty, empty)
    tables = max(len(np.atleast_1d(t.judgeable)) for t in tests)
    usable = np.stack([np.broadcast_to(t.judgeable & t.available, (tables,)) for t in tests], axis=1)  # [T, m]
    p_hold = np.stack([np.broadcast_to(t.p_hold, (tables,)) for t in tests], axis=1)
    p_refute = np.stack([np.broadcast_to(t.p_refute, (tables,)) for t in tests], axis=1)
    holds = usable & (p_hold <= alpha)
    refuted = usable & holm(np.where(usable, p_refute, 1.0), alpha)
    verdict = np.where(
        refuted.any(axis=1),
        FAILS,
        np.where(~usable.all(axis=1), CANNOT_SAY, np.where(holds.all(axis=1), HOLDS, INCONCLUSIVE)),
    )
    return Judgement(np.asarray(verdict, dtype=object), holds, refuted, usable)


def outcome(judgement: Judgement, index: int, table: int = 0) -> str:
    """What one test says in the light of the whole claim: refuted (after Holm), holds, cannot say, or neither."""
    if judgement.refuted[table, index]:
        return FAILS
    if not judgement.usable[table, index]:
        return CANNOT_SAY
    return HOLDS if judgement.holds[table, index] else INCONCLUSIVE
