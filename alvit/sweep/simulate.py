"""Simulated run folders: a profile's book previewed in seconds, without training anything.

``alvit simulate PROFILE --out DIR`` writes one run folder per configuration in exactly the
format :mod:`alvit.loop` writes (``config.yaml``, ``rounds.csv``, ``queries.npz``,
``predictions/``, ``test_labels.npy``, ``env.json``), with ``"simulated": true`` in
``env.json``; every book page built from such folders says so in a banner. Tests use it to
exercise the results side at the paper's scale (two datasets, K = 100, seven models, many
seeds), and a user uses it to see a profile's book before spending GPU hours.

The effect model (all of it seeded, so the same profile always gives the same folders):

- Labels and oracle are real alvit machinery on stand-in labels: the pool's true labels are
  ``0..K-1`` repeated and shuffled once, and the noisy oracle and clean initial set are
  :func:`alvit.noise.make_oracle`'s, the loop's own, from the run's oracle and initial streams,
  so noise tables and realized noise behave as in a real run. Queries are drawn at random.
- Accuracy after round r with n labels, for a K-class dataset d:
  ``acc = 1/K + (ceiling_d - 1/K) * sigmoid(base_d + 0.6 log2(n / n_0) + model + gain(r) + e) * signal**0.4``
  where ``signal`` is how much information the labels keep (``1 - r K/(K-1)`` for flip noise,
  ``1 - r`` for uniform, ``1 - 2r`` for pairflip, floored at 0: at flip 0.9 on CIFAR-10 the
  labels carry none and accuracy is chance), ``model`` is a per-model offset in logit units
  drawn from N(0, 0.5) with the model's name as seed, ``gain(r) = 0.4 exp(-((r - 0.45) / 0.15)^2)``
  for the uncertainty strategies (entropy, GCI-ViTAL, margin, least confidence, BALD; 0 for
  the others) and ``e`` is seed noise: N(0, 0.1) per run plus N(0, 0.1) per round.
- Calibration drift: mean confidence = accuracy + 0.02 + 0.3 r (+0.05 r more for uncertainty
  strategies), so the models grow over-confident as noise rises. Each test sample gets a
  confidence (higher when it is right), a prediction (its label when right, another class
  when wrong), and a full probability vector whose other classes share the rest; the stored
  per-sample predictions and every metric in ``rounds.csv`` are computed from those vectors,
  so they agree exactly as in a real run.
- Post-hoc calibration: each round's held-out split is drawn as the loop's early stopping draws
  it (``train.val_fraction`` of the labeled set), its probabilities made like the test set's
  (as accurate, as over-confident), and scored on the labels the round trained on; the three
  temperatures are then fitted and applied by the loop's own code
  (:func:`alvit.results.record_calibration`). Its draws come from a stream of their own, so the
  other simulated numbers are those of folders simulated before calibration existed.
- Calibrated acquisition (``acq.calibrate`` other than none) has **no effect** on accuracy or
  calibration here: whether it helps is the open question the book asks, and a preview should
  not answer it. A calibrated run is its uncalibrated pair (same everything but the key) up to
  what calibrating plausibly changes: it draws the pair's run and round-0 numbers (a real pair
  trains the same round-0 model), and for a strategy that reads probabilities, from round 1 on,
  the per-round seed noise from a stream of its own, and round 0's queries are the pair's with
  each swapped for another unlabeled sample with probability :data:`CALIBRATED_SWAP` (an
  assumption, not a measurement; later rounds draw from labeled sets that have parted). Its
  ``acq_temperature`` is the round's fit, by the loop's rule.
- Labels from a file (``noise.kind: labels``) are refused: the effect model knows noise by kind
  and rate, and its pool labels are stand-ins a file's labels would not match.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import expit
from tqdm import tqdm

from alvit import __version__, calibration, metrics, paths, seeds
from alvit.catalog import (
    ASSUMED_SUSTAINED_TFLOPS,
    TRAIN_FORWARD_PASSES,
    DatasetShape,
    dataset_shape,
)
from alvit.config import ExperimentConfig, check_budget, dump_yaml
from alvit.errors import ConfigError
from alvit.inputs import InputDigests
from alvit.noise import make_oracle, realized_noise
from alvit.profile import Profile
from alvit.results import (
    QUERY_FIELDS,
    RunFolder,
    atomic_save_npy,
    atomic_write_text,
    record_calibration,
    resolved_section,
    round_record,
    with_queries,
)
from alvit.strategies import STRATEGIES

if TYPE_CHECKING:  # resolving a model imports torch, done only when a model is first met
    from alvit.models import ModelSpec

log = logging.getLogger(__name__)

CEILING = {"digits": 0.97, "cifar10": 0.985, "cifar100": 0.90}  # clean accuracy with a large budget
BASE_LOGIT = {"digits": 0.5, "cifar10": 1.0, "cifar100": -0.3}
UNCERTAINTY_STRATEGIES = frozenset({"entropy", "gci_vital", "margin", "least_confidence", "bald"})
CALIBRATED_SWAP = 0.2  # share of round 0's queries a calibrated run picks differently from its pair (assumed)


def label_signal(kind: str, rate: float, num_classes: int) -> float:
    """Share of the label information that survives the noise, in [0, 1]."""
    if kind == "flip":
        lost = rate * num_classes / (num_classes - 1)
    elif kind == "uniform":
        lost = rate
    elif kind == "pairflip":
        lost = 2 * rate
    else:
        lost = 0.0
    return max(0.0, 1.0 - lost)


def model_offset(model: str) -> float:
    """A per-model skill offset in logit units, fixed by the model's name."""
    return float(np.random.default_rng(zlib.crc32(model.encode())).normal(0.0, 0.5))


