"""Backbones: the paper's names, CPU-sized presets, timm creation, local weights, and the
hooks the strategies need (penultimate features, the last block's CLS attention, MC dropout).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from alvit.catalog import CPU_PRESETS, PAPER_MODELS, check_model_name
from alvit.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """How to build a backbone and feed it: resolved from a user's model name."""

    name: str  # what the user wrote
    timm_name: str
    kwargs: dict[str, Any]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"  # how images are resized to input_size: the pretrained config's choice


def resolve_model(name: str, img_size: int | None = None) -> ModelSpec:
    """Map a user's name to a timm name and kwargs; read input size, mean, std and interpolation from timm."""
    check_model_name(name)
    timm_name, kwargs = CPU_PRESETS.get(name, (PAPER_MODELS.get(name, name), {}))
    kwargs = dict(kwargs)
    if img_size is not None:
        kwargs["img_size"] = img_size
    cfg = timm.get_pretrained_cfg(timm_name)
    cfg = cfg.to_dict() if cfg is not None else {}
    input_size = kwargs.get("img_size") or cfg.get("input_size", (3, 224, 224))[-1]
    return ModelSpec(
        name=name,
        timm_name=timm_name,
        kwargs=kwargs,
        input_size=int(input_size),
        mean=tuple(cfg.get("mean", (0.5, 0.5, 0.5))),
        std=tuple(cfg.get("std", (0.5, 0.5, 0.5))),
        interpolation=cfg.get("interpolation", "bicubic"),
    )


def create_model(
    spec: ModelSpec, num_classes: int, pretrained: bool = False, weights: str | Path | None = None
) -> nn.Module:
    """A timm backbone with a new classifier head of ``num_classes`` outputs.

    Args:
        spec: from :func:`resolve_model`.
        num_classes: K, the dataset's classes.
        pretrained: load timm's pretrained weights (from the Hugging Face cache or the hub).
        weights: a local ``.safetensors`` file or a ``torch.save`` state dict (read with
            ``weights_only=True``); its classifier head, if any, is dropped.
    """
    if pretrained and weights is None:
        with _offline_unless_hub_reachable():
            try:
                return _timm_create(spec, num_classes, pretrained=True)
            # A cache miss offline (LocalEntryNotFoundError), a refused or failed download (requests'
            # errors, HfHubHTTPError) are all OSErrors; anything else is a real error and propagates.
            except OSError as err:
                raise ConfigError(
                    f"pretrained weights for {spec.timm_name} are not in the local Hugging Face cache and "
                    f"could not be downloaded ({err.__class__.__name__}); copy the weights file here and "
                    f"set weights: <file>, or set pretrained: false"
                ) from err
    model = _timm_create(spec, num_classes, pretrained=False)
    if weights is not None:
        load_local_weights(model, weights)
    return model


