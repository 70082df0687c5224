"""The feature cache's key and its checks against references written here: the key built by hand from
its documented inputs, hashlib on known bytes, shapes counted by hand, and every sentence a damaged
entry is reported with. Small modules and in-memory arrays in tmp_path, no extraction."""

import errno
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from alvit import features
from alvit.data import Dataset
from alvit.models import ModelSpec

SPEC = ModelSpec(
    name="vit_nano_p4",
    timm_name="vit_tiny_patch16_224",
    kwargs={"img_size": 16, "patch_size": 4},
    input_size=16,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    interpolation="bilinear",
)
# Three pool images and two test images of 3 x 2 x 2 pixels whose bytes are 0, 1, ..., 59 in order.
DATA = Dataset(
    name="digits",
    train_images=torch.arange(0, 36, dtype=torch.uint8).reshape(3, 3, 2, 2),
    train_labels=np.array([0, 1, 0]),
    test_images=torch.arange(36, 60, dtype=torch.uint8).reshape(2, 3, 2, 2),
    test_labels=np.array([1, 0]),
    classes=("zero", "one"),
)


class Probe(nn.Module):
    """A backbone of a linear layer and a batch norm (parameters and buffers) with a timm-style classifier head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(2, 3)
        self.norm = nn.BatchNorm1d(3)
        self.head = nn.Linear(3, 2)

    def get_classifier(self):
        return self.head


def sha256_of(*tensors) -> str:
    return hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in tensors)).hexdigest()


def probe_backbone_sha256(model: Probe) -> str:
    """The backbone's tensors listed by hand, in the order the modules hold them; the head not among them."""
    body, norm = model.body, model.norm
    return sha256_of(
        body.weight, body.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.num_batches_tracked
    )


def key_by_hand(**changed) -> dict:
    """key.json's key for SPEC, DATA and a Probe on a CPU, each field written from its documented input."""
    return {
        "model": "vit_tiny_patch16_224",
        "model_kwargs": {"img_size": 16, "patch_size": 4},
        "weights_sha256": probe_backbone_sha256(Probe()),
        "dataset": "digits",
        "images_sha256": hashlib.sha256(bytes(range(60))).hexdigest(),  # every pool image, then every test image
        "pool_size": 3,
        "test_size": 2,
        "input_size": 16,
        "interpolation": "bilinear",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "compute_dtype": "float32",
        "timm": timm.__version__,
        "format": 1,
        **changed,
    }


def test_the_key_holds_each_documented_input_that_changes_the_features():
    key = features.feature_key(SPEC, Probe(), DATA, torch.device("cpu"))
    assert key.as_dict() == key_by_hand()


@pytest.mark.parametrize("device, dtype", [("cpu", "float32"), ("cuda", "bfloat16"), ("mps", "float32")])
def test_the_key_names_the_compute_dtype_bf16_autocast_on_a_gpu_fp32_elsewhere(device, dtype):
    assert features.feature_key(SPEC, Probe(), DATA, torch.device(device)).compute_dtype == dtype


def test_the_weights_digest_covers_the_backbones_parameters_and_buffers_but_not_the_classifier_head():
    """A new head (another number of classes, another random init) gives the same features: the same key."""
    model = Probe()
    digest = features.backbone_digest(model)
    assert digest == probe_backbone_sha256(model)
    with torch.no_grad():
        model.head.weight += 1.0
    assert features.backbone_digest(model) == digest
    with torch.no_grad():
        model.norm.running_mean += 1.0  # a buffer of the backbone: other features
    assert features.backbone_digest(model) == probe_backbone_sha256(model) != digest


def test_a_backbone_without_a_classifier_head_is_digested_whole():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2))
    assert features.backbone_digest(model) == sha256_of(model[0].weight, model[0].bias, model[1].weight, model[1].bias)


def digest_by_hand(**changed) -> str:
    """SHA-256 of the key as JSON with sorted names: what anyone can recompute from a key.json."""
    return hashlib.sha256(json.dumps(key_by_hand(**changed), sort_keys=True).encode()).hexdigest()


KEY = features.FeatureKey(**{name: tuple(v) if name in ("mean", "std") else v for name, v in key_by_hand().items()})


@pytest.mark.parametrize("dataset, kind", [("digits", "digits"), ("imagefolder:/data/flower photos", "imagefolder")])
def test_an_entry_is_named_by_the_model_asked_for_the_datasets_kind_and_16_hex_digits_of_the_key(
    tmp_path, dataset, kind
):
    folder = features.entry_folder(tmp_path, replace(KEY, dataset=dataset), "vit_nano_p4")
    assert folder == tmp_path / f"vit_nano_p4-{kind}-{digest_by_hand(dataset=dataset)[:16]}"


def key_of(pool_size: int, test_size: int) -> features.FeatureKey:
    return replace(KEY, pool_size=pool_size, test_size=test_size)


