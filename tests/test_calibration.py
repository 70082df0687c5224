"""Temperature scaling: netcal's temperature for the plain fit, and the noise-aware fit recovering a calibrated model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import binned_ece, equal_mass_ece, temperature_by_scipy
from scipy.special import log_softmax, softmax

from alvit.calibration import (
    CALIBRATED_METRICS,
    CALIBRATION_COLUMNS,
    HeldOut,
    calibrated_test,
    empirical_transition,
    fit_temperature,
    fit_variants,
    label_likelihood,
    oracle_transition,
    scaled_log_probs,
    transition_matrix,
)


def calibrated_model(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[N, K]`` and true labels drawn from their own softmax: a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2.0
    probs = np.exp(scaled_log_probs(logits, 1.0))
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def noisy(labels: np.ndarray, transition: np.ndarray, seed: int) -> np.ndarray:
    """Each label passed through the oracle's transition matrix."""
    rng = np.random.default_rng(seed)
    return (transition[labels].cumsum(axis=1) > rng.random((len(labels), 1))).argmax(axis=1)


@pytest.mark.parametrize("kind", ["flip", "uniform", "pairflip"])
def test_every_transition_matrix_is_a_distribution_over_the_oracles_answers(kind):
    matrix = transition_matrix(kind, 0.3, 10)
    assert matrix.shape == (10, 10) and np.allclose(matrix.sum(axis=1), 1) and (matrix >= 0).all()
    assert np.allclose(np.diag(matrix), 0.7 if kind != "uniform" else 0.73)
    assert np.array_equal(transition_matrix("none", 0.0, 10), np.eye(10))


def test_the_plain_fit_finds_netcals_temperature():
    """netcal's TemperatureScaling multiplies logits by its weight: T = 1 / weight."""
    from netcal.scaling import TemperatureScaling

    logits, labels = calibrated_model(3000, 10, seed=1)
    sharp = logits * 1.7  # an over-confident model: the fit should find T near 1.7
    probs = np.exp(scaled_log_probs(sharp, 1.0))
    netcal = TemperatureScaling()
    netcal.fit(probs, labels)
    ours = fit_temperature(np.log(probs), labels)
    assert ours == pytest.approx(1.0 / float(netcal.weights[0]), abs=1e-3)
    assert 1.5 < ours < 1.9


def test_temperature_never_changes_the_predicted_class():
    logits, _ = calibrated_model(500, 10, seed=2)
    for temperature in (0.1, 0.5, 2.0, 50.0):
        assert np.array_equal(scaled_log_probs(logits, temperature).argmax(1), logits.argmax(1))


def test_on_noisy_labels_the_plain_fit_over_softens_and_the_noise_aware_fit_recovers_t_1():
    """A perfectly calibrated model (T = 1 is right), labels flipped at rate 0.4."""
    logits, labels = calibrated_model(40_000, 10, seed=3)
    matrix = transition_matrix("flip", 0.4, 10)
    given = noisy(labels, matrix, seed=4)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.03)  # true labels: calibrated
    plain = fit_temperature(logits, given)
    aware = fit_temperature(logits, given, matrix)
    assert plain > 1.3  # the noisy likelihood wants a flatter posterior
    assert aware == pytest.approx(1.0, abs=0.05)


def test_the_noise_aware_fit_scores_the_clean_initial_labels_as_they_are():
    """A held-out split of clean initial labels and bought noisy ones: only the bought pass through C."""
    logits, labels = calibrated_model(40_000, 10, seed=5)
    matrix = transition_matrix("pairflip", 0.3, 10)
    bought = np.arange(len(labels)) >= 10_000
    given = np.where(bought, noisy(labels, matrix, seed=6), labels)
    mixed = fit_temperature(logits, given, matrix, noisy_channel=bought)
    as_if_all_noisy = fit_temperature(logits, given, matrix)
    assert mixed == pytest.approx(1.0, abs=0.05)
    assert abs(as_if_all_noisy - 1.0) > abs(mixed - 1.0)


