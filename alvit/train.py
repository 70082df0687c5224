"""Fine-tuning and prediction: one code path for CPU (fp32) and CUDA (bf16 autocast, TF32,
``torch.compile``).

:func:`fit` follows the study's default recipe (the book's protocol page): AdamW, linear warm-up
then cosine decay (per step, over the full epoch budget), gradient clipping, and early stopping
on a held-out split of the labeled set whose labels are as noisy as the rest (a practitioner has
no clean labels).
The weights of the epoch with the lowest held-out loss are kept.

The fast path, on by default on CUDA: the model is compiled once per run (``train.compile``),
with the uint8 -> resize -> normalise preprocessing inside the compiled graph, and replayed as
CUDA graphs (``train.cuda_graphs: auto``, with ``train.accumulate`` 1); every step sees exactly
``train.batch_size`` samples, so there is one shape to compile; batch indices and flip masks are
drawn on the device from a seeded generator; AdamW is timm's, with the fused kernel and no
weight decay on biases, norms and ``model.no_weight_decay()``; and the host waits for the device
once per epoch (the loss check), not once per step.

:func:`predict` streams images through the model in batches and returns probabilities and,
on request, penultimate features, the last block's CLS attention and MC-dropout samples.
Outputs stay on the device and are copied to the host once; device memory is the outputs plus
one batch. Out of device memory, it halves its batch and carries on.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from torch import nn
from tqdm import tqdm

from alvit.accel import (
    EAGER,
    FastPath,
    compiled_scores,
    device_settings,
    eager_scores,
    graph_step,
    training_forward,
)
from alvit.config import TrainConfig
from alvit.data import Preprocessor
from alvit.errors import ConfigError, TrainingError
from alvit.models import capture_cls_attention, has_cls_attention, mc_dropout

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but no CUDA device is available here; use device: auto or cpu"
        )
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
    held_out: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [n_val] positions
    # into the images/labels that fit was given: the split kept out of training (post-hoc calibration fits on it)


def split_for_early_stopping(n: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(train, val)`` of a random held-out split; no val split below 1 sample."""
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n - n_val < 1:
        return np.arange(n), np.arange(0)
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass
class EarlyStopping:
    """Early stopping on the held-out loss: the best epoch so far, and whether patience ran out.

    An epoch whose loss is strictly lower than every earlier one is the new best (its weights are
    kept); ``patience`` epochs in a row without one stop training.
    """

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0  # 1-based; 0 until an epoch was scored
    waited: int = 0  # epochs since the best

    def improved(self, epoch: int, loss: float) -> bool:
        """Record ``epoch``'s held-out ``loss``; True when it is the new best."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = loss, epoch, 0
            return True
        self.waited += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.waited >= self.patience


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def epoch_order(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Positions ``[steps * batch_size]`` into ``range(n)`` for one epoch, steps = ceil(n / batch_size).

    A fresh permutation, repeated as often as needed and cut to whole batches: the last batch is
    filled with the permutation's first samples, and a set smaller than a batch fills one batch.
    Drawn on the generator's device, so no index crosses from the host.
    """
    steps = math.ceil(n / batch_size)
    permutation = torch.randperm(n, generator=generator, device=generator.device)
    return permutation.repeat(math.ceil(steps * batch_size / n))[: steps * batch_size]


def create_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """timm's AdamW: weight decay 0 for biases, norm weights and ``model.no_weight_decay()``
    (``pos_embed``, ``cls_token``, ...), ``cfg.weight_decay`` for the rest; the fused kernel."""
    return create_optimizer_v2(
        model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type in ("cuda", "cpu")
    )


