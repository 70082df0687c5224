"""Acquisition strategies: small, named after their method, fed predictions (never models).

Each strategy declares what it ``needs`` from the loop (``probs`` always; ``mc_probs``,
``features``, ``attention``, ``labeled_features``, ``reference_attention``), so the loop computes
only that, and returns one utility per unlabeled pool sample: **higher always means query
first**. Top-k selection with seeded tie-breaking lives in one place, :func:`top_k`; the batch
methods (``badge``, ``coreset``) choose their batch themselves. Randomness always comes in as a
``numpy.random.Generator``, never from global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from scipy.special import entr

from alvit.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where coreset and badge run, so config checks stay light
    import torch


@dataclass(frozen=True)
class PoolView:
    """What the loop predicted, for the N unlabeled pool samples (float32 arrays).

    Only the fields a strategy ``needs`` are filled; the rest are None.
    """

    probs: np.ndarray  # [N, K]
    mc_probs: np.ndarray | None = None  # [T, N, K] stochastic passes (BALD)
    features: np.ndarray | None = None  # [N, D] penultimate features
    attention: np.ndarray | None = None  # [N, H, T] last block's CLS attention (or [N, 1, D] pooled features)
    labeled_features: np.ndarray | None = None  # [L, D] features of the labeled set
    reference_attention: np.ndarray | None = None  # [M, H, T] the clean initial set's attention
    reference_labels: np.ndarray | None = None  # [M] its clean labels

    @property
    def size(self) -> int:
        return len(self.probs)


@dataclass(frozen=True)
class Selection:
    """A strategy's choice: positions into the PoolView and every candidate's utility."""

    indices: np.ndarray  # [k] unique positions in [0, N)
    utilities: np.ndarray  # [N] finite; higher = more wanted
    attention_class: np.ndarray | None = None  # [k] GCI-ViTAL: class of the nearest attention mean


def top_k(utilities: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` highest utilities; ties broken by a random order drawn from ``rng``."""
    k = min(k, len(utilities))
    tie_break = rng.random(len(utilities))
    return np.lexsort((tie_break, -np.asarray(utilities, dtype=np.float64)))[:k]


class Strategy:
    """Base class: a utility per sample, then :func:`top_k`."""

    name: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    # Whether the utilities read the predicted probabilities, so acq.calibrate's temperature can change them.
    reads_probabilities: ClassVar[bool] = True

    def utility(self, view: PoolView, rng: np.random.Generator) -> np.ndarray:
        """One finite score per pool sample, ``[N]``."""
        raise NotImplementedError

    def select(self, view: PoolView, k: int, rng: np.random.Generator) -> Selection:
        """Choose ``min(k, N)`` samples to query."""
        utilities = self.utility(view, rng)
        return Selection(indices=top_k(utilities, k, rng), utilities=utilities)


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def check_strategy_name(name: str) -> None:
    if name not in STRATEGIES:
        raise ConfigError(f"strategy {name!r} is not known; valid choices are: {', '.join(STRATEGIES)}")


def create_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (BALD's passes and dropout rate are the loop's, ``acq.*``)."""
    check_strategy_name(name)
    return STRATEGIES[name]()


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """H = -sum_k p_k log p_k over the last axis (0 log 0 = 0)."""
    return entr(np.asarray(probs, dtype=np.float64)).sum(axis=-1)


def scaled_rank(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share their average rank; one sample gets 0)."""
    from scipy.stats import rankdata  # scipy.stats takes a second to import; config checks need none of it

    if len(values) < 2:
        return np.zeros(len(values))
    return (rankdata(values, method="average") - 1.0) / (len(values) - 1.0)


@register
class Random(Strategy):
    name = "random"
    description = "uniformly random samples (the baseline)"
    reads_probabilities = False

    def utility(self, view: PoolView, rng: np.random.Generator) -> np.ndarray:
        return rng.random(view.size)


@register
class Entropy(Strategy):
    name = "entropy"
    description = "highest predictive entropy H(p) = -sum p log p"

    def utility(self, view: PoolView, rng: np.random.Generator) -> np.ndarray:
        return predictive_entropy(view.probs)


@register
class Margin(Strategy):
    name = "margin"
    description = "smallest gap between the two most likely classes: 1 - (p1 - p2)"

    def utility(self, view: PoolView, rng: np.random.Generator) -> np.ndarray:
        top2 = np.sort(np.asarray(view.probs, dtype=np.float64), axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])


@register
class LeastConfidence(Strategy):
    name = "least_confidence"
    description = "lowest top-class probability: 1 - p1"

    def utility(self, view: PoolView, rng: np.random.Generator) -> np.ndarray:
        return 1.0 - np.asarray(view.probs, dtype=np.float64).max(axis=1)


