"""The noisy oracle: symmetric and pair label noise, fixed once per (seed, kind, rate).

Definitions (book/definitions.md), for a pool of N samples, K classes and rate r:

- ``flip`` (default, "symmetric"): exactly round(r * N) samples, drawn uniformly without
  replacement, get a label drawn uniformly from the K - 1 *other* classes.
- ``uniform``: exactly round(r * N) samples get a label drawn uniformly from all K classes, so
  about 1/K of them keep their true label: the effective rate is r (K - 1) / K.
- ``pairflip``: exactly round(r * N) samples get class k -> (k + 1) mod K.
- ``none``: the oracle answers the true label.
- ``labels``: the oracle answers the label a file gives for each pool sample, e.g. human labels
  (:mod:`alvit.label_files`); its rate is what the file holds.

``round`` is Python's (half to even). The oracle is computed once for the whole pool from a
random stream of its own, so every strategy that queries a sample gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from alvit import seeds
from alvit.catalog import check_noise
from alvit.errors import ConfigError
from alvit.label_files import labels_for_pool, load_labels

if TYPE_CHECKING:  # only an annotation: at run time the caller hands a config over
    from alvit.config import ExperimentConfig


def make_noisy_labels(
    labels: np.ndarray,
    num_classes: int,
    kind: str,
    rate: float,
    seed: int | np.random.SeedSequence,
) -> np.ndarray:
    """The oracle's answer for every pool sample.

    Args:
        labels: true labels, int ``[N]`` in ``[0, K)``.
        num_classes: K.
        kind: one of :data:`alvit.catalog.NOISE_KINDS` but ``labels``.
        rate: fraction r in ``[0, 1)`` of samples to corrupt.
        seed: an int or a ``SeedSequence`` (the loop passes the oracle's own stream).

    Returns:
        noisy labels, int64 ``[N]``; ``labels`` is not modified.
    """
    check_noise(kind, rate)
    if kind == "labels":
        raise ValueError("noise kind labels reads its answers from a file; make_oracle does that")
    labels = np.asarray(labels, dtype=np.int64)
    noisy = labels.copy()
    n_corrupt = int(round(rate * len(labels)))  # int even for a numpy rate
    if kind == "none" or n_corrupt == 0:
        return noisy
    if num_classes < 2:
        raise ConfigError("label noise needs at least 2 classes")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(labels), size=n_corrupt, replace=False)
    if kind == "flip":
        # An offset in 1..K-1 makes every other class equally likely and never the true one.
        offsets = rng.integers(1, num_classes, size=n_corrupt)
        noisy[chosen] = (labels[chosen] + offsets) % num_classes
    elif kind == "uniform":
        noisy[chosen] = rng.integers(0, num_classes, size=n_corrupt)
    else:  # pairflip
        noisy[chosen] = (labels[chosen] + 1) % num_classes
    return noisy


def realized_noise(oracle_labels: np.ndarray, true_labels: np.ndarray) -> float:
    """Fraction of labels that are wrong (0.0 for an empty set)."""
    if len(true_labels) == 0:
        return 0.0
    return float(np.mean(np.asarray(oracle_labels) != np.asarray(true_labels)))


@dataclass(frozen=True)
class Oracle:
    """The fixed answers of one (seed, noise kind, rate), and the clean initial set."""

    noisy_labels: np.ndarray  # [N] what the oracle answers for each pool sample
    initial: np.ndarray  # [n0] pool indices of the clean initial set, in draw order


def make_oracle(cfg: ExperimentConfig, true_labels: np.ndarray, num_classes: int) -> Oracle:
    """Noisy labels and the initial set, from streams no strategy touches.

    The loop and :mod:`alvit.sweep.simulate` both call it, so a simulated run's oracle is a real one's.
    """
    if cfg.noise.kind == "labels":
        noisy = labels_for_pool(
            load_labels(cfg.noise.labels, cfg.noise.labels_key), len(true_labels), cfg.data.max_pool, cfg.noise.labels
        )
        if noisy.min(initial=0) < 0 or noisy.max(initial=0) >= num_classes:
            raise ConfigError(
                f"noise.labels file {cfg.noise.labels} holds labels outside 0..{num_classes - 1}, "
                f"the classes of {cfg.dataset}; give labels of this dataset"
            )
    else:
        noisy = make_noisy_labels(
            true_labels, num_classes, cfg.noise.kind, cfg.noise.rate, seeds.stream(cfg.seed, "oracle")
        )
    initial = seeds.rng(cfg.seed, "initial").choice(len(true_labels), size=cfg.al.initial, replace=False)
    return Oracle(noisy_labels=noisy, initial=initial)
