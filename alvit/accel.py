"""The device fast path: precision and determinism switches, compiled entry points, and what
the run actually used (for ``env.json`` and ``alvit bench``).

Everything here is a no-op or a plain fallback on a CPU, so one code path serves both devices.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

# cuBLAS picks its reduction order from the workspace; a fixed configuration makes it repeatable.
CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"  # the environment variable cuBLAS reads
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def resolve_compile(setting: bool | str, device: torch.device) -> bool:
    """``train.compile``: ``auto`` compiles on CUDA only (on a CPU compiling costs about a minute
    per model and pays back only on long runs); ``true`` and ``false`` force it either way."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


@contextlib.contextmanager
def device_settings(device: torch.device, deterministic: bool = False) -> Iterator[None]:
    """TF32 matmuls and cuDNN autotuning on CUDA; with ``deterministic``, PyTorch's deterministic
    algorithms (and cuBLAS's fixed workspace) instead of autotuning. Restored on exit.

    TF32 is repeatable (same inputs, same bits); what ``deterministic`` removes is atomic
    accumulation in backward passes and autotuned kernel choices, at a cost measured in the README.
    """
    saved = (
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    )
    saved_workspace = os.environ.get(CUBLAS_WORKSPACE)
    if deterministic:
        # Read by cuBLAS when it first runs on a device; the loop trains before any other CUDA
        # matmul, so setting it here, at the first fit, is early enough. A value the user set wins.
        os.environ.setdefault(CUBLAS_WORKSPACE, CUBLAS_DETERMINISTIC_WORKSPACE)
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = not deterministic  # one batch shape: autotune once
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        torch.use_deterministic_algorithms(saved[2])
        if saved_workspace is None:
            os.environ.pop(CUBLAS_WORKSPACE, None)
        else:
            os.environ[CUBLAS_WORKSPACE] = saved_workspace


def compiled_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model(x)`` compiled once per model object: ``x: [B, 3, S, S]`` -> logits ``[B, K]``.

    The compiled module is kept on the model, so every round of a run (which reloads weights in
    place) reuses it: one compilation per run. Shapes are static; callers keep the batch fixed.
    """
    return _cached(model, "training forward", lambda: torch.compile(model, dynamic=False))


def compiled_scores(model: nn.Module) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Compiled ``x: [B, 3, S, S]`` -> ``(pre_logits [B, D], logits [B, K])``, once per model."""
    return _cached(model, "scoring forward", lambda: torch.compile(eager_scores(model), dynamic=False))


def eager_scores(model: nn.Module) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``x`` -> ``(pre_logits, logits)`` through timm's ``forward_features`` / ``forward_head``."""

    def scores(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
        return pre_logits, model.get_classifier()(pre_logits)

    return scores


def _cached(model: nn.Module, key: str, build: Callable[[], Callable]) -> Callable:
    # A plain dict attribute: nn.Module does not register it, so state_dict and weights files
    # stay exactly as without compilation.
    cache = model.__dict__.setdefault("_alvit_compiled", {})
    if key not in cache:
        log.info(
            "torch.compile: %s's %s is compiled at its first call (a minute or so); later rounds reuse it",
            type(model).__name__,
            key,
        )
        cache[key] = build()
    return cache[key]


def fused_attention(model: nn.Module) -> bool | None:
    """Whether every attention module runs timm's fused kernel (``F.scaled_dot_product_attention``).

    ``None`` for a model without attention modules (a CNN). SwinV2's cosine window attention
    has no fused path in timm, so it reads ``False``.
    """
    modules = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    if not modules:
        return None
    return all(getattr(m, "fused_attn", False) for m in modules)


def fast_path_record(model: nn.Module, device: torch.device, compiled: bool, deterministic: bool) -> dict:
    """What ``env.json`` says about the fast path of a run."""
    return {
        "compile": compiled,
        "fused_attn": fused_attention(model),
        "tf32": device.type == "cuda",
        "bf16_autocast": device.type == "cuda",
        "deterministic": deterministic,
    }


__all__ = [
    "compiled_forward",
    "compiled_scores",
    "device_settings",
    "eager_scores",
    "fast_path_record",
    "fused_attention",
    "resolve_compile",
]
