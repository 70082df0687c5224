"""What the experiment notebook calls: parameters -> config, a run with readable logs, its figures.

The notebooks in ``notebooks/`` hold no logic of their own; everything they compute is here or
in the modules this one uses, so it is tested like the rest of alvit. Rendering the page of a
finished run reads its run folder only and never imports torch, so a sweep or ``alvit book``
renders pages in a couple of seconds each.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib import ticker

from alvit import metrics
from alvit.book import plots
from alvit.book.summary import SMALL_FIT
from alvit.config import ExperimentConfig, load_config, with_overrides
from alvit.errors import ConfigError
from alvit.inputs import InputDigests
from alvit.results import RunFolder

# Notebook parameter -> config key. Everything else travels in SETTINGS as dotted keys.
KNOBS = {
    "DATASET": "dataset",
    "MODEL": "model",
    "PRETRAINED": "pretrained",
    "NOISE_KIND": "noise.kind",
    "NOISE_RATE": "noise.rate",
    "STRATEGY": "strategy",
    "INITIAL": "al.initial",
    "QUERY": "al.query",
    "ROUNDS": "al.rounds",
    "SEED": "seed",
}
ROUND_TABLE_COLUMNS = [
    "round",
    "n_labeled",
    "noise_realized",
    "test_acc",
    "ece",
    "smooth_ece",
    "l2_ce",
    "brier",
    "nll",
    "epochs",
    "train_s",
    "select_s",
]
SIMULATED_BANNER = (
    '<div class="admonition warning"><p class="admonition-title">Simulated results</p>'
    "<p>{what} come from <code>alvit simulate</code>: run folders filled from a seeded effect model, "
    "with no training. They preview the book's layout; their numbers are not measurements.</p></div>"
)


def config_from_parameters(
    config: str | None, settings: dict[str, Any] | None = None, **knobs: Any
) -> ExperimentConfig:
    """The configuration a notebook's parameters describe.

    ``config`` (a YAML file, or None for alvit's defaults) is read first, then ``settings``
    (dotted keys), then every knob of :data:`KNOBS` that is not None.
    """
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ConfigError(
            f"unknown notebook parameter {unknown[0]}; valid ones are CONFIG, SETTINGS, RUN_DIR, {', '.join(KNOBS)}"
        )
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(
            f"SETTINGS must be a mapping of dotted keys to values (pass it with papermill -y), not {type(settings).__name__}"
        )
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
    """The run folder of ``cfg``: found finished, else run (or resumed) with per-round lines shown."""
    folder = RunFolder(run_dir if run_dir is not None else Path("results") / cfg.run_id)
    if folder.config.exists() and folder.is_finished(InputDigests().record(cfg)):
        return folder
    from alvit.loop import (
        run_experiment,  # imports torch: only when there is training to do
    )

    show_progress_lines()
    return RunFolder(run_experiment(cfg, folder.path, progress=False))


def banner(folder: RunFolder) -> str | None:
    """HTML warning for a simulated run's page, None for a real run."""
    return SIMULATED_BANNER.format(what="The numbers on this page") if folder.is_simulated() else None


def for_reading(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``table`` rounded, with "—" where a value does not exist (round 0 bought no labels)."""
    rounded = table.round(digits)
    return rounded.astype(object).where(rounded.notna(), "—")


def rounds_table(folder: RunFolder) -> pd.DataFrame:
    """The rounds of a run, rounded for reading."""
    return for_reading(folder.read_rounds()[ROUND_TABLE_COLUMNS].set_index("round"))


def learning_curve_figure(folder: RunFolder) -> plt.Figure:
    """Accuracy and calibration against labels bought, for one run."""
    rounds = folder.read_rounds()
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.8, 3.0), layout="constrained")
    left.plot(rounds["n_labeled"], rounds["test_acc"], marker="o")
    left.set(xlabel="labels bought", ylabel="clean test accuracy", title="accuracy")
    for metric in ("ece", "brier"):
        right.plot(rounds["n_labeled"], rounds[metric], marker="o", label=plots.METRIC_LABELS[metric])
    right.set(xlabel="labels bought", title="calibration (lower is better)")
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return plots.readable(fig)


def calibration_repair_figure(folder: RunFolder) -> plt.Figure:
    """Test ECE and Brier score round by round, as trained and after each fitted temperature."""
    rounds = folder.read_rounds()
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.2), layout="constrained")
    for ax, metric in zip(axes, ("ece", "brier")):
        for prefix, (label, style) in plots.REPAIRS.items():
            ax.plot(rounds["n_labeled"], rounds[prefix + metric], marker="o", markersize=3, label=label, **style)
        ax.set(xlabel="labels bought", title=f"test {plots.METRIC_LABELS[metric]}")
    for prefix, (label, style) in list(plots.REPAIRS.items())[1:]:
        temperature = rounds[prefix + "temperature"]
        axes[2].plot(rounds["n_labeled"], temperature, marker="o", markersize=3, label=label, **style)
    axes[2].axhline(1.0, color="grey", linewidth=0.8)
    axes[2].set(xlabel="labels bought", title="fitted temperature T\n(above 1 softens)", yscale="log")
    axes[2].yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))  # 0.5, 1, 2 rather than 5 x 10^-1
    axes[2].yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    axes[0].legend(fontsize="x-small")
    for ax in axes:
        ax.grid(alpha=0.3)
    return plots.readable(fig)


def held_out_note(folder: RunFolder, below: int = SMALL_FIT) -> str:
    """A sentence on the held-out labels each round's temperatures were fitted on, flagging rounds of
    fewer than ``below`` (a temperature fitted on a few labels is rough)."""
    rounds = folder.read_rounds()
    sizes = rounds["n_held_out"]
    if sizes.isna().all():
        return "The held-out sizes of this run's fits are not recorded (it was run before alvit recorded them)."
    recorded = rounds[sizes.notna()]
    small = recorded[recorded["n_held_out"] < below]
    if small.empty:
        return (
            f"Every round's temperatures were fitted on at least {below} held-out labels ({int(sizes.min())} or more)."
        )
    listing = ", ".join(f"round {int(r)}: {int(n)}" for r, n in zip(small["round"], small["n_held_out"]))
    return (
        f"**Fitted on few labels:** {len(small)} of {len(recorded)} rounds fitted their temperatures on fewer than "
        f"{below} held-out labels ({listing}), so those temperatures are rough."
    )


def reliability_figure(
    folder: RunFolder, rounds: list[int] | None = None, n_bins: int = metrics.DEFAULT_BINS
) -> plt.Figure:
    """Reliability diagrams of the given rounds (default: the first and the last)."""
    done = folder.read_rounds()
    rounds = rounds if rounds is not None else sorted({0, int(done["round"].max())})
    labels = folder.read_test_labels()
    fig, axes = plt.subplots(1, len(rounds), figsize=(3.8 * len(rounds), 3.8), squeeze=False, layout="constrained")
    for ax, round_ in zip(axes[0], rounds):
        per_sample = folder.read_predictions(round_)
        n_labeled = int(done.loc[done["round"] == round_, "n_labeled"].iloc[0])
        plots.reliability_panel(
            ax, per_sample.confidence, per_sample.correct(labels), f"round {round_} ({n_labeled} labels)", n_bins
        )
    axes[0][0].legend(fontsize="x-small", loc="upper left")
    return plots.readable(fig)
