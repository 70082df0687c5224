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

An entry is a folder ``<cache>/<model>-<dataset>-<digest>/`` (``<model>`` as the configuration names it) holding ``key.json``,
``train_features.npy`` ``float32 [N, D]``, ``test_features.npy`` ``float32 [M, D]`` and, for a
backbone with a class token, ``train_attention.npy`` ``float16 [N, heads, tokens]`` (the last
block's CLS attention, for GCI-ViTAL; float16 halves 470 MB for ViT-B/16 on CIFAR). It is written
into a temporary folder and renamed into place, under an exclusive lock (``flock``) on
``<entry>.lock``, so concurrent workers and SLURM tasks compute it once: the others wait, then
read it. ``key.json`` holds the key and the SHA-256 of each array's bytes. Every read checks, in
one pass over each file, that ``key.json`` equals the key, each array has its dtype and shape
(``N x D`` with D the backbone's width; attention ``N x heads x tokens``), is finite and has its
checksum; an entry that fails (stale, cut, of another width, empty) is computed again with one
log line, never served. Nothing in the cache is followed through a symbolic link: an entry, an
array or ``key.json`` that is one is damaged and replaced (the link, never its target), and so is a
lock file or ``extractions.jsonl`` that is one, each said in one log line. The temporary folder
has an unpredictable name (``tempfile.mkdtemp``). Every extraction appends one line to
``<cache>/extractions.jsonl`` (digest, seconds, images, host, process).

The cache lives in ``$ALVIT_DATA/features`` unless a configuration's ``cache`` names a folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import timm
import torch
from torch import nn

from alvit import paths
from alvit.config import ExperimentConfig
from alvit.data import Dataset, Preprocessor
from alvit.errors import TrainingError
from alvit.models import ModelSpec, create_model, has_cls_attention
from alvit.results import current_umask
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
    return paths.feature_cache(cfg.cache)


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


def entry_folder(root: Path, key: FeatureKey, model: str) -> Path:
    """``<root>/<model>-<dataset>-<digest>``, ``model`` the name the configuration asked for (two presets of
    one timm architecture, such as vit_nano_p4 and vit_tiny_p4, are told apart by name as by digest)."""
    return root / f"{Path(model).name}-{key.dataset.split(':')[0]}-{key.digest[:16]}"


ARRAY_DTYPES = {"train_features": np.float32, "test_features": np.float32, "train_attention": np.float16}
# Bytes read, hashed and checked at a time: small enough to stay in the CPU cache between the three
# (1 MiB read a 421 MB entry fastest of 256 KiB to 16 MiB on 2 cores).
READ_CHUNK = 1 << 20


class DamagedEntry(Exception):
    """What is wrong with a cache entry, in words that follow its path (``... is empty``)."""


def expected_shapes(backbone: nn.Module, key: FeatureKey) -> dict[str, tuple[int | None, ...]]:
    """The shape of each array an entry of ``key`` made by ``backbone`` holds (None: a size it cannot tell).

    Features are ``[N, D]`` and ``[M, D]`` with D the backbone's pre-logits width (timm's
    ``head_hidden_size``, else ``num_features``); with a class token, the CLS attention is
    ``[N, heads, tokens]``, tokens being the patches and the prefix tokens (class, registers).
    """
    width = getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features", None)
    shapes: dict[str, tuple[int | None, ...]] = {
        "train_features": (key.pool_size, width),
        "test_features": (key.test_size, width),
    }
    if has_cls_attention(backbone):
        patches = getattr(getattr(backbone, "patch_embed", None), "num_patches", None)
        prefix = getattr(backbone, "num_prefix_tokens", None)
        tokens = patches + prefix if patches is not None and prefix is not None else None
        shapes["train_attention"] = (key.pool_size, backbone.blocks[-1].attn.num_heads, tokens)
    return shapes


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order (what ``np.save`` writes after its header); hashlib reads a
    C-contiguous array's buffer as its bytes, whatever its dtype and shape."""
    return hashlib.sha256(np.ascontiguousarray(array)).hexdigest()


def read_entry(
    folder: Path, key: FeatureKey, shapes: dict[str, tuple[int | None, ...]]
) -> tuple[CachedFeatures | None, str | None]:
    """The entry in ``folder`` if it holds exactly ``key`` with sound arrays of ``shapes``.

    Returns (features, None), or (None, why not: one sentence naming the entry; None when there
    is no entry at all).
    """
    if not os.path.lexists(folder):
        return None, None
    try:
        if folder.is_symlink():
            raise DamagedEntry(f"is a symbolic link (to {os.readlink(folder)}), not a folder of this cache")
        with _open_in_entry(folder / "key.json") as handle:
            try:
                recorded = json.loads(handle.read())
            except (OSError, ValueError) as err:  # not JSON, not text, or not a file
                raise DamagedEntry(f"has a key.json that is not JSON ({err.__class__.__name__})") from err
        if not isinstance(recorded, dict):
            raise DamagedEntry("has a key.json that holds no key")
        checksums = recorded.pop("sha256", None)
        wanted = key.as_dict()
        if recorded != wanted:
            differing = sorted(name for name in {*recorded, *wanted} if recorded.get(name) != wanted.get(name))
            raise DamagedEntry(f"holds another key (differs in {', '.join(differing)})")
        if not isinstance(checksums, dict) or set(checksums) != set(shapes):
            raise DamagedEntry(f"records no checksums of the arrays {', '.join(shapes)} in its key.json")
        arrays = {name: read_array(folder / f"{name}.npy", shape, checksums[name]) for name, shape in shapes.items()}
    except DamagedEntry as err:
        return None, f"feature cache entry {folder} {err}"
    return CachedFeatures(arrays["train_features"], arrays["test_features"], arrays.get("train_attention")), None


def _open_in_entry(path: Path) -> BinaryIO:
    """A file of an entry opened for reading, never through a symbolic link; DamagedEntry when it cannot be."""
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
    except OSError as err:
        what = "is a symbolic link, not followed" if err.errno == errno.ELOOP else f"cannot be read ({err.strerror})"
        raise DamagedEntry(f"has {path.name}, which {what}") from err


def read_array(path: Path, shape: tuple[int | None, ...], sha256: str) -> np.ndarray:
    """The ``.npy`` array at ``path``, read once: its header checked against the dtype of its name and
    ``shape``, then its bytes read, hashed and checked for finiteness chunk by chunk; DamagedEntry
    says what is wrong."""
    dtype = np.dtype(ARRAY_DTYPES[path.stem])
    with _open_in_entry(path) as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise DamagedEntry(f"has {path.name} empty (0 bytes)")
        try:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"npy format {version}")
            stored_shape, fortran_order, stored_dtype = read_header[version](handle)
        except (ValueError, EOFError) as err:
            raise DamagedEntry(f"has {path.name}, which is not a .npy array ({err})") from err
        if stored_dtype != dtype:
            raise DamagedEntry(f"has {path.name} of {stored_dtype}, not {dtype}")
        if len(stored_shape) != len(shape) or any(want not in (None, got) for want, got in zip(shape, stored_shape)):
            wanted = " x ".join("?" if size is None else str(size) for size in shape)
            raise DamagedEntry(f"has {path.name} shaped {' x '.join(map(str, stored_shape))}, not {wanted}")
        if fortran_order:
            raise DamagedEntry(f"has {path.name} in Fortran order, which alvit never writes")
        array = np.empty(stored_shape, dtype)
        flat = array.reshape(-1)
        data = memoryview(flat.view(np.uint8))
        digest, finite = hashlib.sha256(), True
        for start in range(0, len(data), READ_CHUNK):
            chunk = data[start : start + READ_CHUNK]
            try:
                got = handle.readinto(chunk)
            except OSError as err:
                raise DamagedEntry(f"has {path.name}, which cannot be read ({err.strerror})") from err
            if got != len(chunk):
                raise DamagedEntry(f"has {path.name} cut short")
            digest.update(chunk)
            finite = finite and all_finite(flat[start // dtype.itemsize : (start + len(chunk)) // dtype.itemsize])
        if handle.read(1):
            raise DamagedEntry(f"has {path.name} with bytes after its array")
    if not finite:
        raise DamagedEntry(f"has {path.name} with values that are not finite (NaN or infinite)")
    if digest.hexdigest() != sha256:
        raise DamagedEntry(f"has {path.name} whose bytes do not match its checksum in key.json")
    return array


def all_finite(values: np.ndarray) -> bool:
    """No NaN or infinity among ``values``; float16 told by its exponent bits (all ones: NaN or infinite),
    which takes a quarter of the time of ``np.isfinite``'s float16 path."""
    if values.dtype == np.float16:
        return not np.any((values.view(np.uint16) & 0x7C00) == 0x7C00)
    return bool(np.isfinite(values).all())


@contextlib.contextmanager
def claimed(lock_path: Path) -> Iterator[None]:
    """An exclusive lock on ``lock_path`` (created if missing), held for the block: one writer at a time."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(open_own_file(lock_path, os.O_RDWR | os.O_CREAT), "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_own_file(path: Path, flags: int) -> int:
    """``os.open`` of a file of the cache, never through a symbolic link: one found there is removed
    (the link, not its target) and the file made anew, in one log line."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o666)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
    with contextlib.suppress(OSError):  # another process may have replaced it already
        log.warning(
            "%s was a symbolic link (to %s); not followed: replaced by a file of the cache", path, os.readlink(path)
        )
        path.unlink()
    return os.open(path, flags | os.O_NOFOLLOW, 0o666)


def extract(
    backbone: nn.Module, data: Dataset, preprocess: Preprocessor, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Train features, test features and (with a class token) train CLS attention, in batches."""
    attention = has_cls_attention(backbone)
    pool = predict(backbone, data.train_images, preprocess, batch_size, features=True, attention=attention)
    test = predict(backbone, data.test_images, preprocess, batch_size, features=True)
    return pool.features, test.features, pool.attention.astype(np.float16) if attention else None


def write_entry(folder: Path, key: FeatureKey, arrays: dict[str, np.ndarray]) -> None:
    """Write into a fresh temporary folder beside ``folder`` (an unpredictable name), then rename it into place.

    ``key.json`` holds the key and the SHA-256 of every array. Whatever held the name before, a
    stale or damaged entry or a symbolic link, is removed first (a link itself, never its target).
    """
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would keep the cache from collaborators
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        checksums = {name: array_sha256(array) for name, array in arrays.items()}
        (staging / "key.json").write_text(
            json.dumps({**key.as_dict(), "sha256": checksums}, indent=2, sort_keys=True) + "\n"
        )
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)  # removes links inside, never what they point to
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_or_extract(
    cfg: ExperimentConfig, spec: ModelSpec, data: Dataset, device: torch.device, batch_size: int | None = None
) -> CachedFeatures:
    """The frozen backbone's features of ``data``: read from the cache, or computed once and cached.

    The backbone is built (weights loaded, no forward pass) to know its key; it runs only when no
    valid entry exists, by the one process holding the entry's lock. One log line says which: the
    entry reused, or computed (the model as asked for, and its timm name); a backbone that is neither
    pretrained nor given weights is warned of, since its features are random.
    """
    if not cfg.pretrained and cfg.weights is None:
        log.warning(
            "linear mode with pretrained: false and no weights file: the frozen %s keeps its random initialisation, "
            "so every round's head learns from random features; set pretrained: true or weights: <file>",
            spec.name,
        )
    torch.manual_seed(0)  # a random-init backbone (pretrained: false) is the same in every run of a sweep
    backbone = create_model(spec, data.num_classes, cfg.pretrained, cfg.weights).to(device).eval()
    key = feature_key(spec, backbone, data, device)
    shapes = expected_shapes(backbone, key)
    root = cache_root(cfg)
    folder = entry_folder(root, key, spec.name)
    cached, _ = read_entry(folder, key, shapes)
    if cached is None:
        paths.make_folder(root, "cache", "the cached features")  # one sentence if it cannot be one
        with claimed(folder.with_name(folder.name + ".lock")):
            cached, damage = read_entry(folder, key, shapes)  # computed by another worker while this one waited
            if cached is None:
                if damage is not None:
                    log.warning("%s; computing it again", damage)
                batch = batch_size or cfg.train.eval_batch_size
                return _compute_entry(folder, key, shapes, backbone, spec, data, device, batch)
    log.info("features of %s on %s: the cached entry %s, reused", spec.name, data.name, folder)
    return cached


def _compute_entry(
    folder: Path,
    key: FeatureKey,
    shapes: dict[str, tuple[int | None, ...]],
    backbone: nn.Module,
    spec: ModelSpec,
    data: Dataset,
    device: torch.device,
    batch_size: int,
) -> CachedFeatures:
    """Run the frozen backbone over ``data``, check and write the entry in ``folder``, journal it (under its lock)."""
    start = time.perf_counter()
    preprocess = Preprocessor.for_model(spec, device)
    train, test, attention = extract(backbone, data, preprocess, batch_size)
    computed = CachedFeatures(train, test, attention)
    _check_extracted(computed, shapes, spec.timm_name, data.name)
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
    journal = open_own_file(folder.parent / "extractions.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(journal, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    log.info(
        "features of %s (timm %s) on %s: %d images in %.1f s -> %s",
        spec.name,
        spec.timm_name,
        data.name,
        record["images"],
        seconds,
        folder,
    )
    return computed


def _check_extracted(
    computed: CachedFeatures, shapes: dict[str, tuple[int | None, ...]], model: str, dataset: str
) -> None:
    """What the backbone gave has the shapes a read will demand and is finite: an entry that no read
    would accept is never written (it would be computed again by every run)."""
    arrays = {"train_features": computed.train, "test_features": computed.test}
    if computed.train_attention is not None:
        arrays["train_attention"] = computed.train_attention
    for name, shape in shapes.items():
        array = arrays.get(name)
        if array is None or array.ndim != len(shape) or any(w not in (None, g) for w, g in zip(shape, array.shape)):
            got = "none" if array is None else " x ".join(map(str, array.shape))
            raise TrainingError(f"the frozen {model}'s {name} on {dataset} came out shaped {got}, not {shape}")
        if not np.isfinite(array).all():
            raise TrainingError(
                f"the frozen {model}'s {name} on {dataset} are not finite (NaN or infinite); "
                "nothing is cached, since no run could learn from them"
            )


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
