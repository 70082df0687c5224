"""Datasets and pretrained weights for compute nodes without network: fetch them, or check they are here.

On a login node, :func:`download` puts every dataset a profile's configurations use into
``$ALVIT_DATA`` (torchvision's CIFAR archives) and every pretrained timm weight file into the
Hugging Face cache (``$HF_HOME``), both on storage the nodes share. A job then sets the lines
of :func:`env_lines` (``HF_HUB_OFFLINE=1``: timm reads the cache and never waits for the hub).
:func:`missing` checks the same list without any network: a weight file is looked up in the
cache (``huggingface_hub.try_to_load_from_cache``, the file timm would load; no model is built),
a dataset is opened with ``download=False`` (torchvision verifies its checksums).

Nothing is needed for ``digits`` (bundled with scikit-learn), ``imagefolder:<root>`` (your own
folder, checked when the config is loaded), ``pretrained: false`` or a local ``weights:`` file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from alvit.config import ExperimentConfig
from alvit.errors import ConfigError
from alvit.paths import data_home

DOWNLOADED_DATASETS = ("cifar10", "cifar100")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm loads from a hub repo, in its order


@dataclass(frozen=True)
class Need:
    """One thing a run downloads: a dataset, or a model's pretrained weights."""

    kind: str  # "dataset" or "weights"
    name: str  # cifar10, or the model name as configured (vit_b16)
    source: str  # the dataset's folder, or the hub repo (timm/...) or URL of the weights

    def describe(self) -> str:
        if self.kind == "dataset":
            return f"dataset {self.name} ({self.source})"
        return f"weights of {self.name} ({self.source})"


def needs(configs: Iterable[ExperimentConfig]) -> list[Need]:
    """What the configurations download, each once, datasets first."""
    datasets = sorted({cfg.dataset for cfg in configs if cfg.dataset in DOWNLOADED_DATASETS})
    found = [Need("dataset", name, str(data_home() / name)) for name in datasets]
    models = sorted(
        {(cfg.model, cfg.img_size) for cfg in configs if cfg.pretrained and cfg.weights is None},
        key=lambda item: (item[0], item[1] or 0),
    )
    seen = set()
    for model, img_size in models:
        need = _weights_need(model, img_size)
        if need not in seen:
            seen.add(need)
            found.append(need)
    return found


def _weights_need(model: str, img_size: int | None) -> Need:
    import timm

    from alvit.models import resolve_model

    spec = resolve_model(model, img_size)
    pretrained = timm.get_pretrained_cfg(spec.timm_name)
    pretrained = pretrained.to_dict() if pretrained is not None else {}
    source = pretrained.get("hf_hub_id") or pretrained.get("url")
    if not source:
        raise ConfigError(
            f"timm has no pretrained weights for {spec.timm_name} (model {model}); set pretrained: false, or weights: <file>"
        )
    return Need("weights", model, source)


def is_present(need: Need) -> bool:
    """Whether ``need`` can be used here with the network off."""
    if need.kind == "dataset":
        from torchvision import datasets

        cls = datasets.CIFAR10 if need.name == "cifar10" else datasets.CIFAR100
        try:
            for train in (True, False):
                cls(need.source, train=train, download=False)  # checks every archive file's md5
        except RuntimeError:
            return False
        return True
    if "://" in need.source:
        return _torch_hub_file(need.source).is_file()
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(need.source, name), str) for name in WEIGHT_FILES)


def missing(found: list[Need]) -> list[str]:
    """One line per need that is not here, saying where it was looked for."""
    from huggingface_hub import constants

    lines = []
    for need in found:
        if is_present(need):
            continue
        if need.kind == "dataset":
            lines.append(f"missing dataset {need.name}: not in {need.source} (or damaged)")
        elif "://" in need.source:
            lines.append(
                f"missing weights of {need.name}: {need.source} is not in {_torch_hub_file(need.source).parent}"
            )
        else:
            lines.append(
                f"missing weights of {need.name}: {need.source} is not in the Hugging Face cache {constants.HF_HUB_CACHE}"
            )
    return lines


def download(need: Need) -> None:
    """Put ``need`` where :func:`is_present` finds it; a network failure is one sentence."""
    try:
        if need.kind == "dataset":
            from alvit.data import load_dataset

            load_dataset(need.name)  # downloads into $ALVIT_DATA, with a socket timeout
        elif "://" in need.source:
            import torch

            target = _torch_hub_file(need.source)
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(need.source, str(target), progress=False)
        else:
            _download_from_hub(need.source)
    except OSError as err:  # a network or hub failure (requests' and huggingface_hub's errors are OSErrors)
        offline = " (HF_HUB_OFFLINE is set: unset it to download)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ConfigError(
            f"could not download the {need.describe()}: {err.__class__.__name__}{offline}; "
            f"run alvit fetch on a machine with network"
        ) from err


def _download_from_hub(repo: str) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for name in WEIGHT_FILES:
        try:
            hf_hub_download(repo, name)
            return
        except EntryNotFoundError:
            continue
    raise ConfigError(f"the hub repository {repo} holds none of {', '.join(WEIGHT_FILES)}")


def _torch_hub_file(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])


def env_lines() -> list[str]:
    """``NAME=value`` lines a job needs to find what was fetched, offline."""
    from huggingface_hub import constants

    lines = ["HF_HUB_OFFLINE=1", f"HF_HOME={constants.HF_HOME}"]
    if os.environ.get("HF_HUB_CACHE"):
        lines.append(f"HF_HUB_CACHE={constants.HF_HUB_CACHE}")
    lines.append(f"ALVIT_DATA={data_home()}")
    return lines


__all__ = ["Need", "download", "env_lines", "is_present", "missing", "needs"]
