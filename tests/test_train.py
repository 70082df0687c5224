"""Fine-tuning follows the recipe (warm-up + cosine, early stopping on a noisy split, fixed batch shapes,
weight decay where timm puts it), is deterministic, and fails loudly rather than record damage."""

import dataclasses
import logging
import os

import numpy as np
import pytest
import torch

from alvit.accel import FastPath
from alvit.config import TrainConfig
from alvit.data import Preprocessor, load_dataset
from alvit.errors import TrainingError
from alvit.models import create_model, resolve_model
from alvit.train import create_optimizer, epoch_order, fit, lr_factor, predict, split_for_early_stopping


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
    result = fit(model, data.train_images[:300], labels, cfg, pre, np.random.SeedSequence(seed), progress=False)
    return model, result


def test_fit_learns_digits_and_keeps_the_best_epoch(digits):
    data, pre = digits
    model, result = train_once(
        digits, data.train_labels[:300], TrainConfig(epochs=15, lr=2e-3, batch_size=16, patience=4)
    )
    accuracy = np.mean(predict(model, data.test_images, pre, 256).probs.argmax(1) == data.test_labels)
    assert accuracy > 0.6
    assert 1 <= result.best_epoch <= result.epochs and np.isfinite(result.val_loss)


def test_early_stopping_fires_when_held_out_labels_are_pure_noise(digits):
    noise = np.random.default_rng(0).integers(0, 10, 300)
    _, result = train_once(digits, noise, TrainConfig(epochs=30, lr=3e-3, batch_size=16, patience=2))
    assert result.epochs < 30 and result.epochs - result.best_epoch == 2


@pytest.mark.parametrize("deterministic", [False, True])
def test_same_seed_gives_identical_weights(digits, deterministic):
    data, _ = digits
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32, augment="flip", deterministic=deterministic)
    first, _ = train_once(digits, data.train_labels[:300], cfg)
    second, _ = train_once(digits, data.train_labels[:300], cfg)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_an_epoch_is_a_fresh_permutation_cut_into_whole_batches_the_last_filled_from_its_start():
    generator = torch.Generator().manual_seed(0)
    order = epoch_order(150, 64, generator)
    assert order.shape == (192,)  # 3 steps of exactly 64
    assert sorted(order[:150].tolist()) == list(range(150)) and torch.equal(order[150:], order[:42])
    assert not torch.equal(epoch_order(150, 64, generator), order)  # each epoch draws afresh
    small = epoch_order(10, 64, generator)  # a set smaller than a batch fills one batch
    assert small.shape == (64,) and set(small.tolist()) == set(range(10))


def batch_sizes_seen(model):
    sizes = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])) if m.training else None)
    return sizes


@pytest.mark.parametrize("n_labeled", [150, 20])
def test_every_training_step_sees_exactly_batch_size_samples(digits, n_labeled):
    data, pre = digits
    torch.manual_seed(0)
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    sizes = batch_sizes_seen(model)
    fit(
        model,
        data.train_images[:n_labeled],
        data.train_labels[:n_labeled],
        TrainConfig(epochs=2, batch_size=64),
        pre,
        np.random.SeedSequence(0),
        progress=False,
    )
    assert sizes and set(sizes) == {64}


def test_weight_decay_spares_biases_norms_and_the_models_no_weight_decay_parameters():
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    optimizer = create_optimizer(model, TrainConfig(weight_decay=0.05), torch.device("cpu"))
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert len(decay) == len(named)
    spared = [
        "pos_embed",
        "cls_token",
        "patch_embed.proj.bias",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.bias",
        "norm.weight",
        "head.bias",
    ]
    decayed = ["patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.weight", "head.weight"]
    assert all(decay[id(named[name])] == 0.0 for name in spared)
    assert all(decay[id(named[name])] == 0.05 for name in decayed)


def test_label_smoothing_is_read_from_the_train_config_and_changes_training(digits):
    data, _ = digits
    labels = data.train_labels[:300]
    plain, plain_result = train_once(digits, labels, TrainConfig(epochs=2, lr=2e-3, batch_size=32))
    smooth, smooth_result = train_once(
        digits, labels, TrainConfig(epochs=2, lr=2e-3, batch_size=32, label_smoothing=0.3)
    )
    assert smooth_result.val_loss != pytest.approx(plain_result.val_loss, rel=1e-3)
    assert not torch.equal(plain.head.weight, smooth.head.weight)


def test_gradient_accumulation_keeps_the_effective_batch(digits):
    data, _ = digits
    cfg = TrainConfig(epochs=1, lr=2e-3, batch_size=32, augment="flip", patience=0)
    whole, _ = train_once(digits, data.train_labels[:300], cfg)
    halves, _ = train_once(digits, data.train_labels[:300], dataclasses.replace(cfg, accumulate=4))
    for a, b in zip(whole.state_dict().values(), halves.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4)


