"""Figures of the study: reliability diagrams, metric against noise rate, heatmaps, gains, learning curves.

Functions take the tables of :mod:`alvit.results` / :mod:`alvit.book.summary` and return matplotlib
figures (or draw on a given axis); they compute nothing the tables do not already hold. Figures
of the study show **one setting** (a dataset and a noise kind; see :func:`alvit.book.summary.by_setting`)
and name it in their title: lines of different datasets are never averaged. Panels are small
multiples, one per strategy or per model, with a shared axis; every model keeps its colour in
every figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.text import Text

from alvit import metrics

METRIC_LABELS = {
    "test_acc": "test accuracy",
    "ece": "ECE (15 bins)",
    "mce": "MCE",
    "adaptive_ece": "adaptive ECE",
    "brier": "Brier score",
    "nll": "NLL",
    "aulc": "area under learning curve",
    "gain": "gain over random",
    "smooth_ece": "SmoothECE",
    "l2_ce": "debiased L2 calibration error",
}
# Test calibration before and after temperature scaling (alvit.calibration.VARIANTS), in drawing
# order: column prefix -> label and line style. The two fits a practitioner can make stand out in
# colour; the model as trained and the oracle bound are grey references (colour-blind palette).
REPAIRS = {
    "": ("as trained", {"color": "#595959", "linestyle": "--"}),
    "ts_noisy_": ("(a) T fitted on noisy labels", {"color": "#FF800E"}),
    "ts_true_": ("(b) T fitted on true labels (oracle bound)", {"color": "#ABABAB", "linestyle": ":"}),
    "ts_aware_": ("(c) T fitted through the noise model", {"color": "#006BA4"}),
}


# How big a figure's text is on a book page: the notebooks' inline backend saves each figure as a
# PNG at matplotlib's 100 dpi, cropped to its content (bbox_inches="tight"), and the page shrinks a
# PNG wider than its text column to the column: 784 px in a 1400 px window (sphinx-book-theme,
# measured in headless chromium). Text of s points is then s * 100 / 72 * shrink pixels high.
SAVE_DPI = 100
PAGE_COLUMN_PX = 784
MIN_TEXT_PX = 9.0


def page_shrink(fig: plt.Figure) -> float:
    """The factor (at most 1) by which a page in a 1400 px window shrinks ``fig``'s PNG to its text column."""
    fig.draw_without_rendering()  # lays the figure out (constrained layout), as saving it does
    pad = plt.rcParams["savefig.pad_inches"]
    width_px = (fig.get_tightbbox(fig.canvas.get_renderer()).width + 2 * pad) * SAVE_DPI
    return min(1.0, PAGE_COLUMN_PX / width_px)


def _texts(fig: plt.Figure) -> list[Text]:
    """Every text the figure draws: titles, labels, tick labels, legends, annotations."""
    return [
        text
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and (text.axes is None or text.axes.get_visible())
    ]


def smallest_text_px(fig: plt.Figure) -> float:
    """The height in page pixels, in a 1400 px window, of ``fig``'s smallest text."""
    shrink = page_shrink(fig)
    return min(text.get_fontsize() for text in _texts(fig)) * SAVE_DPI / 72 * shrink


def readable(fig: plt.Figure) -> plt.Figure:
    """``fig`` with every text enlarged by one factor until the smallest is at least 9 px on a page
    in a 1400 px window (a wide figure is shown shrunk; larger text widens some layouts, hence the loop)."""
    for _ in range(4):
        smallest = smallest_text_px(fig)
        if smallest >= MIN_TEXT_PX:
            break
        factor = MIN_TEXT_PX / smallest * 1.01
        ticks = set()
        for ax in fig.axes:  # tick labels through their axis, so the ticks the next draw makes match
            for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                for which in ("major", "minor"):
                    labels = axis.get_ticklabels(which=which)
                    ticks.update(map(id, labels))
                    if labels:
                        ax.tick_params(axis=name, which=which, labelsize=labels[0].get_fontsize() * factor)
        for text in _texts(fig):
            if id(text) not in ticks:
                text.set_fontsize(text.get_fontsize() * factor)
    return fig