def strategy_gain(strategy: str, rate: float) -> float:
    """Logit gain of uncertainty sampling: largest at moderate noise (about 0.45)."""
    return 0.4 * float(np.exp(-(((rate - 0.45) / 0.15) ** 2))) if strategy in UNCERTAINTY_STRATEGIES else 0.0


def target_accuracy(cfg: ExperimentConfig, shape: DatasetShape, n_labeled: int, noise: float) -> float:
    """The effect model's accuracy for ``n_labeled`` labels; ``noise`` is the seed noise in logits."""
    chance = 1.0 / shape.classes
    ceiling = CEILING.get(cfg.dataset, 0.9)
    logit = (
        BASE_LOGIT.get(cfg.dataset, 1.0)
        + 0.6 * np.log2(n_labeled / cfg.al.initial)
        + model_offset(cfg.model)
        + strategy_gain(cfg.strategy, cfg.noise.rate)
        + noise
    )
    signal = label_signal(cfg.noise.kind, cfg.noise.rate, shape.classes)
    return float(chance + (ceiling - chance) * expit(logit) * signal**0.4)


def target_confidence(cfg: ExperimentConfig, accuracy: float, num_classes: int, rng: np.random.Generator) -> float:
    """Mean confidence: the accuracy plus an over-confidence that grows with noise."""
    rate = cfg.noise.rate
    excess = (
        0.02 + 0.3 * rate + (0.05 * rate if cfg.strategy in UNCERTAINTY_STRATEGIES else 0.0) + rng.normal(0.0, 0.01)
    )
    return float(np.clip(accuracy + excess, 1.0 / num_classes + 0.01, 0.995))


