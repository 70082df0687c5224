"""The noisy oracle follows the book's definitions (book/definitions.md) exactly."""

import numpy as np
import pytest
from scipy.stats import chisquare

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
