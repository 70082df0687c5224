"""Accuracy and calibration of predictions, exactly as the book defines them (book/definitions.md).

Every metric needs only four numbers per test sample (:class:`PerSample`): the top-class
confidence, the predicted class, the probability of the true class and the sum of squared
probabilities. Run folders store those for every round (a few bytes per sample instead of K
floats), so every metric of every round can be recomputed from them; the functions taking
``probs: float [N, K]`` (rows sum to 1) and ``labels: int [N]`` summarise first.

ECE is top-label with equal-width bins over [0, 1]: bin b holds confidences in
[b/B, (b+1)/B) and the last bin also holds 1.0 (netcal's convention; torchmetrics puts 1.0 in
an extra bin and so reads higher). The edge b/B is the float nearest to b/B for every B
(``np.linspace`` gives 0.30000000000000004 for 3/10, which would put a confidence of exactly
0.3 in the bin below). ECE = sum_b (n_b / N) |acc_b - conf_b|; MCE is the largest gap over
non-empty bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve

DEFAULT_BINS = 15


@dataclass(frozen=True)
class PerSample:
    """What every metric needs of a set of predictions, one entry per sample ``[N]``."""

    confidence: np.ndarray  # top-class probability, in the probabilities' own precision
    prediction: np.ndarray  # predicted class (argmax)
    p_true: np.ndarray  # probability of the true class
    sum_sq: np.ndarray  # sum over classes of p_k^2, float64

    @classmethod
    def from_probs(cls, probs: np.ndarray, labels: np.ndarray) -> PerSample:
        """Summarise ``probs [N, K]`` against ``labels [N]``; float32 probabilities stay exact."""
        probs = np.asarray(probs)
        rows = np.arange(len(probs))
        prediction = probs.argmax(axis=1)
        return cls(
            confidence=probs[rows, prediction],
            prediction=prediction.astype(np.int32),
            p_true=probs[rows, np.asarray(labels)],
            sum_sq=np.square(probs, dtype=np.float64).sum(axis=1),
        )

    def correct(self, labels: np.ndarray) -> np.ndarray:
        """1.0 where the prediction is the label, else 0.0, ``[N]``."""
        return (self.prediction == np.asarray(labels)).astype(np.float64)


def bin_edges(n_bins: int) -> np.ndarray:
    """``[B + 1]`` edges b/B, each the float nearest to the exact fraction."""
    return np.arange(n_bins + 1) / n_bins


def equal_width_bin(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index ``[N]`` of each confidence: [b/B, (b+1)/B), with 1.0 in the last bin."""
    index = np.searchsorted(bin_edges(n_bins), np.asarray(confidence, dtype=np.float64), side="right") - 1
    return np.clip(index, 0, n_bins - 1)


