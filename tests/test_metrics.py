"""Calibration metrics match the book's definitions (book/definitions.md) and netcal."""

import warnings

import calibration  # uncertainty-calibration: the debiased L2 error's reference
import numpy as np
import pytest
import relplot
from hypothesis import given, settings
from hypothesis import strategies as st
from netcal.metrics import ECE, MCE
from sklearn.metrics import accuracy_score, log_loss

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

    rng = np.random.default_rng(int(shift * 100))
    confidence = rng.beta(5, 2, 3000)
    correct = (rng.random(3000) < np.clip(confidence - shift, 0, 1)).astype(float)
    assert metrics.smooth_ece_from(confidence, correct) == pytest.approx(relplot.smECE(confidence, correct), abs=1e-4)


def test_debiased_l2_calibration_error_equals_uncertainty_calibrations():
    """Kumar et al.'s debiased top-label L2 error against the authors' uncertainty-calibration package."""

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


def miscalibrated(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [N, K] and labels whose top class is right with probability c + 0.3 sin(2 pi c):
    under-confident below c = 0.5 and over-confident above, so the bins' gaps differ in sign and
    no two bin counts give the same ECE."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.5, size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    top = probs.argmax(1)
    right = rng.random(n) < np.clip(probs.max(1) + 0.3 * np.sin(2 * np.pi * probs.max(1)), 0, 1)
    return probs, np.where(right, top, (top + rng.integers(1, k, n)) % k)


def binned_ece_and_mce(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[float, float]:
    """The book's definition, bin by bin: [b/B, (b+1)/B), 1.0 in the last bin."""
    ece, mce = 0.0, 0.0
    for b in range(n_bins):
        upper_ok = confidence <= 1.0 if b == n_bins - 1 else confidence < (b + 1) / n_bins
        members = (confidence >= b / n_bins) & upper_ok
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            ece += members.sum() / len(confidence) * gap
            mce = max(mce, gap)
    return ece, mce


def equal_mass_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """Adaptive ECE for confidences without ties: sorted, cut into n_bins parts of near-equal size."""
    order = np.argsort(confidence)
    parts = np.array_split(order, n_bins)
    return sum(len(p) / len(confidence) * abs(correct[p].mean() - confidence[p].mean()) for p in parts)


@pytest.mark.parametrize("n_bins", [3, 7, 10, 15, 20])
def test_every_metric_equals_its_independent_reference_at_any_bin_count(n_bins):
    """netcal's ECE and MCE, scikit-learn's accuracy and log loss, and the definitions written out above."""

    probs, labels = miscalibrated(3000, 10, seed=n_bins)
    confidence, correct = probs.max(1), (probs.argmax(1) == labels).astype(float)
    expected_ece, expected_mce = binned_ece_and_mce(confidence, correct, n_bins)
    report = metrics.evaluate(probs, labels, n_bins)
    assert report == pytest.approx(
        {
            "test_acc": accuracy_score(labels, probs.argmax(1)),
            "ece": ECE(bins=n_bins).measure(probs, labels),
            "mce": MCE(bins=n_bins).measure(probs, labels),
            "adaptive_ece": equal_mass_ece(confidence, correct, n_bins),
            "brier": np.mean(np.sum((probs - np.eye(10)[labels]) ** 2, axis=1)),
            "nll": log_loss(labels, probs, labels=range(10)),
        },
        abs=1e-12,
    )
    assert (report["ece"], report["mce"]) == pytest.approx((expected_ece, expected_mce), abs=1e-12)
    assert metrics.ece(probs, labels, n_bins) == report["ece"] and metrics.mce(probs, labels, n_bins) == report["mce"]
    assert metrics.adaptive_ece(probs, labels, n_bins) == report["adaptive_ece"]
    assert metrics.accuracy(probs, labels) == accuracy_score(labels, probs.argmax(1))
    summary = metrics.PerSample.from_probs(probs, labels)
    assert metrics.evaluate_per_sample(summary, labels, n_bins) == report


def test_the_bin_count_matters_on_data_whose_gaps_change_sign():
    probs, labels = miscalibrated(3000, 10, seed=0)
    assert len({round(metrics.ece(probs, labels, b), 6) for b in (5, 10, 15, 20)}) == 4


def test_a_reliability_diagram_by_hand():
    """Four predictions over 4 bins: the table says, bin by bin, how confident and how right they were."""
    probs = np.array([[0.30, 0.30, 0.40], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.35, 0.6, 0.05]])
    labels = np.array([0, 0, 1, 0])  # wrong, right, right, wrong
    bins = metrics.reliability_bins(probs, labels, n_bins=4)
    assert list(bins.columns) == ["bin", "lower", "upper", "count", "confidence", "accuracy"]
    assert bins["bin"].tolist() == [0, 1, 2, 3]
    assert bins["lower"].tolist() == [0.0, 0.25, 0.5, 0.75] and bins["upper"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert bins["count"].tolist() == [0, 1, 2, 1]
    np.testing.assert_allclose(bins["confidence"], [np.nan, 0.4, 0.65, 0.9], atol=1e-15)
    np.testing.assert_allclose(bins["accuracy"], [np.nan, 0.0, 0.5, 1.0], atol=1e-15)


def test_empty_bins_are_missing_quietly_and_the_top_bins_are_kept_when_empty():

    confidence = np.array([0.05, 0.12, 0.15])  # every confidence in the lowest two bins of ten
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 in an empty bin is expected, not a warning
        bins = metrics.reliability_bins_from(confidence, np.array([1.0, 0.0, 1.0]), n_bins=10)
    assert len(bins) == 10 and bins["count"].tolist() == [1, 2] + [0] * 8
    assert bins["accuracy"].iloc[:2].tolist() == [1.0, 0.5] and bins["accuracy"].iloc[2:].isna().all()
    assert metrics.ece_from(confidence, np.array([1.0, 0.0, 1.0]), n_bins=10) == pytest.approx(
        (0.95 + 2 * abs(0.5 - 0.135)) / 3
    )


def test_no_predictions_have_no_binned_error():
    nothing = np.zeros(0)
    assert metrics.ece_from(nothing, nothing) == 0.0 and metrics.mce_from(nothing, nothing) == 0.0


def test_adaptive_ece_with_more_bins_than_two_by_hand():
    confidence = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95])
    correct = np.array([0, 0, 1, 1, 1, 0, 1, 1, 1])
    # Three bins of three: |1/3 - 0.2|, |2/3 - 0.5667|, |1 - 0.8833|, each weighted 1/3.
    expected = (abs(1 / 3 - 0.2) + abs(2 / 3 - 1.7 / 3) + abs(1 - 2.65 / 3)) / 3
    assert metrics.adaptive_ece_from(confidence, correct, n_bins=3) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("confidence", "correct", "n_bins"),
    [
        ([0.3, 0.3, 0.3, 0.6, 0.9, 0.9], [1, 0, 1, 1, 0, 1], 3),  # tied edges merge: bins of 3, 1 and 2
        ([0.2, 0.4, 0.5, 0.7, 0.8, 0.85, 0.9], [0, 1, 1, 0, 1, 1, 1], 4),  # bins of 2, 2, 2 and 1
        ([0.55, 0.6, 0.65, 0.7, 0.9, 0.95], [1, 0, 1, 1, 1, 1], 3),  # bins of 2
    ],
)
def test_debiased_l2_error_on_bins_of_one_and_two_equals_uncertainty_calibrations(confidence, correct, n_bins):

    confidence, correct = np.array(confidence), np.array(correct)
    probs = np.stack([confidence, 1 - confidence], axis=1)  # the top class is 0; the label says if it was right
    expected = calibration.lower_bound_scaling_top_ce(probs, np.where(correct == 1, 0, 1), p=2, num_bins=n_bins)
    assert metrics.debiased_l2_ce_from(confidence, correct, n_bins) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("sigma", [0.003, 0.01, 0.05, 0.2, 1.0])
