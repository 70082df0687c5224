"""The noisy oracle follows the book's definitions (book/definitions.md) exactly."""

import numpy as np
import pytest
from conftest import initial_set_by_definition, oracle_by_definition, oracle_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare, kstest

from alvit.errors import ConfigError
from alvit.loop import make_oracle
from alvit.noise import make_noisy_labels, realized_noise

K = 10
LABELS = np.repeat(np.arange(K), 1000)  # 10,000 balanced labels


@pytest.mark.parametrize("kind", ["flip", "uniform", "pairflip"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.35, 0.9])
def test_exactly_round_r_times_n_samples_are_resampled(kind, rate):
    noisy = make_noisy_labels(LABELS, K, kind, rate, seed=1)
    changed = np.sum(noisy != LABELS)
    expected = round(rate * len(LABELS))
    if kind == "uniform":  # a redrawn label keeps the true class with probability 1/K
        assert changed <= expected and abs(changed - expected * (K - 1) / K) < 4 * np.sqrt(expected * 0.09 + 1)
    else:
        assert changed == expected


def test_flip_never_returns_the_true_label_for_a_corrupted_sample():
    noisy = make_noisy_labels(LABELS, K, "flip", 0.9, seed=3)
    assert np.sum(noisy != LABELS) == 9000


def test_flip_spreads_wrong_labels_evenly_over_the_other_classes():
    labels = np.zeros(90_000, dtype=np.int64)  # every true label is class 0
    noisy = make_noisy_labels(labels, K, "flip", 0.5, seed=4)
    wrong = noisy[noisy != 0]
    counts = np.bincount(wrong, minlength=K)[1:]
    assert chisquare(counts).pvalue > 0.001


def test_pairflip_moves_class_k_to_k_plus_one_mod_k():
    noisy = make_noisy_labels(LABELS, K, "pairflip", 0.4, seed=5)
    moved = noisy != LABELS
    assert np.array_equal(noisy[moved], (LABELS[moved] + 1) % K)


def test_none_returns_the_true_labels_and_inputs_are_not_modified():
    labels = LABELS.copy()
    assert np.array_equal(make_noisy_labels(labels, K, "none", 0.5, seed=0), LABELS)
    make_noisy_labels(labels, K, "flip", 0.5, seed=0)
    assert np.array_equal(labels, LABELS)


def test_same_seed_same_labels_and_another_seed_other_labels():
    a = make_noisy_labels(LABELS, K, "flip", 0.3, seed=7)
    assert np.array_equal(a, make_noisy_labels(LABELS, K, "flip", 0.3, seed=7))
    assert not np.array_equal(a, make_noisy_labels(LABELS, K, "flip", 0.3, seed=8))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_outside_zero_one_is_refused_with_a_sentence(rate):
    with pytest.raises(ConfigError, match=r"outside \[0, 1\)"):
        make_noisy_labels(LABELS, K, "flip", rate, seed=0)


def test_unknown_kind_names_the_valid_choices():
    with pytest.raises(ConfigError, match="none, flip, uniform, pairflip"):
        make_noisy_labels(LABELS, K, "asymmetric", 0.2, seed=0)


def test_oracle_and_initial_set_do_not_depend_on_the_strategy(tiny_config):
    oracles = [make_oracle(tiny_config(f"strategy={s}"), LABELS, K) for s in ("random", "entropy", "gci_vital")]
    for other in oracles[1:]:
        assert np.array_equal(oracles[0].noisy_labels, other.noisy_labels)
        assert np.array_equal(oracles[0].initial, other.initial)


def test_realized_noise_is_the_fraction_of_wrong_labels():
    assert realized_noise(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0])) == 0.5
    assert realized_noise(np.array([]), np.array([])) == 0.0


@pytest.mark.parametrize("kind", ["flip", "uniform", "pairflip"])
@pytest.mark.parametrize(("n", "rate", "seed"), [(10_000, 0.3, 1), (1347, 0.45, 2), (10, 0.1, 3), (7, 0.5, 4)])
def test_the_oracle_is_the_books_definition_draw_for_draw(kind, n, rate, seed):
    """Against the definition written out in conftest with numpy alone: the same stream, the same answers."""
    labels = np.random.default_rng(seed).integers(0, K, n)
    expected = oracle_by_definition(labels, K, kind, rate, seed)
    np.testing.assert_array_equal(make_noisy_labels(labels, K, kind, rate, seed=seed), expected)


def test_one_corrupted_sample_is_corrupted():
    noisy = make_noisy_labels(np.zeros(10, dtype=np.int64), K, "flip", 0.1, seed=0)  # round(0.1 * 10) = 1
    assert np.sum(noisy != 0) == 1


