"""Figures of the study: reliability diagrams, metric against noise rate, gains, learning curves.

Functions take the tables of :mod:`alvit.results` / :mod:`alvit.summary` and return matplotlib
figures (or draw on a given axis); they compute nothing the tables do not already hold.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from alvit import metrics

METRIC_LABELS = {
    "test_acc": "test accuracy", "ece": "ECE (15 bins)", "mce": "MCE", "adaptive_ece": "adaptive ECE",
    "brier": "Brier score", "nll": "NLL", "aulc": "area under learning curve", "gain": "gain over random",
}


def reliability_diagram(ax: plt.Axes, bins: pd.DataFrame, title: str = "") -> plt.Axes:
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration.

    ``bins`` is :func:`alvit.metrics.reliability_bins`' table. The hatched red box spans the
    gap between the bin's accuracy and its mean confidence (above the bar: over-confident;
    inside it: under-confident); the grey line is the share of samples per bin.
    """
    width = bins["upper"] - bins["lower"]
    filled = bins["count"] > 0
    ax.bar(bins["lower"][filled], bins["accuracy"][filled], width=width[filled], align="edge",
           color="#4c72b0", edgecolor="white", label="accuracy")
    gap_bottom = np.minimum(bins["accuracy"], bins["confidence"])[filled]
    ax.bar(bins["lower"][filled], np.abs(bins["accuracy"] - bins["confidence"])[filled], bottom=gap_bottom,
           width=width[filled], align="edge", fill=False, edgecolor="#c44e52", hatch="///", linewidth=0.8,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1)
    share = bins["count"] / max(1, bins["count"].sum())
    ax.plot(bins["lower"] + width / 2, share, color="grey", marker=".", linewidth=1, label="share of samples")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.set_aspect("equal")
    return ax


def reliability_panel(ax: plt.Axes, confidence: np.ndarray, correct: np.ndarray, heading: str,
                      n_bins: int = metrics.DEFAULT_BINS) -> plt.Axes:
    """A reliability diagram of top-label ``confidence`` ``[N]`` and ``correct`` ``[N]``, titled
    with ``heading`` and the predictions' accuracy and ECE."""
    title = f"{heading}\nacc {np.mean(correct):.3f}, ECE {metrics.ece_from(confidence, correct, n_bins):.3f}"
    return reliability_diagram(ax, metrics.reliability_bins_from(confidence, correct, n_bins), title)


def learning_curves(runs: pd.DataFrame, metric: str = "test_acc", hue: str = "strategy", ax: plt.Axes | None = None) -> plt.Axes:
    """Mean metric against labels bought, one line per ``hue`` value, band = one std over seeds."""
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    for value, group in runs.groupby(hue, sort=True):
        stats = group.groupby("n_labeled")[metric].agg(["mean", "std"]).reset_index().fillna(0.0)
        ax.plot(stats["n_labeled"], stats["mean"], marker="o", label=str(value))
        ax.fill_between(stats["n_labeled"], stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
    ax.set(xlabel="labels bought", ylabel=METRIC_LABELS.get(metric, metric))
    ax.legend(title=hue, fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def _panels_by_strategy(table: pd.DataFrame, value: str, ylabel: str, title: str = "{}", dots: bool = False) -> tuple[plt.Figure, np.ndarray]:
    """One panel per strategy, one line per model: mean of ``value`` over seeds against noise
    rate, a band of one standard deviation, and optionally every (model, seed) value as a dot."""
    strategies = sorted(table["strategy"].unique())
    fig, axes = plt.subplots(1, len(strategies), figsize=(4 * len(strategies), 3.3), sharey=True, squeeze=False)
    for ax, strategy in zip(axes[0], strategies):
        for model, group in table[table["strategy"] == strategy].groupby("model", sort=True):
            stats = group.groupby("noise_rate")[value].agg(["mean", "std"]).reset_index().fillna(0.0)
            line = ax.plot(stats["noise_rate"], stats["mean"], marker="o", label=model)[0]
            ax.fill_between(stats["noise_rate"], stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=line.get_color(), alpha=0.15)
            if dots:
                ax.scatter(group["noise_rate"], group[value], s=10, color=line.get_color(), alpha=0.5)
        ax.set(title=title.format(strategy), xlabel="noise rate")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize="small")
    return fig, axes[0]


def metric_vs_noise(final: pd.DataFrame, metric: str = "test_acc") -> plt.Figure:
    """Final-round ``metric`` against noise rate: one panel per strategy, one line per model."""
    fig, _ = _panels_by_strategy(final, metric, METRIC_LABELS.get(metric, metric))
    fig.tight_layout()
    return fig


def gain_vs_noise(gains: pd.DataFrame, metric_label: str = "accuracy") -> plt.Figure:
    """Gain of each strategy over random against noise rate; one dot per (model, seed).

    The shaded strip is the paper's "moderate" noise, 0.3 to 0.6.
    """
    fig, axes = _panels_by_strategy(gains, "gain", f"{metric_label} gain over random", "{} - random", dots=True)
    for ax in axes:
        ax.axhline(0.0, color="black", linewidth=1)
        ax.axvspan(0.3, 0.6, color="grey", alpha=0.1)
    fig.tight_layout()
    return fig


def cost_bars(final: pd.DataFrame) -> plt.Figure:
    """Mean training and selection seconds per run, per model and strategy."""
    stats = final.groupby(["model", "strategy"])[["total_train_s", "total_select_s"]].mean()
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(stats) + 1.2))
    labels = [f"{model} / {strategy}" for model, strategy in stats.index]
    ax.barh(labels, stats["total_train_s"], label="training")
    ax.barh(labels, stats["total_select_s"], left=stats["total_train_s"], label="scoring + selection")
    ax.set(xlabel="seconds per run (mean over noise rates and seeds)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, titles: list[str], columns: int = 8, title: str = "") -> plt.Figure:
    """Small images ``uint8 [N, 3, H, W]`` in a grid, each with a short caption."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, titles):
        ax.imshow(np.transpose(np.asarray(image), (1, 2, 0)), interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_grid(final: pd.DataFrame, strategy: str, n_bins: int = metrics.DEFAULT_BINS) -> plt.Figure:
    """Final-round reliability diagrams of one dataset: one row per model, lowest and highest noise.

    ``final`` must hold one dataset and one noise kind. Seeds are pooled: each diagram bins
    the test predictions of every seed's run together.
    """
    from alvit.results import pooled_predictions

    subset = final[final["strategy"] == strategy]
    models = sorted(subset["model"].unique())
    rates = sorted(subset["noise_rate"].unique())
    rates = [rates[0], rates[-1]] if len(rates) > 1 else rates
    fig, axes = plt.subplots(len(models), len(rates), figsize=(3.6 * len(rates), 3.6 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for col, rate in enumerate(rates):
            runs = subset[(subset["model"] == model) & (subset["noise_rate"] == rate)]
            confidence, correct = pooled_predictions(list(runs["path"]))
            reliability_panel(axes[row][col], confidence, correct, f"{model}, noise {rate:g}", n_bins)
    fig.suptitle(f"{strategy}: final round, seeds pooled")
    fig.tight_layout()
    return fig