@register
class Bald(Strategy):
    """BALD: I(y; w) = H(mean_t p_t) - mean_t H(p_t) over T stochastic passes.

    timm ViTs ship with every dropout at 0, so the loop switches dropout (and drop-path, where
    the model has it) on at ``acq.mc_dropout`` for these passes only (:func:`alvit.models.mc_dropout`);
    training is unchanged. Default rate 0.1: the dropout rate transformers like the original
    ViT and BERT were trained with, so each pass stays close to the deterministic prediction
    while the passes still differ. Gal & Ghahramani's 0.5 suits small CNNs, not fine-tuned ViTs.
    """

    name = "bald"
    description = "mutual information between label and weights over T dropout passes (Houlsby 2011)"
    needs = frozenset({"probs", "mc_probs"})

    def utility(self, view: PoolView, rng: np.random.Generator) -> np.ndarray:
        mc = np.asarray(view.mc_probs, dtype=np.float64)  # [T, N, K]
        mutual_information = predictive_entropy(mc.mean(axis=0)) - predictive_entropy(mc).mean(axis=0)
        return np.maximum(mutual_information, 0.0)  # rounding can give -1e-17 when passes agree


@register
class GciVital(Strategy):
    """GCI-ViTAL, as we read its abstract (Mots'oehli & Baek 2024; no code was published).

    A(x) is the last block's CLS attention ``[H, T]``; M_c is the mean A over the clean initial
    set's samples of class c. D(x) = ||A(x) - M_c||_F for the predicted class c. Utility =
    scaled rank of H(x) + scaled rank of D(x). A predicted class absent from the initial set is
    measured against the mean over the whole initial set. Selected samples get the class of
    their nearest M_c, so the loop can flag oracle labels that disagree ("suspects").
    """

    name = "gci_vital"
    description = (
        "entropy rank + rank of CLS-attention distance to the predicted class's clean mean (label smoothing 0.1)"
    )
    needs = frozenset({"probs", "attention", "reference_attention"})

    def select(self, view: PoolView, k: int, rng: np.random.Generator) -> Selection:
        num_classes = view.probs.shape[1]
        means, present = class_mean_maps(view.reference_attention, view.reference_labels, num_classes)
        reference = np.asarray(view.reference_attention, dtype=np.float32)
        # Centres: the K class means, then the overall mean (for classes absent from the initial set).
        centres = np.vstack(
            [means.reshape(num_classes, -1), reference.reshape(len(reference), -1).mean(axis=0, keepdims=True)]
        )
        distances = distances_to_centres(np.asarray(view.attention).reshape(view.size, -1), centres)  # [N, K + 1]
        predicted = view.probs.argmax(axis=1)
        own = distances[np.arange(view.size), np.where(present[predicted], predicted, num_classes)]
        utilities = scaled_rank(predictive_entropy(view.probs)) + scaled_rank(own)
        chosen = top_k(utilities, k, rng)
        nearest = np.where(present, distances[chosen, :num_classes], np.inf).argmin(axis=1)
        return Selection(indices=chosen, utilities=utilities, attention_class=nearest)