def _timm_create(spec: ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    try:
        return timm.create_model(spec.timm_name, pretrained=pretrained, num_classes=num_classes, **spec.kwargs)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        # CNNs take any input size and have no img_size argument.
        kwargs = {k: v for k, v in spec.kwargs.items() if k != "img_size"}
        return timm.create_model(spec.timm_name, pretrained=pretrained, num_classes=num_classes, **kwargs)


@contextlib.contextmanager
def _offline_unless_hub_reachable() -> Iterator[None]:
    """Without a reachable hub, huggingface_hub retries for about a minute before failing.

    Offline mode makes a cache miss fail at once while cached weights still load. The library
    reads HF_HUB_OFFLINE at import, so its constant is switched, and restored afterwards.
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    if not _hub_reachable():
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def load_local_weights(model: nn.Module, path: str | Path) -> None:
    """Load a backbone state dict into ``model``, leaving its new classifier head as it is.

    Every backbone parameter must be present with the right shape; a head of another size in
    the file is ignored, since the head is always sized to the dataset.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    head_prefixes = _classifier_prefixes(model)
    own = model.state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith(head_prefixes)}
    missing = [k for k in own if not k.startswith(head_prefixes) and k not in backbone]
    wrong_shape = [k for k, v in backbone.items() if k in own and own[k].shape != v.shape]
    if missing or wrong_shape:
        example = (missing or wrong_shape)[0]
        raise ConfigError(
            f"weights file {path} does not fit model {type(model).__name__}: "
            f"{len(missing)} backbone tensors missing and {len(wrong_shape)} of another shape "
            f"(e.g. {example!r}); use weights saved from the same timm architecture"
        )
    model.load_state_dict(backbone, strict=False)


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the classifier head (timm's ``pretrained_cfg['classifier']``)."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "head")
    names = classifier if isinstance(classifier, (list, tuple)) else (classifier,)
    return tuple(f"{n}." for n in names)


def has_cls_attention(model: nn.Module) -> bool:
    """True for ViTs with a class token and a standard last attention block."""
    blocks = getattr(model, "blocks", None)
    return (
        getattr(model, "cls_token", None) is not None
        and blocks is not None
        and len(blocks) > 0
        and hasattr(blocks[-1], "attn")
        and hasattr(blocks[-1].attn, "qkv")
    )


@contextlib.contextmanager
def capture_cls_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the last block's attention from the CLS token, ``[B, heads, tokens]`` per forward.

    timm's fused attention never forms the attention matrix, so the CLS row is recomputed
    from the block's input with the block's own q/k projections: one row per head, cheap.
    """
    attn = model.blocks[-1].attn
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        batch, tokens, _ = x.shape
        qkv = module.qkv(x).reshape(batch, tokens, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4)
        q, k = module.q_norm(qkv[0]), module.k_norm(qkv[1])
        scores = (q[:, :, :1] * module.scale) @ k.transpose(-2, -1)  # [B, H, 1, T]
        captured.append(scores.float().softmax(dim=-1)[:, :, 0])

    handle = attn.register_forward_pre_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@contextlib.contextmanager
def mc_dropout(model: nn.Module, rate: float) -> Iterator[None]:
    """Make forward passes stochastic: every Dropout and DropPath module active at ``rate``.

    timm ViTs build their Dropout modules with p=0 and replace DropPath by Identity when the
    drop-path rate is 0, so "MC dropout" on a stock model would be deterministic. Here the
    dropout modules that exist (head, MLP, projection, position) and any DropPath are switched
    to ``rate`` and to train mode; everything else (LayerNorm, BatchNorm) stays in eval mode.
    Fused attention reads its dropout rate only when the attention block itself trains, so
    attention-weight dropout stays off: the block keeps its eval-mode kernel.
    The previous rates and modes come back on exit, so training is never affected.
    """
    from timm.layers import DropPath

    saved: list[tuple[nn.Module, str, float, bool]] = []
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            saved.append((module, "p", module.p, module.training))
            module.p = rate
            module.train()
        elif isinstance(module, DropPath):
            saved.append((module, "drop_prob", module.drop_prob, module.training))
            module.drop_prob = rate
            module.train()
    if not saved:
        raise ConfigError(
            f"{type(model).__name__} has no dropout modules, so BALD's stochastic passes would all agree; choose another model or strategy"
        )
    try:
        yield
    finally:
        for module, attr, value, training in saved:
            setattr(module, attr, value)
            module.train(training)


def model_flops(spec: ModelSpec, num_classes: int) -> float:
    """Forward multiply-accumulates x 2 for one image, counted with torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _timm_create(spec, num_classes, pretrained=False)
        x = torch.empty(1, 3, spec.input_size, spec.input_size)
        with FlopCounterMode(display=False) as counter:
            model(x)
    return float(counter.get_total_flops())


def num_features(spec: ModelSpec) -> int:
    """D, the width of the backbone's pooled features (what a linear head reads), built on the meta device."""
    with torch.device("meta"):
        return int(_timm_create(spec, 1, pretrained=False).num_features)


def gflops_per_image(spec: ModelSpec, num_classes: int) -> float:
    """Forward GFLOPs per image to 6 significant digits: the ``gflops_per_image`` a run folder records."""
    return float(f"{model_flops(spec, num_classes) / 1e9:.6g}")