def reliability_diagram(ax: plt.Axes, bins: pd.DataFrame, title: str = "") -> plt.Axes:
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration.

    ``bins`` is :func:`alvit.metrics.reliability_bins`' table. The hatched red box spans the
    gap between the bin's accuracy and its mean confidence (above the bar: over-confident;
    inside it: under-confident); the grey line is the share of samples per bin.
    """
    width = bins["upper"] - bins["lower"]
    filled = bins["count"] > 0
    ax.bar(
        bins["lower"][filled],
        bins["accuracy"][filled],
        width=width[filled],
        align="edge",
        color="#4c72b0",
        edgecolor="white",
        label="accuracy",
    )
    gap_bottom = np.minimum(bins["accuracy"], bins["confidence"])[filled]
    ax.bar(
        bins["lower"][filled],
        np.abs(bins["accuracy"] - bins["confidence"])[filled],
        bottom=gap_bottom,
        width=width[filled],
        align="edge",
        fill=False,
        edgecolor="#c44e52",
        hatch="///",
        linewidth=0.8,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1)
    share = bins["count"] / max(1, bins["count"].sum())
    ax.plot(bins["lower"] + width / 2, share, color="grey", marker=".", linewidth=1, label="share of samples")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.set_aspect("equal")
    return ax


def reliability_panel(
    ax: plt.Axes, confidence: np.ndarray, correct: np.ndarray, heading: str, n_bins: int = metrics.DEFAULT_BINS
) -> plt.Axes:
    """A reliability diagram of top-label ``confidence`` ``[N]`` and ``correct`` ``[N]``, titled
    with ``heading`` and the predictions' accuracy and ECE."""
    title = f"{heading}\nacc {np.mean(correct):.3f}, ECE {metrics.ece_from(confidence, correct, n_bins):.3f}"
    return reliability_diagram(ax, metrics.reliability_bins_from(confidence, correct, n_bins), title)


def model_colours(models: list[str]) -> dict[str, str]:
    """A colour per model, the same in every figure of a page (colour-blind palette, by sorted name)."""
    palette = plt.style.library["tableau-colorblind10"]["axes.prop_cycle"].by_key()["color"]
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(models))}


def _panels(
    count: int, width: float, height: float, columns: int, sharey: bool = True
) -> tuple[plt.Figure, np.ndarray]:
    rows = int(np.ceil(count / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), sharey=sharey, squeeze=False, layout="constrained"
    )
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes.flat[:count]


