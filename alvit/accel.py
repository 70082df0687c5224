"""The device fast path: precision and determinism switches, compiled entry points, and what
the run actually used (for ``env.json`` and ``alvit bench``).

Everything here is a no-op or a plain fallback on a CPU, so one code path serves both devices.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.utils.deterministic
from torch import nn

if TYPE_CHECKING:
    from alvit.config import TrainConfig

log = logging.getLogger(__name__)

# cuBLAS picks its reduction order from the workspace; a fixed configuration makes it repeatable.
CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"  # the environment variable cuBLAS reads
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def resolve_compile(setting: bool | str, device: torch.device) -> bool:
    """``train.compile``: ``auto`` compiles on CUDA only (on a CPU compiling costs about a minute
    per model and pays back only on long runs); ``true`` and ``false`` force it either way."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def resolve_graphs(setting: bool | str, device: torch.device, compiled: bool, accumulate: int = 1) -> bool:
    """``train.cuda_graphs``: replay the compiled graphs as CUDA graphs (``torch.compile``'s
    ``reduce-overhead`` mode), which removes the per-kernel launch cost that bounds small batches.

    ``auto`` (the default) and ``true``: only on CUDA, only when compiled, and only with
    ``accumulate`` 1 (a second micro-batch's backward would replay into the memory that holds the
    first one's gradients); elsewhere nothing changes, so a CPU run stays as it was. ``false``:
    never. On by default: on one H200 they were faster in each ViT job timed with and without
    them, and scoring at 256 with them matched the first check's (the book's performance page).
    """
    wanted = setting == "auto" or setting is True
    return wanted and device.type == "cuda" and compiled and accumulate == 1


@dataclass(frozen=True)
class FastPath:
    """How a model runs: eager, or compiled with the options below (each a no-op when eager).

    ``graphs``: CUDA graphs; ``fuse_preprocess``: uint8 -> resize -> normalise inside the
    compiled graph (one graph instead of a few eager kernels before it, and a uint8 batch to
    pad rather than a float one); ``autotune``: ``torch.compile``'s max-autotune (Triton matmul
    templates benchmarked at compile time, with their epilogues fused; minutes of compilation).
    """

    compile: bool = False
    graphs: bool = False
    fuse_preprocess: bool = True
    autotune: bool = False

    @classmethod
    def for_run(cls, cfg: TrainConfig, device: torch.device) -> FastPath:
        """The fast path a run's ``train`` section asks for on ``device``."""
        compiled = resolve_compile(cfg.compile, device)
        return cls(compile=compiled, graphs=resolve_graphs(cfg.cuda_graphs, device, compiled, cfg.accumulate))

    @property
    def mode(self) -> str | None:
        """The ``torch.compile`` mode: None (the default), ``reduce-overhead`` (CUDA graphs), or a max-autotune one."""
        if self.autotune:
            return "max-autotune" if self.graphs else "max-autotune-no-cudagraphs"
        return "reduce-overhead" if self.graphs else None

    def describe(self) -> str:
        """``eager``, or ``compiled`` and its options, e.g. ``compiled+graphs+fused``."""
        if not self.compile:
            return "eager"
        options = [("graphs", self.graphs), ("fused", self.fuse_preprocess), ("autotune", self.autotune)]
        return "+".join(["compiled", *(name for name, on in options if on)])


