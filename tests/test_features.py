"""Linear mode: a frozen backbone's features and CLS attention computed once per key, shared by every
run, seed, strategy and noise rate, never served stale, computed once by concurrent sweeps; each
round trains only a head. The backbone is a random-init timm ViT (digits, vit_nano_p4: a class
token, so GCI-ViTAL's attention is cached too)."""

import hashlib
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


@pytest.fixture(scope="module")
def pristine_cache(tmp_path_factory):
    """One entry extracted for TINY's linear configuration: the cache folder, the data, spec and the arrays."""
    from alvit.data import load_dataset

    cache = tmp_path_factory.mktemp("pristine") / "cache"
    cfg = linear_config(cache)
    data = load_dataset(cfg.dataset, cfg.data.max_pool, cfg.data.max_test)
    spec = resolve_model(cfg.model, cfg.img_size)
    cached = features.load_or_extract(cfg, spec, data, torch.device("cpu"))
    return cache, data, spec, cached


@pytest.fixture
def cache_copy(pristine_cache, tmp_path, counted_forwards):
    """A copy of the pristine cache to damage; ``load()`` reads it as a run would and returns the features."""
    import shutil

    source, data, spec, cached = pristine_cache
    cache = tmp_path / "cache"
    shutil.copytree(source, cache, symlinks=True)
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]

    def load():
        return features.load_or_extract(linear_config(cache), spec, data, torch.device("cpu"))

    return cache, entry, cached, load


def save_raw(path, array):
    """``np.save`` to exactly ``path`` (np.save itself would add .npy to a name without it)."""
    with open(path, "wb") as handle:
        np.save(handle, array)


def another_width(entry, cached):
    """Both feature arrays of one width, 65, but not the backbone's 64 (a key that failed to tell two backbones apart)."""
    for name, rows in (("train_features", len(cached.train)), ("test_features", len(cached.test))):
        save_raw(entry / f"{name}.npy", np.zeros((rows, cached.train.shape[1] + 1), np.float32))


def int64_features(entry, cached):
    save_raw(entry / "train_features.npy", cached.train.astype(np.int64))


def nan_attention(entry, cached):
    attention = cached.train_attention.copy()
    attention[7, 1, 2] = np.nan
    save_raw(entry / "train_attention.npy", attention)


def empty_file(entry, cached):
    (entry / "test_features.npy").write_bytes(b"")