def simulated_probs(
    labels: np.ndarray, num_classes: int, accuracy: float, mean_confidence: float, rng: np.random.Generator
) -> np.ndarray:
    """Probabilities ``float32 [M, K]`` with about ``accuracy`` right and mean top confidence ``mean_confidence``.

    Right samples get higher confidence than wrong ones; the other classes share the rest of
    the mass at random, never reaching the top class.
    """
    m, k = len(labels), num_classes
    correct = np.zeros(m, dtype=bool)
    correct[rng.permutation(m)[: int(round(accuracy * m))]] = True
    prediction = np.where(correct, labels, (labels + rng.integers(1, k, size=m)) % k)
    spread = rng.normal(size=m) * 0.8 + np.where(correct, 1.0, -1.0) * 0.5
    floor = 1.0 / k + 1e-3
    lo, hi = -12.0, 12.0
    for _ in range(40):  # bisection on the logit shift that gives the wanted mean confidence
        mid = (lo + hi) / 2
        if np.mean(floor + (1 - floor) * expit(mid + spread)) < mean_confidence:
            lo = mid
        else:
            hi = mid
    confidence = floor + (1 - floor) * expit((lo + hi) / 2 + spread)
    others = rng.dirichlet(np.full(k - 1, 0.5), size=m)  # [M, K-1]
    rest = 1.0 - confidence
    # Mix with the uniform share where needed so no other class reaches the top class.
    top_other = others.max(axis=1)
    limit = confidence * (1 - 1e-4)
    excess = rest * top_other - limit
    mix = np.where(excess > 0, excess / np.maximum(rest * (top_other - 1.0 / (k - 1)), 1e-12), 0.0)
    others = (1 - mix)[:, None] * others + mix[:, None] / (k - 1)
    probs = np.empty((m, k))
    mask = np.ones((m, k), dtype=bool)
    mask[np.arange(m), prediction] = False
    probs[mask] = (rest[:, None] * others).ravel()
    probs[np.arange(m), prediction] = confidence
    return probs.astype(np.float32)


def as_logits(probs: np.ndarray) -> np.ndarray:
    """Logits ``[M, K]`` whose softmax is ``probs`` (floored at 1e-12, so none is minus infinity)."""
    return np.log(np.maximum(probs, 1e-12)).astype(np.float32)


def simulated_held_out(
    cfg: ExperimentConfig,
    labeled: np.ndarray,
    given: np.ndarray,
    n_initial: int,
    pool_labels: np.ndarray,
    num_classes: int,
    accuracy: float,
    confidence: float,
    rng: np.random.Generator,
) -> calibration.HeldOut:
    """The round's held-out split, as the loop's early stopping draws it, with the round's model
    (as accurate and as over-confident on it as on the test set) scored on the labels it was given."""
    n_held_out = int(round(cfg.train.val_fraction * len(labeled))) if cfg.train.patience > 0 else 0
    positions = np.sort(rng.permutation(len(labeled))[:n_held_out])
    index = labeled[positions]
    probs = simulated_probs(pool_labels[index], num_classes, accuracy, confidence, rng)
    return calibration.HeldOut(
        index=index.astype(np.int64),
        oracle_label=given[positions],
        true_label=pool_labels[index],
        noisy_channel=positions >= n_initial,
        logits=as_logits(probs),
    )


