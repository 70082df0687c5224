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

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from alvit.catalog import check_noise
from alvit.metrics import PerSample, adaptive_ece_from, brier_from, ece_from, nll_from

LOG_T_BOUNDS = (np.log(1e-2), np.log(1e2))  # temperatures from 0.01 to 100


def transition_matrix(kind: str, rate: float, num_classes: int) -> np.ndarray:
    """``C[i, j] = P(oracle says j | true class i)`` for alvit's noise kinds, ``[K, K]``, rows summing to 1."""
    check_noise(kind, rate)
    if kind == "labels":
        raise ValueError("a file's labels have no noise model by kind and rate; use empirical_transition")
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


def label_likelihood(labels: np.ndarray, transition: np.ndarray, noisy_channel: np.ndarray | None = None) -> np.ndarray:
    """``L[n, i] = P(label n | true class i)``, ``[N, K]``: ``C[i, label]`` for a label bought from the
    noisy oracle, ``1[i = label]`` for one that is clean (``noisy_channel`` False; default: all noisy)."""
    labels = np.asarray(labels, dtype=np.int64)
    likelihood = transition[:, labels].T
    if noisy_channel is not None:
        clean = ~np.asarray(noisy_channel, dtype=bool)
        likelihood[clean] = np.eye(transition.shape[0])[labels[clean]]
    return likelihood


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    transition: np.ndarray | None = None,
    noisy_channel: np.ndarray | None = None,
) -> float:
    """The temperature in [0.01, 100] that maximises the likelihood of ``labels`` (``[N]`` ints).

    ``transition`` (``[K, K]``) makes it the noise-aware fit for labels from a noisy oracle;
    ``noisy_channel`` (``[N]`` bool) says which labels came through it (default: all). The plain
    fit is convex in ``beta = 1 / T`` and solved by Newton's method; the noise-aware likelihood
    need not be, and is searched in log space by bounded Brent. Both work on the logits less each
    row's largest (``d <= 0``), so every exponential is at most 1 and nothing overflows.
    """
    labels = np.asarray(labels, dtype=np.int64)
    z = np.asarray(logits, dtype=np.float64)
    d = z - z.max(axis=1, keepdims=True)
    if transition is None:
        return _plain_fit(d, labels)
    likelihood = label_likelihood(labels, transition, noisy_channel)

    def objective(log_t: float) -> float:  # -mean log(sum_i p_i L_i), p = softmax(d / T)
        e = np.exp(d / np.exp(log_t))
        return float(-np.mean(np.log(np.maximum((e * likelihood).sum(axis=1), 1e-300)) - np.log(e.sum(axis=1))))

    result = minimize_scalar(objective, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def _plain_fit(d: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling's maximum likelihood by Newton's method on ``beta = 1 / T``.

    With ``d`` the logits less each row's largest, ``NLL(beta) = mean(log sum exp(beta d) - beta d_y)``
    has gradient ``mean(E_p[d] - d_y)`` and curvature ``mean(Var_p[d]) >= 0`` under
    ``p = softmax(beta d)``; a step that does not lower the NLL is halved, and ``beta`` stays in
    ``[0.01, 100]``.
    """
    d_label = d[np.arange(len(labels)), labels]
    low, high = 1 / np.exp(LOG_T_BOUNDS[1]), 1 / np.exp(LOG_T_BOUNDS[0])

    def nll(beta: float) -> float:
        return float(np.mean(np.log(np.exp(beta * d).sum(axis=1)) - beta * d_label))

    beta, current = 1.0, nll(1.0)
    for _ in range(100):
        e = np.exp(beta * d)
        p = e / e.sum(axis=1, keepdims=True)
        expected = (p * d).sum(axis=1)
        gradient = float(np.mean(expected - d_label))
        curvature = float(np.mean((p * d * d).sum(axis=1) - expected**2))
        if curvature <= 0:  # every sample's logits equal: any temperature fits as well
            break
        proposal = float(np.clip(beta - gradient / curvature, low, high))
        value = nll(proposal)
        while value > current and abs(proposal - beta) > 1e-12 * beta:
            proposal = (proposal + beta) / 2
            value = nll(proposal)
        if abs(proposal - beta) <= 1e-10 * beta:
            break
        beta, current = proposal, value
    return float(1 / beta)


def empirical_transition(true_labels: np.ndarray, oracle_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]``: the share of pool samples of true class ``i`` the oracle labels ``j``, ``[K, K]``.

    The noise model of an oracle given as a file of labels (human noise), measured on the whole
    pool; a class absent from the pool keeps its label (an identity row).
    """
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (np.asarray(true_labels), np.asarray(oracle_labels)), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1.0), np.eye(num_classes))


@dataclass(frozen=True)
class HeldOut:
    """One round's held-out split: the labeled samples kept out of training for early stopping."""

    index: np.ndarray  # [n] pool indices
    oracle_label: np.ndarray  # [n] the labels the model was scored on (the clean initial set's are true)
    true_label: np.ndarray  # [n]
    noisy_channel: np.ndarray  # [n] bool: the label was bought from the noisy oracle (not the initial set)
    logits: np.ndarray  # [n, K] float32, the round's model


# Temperature scaling fitted three ways on the held-out split; the keys prefix rounds.csv's columns.
VARIANTS = {
    "ts_noisy": "fitted on the oracle's (noisy) held-out labels: what a practitioner can do",
    "ts_true": "fitted on the true held-out labels: an oracle bound, not available in practice",
    "ts_aware": "fitted on the noisy labels through the noise model (forward correction): noise-aware",
}
CALIBRATED_METRICS = ("temperature", "ece", "adaptive_ece", "brier", "nll")


