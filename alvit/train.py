"""Fine-tuning and prediction: one code path for CPU (fp32) and CUDA (bf16 autocast).

:func:`fit` follows STUDY.md's default recipe: AdamW, linear warm-up then cosine decay (per
step, over the full epoch budget), gradient clipping, and early stopping on a held-out split of
the labeled set whose labels are as noisy as the rest (a practitioner has no clean labels).
The weights of the epoch with the lowest held-out loss are kept.

:func:`predict` streams images through the model in batches and returns probabilities and,
on request, penultimate features, the last block's CLS attention and MC-dropout samples. Host
memory is the size of the outputs; device memory is bounded by the batch size.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from alvit.config import TrainConfig
from alvit.data import Preprocessor
from alvit.errors import ConfigError
from alvit.models import capture_cls_attention, has_cls_attention, mc_dropout

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but no CUDA device is available here; use device: auto or cpu")
    return torch.device(name)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; disabled on CPU, where bf16 is many times slower than fp32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@dataclass(frozen=True)
class FitResult:
    """What one round's training did."""

    epochs: int  # epochs run (fewer than the budget if early stopping fired)
    best_epoch: int  # 1-based epoch whose weights were kept
    val_loss: float  # held-out loss of those weights (NaN without a held-out split)
    seconds: float


def split_for_early_stopping(n: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(train, val)`` of a random held-out split; no val split below 1 sample."""
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n - n_val < 1:
        return np.arange(n), np.arange(0)
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    cfg: TrainConfig,
    label_smoothing: float,
    preprocess: Preprocessor,
    seed: np.random.SeedSequence,
    desc: str = "train",
    progress: bool = True,
) -> FitResult:
    """Fine-tune ``model`` in place on ``images`` (uint8 ``[N, 3, H, W]``) with ``labels`` ``[N]``."""
    start = time.perf_counter()
    device = preprocess.device
    rng = np.random.default_rng(seed)
    torch.manual_seed(int(seed.generate_state(1)[0]))  # any stochastic layer in the model
    # Without early stopping (patience 0) nothing is held out: every label trains.
    val_fraction = cfg.val_fraction if cfg.patience > 0 else 0.0
    train_pos, val_pos = split_for_early_stopping(len(labels), val_fraction, rng)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)

    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_pos) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = min(cfg.warmup_epochs * steps_per_epoch, total_steps - 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup_steps, total_steps))
    early_stopping = len(val_pos) > 0
    best_loss, best_epoch, best_state, waited = math.inf, cfg.epochs, None, 0
    epochs_run = 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, leave=False, disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        for batch in np.array_split(rng.permutation(train_pos), steps_per_epoch):
            flip = torch.from_numpy(rng.random(len(batch)) < 0.5) if cfg.augment == "flip" else None
            index = torch.from_numpy(batch).to(images.device)
            with autocast(device):
                logits = model(preprocess(images[index], flip))
            loss = F.cross_entropy(logits.float(), targets[index.to(device)], label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
        epochs_run = epoch
        if not early_stopping:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            continue
        val_loss = _mean_loss(model, images, targets, val_pos, preprocess, cfg.eval_batch_size, label_smoothing)
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_loss:.3f}")
        if val_loss < best_loss:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(
        epochs=epochs_run,
        best_epoch=best_epoch if early_stopping else epochs_run,
        val_loss=best_loss if early_stopping else math.nan,
        seconds=time.perf_counter() - start,
    )


@torch.inference_mode()
def _mean_loss(model, images, targets, positions, preprocess, batch_size, label_smoothing) -> float:
    model.eval()
    total = 0.0
    for batch in np.array_split(positions, math.ceil(len(positions) / batch_size)):
        index = torch.from_numpy(batch).to(images.device)
        with autocast(preprocess.device):
            logits = model(preprocess(images[index]))
        total += F.cross_entropy(logits.float(), targets[index.to(preprocess.device)], label_smoothing=label_smoothing, reduction="sum").item()
    return total / len(positions)


@dataclass(frozen=True)
class Predictions:
    """Model outputs for a set of images (float32 numpy arrays on the host)."""

    probs: np.ndarray  # [N, K]
    features: np.ndarray | None = None  # [N, D] penultimate (pre-logits) features
    attention: np.ndarray | None = None  # [N, H, T] last block's CLS attention, or [N, 1, D] pooled features
    attention_source: str | None = None  # "cls_attention" or "pooled_features"
    mc_probs: np.ndarray | None = None  # [T, N, K] stochastic passes


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    preprocess: Preprocessor,
    batch_size: int,
    features: bool = False,
    attention: bool = False,
    mc_passes: int = 0,
    mc_rate: float = 0.1,
) -> Predictions:
    """Run ``model`` over uint8 ``images`` ``[N, 3, H, W]`` in batches of ``batch_size``.

    ``attention`` asks for the last block's CLS attention; a backbone without a class token
    (Swin, CNNs) gives its pooled last-stage features instead, shaped ``[N, 1, D]``, and
    ``attention_source`` says which. ``mc_passes`` > 0 adds that many passes with dropout on.
    """
    model.eval()
    device = preprocess.device
    use_cls = attention and has_cls_attention(model)
    n = len(images)
    outputs: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        index = slice(start, min(start + batch_size, n))
        x = preprocess(images[index])
        with autocast(device):
            if use_cls:
                with capture_cls_attention(model) as captured:
                    pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
            else:
                pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
            logits = model.get_classifier()(pre_logits)
        batch_out = {"probs": logits.float().softmax(dim=-1)}
        if features or (attention and not use_cls):
            batch_out["features"] = pre_logits.float()
        if use_cls:
            batch_out["attention"] = captured[0]
        if mc_passes > 0:
            with mc_dropout(model, mc_rate), autocast(device):
                batch_out["mc_probs"] = torch.stack([model(x).float().softmax(dim=-1) for _ in range(mc_passes)], dim=1)
        for key, value in batch_out.items():
            if key not in outputs:
                outputs[key] = np.empty((n, *value.shape[1:]), dtype=np.float32)
            outputs[key][index] = value.cpu().numpy()
    if attention and not use_cls:
        log.info("%s has no CLS attention; GCI-ViTAL uses its pooled last-stage features instead", type(model).__name__)
        outputs["attention"] = outputs["features"][:, None, :]
    return Predictions(
        probs=outputs["probs"],
        features=outputs.get("features") if features else None,
        attention=outputs.get("attention"),
        attention_source=("cls_attention" if use_cls else "pooled_features") if attention else None,
        mc_probs=np.moveaxis(outputs["mc_probs"], 1, 0) if mc_passes > 0 else None,
    )