def metric_vs_noise(rows: pd.DataFrame, metric: str, title: str, dots: bool = False) -> plt.Figure:
    """One setting: final ``metric`` against noise rate; a panel per strategy, a line per model.

    Lines are means over seeds, bands one standard deviation; ``dots`` adds every run.
    """
    strategies = sorted(rows["strategy"].unique())
    colours = model_colours(list(rows["model"].unique()))
    fig, axes = _panels(len(strategies), 2.4, 2.8, min(3, len(strategies)))
    for ax, strategy in zip(axes, strategies):
        for model, group in rows[rows["strategy"] == strategy].groupby("model", sort=True):
            stats = group.groupby("noise_rate")[metric].agg(["mean", "std"]).reset_index().fillna(0.0)
            ax.plot(stats["noise_rate"], stats["mean"], marker="o", markersize=3, color=colours[model], label=model)
            ax.fill_between(
                stats["noise_rate"],
                stats["mean"] - stats["std"],
                stats["mean"] + stats["std"],
                color=colours[model],
                alpha=0.15,
            )
            if dots:
                ax.scatter(group["noise_rate"], group[metric], s=8, color=colours[model], alpha=0.5)
        ax.set(title=strategy, xlabel="noise rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    _finish(fig, title, axes[0])
    return readable(fig)


def calibration_repair(rows: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """One setting: final test ``metric`` (``ece`` or ``brier``) against noise rate, as trained and
    after each temperature of :data:`REPAIRS`; a panel per strategy, means over models and seeds
    with a band of one standard deviation of the per-run values."""
    strategies = sorted(rows["strategy"].unique())
    fig, axes = _panels(len(strategies), 2.4, 2.8, min(3, len(strategies)))
    for ax, strategy in zip(axes, strategies):
        chosen = rows[rows["strategy"] == strategy]
        for prefix, (label, style) in REPAIRS.items():
            stats = chosen.groupby("noise_rate")[prefix + metric].agg(["mean", "std"]).reset_index().fillna(0.0)
            ax.plot(stats["noise_rate"], stats["mean"], marker="o", markersize=3, label=label, **style)
            ax.fill_between(
                stats["noise_rate"],
                stats["mean"] - stats["std"],
                stats["mean"] + stats["std"],
                color=style["color"],
                alpha=0.12,
            )
        ax.set(title=strategy, xlabel="noise rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test {METRIC_LABELS.get(metric, metric)}")
    _finish(fig, title, axes[0], heading="calibration")
    return readable(fig)


def _finish(fig: plt.Figure, title: str, legend_from: plt.Axes, heading: str = "model") -> None:
    """Title above the panels and one legend for the whole figure, outside them on the right.

    Figures use matplotlib's constrained layout, which makes room for both.
    """
    fig.suptitle(title)
    handles, labels = legend_from.get_legend_handles_labels()
    fig.legend(handles, labels, title=heading, loc="outside right center", fontsize="small")


LOWER_IS_BETTER = {"ece", "mce", "adaptive_ece", "brier", "nll"}


def heatmaps(rows: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """One setting: mean final ``metric`` per model (rows) and noise rate (columns); a heatmap per strategy.

    All panels share one colour scale, so a colour means the same number everywhere; brighter is
    better for every metric. With many noise rates the panels stack, so every number stays readable.
    """
    import seaborn as sns  # imported here: a run's page draws no heatmap and need not pay for seaborn

    strategies = sorted(rows["strategy"].unique())
    table = rows.groupby(["strategy", "model", "noise_rate"])[metric].mean()
    models, rates = sorted(rows["model"].unique()), sorted(rows["noise_rate"].unique())
    panel_width = 0.62 * len(rates) + 1.6
    columns = max(1, min(len(strategies), int(12 // panel_width)))
    fig, axes = _panels(len(strategies), panel_width, 0.36 * len(models) + 1.0, columns)
    for ax, strategy in zip(axes, strategies):
        grid = table[strategy].unstack("noise_rate").reindex(index=models, columns=rates)
        grid.columns = [f"{rate:g}" for rate in rates]
        sns.heatmap(
            grid,
            ax=ax,
            vmin=float(table.min()),
            vmax=float(table.max()),
            annot=True,
            fmt=".2f",
            cmap="viridis_r" if metric in LOWER_IS_BETTER else "viridis",
            annot_kws={"fontsize": 7},
            cbar=False,
        )
        ax.set(title=strategy, xlabel="noise rate", ylabel="model")
        ax.tick_params(axis="y", rotation=0)
    fig.colorbar(axes[0].collections[0], ax=list(axes), label=METRIC_LABELS.get(metric, metric), shrink=0.8)
    fig.suptitle(title)
    return readable(fig)


def gain_vs_noise(gains: pd.DataFrame, title: str, metric_label: str = "accuracy") -> plt.Figure:
    """One setting: each strategy's gain over random against noise rate, a dot per (model, seed).

    The shaded strip is the paper's "moderate" noise, 0.3 to 0.6.
    """
    fig = metric_vs_noise(gains.assign(strategy=gains["strategy"] + " - random"), "gain", title, dots=True)
    for ax in fig.axes[: gains["strategy"].nunique()]:
        ax.axhline(0.0, color="black", linewidth=1)
        ax.axvspan(0.3, 0.6, color="grey", alpha=0.1)
    fig.axes[0].set_ylabel(f"{metric_label} gain over random")
    return readable(fig)


def reliability_grid(rows: pd.DataFrame, rate: float, title: str, n_bins: int = metrics.DEFAULT_BINS) -> plt.Figure:
    """One setting at one noise rate: final-round reliability diagrams, a row per model, a column per strategy.

    Seeds are pooled: each diagram bins the test predictions of every seed's run together.
    """
    from alvit.results import pooled_predictions

    at_rate = rows[np.isclose(rows["noise_rate"], rate)]
    models, strategies = sorted(at_rate["model"].unique()), sorted(at_rate["strategy"].unique())
    fig, axes = plt.subplots(
        len(models),
        len(strategies),
        figsize=(2.5 * len(strategies), 2.7 * len(models)),
        squeeze=False,
        layout="constrained",
    )
    for r, model in enumerate(models):
        for c, strategy in enumerate(strategies):
            runs = at_rate[(at_rate["model"] == model) & (at_rate["strategy"] == strategy)]
            ax = axes[r][c]
            if runs.empty:
                ax.set_visible(False)
                continue
            confidence, correct = pooled_predictions(list(runs["path"]))
            reliability_panel(ax, confidence, correct, f"{model} · {strategy}", n_bins)
            ax.title.set_fontsize(8)
            ax.tick_params(labelsize=7)
            ax.set(xlabel="confidence" if r == len(models) - 1 else "", ylabel="accuracy" if c == 0 else "")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{title}, noise {rate:g}: final round, seeds pooled")
    return readable(fig)


def learning_curves(
    runs: pd.DataFrame, metric: str = "test_acc", hue: str = "strategy", ax: plt.Axes | None = None
) -> plt.Axes:
    """Mean metric against labels bought, one line per ``hue`` value, band = one std over seeds."""
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    for value, group in runs.groupby(hue, sort=True):
        stats = group.groupby("n_labeled")[metric].agg(["mean", "std"]).reset_index().fillna(0.0)
        ax.plot(stats["n_labeled"], stats["mean"], marker="o", markersize=3, label=str(value))
        ax.fill_between(stats["n_labeled"], stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
    ax.set(xlabel="labels bought", ylabel=METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    return ax


def learning_curve_grid(runs: pd.DataFrame, rates: list[float], title: str, metric: str = "test_acc") -> plt.Figure:
    """One setting: learning curves, a row per model and a column per noise rate, a line per strategy."""
    models = sorted(runs["model"].unique())
    fig, axes = plt.subplots(
        len(models),
        len(rates),
        figsize=(1.9 * len(rates), 2.0 * len(models)),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for r, model in enumerate(models):
        for c, rate in enumerate(rates):
            ax = axes[r][c]
            learning_curves(runs[(runs["model"] == model) & np.isclose(runs["noise_rate"], rate)], metric, ax=ax)
            ax.set_title(f"{model}, noise {rate:g}", fontsize=8)
            ax.set(
                xlabel="labels bought" if r == len(models) - 1 else "",
                ylabel=METRIC_LABELS.get(metric, metric) if c == 0 else "",
            )
            ax.tick_params(labelsize=7)
    _finish(fig, title, axes[0][0], "strategy")
    return readable(fig)


def cost_bars(rows: pd.DataFrame, title: str) -> plt.Figure:
    """One setting: mean training and selection seconds per run, per model and strategy."""
    stats = rows.groupby(["model", "strategy"])[["total_train_s", "total_select_s"]].mean()
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(stats) + 1.4), layout="constrained")
    labels = [f"{model} / {strategy}" for model, strategy in stats.index]
    ax.barh(labels, stats["total_train_s"], label="training")
    ax.barh(labels, stats["total_select_s"], left=stats["total_train_s"], label="scoring + selection")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set(xlabel="seconds per run (mean over noise rates and seeds)", title=title)
    ax.legend(fontsize="small")
    return readable(fig)


def image_grid(images: np.ndarray, titles: list[str], columns: int = 8, title: str = "") -> plt.Figure:
    """Small images ``uint8 [N, 3, H, W]`` in a grid, each with a short caption."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.0 * columns, 1.3 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, titles):
        ax.imshow(np.transpose(np.asarray(image), (1, 2, 0)), interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    return readable(fig)


def power_vs_seeds(curve: pd.DataFrame, title: str, target: float = 0.8) -> plt.Figure:
    """P(holds | true) against the number of seeds, a line per claim, with the 80% target dashed.

    ``curve``: columns claim, seeds, power (from :meth:`alvit.book.power.PowerReport.curve`).
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    for claim, rows in curve.groupby("claim", sort=True):
        ax.plot(rows["seeds"], rows["power"], marker="o", label=f"claim {claim}")
    ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="seeds per configuration", ylabel="P(holds | claim true)", ylim=(-0.02, 1.02), title=title)
    ax.set_xticks(sorted(curve["seeds"].unique()))
    ax.legend(title="claim", frameon=False, loc="lower right")
    return readable(fig)


def probe_curves(rounds: pd.DataFrame, title: str) -> plt.Figure:
    """Accuracy (top row) and ECE (bottom row) against labels, a column per noise rate, a line per
    strategy: ``rounds`` has ``noise_rate``, ``strategy``, ``n_labeled``, ``test_acc`` and ``ece``."""
    rates = sorted(rounds["noise_rate"].unique())
    fig, axes = plt.subplots(
        2, len(rates), figsize=(2.0 * len(rates), 4.4), sharex=True, sharey="row", squeeze=False, layout="constrained"
    )
    for c, rate in enumerate(rates):
        for r, metric in enumerate(("test_acc", "ece")):
            ax = axes[r][c]
            learning_curves(rounds[np.isclose(rounds["noise_rate"], rate)], metric, ax=ax)
            ax.set(
                title=f"noise {rate:g}" if r == 0 else "",
                xlabel="labels" if r == 1 else "",
                ylabel=METRIC_LABELS[metric] if c == 0 else "",
            )
    _finish(fig, title, axes[0][0], "strategy")
    return readable(fig)


def power_vs_sd(
    curve: pd.DataFrame, spreads: dict[str, tuple[float, float]], title: str, target: float = 0.8
) -> plt.Figure:
    """P(holds | true) against a seed sd the same at every rate (log axis), with its Monte Carlo
    standard error as a band, the 80% target dashed and the range of each setting's per-rate sds shaded.

    ``curve``: columns sd, power, se (from :meth:`alvit.book.power.PowerReport.sd_curve`);
    ``spreads``: setting -> (lowest, highest) sd of accuracy assumed there.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    for (name, (low, high)), colour in zip(spreads.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"][1:]):
        ax.axvspan(low, max(high, low * 1.05), color=colour, alpha=0.18, label=f"sds assumed, {name}")
    ax.fill_between(curve["sd"], curve["power"] - curve["se"], curve["power"] + curve["se"], color="C0", alpha=0.25)
    ax.plot(curve["sd"], curve["power"], marker="o", color="C0", label="P(holds | claim true)")
    ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set(xlabel="seed-to-seed sd of accuracy (the same at every rate)", ylabel="P(holds | claim true)")
    ax.set(ylim=(-0.02, 1.02), title=title)
    ax.legend(frameon=False, loc="upper right", fontsize=8)
    return readable(fig)


# Question B's variants (acq.calibrate), styled as the temperatures they use are in REPAIRS.
CALIBRATED_ACQUISITION_STYLES = {
    "noisy": ("noisy: T fitted on noisy labels", REPAIRS["ts_noisy_"][1]),
    "aware": ("aware: noise-aware T", REPAIRS["ts_aware_"][1]),
    "true": ("true: T fitted on true labels (oracle bound)", REPAIRS["ts_true_"][1]),
}


def _calibrated_lines(ax: plt.Axes, rows: pd.DataFrame, x: str, y: str, dots: bool) -> None:
    """A line per acq.calibrate value of ``rows``: mean of ``y`` over the rest at each ``x``, band one sd."""
    for value, (label, style) in CALIBRATED_ACQUISITION_STYLES.items():
        chosen = rows[rows["acq_calibrate"] == value]
        if chosen.empty:
            continue
        stats = chosen.groupby(x)[y].agg(["mean", "std"]).reset_index().fillna(0.0)
        ax.plot(stats[x], stats["mean"], marker="o", markersize=3, label=label, **style)
        ax.fill_between(
            stats[x], stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=style["color"], alpha=0.12
        )
        if dots:
            ax.scatter(chosen[x], chosen[y], s=8, color=style["color"], alpha=0.5)


def _balanced_columns(count: int, most: int = 3) -> int:
    """Columns for ``count`` panels, at most ``most``, rows filled evenly (4 panels: 2 x 2, not 3 + 1)."""
    return int(np.ceil(count / np.ceil(count / most)))


def calibrated_gain_vs_noise(gains: pd.DataFrame, metric_label: str, title: str) -> plt.Figure:
    """One setting's :func:`alvit.book.summary.calibrated_gains`: each acq.calibrate value's final metric
    minus that of its pair acquiring with none, against noise rate; a panel per strategy, a dot per
    (model, seed), the line their mean."""
    strategies = sorted(gains["strategy"].unique())
    fig, axes = _panels(len(strategies), 4.2, 3.4, _balanced_columns(len(strategies)))
    for ax, strategy in zip(axes, strategies):
        _calibrated_lines(ax, gains[gains["strategy"] == strategy], "noise_rate", "gain", dots=True)
        ax.axhline(0.0, color="black", linewidth=1)
        ax.set(title=strategy, xlabel="noise rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric_label}, calibrated minus none")
    _finish(fig, title, axes[0], heading="acq.calibrate")
    return readable(fig)


def selection_overlap(overlap: pd.DataFrame, title: str) -> plt.Figure:
    """One setting's :func:`alvit.book.summary.selection_overlap`: the share of a calibrated run's queries its
    uncalibrated pair bought too, against the round they were bought for; a panel per strategy, means
    over models, noise rates and seeds with a band of one standard deviation."""
    strategies = sorted(overlap["strategy"].unique())
    fig, axes = _panels(len(strategies), 4.2, 3.4, _balanced_columns(len(strategies)))
    for ax, strategy in zip(axes, strategies):
        _calibrated_lines(ax, overlap[overlap["strategy"] == strategy], "round", "overlap", dots=False)
        ax.set(title=strategy, xlabel="queries bought for round", ylim=(-0.02, 1.02))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share also bought uncalibrated")
    _finish(fig, title, axes[0], heading="acq.calibrate")
    return readable(fig)
