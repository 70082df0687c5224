"""The study's numbers from the tidy runs table: final rounds, mean +- std tables, gains, AULC."""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUP = ["dataset", "model", "strategy", "noise_rate"]


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
    return pd.DataFrame(rows)


def mean_std_table(final: pd.DataFrame, metric: str, digits: int = 3) -> pd.DataFrame:
    """Rows (dataset, model, strategy), columns noise rate, cells "mean ± std (n)" over seeds."""
    stats = final.groupby(GROUP)[metric].agg(["mean", "std", "count"]).reset_index()

    def cell(row: pd.Series) -> str:
        spread = "" if row["count"] < 2 else f" ± {row['std']:.{digits}f}"
        return f"{row['mean']:.{digits}f}{spread}"

    stats["cell"] = stats.apply(cell, axis=1)
    table = stats.pivot_table(index=["dataset", "model", "strategy"], columns="noise_rate", values="cell", aggfunc="first")
    table.columns = [f"noise {rate:g}" for rate in table.columns]
    return table


def gain_over_baseline(final: pd.DataFrame, metric: str = "test_acc", baseline: str = "random") -> pd.DataFrame:
    """Per (dataset, model, noise rate, seed): metric of each strategy minus the baseline's.

    Pairs share the seed, hence the same noisy oracle and initial set, so the difference is
    the strategy's effect alone.
    """
    keys = ["dataset", "model", "noise_rate", "seed"]
    base = final[final["strategy"] == baseline][keys + [metric]].rename(columns={metric: "baseline"})
    others = final[final["strategy"] != baseline][keys + ["strategy", metric]]
    paired = others.merge(base, on=keys)
    paired["gain"] = paired[metric] - paired["baseline"]
    return paired


def spread(values: pd.Series) -> tuple[float, float, int]:
    """(mean, standard deviation, count); the deviation is 0 for a single value."""
    values = values.dropna()
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)
