"""Post-hoc calibration by temperature scaling, and the noise-aware variant for labels from a noisy oracle.

Temperature scaling divides a model's logits by one number T > 0 fitted on held-out labels by
maximum likelihood: T > 1 softens the probabilities, T < 1 sharpens them, and the predicted
class never changes. Under label noise the held-out labels come from the same noisy oracle, and
the likelihood of noisy labels is highest for a flatter posterior, so T fitted on them
over-softens. The noise-aware fit corrects for that by scoring the noisy label with the
probabilities passed through the noise model, ``P(noisy = j | x) = sum_i p_i(x) C[i, j]``
(forward correction), where ``C`` is the oracle's transition matrix for the run's known noise
kind and rate (:func:`transition_matrix`). It assumes the noise is that model's: label-
independent of the image given its class, with the rate the run was given.

Everything here takes ``logits: [N, K]``; pass ``log(probs)`` where only probabilities are kept
(softmax of the log is the probabilities again).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from alvit.catalog import check_noise

LOG_T_BOUNDS = (np.log(1e-2), np.log(1e2))  # temperatures from 0.01 to 100


def transition_matrix(kind: str, rate: float, num_classes: int) -> np.ndarray:
    """``C[i, j] = P(oracle says j | true class i)`` for alvit's noise kinds, ``[K, K]``, rows summing to 1."""
    check_noise(kind, rate)
    k = num_classes
    if kind == "none" or rate == 0:
        return np.eye(k)
    if kind == "flip":  # one of the K-1 other classes, uniformly
        return (1 - rate) * np.eye(k) + rate / (k - 1) * (1 - np.eye(k))
    if kind == "uniform":  # redrawn from all K classes: a tenth of the redrawn stay right at K = 10
        return (1 - rate) * np.eye(k) + rate / k
    return (1 - rate) * np.eye(k) + rate * np.roll(np.eye(k), 1, axis=1)  # pairflip: k -> k + 1 mod K


def scaled_log_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``log softmax(logits / T)``, ``[N, K]``."""
    return log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def negative_log_likelihood(
    logits: np.ndarray, labels: np.ndarray, temperature: float, transition: np.ndarray | None = None
) -> float:
    """Mean ``-log P(label)`` under ``softmax(logits / T)``, passed through ``transition`` when given."""
    log_p = scaled_log_probs(logits, temperature)
    if transition is not None:
        with np.errstate(divide="ignore"):
            log_p = logsumexp(log_p[:, :, None] + np.log(transition)[None], axis=1)  # log (p @ C)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, transition: np.ndarray | None = None) -> float:
    """The temperature that maximises the likelihood of ``labels`` (``[N]`` ints), searched in log space.

    ``transition`` (``[K, K]``) makes it the noise-aware fit for labels from a noisy oracle.
    """
    labels = np.asarray(labels, dtype=np.int64)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t)), transition),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(np.exp(result.x))