class TrainStep:
    """One optimizer step on ``cfg.batch_size`` images, as ``cfg.accumulate`` micro-batches.

    Each micro-batch's mean loss is scaled by ``1 / accumulate``, so the summed gradients equal
    those of the whole batch: ``accumulate`` trades speed for memory and leaves the recipe as is.
    The learning rate follows :func:`lr_factor` over ``cfg.epochs * steps_per_epoch`` steps.
    """

    def __init__(
        self, model: nn.Module, cfg: TrainConfig, preprocess: Preprocessor, steps_per_epoch: int, fast: FastPath
    ):
        self.model, self.cfg, self.preprocess, self.fast = model, cfg, preprocess, fast
        self.label_smoothing = cfg.label_smoothing or 0.0
        self.forward = training_forward(model, preprocess, fast)
        self.optimizer = create_optimizer(model, cfg, preprocess.device)
        total_steps = cfg.epochs * steps_per_epoch
        warmup_steps = min(cfg.warmup_epochs * steps_per_epoch, total_steps - 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup_steps, total_steps)
        )

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """``images``: uint8 ``[B, 3, H, W]``, ``targets``: ``[B]``, ``flip``: bool ``[B]`` or None,
        all on the device, B = ``cfg.batch_size``. Returns the batch's mean loss, 0-dim, on the device."""
        device, parts = self.preprocess.device, self.cfg.accumulate
        micro = self.cfg.batch_size // parts
        total = torch.zeros((), device=device)
        if self.fast.graphs:
            graph_step()  # the last step's logits and gradients are consumed: their memory may be reused
        for part in range(parts):
            rows = slice(part * micro, (part + 1) * micro)
            with autocast(device):
                logits = self.forward(images[rows], None if flip is None else flip[rows])
            loss = F.cross_entropy(logits.float(), targets[rows], label_smoothing=self.label_smoothing)
            (loss / parts).backward()
            total += loss.detach()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # frees the gradients before the held-out pass
        self.scheduler.step()
        return total / parts


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    cfg: TrainConfig,
    preprocess: Preprocessor,
    seed: np.random.SeedSequence,
    desc: str = "train",
    progress: bool = True,
) -> FitResult:
    """Fine-tune ``model`` in place on ``images`` (uint8 ``[N, 3, H, W]``) with ``labels`` ``[N]``.

    Label smoothing is ``cfg.label_smoothing`` (null: none). The loop passes the value of
    :meth:`ExperimentConfig.resolved_label_smoothing`, so a config's ``train.label_smoothing``
    is the one source of truth and the strategy's default applies only where it is null.

    Batches: every step sees exactly ``cfg.batch_size`` samples. Each epoch draws a fresh random
    permutation of the training samples and cuts it into ceil(n / batch_size) batches; the last
    batch is filled up with the first samples of the same permutation, so in each epoch every
    sample is seen at least once and at most batch_size - 1 samples twice, and a set smaller
    than one batch is repeated to fill it (see :func:`epoch_order`).

    ``desc`` names this training in the progress bar and in errors (the loop passes the round).
    Raises :class:`TrainingError`, naming it and the epoch, when a loss is not finite or the
    device runs out of memory, so a sweep records a failed run, never a row of NaN metrics.
    """
    start = time.perf_counter()
    device = preprocess.device
    rng = np.random.default_rng(seed)
    model_seed, batch_seed = (int(word) for word in seed.generate_state(2))
    torch.manual_seed(model_seed)  # any stochastic layer in the model
    generator = torch.Generator(device=device)
    generator.manual_seed(batch_seed)
    # Without early stopping (patience 0) nothing is held out: every label trains.
    val_fraction = cfg.val_fraction if cfg.patience > 0 else 0.0
    train_pos, val_pos = split_for_early_stopping(len(labels), val_fraction, rng)
    held_out = val_pos.astype(np.int64)
    images = images.to(device)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)
    train_pos, val_pos = torch.as_tensor(train_pos, device=device), torch.as_tensor(val_pos, device=device)

    model.to(device)
    fast = FastPath.for_run(cfg, device)
    steps_per_epoch = math.ceil(len(train_pos) / cfg.batch_size)
    step = TrainStep(model, cfg, preprocess, steps_per_epoch, fast)
    early_stopping = len(val_pos) > 0
    stopping, best_state = EarlyStopping(cfg.patience), None
    epochs_run = 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, leave=False, disable=not progress, unit="epoch")
    with device_settings(device, cfg.deterministic):
        for epoch in bar:
            model.train()
            order = train_pos[epoch_order(len(train_pos), cfg.batch_size, generator)].view(
                steps_per_epoch, cfg.batch_size
            )
            flips = torch.rand(order.shape, generator=generator, device=device) < 0.5 if cfg.augment == "flip" else None
            loss_sum = torch.zeros((), device=device)
            for i, batch in enumerate(order):
                try:
                    loss_sum += step(images[batch], targets[batch], None if flips is None else flips[i])
                except torch.OutOfMemoryError as err:
                    raise TrainingError(_out_of_memory_advice(desc, epoch, cfg)) from err
            train_loss = (loss_sum / steps_per_epoch).item()  # the one host sync of the epoch
            _check_finite(train_loss, "training", desc, epoch)
            epochs_run = epoch
            if not early_stopping:
                bar.set_postfix(loss=f"{train_loss:.3f}")
                continue
            val_loss = _held_out_loss(model, images, targets, val_pos, preprocess, cfg, fast)
            _check_finite(val_loss, "held-out", desc, epoch)
            bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if stopping.improved(epoch, val_loss):
                best_state = copy.deepcopy(model.state_dict())
            elif stopping.should_stop:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(
        epochs=epochs_run,
        best_epoch=stopping.best_epoch if early_stopping else epochs_run,
        val_loss=stopping.best_loss if early_stopping else math.nan,
        seconds=time.perf_counter() - start,
        held_out=held_out,
    )