def test_smooth_ece_at_a_fixed_bandwidth_equals_relplots_to_rounding(sigma):

    rng = np.random.default_rng(0)
    confidence = np.concatenate([rng.beta(5, 2, 3000), [0.0, 1.0, 1.0, 1.0, 0.5]])  # the ends of [0, 1] too
    correct = (rng.random(len(confidence)) < confidence**2).astype(float)
    expected = relplot.smECE_sigma(confidence, correct, sigma)
    assert metrics.smooth_ece_at(confidence, correct, sigma) == pytest.approx(expected, abs=1e-12)
    assert metrics.smooth_ece_from(confidence, correct) == pytest.approx(relplot.smECE(confidence, correct), abs=1e-12)


def test_float32_predictions_are_measured_in_float64():
    """Run folders store float32 confidences: each metric is that of the same values in float64."""
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.full(100, 0.05), size=30_000).astype(np.float32)
    labels = rng.integers(0, 100, 30_000)
    labels[:18_000] = probs[:18_000].argmax(1)
    summary = metrics.PerSample.from_probs(probs, labels)
    assert np.issubdtype(summary.prediction.dtype, np.integer)
    np.testing.assert_array_equal(summary.sum_sq, np.sum(probs.astype(np.float64) ** 2, axis=1))
    correct = summary.correct(labels)
    wide = summary.confidence.astype(np.float64)
    for metric in (metrics.adaptive_ece_from, metrics.debiased_l2_ce_from):
        assert metric(summary.confidence, correct) == metric(wide, correct)
        assert metric(wide, correct.astype(np.float32)) == metric(wide, correct)  # 0/1 stored narrow too
    assert metrics.smooth_ece_at(summary.confidence, correct, 0.01) == metrics.smooth_ece_at(wide, correct, 0.01)
    stored = metrics.PerSample(  # as a calibrated variant's file holds it: every field float32
        summary.confidence, summary.prediction, summary.p_true, summary.sum_sq.astype(np.float32)
    )
    widened = metrics.PerSample(
        wide, summary.prediction, summary.p_true.astype(np.float64), stored.sum_sq.astype(np.float64)
    )
    assert metrics.brier_from(stored) == metrics.brier_from(widened)
    assert metrics.nll_from(stored) == metrics.nll_from(widened)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), k=st.integers(2, 12), n_bins=st.integers(1, 20))
