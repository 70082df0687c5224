"""Fine-tuning follows the recipe: warm-up + cosine, early stopping on a noisy split, determinism."""

import numpy as np
import pytest
import torch

from alvit.config import TrainConfig
from alvit.data import Preprocessor, load_dataset
from alvit.models import create_model, resolve_model
from alvit.train import fit, lr_factor, predict, split_for_early_stopping


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    factors = [lr_factor(step, warmup_steps=4, total_steps=20) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)


def test_held_out_split_is_ten_percent_and_disjoint():
    train, val = split_for_early_stopping(200, 0.1, np.random.default_rng(0))
    assert len(val) == 20 and len(train) == 180 and not set(train) & set(val)
    assert len(split_for_early_stopping(4, 0.1, np.random.default_rng(0))[1]) == 0  # too small to hold out


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data, Preprocessor(8, (0.5,) * 3, (0.5,) * 3, torch.device("cpu"))


def train_once(digits, labels, cfg, seed=0):
    data, pre = digits
    torch.manual_seed(0)
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    result = fit(model, data.train_images[:300], labels, cfg, 0.0, pre, np.random.SeedSequence(seed), progress=False)
    return model, result


def test_fit_learns_digits_and_keeps_the_best_epoch(digits):
    data, pre = digits
    model, result = train_once(digits, data.train_labels[:300], TrainConfig(epochs=15, lr=2e-3, batch_size=16, patience=4))
    accuracy = np.mean(predict(model, data.test_images, pre, 256).probs.argmax(1) == data.test_labels)
    assert accuracy > 0.6
    assert 1 <= result.best_epoch <= result.epochs and np.isfinite(result.val_loss)


def test_early_stopping_fires_when_held_out_labels_are_pure_noise(digits):
    noise = np.random.default_rng(0).integers(0, 10, 300)
    _, result = train_once(digits, noise, TrainConfig(epochs=30, lr=3e-3, batch_size=16, patience=2))
    assert result.epochs < 30 and result.epochs - result.best_epoch == 2


def test_same_seed_gives_identical_weights(digits):
    data, _ = digits
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32, augment="flip")
    first, _ = train_once(digits, data.train_labels[:300], cfg)
    second, _ = train_once(digits, data.train_labels[:300], cfg)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