def test_a_non_finite_loss_stops_training_naming_the_round_and_epoch(digits):
    data, pre = digits
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    with pytest.raises(TrainingError, match=r"^round 2/5, epoch 1: the training loss is nan.*lower train.lr"):
        fit(
            model,
            data.train_images[:100],
            data.train_labels[:100],
            TrainConfig(epochs=3, lr=1e30, grad_clip=0.0),
            pre,
            np.random.SeedSequence(0),
            desc="round 2/5",
            progress=False,
        )


def run_out_of_memory_above(model, limit):
    """Simulate a device that holds at most ``limit`` images (the first layer raises as CUDA would)."""

    def hook(module, args):
        if len(args[0]) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    return model.patch_embed.register_forward_pre_hook(hook)


def test_out_of_memory_in_training_stops_and_suggests_gradient_accumulation(digits):
    data, pre = digits
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    run_out_of_memory_above(model, 16)
    cfg = TrainConfig(epochs=1, batch_size=32)
    with pytest.raises(TrainingError, match=r"round 0/3, epoch 1: .*out of memory.* set train.accumulate=2 "):
        fit(
            model,
            data.train_images[:100],
            data.train_labels[:100],
            cfg,
            pre,
            np.random.SeedSequence(0),
            desc="round 0/3",
            progress=False,
        )
    fit(
        model,
        data.train_images[:100],
        data.train_labels[:100],
        dataclasses.replace(cfg, accumulate=2),
        pre,
        np.random.SeedSequence(0),
        progress=False,
    )  # micro-batches of 16 fit


def test_out_of_memory_in_prediction_halves_the_batch_and_gives_the_same_result(digits, caplog):
    data, pre = digits
    torch.manual_seed(0)
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    expected = predict(model, data.test_images[:50], pre, 8).probs
    run_out_of_memory_above(model, 8)
    with caplog.at_level(logging.WARNING):
        got = predict(model, data.test_images[:50], pre, 32).probs
    assert np.allclose(got, expected, atol=1e-6)
    assert "batch halved to 16" in caplog.text and "batch halved to 8" in caplog.text


def test_deterministic_mode_is_on_while_training_and_restored_after(digits):
    data, pre = digits
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(torch.are_deterministic_algorithms_enabled()))
    fit(
        model,
        data.train_images[:64],
        data.train_labels[:64],
        TrainConfig(epochs=1, batch_size=32, deterministic=True),
        pre,
        np.random.SeedSequence(0),
        progress=False,
    )
    assert seen and all(seen) and not torch.are_deterministic_algorithms_enabled()


@pytest.mark.slow
def test_compiled_training_and_prediction_match_eager_and_compile_once_per_model(digits):
    from torch._dynamo.utils import counters

    data, pre = digits
    labels = data.train_labels[:100]
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32, eval_batch_size=64, compile=True)
    compiled, _ = train_once(digits, labels, cfg)
    eager, _ = train_once(digits, labels, dataclasses.replace(cfg, compile=False))
    for a, b in zip(compiled.state_dict().values(), eager.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4)
    assert "_alvit_compiled" not in "".join(compiled.state_dict())  # weights files stay as without compile
    graphs = counters["stats"]["unique_graphs"]
    fit(compiled, data.train_images[:100], labels, cfg, pre, np.random.SeedSequence(1), progress=False)  # next round
    fast = FastPath(compile=True)  # preprocessing inside the compiled graph, as fit has it
    probs = predict(compiled, data.test_images[:100], pre, 64, fast=fast).probs  # 100 = one full + one padded batch
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled again
    eager_probs = predict(compiled, data.test_images[:100], pre, 64).probs
    assert np.allclose(probs, eager_probs, atol=1e-5)
    unfused = predict(compiled, data.test_images[:100], pre, 64, fast=dataclasses.replace(fast, fuse_preprocess=False))
    assert np.allclose(unfused.probs, eager_probs, atol=1e-5)  # preprocessing before the graph, as before issue 28
    with_attention = predict(compiled, data.test_images[:10], pre, 64, attention=True, mc_passes=2, fast=fast)
    assert with_attention.attention_source == "cls_attention" and with_attention.mc_probs.shape == (2, 10, 10)


@pytest.mark.parametrize("before", [None, ":16:8"])
def test_deterministic_training_leaves_the_environment_as_it_found_it(monkeypatch, before):
    from alvit.accel import CUBLAS_WORKSPACE, device_settings

    if before is None:
        monkeypatch.delenv(CUBLAS_WORKSPACE, raising=False)
    else:
        monkeypatch.setenv(CUBLAS_WORKSPACE, before)
    with device_settings(torch.device("cpu"), deterministic=True):
        assert os.environ[CUBLAS_WORKSPACE] == (before or ":4096:8")  # a value the user set wins
        assert torch.are_deterministic_algorithms_enabled()
        # Issue 28: no NaN fill of fresh memory (PyTorch: a program that reads only what it wrote stays deterministic)
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert os.environ.get(CUBLAS_WORKSPACE) == before and not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is True  # PyTorch's default, restored