def test_a_files_noise_model_is_the_confusion_it_holds_over_the_pool():
    true = np.array([0, 0, 0, 0, 1, 1, 2])
    given = np.array([0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(
        empirical_transition(true, given, 4),
        [[0.75, 0.25, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],  # class 3 absent: kept
    )


def test_without_a_held_out_split_every_temperature_is_missing_and_no_metric_is_invented():
    empty = HeldOut(
        index=np.zeros(0, dtype=np.int64),
        oracle_label=np.zeros(0, dtype=np.int64),
        true_label=np.zeros(0, dtype=np.int64),
        noisy_channel=np.zeros(0, dtype=bool),
        logits=np.zeros((0, 3), dtype=np.float32),
    )
    temperatures = fit_variants(empty, np.eye(3))
    assert all(np.isnan(t) for t in temperatures.values())
    columns, per_variant = calibrated_test(np.zeros((4, 3)), np.arange(4) % 3, temperatures)
    assert set(columns) == set(CALIBRATION_COLUMNS) and all(np.isnan(v) for v in columns.values())
    assert per_variant == {}


def test_each_transition_matrix_by_hand():
    r = 0.3
    np.testing.assert_allclose(
        transition_matrix("flip", r, 4),
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]],
        atol=1e-15,
    )
    np.testing.assert_allclose(
        transition_matrix("uniform", r, 4), 0.075 + 0.7 * np.eye(4), atol=1e-15
    )  # a quarter of the redrawn keep their class
    np.testing.assert_allclose(
        transition_matrix("pairflip", r, 4),
        [[0.7, 0.3, 0, 0], [0, 0.7, 0.3, 0], [0, 0, 0.7, 0.3], [0.3, 0, 0, 0.7]],
        atol=1e-15,
    )
    for kind in ("none", "flip", "uniform", "pairflip"):
        np.testing.assert_array_equal(transition_matrix(kind, 0.0, 3), np.eye(3))
    np.testing.assert_array_equal(transition_matrix("none", 0.3, 3), np.eye(3))  # no noise, whatever the rate
    with pytest.raises(
        ValueError, match="^a file's labels have no noise model by kind and rate; use empirical_transition$"
    ):
        transition_matrix("labels", 0.0, 3)


def test_a_synthetic_oracles_noise_model_is_its_kind_and_rate_and_a_files_is_its_confusion():
    true, given = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    np.testing.assert_array_equal(
        oracle_transition("pairflip", 0.2, true, given, 3), transition_matrix("pairflip", 0.2, 3)
    )
    np.testing.assert_allclose(oracle_transition("labels", 0.0, true, given, 3), [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(("scale", "seed"), [(0.3, 1), (1.0, 2), (4.0, 3)])
def test_the_plain_fit_is_scipys_maximum_likelihood_temperature(scale, seed):
    """Under- and over-confident models: T below and above 1, found as scipy's bounded search finds it."""
    logits, labels = calibrated_model(2000, 10, seed=seed)
    fitted = fit_temperature(logits * scale, labels)
    assert fitted == pytest.approx(temperature_by_scipy(logits * scale, labels), rel=3e-8)
    assert fitted == pytest.approx(scale, rel=0.15)


def test_the_temperature_stays_within_its_bounds_and_equal_logits_keep_t_1():
    logits, labels = calibrated_model(500, 5, seed=4)
    assert fit_temperature(logits * 1e4, labels) == pytest.approx(100.0, rel=1e-9)  # wants more than 100
    right = logits.argmax(1)
    assert fit_temperature(logits * 1e-4, right) == pytest.approx(0.01, rel=1e-9)  # wants less than 0.01
    assert fit_temperature(np.zeros((50, 4)), np.arange(50) % 4) == 1.0  # every temperature fits as well


@pytest.mark.parametrize(("kind", "rate"), [("flip", 0.4), ("uniform", 0.5), ("pairflip", 0.3)])
def test_the_noise_aware_fit_is_scipys_fit_of_the_forward_corrected_likelihood(kind, rate):
    logits, labels = calibrated_model(3000, 10, seed=6)
    matrix = transition_matrix(kind, rate, 10)
    given = noisy(labels, matrix, seed=7)
    bought = np.arange(3000) % 3 > 0  # a third of the labels are the clean initial set's
    through_noise = np.where(bought[:, None], matrix[:, given].T, np.eye(10)[given])
    expected = temperature_by_scipy(logits, given, through_noise)
    assert fit_temperature(logits, given, matrix, noisy_channel=bought) == pytest.approx(expected, rel=1e-5)
    everything = temperature_by_scipy(logits, given, matrix[:, given].T)
    assert fit_temperature(logits, given, matrix) == pytest.approx(everything, rel=1e-5)


def test_the_label_likelihood_of_bought_and_clean_labels_by_hand():
    matrix = transition_matrix("flip", 0.3, 3)  # 0.7 on the diagonal, 0.15 elsewhere
    likelihood = label_likelihood(np.array([2, 0]), matrix, noisy_channel=np.array([True, False]))
    np.testing.assert_allclose(likelihood, [[0.15, 0.15, 0.7], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(label_likelihood(np.array([1]), matrix), [[0.15, 0.7, 0.15]])


def test_each_variant_is_fitted_on_its_own_labels():
    """The book's headline (the noisy-label fit over-softens) rests on ts_noisy seeing the oracle's labels."""
    logits, true = calibrated_model(4000, 10, seed=8)
    matrix = transition_matrix("flip", 0.4, 10)
    bought = np.arange(4000) >= 1000
    oracle = np.where(bought, noisy(true, matrix, seed=9), true)
    held = HeldOut(
        index=np.arange(4000),
        oracle_label=oracle,
        true_label=true,
        noisy_channel=bought,
        logits=logits.astype(np.float32),
    )
    temperatures = fit_variants(held, matrix)
    assert list(temperatures) == ["ts_noisy", "ts_true", "ts_aware"]
    assert temperatures["ts_noisy"] == pytest.approx(temperature_by_scipy(held.logits, oracle), rel=1e-6)
    assert temperatures["ts_true"] == pytest.approx(temperature_by_scipy(held.logits, true), rel=1e-6)
    through_noise = np.where(bought[:, None], matrix[:, oracle].T, np.eye(10)[oracle])
    assert temperatures["ts_aware"] == pytest.approx(temperature_by_scipy(held.logits, oracle, through_noise), rel=1e-5)
    assert temperatures["ts_noisy"] > 1.2 > temperatures["ts_true"]


def test_the_calibrated_test_set_is_measured_on_float32_probabilities_after_each_temperature():
    logits, labels = calibrated_model(3000, 10, seed=10)
    columns, per_variant = calibrated_test(logits, labels, {"ts_noisy": 1.7, "ts_true": 0.6, "ts_aware": float("nan")})
    assert set(per_variant) == {"ts_noisy", "ts_true"}
    for variant, temperature in (("ts_noisy", 1.7), ("ts_true", 0.6)):
        probs = softmax(logits / temperature, axis=1).astype(np.float32)
        stored = per_variant[variant]
        np.testing.assert_array_equal(stored.confidence, probs.max(axis=1))
        np.testing.assert_array_equal(stored.p_true, probs[np.arange(3000), labels])
        np.testing.assert_allclose(stored.sum_sq, np.sum(probs.astype(np.float64) ** 2, axis=1), rtol=1e-6)
        assert stored.confidence.dtype == stored.p_true.dtype == stored.sum_sq.dtype == np.float32
        correct = (probs.argmax(1) == labels).astype(float)
        confidence, p_true = probs.max(axis=1).astype(np.float64), stored.p_true.astype(np.float64)
        assert columns[f"{variant}_temperature"] == temperature
        assert columns[f"{variant}_ece"] == pytest.approx(binned_ece(confidence, correct), abs=1e-12)
        assert columns[f"{variant}_adaptive_ece"] == pytest.approx(equal_mass_ece(confidence, correct), abs=1e-12)
        assert columns[f"{variant}_brier"] == pytest.approx(
            np.mean(stored.sum_sq.astype(np.float64) - 2 * p_true + 1), abs=1e-12
        )
        assert columns[f"{variant}_nll"] == pytest.approx(np.mean(-np.log(p_true)), abs=1e-12)
    assert all(np.isnan(columns[f"ts_aware_{name}"]) for name in ("temperature", "ece", "adaptive_ece", "brier", "nll"))
    assert list(columns) == [f"{v}_{m}" for v in ("ts_noisy", "ts_true", "ts_aware") for m in CALIBRATED_METRICS]


def test_scaled_log_probabilities_are_scipys_log_softmax_of_logits_over_t():
    logits, _ = calibrated_model(100, 7, seed=11)
    np.testing.assert_allclose(scaled_log_probs(logits, 2.5), log_softmax(logits / 2.5, axis=1), atol=1e-14)


def test_float32_logits_are_fitted_and_scaled_in_float64():
    """Held-out logits are stored as float32: the fit and the scaling are those of the same values in float64."""
    logits, labels = calibrated_model(2000, 10, seed=12)
    narrow = (logits * 2.0).astype(np.float32)
    wide = narrow.astype(np.float64)
    matrix = transition_matrix("flip", 0.3, 10)
    assert fit_temperature(narrow, labels) == fit_temperature(wide, labels)
    assert fit_temperature(narrow, labels, matrix) == fit_temperature(wide, labels, matrix)
    np.testing.assert_array_equal(scaled_log_probs(narrow, 1.3), scaled_log_probs(wide, 1.3))


def test_the_noise_aware_fit_searches_quietly_to_scipys_precision():
    import warnings

    logits, labels = calibrated_model(2000, 10, seed=13)
    matrix = transition_matrix("flip", 0.2, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an option scipy does not know is a warning
        fitted = fit_temperature(logits * 1.5, labels, matrix)
    # searched to 1e-6 in log T it lands 2e-8 from scipy's 1e-10 search here; scipy's default 1e-5 lands 5e-7 off
    assert fitted == pytest.approx(temperature_by_scipy(logits * 1.5, labels, matrix[:, labels].T), rel=1e-7)


def test_bought_flags_may_be_zeros_and_ones():
    matrix = transition_matrix("flip", 0.3, 3)
    np.testing.assert_allclose(
        label_likelihood(np.array([2, 0]), matrix, noisy_channel=[1, 0]), [[0.15, 0.15, 0.7], [1.0, 0.0, 0.0]]
    )


def test_a_class_seen_once_in_the_pool_has_its_one_answer_as_its_noise_model():
    np.testing.assert_array_equal(
        empirical_transition(np.array([0, 0, 1]), np.array([0, 1, 2]), 3), [[0.5, 0.5, 0], [0, 0, 1], [0, 0, 1]]
    )
