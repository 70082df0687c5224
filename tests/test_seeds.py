"""Random streams: each purpose and round is numpy's own spawned SeedSequence, so nothing drawn for one
purpose moves another, and the fixed data subsets never depend on the experiment's seed."""

import numpy as np
import pytest

from alvit import seeds

# The published runs were drawn from these spawn keys: renumbering them changes every result.
SPAWN_INDEX = {"oracle": 0, "initial": 1, "model": 2, "train": 3, "strategy": 4, "predict": 5}


def spawned(seed: int, name: str, round_: int) -> np.random.SeedSequence:
    """numpy's ``SeedSequence(seed).spawn(...)[stream].spawn(...)[round]``, the reference for every stream."""
    return np.random.SeedSequence(seed).spawn(6)[SPAWN_INDEX[name]].spawn(round_ + 1)[round_]


def test_the_streams_are_the_six_purposes_in_their_published_order():
    assert seeds.STREAMS == SPAWN_INDEX


@pytest.mark.parametrize("name", sorted(SPAWN_INDEX))
@pytest.mark.parametrize("round_", [0, 1, 7])
@pytest.mark.parametrize("seed", [0, 3])
def test_every_stream_is_numpys_spawned_child_for_its_purpose_and_round(seed, name, round_):
    reference = spawned(seed, name, round_)
    np.testing.assert_array_equal(seeds.stream(seed, name, round_).generate_state(4), reference.generate_state(4))
    np.testing.assert_array_equal(seeds.rng(seed, name, round_).random(5), np.random.default_rng(reference).random(5))
    assert seeds.torch_seed(seed, name, round_) == int(reference.generate_state(1, dtype=np.uint32)[0])


def test_round_zero_is_the_default_and_rounds_draw_apart():
    assert seeds.stream(4, "strategy").spawn_key == spawned(4, "strategy", 0).spawn_key == (4, 0)
    assert seeds.torch_seed(4, "model") == seeds.torch_seed(4, "model", 0)
    assert seeds.rng(4, "strategy").random() == seeds.rng(4, "strategy", 0).random()
    assert seeds.rng(4, "strategy", 0).random() != seeds.rng(4, "strategy", 1).random()
    assert seeds.rng(4, "oracle").random() != seeds.rng(4, "initial").random()


def test_a_torch_seed_is_a_32_bit_integer():
    values = [seeds.torch_seed(seed, "model", r) for seed in range(5) for r in range(5)]
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in values) and len(set(values)) == 25


@pytest.mark.parametrize(("n", "limit"), [(100, 10), (1347, 1000), (50, 49), (100, 1)])
def test_a_subset_is_the_same_sorted_draw_for_every_experiment_seed(n, limit):
    subset = seeds.subset_indices(n, limit)
    expected = np.sort(np.random.default_rng(0).choice(n, size=limit, replace=False))
    np.testing.assert_array_equal(subset, expected)
    assert len(np.unique(subset)) == limit and subset.min() >= 0 and subset.max() < n


@pytest.mark.parametrize("limit", [0, -3, 100, 150])
def test_no_subset_or_one_as_large_as_the_split_keeps_everything_in_order(limit):
    np.testing.assert_array_equal(seeds.subset_indices(100, limit), np.arange(100))
