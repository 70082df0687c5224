"""The feature cache of ``train.mode: linear``: a frozen backbone's features and CLS attention, computed once.

In linear mode the pretrained backbone never trains, so what it makes of an image is the same in
every round, run, seed, strategy and noise rate. It is computed once per *key*, everything that
changes it:

- the backbone: timm name and keyword arguments, and a SHA-256 of its weights as created (so a
  changed weights file, another timm tag or another random initialisation is another key);
- the images: the dataset's name and a SHA-256 of every pool and test image as loaded (so
  ``data.max_pool``, ``data.max_test`` or a changed image folder is another key);
- the input pipeline: input size, interpolation, mean and std;
- the compute dtype (bf16 autocast on a GPU, fp32 on a CPU) and the timm version.

An entry is a folder ``<cache>/<model>-<dataset>-<digest>/`` holding ``key.json``,
``train_features.npy`` ``float32 [N, D]``, ``test_features.npy`` ``float32 [M, D]`` and, for a
backbone with a class token, ``train_attention.npy`` ``float16 [N, heads, tokens]`` (the last
block's CLS attention, for GCI-ViTAL; float16 halves 470 MB for ViT-B/16 on CIFAR). It is written
into a temporary folder and renamed into place, under an exclusive lock (``flock``) on
``<entry>.lock``, so concurrent workers and SLURM tasks compute it once: the others wait, then
read it. On read, ``key.json`` must equal the key and the arrays the data's shapes, or the entry
is computed again; a stale entry is never served. Every extraction appends one line to
``<cache>/extractions.jsonl`` (digest, seconds, images, host, process).

The cache lives in ``$ALVIT_DATA/features`` unless a configuration's ``cache`` names a folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from torch import nn

from alvit import paths
from alvit.config import ExperimentConfig
from alvit.data import Dataset, Preprocessor
from alvit.models import ModelSpec, create_model, has_cls_attention
from alvit.train import predict

log = logging.getLogger(__name__)
FORMAT = 1  # bumped when an entry's layout changes, so old entries are recomputed, never misread


@dataclass(frozen=True)
class FeatureKey:
    """Everything that changes a frozen backbone's output on a dataset."""

    model: str  # timm name
    model_kwargs: dict
    weights_sha256: str
    dataset: str
    images_sha256: str
    pool_size: int
    test_size: int
    input_size: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    compute_dtype: str
    timm: str
    format: int = FORMAT

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples as lists, as key.json holds them

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CachedFeatures:
    """A frozen backbone's view of a dataset."""

    train: np.ndarray  # float32 [N, D] pooled pre-logits features of the pool
    test: np.ndarray  # float32 [M, D] of the test set
    train_attention: np.ndarray | None  # float16 [N, heads, tokens] CLS attention; None without a class token


def cache_root(cfg: ExperimentConfig) -> Path:
    """``cfg.cache``, else ``$ALVIT_DATA/features``."""
    return paths.resolve(cfg.cache) if cfg.cache else paths.data_home() / "features"


