"""The training schedule, against the recipe written out here: the learning rate's warm-up and cosine
decay, the held-out split, each epoch's batches, and the early-stopping rule. No model runs."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from alvit.train import EarlyStopping, epoch_order, lr_factor, split_for_early_stopping


def recipe_lr(step: int, warmup: int, total: int) -> float:
    """The protocol's schedule: (step + 1) / warmup while warming up, then half a cosine from 1 to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))


@pytest.mark.parametrize(("warmup", "total"), [(0, 10), (1, 2), (4, 20), (7, 100)])
def test_the_learning_rate_follows_the_recipe_at_every_step_and_stays_at_zero_after(warmup, total):
    for step in range(total + 5):
        assert lr_factor(step, warmup, total) == pytest.approx(recipe_lr(step, warmup, total), abs=1e-15)


def test_the_learning_rate_by_hand():
    # 4 warm-up steps of 20: a quarter more each step, 1 at the top, half way down at step 12, 0 at the end.
    assert [lr_factor(s, 4, 20) for s in (0, 1, 2, 3, 4, 12, 20, 30)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-15
    )
    assert lr_factor(2, 1, 5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # a quarter of the decay
    assert lr_factor(3, 3, 3) == 1.0  # no decay left: the last warm-up value stays


@pytest.mark.parametrize(
    ("n", "fraction", "held_out"),
    [(200, 0.1, 20), (15, 0.1, 2), (25, 0.1, 2), (10, 0.1, 1), (10, 0.9, 9), (35, 0.1, 4)],  # round half to even
)
def test_the_held_out_split_is_round_fraction_times_n_of_a_partition(n, fraction, held_out):
    train, val = split_for_early_stopping(n, fraction, np.random.default_rng(0))
    assert len(val) == held_out and len(train) == n - held_out
    assert sorted([*train, *val]) == list(range(n))
    assert list(train) == sorted(train) and list(val) == sorted(val)


@pytest.mark.parametrize(("n", "fraction"), [(4, 0.1), (10, 0.99), (1, 0.5), (0, 0.1), (10, 0.0)])
def test_no_split_when_either_side_would_be_empty(n, fraction):
    train, val = split_for_early_stopping(n, fraction, np.random.default_rng(0))
    assert train.tolist() == list(range(n)) and len(val) == 0


def test_every_sample_is_as_likely_to_be_held_out():
    counts = np.zeros(20)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        counts[split_for_early_stopping(20, 0.25, rng)[1]] += 1
    assert counts.sum() == 2000 * 5 and chisquare(counts).pvalue > 0.001


@pytest.mark.parametrize(("n", "batch"), [(150, 64), (128, 64), (10, 64), (64, 64), (65, 64), (1, 8)])
def test_an_epoch_is_whole_batches_of_a_permutation_the_last_filled_from_its_start(n, batch):
    order = epoch_order(n, batch, torch.Generator().manual_seed(0))
    steps = -(-n // batch)
    assert order.shape == (steps * batch,) and order.dtype == torch.int64
    first = order[: min(n, len(order))].tolist()
    assert sorted(first) == list(range(n))  # every sample once before any repeats
    assert order.tolist() == [first[i % n] for i in range(steps * batch)]  # then the same permutation again


def test_each_epoch_draws_a_fresh_permutation_from_the_generator():
    generator = torch.Generator().manual_seed(0)
    orders = [epoch_order(50, 16, generator).tolist() for _ in range(3)]
    assert orders[0] != orders[1] != orders[2]
    again = torch.Generator().manual_seed(0)
    assert epoch_order(50, 16, again).tolist() == orders[0]


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience_epochs_without_one():
    stopping = EarlyStopping(patience=2)
    assert (stopping.best_loss, stopping.best_epoch, stopping.waited, stopping.should_stop) == (math.inf, 0, 0, False)
    seen = []
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 1.5, 1.5, 1.6, 0.1], start=1):
        seen.append((stopping.improved(epoch, loss), stopping.should_stop))
        if stopping.should_stop:
            break
    # 1.5 again is no improvement: the first epoch to reach a loss is the one kept
    assert seen == [(True, False), (True, False), (False, False), (True, False), (False, False), (False, True)]
    assert (stopping.best_epoch, stopping.best_loss, stopping.waited) == (4, 1.5, 2)


def test_patience_one_stops_at_the_first_epoch_without_improvement_and_a_new_best_resets_the_count():
    stopping = EarlyStopping(patience=1)
    assert stopping.improved(1, 1.0) and not stopping.should_stop
    assert not stopping.improved(2, 1.0) and stopping.should_stop
    assert stopping.improved(3, 0.5) and not stopping.should_stop and stopping.waited == 0
    patient = EarlyStopping(patience=3)
    for epoch in range(2, 5):
        patient.improved(epoch, 10.0 + epoch)
    assert patient.waited == 2 and not patient.should_stop  # the first epoch improves on infinity
