"""Calibration metrics match the book's definitions (book/definitions.md) and netcal."""

import numpy as np
import pytest

from alvit import metrics


def random_probs(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, rng.integers(0, k, size=n)


def two_class(confidences, correct):
    """Probabilities [N, 2] whose top class (0) has the given confidence; label 0 iff correct."""
    conf = np.asarray(confidences, dtype=np.float64)
    return np.stack([conf, 1 - conf], axis=1), np.where(np.asarray(correct) == 1, 0, 1)


@pytest.mark.parametrize("k", [3, 10, 100])  # netcal reads K=2 as a binary problem (P(class 1)), not top-label
@pytest.mark.parametrize("n_bins", [10, 15])
def test_ece_agrees_with_netcal_on_random_multiclass_data(k, n_bins):
    from netcal.metrics import ECE

    probs, labels = random_probs(2000, k, seed=k + n_bins)
    assert metrics.ece(probs, labels, n_bins) == pytest.approx(ECE(bins=n_bins).measure(probs, labels), abs=1e-9)


def test_study_edge_vector():
    probs, labels = two_class([0.95, 1.0], [1, 0])
    assert metrics.ece(probs, labels, n_bins=10) == pytest.approx(0.475)
    assert metrics.mce(probs, labels, n_bins=10) == pytest.approx(0.475)


def test_confidence_exactly_one_lands_in_the_last_bin():
    probs, labels = two_class([1.0, 1.0], [1, 1])
    bins = metrics.reliability_bins(probs, labels, n_bins=15)
    assert bins["count"].iloc[-1] == 2 and bins["count"].sum() == 2
    assert metrics.ece(probs, labels) == 0.0


def test_bin_edges_are_closed_below_and_open_above():
    probs, labels = two_class([0.5, 0.75], [1, 1])  # exact edges of 4 bins: [.5, .75) and [.75, 1]
    counts = metrics.reliability_bins(probs, labels, n_bins=4)["count"].to_numpy()
    assert counts.tolist() == [0, 0, 1, 1]


def test_empty_bins_are_reported_and_ignored():
    probs, labels = two_class([0.55, 0.55, 0.95], [1, 0, 1])
    bins = metrics.reliability_bins(probs, labels, n_bins=10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 1]
    assert np.isnan(bins["accuracy"].iloc[0])
    assert metrics.ece(probs, labels, n_bins=10) == pytest.approx((2 * 0.05 + 1 * 0.05) / 3)
    assert metrics.mce(probs, labels, n_bins=10) == pytest.approx(0.05)


def test_perfectly_calibrated_predictions_have_zero_ece():
    # In each bin the accuracy equals the confidence: 0.75 confident, 3 of 4 right.
    probs, labels = two_class([0.75] * 4 + [1.0] * 4, [1, 1, 1, 0, 1, 1, 1, 1])
    assert metrics.ece(probs, labels) == pytest.approx(0.0)
    assert metrics.adaptive_ece(probs, labels, n_bins=2) == pytest.approx(0.0)


def test_adaptive_ece_uses_equal_mass_bins():
    probs, labels = two_class([0.6, 0.7, 0.8, 0.9], [0, 1, 1, 1])
    # Two bins of two: |0.5 - 0.65| and |1.0 - 0.85|, each weighted 1/2.
    assert metrics.adaptive_ece(probs, labels, n_bins=2) == pytest.approx(0.15)


def test_brier_and_nll_on_known_values():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    labels = np.array([0, 0, 0])
    assert metrics.brier(probs, labels) == pytest.approx((0.0 + 0.5 + 2.0) / 3)
    assert metrics.nll(probs[:2], labels[:2]) == pytest.approx(np.log(2) / 2)
    assert np.isfinite(metrics.nll(probs, labels))  # p_true = 0 is clipped, not infinite


def test_evaluate_reports_every_metric_under_its_rounds_csv_name():
    probs, labels = random_probs(500, 10, seed=0)
    report = metrics.evaluate(probs, labels)
    assert set(report) == {"test_acc", "ece", "mce", "adaptive_ece", "brier", "nll"}
    assert report["ece"] == metrics.ece(probs, labels, 15)


@pytest.mark.parametrize("n_bins", [10, 15, 20])
def test_a_confidence_of_exactly_b_over_B_opens_bin_b_for_any_bin_count(n_bins):
    # np.linspace(0, 1, 11)[3] is 0.30000000000000004, which would put 0.3 in the bin below.
    confidence = np.arange(n_bins) / n_bins
    assert metrics.equal_width_bin(confidence, n_bins).tolist() == list(range(n_bins))
    bins = metrics.reliability_bins_from(confidence, np.ones(n_bins), n_bins)
    assert bins["count"].tolist() == [1] * n_bins
    assert bins["lower"].tolist() == [b / n_bins for b in range(n_bins)]


def test_adaptive_ece_keeps_equal_confidences_in_one_bin_whatever_their_order():
    # Six samples at 0.6 straddle the cut between two equal-mass bins of 5; half of them are right.
    confidence = np.array([0.6] * 6 + [0.9] * 4)
    correct = np.array([1, 0, 1, 0, 1, 0, 1, 1, 1, 1])
    rng = np.random.default_rng(0)
    values = set()
    for _ in range(20):
        order = rng.permutation(len(confidence))
        values.add(round(metrics.adaptive_ece_from(confidence[order], correct[order], n_bins=2), 12))
    assert len(values) == 1
    # The 0.6 run forms one bin (acc 0.5) and the 0.9 run the other (acc 1.0).
    assert values.pop() == pytest.approx((6 * 0.1 + 4 * 0.1) / 10)


def test_per_sample_summaries_give_the_same_metrics_as_the_probabilities():
    probs, labels = random_probs(800, 100, seed=3)
    summary = metrics.PerSample.from_probs(probs, labels)
    from_summary = metrics.evaluate_per_sample(summary, labels)
    for name, value in metrics.evaluate(probs, labels).items():
        assert from_summary[name] == pytest.approx(value, abs=1e-12)
    assert metrics.brier(probs, labels) == pytest.approx(np.mean(np.sum((probs - np.eye(100)[labels]) ** 2, axis=1)))


def top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.2])
def test_smooth_ece_equals_relplots(shift):
    """Blasiok and Nakkiran's SmoothECE, written from the paper, against relplot 1.0.3 (pinned)."""
    import relplot

    rng = np.random.default_rng(int(shift * 100))
    confidence = rng.beta(5, 2, 3000)
    correct = (rng.random(3000) < np.clip(confidence - shift, 0, 1)).astype(float)
    assert metrics.smooth_ece_from(confidence, correct) == pytest.approx(relplot.smECE(confidence, correct), abs=1e-4)


def test_debiased_l2_calibration_error_equals_uncertainty_calibrations():
    """Kumar et al.'s debiased top-label L2 error against the authors' uncertainty-calibration package."""
    import calibration  # uncertainty-calibration

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4000, 10)) * 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10, 4000)
    labels[:2500] = probs[:2500].argmax(axis=1)  # a model right more often than chance
    expected = calibration.get_calibration_error(probs, labels, p=2, debias=True, mode="top-label")
    assert metrics.debiased_l2_ce_from(*top_label(probs, labels)) == pytest.approx(expected, abs=1e-9)


def test_a_calibrated_model_has_near_zero_consistent_calibration_errors():
    rng = np.random.default_rng(5)
    confidence = rng.uniform(0.3, 1.0, 20_000)
    correct = (rng.random(20_000) < confidence).astype(float)
    assert metrics.smooth_ece_from(confidence, correct) < 0.02
    assert metrics.debiased_l2_ce_from(confidence, correct) < 0.01