EAGER = FastPath()


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
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    saved_workspace = os.environ.get(CUBLAS_WORKSPACE)
    if deterministic:
        # Read by cuBLAS when it first runs on a device; the loop trains before any other CUDA
        # matmul, so setting it here, at the first fit, is early enough. A value the user set wins.
        os.environ.setdefault(CUBLAS_WORKSPACE, CUBLAS_DETERMINISTIC_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also fills every fresh allocation with NaN, a guard for programs
        # that read memory they never wrote; PyTorch's documentation says a program that does
        # not may turn it off and stay deterministic. alvit's steps write all they read (the
        # GPU test repeats training bit for bit), so the fill kernels are left out.
        torch.utils.deterministic.fill_uninitialized_memory = False
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = not deterministic  # one batch shape: autotune once
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        torch.use_deterministic_algorithms(saved[2])
        torch.utils.deterministic.fill_uninitialized_memory = saved[3]
        if saved_workspace is None:
            os.environ.pop(CUBLAS_WORKSPACE, None)
        else:
            os.environ[CUBLAS_WORKSPACE] = saved_workspace


def training_forward(
    model: nn.Module, preprocess: Callable[..., torch.Tensor], fast: FastPath
) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``forward(images, flip)``: uint8 ``[B, 3, H, W]`` and bool ``[B]`` or None -> logits ``[B, K]``,
    through ``preprocess`` and ``model``, eager or compiled as ``fast`` says.

    A compiled function is kept on the model, so every round of a run (which reloads weights in
    place) reuses it: one compilation per run. Shapes are static; callers keep the batch fixed.
    """
    if not fast.compile:
        return lambda images, flip: model(preprocess(images, flip))
    if fast.fuse_preprocess:
        return _compiled(
            model, "training forward", fast, preprocess, lambda images, flip: model(preprocess(images, flip))
        )
    compiled = _compiled(model, "training forward", fast, None, model)
    return lambda images, flip: compiled(preprocess(images, flip))


def compiled_scores(
    model: nn.Module, preprocess: Callable[..., torch.Tensor], fast: FastPath
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Compiled ``x`` -> ``(pre_logits [B, D], logits [B, K])``, once per model and fast path;
    ``x`` is the uint8 batch ``[B, 3, H, W]`` with ``fast.fuse_preprocess``, else the model's
    input ``[B, 3, S, S]``. With CUDA graphs the outputs live until the next call overwrites them."""
    scores = eager_scores(model)
    if fast.fuse_preprocess:
        return _compiled(model, "scoring forward", fast, preprocess, lambda images: scores(preprocess(images)))
    return _compiled(model, "scoring forward", fast, None, scores)


def eager_scores(model: nn.Module) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``x`` -> ``(pre_logits, logits)`` through timm's ``forward_features`` / ``forward_head``."""

    def scores(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
        return pre_logits, model.get_classifier()(pre_logits)

    return scores


def _compiled(model: nn.Module, what: str, fast: FastPath, preprocess: object | None, fn: Callable) -> Callable:
    """``torch.compile(fn)`` as ``fast`` says, once per model, ``what``, mode and preprocessing."""
    # A plain dict attribute: nn.Module does not register it, so state_dict and weights files
    # stay exactly as without compilation. The entry keeps the preprocessing object it was
    # compiled with, so its id in the key cannot be reused by another one.
    cache = model.__dict__.setdefault("_alvit_compiled", {})
    key = (what, fast.mode, id(preprocess))
    if key not in cache:
        log.info(
            "torch.compile: %s's %s (%s) is compiled at its first call (a minute or so); later rounds reuse it",
            type(model).__name__,
            what,
            fast.describe(),
        )
        cache[key] = (preprocess, torch.compile(fn, dynamic=False, mode=fast.mode))
    return cache[key][1]


def graph_step() -> None:
    """Start a new CUDA-graph step: the outputs of earlier replays are no longer read (each
    caller copies or consumes them before its next call), so their memory may be reused."""
    torch.compiler.cudagraph_mark_step_begin()


def fused_attention(model: nn.Module) -> bool | None:
    """Whether every attention module runs timm's fused kernel (``F.scaled_dot_product_attention``).

    ``None`` for a model without attention modules (a CNN). SwinV2's cosine window attention
    has no fused path in timm, so it reads ``False``.
    """
    modules = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    if not modules:
        return None
    return all(getattr(m, "fused_attn", False) for m in modules)


def fast_path_record(model: nn.Module, device: torch.device, fast: FastPath, deterministic: bool) -> dict:
    """What ``env.json`` says about the fast path of a run."""
    return {
        "compile": fast.compile,
        "cuda_graphs": fast.graphs,
        "fused_preprocess": fast.compile and fast.fuse_preprocess,
        "fused_attn": fused_attention(model),
        "tf32": device.type == "cuda",
        "bf16_autocast": device.type == "cuda",
        "deterministic": deterministic,
    }


__all__ = [
    "EAGER",
    "FastPath",
    "compiled_scores",
    "device_settings",
    "eager_scores",
    "fast_path_record",
    "fused_attention",
    "graph_step",
    "resolve_compile",
    "resolve_graphs",
    "training_forward",
]
