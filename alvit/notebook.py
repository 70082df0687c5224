"""What the notebooks call: parameters -> config, a run with readable logs, and per-run figures.

The notebooks in ``notebooks/`` hold no logic of their own; everything they compute is here or
in the modules this one uses, so it is tested like the rest of alvit.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

# huggingface_hub (imported by timm) imports tqdm.auto, which warns in every kernel without
# ipywidgets; alvit draws no progress bars in notebooks, so the warning would only be noise.
warnings.filterwarnings("ignore", message="IProgress not found")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from alvit import metrics, plots
from alvit.config import ExperimentConfig, load_config, with_overrides
from alvit.errors import ConfigError
from alvit.loop import run_experiment
from alvit.results import RunFolder

# Notebook parameter -> config key. Everything else travels in SETTINGS as dotted keys.
KNOBS = {
    "DATASET": "dataset", "MODEL": "model", "PRETRAINED": "pretrained", "NOISE_KIND": "noise.kind",
    "NOISE_RATE": "noise.rate", "STRATEGY": "strategy", "INITIAL": "al.initial", "QUERY": "al.query",
    "ROUNDS": "al.rounds", "SEED": "seed",
}
ROUND_TABLE_COLUMNS = ["round", "n_labeled", "noise_realized", "test_acc", "ece", "brier", "nll", "epochs", "train_s", "select_s"]


def config_from_parameters(config: str | None, settings: dict[str, Any] | None = None, **knobs: Any) -> ExperimentConfig:
    """The configuration a notebook's parameters describe.

    ``config`` (a YAML file, or None for alvit's defaults) is read first, then ``settings``
    (dotted keys), then every knob of :data:`KNOBS` that is not None.
    """
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ConfigError(f"unknown notebook parameter {unknown[0]}; valid ones are CONFIG, SETTINGS, RUN_DIR, {', '.join(KNOBS)}")
    overrides = dict(settings or {})
    overrides.update({KNOBS[name]: value for name, value in knobs.items() if value is not None})
    return with_overrides(load_config(config), overrides)


def show_progress_lines() -> None:
    """Send alvit's per-round summary lines to the notebook's output (once per kernel)."""
    logger = logging.getLogger("alvit")
    if not any(getattr(h, "_alvit_notebook", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._alvit_notebook = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run(cfg: ExperimentConfig, run_dir: str | Path | None = None) -> RunFolder:
    """Run (or resume, or find finished) the experiment; per-round lines go to the output."""
    show_progress_lines()
    return RunFolder(run_experiment(cfg, run_dir, progress=False))


def rounds_table(folder: RunFolder) -> pd.DataFrame:
    """The rounds of a run, rounded for reading."""
    return folder.read_rounds()[ROUND_TABLE_COLUMNS].round(4).set_index("round")


def learning_curve_figure(folder: RunFolder) -> plt.Figure:
    """Accuracy and calibration against labels bought, for one run."""
    rounds = folder.read_rounds()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    left.plot(rounds["n_labeled"], rounds["test_acc"], marker="o")
    left.set(xlabel="labels bought", ylabel="clean test accuracy", title="accuracy")
    for metric in ("ece", "brier"):
        right.plot(rounds["n_labeled"], rounds[metric], marker="o", label=plots.METRIC_LABELS[metric])
    right.set(xlabel="labels bought", title="calibration (lower is better)")
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def reliability_figure(folder: RunFolder, rounds: list[int] | None = None, n_bins: int = metrics.DEFAULT_BINS) -> plt.Figure:
    """Reliability diagrams of the given rounds (default: the first and the last)."""
    done = folder.read_rounds()
    rounds = rounds if rounds is not None else sorted({0, int(done["round"].max())})
    labels = np.load(folder.test_labels)
    fig, axes = plt.subplots(1, len(rounds), figsize=(3.8 * len(rounds), 3.8), squeeze=False)
    for ax, round_ in zip(axes[0], rounds):
        probs = np.load(folder.probs_path(round_))
        n_labeled = int(done.loc[done["round"] == round_, "n_labeled"].iloc[0])
        _draw_reliability(ax, probs, labels, f"round {round_} ({n_labeled} labels)", n_bins)
    axes[0][0].legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    return fig


def _draw_reliability(ax: plt.Axes, probs: np.ndarray, labels: np.ndarray, heading: str, n_bins: int) -> None:
    """One reliability diagram titled with ``heading`` and the predictions' accuracy and ECE."""
    title = f"{heading}\nacc {metrics.accuracy(probs, labels):.3f}, ECE {metrics.ece(probs, labels, n_bins):.3f}"
    plots.reliability_diagram(ax, metrics.reliability_bins(probs, labels, n_bins), title)


def noise_table(folder: RunFolder) -> pd.DataFrame:
    """Nominal pool noise against what the labeled set actually holds, round by round.

    The initial set is clean and a strategy may prefer (or avoid) mislabeled samples, so the
    labeled set's noise differs from the pool's rate.
    """
    config = folder.read_config()
    rounds = folder.read_rounds()
    queries = folder.read_queries()
    wrong_bought = [float(np.mean(queries["oracle_label"][queries["round"] == r] != queries["true_label"][queries["round"] == r]))
                    if np.any(queries["round"] == r) else np.nan for r in rounds["round"]]
    return pd.DataFrame({
        "round": rounds["round"], "n_labeled": rounds["n_labeled"],
        "pool noise rate": config["noise"]["rate"], "wrong among this round's queries": wrong_bought,
        "wrong in the labeled set": rounds["noise_realized"],
    }).round(3).set_index("round")


def suspects_table(folder: RunFolder) -> pd.DataFrame | None:
    """GCI-ViTAL's suspect flags per round: how many, and how many of them truly were wrong."""
    queries = folder.read_queries()
    if not np.any(queries["suspect"] >= 0):
        return None
    table = pd.DataFrame({"round": queries["round"], "suspect": queries["suspect"] == 1,
                          "wrong": queries["oracle_label"] != queries["true_label"]})
    grouped = table.groupby("round")
    return pd.DataFrame({
        "queried": grouped.size(), "wrong": grouped["wrong"].sum(), "flagged": grouped["suspect"].sum(),
        "flagged and wrong": grouped.apply(lambda g: int((g["suspect"] & g["wrong"]).sum()), include_groups=False),
    })


def reliability_grid(final: pd.DataFrame, strategy: str, n_bins: int = metrics.DEFAULT_BINS) -> plt.Figure:
    """Final-round reliability diagrams: one row per model, lowest and highest noise rate side by side.

    Seeds are pooled: each diagram bins the test predictions of every seed's run together.
    """
    subset = final[final["strategy"] == strategy]
    models = sorted(subset["model"].unique())
    rates = sorted(subset["noise_rate"].unique())
    rates = [rates[0], rates[-1]] if len(rates) > 1 else rates
    fig, axes = plt.subplots(len(models), len(rates), figsize=(3.6 * len(rates), 3.6 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for col, rate in enumerate(rates):
            runs = subset[(subset["model"] == model) & (subset["noise_rate"] == rate)]
            probs, labels = [], []
            for _, run in runs.iterrows():
                folder = RunFolder(run["path"])
                probs.append(np.load(folder.probs_path(int(run["round"]))))
                labels.append(np.load(folder.test_labels))
            probs, labels = np.concatenate(probs), np.concatenate(labels)
            _draw_reliability(axes[row][col], probs, labels, f"{model}, noise {rate:g}", n_bins)
    fig.suptitle(f"{strategy}: final round, seeds pooled")
    fig.tight_layout()
    return fig