def _bin_sums(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin ``[B]``: sample count, sum of confidences, sum of correct."""
    confidence = np.asarray(confidence, dtype=np.float64)
    index = equal_width_bin(confidence, n_bins)
    return (
        np.bincount(index, minlength=n_bins),
        np.bincount(index, weights=confidence, minlength=n_bins),
        np.bincount(index, weights=np.asarray(correct, dtype=np.float64), minlength=n_bins),
    )


def reliability_bins_from(confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """The data of a reliability diagram: one row per bin (empty bins included).

    Columns: ``bin, lower, upper, count, confidence`` (mean in the bin, NaN if empty),
    ``accuracy`` (NaN if empty).
    """
    count, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, accuracy = conf_sum / count, correct_sum / count
    edges = bin_edges(n_bins)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "confidence": mean_conf,
            "accuracy": accuracy,
        }
    )


def _calibration_gaps(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per non-empty bin: weight n_b / N and gap |acc_b - conf_b|."""
    count, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    filled = count > 0
    count, conf_sum, correct_sum = count[filled], conf_sum[filled], correct_sum[filled]
    return count / count.sum(), np.abs(correct_sum / count - conf_sum / count)


def ece_from(confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    weight, gap = _calibration_gaps(confidence, correct, n_bins)
    return float(np.sum(weight * gap))


def mce_from(confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    _, gap = _calibration_gaps(confidence, correct, n_bins)
    return float(gap.max()) if len(gap) else 0.0


def adaptive_ece_from(confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """ECE over equal-mass bins, with ties kept together.

    Samples sorted by confidence are cut into ``n_bins`` near-equal parts (the first N mod B
    one larger, as ``np.array_split``); a cut that falls inside a run of equal confidences moves
    to the end of that run, so equal confidences always share a bin and the result does not
    depend on the order of the samples.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    n = len(confidence)
    order = np.argsort(confidence, kind="stable")
    sorted_conf, sorted_correct = confidence[order], correct[order]
    sizes = [len(part) for part in np.array_split(np.arange(n), min(n_bins, n))]
    cuts = np.cumsum(sizes)[:-1]
    cuts = np.searchsorted(sorted_conf, sorted_conf[cuts - 1], side="right")  # to the end of the tie run
    bounds = np.unique(np.concatenate([[0], cuts, [n]]))
    total = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        total += (hi - lo) * abs(sorted_correct[lo:hi].mean() - sorted_conf[lo:hi].mean())
    return float(total / n)


def smooth_ece_at(confidence: np.ndarray, correct: np.ndarray, sigma: float) -> float:
    """SmoothECE at bandwidth ``sigma`` (Blasiok and Nakkiran 2023), computed as relplot 1.0.3 does.

    The residual ``confidence - correct`` is kernel-smoothed over confidence with a Gaussian
    reflected at 0 and 1, and its absolute value averaged under the smoothed density. For speed
    at any N, each sample's weight is split linearly between the two nearest points of a grid of
    ``max(2000, 20 / sigma) / 2`` points, the grid is convolved with the kernel (by FFT), and the
    result is read on a mesh of ``max(10 / sigma, 200)`` points; the density carries relplot's
    ``1e-4`` floor, so bins without samples weigh (almost) nothing.
    """
    f = np.asarray(confidence, dtype=np.float64)
    residual = f - np.asarray(correct, dtype=np.float64)
    grid = max(2000, round(20 / sigma)) // 2 + 1
    left = np.clip((f * (grid - 1)).astype(np.int64), 0, grid - 2)
    frac = f * (grid - 1) - left
    kernel = np.exp(-0.5 * ((np.linspace(0.0, 1.0, grid) - 0.5) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)

    def smoothed(weights: np.ndarray) -> np.ndarray:
        on_grid = np.bincount(left, (1 - frac) * weights, grid) + np.bincount(left + 1, frac * weights, grid)
        mirrored = np.concatenate([on_grid[::-1][:-1], on_grid, on_grid[::-1][1:]])  # reflect at 0 and 1
        return fftconvolve(mirrored, kernel, mode="valid")[grid // 2 : grid // 2 + grid]

    mesh = np.linspace(0.0, 1.0, max(round(10 / sigma), 200))
    points = np.linspace(0.0, 1.0, grid)
    residual_sum = np.interp(mesh, points, smoothed(residual))
    density = np.interp(mesh, points, smoothed(np.ones_like(f))) + 1e-4
    return float(np.sum(np.abs(residual_sum)) / np.sum(density))


def smooth_ece_from(confidence: np.ndarray, correct: np.ndarray, tolerance: float = 1e-3) -> float:
    """SmoothECE with its own bandwidth: the fixed point ``sigma = smECE_sigma`` (found to ``2^-10``
    by bisection, as relplot 1.0.3 does), a consistent calibration measure free of bin choices.

    relplot first tries ``sigma = 1``; that never ends the search, since the smoothed residual is
    at most the smoothed density and so SmoothECE is below 1 at every bandwidth."""

    def narrow_enough(sigma: float) -> bool:
        return sigma < tolerance or sigma < smooth_ece_at(confidence, correct, sigma)

    wide, narrow = 1.0, 0.0
    for _ in range(10):
        middle = (wide + narrow) / 2
        if narrow_enough(middle):
            narrow = middle
        else:
            wide = middle
    return smooth_ece_at(confidence, correct, wide)


def debiased_l2_ce_from(confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label L2 calibration error with the binned estimate's bias removed (Kumar, Liang and Ma
    2019): equal-mass bins cut midway between neighbours; in each, the squared gap between mean
    confidence and accuracy less the accuracy's sampling variance ``a (1 - a) / (n - 1)``."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    parts = np.array_split(np.sort(confidence), min(n_bins, len(confidence)))
    edges = np.unique([*((a[-1] + b[0]) / 2 for a, b in zip(parts[:-1], parts[1:])), 1.0])
    bins = np.searchsorted(edges, confidence)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        n = members.sum()
        if n < 2:
            continue
        accuracy = correct[members].mean()
        total += n * ((confidence[members].mean() - accuracy) ** 2 - accuracy * (1 - accuracy) / (n - 1))
    return float(np.sqrt(max(total / len(confidence), 0.0)))


def brier_from(per_sample: PerSample) -> float:
    """Mean over samples of sum_k (p_k - onehot_k)^2 = sum_k p_k^2 - 2 p_true + 1."""
    return float(np.mean(per_sample.sum_sq - 2.0 * np.asarray(per_sample.p_true, dtype=np.float64) + 1.0))


def nll_from(per_sample: PerSample, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at ``eps``)."""
    return float(np.mean(-np.log(np.clip(np.asarray(per_sample.p_true, dtype=np.float64), eps, 1.0))))


def evaluate_per_sample(per_sample: PerSample, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Every scalar metric of this module, keyed as in ``rounds.csv``."""
    correct = per_sample.correct(labels)
    return {
        "test_acc": float(correct.mean()),
        "ece": ece_from(per_sample.confidence, correct, n_bins),
        "mce": mce_from(per_sample.confidence, correct, n_bins),
        "adaptive_ece": adaptive_ece_from(per_sample.confidence, correct, n_bins),
        "brier": brier_from(per_sample),
        "nll": nll_from(per_sample),
    }


# The same metrics from probabilities [N, K] and labels [N].


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    summary = PerSample.from_probs(probs, labels)
    return reliability_bins_from(summary.confidence, summary.correct(labels), n_bins)


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error, top-label, equal-width bins."""
    summary = PerSample.from_probs(probs, labels)
    return ece_from(summary.confidence, summary.correct(labels), n_bins)


def mce(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Maximum calibration error over non-empty equal-width bins."""
    summary = PerSample.from_probs(probs, labels)
    return mce_from(summary.confidence, summary.correct(labels), n_bins)


def adaptive_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """ECE over equal-mass bins (see :func:`adaptive_ece_from` for ties)."""
    summary = PerSample.from_probs(probs, labels)
    return adaptive_ece_from(summary.confidence, summary.correct(labels), n_bins)


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of sum over classes (p_k - onehot_k)^2; 0 is perfect, 2 the worst."""
    return brier_from(PerSample.from_probs(probs, labels))


def nll(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    return nll_from(PerSample.from_probs(probs, labels), eps)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(labels)))


def evaluate(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, float]:
    return evaluate_per_sample(PerSample.from_probs(probs, labels), labels, n_bins)
