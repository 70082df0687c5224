"""Acquisition strategies: one shared contract for all, then each on inputs with a known answer."""

import numpy as np
import pytest
import torch  # imported once at collection: coreset and badge need it, and each mutant's run is then spared the import

from alvit.strategies import (
    STRATEGIES,
    PoolView,
    create_strategy,
    predictive_entropy,
    scaled_rank,
    top_k,
)

N, K, D, H, T = 300, 6, 16, 3, 9


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def full_view(n: int = N, seed: int = 0) -> PoolView:
    """A pool with every field any strategy may need, drawn at random."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, K))
    return PoolView(
        probs=softmax(logits).astype(np.float32),
        mc_probs=softmax(logits[None] + rng.normal(scale=1.0, size=(8, n, K))).astype(np.float32),
        features=rng.normal(size=(n, D)).astype(np.float32),
        attention=softmax(rng.normal(size=(n, H, T))).astype(np.float32),
        labeled_features=rng.normal(size=(40, D)).astype(np.float32),
        reference_attention=softmax(rng.normal(size=(60, H, T))).astype(np.float32),
        reference_labels=np.arange(60) % K,
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
class TestContract:
    """What every registered strategy promises the loop."""

    def test_utilities_are_finite_one_per_pool_sample(self, name):
        selection = create_strategy(name).select(full_view(), 25, np.random.default_rng(0))
        assert selection.utilities.shape == (N,) and np.isfinite(selection.utilities).all()

    def test_picks_are_unique_in_range_and_exactly_k(self, name):
        selection = create_strategy(name).select(full_view(), 25, np.random.default_rng(0))
        assert len(selection.indices) == 25 == len(np.unique(selection.indices))
        assert selection.indices.min() >= 0 and selection.indices.max() < N

    def test_asking_for_more_than_remains_returns_everything(self, name):
        selection = create_strategy(name).select(full_view(n=12), 50, np.random.default_rng(0))
        assert sorted(selection.indices.tolist()) == list(range(12))

    def test_same_seed_same_picks(self, name):
        picks = [create_strategy(name).select(full_view(), 25, np.random.default_rng(7)).indices for _ in range(2)]
        np.testing.assert_array_equal(*picks)

    def test_declares_a_description_and_what_it_needs(self, name):
        cls = STRATEGIES[name]
        assert cls.description and "probs" in cls.needs
        assert cls.needs <= {"probs", "mc_probs", "features", "attention", "labeled_features", "reference_attention"}


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - {"random"}))
def test_informed_strategies_pick_differently_from_random(name):
    ours = create_strategy(name).select(full_view(), 25, np.random.default_rng(0)).indices
    chance = create_strategy("random").select(full_view(), 25, np.random.default_rng(0)).indices
    assert set(ours) != set(chance)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_in_the_loop(name, tiny_config, tmp_path):
    from alvit.loop import run_experiment
    from alvit.results import RunFolder

    folder = RunFolder(run_experiment(tiny_config(f"strategy={name}", "al.rounds=1"), tmp_path, progress=False))
    rounds, queries = folder.read_rounds(), folder.read_queries()
    assert rounds["n_labeled"].tolist() == [40, 60] and len(queries["index"]) == 20
    if name == "gci_vital":  # suspects are flagged, and their precision is recorded when any are
        assert set(queries["suspect"]) <= {0, 1}
        assert rounds["n_suspect"].iloc[0] == queries["suspect"].sum()
    else:
        assert (queries["suspect"] == -1).all()


def test_strategies_disagree_with_each_other_where_they_should():
    view = full_view()
    picks = {
        name: frozenset(create_strategy(name).select(view, 25, np.random.default_rng(0)).indices) for name in STRATEGIES
    }
    assert (
        picks["entropy"] != picks["coreset"]
        and picks["entropy"] != picks["badge"]
        and picks["entropy"] != picks["bald"]
    )


def test_top_k_breaks_ties_by_the_seeded_generator():
    flat = np.zeros(100)
    a, b = top_k(flat, 5, np.random.default_rng(1)), top_k(flat, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert set(a) != set(top_k(flat, 5, np.random.default_rng(2)))
    assert top_k(np.array([0.1, 0.9, 0.5]), 2, np.random.default_rng(0)).tolist() == [1, 2]


CRAFTED = np.array(
    [
        [0.97, 0.01, 0.01, 0.01],  # confident
        [0.40, 0.30, 0.30, 0.00],  # high entropy, clear top class
        [0.50, 0.50, 0.00, 0.00],  # a coin toss between two classes
        [0.30, 0.25, 0.25, 0.20],  # flattest: highest entropy, lowest top probability
    ]
)


def pick_one(name: str, **fields) -> int:
    view = PoolView(probs=fields.pop("probs", CRAFTED), **fields)
    return int(create_strategy(name).select(view, 1, np.random.default_rng(0)).indices[0])


def test_entropy_and_least_confidence_pick_the_flattest_prediction():
    assert pick_one("entropy") == 3 and pick_one("least_confidence") == 3


def test_margin_picks_the_coin_toss():
    assert pick_one("margin") == 2


def test_entropy_is_zero_log_zero_safe():
    assert predictive_entropy(np.array([[1.0, 0.0]]))[0] == 0.0
    assert predictive_entropy(np.array([[0.5, 0.5]]))[0] == pytest.approx(np.log(2))


def test_bald_is_zero_when_passes_agree_and_prefers_disagreement():
    agree = np.repeat(CRAFTED[None], 5, axis=0)  # five identical passes
    assert np.allclose(create_strategy("bald").utility(PoolView(probs=CRAFTED, mc_probs=agree), None), 0.0)
    disagree = agree.copy()
    disagree[:, 0] = [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    # Sample 3 is the most uncertain, but its passes agree: BALD picks sample 0, whose passes don't.
    assert pick_one("bald", mc_probs=disagree) == 0


def test_coreset_picks_the_far_outlier_then_covers_the_rest():
    features = np.zeros((6, 2), dtype=np.float32)
    features[:, 0] = [0.1, 0.2, 0.3, 50.0, 5.0, 0.15]
    view = PoolView(probs=np.full((6, 2), 0.5), features=features, labeled_features=np.zeros((1, 2), dtype=np.float32))
    picks = create_strategy("coreset").select(view, 2, np.random.default_rng(0)).indices
    assert picks.tolist() == [3, 4]


def exact_greedy_k_center(pool: np.ndarray, labeled: np.ndarray, k: int) -> list[int]:
    """Greedy k-center in float64 with explicit differences: the reference coreset must match."""
    nearest = np.min(np.linalg.norm(pool[:, None] - labeled[None], axis=2), axis=1)
    chosen = []
    for _ in range(k):
        pick = int(np.argmax(np.where(np.isin(np.arange(len(pool)), chosen), -1.0, nearest)))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(pool - pool[pick], axis=1))
    return chosen


def test_coreset_matches_exact_greedy_k_center_when_features_sit_far_from_the_origin():
    # Norms about 200x the typical distance: float32 |x|^2 + |c|^2 - 2x.c alone would pick other points.
    rng = np.random.default_rng(0)
    offset = rng.normal(size=64)
    offset *= 200.0 / np.linalg.norm(offset)  # |offset| = 200, in no particular direction
    pool = (rng.normal(size=(2000, 64)) + offset).astype(np.float32)
    labeled = (rng.normal(size=(50, 64)) + offset).astype(np.float32)
    view = PoolView(probs=np.full((2000, 2), 0.5), features=pool, labeled_features=labeled)
    picks = create_strategy("coreset").select(view, 100, np.random.default_rng(0)).indices
    assert picks.tolist() == exact_greedy_k_center(pool.astype(np.float64), labeled.astype(np.float64), 100)


def test_badge_spreads_its_batch_over_distinct_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[10.0, 0, 0, 0], [0, 10.0, 0, 0], [0, 0, 10.0, 0]])
    features = np.repeat(centers, 30, axis=0) + rng.normal(scale=0.01, size=(90, 4))
    probs = np.tile([0.5, 0.3, 0.2], (90, 1))
    picks = create_strategy("badge").select(PoolView(probs=probs, features=features), 3, rng).indices
    assert sorted(p // 30 for p in picks) == [0, 1, 2]


def test_badge_distances_equal_those_of_explicit_gradient_embeddings():
    from alvit.strategies import Badge

    view = full_view(n=50)
    probs = torch.from_numpy(view.probs.astype(np.float64))
    residual = probs.clone()
    residual[torch.arange(50), probs.argmax(1)] -= 1
    feats = torch.from_numpy(view.features.astype(np.float64))
    explicit = (residual[:, :, None] * feats[:, None, :]).reshape(50, -1)  # [N, K*D]
    sq_norm = explicit.square().sum(1)
    fast = Badge._sq_distance(residual, feats, sq_norm, center=7)
    assert torch.allclose(fast, (explicit - explicit[7]).square().sum(1), atol=1e-8)


def test_gci_vital_ranks_a_divergent_attention_map_above_an_equally_uncertain_typical_one():
    typical = np.full((H, T), 1.0 / T)
    divergent = np.zeros((H, T))
    divergent[:, 0] = 1.0  # all attention on one token
    probs = np.array([[0.6, 0.4], [0.6, 0.4]])  # equally uncertain, both predicted class 0
    view = PoolView(
        probs=probs,
        attention=np.stack([typical, divergent]),
        reference_attention=np.stack([typical] * 4),
        reference_labels=np.array([0, 0, 1, 1]),
    )
    selection = create_strategy("gci_vital").select(view, 1, np.random.default_rng(0))
    assert selection.indices.tolist() == [1] and selection.utilities[1] > selection.utilities[0]


def test_gci_vital_names_the_nearest_class_mean_for_suspect_flags():
    means = np.stack([np.eye(T)[0], np.eye(T)[1]])[:, None, :].repeat(H, axis=1)  # class c attends token c
    attention = means[[1, 0]]  # sample 0 looks like class 1, sample 1 like class 0
    view = PoolView(
        probs=np.array([[0.5, 0.5], [0.5, 0.5]]),
        attention=attention,
        reference_attention=means,
        reference_labels=np.array([0, 1]),
    )
    selection = create_strategy("gci_vital").select(view, 2, np.random.default_rng(0))
    assert dict(zip(selection.indices.tolist(), selection.attention_class.tolist())) == {0: 1, 1: 0}


def test_scaled_ranks_span_zero_to_one_and_share_ties():
    assert scaled_rank(np.array([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    assert scaled_rank(np.array([1.0, 1.0])).tolist() == [0.5, 0.5]


def test_chunked_distances_equal_the_direct_ones():
    from alvit.strategies import distances_to_centres

    rng = np.random.default_rng(0)
    points, centres = rng.random((1000, 30)).astype(np.float32), rng.random((7, 30))
    direct = np.linalg.norm(points[:, None, :].astype(np.float64) - centres[None], axis=2)
    np.testing.assert_allclose(distances_to_centres(points, centres, chunk=128), direct, atol=1e-10)


def test_least_confidence_and_entropy_disagree_where_their_definitions_do():
    """A coin toss between two classes has the lowest top probability; a clear favourite among many the higher entropy."""
    probs = np.array([[0.5, 0.5, 0.0, 0.0, 0.0], [0.6, 0.1, 0.1, 0.1, 0.1], [0.9, 0.025, 0.025, 0.025, 0.025]])
    assert pick_one("least_confidence", probs=probs) == 0
    assert pick_one("entropy", probs=probs) == 1
    assert pick_one("margin", probs=probs) == 0


def shannon(p: np.ndarray) -> np.ndarray:
    """-sum p log p over the last axis, 0 log 0 = 0, of probabilities as given (not renormalised)."""
    safe = np.where(p > 0, p, 1.0)
    return -np.sum(p * np.log(safe), axis=-1)


def test_each_uncertainty_utility_is_its_formula_written_out():
    entropy = shannon
    view = full_view(n=200, seed=3)
    probs = view.probs.astype(np.float64)
    top2 = np.sort(probs, axis=1)[:, -2:]
    expected = {
        "entropy": entropy(probs),
        "least_confidence": 1 - probs.max(axis=1),
        "margin": 1 - (top2[:, 1] - top2[:, 0]),
        "bald": entropy(view.mc_probs.astype(np.float64).mean(axis=0))
        - entropy(view.mc_probs.astype(np.float64)).mean(axis=0),
    }
    for name, utilities in expected.items():
        got = create_strategy(name).utility(view, np.random.default_rng(0))
        np.testing.assert_allclose(got, utilities, rtol=0, atol=1e-12, err_msg=name)
        picks = create_strategy(name).select(view, 10, np.random.default_rng(0)).indices
        assert set(picks) == set(np.argsort(-utilities, kind="stable")[:10]), name


def test_an_unknown_strategy_is_one_sentence_naming_every_choice():
    from alvit.errors import ConfigError

    with pytest.raises(ConfigError) as unknown:
        create_strategy("uncertainty")
    assert str(unknown.value) == (
        "strategy 'uncertainty' is not known; valid choices are: random, entropy, margin, least_confidence, bald, "
        "gci_vital, coreset, badge"
    )


def test_scaled_ranks_of_one_or_no_sample_are_arrays():
    assert scaled_rank(np.array([4.0])).tolist() == [0.0] and scaled_rank(np.array([])).shape == (0,)


def test_class_mean_maps_by_hand_with_a_class_absent():
    from alvit.strategies import class_mean_maps

    attention = np.array([[[1.0, 0.0]], [[3.0, 0.0]], [[0.0, 2.0]]])  # [3 samples, 1 head, 2 tokens]
    means, present = class_mean_maps(attention, np.array([0, 0, 1]), num_classes=3)
    assert means.dtype == np.float32 and means.shape == (3, 1, 2)
    np.testing.assert_array_equal(means, [[[2.0, 0.0]], [[0.0, 2.0]], [[0.0, 0.0]]])
    assert present.tolist() == [True, True, False]


def gci_vital_by_definition(view: PoolView) -> tuple[np.ndarray, dict[int, int]]:
    """GCI-ViTAL's utilities and, for every sample, the class of its nearest clean class mean, written out:
    rank of entropy + rank of ||A(x) - M_c|| for the predicted class c (the overall mean where c is absent)."""
    from scipy.stats import rankdata

    n, k = view.probs.shape
    attention = view.attention.reshape(n, -1).astype(np.float64)
    reference = view.reference_attention.reshape(len(view.reference_labels), -1).astype(np.float64)
    means = {c: reference[view.reference_labels == c].mean(0) for c in range(k) if (view.reference_labels == c).any()}
    overall = reference.mean(0)
    predicted = view.probs.argmax(1)
    distance = np.array([np.linalg.norm(attention[i] - means.get(predicted[i], overall)) for i in range(n)])
    utilities = (rankdata(shannon(view.probs.astype(np.float64))) - 1) / (n - 1) + (rankdata(distance) - 1) / (n - 1)
    nearest = {i: min(means, key=lambda c: np.linalg.norm(attention[i] - means[c])) for i in range(n)}
    return utilities, nearest


def test_gci_vital_is_its_definition_written_out_with_classes_absent_from_the_clean_set():
    rng = np.random.default_rng(4)
    view = full_view(n=200, seed=4)
    labels = rng.choice([0, 2, 3], size=60)  # classes 1, 4 and 5 are never seen clean
    view = PoolView(
        probs=view.probs,
        attention=view.attention,
        reference_attention=view.reference_attention,
        reference_labels=labels,
    )
    expected, nearest = gci_vital_by_definition(view)
    selection = create_strategy("gci_vital").select(view, 30, np.random.default_rng(0))
    np.testing.assert_allclose(selection.utilities, expected, rtol=0, atol=1e-12)
    assert set(selection.indices) == set(np.argsort(-expected, kind="stable")[:30])
    assert selection.attention_class.tolist() == [nearest[i] for i in selection.indices]


def test_badge_utilities_are_gradient_embedding_norms_in_float64():
    view = full_view(n=100, seed=5)
    probs, features = view.probs.astype(np.float64), view.features.astype(np.float64)
    residual = probs - np.eye(K)[probs.argmax(1)]
    expected = np.sum(residual**2, axis=1) * np.sum(features**2, axis=1)
    utilities = create_strategy("badge").select(view, 10, np.random.default_rng(0)).utilities
    np.testing.assert_allclose(utilities, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["badge", "coreset"])
def test_scaling_every_feature_changes_no_pick(name):
    """Both rules compare distances only: features 2^-20 times as large (distances far below 1) pick the same."""
    view = full_view(n=150, seed=6)
    small = PoolView(
        probs=view.probs, features=view.features * 2.0**-20, labeled_features=view.labeled_features * 2.0**-20
    )
    picks = [create_strategy(name).select(v, 20, np.random.default_rng(3)).indices.tolist() for v in (view, small)]
    assert picks[0] == picks[1]


def test_coreset_at_a_tiny_scale_is_still_exact_greedy_k_center():
    rng = np.random.default_rng(7)
    pool, labeled = rng.normal(size=(300, 8)) * 1e-3, rng.normal(size=(5, 8)) * 1e-3
    view = PoolView(probs=np.full((300, 2), 0.5), features=pool, labeled_features=labeled)
    picks = create_strategy("coreset").select(view, 40, np.random.default_rng(0)).indices
    assert picks.tolist() == exact_greedy_k_center(pool, labeled, 40)


def test_badge_fills_its_batch_by_norm_when_every_embedding_left_equals_a_centre():
    """Five identical samples: after the first pick every distance is 0, so the rest come by norm, seeded."""
    view = PoolView(probs=np.tile([0.7, 0.2, 0.1], (5, 1)), features=np.ones((5, 4)))
    picks = create_strategy("badge").select(view, 3, np.random.default_rng(0)).indices.tolist()
    assert len(picks) == len(set(picks)) == 3 and picks[0] == 0 and set(picks) <= set(range(5))
    again = create_strategy("badge").select(view, 3, np.random.default_rng(0)).indices.tolist()
    assert again == picks


def test_coreset_with_nothing_labeled_starts_at_the_first_sample():
    pool = np.array([[0.0], [1.0], [10.0], [4.0]], dtype=np.float32)
    view = PoolView(probs=np.full((4, 2), 0.5), features=pool, labeled_features=np.zeros((0, 1), dtype=np.float32))
    assert create_strategy("coreset").select(view, 3, np.random.default_rng(0)).indices.tolist() == [0, 2, 3]


def test_chunked_nearest_centre_distances_equal_the_direct_ones():
    from alvit.strategies import _min_distance

    rng = np.random.default_rng(8)
    points = torch.from_numpy(rng.random((50, 3), dtype=np.float32))  # coreset's float32 features
    centres = torch.from_numpy(rng.random((20, 3), dtype=np.float32))
    direct = torch.cdist(points.double(), centres.double()).min(dim=1).values.float()
    torch.testing.assert_close(_min_distance(points, centres, chunk=8), direct)


def test_distances_to_float32_centres_close_together_are_exact():
    from alvit.strategies import distances_to_centres

    rng = np.random.default_rng(9)
    points, centres = (rng.random((40, 5)) * 0.1).astype(np.float32), (rng.random((6, 5)) * 0.1).astype(np.float32)
    direct = np.linalg.norm(points[:, None, :].astype(np.float64) - centres[None].astype(np.float64), axis=2)
    np.testing.assert_allclose(distances_to_centres(points, centres, chunk=16), direct, rtol=0, atol=1e-12)