def distances_to_centres(points: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distances ``[N, C]`` from ``points`` ``[N, F]`` to ``centres`` ``[C, F]``.

    |x - c|^2 = |x|^2 + |c|^2 - 2 x.c in float64, a chunk of rows at a time: no [N, F]
    temporary (an attention pool of 50,000 x 12 x 197 floats is 470 MB by itself).
    """
    centres = np.asarray(centres, dtype=np.float64)
    centre_sq = np.einsum("cf,cf->c", centres, centres)
    out = np.empty((len(points), len(centres)))
    for start in range(0, len(points), chunk):
        block = np.asarray(points[start : start + chunk], dtype=np.float64)
        sq = np.einsum("nf,nf->n", block, block)[:, None] + centre_sq[None, :] - 2.0 * block @ centres.T
        out[start : start + chunk] = np.sqrt(np.maximum(sq, 0.0))
    return out


def class_mean_maps(attention: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean maps ``[K, H, T]`` (zeros where absent) and which classes are present ``[K]``."""
    attention = np.asarray(attention, dtype=np.float64)
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.zeros((num_classes, *attention.shape[1:]))
    np.add.at(sums, labels, attention)
    present = counts > 0
    means = np.where(
        present.reshape(-1, *[1] * (attention.ndim - 1)),
        sums / np.maximum(counts, 1).reshape(-1, *[1] * (attention.ndim - 1)),
        0.0,
    )
    return means.astype(np.float32), present


@register
class Coreset(Strategy):
    """Greedy k-center (Sener & Savarese 2018) on penultimate features.

    Utility reported: the distance to the nearest labeled sample before selection.
    Features are centred on the mean of pool and labeled set first: distances do not change,
    but the float32 expansion |x|^2 + |c|^2 - 2 x.c then works with norms on the scale of the
    distances instead of cancelling large ones (at norms 200x the typical distance it picked
    a few percent of other points than exact greedy k-center).
    """

    name = "coreset"
    description = "greedy k-center on penultimate features: farthest from everything labeled"
    needs = frozenset({"probs", "features", "labeled_features"})
    reads_probabilities = False

    def select(self, view: PoolView, k: int, rng: np.random.Generator) -> Selection:
        import torch

        centre = np.concatenate([view.features, view.labeled_features]).mean(axis=0, dtype=np.float64)
        pool = torch.from_numpy(np.ascontiguousarray(view.features - centre, dtype=np.float32))
        labeled = torch.from_numpy(np.ascontiguousarray(view.labeled_features - centre, dtype=np.float32))
        nearest = _min_distance(pool, labeled)
        utilities = nearest.double().numpy().copy()
        sq_norm = pool.square().sum(dim=1)
        chosen = []
        for _ in range(min(k, view.size)):
            pick = int(torch.argmax(nearest))
            chosen.append(pick)
            # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one matrix-vector product, no [N, D] temporary.
            to_pick = (sq_norm + sq_norm[pick] - 2.0 * (pool @ pool[pick])).clamp_min_(0.0).sqrt_()
            nearest = torch.minimum(nearest, to_pick)
            nearest[chosen] = -1.0  # never again (rounding can leave a chosen point at 1e-3, not 0)
        return Selection(indices=np.asarray(chosen, dtype=np.int64), utilities=utilities)


def _min_distance(points: torch.Tensor, centers: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Distance ``[N]`` from each point to its nearest center, in chunks to bound memory."""
    import torch

    if len(centers) == 0:
        return torch.full((len(points),), math.inf)
    out = torch.empty(len(points))
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        best = torch.full((len(block),), math.inf)
        for c in range(0, len(centers), chunk):
            best = torch.minimum(best, torch.cdist(block, centers[c : c + chunk]).min(dim=1).values)
        out[start : start + chunk] = best
    return out


@register
class Badge(Strategy):
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

    The embedding g(x) = (p - onehot(argmax p)) (x) h(x) has K * D entries, too many to hold
    for a large pool (50,000 x 100 x 768 floats = 15 GB). It is never formed: with
    a = p - onehot and h the features, ||g(x) - g(y)||^2 = |a_x|^2 |h_x|^2 + |a_y|^2 |h_y|^2
    - 2 (a_x . a_y)(h_x . h_y), so each k-means++ step costs O(N (K + D)).
    Utility reported: |g(x)|^2, the gradient-embedding norm.
    """

    name = "badge"
    description = "k-means++ on last-layer gradient embeddings (uncertainty and diversity)"
    needs = frozenset({"probs", "features"})

    def select(self, view: PoolView, k: int, rng: np.random.Generator) -> Selection:
        import torch

        probs = torch.from_numpy(np.asarray(view.probs, dtype=np.float64))
        residual = probs.clone()
        residual[torch.arange(view.size), probs.argmax(dim=1)] -= 1.0  # a = p - onehot(yhat), [N, K]
        feats = torch.from_numpy(np.asarray(view.features, dtype=np.float64))  # [N, D]
        sq_norm = residual.square().sum(1) * feats.square().sum(1)  # |g|^2, [N]
        k = min(k, view.size)
        first = int(torch.argmax(sq_norm))
        chosen = [first]
        nearest = self._sq_distance(residual, feats, sq_norm, first)
        while len(chosen) < k:
            weights = nearest.clamp_min(0.0).numpy()
            weights[chosen] = 0.0
            total = weights.sum()
            if total <= 0:  # every remaining embedding equals a center: fill by norm, seeded ties
                remaining = sq_norm.numpy().copy()
                remaining[chosen] = -np.inf
                chosen.extend(int(i) for i in top_k(remaining, k - len(chosen), rng))
                break
            pick = int(rng.choice(view.size, p=weights / total))
            chosen.append(pick)
            nearest = torch.minimum(nearest, self._sq_distance(residual, feats, sq_norm, pick))
        return Selection(indices=np.asarray(chosen, dtype=np.int64), utilities=sq_norm.numpy())

    @staticmethod
    def _sq_distance(residual: torch.Tensor, feats: torch.Tensor, sq_norm: torch.Tensor, center: int) -> torch.Tensor:
        """||g(x) - g(center)||^2 for every x, ``[N]``, without forming g."""
        cross = (residual @ residual[center]) * (feats @ feats[center])
        return sq_norm + sq_norm[center] - 2.0 * cross
