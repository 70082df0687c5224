"""Oracle answers read from a file: human label noise (CIFAR-10N, CIFAR-100N) or any ``.npy`` of labels.

With ``noise.kind: labels`` the oracle answers, for pool sample i, the label at position i of
the file ``noise.labels``, in the order alvit lists the training split (torchvision's order for
CIFAR; sorted file paths for ``imagefolder:``); with ``data.max_pool`` the file covers the whole
split and alvit keeps the pool's positions. Two formats:

- a ``.npy`` of integers ``[N]``, read with ``allow_pickle=False``;
- a ``.pt`` dict of label sets, CIFAR-N's layout, read with ``torch.load(weights_only=True)``
  (numpy arrays allowed, nothing else: no pickled code runs); ``noise.labels_key`` picks the set.

CIFAR-N (Wei et al., "Learning with Noisy Labels Revisited: A Study Using Real-World Human
Annotations", ICLR 2022; http://noisylabels.com, github.com/UCSC-REAL/cifar-10-100n) collected
human labels for the 50,000 CIFAR training images. ``CIFAR-10_human.pt`` holds ``aggre_label``
(majority vote of three workers), ``random_label1``, ``random_label2``, ``random_label3`` (one
worker each) and ``worse_label`` (a wrong one where any worker was wrong), beside ``clean_label``;
``CIFAR-100_human.pt`` holds ``noisy_label``. Their licence is CC BY-NC 4.0, so alvit does not
ship them: download them and point ``noise.labels`` at the file. The noise rate of such a run is
what the file holds, measured on the pool (``resolved.pool_noise_rate`` in ``config.yaml``).
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from pathlib import Path

import numpy as np

from alvit.errors import ConfigError
from alvit.seeds import subset_indices

SUFFIXES = (".npy", ".pt")


def load_labels(path: str | Path, key: str | None = None) -> np.ndarray:
    """The labels ``int64 [N]`` in the file at ``path`` (the set ``key`` of a ``.pt`` dict)."""
    path = Path(path).expanduser()
    stat = path.stat() if path.is_file() else None
    if stat is None:
        raise ConfigError(
            f"noise.labels file {path} does not exist; give a .npy of integer labels or a CIFAR-N file "
            "such as CIFAR-10_human.pt"
        )
    return _load(path.resolve(), key or None, stat.st_mtime_ns, stat.st_size).copy()


@functools.lru_cache(maxsize=8)  # a sweep validates every configuration: read each file once
def _load(path: Path, key: str | None, _mtime_ns: int, _size: int) -> np.ndarray:
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"noise.labels file {path} is neither .npy nor .pt; valid formats are {', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise ConfigError(f"noise.labels file {path} is empty (0 bytes); give a {path.suffix} that holds the labels")
    if path.suffix == ".npy":
        if key is not None:
            raise ConfigError(
                f"noise.labels_key {key!r} is for .pt files; {path} is a .npy of labels, so leave it unset"
            )
        _refuse_zip(path)
        try:
            labels = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise ConfigError(
                f"noise.labels file {path} is not a readable .npy of labels ({err.__class__.__name__})"
            ) from err
    else:
        labels = _label_set(_load_pt(path), key, path)
    labels = np.asarray(labels)
    if labels.ndim == 1 and (np.issubdtype(labels.dtype, np.floating) or np.issubdtype(labels.dtype, np.bool_)):
        kind = "floats" if np.issubdtype(labels.dtype, np.floating) else "true/false values"
        raise ConfigError(
            f"noise.labels in {path} holds {kind} ({labels.dtype}), not class indices; "
            "give one integer label per sample"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(
            f"noise.labels in {path} must be one integer label per sample, not an array of {labels.dtype} "
            f"shaped {labels.shape}"
        )
    return labels.astype(np.int64)


def _refuse_zip(path: Path) -> None:
    """A ``.npy`` that is really a zip (an ``.npz`` archive, or a ``.pt`` file, renamed) gets one sentence;
    ``np.load`` would open an archive without a word."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if names and all(name.endswith(".npy") for name in names):
        arrays = ", ".join(name.removesuffix(".npy") for name in names)
        raise ConfigError(
            f"noise.labels file {path} is an npz archive (of the arrays {arrays}), not a .npy array; "
            "save the labels alone with np.save"
        )
    raise ConfigError(
        f"noise.labels file {path} is a zip archive, not a .npy array; a file torch saved needs its .pt name"
    )


def _load_pt(path: Path) -> object:
    """A ``.pt`` file through torch's weights-only unpickler, numpy arrays allowed (both numpy 1 and 2 names)."""
    import torch

    reconstruct = np._core.multiarray._reconstruct
    allowed = [
        np.ndarray,
        np.dtype,
        reconstruct,
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        *(type(np.dtype(code)) for code in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")),
        *(type(np.dtype(code)) for code in ("float16", "float32", "float64", "bool")),  # refused by name below
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:  # torch's refusals
        raise ConfigError(
            f"noise.labels file {path} cannot be loaded safely (weights only: tensors and numpy arrays, no code): "
            f"{str(err).splitlines()[0][:200]}"
        ) from err


def _label_set(data: object, key: str | None, path: Path) -> np.ndarray:
    """The set ``key`` of a loaded ``.pt`` file (a tensor or array alone needs no key)."""
    if not isinstance(data, dict):
        if key is not None:
            raise ConfigError(f"{path} holds one label set, not a dict; leave noise.labels_key unset")
        return np.asarray(data)
    keys = ", ".join(sorted(map(str, data)))
    if key is None or key not in data:
        given = "no noise.labels_key was given" if key is None else f"it has no {key!r}"
        raise ConfigError(f"{path} holds the label sets {keys}, and {given}; set noise.labels_key to one of them")
    value = data[key]
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def check_template_path(path: Path) -> None:
    """``path`` may take a new label template: a ``.npy`` name, and no file there (it may hold edits)."""
    if path.suffix != ".npy":
        raise ConfigError(f"--out {path} must end in .npy, the format noise.labels reads")
    if path.exists():
        raise ConfigError(
            f"--out {path} exists, and alvit labels never replaces a label file (it may hold edits); "
            "remove it or choose another name"
        )


def write_template(labels: np.ndarray, path: Path) -> None:
    """Save a training split's true labels ``int64 [N]`` at ``path``, a ``.npy`` that does not exist yet:
    the template of a ``noise.labels`` file, edited into the labels people gave."""
    check_template_path(path)
    try:
        with path.open("xb") as file:  # exclusive: a file made since the check is not replaced either
            np.save(file, labels.astype(np.int64), allow_pickle=False)
    except FileExistsError:
        check_template_path(path)  # its sentence


def labels_for_pool(labels: np.ndarray, pool_size: int, max_pool: int, path: str | Path) -> np.ndarray:
    """The file's labels ``[N]`` for the pool alvit loaded, ``[pool_size]``: all of them, or the
    positions ``data.max_pool`` kept. A file of another length gets one sentence."""
    if len(labels) == pool_size:
        return labels
    if 0 < max_pool < len(labels) and max_pool == pool_size:
        return labels[subset_indices(len(labels), max_pool)]
    raise ConfigError(
        f"noise.labels file {path} has {len(labels)} labels, but the pool has {pool_size} training samples"
        + (f" (data.max_pool {max_pool} of the split)" if max_pool else "")
        + "; give one label per training sample of the dataset, in its order"
    )
