"""Linear mode: a frozen backbone's features and CLS attention computed once per key, shared by every
run, seed, strategy and noise rate, never served stale, computed once by concurrent sweeps; each
round trains only a head. The backbone is a random-init timm ViT (digits, vit_nano_p4: a class
token, so GCI-ViTAL's attention is cached too)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY

from alvit import features
from alvit.config import load_config
from alvit.errors import ConfigError
from alvit.loop import run_experiment
from alvit.models import create_model, resolve_model
from alvit.profile import load_profile
from alvit.results import RunFolder, load_runs
from alvit.sweep.estimate import estimate_gpu_hours

LINEAR = ["train.mode=linear", "train.lr=0.003", "train.epochs=5"]


def linear_config(cache, *extra):
    return load_config(None, [*TINY, *LINEAR, f"cache={cache}", *extra])


@pytest.fixture
def counted_forwards(monkeypatch):
    """Every batch of images that goes through a backbone's first layer, counted (the feature cache's only forwards)."""
    seen = {"batches": 0, "images": 0}
    create = features.create_model

    def counting(*args, **kwargs):
        model = create(*args, **kwargs)

        def count(module, inputs):
            seen["batches"] += 1
            seen["images"] += len(inputs[0])

        model.patch_embed.register_forward_pre_hook(count)
        return model

    monkeypatch.setattr(features, "create_model", counting)
    return seen


def extractions(cache):
    path = cache / "extractions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_run_of_a_sweep_shares_one_extraction_and_a_second_sweep_runs_no_backbone(tmp_path, counted_forwards):
    cache = tmp_path / "cache"
    configs = [
        linear_config(cache, f"strategy={strategy}", f"seed={seed}", f"noise.rate={rate}")
        for strategy in ("random", "entropy", "gci_vital", "bald", "coreset", "badge")
        for seed in (0, 1)
        for rate in (0.0, 0.5)
    ]
    for cfg in configs:
        run_experiment(cfg, tmp_path / "first" / cfg.run_id, progress=False)
    pool_and_test = 1347 + 450
    assert counted_forwards["images"] == pool_and_test  # 24 runs, one pass over the images
    assert len(extractions(cache)) == 1
    before = counted_forwards["batches"]
    for cfg in configs:
        run_experiment(cfg, tmp_path / "second" / cfg.run_id, progress=False)
    assert counted_forwards["batches"] == before  # every feature read from the cache
    first, second = (load_runs(tmp_path / name)[0] for name in ("first", "second"))
    assert first["finished"].all() and len(first) == 24 * 3
    columns = ["run_id", "round", "test_acc", "ece", "ts_noisy_temperature"]
    assert first[columns].equals(second[columns])  # the same results from cached features


def test_the_cache_holds_the_cls_attention_gci_vital_reads(tmp_path, counted_forwards):
    cfg = linear_config(tmp_path / "cache", "strategy=gci_vital")
    folder = RunFolder(run_experiment(cfg, tmp_path / "run", progress=False))
    (entry,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    attention = np.load(entry / "train_attention.npy")
    backbone = create_model(resolve_model(cfg.model), 10)
    heads, tokens = backbone.blocks[-1].attn.num_heads, backbone.patch_embed.num_patches + 1
    assert attention.shape == (1347, heads, tokens) and attention.dtype == np.float16
    np.testing.assert_allclose(attention.astype(np.float32).sum(axis=2), 1.0, atol=1e-2)  # softmax rows
    assert np.load(entry / "train_features.npy").shape == (1347, backbone.num_features)
    assert json.loads((entry / "key.json").read_text())["model"] == "vit_tiny_patch16_224"
    suspects = folder.read_queries()["suspect"]
    assert set(np.unique(suspects)) <= {0, 1}  # GCI-ViTAL flagged against the cached attention


def test_another_input_size_or_weights_file_is_never_served_an_old_entry(tmp_path, counted_forwards):
    cache = tmp_path / "cache"
    run_experiment(linear_config(cache), tmp_path / "a", progress=False)
    run_experiment(linear_config(cache, "img_size=24"), tmp_path / "b", progress=False)
    assert len(extractions(cache)) == 2
    weights = tmp_path / "weights.pth"
    model = create_model(resolve_model("vit_nano_p4"), 10)
    torch.save(model.state_dict(), weights)
    run_experiment(linear_config(cache, f"weights={weights}"), tmp_path / "c", progress=False)
    state = model.state_dict()
    state["blocks.0.norm1.weight"] += 0.5  # the same file name, other weights
    torch.save(state, weights)
    run_experiment(linear_config(cache, f"weights={weights}"), tmp_path / "d", progress=False)
    assert len(extractions(cache)) == 4
    assert len({line["digest"] for line in extractions(cache)}) == 4


def test_a_damaged_or_stale_entry_is_computed_again_not_read(tmp_path, counted_forwards):
    cache = tmp_path / "cache"
    run_experiment(linear_config(cache), tmp_path / "a", progress=False)
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    key = json.loads((entry / "key.json").read_text())
    (entry / "key.json").write_text(json.dumps({**key, "timm": "0.0.1"}))  # not what this machine would compute
    run_experiment(linear_config(cache), tmp_path / "b", progress=False)
    np.save(entry / "test_features.npy", np.zeros((3, 2), dtype=np.float32))  # the wrong shape
    run_experiment(linear_config(cache), tmp_path / "c", progress=False)
    assert len(extractions(cache)) == 3
    assert json.loads((entry / "key.json").read_text()) == key


def test_two_concurrent_sweeps_compute_each_cache_entry_once(tmp_path):
    base = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in [*TINY, *LINEAR])}
    tree: dict = {}
    for key, value in base.items():
        node = tree
        for part in key.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[key.split(".")[-1]] = value
    tree["cache"] = str(tmp_path / "cache")
    profile = tmp_path / "profile.yaml"
    grid = {"strategy": ["random", "entropy"], "seed": [0, 1], "model": ["vit_nano_p4", "vit_mini_p8"]}
    profile.write_text(
        yaml.safe_dump({"name": "t", "output": str(tmp_path / "runs"), "base": tree, "grid": grid, "pages": "none"})
    )
    command = [sys.executable, "-m", "alvit.cli", "sweep", str(profile), "--quiet"]
    sweeps = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    done = [int(re.search(r"^done (\d+) /", text, re.MULTILINE).group(1)) for text in outputs]
    assert sum(done) == 8, outputs
    assert sorted(line["entry"].split("-")[0] for line in extractions(tmp_path / "cache")) == [
        "vit_tiny_patch16_224",
        "vit_tiny_patch16_224",
    ]  # one extraction per backbone (the two presets are both vit_tiny_patch16_224, differently shaped)
    assert len({line["digest"] for line in extractions(tmp_path / "cache")}) == 2
    assert not list((tmp_path / "cache").glob(".*.partial"))


def test_a_cache_that_cannot_be_a_folder_is_one_sentence_before_any_work(tmp_path, counted_forwards):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(
        ConfigError, match="cache .*taken is a file, not a folder; choose a folder for the cached features"
    ):
        run_experiment(linear_config(tmp_path / "taken"), tmp_path / "run", progress=False)
    assert counted_forwards["batches"] == 0


def test_linear_mode_is_a_setting_of_its_own_and_refuses_augmentation(tmp_path):
    cfg = linear_config(tmp_path)
    assert cfg.run_id.endswith("-linear") and not load_config(None, TINY).run_id.endswith("-linear")
    with pytest.raises(ConfigError, match="train.augment flip needs images, and linear mode trains on cached features"):
        load_config(None, [*TINY, *LINEAR, "train.augment=flip"])
    with pytest.raises(ConfigError, match="train.mode 'frozen' is not known; valid choices are finetune, linear"):
        load_config(None, [*TINY, "train.mode=frozen"])


def test_the_estimate_counts_each_extraction_once_and_the_heads_besides(tmp_path):
    profile = tmp_path / "p.yaml"

    def hours(seeds, mode):
        body = {
            "name": "e",
            "base": {"dataset": "cifar10", "model": "vit_b16", "pretrained": True, "train": {"mode": mode}},
            "grid": {"seed": seeds, "strategy": ["random", "entropy"]},
        }
        profile.write_text(yaml.safe_dump(body))
        return sum(row["gpu_hours"] for row in estimate_gpu_hours(load_profile(profile)))

    one, six = hours([0], "linear"), hours([0, 1, 2], "linear")
    extraction = 60_000 * 35.1e9 / 200e12 / 3600
    assert one == pytest.approx(extraction, rel=0.01)  # one forward per image; the heads cost next to nothing
    assert six == pytest.approx(one, rel=0.01)  # more runs of the same backbone and dataset extract nothing more
    assert hours([0], "finetune") > 100 * one  # two fine-tuned runs already cost 150 extractions


@pytest.mark.parametrize("cache", [0, -1, ".nan", ".inf", "[a, b]", "''"])
def test_a_profiles_cache_that_is_not_a_folder_path_is_one_sentence(tmp_path, cache):
    (tmp_path / "p.yaml").write_text(f"name: c\ncache: {cache}\nbase: {{train: {{mode: linear}}}}\n")
    with pytest.raises(
        ConfigError, match="cache in profile .* must be the path of a folder for the cached features, not"
    ):
        load_profile(tmp_path / "p.yaml")
