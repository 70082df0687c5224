"""Shared fixtures: a tiny, fast experiment configuration and the optional CIFAR-10 JPEGs."""

from __future__ import annotations

import collections
import os
import tarfile
from pathlib import Path

import pytest

from alvit.config import load_config

REPO = Path(__file__).resolve().parent.parent
# Worker processes, kernels and SLURM jobs the tests start import this checkout's alvit too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

# A run that takes a few seconds on a CPU: digits, the smallest preset, 3 rounds.
TINY = [
    "dataset=digits",
    "model=vit_nano_p4",
    "noise.rate=0.3",
    "al.initial=40",
    "al.query=20",
    "al.rounds=2",
    "train.epochs=3",
    "train.lr=0.003",
    "train.batch_size=32",
    "train.patience=2",
]


@pytest.fixture
def tiny_config():
    """``tiny_config(strategy=..., **dotted overrides)`` -> a validated ExperimentConfig."""

    def make(*extra: str):
        return load_config(None, [*TINY, *extra])

    return make


@pytest.fixture(scope="session")
def cifar10_jpeg_root(tmp_path_factory) -> Path:
    """Real CIFAR-10 JPEGs from ../shared/data: the first 100 of each class and split, extracted once.

    Writing all 60,000 files took 20 s; the loader reads every file of the folders it is given,
    so a slice of real images tests the same code.
    """
    if not SHARED_CIFAR.exists():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {SHARED_CIFAR} (../shared is absent on this machine)")
    root = tmp_path_factory.mktemp("cifar")
    per_folder: collections.Counter = collections.Counter()
    with tarfile.open(SHARED_CIFAR) as archive:
        for member in archive:
            folder = member.name.rsplit("/", 1)[0]
            if member.isfile() and per_folder[folder] < 100:
                per_folder[folder] += 1
                archive.extract(member, root, filter="data")
    return root / "cifar10"


def oracle_by_definition(true_labels, num_classes: int, kind: str, rate: float, seed):
    """The book's noisy oracle written out with numpy alone (book/definitions.md): from a generator
    seeded with ``seed`` (an int, or the experiment's oracle stream ``SeedSequence(s, spawn_key=(0, 0))``),
    round(r * N) pool samples drawn uniformly without replacement; ``flip`` gives each one of the
    K - 1 other classes uniformly, ``uniform`` one of all K, ``pairflip`` the next class mod K."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.asarray(true_labels, dtype=np.int64)
    n_corrupt = round(rate * len(labels))
    noisy = labels.copy()
    if n_corrupt == 0 or kind == "none":
        return noisy
    chosen = rng.choice(len(labels), size=n_corrupt, replace=False)
    if kind == "flip":
        noisy[chosen] = (labels[chosen] + rng.integers(1, num_classes, size=n_corrupt)) % num_classes
    elif kind == "uniform":
        noisy[chosen] = rng.integers(0, num_classes, size=n_corrupt)
    else:
        assert kind == "pairflip"
        noisy[chosen] = (labels[chosen] + 1) % num_classes
    return noisy


def oracle_stream(seed: int):
    """The experiment's oracle stream: spawn key (0, 0) of its seed, as ``SeedSequence(seed).spawn`` gives it."""
    import numpy as np

    return np.random.SeedSequence(seed, spawn_key=(0, 0))


def initial_set_by_definition(pool_size: int, size: int, seed: int):
    """The clean initial set: ``size`` pool indices drawn without replacement from the stream of spawn key (1, 0)."""
    import numpy as np

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, 0)))
    return rng.choice(pool_size, size=size, replace=False)


def flip_matrix(rate: float, num_classes: int):
    """``P(oracle says j | class i)`` of symmetric noise: 1 - r on the diagonal, r / (K - 1) elsewhere."""
    import numpy as np

    off = np.full((num_classes, num_classes), rate / (num_classes - 1))
    np.fill_diagonal(off, 1 - rate)
    return off


def temperature_by_scipy(logits, labels, likelihood=None) -> float:
    """The temperature in [0.01, 100] maximising the likelihood of ``labels`` under softmax(logits / T),
    by scipy's bounded search on log T. ``likelihood`` ``[N, K]``: P(label | class), which scores the
    label through a noise model (the forward correction); None scores it as the class itself."""
    import numpy as np
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax, logsumexp

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if likelihood is None:
        likelihood = np.eye(logits.shape[1])[labels]

    def negative_log_likelihood(log_t: float) -> float:
        log_p = log_softmax(logits / np.exp(log_t), axis=1)
        with np.errstate(divide="ignore"):
            return -float(np.mean(logsumexp(log_p + np.log(likelihood), axis=1)))

    result = minimize_scalar(
        negative_log_likelihood, bounds=(np.log(0.01), np.log(100)), method="bounded", options={"xatol": 1e-10}
    )
    return float(np.exp(result.x))


def binned_ece(confidence, correct, n_bins: int = 15) -> float:
    """ECE by the book's definition: bins [b/B, (b+1)/B), 1.0 in the last, weighted by their share."""
    import numpy as np

    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    total = 0.0
    for b in range(n_bins):
        high = confidence <= 1.0 if b == n_bins - 1 else confidence < (b + 1) / n_bins
        members = (confidence >= b / n_bins) & high
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return total / len(confidence)