def test_the_order_of_the_test_set_changes_no_metric(seed, n, k, n_bins):
    """Every metric is a property of the set of predictions: a permutation of the samples changes none."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.3), size=n)
    probs[rng.random(n) < 0.2] = probs[0]  # repeated predictions: ties in every binning
    labels = rng.integers(0, k, n)
    order = rng.permutation(n)
    before, after = metrics.evaluate(probs, labels, n_bins), metrics.evaluate(probs[order], labels[order], n_bins)
    assert after == pytest.approx(before, abs=1e-12)
    confidence, correct = probs.max(1), (probs.argmax(1) == labels).astype(float)
    for metric in (metrics.smooth_ece_from, metrics.debiased_l2_ce_from):
        assert metric(confidence[order], correct[order]) == pytest.approx(metric(confidence, correct), abs=1e-12)


def test_nll_clips_at_the_eps_it_is_given_and_is_never_negative():
    probs, labels = np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([1, 0])
    assert metrics.nll(probs, labels, eps=0.1) == pytest.approx((-np.log(0.1) - np.log(0.5)) / 2)
    above_one = np.nextafter(np.float32(1), np.float32(2))  # a float32 softmax can round a certainty above 1
    summary = metrics.PerSample(
        np.array([above_one]), np.array([0]), np.array([above_one]), np.array([1.0], dtype=np.float32)
    )
    assert metrics.nll_from(summary) == 0.0