@pytest.mark.parametrize("kind", ["flip", "pairflip"])
def test_corrupted_samples_spread_over_the_whole_pool(kind):
    """Which samples are corrupted does not depend on where they sit: every tenth of the pool gets its share."""
    noisy = make_noisy_labels(LABELS, K, kind, 0.2, seed=11)
    positions = np.flatnonzero(noisy != LABELS)
    assert len(positions) == 2000
    assert chisquare(np.bincount(positions * 10 // len(LABELS), minlength=10)).pvalue > 0.001
    assert kstest(positions / len(LABELS), "uniform").pvalue > 0.001


def test_uniform_noise_redraws_from_all_classes_the_true_one_included():
    labels = np.zeros(90_000, dtype=np.int64)
    noisy = make_noisy_labels(labels, K, "uniform", 0.5, seed=12)
    counts = np.bincount(noisy, minlength=K)
    # 45,000 kept, 45,000 redrawn: a tenth of the redrawn land on class 0 again
    assert chisquare(counts[1:]).pvalue > 0.001
    assert abs(counts[0] - (45_000 + 4_500)) < 4 * np.sqrt(45_000 * 0.1 * 0.9)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_the_answers_are_int64_whatever_the_labels_type(dtype):
    noisy = make_noisy_labels(LABELS.astype(dtype), K, "flip", 0.3, seed=0)
    assert noisy.dtype == np.int64 and noisy.min() >= 0 and noisy.max() < K


def test_two_classes_flip_to_each_other_and_one_class_cannot_be_noisy():
    labels = np.array([0, 1] * 50)
    noisy = make_noisy_labels(labels, 2, "flip", 0.3, seed=0)
    assert np.sum(noisy != labels) == 30 and set(noisy[noisy != labels] + labels[noisy != labels]) == {1}
    with pytest.raises(ConfigError, match="^label noise needs at least 2 classes$"):
        make_noisy_labels(np.zeros(100, dtype=np.int64), 1, "flip", 0.3, seed=0)
    np.testing.assert_array_equal(make_noisy_labels(np.zeros(100, dtype=np.int64), 1, "flip", 0.001, seed=0), 0)


def test_noise_from_a_file_is_make_oracles_job():
    with pytest.raises(ValueError, match="^noise kind labels reads its answers from a file; make_oracle does that$"):
        make_noisy_labels(LABELS, K, "labels", 0.0, seed=0)


def test_realized_noise_counts_wrong_labels_not_right_ones():
    assert realized_noise(np.array([0, 1, 2, 9]), np.array([0, 1, 2, 3])) == 0.25


@pytest.mark.parametrize("seed", [0, 5])
def test_make_oracle_answers_from_the_oracle_stream_and_draws_the_initial_set_from_its_own(tiny_config, seed):
    pool = np.random.default_rng(seed).integers(0, K, 1347)
    cfg = tiny_config(f"seed={seed}", "noise.rate=0.3", "al.initial=40")
    oracle = make_oracle(cfg, pool, K)
    np.testing.assert_array_equal(oracle.noisy_labels, oracle_by_definition(pool, K, "flip", 0.3, oracle_stream(seed)))
    np.testing.assert_array_equal(oracle.initial, initial_set_by_definition(1347, 40, seed))
    assert len(set(oracle.initial.tolist())) == 40


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.lists(st.integers(0, 11), min_size=1, max_size=300),
    extra_classes=st.integers(0, 4),
    kind=st.sampled_from(["flip", "uniform", "pairflip"]),
    rate=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_pool_gets_exactly_its_share_of_corrupted_labels(labels, extra_classes, kind, rate, seed):
    labels = np.array(labels)
    num_classes = max(int(labels.max()) + 1, 2) + extra_classes
    before = labels.copy()
    noisy = make_noisy_labels(labels, num_classes, kind, rate, seed=seed)
    np.testing.assert_array_equal(labels, before)  # the true labels are left as they were
    assert noisy.shape == labels.shape and noisy.dtype == np.int64
    assert noisy.min() >= 0 and noisy.max() < num_classes
    changed = np.sum(noisy != labels)
    if kind == "uniform":
        assert changed <= round(rate * len(labels))
    else:
        assert changed == round(rate * len(labels))
    if kind == "pairflip":
        np.testing.assert_array_equal(noisy[noisy != labels], (labels[noisy != labels] + 1) % num_classes)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.floats(0.05, 0.95))
def test_a_permuted_pool_is_corrupted_as_often_in_every_class(seed, rate):
    """Relabelling the pool's order changes which samples are hit, never how many per class on average:
    over a pool of 2,000 per class, each class's share stays within binomial noise of the rate."""
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(5), 2000))
    noisy = make_noisy_labels(labels, 5, "flip", rate, seed=seed)
    share = np.array([np.mean(noisy[labels == c] != c) for c in range(5)])
    assert np.all(np.abs(share - rate) < 5 * np.sqrt(rate * (1 - rate) / 2000) + 1e-9)
