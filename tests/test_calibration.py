"""Temperature scaling: netcal's temperature for the plain fit, and the noise-aware fit recovering a calibrated model."""

from __future__ import annotations

import numpy as np
import pytest

from alvit.calibration import fit_temperature, scaled_log_probs, transition_matrix


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