def equal_mass_ece(confidence, correct, n_bins: int = 15) -> float:
    """Adaptive ECE by the book's definition: sorted confidences cut into n_bins near-equal parts
    (the first N mod B one larger), each cut moved past any run of equal confidences."""
    import numpy as np

    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    order = np.argsort(confidence, kind="stable")
    conf, right = confidence[order], correct[order]
    n, parts = len(conf), min(n_bins, len(conf))
    cuts, end = [], 0
    for part in range(parts - 1):
        end += n // parts + (1 if part < n % parts else 0)
        cut = end
        while cut < n and conf[cut] == conf[cut - 1]:
            cut += 1
        cuts.append(cut)
    bounds = sorted({0, *cuts, n})
    return sum((hi - lo) * abs(right[lo:hi].mean() - conf[lo:hi].mean()) for lo, hi in zip(bounds, bounds[1:])) / n


def assert_calibration_recomputes(folder, noise_kind: str, noise_rate: float, transition=None) -> None:
    """Every post-hoc calibration column of a run folder agrees with references written here and in
    scipy, relplot and uncertainty-calibration, from its held-out split and test files.

    Per round: the held-out split lies among the labels the round trained on (the clean initial
    set's labels true, the bought ones the oracle's); scipy's fit of the temperature on the oracle's
    labels, on the true labels, and on the oracle's labels through the noise model (the bought ones
    only) gives the recorded ``ts_noisy``, ``ts_true`` and ``ts_aware``; the calibrated test
    predictions keep every predicted class and give the recorded metrics; SmoothECE and the
    debiased L2 error are relplot's and uncertainty-calibration's. In the last round, whose full
    probabilities are kept, each temperature applied to them gives the stored calibrated
    confidences. ``transition``: the oracle's noise model where it is not flip noise of
    ``noise_rate`` (labels from a file).
    """
    import calibration as uncertainty_calibration  # uncertainty-calibration
    import numpy as np
    import pytest
    import relplot
    from scipy.special import softmax

    assert noise_kind in ("flip", "labels"), "the references here know flip noise and a file's confusion"
    rounds, labels, queries = folder.read_rounds(), folder.read_test_labels(), folder.read_queries()
    bought = dict(zip(queries["index"].tolist(), queries["oracle_label"].tolist(), strict=True))
    first_round = dict(zip(queries["index"].tolist(), queries["round"].tolist(), strict=True))
    for row in rounds.itertuples():
        held = folder.read_held_out(row.round)
        assert len(held.index) > 0 and held.logits.shape[0] == len(held.index)
        noisy = held.noisy_channel
        assert all(bought[i] == label for i, label in zip(held.index[noisy], held.oracle_label[noisy], strict=True))
        assert all(first_round[i] <= row.round for i in held.index[noisy])
        np.testing.assert_array_equal(held.oracle_label[~noisy], held.true_label[~noisy])
        num_classes = held.logits.shape[1]
        model = transition if transition is not None else flip_matrix(noise_rate, num_classes)
        through_noise = np.where(noisy[:, None], model[:, held.oracle_label].T, np.eye(num_classes)[held.oracle_label])
        expected = {
            "ts_noisy": temperature_by_scipy(held.logits, held.oracle_label),
            "ts_true": temperature_by_scipy(held.logits, held.true_label),
            "ts_aware": temperature_by_scipy(held.logits, held.oracle_label, through_noise),
        }
        raw = folder.read_predictions(row.round)
        for variant, temperature in expected.items():
            assert getattr(row, f"{variant}_temperature") == pytest.approx(temperature, rel=1e-5)
            after = folder.read_calibrated(row.round, variant)
            np.testing.assert_array_equal(after.prediction, raw.prediction)
            correct = (after.prediction == labels).astype(float)
            assert getattr(row, f"{variant}_ece") == pytest.approx(binned_ece(after.confidence, correct), abs=1e-12)
            assert getattr(row, f"{variant}_adaptive_ece") == pytest.approx(
                equal_mass_ece(after.confidence, correct), abs=1e-12
            )
            p_true = after.p_true.astype(np.float64)
            assert getattr(row, f"{variant}_brier") == pytest.approx(
                np.mean(after.sum_sq.astype(np.float64) - 2 * p_true + 1), abs=1e-12
            )
            assert getattr(row, f"{variant}_nll") == pytest.approx(
                np.mean(-np.log(np.maximum(p_true, 1e-12))), abs=1e-12
            )
            if row.round == rounds["round"].max() and folder.final_probs.exists():
                final = np.load(folder.final_probs).astype(np.float64)
                scaled = softmax(np.log(np.maximum(final, 1e-30)) / getattr(row, f"{variant}_temperature"), axis=1)
                np.testing.assert_allclose(after.confidence, scaled.max(axis=1), atol=1e-5)
        correct = (raw.prediction == labels).astype(float)
        confidence = raw.confidence.astype(np.float64)
        assert row.smooth_ece == pytest.approx(relplot.smECE(confidence, correct), abs=1e-9)
        l2 = uncertainty_calibration.lower_bound_scaling_ce(confidence, correct.astype(int), p=2, num_bins=15)
        assert row.l2_ce == pytest.approx(l2, abs=1e-9)
