"""The files a configuration reads, by SHA-256: part of a run's identity, as its settings are.

A configuration names some of its inputs by path, and a path says nothing of what the file holds
today. Every file a run reads by a configured path is therefore hashed, and the digests are kept
in ``config.yaml`` under ``resolved.inputs_sha256``, keyed by the config key that names the file:

- ``noise.labels``: the label file of ``noise.kind: labels`` (the whole file, every label set of a
  CIFAR-N ``.pt``);
- ``weights``: a local weights file;
- ``dataset``: for ``imagefolder:<root>``, every image the loader lists (``train/`` and ``test/``,
  the image suffixes it reads), in its order, each with its name relative to the root.

A run whose file has changed since is stale, as a run of another setting is
(:func:`alvit.config.differing_keys`). What is not hashed, and why: CIFAR-10 and CIFAR-100 are
checked against their published MD5 sums by torchvision at every load; the digits come with
scikit-learn; timm's pretrained weights are named by their tag (``resolved.timm_name``), which
their publishers do not change; the feature cache (``cache``) keys its entries by the SHA-256 of
the weights and images themselves (:mod:`alvit.features`).

Cost, measured on 2 shared cores with a warm page cache: a 60,000-image CIFAR-10 folder (55 MB of
JPEGs) takes 3.5 s (listing 0.8, reading and hashing 2.0); a label file of 50,000 labels a few
milliseconds. Each :class:`InputDigests` computes a path once, so a sweep's plan or a book build
reads a folder shared by many configurations once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from alvit.catalog import image_files, imagefolder_classes, imagefolder_root
from alvit.config import INPUTS_SHA256, ExperimentConfig, to_dict
from alvit.errors import ConfigError

CHUNK = 1 << 20  # bytes hashed at a time: a 1.2 GB weights file never sits in memory whole


def input_paths(cfg: ExperimentConfig) -> dict[str, Path]:
    """The files and image folders ``cfg`` reads by a configured path, by the config key naming each."""
    paths = {}
    if cfg.noise.kind == "labels" and cfg.noise.labels:
        paths["noise.labels"] = Path(cfg.noise.labels).expanduser()
    if cfg.weights:
        paths["weights"] = Path(cfg.weights).expanduser()
    if cfg.dataset.startswith("imagefolder:"):
        paths["dataset"] = imagefolder_root(cfg.dataset)
    return paths


class InputDigests:
    """SHA-256 of the inputs of configurations, each path hashed once for the life of the object."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def of(self, cfg: ExperimentConfig) -> dict[str, str]:
        """``{config key: hex digest}`` for each input of ``cfg`` (empty when it reads none by path)."""
        digests = {}
        for key, path in input_paths(cfg).items():
            where = path.resolve()
            if where not in self._known:
                self._known[where] = folder_sha256(where) if key == "dataset" else file_sha256(where, key)
            digests[key] = self._known[where]
        return digests

    def record(self, cfg: ExperimentConfig) -> dict:
        """``cfg`` as :func:`alvit.config.differing_keys` compares it with a run folder's ``config.yaml``:
        its keys, and the digests of its inputs under ``resolved``."""
        return {**to_dict(cfg), "resolved": {INPUTS_SHA256: self.of(cfg)}}


def file_sha256(path: Path, key: str = "input") -> str:
    """SHA-256 of a file's bytes; a file that cannot be read is one sentence naming ``key``."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
    except OSError as err:
        raise ConfigError(
            f"{key} file {path} cannot be read ({err.__class__.__name__}); give a file that exists and you can read"
        ) from None
    return digest.hexdigest()


def folder_sha256(root: Path) -> str:
    """SHA-256 over the images an ``imagefolder:`` loader lists, in its order: each one's path relative to
    ``root``, its length and its bytes (so a renamed, moved, added, removed or edited image changes it)."""
    digest = hashlib.sha256()
    try:
        classes = imagefolder_classes(root)
        for split in ("train", "test"):
            for cls in classes:
                folder = root / split / cls
                for path in image_files(folder) if folder.is_dir() else []:
                    data = path.read_bytes()
                    digest.update(f"{path.relative_to(root).as_posix()}\n{len(data)}\n".encode())
                    digest.update(data)
    except OSError as err:
        raise ConfigError(
            f"dataset folder {root} cannot be read ({err.__class__.__name__}); give an imagefolder you can read"
        ) from None
    return digest.hexdigest()


__all__ = ["InputDigests", "file_sha256", "folder_sha256", "input_paths"]
