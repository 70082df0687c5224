"""Accuracy and calibration of predicted probabilities, exactly as STUDY.md defines them.

All functions take ``probs: float [N, K]`` (rows sum to 1) and ``labels: int [N]``.

ECE is top-label with equal-width bins over [0, 1]: bin b holds confidences in
[b/B, (b+1)/B) and the last bin also holds 1.0 (netcal's convention; torchmetrics puts 1.0 in
an extra bin and so reads higher). ECE = sum_b (n_b / N) |acc_b - conf_b|; MCE is the largest
gap over non-empty bins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_BINS = 15


def _top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence ``[N]`` of the predicted class and whether it is right ``[N]`` (float)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)


def _equal_width_bin(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index ``[N]`` of each confidence: [b/B, (b+1)/B), with 1.0 in the last bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """The data of a reliability diagram: one row per bin (empty bins included).

    Columns: ``bin, lower, upper, count, confidence`` (mean in the bin, NaN if empty),
    ``accuracy`` (NaN if empty).
    """
    confidence, correct = _top_label(probs, labels)
    index = _equal_width_bin(confidence, n_bins)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {"bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:], "count": count,
         "confidence": mean_conf, "accuracy": accuracy}
    )


def _calibration_gaps(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per non-empty bin: weight n_b / N and gap |acc_b - conf_b|."""
    bins = reliability_bins(probs, labels, n_bins)
    bins = bins[bins["count"] > 0]
    weight = bins["count"].to_numpy() / bins["count"].sum()
    return weight, np.abs(bins["accuracy"].to_numpy() - bins["confidence"].to_numpy())


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error, top-label, equal-width bins."""
    weight, gap = _calibration_gaps(probs, labels, n_bins)
    return float(np.sum(weight * gap))


def mce(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Maximum calibration error over non-empty equal-width bins."""
    _, gap = _calibration_gaps(probs, labels, n_bins)
    return float(gap.max()) if len(gap) else 0.0


def adaptive_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """ECE over equal-mass bins: samples sorted by confidence, split into ``n_bins`` near-equal parts."""
    confidence, correct = _top_label(probs, labels)
    order = np.argsort(confidence, kind="stable")
    total = 0.0
    for part in np.array_split(order, min(n_bins, len(order))):
        total += len(part) * abs(correct[part].mean() - confidence[part].mean())
    return float(total / len(order))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of sum over classes (p_k - onehot_k)^2; 0 is perfect, 2 the worst."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(labels)]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def nll(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at ``eps``)."""
    probs = np.asarray(probs, dtype=np.float64)
    p_true = probs[np.arange(len(probs)), np.asarray(labels)]
    return float(np.mean(-np.log(np.clip(p_true, eps, 1.0))))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(labels)))


def evaluate(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Every scalar metric of this module, keyed as in ``rounds.csv``."""
    return {
        "test_acc": accuracy(probs, labels),
        "ece": ece(probs, labels, n_bins),
        "mce": mce(probs, labels, n_bins),
        "adaptive_ece": adaptive_ece(probs, labels, n_bins),
        "brier": brier(probs, labels),
        "nll": nll(probs, labels),
    }
