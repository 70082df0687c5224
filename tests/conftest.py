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


def assert_calibration_recomputes(folder, noise_kind: str, noise_rate: float, transition=None) -> None:
    """Every post-hoc calibration column of a run folder follows from its held-out split and test files.

    Per round: the held-out split lies among the labels the round trained on (the clean initial
    set's labels true, the bought ones the oracle's); refitting the three temperatures on it gives
    the recorded ones; the calibrated test predictions give the recorded metrics and keep every
    predicted class (temperature scaling never changes accuracy); SmoothECE and the debiased L2
    error follow from the raw predictions. ``transition``: the oracle's noise model where it is not
    the kind and rate's (labels from a file).
    """
    import numpy as np

    from alvit import calibration, metrics

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
        if transition is None:
            transition = calibration.transition_matrix(noise_kind, noise_rate, held.logits.shape[1])
        raw = folder.read_predictions(row.round)
        for variant, temperature in calibration.fit_variants(held, transition).items():
            assert getattr(row, f"{variant}_temperature") == temperature
            after = folder.read_calibrated(row.round, variant)
            np.testing.assert_array_equal(after.prediction, raw.prediction)
            correct = after.correct(labels)
            assert getattr(row, f"{variant}_ece") == metrics.ece_from(after.confidence, correct)
            assert getattr(row, f"{variant}_adaptive_ece") == metrics.adaptive_ece_from(after.confidence, correct)
            assert getattr(row, f"{variant}_brier") == metrics.brier_from(after)
            assert getattr(row, f"{variant}_nll") == metrics.nll_from(after)
        correct = raw.correct(labels)
        assert row.smooth_ece == metrics.smooth_ece_from(raw.confidence, correct)
        assert row.l2_ce == metrics.debiased_l2_ce_from(raw.confidence, correct)
