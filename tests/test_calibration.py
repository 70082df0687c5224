"""Temperature scaling: netcal's temperature for the plain fit, and the noise-aware fit recovering a calibrated model."""

from __future__ import annotations

import numpy as np
import pytest

from alvit.calibration import (
    CALIBRATION_COLUMNS,
    HeldOut,
    calibrated_test,
    empirical_transition,
    fit_temperature,
    fit_variants,
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