def simulate_run(
    cfg: ExperimentConfig,
    folder: RunFolder,
    shape: DatasetShape,
    test_size: int | None,
    spec: ModelSpec,
    gflops: float,
    inputs: dict[str, str],
) -> None:
    """Fill ``folder`` with a finished simulated run of ``cfg`` (model ``spec``) on a dataset of ``shape``;
    ``inputs``: the SHA-256 of the files ``cfg`` names (:mod:`alvit.inputs`), recorded as a run records them."""
    pool = min(shape.pool, cfg.data.max_pool or shape.pool)
    test = min(shape.test, cfg.data.max_test or shape.test, test_size or shape.test)
    check_budget(cfg, pool)
    k = shape.classes
    fixed = np.random.default_rng(0)  # the same stand-in pool and test labels for every run
    pool_labels = fixed.permutation(np.arange(pool) % k)
    test_labels = fixed.permutation(np.arange(test) % k)
    oracle = make_oracle(cfg, pool_labels, k)
    noisy, initial = oracle.noisy_labels, oracle.initial
    pair = dataclasses.replace(cfg, acq=dataclasses.replace(cfg.acq, calibrate="none"))  # itself, uncalibrated
    effects = np.random.default_rng([zlib.crc32(pair.run_id.encode()), cfg.seed])
    held_out_effects = np.random.default_rng([zlib.crc32(pair.run_id.encode()), cfg.seed, 1])  # a stream of its own
    # What calibrating before acquiring changes (nothing for a strategy that reads no probabilities).
    parts = cfg.acq.calibrate != "none" and STRATEGIES[cfg.strategy].reads_probabilities
    calibrated_effects = np.random.default_rng([zlib.crc32(cfg.run_id.encode()), cfg.seed, 2])
    run_noise = effects.normal(0.0, 0.1)
    transition = calibration.oracle_transition(cfg.noise.kind, cfg.noise.rate, pool_labels, noisy, k)

    folder.path.mkdir(parents=True, exist_ok=True)
    resolved = resolved_section(
        cfg,
        spec,
        "none (simulated)",
        pool,
        test,
        [str(c) for c in range(k)],
        gflops,
        realized_noise(noisy, pool_labels),
        inputs,
    )
    folder.write_json(
        folder.env,
        {
            "simulated": True,
            "simulator": "alvit.sweep.simulate",
            "alvit": __version__,
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    atomic_save_npy(folder.test_labels, test_labels)
    labeled = initial
    queries: dict[str, list[np.ndarray]] = {name: [] for name in QUERY_FIELDS}
    rows = []
    for round_ in range(cfg.al.rounds + 1):
        given = np.concatenate([pool_labels[initial], noisy[labeled[len(initial) :]]])  # the initial set is clean
        round_noise = effects.normal(0.0, 0.1)
        if parts and round_ > 0:
            round_noise = calibrated_effects.normal(0.0, 0.1)
        accuracy = target_accuracy(cfg, shape, len(labeled), run_noise + round_noise)
        confidence = target_confidence(cfg, accuracy, k, effects)
        probs = simulated_probs(test_labels, k, accuracy, confidence, effects)
        per_sample = metrics.PerSample.from_probs(probs, test_labels)
        folder.write_predictions(round_, per_sample)
        held_out = simulated_held_out(
            cfg, labeled, given, len(initial), pool_labels, k, accuracy, confidence, held_out_effects
        )
        calibrated = record_calibration(folder, round_, held_out, transition, as_logits(probs), test_labels)
        if round_ == cfg.al.rounds:
            atomic_save_npy(folder.final_probs, probs)
        epochs = int(min(cfg.train.epochs, 4 + effects.geometric(0.25)))
        unlabeled = pool - len(labeled)
        train_s = TRAIN_FORWARD_PASSES * len(labeled) * epochs * gflops / (ASSUMED_SUSTAINED_TFLOPS * 1e3)
        fit_record = (epochs, max(1, epochs - cfg.train.patience), float(effects.uniform(0.3, 2.5)), train_s)
        row = round_record(round_, per_sample, test_labels, given, pool_labels[labeled], fit_record, calibrated)
        if round_ < cfg.al.rounds:
            unlabeled_mask = np.ones(pool, dtype=bool)
            unlabeled_mask[labeled] = False
            candidates = np.flatnonzero(unlabeled_mask)
            picked = seeds.rng(cfg.seed, "strategy", round_).choice(candidates, size=cfg.al.query, replace=False)
            if parts and round_ == 0:
                picked = swapped(picked, candidates, calibrated_effects)
            fitted = {variant: calibrated[f"{variant}_temperature"] for variant in calibration.VARIANTS}
            row["acq_temperature"] = (
                calibration.acquisition_temperature(cfg.acq.calibrate, held_out, transition, fitted)[0]
                if parts
                else 1.0
            )
            wrong = noisy[picked] != pool_labels[picked]
            flags = (
                (effects.random(len(picked)) < np.where(wrong, 0.6, 0.15)).astype(np.int64)
                if cfg.strategy == "gci_vital"
                else np.full(len(picked), -1, dtype=np.int64)
            )
            answers = (
                np.full(len(picked), round_ + 1),
                picked,
                noisy[picked],
                pool_labels[picked],
                effects.random(len(picked)),
                flags,
            )
            bought = dict(zip(QUERY_FIELDS, answers, strict=True))
            for name, values in bought.items():
                queries[name].append(values)
            with_queries(row, unlabeled * gflops / (ASSUMED_SUSTAINED_TFLOPS * 1e3), bought)
            labeled = np.concatenate([labeled, picked])
        rows.append(row)
    folder.write_queries(
        {name: np.concatenate(values) if values else np.zeros(0, dtype=np.int64) for name, values in queries.items()}
    )
    atomic_write_text(folder.config, dump_yaml(cfg, resolved))
    folder.write_rounds(pd.DataFrame(rows))  # last, as in the loop: the run counts as done only now


def swapped(picked: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``picked`` with each pick replaced, with probability :data:`CALIBRATED_SWAP`, by another of
    ``candidates`` that was not picked (a calibrated run's round-0 queries from its pair's)."""
    swap = rng.random(len(picked)) < CALIBRATED_SWAP
    picked = picked.copy()
    picked[swap] = rng.choice(np.setdiff1d(candidates, picked), size=int(swap.sum()), replace=False)
    return picked


def model_of(cfg: ExperimentConfig, num_classes: int) -> tuple[ModelSpec, float]:
    """The model's spec and its forward GFLOPs per image, counted on the meta device (imports torch)."""
    from alvit.models import gflops_per_image, resolve_model

    spec = resolve_model(cfg.model, cfg.img_size)
    return spec, gflops_per_image(spec, num_classes)


def simulate_profile(
    profile: Profile, out: Path, test_size: int | None = None, progress: bool = False
) -> dict[str, list[str]]:
    """Simulate every configuration of ``profile`` into ``out``; return run ids written and kept.

    A folder that already holds a run is kept as it is (a real run is never overwritten).
    ``test_size`` larger than a dataset's test set, or an ``out`` that cannot be a folder, is
    refused before anything is written. ``progress`` draws a bar (1,260 runs take minutes).
    """
    from_files = next((cfg for cfg in profile.configs if cfg.noise.kind == "labels"), None)
    if from_files is not None:  # the effect model knows noise by kind and rate, and its pool labels are stand-ins
        raise ConfigError(
            f"alvit simulate models synthetic noise only, and profile {profile.name} has labels from a file "
            f"({from_files.run_id}); leave those out with --only noise.kind=flip (or another kind)"
        )
    shapes = {dataset: dataset_shape(dataset) for dataset in dict.fromkeys(cfg.dataset for cfg in profile.configs)}
    check_test_size(profile, shapes, test_size)
    paths.make_folder(out, "--out")
    outcome: dict[str, list[str]] = {"written": [], "kept": []}
    models: dict[tuple[str, int | None, int], tuple[ModelSpec, float]] = {}  # once per model, not per run
    digests = InputDigests()  # an image folder or weights file shared by many runs is read once
    for cfg in tqdm(
        profile.configs, desc=f"simulate {profile.name}", unit="run", disable=not progress, dynamic_ncols=True
    ):
        folder = RunFolder(out / cfg.run_id)
        if folder.config.exists() or folder.rounds.exists():
            outcome["kept"].append(cfg.run_id)
            continue
        shape = shapes[cfg.dataset]
        key = (cfg.model, cfg.img_size, shape.classes)
        if key not in models:
            models[key] = model_of(cfg, shape.classes)
        simulate_run(cfg, folder, shape, test_size, *models[key], digests.of(cfg))
        outcome["written"].append(cfg.run_id)
    return outcome


def check_test_size(profile: Profile, shapes: dict[str, DatasetShape], test_size: int | None) -> None:
    """``--test-size`` must fit every configuration's test set (a silent cut would mislead the preview)."""
    if test_size is None:
        return
    for cfg in profile.configs:
        available = min(shapes[cfg.dataset].test, cfg.data.max_test or shapes[cfg.dataset].test)
        if test_size > available:
            raise ConfigError(
                f"--test-size {test_size} is more than the {available} test samples of {cfg.dataset} "
                f"in profile {profile.name}; choose 1 to {available}"
            )