def fit_variants(held_out: HeldOut, transition: np.ndarray) -> dict[str, float]:
    """The temperature of each of :data:`VARIANTS` (NaN for every one when nothing was held out).

    The noise-aware fit scores only the bought labels through ``transition`` (``[K, K]``); the
    initial set's labels are clean and are scored as they are.
    """
    if len(held_out.index) == 0:
        return dict.fromkeys(VARIANTS, float("nan"))
    return {
        "ts_noisy": fit_temperature(held_out.logits, held_out.oracle_label),
        "ts_true": fit_temperature(held_out.logits, held_out.true_label),
        "ts_aware": fit_temperature(held_out.logits, held_out.oracle_label, transition, held_out.noisy_channel),
    }


# acq.calibrate's values other than none, and the fit of VARIANTS each scales acquisition by.
ACQUISITION_FITS = {"noisy": "ts_noisy", "aware": "ts_aware", "true": "ts_true"}


def acquisition_temperature(
    calibrate: str, held_out: HeldOut, transition: np.ndarray, fitted: dict[str, float]
) -> tuple[float, str | None]:
    """The temperature a round's strategy divides the pool's logits by, and why it is 1 where the fit is unusable.

    ``calibrate``: ``acq.calibrate``; ``held_out`` and ``transition`` (``[K, K]``): what the round's
    temperatures ``fitted`` (:func:`fit_variants`) were fitted on. ``none`` is 1 (the model's own
    probabilities). Otherwise it is the fit of :data:`ACQUISITION_FITS`, unless the split gave none
    (it was empty) or the fit's likelihood has no maximum inside the search's [0.01, 100]: a split whose
    labels are all predicted right is fitted best by T -> 0 and one all predicted far off by T -> 100,
    and scaling by either would push every probability to 0 or 1, or all to 1/K, rather than calibrate
    it. Then it is 1, and the second item says why in a sentence (None otherwise).
    """
    if calibrate == "none":
        return 1.0, None
    variant = ACQUISITION_FITS[calibrate]
    temperature = float(fitted[variant])
    if len(held_out.index) == 0 or not np.isfinite(temperature):
        return 1.0, (
            f"the held-out split is empty, so there is no {variant} temperature to acquire with "
            f"(acq.calibrate {calibrate}); this round ranks the pool with T = 1"
        )
    edges = min(held_out_nll(held_out, variant, transition, np.exp(bound)) for bound in LOG_T_BOUNDS)
    if not held_out_nll(held_out, variant, transition, temperature) < edges - 1e-9:
        return 1.0, (
            f"the {variant} likelihood of the {len(held_out.index)} held-out labels has no maximum inside "
            f"[0.01, 100] (they are too few, or all predicted right or all far off), so its temperature "
            f"{temperature:.3g} is no calibration; this round ranks the pool with T = 1 (acq.calibrate {calibrate})"
        )
    return temperature, None


def held_out_nll(held_out: HeldOut, variant: str, transition: np.ndarray, temperature: float) -> float:
    """The mean negative log-likelihood that ``variant`` of :data:`VARIANTS` minimises over T, at ``temperature``:
    of the oracle's labels (``ts_noisy``), of the true labels (``ts_true``), or of the oracle's labels
    through ``transition`` (``ts_aware``, the bought ones only)."""
    log_p = scaled_log_probs(held_out.logits, temperature)
    if variant == "ts_aware":
        with np.errstate(divide="ignore"):
            log_likelihood = np.log(label_likelihood(held_out.oracle_label, transition, held_out.noisy_channel))
        return float(-np.mean(logsumexp(log_p + log_likelihood, axis=1)))
    labels = held_out.true_label if variant == "ts_true" else held_out.oracle_label
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def oracle_transition(
    kind: str, rate: float, true_labels: np.ndarray, oracle_labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """The noise model the noise-aware fit assumes, ``[K, K]``: the known kind and rate of a synthetic
    oracle, or, for labels from a file (``labels``), the confusion measured on the whole pool."""
    if kind == "labels":
        return empirical_transition(true_labels, oracle_labels, num_classes)
    return transition_matrix(kind, rate, num_classes)


def calibrated_test(
    test_logits: np.ndarray, test_labels: np.ndarray, temperatures: dict[str, float]
) -> tuple[dict[str, float], dict[str, PerSample]]:
    """The test set after each fitted temperature: ``rounds.csv``'s columns (``<variant>_<metric>``
    for :data:`CALIBRATED_METRICS`) and each variant's per-sample predictions (NaN and none for a
    variant without a temperature). ``test_logits``: ``[M, K]``; accuracy is untouched by design."""
    columns, per_variant = {}, {}
    for variant, temperature in temperatures.items():
        if not np.isfinite(temperature):
            columns.update({f"{variant}_{name}": float("nan") for name in CALIBRATED_METRICS})
            continue
        # Stored as float32 (12 bytes a sample), and measured as stored, so the file recomputes the row.
        exact = PerSample.from_probs(np.exp(scaled_log_probs(test_logits, temperature)).astype(np.float32), test_labels)
        per_sample = dataclasses.replace(exact, sum_sq=exact.sum_sq.astype(np.float32))
        correct = per_sample.correct(test_labels)
        columns.update(
            {
                f"{variant}_temperature": temperature,
                f"{variant}_ece": ece_from(per_sample.confidence, correct),
                f"{variant}_adaptive_ece": adaptive_ece_from(per_sample.confidence, correct),
                f"{variant}_brier": brier_from(per_sample),
                f"{variant}_nll": nll_from(per_sample),
            }
        )
        per_variant[variant] = per_sample
    return columns, per_variant


CALIBRATION_COLUMNS = [f"{variant}_{name}" for variant in VARIANTS for name in CALIBRATED_METRICS]
