"""Text in the book's figures is at least 9 px on a page in a 1400 px window, at the demo's shapes
and at the paper's (7 models, 10 noise rates, 3 strategies).

The measure here is the page's own: the notebooks' inline backend saves a figure as a PNG at 100
dpi cropped to its content (``bbox_inches="tight"``), and the page shrinks a PNG wider than its
text column, 784 px in a 1400 px window (measured in headless chromium), to fit it.
"""

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image

from alvit.book import notebook, plots

matplotlib.use("Agg")

COLUMN_PX = 784
DEMO = (["vit_mini_p8", "vit_nano_p4"], [0.0, 0.2, 0.5, 0.8], ["entropy", "gci_vital", "random"])
PAPER = (
    ["swinv2_b", "swinv2_s", "swinv2_t", "vit_b16", "vit_b32", "vit_l16", "vit_l32"],
    [round(0.1 * i, 1) for i in range(10)],
    ["entropy", "gci_vital", "random"],
)


def text_px_on_the_page(fig) -> float:
    """The smallest text of ``fig`` in page pixels, from the PNG the inline backend would save."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100, bbox_inches="tight")
    width = Image.open(png).width
    shrink = min(1.0, COLUMN_PX / width)
    sizes = [
        text.get_fontsize()
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and (text.axes is None or text.axes.get_visible())
    ]
    return min(sizes) * 100 / 72 * shrink


def final_rounds(models, rates, strategies, seeds=3) -> pd.DataFrame:
    """Final rounds of a profile's runs, with every column the figures read."""
    rng = np.random.default_rng(0)
    rows = [
        {"model": m, "noise_rate": r, "strategy": s, "seed": seed, "path": f"/runs/{m}-{r}-{s}-{seed}"}
        for m in models
        for r in rates
        for s in strategies
        for seed in range(seeds)
    ]
    table = pd.DataFrame(rows)
    for column in ("test_acc", "ece", "brier", "gain", "total_train_s", "total_select_s"):
        table[column] = rng.random(len(table))
    for prefix in ("ts_noisy_", "ts_true_", "ts_aware_"):
        table[prefix + "ece"], table[prefix + "brier"] = rng.random(len(table)), rng.random(len(table))
    return table


def rounds_of(final: pd.DataFrame, rounds: int = 4) -> pd.DataFrame:
    """Every round of the same runs: labels bought and the metrics, per round."""
    return pd.concat([final.assign(round=r, n_labeled=1000 * (r + 1)) for r in range(rounds)], ignore_index=True)


def study_figures(shape, monkeypatch) -> dict:
    from alvit import results

    rng = np.random.default_rng(1)
    monkeypatch.setattr(results, "pooled_predictions", lambda paths: (rng.random(300), rng.random(300) < 0.7))
    final = final_rounds(*shape)
    models, rates, strategies = shape
    gains = final[final["strategy"] != "random"]
    curve = pd.DataFrame([{"claim": c, "seeds": n, "power": n / 10} for c in range(1, 7) for n in (3, 5, 10)])
    images = rng.integers(0, 255, (16, 3, 8, 8), dtype=np.uint8)
    return {
        "heatmaps": plots.heatmaps(final, "test_acc", "Test accuracy, cifar100 · pairflip"),
        "metric_vs_noise": plots.metric_vs_noise(final, "test_acc", "Test accuracy, cifar100 · pairflip"),
        "calibration_repair": plots.calibration_repair(
            final, "brier", "Test Brier score before and after temperature scaling, cifar100 · pairflip"
        ),
        "gain_vs_noise": plots.gain_vs_noise(gains, "Accuracy gain over random, cifar100 · pairflip"),
        "reliability_grid": plots.reliability_grid(final, rates[-1], "cifar100 · pairflip"),
        "learning_curve_grid": plots.learning_curve_grid(
            rounds_of(final), rates[:: max(1, len(rates) // 4)][:4], "Learning curves, cifar100 · pairflip"
        ),
        "cost_bars": plots.cost_bars(final, "Seconds per run, cifar100 · pairflip"),
        "image_grid": plots.image_grid(images, [f"H={h:.2f}, true {t}" for h, t in zip(rng.random(16), range(16))]),
        "power_vs_seeds": plots.power_vs_seeds(curve, "Power at an effect of 2 seed-sds"),
        "probe_curves": plots.probe_curves(rounds_of(final), "EfficientNet-Lite0, frozen, on CIFAR-10"),
        "power_vs_sd": plots.power_vs_sd(
            pd.DataFrame(
                {"sd": [0.01, 0.02, 0.05, 0.1], "power": [1.0, 0.9, 0.5, 0.2], "se": [0.0, 0.02, 0.035, 0.03]}
            ),
            {"cifar100 · pairflip": (0.02, 0.09), "cifar100 · symmetric": (0.01, 0.05)},
            "Claim 5: P(holds | true) against the seed sd",
        ),
    }


@pytest.mark.parametrize("shape", [DEMO, PAPER], ids=["demo", "paper"])
def test_every_figure_of_the_results_has_text_of_9_px_or_more_at_1400_px(shape, monkeypatch):
    for name, fig in study_figures(shape, monkeypatch).items():
        assert text_px_on_the_page(fig) >= 9.0, name
        plt.close(fig)


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory):
    from conftest import REPO

    from alvit.profile import load_profile
    from alvit.results import RunFolder
    from alvit.sweep.simulate import simulate_profile

    only = ["model=vit_mini_p8", "seed=0", "strategy=entropy", "noise.rate=0.8"]
    profile = load_profile(REPO / "configs/profiles/demo.yaml", only)
    out = tmp_path_factory.mktemp("runs")
    simulate_profile(profile, out, test_size=100)
    return RunFolder(out / profile.configs[0].run_id)


@pytest.mark.parametrize("figure", ["learning_curve_figure", "calibration_repair_figure", "reliability_figure"])
def test_every_figure_of_a_run_page_has_text_of_9_px_or_more_at_1400_px(simulated_run, figure):
    fig = getattr(notebook, figure)(simulated_run)
    assert text_px_on_the_page(fig) >= 9.0
    plt.close(fig)


def test_readable_enlarges_the_text_of_a_figure_the_page_shrinks():
    """A 20-inch figure of 6 pt text is shown at 784 / 2000 of its size: 3 px text, until made readable."""
    fig, axes = plt.subplots(1, 5, figsize=(20, 3), layout="constrained")
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_title("a panel", fontsize=6)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6)
    assert text_px_on_the_page(fig) < 4
    plots.readable(fig)
    assert text_px_on_the_page(fig) >= 9.0
    plt.close(fig)