def test_a_vits_features_are_its_width_and_its_attention_heads_by_patches_and_prefix_tokens():
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=2, reg_tokens=2
    )
    tokens = (16 // 4) ** 2 + 1 + 2  # 16 patches, the class token, 2 registers
    assert features.expected_shapes(vit, key_of(5, 4)) == {
        "train_features": (5, 24),
        "test_features": (4, 24),
        "train_attention": (5, 2, tokens),
    }


def test_the_feature_width_is_the_pre_logits_width_where_it_differs_from_num_features():
    """MobileNetV3's pre-logits pass its 288 channels through a 1024-wide conv head: the features are 1024 wide."""
    net = timm.create_model("mobilenetv3_small_050").eval()
    with torch.no_grad():
        pre_logits = net.forward_head(net.forward_features(torch.zeros(1, 3, 32, 32)), pre_logits=True)
    assert pre_logits.shape == (1, 1024) and net.num_features == 288
    assert features.expected_shapes(net, key_of(5, 4)) == {"train_features": (5, 1024), "test_features": (4, 1024)}


def test_a_backbone_without_head_hidden_size_is_as_wide_as_its_num_features_and_one_with_neither_is_unknown():
    older = nn.Module()  # timm before head_hidden_size
    older.num_features = 7
    assert features.expected_shapes(older, key_of(5, 4)) == {"train_features": (5, 7), "test_features": (4, 7)}
    assert features.expected_shapes(nn.Module(), key_of(5, 4)) == {
        "train_features": (5, None),
        "test_features": (4, None),
    }


def vit_like(without: str = "") -> nn.Module:
    """A ViT as has_cls_attention sees one: a class token and blocks of 1, 2 and 4 heads, 9 patches, 1 prefix token."""
    model = nn.Module()
    model.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
    model.num_features = 8
    model.blocks = nn.ModuleList()
    for heads in (1, 2, 4):
        block = nn.Module()
        block.attn = nn.Module()
        block.attn.qkv = nn.Linear(8, 24)
        block.attn.num_heads = heads
        model.blocks.append(block)
    model.patch_embed = nn.Module()
    model.patch_embed.num_patches = 9
    model.num_prefix_tokens = 1
    if without == "patch_embed":
        del model.patch_embed
    elif without == "num_patches":
        del model.patch_embed.num_patches
    elif without == "num_prefix_tokens":
        del model.num_prefix_tokens
    return model


def test_the_attention_has_the_last_blocks_heads_and_the_patches_and_prefix_tokens():
    assert features.expected_shapes(vit_like(), key_of(5, 4))["train_attention"] == (5, 4, 10)


@pytest.mark.parametrize("without", ["patch_embed", "num_patches", "num_prefix_tokens"])
def test_a_token_count_a_backbone_does_not_tell_is_left_unknown(without):
    assert features.expected_shapes(vit_like(without), key_of(5, 4))["train_attention"] == (5, 4, None)


@pytest.mark.parametrize(
    "array",
    [
        np.array(3.5, np.float32),
        np.zeros((0, 4), np.float32),
        np.arange(24, dtype=np.float16).reshape(2, 3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],
    ],
    ids=["0-d", "empty", "float16 3-d", "Fortran order", "strided"],
)
def test_an_arrays_checksum_is_the_sha256_of_its_bytes_in_c_order(array):
    assert features.array_sha256(array) == hashlib.sha256(array.tobytes(order="C")).hexdigest()


ARRAYS = {
    "train_features": np.arange(6, dtype=np.float32).reshape(3, 2),
    "test_features": np.arange(10, 14, dtype=np.float32).reshape(2, 2),
    "train_attention": (np.arange(30) / 32).astype(np.float16).reshape(3, 2, 5),
}
SHAPES = {"train_features": (3, 2), "test_features": (2, 2), "train_attention": (3, 2, 5)}


def test_a_written_entry_reads_back_every_array_and_its_key_json_is_the_key_and_the_checksums(tmp_path):
    folder = tmp_path / "entry"
    features.write_entry(folder, KEY, ARRAYS)
    read, why_not = features.read_entry(folder, KEY, SHAPES)
    assert why_not is None
    for got, name in (
        (read.train, "train_features"),
        (read.test, "test_features"),
        (read.train_attention, "train_attention"),
    ):
        assert got.dtype == ARRAYS[name].dtype
        np.testing.assert_array_equal(got, ARRAYS[name])
    checksums = {name: hashlib.sha256(array.tobytes()).hexdigest() for name, array in ARRAYS.items()}
    # indented and sorted, so that two entries' keys can be read and compared with diff
    assert (folder / "key.json").read_text() == json.dumps(
        {**key_by_hand(), "sha256": checksums}, indent=2, sort_keys=True
    ) + "\n"


@pytest.fixture
def staging_seen(monkeypatch):
    """The folder each array is written into, recorded as np.save is called; ``fail`` makes a save fail."""
    seen = {"folders": [], "fail": None}
    save = np.save

    def recording(path, array):
        seen["folders"].append(Path(path).parent)
        if seen["fail"] is not None:
            seen["fail"](Path(path))
        save(path, array)

    monkeypatch.setattr(features.np, "save", recording)
    return seen


def test_an_entry_is_written_into_a_temporary_folder_beside_it_named_after_it_then_renamed(tmp_path, staging_seen):
    features.write_entry(tmp_path / "entry", KEY, ARRAYS)
    [staging] = set(staging_seen["folders"])
    assert staging.parent == tmp_path and re.fullmatch(r"\.entry\.\w+\.partial", staging.name)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["entry"]


def test_a_write_that_fails_leaves_no_temporary_folder_and_raises_its_own_error(tmp_path, staging_seen):
    def disk_full_at_the_second_array(path):
        if path.name == "test_features.npy":
            raise OSError(errno.ENOSPC, "No space left on device")

    staging_seen["fail"] = disk_full_at_the_second_array
    with pytest.raises(OSError, match="No space left on device"):
        features.write_entry(tmp_path / "entry", KEY, ARRAYS)
    assert list(tmp_path.iterdir()) == []  # the folder holding train_features.npy is gone too


def test_a_temporary_folder_removed_by_someone_else_mid_write_raises_the_writes_error_not_the_cleanups(
    tmp_path, staging_seen
):
    staging_seen["fail"] = lambda path: shutil.rmtree(path.parent)  # say, rm -rf cache/.*.partial
    with pytest.raises(FileNotFoundError) as raised:
        features.write_entry(tmp_path / "entry", KEY, ARRAYS)
    assert Path(raised.value.filename).name == "train_features.npy"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def entry(tmp_path):
    folder = tmp_path / "entry"
    features.write_entry(folder, KEY, ARRAYS)
    return folder


def why_not(entry, key=KEY, shapes=SHAPES) -> str:
    """The sentence a read of ``entry`` gives, less the ``feature cache entry <folder>`` it starts with."""
    read, reason = features.read_entry(entry, key, shapes)
    assert read is None
    prefix = f"feature cache entry {entry} "
    assert reason.startswith(prefix)
    return reason[len(prefix) :]


def test_a_key_json_that_is_not_json_or_not_a_key_is_said_so(entry):
    (entry / "key.json").write_text("{model: vit")
    assert why_not(entry) == "has a key.json that is not JSON (JSONDecodeError)"
    (entry / "key.json").write_text("[1, 2]")
    assert why_not(entry) == "has a key.json that holds no key"


def test_another_key_names_every_field_that_differs(entry):
    other = replace(KEY, dataset="mnist", timm="0.9.0")
    assert why_not(entry, other) == "holds another key (differs in dataset, timm)"


def test_a_missing_array_cannot_be_read_and_is_not_called_a_link(entry):
    (entry / "test_features.npy").unlink()
    assert why_not(entry) == "has test_features.npy, which cannot be read (No such file or directory)"


def rewrite(path: Path, array: np.ndarray, version=None, extra: bytes = b"") -> None:
    with open(path, "wb") as handle:
        np.lib.format.write_array(handle, array, version=version)
        handle.write(extra)


def test_an_array_in_npy_format_2_is_read_and_format_3_is_not_an_array_alvit_writes(entry):
    rewrite(entry / "train_features.npy", ARRAYS["train_features"], version=(2, 0))  # the same bytes after the header
    read, reason = features.read_entry(entry, KEY, SHAPES)
    assert reason is None
    np.testing.assert_array_equal(read.train, ARRAYS["train_features"])
    rewrite(entry / "train_features.npy", ARRAYS["train_features"], version=(3, 0))
    assert why_not(entry) == "has train_features.npy, which is not a .npy array (npy format (3, 0))"


def test_a_shape_the_backbone_cannot_tell_is_a_question_mark_in_the_sentence(entry):
    shapes = {**SHAPES, "train_features": (4, None)}
    assert why_not(entry, shapes=shapes) == "has train_features.npy shaped 3 x 2, not 4 x ?"


def test_an_array_in_fortran_order_is_damaged(entry):
    rewrite(entry / "train_features.npy", np.asfortranarray(ARRAYS["train_features"]))
    assert why_not(entry) == "has train_features.npy in Fortran order, which alvit never writes"


def test_bytes_after_an_array_are_damage(entry):
    rewrite(entry / "test_features.npy", ARRAYS["test_features"], extra=b"\0")
    assert why_not(entry) == "has test_features.npy with bytes after its array"


class FailingDisk(io.BufferedReader):
    """A file whose data cannot be read (EIO, as from a failing disk or a lost network mount); its header can."""

    def readinto(self, buffer):
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_an_array_whose_bytes_cannot_be_read_is_said_so(entry, monkeypatch):
    opened = features._open_in_entry
    monkeypatch.setattr(
        features,
        "_open_in_entry",
        lambda path: FailingDisk(io.FileIO(path)) if path.name == "train_features.npy" else opened(path),
    )
    assert why_not(entry) == "has train_features.npy, which cannot be read (Input/output error)"