def cut_file(entry, cached):
    data = (entry / "train_features.npy").read_bytes()
    (entry / "train_features.npy").write_bytes(data[: len(data) // 2])


def one_value_changed(entry, cached):
    changed = cached.test.copy()
    changed[3, 5] += 1.0  # the same dtype, shape and finiteness: only the checksum tells
    save_raw(entry / "test_features.npy", changed)


def attention_of_other_tokens(entry, cached):
    save_raw(entry / "train_attention.npy", cached.train_attention[:, :, :-1].copy())


def no_checksums(entry, cached):
    key = json.loads((entry / "key.json").read_text())
    del key["sha256"]  # an entry written before checksums were recorded
    (entry / "key.json").write_text(json.dumps(key))


def array_linked_elsewhere(entry, cached):
    outside = entry.parent.parent / "outside.npy"
    save_raw(outside, cached.train)  # even a link to the right array is not followed
    (entry / "train_features.npy").unlink()
    (entry / "train_features.npy").symlink_to(outside)


@pytest.mark.parametrize(
    "damage, said",
    [
        (another_width, r"has train_features.npy shaped 1347 x 65, not 1347 x 64"),
        (int64_features, r"has train_features.npy of int64, not float32"),
        (nan_attention, r"has train_attention.npy with values that are not finite \(NaN or infinite\)"),
        (empty_file, r"has test_features.npy empty \(0 bytes\)"),
        (cut_file, r"has train_features.npy cut short"),
        (one_value_changed, r"has test_features.npy whose bytes do not match its checksum in key.json"),
        (attention_of_other_tokens, r"has train_attention.npy shaped 1347 x 4 x 4, not 1347 x 4 x 5"),
        (
            no_checksums,
            r"records no checksums of the arrays train_features, test_features, train_attention in its key.json",
        ),
        (array_linked_elsewhere, r"has train_features.npy, which is a symbolic link, not followed"),
    ],
)
def test_a_cached_array_that_is_wrong_in_any_way_is_computed_again_with_one_log_line(
    cache_copy, counted_forwards, caplog, damage, said
):
    """Issue 22: an array of another width, int64 features or NaN attention used to be served as they were."""
    cache, entry, cached, load = cache_copy
    damage(entry, cached)
    with caplog.at_level("WARNING", logger="alvit.features"):
        again = load()
    [line] = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert re.fullmatch(rf"feature cache entry {re.escape(str(entry))} {said}; computing it again", line), line
    assert counted_forwards["images"] == 1347 + 450 and len(extractions(cache)) == 2  # computed once more
    np.testing.assert_array_equal(again.train, cached.train)
    np.testing.assert_array_equal(again.test, cached.test)
    np.testing.assert_array_equal(again.train_attention, cached.train_attention)
    assert not (entry / "train_features.npy").is_symlink()
    before = counted_forwards["batches"]
    load()  # the entry is whole again: served without a forward pass, and without a word
    assert counted_forwards["batches"] == before and len(caplog.records) == 1


def test_a_sound_entry_is_served_without_a_forward_pass_or_a_log_line(cache_copy, counted_forwards, caplog):
    cache, entry, cached, load = cache_copy
    recorded = json.loads((entry / "key.json").read_text())["sha256"]
    assert recorded == {  # SHA-256 of each array's bytes, as hashlib computes them from the arrays extracted
        "train_features": hashlib.sha256(cached.train.tobytes()).hexdigest(),
        "test_features": hashlib.sha256(cached.test.tobytes()).hexdigest(),
        "train_attention": hashlib.sha256(cached.train_attention.tobytes()).hexdigest(),
    }
    with caplog.at_level("INFO", logger="alvit.features"):
        served = load()
    assert counted_forwards["batches"] == 0 and not caplog.records
    assert served.train.dtype == np.float32 and served.train_attention.dtype == np.float16
    np.testing.assert_array_equal(served.train, cached.train)


def test_an_entry_that_is_a_symlink_is_replaced_and_what_it_points_to_is_untouched(cache_copy, caplog):
    import shutil

    cache, entry, cached, load = cache_copy
    elsewhere = cache.parent / "elsewhere"
    shutil.move(entry, elsewhere)  # a sound entry, but outside the cache: a link to it is not followed
    entry.symlink_to(elsewhere)
    before = {path.name: path.read_bytes() for path in elsewhere.iterdir()}
    with caplog.at_level("WARNING", logger="alvit.features"):
        load()
    [line] = [record.getMessage() for record in caplog.records]
    assert line == (
        f"feature cache entry {entry} is a symbolic link (to {elsewhere}), not a folder of this cache; computing it again"
    )
    assert entry.is_dir() and not entry.is_symlink()
    assert {path.name: path.read_bytes() for path in elsewhere.iterdir()} == before


def test_a_journal_or_lock_file_that_is_a_symlink_is_replaced_never_written_through(cache_copy, caplog):
    cache, entry, cached, load = cache_copy
    key = json.loads((entry / "key.json").read_text())
    (entry / "key.json").write_text(json.dumps({**key, "timm": "0.0.1"}))  # stale: computed again, journal written
    target = cache.parent / "someone-elses-file"
    target.write_text("precious\n")
    (cache / "extractions.jsonl").unlink()
    (cache / "extractions.jsonl").symlink_to(target)
    lock = entry.with_name(entry.name + ".lock")
    lock.unlink()
    lock.symlink_to(cache.parent / "not-to-be-created")
    with caplog.at_level("WARNING", logger="alvit.features"):
        load()
    assert target.read_text() == "precious\n" and not (cache.parent / "not-to-be-created").exists()
    assert not (cache / "extractions.jsonl").is_symlink() and len(extractions(cache)) == 1
    assert not lock.is_symlink() and lock.is_file()
    assert [record.getMessage() for record in caplog.records] == [
        f"{lock} was a symbolic link (to {cache.parent / 'not-to-be-created'}); not followed: "
        "replaced by a file of the cache",
        f"feature cache entry {entry} holds another key (differs in timm); computing it again",
        f"{cache / 'extractions.jsonl'} was a symbolic link (to {target}); not followed: replaced by a file of the cache",
    ]


def test_the_temporary_folder_has_an_unpredictable_name_and_the_entry_the_umasks_mode(cache_copy):
    """The old name .<entry>.<pid>.partial could be planted beforehand as a link into someone else's folder."""
    import os
    import shutil
    import stat

    cache, entry, cached, load = cache_copy
    shutil.rmtree(entry)
    victim = cache.parent / "victim"
    victim.mkdir()
    (cache / f".{entry.name}.{os.getpid()}.partial").symlink_to(victim)
    previous = os.umask(0o022)  # the common default, so the expected mode does not depend on the runner's
    try:
        load()
    finally:
        os.umask(previous)
    assert not list(victim.iterdir())
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755  # not mkdtemp's private 0700
    assert not [path for path in cache.iterdir() if path.name.endswith(".partial") and not path.is_symlink()]


def test_finiteness_of_float16_by_its_exponent_bits_is_numpys_isfinite():
    every_half = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)  # all 65,536 bit patterns
    assert features.all_finite(every_half) is False
    finite = every_half[np.isfinite(every_half)]
    assert len(finite) == 2**16 - 2 * 2**10  # 1,024 patterns each for + and - (inf and NaNs)
    assert features.all_finite(finite) is True
    assert not any(features.all_finite(every_half[i : i + 1]) for i in np.flatnonzero(~np.isfinite(every_half)))
    assert features.all_finite(np.array([1.0, -3e38], np.float32)) and not features.all_finite(
        np.array([1.0, np.inf], np.float32)
    )


def test_a_backbone_that_gives_nan_features_is_one_sentence_and_nothing_is_cached(cache_copy, monkeypatch):
    import shutil

    from alvit.errors import TrainingError

    cache, entry, cached, load = cache_copy
    shutil.rmtree(entry)
    broken = cached.train.copy()
    broken[0, 0] = np.nan
    monkeypatch.setattr(features, "extract", lambda *args: (broken, cached.test, cached.train_attention))
    with pytest.raises(
        TrainingError, match=r"^the frozen vit_tiny_patch16_224's train_features on digits are not finite"
    ):
        load()
    assert not entry.exists() and not list(cache.glob(".*.partial"))