def _check_finite(loss: float, which: str, desc: str, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainingError(
            f"{desc}, epoch {epoch}: the {which} loss is {loss}, so the run stops here rather than "
            f"record meaningless metrics; lower train.lr or keep train.grad_clip above 0"
        )


def _out_of_memory_advice(desc: str, epoch: int, cfg: TrainConfig) -> str:
    more = next((a for a in range(cfg.accumulate + 1, cfg.batch_size + 1) if cfg.batch_size % a == 0), None)
    micro = cfg.batch_size // cfg.accumulate
    if more is None:
        return (
            f"{desc}, epoch {epoch}: the device ran out of memory with one image per micro-batch; "
            f"choose a smaller model or free the device"
        )
    return (
        f"{desc}, epoch {epoch}: the device ran out of memory training on micro-batches of {micro} images; "
        f"set train.accumulate={more} (micro-batches of {cfg.batch_size // more}, train.batch_size stays "
        f"the effective batch) or free the device"
    )


@torch.inference_mode()
def _held_out_loss(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    positions: torch.Tensor,
    preprocess: Preprocessor,
    cfg: TrainConfig,
    fast: FastPath,
) -> float:
    """Mean loss over ``images[positions]``, through the same (compiled) scoring as :func:`predict`."""
    model.eval()
    score = _scorer(model, preprocess, fast)
    losses = torch.empty(len(positions), device=preprocess.device)

    def run(rows: slice, batch_size: int) -> None:
        index = positions[rows]
        with autocast(preprocess.device):
            logits = score(images[index], batch_size)[1]
        losses[rows] = F.cross_entropy(
            logits.float(), targets[index], label_smoothing=cfg.label_smoothing or 0.0, reduction="none"
        )

    _in_batches(len(positions), cfg.eval_batch_size, run, "held-out loss")
    return losses.mean().item()


def _pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x: [b, ...]`` -> ``[size, ...]`` with zero rows appended: one input shape for a compiled graph."""
    return x if len(x) == size else torch.cat([x, x.new_zeros((size - len(x), *x.shape[1:]))])


def _scorer(
    model: nn.Module, preprocess: Preprocessor, fast: FastPath
) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]:
    """``score(images uint8 [b, 3, H, W], batch_size) -> (pre_logits [b, D], logits [b, K])``:
    preprocessing and the model, eager or compiled as ``fast`` says.

    A compiled graph sees every batch padded to ``batch_size`` (one shape); the padding rows are
    cut off again, so callers never see them. With CUDA graphs the results live in the graph's
    memory until the next call replays it: callers copy or consume them before calling again.
    """
    if not fast.compile:
        scores = eager_scores(model)
        return lambda images, batch_size: scores(preprocess(images))
    compiled = compiled_scores(model, preprocess, fast)

    def score(images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Fused: the graph takes the uint8 batch, on the device (a graph with a host input would
        # not be replayed as a CUDA graph), copied: a slice of the caller's images is a view,
        # which the compiler guards apart from a fresh tensor (the held-out pass passes those).
        x = images.to(preprocess.device, non_blocking=True).clone() if fast.fuse_preprocess else preprocess(images)
        if fast.graphs:
            graph_step()
        pre_logits, logits = compiled(_pad(x, batch_size))
        return pre_logits[: len(images)], logits[: len(images)]

    return score


def _in_batches(n: int, batch_size: int, run: Callable[[slice, int], None], what: str) -> None:
    """Call ``run(rows, batch_size)`` for consecutive ``rows`` covering ``range(n)``.

    When the device runs out of memory, the batch is halved and the same rows run again (``run``
    writes only whole results, so a retry overwrites nothing half done); at one image per batch
    the error stops the run.
    """
    start = 0
    while start < n:
        rows = slice(start, min(start + batch_size, n))
        try:
            run(rows, batch_size)
        except torch.OutOfMemoryError as err:
            if batch_size == 1:
                raise TrainingError(
                    f"{what}: the device ran out of memory with one image per batch; "
                    f"choose a smaller model or free the device"
                ) from err
            out_of_memory = True
        else:
            out_of_memory = False
        if out_of_memory:  # outside the except clause, so the failed batch's tensors are freed
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            batch_size //= 2
            log.warning("%s: out of device memory; batch halved to %d images and retried", what, batch_size)
            continue
        start = rows.stop


@dataclass(frozen=True)
class Predictions:
    """Model outputs for a set of images (float32 numpy arrays on the host)."""

    probs: np.ndarray  # [N, K]
    logits: np.ndarray | None = None  # [N, K] float32, when asked for (temperature scaling needs them)
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
    fast: FastPath = EAGER,
    logits: bool = False,
    temperature: float = 1.0,
) -> Predictions:
    """Run ``model`` over uint8 ``images`` ``[N, 3, H, W]`` in batches of ``batch_size``.

    ``logits`` keeps the logits beside the probabilities. ``attention`` asks for the last block's CLS attention; a backbone without a class token
    (Swin, CNNs) gives its pooled last-stage features instead, shaped ``[N, 1, D]``, and
    ``attention_source`` says which. ``mc_passes`` > 0 adds that many passes with dropout on.
    The probabilities of every pass are ``softmax(logits / temperature)`` (calibrated acquisition;
    ``temperature`` > 0, and 1 leaves them the model's own exactly: dividing by 1 is exact).

    ``fast`` runs preprocessing and ``forward_features``/``forward_head`` as it says (compiled
    once per model, see :func:`alvit.accel.compiled_scores`), each batch padded to
    ``batch_size`` so there is one shape. Two paths stay eager, since a compiled graph would not
    see what they change: the CLS attention capture (a forward pre-hook on the last block) and
    the MC-dropout passes (which switch dropout rates and modes). The results are the same; only
    those paths are slower. Each batch's results are copied into the outputs before the next
    batch runs, as CUDA graphs require.
    """
    model.eval()
    device = preprocess.device
    use_cls = attention and has_cls_attention(model)
    score = _scorer(model, preprocess, EAGER if use_cls else fast)
    n = len(images)
    outputs: dict[str, torch.Tensor] = {}

    def run(rows: slice, batch_size: int) -> None:
        batch = images[rows]
        with autocast(device):
            if use_cls:
                with capture_cls_attention(model) as captured:
                    pre_logits, scores = score(batch, batch_size)
            else:
                pre_logits, scores = score(batch, batch_size)
        batch_out = {"probs": (scores.float() / temperature).softmax(dim=-1)}
        if logits:
            batch_out["logits"] = scores.float()
        if features or (attention and not use_cls):
            batch_out["features"] = pre_logits.float()
        if use_cls:
            batch_out["attention"] = captured[0]
        if mc_passes > 0:
            x = preprocess(batch)
            with mc_dropout(model, mc_rate), autocast(device):
                batch_out["mc_probs"] = torch.stack(
                    [(model(x).float() / temperature).softmax(dim=-1) for _ in range(mc_passes)], dim=1
                )
        for key, value in batch_out.items():
            if key not in outputs:
                outputs[key] = torch.empty((n, *value.shape[1:]), dtype=torch.float32, device=device)
            outputs[key][rows] = value

    with device_settings(device):
        _in_batches(n, batch_size, run, "predict")
    host = {key: value.cpu().numpy() for key, value in outputs.items()}  # the one copy to the host
    if attention and not use_cls:
        log.info("%s has no CLS attention; GCI-ViTAL uses its pooled last-stage features instead", type(model).__name__)
        host["attention"] = host["features"][:, None, :]
    return Predictions(
        probs=host["probs"],
        logits=host.get("logits"),
        features=host.get("features") if features else None,
        attention=host.get("attention"),
        attention_source=("cls_attention" if use_cls else "pooled_features") if attention else None,
        mc_probs=np.moveaxis(host["mc_probs"], 1, 0) if mc_passes > 0 else None,
    )