def sha256_of_tensors(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def backbone_digest(model: nn.Module) -> str:
    """SHA-256 of the backbone's weights in state-dict order, the classifier head left out."""
    head = {id(p) for p in model.get_classifier().parameters()} if hasattr(model, "get_classifier") else set()
    kept = [t for name, t in model.state_dict(keep_vars=True).items() if id(t) not in head]
    return sha256_of_tensors(kept)


def feature_key(spec: ModelSpec, backbone: nn.Module, data: Dataset, device: torch.device) -> FeatureKey:
    return FeatureKey(
        model=spec.timm_name,
        model_kwargs=dict(spec.kwargs),
        weights_sha256=backbone_digest(backbone),
        dataset=data.name,
        images_sha256=sha256_of_tensors([data.train_images, data.test_images]),
        pool_size=len(data.train_labels),
        test_size=len(data.test_labels),
        input_size=spec.input_size,
        interpolation=spec.interpolation,
        mean=tuple(spec.mean),
        std=tuple(spec.std),
        compute_dtype="bfloat16" if device.type == "cuda" else "float32",
        timm=timm.__version__,
    )


def entry_folder(root: Path, key: FeatureKey) -> Path:
    return root / f"{Path(key.model).name}-{key.dataset.split(':')[0]}-{key.digest[:16]}"


def read_entry(folder: Path, key: FeatureKey) -> CachedFeatures | None:
    """The entry in ``folder`` if it holds exactly ``key`` with arrays of its shapes; else None."""
    try:
        if json.loads((folder / "key.json").read_text()) != key.as_dict():
            return None
        train = np.load(folder / "train_features.npy")
        test = np.load(folder / "test_features.npy")
        attention_path = folder / "train_attention.npy"
        attention = np.load(attention_path) if attention_path.exists() else None
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if len(train) != key.pool_size or len(test) != key.test_size or train.shape[1:] != test.shape[1:]:
        return None
    if attention is not None and len(attention) != key.pool_size:
        return None
    return CachedFeatures(train, test, attention)


@contextlib.contextmanager
def claimed(lock_path: Path) -> Iterator[None]:
    """An exclusive lock on ``lock_path`` (created if missing), held for the block: one writer at a time."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def extract(
    backbone: nn.Module, data: Dataset, preprocess: Preprocessor, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Train features, test features and (with a class token) train CLS attention, in batches."""
    attention = has_cls_attention(backbone)
    pool = predict(backbone, data.train_images, preprocess, batch_size, features=True, attention=attention)
    test = predict(backbone, data.test_images, preprocess, batch_size, features=True)
    return pool.features, test.features, pool.attention.astype(np.float16) if attention else None


def write_entry(folder: Path, key: FeatureKey, arrays: dict[str, np.ndarray]) -> None:
    """Write into a temporary folder beside ``folder``, then rename it into place (``key.json`` last)."""
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, array in arrays.items():
        np.save(staging / f"{name}.npy", array)
    (staging / "key.json").write_text(json.dumps(key.as_dict(), indent=2, sort_keys=True) + "\n")
    if folder.exists():  # a stale or damaged entry of the same name: replaced, never served
        shutil.rmtree(folder)
    os.rename(staging, folder)


def load_or_extract(
    cfg: ExperimentConfig, spec: ModelSpec, data: Dataset, device: torch.device, batch_size: int | None = None
) -> CachedFeatures:
    """The frozen backbone's features of ``data``: read from the cache, or computed once and cached.

    The backbone is built (weights loaded, no forward pass) to know its key; it runs only when no
    valid entry exists, by the one process holding the entry's lock.
    """
    torch.manual_seed(0)  # a random-init backbone (pretrained: false) is the same in every run of a sweep
    backbone = create_model(spec, data.num_classes, cfg.pretrained, cfg.weights).to(device).eval()
    key = feature_key(spec, backbone, data, device)
    root = cache_root(cfg)
    folder = entry_folder(root, key)
    cached = read_entry(folder, key)
    if cached is not None:
        return cached
    paths.make_folder(root, "cache", "the cached features")  # one sentence if it cannot be one
    with claimed(folder.with_name(folder.name + ".lock")):
        cached = read_entry(folder, key)  # computed by another worker while this one waited
        if cached is not None:
            return cached
        start = time.perf_counter()
        preprocess = Preprocessor.for_model(spec, device)
        train, test, attention = extract(backbone, data, preprocess, batch_size or cfg.train.eval_batch_size)
        computed = CachedFeatures(train, test, attention)
        arrays = {"train_features": train, "test_features": test}
        if attention is not None:
            arrays["train_attention"] = attention
        write_entry(folder, key, arrays)
        seconds = time.perf_counter() - start
        record = {
            "digest": key.digest,
            "entry": folder.name,
            "images": key.pool_size + key.test_size,
            "seconds": round(seconds, 2),
            "device": str(device),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(root / "extractions.jsonl", "a") as journal:
            journal.write(json.dumps(record) + "\n")
        log.info(
            "features of %s on %s: %d images in %.1f s -> %s",
            spec.timm_name,
            data.name,
            record["images"],
            seconds,
            folder,
        )
    return computed


def fill_cache(configs: list[ExperimentConfig], progress: bool = True) -> list[str]:
    """Make sure every linear-mode configuration's features are cached (``alvit fetch --features``).

    Each distinct backbone and dataset is loaded once; returns one line per cache entry.
    """
    from alvit.data import load_dataset
    from alvit.models import resolve_model
    from alvit.train import resolve_device

    lines, seen = [], set()
    for cfg in configs:
        if cfg.train.mode != "linear":
            continue
        what = (cfg.dataset, cfg.data.max_pool, cfg.data.max_test, cfg.model, cfg.img_size, cfg.pretrained, cfg.weights)
        if what + (cfg.cache,) in seen:
            continue
        seen.add(what + (cfg.cache,))
        start = time.perf_counter()
        data = load_dataset(cfg.dataset, cfg.data.max_pool, cfg.data.max_test)
        spec = resolve_model(cfg.model, cfg.img_size)
        cached = load_or_extract(cfg, spec, data, resolve_device(cfg.device))
        lines.append(
            f"features of {cfg.model} on {cfg.dataset}: {len(cached.train) + len(cached.test)} images, "
            f"{cached.train.shape[1]} dimensions, attention {'cached' if cached.train_attention is not None else 'none (no class token)'} "
            f"({time.perf_counter() - start:.1f} s) in {cache_root(cfg)}"
        )
        if progress:
            print(lines[-1], flush=True)
    return lines
