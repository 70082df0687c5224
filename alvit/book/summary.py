"""The study's numbers from the tidy runs table: final rounds, tables per setting, gains, AULC, the run index.

Every aggregate keeps ``dataset`` and ``noise_kind`` apart (together, a *setting*): averaging a
CIFAR-10 run with a CIFAR-100 run, or flip noise with pair-flip noise, would describe neither.
Functions that return one table per setting take the rows of one setting; :func:`by_setting`
splits a table into them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

SETTING = ["dataset", "noise_kind", "mode"]
GROUP = [*SETTING, "model", "strategy", "noise_rate"]


def with_mode(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``mode`` column (``finetune`` where a table predates linear mode)."""
    return table if "mode" in table else table.assign(mode="finetune")


def setting_name(dataset: str, kind: str, mode: str = "finetune") -> str:
    """``cifar10 · flip``, and ``cifar10 · flip · linear`` for a frozen backbone's runs."""
    return f"{dataset} · {kind}" + ("" if mode == "finetune" else f" · {mode}")


def by_setting(table: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """``("cifar10 · flip", rows)`` for every setting present (dataset, noise kind, training mode), in order."""
    for (dataset, kind, mode), rows in with_mode(table).groupby(SETTING, sort=True):
        yield setting_name(dataset, kind, mode), rows


def area_under_learning_curve(rounds: pd.DataFrame, metric: str = "test_acc") -> float:
    """Trapezoidal area under ``metric`` against labels bought, divided by the label range.

    The result is the curve's mean height: comparable across budgets, in the metric's units.
    """
    rounds = rounds.sort_values("n_labeled")
    x, y = rounds["n_labeled"].to_numpy(float), rounds[metric].to_numpy(float)
    if len(x) < 2:
        return float(y[0]) if len(y) else float("nan")
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def final_rounds(runs: pd.DataFrame) -> pd.DataFrame:
    """The last round of every finished run, with its AULC and total seconds."""
    finished = runs[runs["finished"]]
    rows = []
    for _, rounds in finished.groupby("run_id", sort=True):
        last = rounds.sort_values("round").iloc[-1].to_dict()
        last["aulc"] = area_under_learning_curve(rounds)
        last["total_train_s"] = float(rounds["train_s"].sum())
        last["total_select_s"] = float(rounds["select_s"].sum())
        rows.append(last)
    return pd.DataFrame(rows, columns=[*runs.columns, "aulc", "total_train_s", "total_select_s"])


def mean_std_table(rows: pd.DataFrame, metric: str, digits: int = 3) -> pd.DataFrame:
    """One setting: rows (model, strategy), columns noise rate, cells "mean ± std" over seeds."""
    stats = rows.groupby(["model", "strategy", "noise_rate"])[metric].agg(["mean", "std", "count"]).reset_index()
    stats["cell"] = [
        f"{m:.{digits}f}" + ("" if n < 2 else f" ± {s:.{digits}f}")
        for m, s, n in zip(stats["mean"], stats["std"], stats["count"])
    ]
    table = stats.pivot_table(index=["model", "strategy"], columns="noise_rate", values="cell", aggfunc="first")
    table.columns = [f"{rate:g}" for rate in table.columns]
    table.columns.name = "noise rate"
    return table


def gain_over_baseline(final: pd.DataFrame, metric: str = "test_acc", baseline: str = "random") -> pd.DataFrame:
    """Per setting, model, noise rate and seed: ``metric`` of each strategy minus the baseline's.

    Pairs share the seed, hence the same noisy oracle and initial set, so the difference is
    the strategy's effect alone.
    """
    keys = [*SETTING, "model", "noise_rate", "seed"]
    final = with_mode(final)
    base = final[final["strategy"] == baseline][keys + [metric]].rename(columns={metric: "baseline"})
    others = final[final["strategy"] != baseline][keys + ["strategy", metric]]
    paired = others.merge(base, on=keys)
    paired["gain"] = paired[metric] - paired["baseline"]
    return paired


# acq.calibrate: the paper acquires with the model's own probabilities; the study's question B compares
# acquiring with each fitted temperature (alvit.calibration.ACQUISITION_FITS) against that, run for run.
UNCALIBRATED = "none"
CALIBRATED_ACQUISITION = {
    "noisy": "T fitted on noisy labels",
    "aware": "noise-aware T",
    "true": "T fitted on true labels (oracle bound)",
}
PAIR = [*SETTING, "model", "strategy", "noise_rate", "seed"]  # what a calibrated run shares with its pair


def with_calibrate(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``acq_calibrate`` column (``none`` where a table predates the key)."""
    return table if "acq_calibrate" in table else table.assign(acq_calibrate=UNCALIBRATED)


def paper_protocol(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that acquire as the paper did (``acq.calibrate`` none).

    Every section but question B's reads only these, so that a run acquiring with calibrated
    probabilities is never averaged with, or judged as, one of the paper's.
    """
    table = with_calibrate(table)
    return table[table["acq_calibrate"] == UNCALIBRATED]


def reading_probabilities(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of strategies whose ranking reads the predicted probabilities, so that acq.calibrate can change it."""
    from alvit.strategies import STRATEGIES

    reads = {name for name, strategy in STRATEGIES.items() if strategy.reads_probabilities}
    return table[table["strategy"].isin(reads)]


def acquisition_name(strategy: str, calibrate: str) -> str:
    """``entropy`` for a run acquiring with its model's own probabilities, ``entropy · aware`` with a temperature."""
    return strategy if calibrate == UNCALIBRATED else f"{strategy} · {calibrate}"


def named_by_acquisition(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each run's ``strategy`` named with its ``acq.calibrate`` (:func:`acquisition_name`),
    so that question B's claim can keep the variants of a strategy apart."""
    table = with_calibrate(table)
    names = [acquisition_name(s, c) for s, c in zip(table["strategy"], table["acq_calibrate"])]
    return table.assign(strategy=names)


def calibrated_gains(final: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Per calibrated run: its final ``metric`` minus that of its pair acquiring with ``acq.calibrate`` none.

    A pair shares setting, model, strategy, noise rate and seed (hence the noisy oracle, the
    initial set and the round-0 model): the difference is what calibrating before acquiring did.
    Columns :data:`PAIR`, ``acq_calibrate``, ``metric``, ``baseline`` and ``gain``. Strategies that read
    no probabilities (random, coreset) are left out: the key cannot change their runs.
    """
    final = reading_probabilities(with_calibrate(with_mode(final)))
    base = final[final["acq_calibrate"] == UNCALIBRATED][PAIR + [metric]].rename(columns={metric: "baseline"})
    calibrated = final[final["acq_calibrate"] != UNCALIBRATED][PAIR + ["acq_calibrate", metric]]
    paired = calibrated.merge(base, on=PAIR)
    paired["gain"] = paired[metric] - paired["baseline"]
    return paired


def calibrated_gain_table(gains: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """One setting's :func:`calibrated_gains`: rows (model, strategy, acq.calibrate), columns noise rate,
    cells "mean ± std" of the gain over seeds."""
    table = mean_std_table(
        gains.assign(strategy=gains["strategy"] + " · " + gains["acq_calibrate"]), "gain", digits
    ).reset_index()
    table[["strategy", "acq.calibrate"]] = table["strategy"].str.split(" · ", expand=True)
    return table.set_index(["model", "strategy", "acq.calibrate"])


def selection_overlap(runs: pd.DataFrame) -> pd.DataFrame:
    """Per calibrated run and round r >= 1: the share of the queries bought for round r that its pair
    (``acq.calibrate`` none, :data:`PAIR`) bought for round r too, read from both runs' ``queries.npz``.

    Round 1's queries were chosen with the same round-0 model, so their overlap is the temperature's
    doing alone; later rounds also differ by what the runs learned from different labels. Columns
    :data:`PAIR`, ``acq_calibrate``, ``round`` and ``overlap``.
    """
    from alvit.results import RunFolder  # reads run folders; the rest of this module reads tables

    per_run = reading_probabilities(with_calibrate(with_mode(runs))).drop_duplicates("run_id")
    base = per_run[per_run["acq_calibrate"] == UNCALIBRATED].set_index(PAIR)["path"]
    rows = []
    for run in per_run[per_run["acq_calibrate"] != UNCALIBRATED].itertuples(index=False):
        key = tuple(getattr(run, name) for name in PAIR)
        if key not in base.index:
            continue
        mine, theirs = RunFolder(run.path).read_queries(), RunFolder(base[key]).read_queries()
        for round_ in sorted(set(mine["round"].tolist()) & set(theirs["round"].tolist())):
            bought = mine["index"][mine["round"] == round_]
            shared = np.intersect1d(bought, theirs["index"][theirs["round"] == round_])
            rows.append(
                {
                    **dict(zip(PAIR, key)),
                    "acq_calibrate": run.acq_calibrate,
                    "round": int(round_),
                    "overlap": len(shared) / len(bought),
                }
            )
    return pd.DataFrame(rows, columns=[*PAIR, "acq_calibrate", "round", "overlap"])


def overlap_table(overlap: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """One setting's :func:`selection_overlap`: rows (strategy, acq.calibrate, noise rate), columns the
    round the queries were bought for, cells the mean overlap over models and seeds."""
    table = overlap.pivot_table(
        index=["strategy", "acq_calibrate", "noise_rate"], columns="round", values="overlap", aggfunc="mean"
    ).round(digits)
    table.index = table.index.set_names(["strategy", "acq.calibrate", "noise rate"])
    table.columns = [f"round {r}" for r in table.columns]
    return table


def representative_rates(rates: list[float], count: int = 4) -> list[float]:
    """At most ``count`` noise rates spread from the lowest to the highest (for small multiples)."""
    rates = sorted(rates)
    if len(rates) <= count:
        return rates
    picks = np.linspace(0, len(rates) - 1, count).round().astype(int)
    return [rates[i] for i in sorted(set(picks))]


def overview(runs: pd.DataFrame, final: pd.DataFrame) -> dict[str, object]:
    """The numbers the results page's first paragraph names (glued into the prose)."""
    per_run = runs.drop_duplicates("run_id")
    return {
        "n_runs": int(final["run_id"].nunique()),
        "n_unfinished": int((~per_run["finished"].astype(bool)).sum()),
        "n_simulated": int(per_run["simulated"].astype(bool).sum()),
        "datasets": ", ".join(sorted(final["dataset"].unique())),
        "noise_kinds": ", ".join(sorted(final["noise_kind"].unique())),
        "models": ", ".join(sorted(final["model"].unique())),
        "strategies": ", ".join(sorted(final["strategy"].unique())),
        "rates": ", ".join(f"{r:g}" for r in sorted(final["noise_rate"].unique())),
        "n_seeds": int(final["seed"].nunique()),
        "budget": int(final["n_labeled"].max()) if len(final) else 0,
    }


def accuracy_range(rows: pd.DataFrame) -> tuple[float, float, float, float]:
    """One setting: (lowest rate, its mean accuracy, highest rate, its mean accuracy), over models, strategies, seeds."""
    by_rate = rows.groupby("noise_rate")["test_acc"].mean()
    return float(by_rate.index[0]), float(by_rate.iloc[0]), float(by_rate.index[-1]), float(by_rate.iloc[-1])


def cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One setting: mean seconds per run training and scoring + selecting, per model and strategy."""
    table = rows.groupby(["model", "strategy"])[["total_train_s", "total_select_s"]].mean().round(1)
    return table.rename(columns={"total_train_s": "training s / run", "total_select_s": "scoring + selection s / run"})


def temperature_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One setting: the mean fitted temperature of each variant (columns) at each noise rate (rows)."""
    from alvit.calibration import VARIANTS

    table = rows.groupby("noise_rate")[[f"{variant}_temperature" for variant in VARIANTS]].mean().round(3)
    table.columns = [f"({letter}) {variant}" for letter, variant in zip("abc", VARIANTS)]
    table.index = [f"{rate:g}" for rate in table.index]
    table.index.name = "noise rate"
    return table


SMALL_FIT = 50  # held-out labels below which a fitted temperature is flagged: too few to pin one number down


def small_fits(rows: pd.DataFrame, below: int = SMALL_FIT) -> tuple[int, int, int]:
    """Rounds (one row each, ``rounds.csv``'s) whose temperatures were fitted on fewer than ``below``
    held-out labels: (that many, rounds whose size is recorded, rounds in all)."""
    if "n_held_out" not in rows:  # rounds from before the column: no size recorded
        return 0, 0, len(rows)
    sizes = rows["n_held_out"]
    recorded = sizes.notna()
    return int((sizes[recorded] < below).sum()), int(recorded.sum()), len(rows)


def small_fits_sentences(runs: pd.DataFrame, below: int = SMALL_FIT) -> list[str]:
    """Per setting, how many round fits of finished runs used fewer than ``below`` held-out labels
    (``runs``: every round, :func:`alvit.results.load_runs`'s table)."""
    sentences = []
    for name, rows in by_setting(runs[runs["finished"].astype(bool)]):
        small, recorded, total = small_fits(rows, below)
        if not recorded:
            sentences.append(f"{name}: the held-out sizes of its {total} round fits are not recorded (older runs).")
            continue
        unknown = f" ({total - recorded} more not recorded)" if recorded < total else ""
        sentences.append(f"{name}: {small} of {recorded} round fits used fewer than {below} held-out labels{unknown}.")
    return sentences


RUN_INDEX_COLUMNS = [
    "page",
    "dataset",
    "noise_kind",
    "noise_rate",
    "model",
    "strategy",
    "seed",
    "status",
    "test_acc",
    "ece",
    "brier",
    "aulc",
]


def run_index(runs: pd.DataFrame, final: pd.DataFrame, pages: dict[str, str]) -> pd.DataFrame:
    """One row per run (finished or not) with its final metrics; ``page`` is its link where it has a page.

    ``pages`` maps run ids to the relative link of their book page.
    """
    per_run = runs.sort_values("round").groupby("run_id", sort=True).tail(1).set_index("run_id")
    # final_rounds gives its columns whether or not any run finished, so an empty final joins as NaN areas
    table = per_run.join(final.set_index("run_id")[["aulc"]], how="left")
    table["status"] = np.where(
        table["finished"].astype(bool),
        "finished",
        "round "
        + table["round"].astype(int).astype(str)
        + " of "
        + (table["rounds_planned"] - 1).astype(int).astype(str),
    )
    table["page"] = [f'<a href="{pages[run_id]}">{run_id}</a>' if run_id in pages else run_id for run_id in table.index]
    for metric in ("test_acc", "ece", "brier", "aulc"):
        table[metric] = table[metric].astype(float).round(3)
    return table.sort_values(["dataset", "noise_kind", "model", "strategy", "noise_rate", "seed"])[
        RUN_INDEX_COLUMNS
    ].reset_index(drop=True)


def accuracy_sentence(final: pd.DataFrame) -> str:
    """How far accuracy falls in each setting: the results page's first finding, in words, after
    "final accuracy". A setting of one noise rate (a file of human labels) has no range to tell."""
    parts = []
    for name, rows in by_setting(final):
        low, acc_low, high, acc_high = accuracy_range(rows)
        if low == high:
            parts.append(f"on {name} is {acc_low:.3f} at its one noise rate, {low:g}")
        else:
            parts.append(f"on {name} goes from {acc_low:.3f} at noise {low:g} to {acc_high:.3f} at noise {high:g}")
    return "; ".join(parts)
