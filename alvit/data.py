"""Datasets as uint8 tensors in memory, and batch preprocessing on the compute device.

Every dataset becomes ``images: uint8 [N, 3, H, W]``, ``labels: int64 [N]`` and class names,
for a train split (the active-learning pool) and a clean test split. Resizing to the model's
input size and normalising with the model's mean and std happen later, a batch at a time on the
device (:class:`Preprocessor`): a per-image PIL pipeline would starve a GPU at 224 x 224.

Known datasets:

- ``digits``: scikit-learn's bundled 8 x 8 digits (1,797 images, 10 classes), split once with a
  fixed seed into 1,347 train and 450 test images, stratified. Works offline; the demo default.
- ``cifar10``, ``cifar100``: torchvision's copies, downloaded into ``$ALVIT_DATA`` (default
  ``~/.cache/alvit``) on first use.
- ``imagefolder:<root>``: ``<root>/train/<class>/*`` and ``<root>/test/<class>/*``, classes in
  alphabetical order. Any image size: images are stored at the most common size of the folder
  (others resized to it); grayscale is promoted to 3 channels.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from alvit.catalog import IMAGE_SUFFIXES, check_dataset_name, image_files, imagefolder_classes, imagefolder_root
from alvit.errors import ConfigError

if TYPE_CHECKING:
    from alvit.models import ModelSpec
from alvit.paths import data_home
from alvit.seeds import SUBSET_SEED, subset_indices

DOWNLOAD_TIMEOUT_S = 20


@dataclass(frozen=True)
class Dataset:
    """A pool (train split) and a clean test split, held in memory."""

    name: str
    train_images: torch.Tensor  # uint8 [N, 3, H, W]
    train_labels: np.ndarray  # int64 [N]
    test_images: torch.Tensor  # uint8 [M, 3, H, W]
    test_labels: np.ndarray  # int64 [M]
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(name: str, max_pool: int = 0, max_test: int = 0) -> Dataset:
    """Load a dataset by name, optionally keeping a fixed random subset of each split.

    Args:
        name: a key of :data:`DATASETS` or ``imagefolder:<root>``.
        max_pool: keep at most this many train images (0: all).
        max_test: keep at most this many test images (0: all).
    """
    check_dataset_name(name)
    if name == "digits":
        dataset = _load_digits()
    elif name in ("cifar10", "cifar100"):
        dataset = _load_cifar(name)
    else:
        return _load_imagefolder(imagefolder_root(name), max_pool, max_test)
    train_keep = subset_indices(len(dataset.train_labels), max_pool)
    test_keep = subset_indices(len(dataset.test_labels), max_test)
    return Dataset(
        name=name,
        train_images=dataset.train_images[train_keep],
        train_labels=dataset.train_labels[train_keep],
        test_images=dataset.test_images[test_keep],
        test_labels=dataset.test_labels[test_keep],
        classes=dataset.classes,
    )


def training_split_labels(name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The true labels ``int64 [N]`` of the whole training split of ``name``, in the order alvit
    lists it (the order a ``noise.labels`` file follows), and the class names by index.

    ``data.max_pool`` plays no part: a label file covers the whole split. An imagefolder's labels
    come from its file names alone, no image is read.
    """
    check_dataset_name(name)
    if name.startswith("imagefolder:"):
        root = imagefolder_root(name)
        classes = imagefolder_classes(root)
        labels = _list_images(root / "train", classes)[1]
        if not len(labels):
            raise ConfigError(f"{root / 'train'} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return labels, tuple(classes)
    dataset = _load_digits() if name == "digits" else _load_cifar(name)
    return dataset.train_labels, dataset.classes


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are 0..16; scale to 0..255 and repeat the gray channel three times.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.repeat(images[:, None], 3, axis=1)
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=450, stratify=labels, random_state=SUBSET_SEED
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return Dataset(
        name="digits",
        train_images=torch.from_numpy(images[train_idx]),
        train_labels=labels[train_idx],
        test_images=torch.from_numpy(images[test_idx]),
        test_labels=labels[test_idx],
        classes=tuple(str(d) for d in range(10)),
    )


def _load_cifar(name: str) -> Dataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = data_home() / name
    splits = {}
    for train in (True, False):
        try:
            splits[train] = cls(str(root), train=train, download=False)
        except RuntimeError:
            splits[train] = _download_cifar(cls, root, train, name)
    return Dataset(
        name=name,
        train_images=torch.from_numpy(splits[True].data).permute(0, 3, 1, 2).contiguous(),
        train_labels=np.asarray(splits[True].targets, dtype=np.int64),
        test_images=torch.from_numpy(splits[False].data).permute(0, 3, 1, 2).contiguous(),
        test_labels=np.asarray(splits[False].targets, dtype=np.int64),
        classes=tuple(splits[True].classes),
    )


def _download_cifar(cls: type, root: Path, train: bool, name: str):
    """Download with a socket timeout, so a machine without network fails in seconds."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return cls(str(root), train=train, download=True)
    except Exception as err:  # urllib, socket and checksum errors all mean: not available here
        raise ConfigError(
            f"{name} is not in {root} and could not be downloaded ({err.__class__.__name__}: {err}); "
            f"on a machine without network put the extracted CIFAR python archive there "
            f"(or set ALVIT_DATA), or use dataset imagefolder:<root> with JPEG/PNG folders"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


def _list_images(split_dir: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for label, cls in enumerate(classes):
        files = image_files(split_dir / cls)
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int64)


def _load_imagefolder(root: Path, max_pool: int, max_test: int) -> Dataset:
    from PIL import Image

    classes = imagefolder_classes(root)
    if len(classes) < 2:
        raise ConfigError(f"{root / 'train'} must hold one folder per class, at least 2; found {len(classes)}")
    missing = [c for c in classes if not (root / "test" / c).is_dir()]
    if missing:
        raise ConfigError(f"{root / 'test'} lacks the class folders {', '.join(missing)} that {root / 'train'} has")
    splits = {}
    for split, limit in (("train", max_pool), ("test", max_test)):
        paths, labels = _list_images(root / split, classes)
        if not paths:
            raise ConfigError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        keep = subset_indices(len(paths), limit)
        pictures = []
        for i in keep:
            with Image.open(paths[i]) as img:
                pictures.append(np.array(img.convert("RGB")))
        splits[split] = (pictures, labels[keep])
    size = Counter(p.shape[:2] for p in splits["train"][0]).most_common(1)[0][0]
    return Dataset(
        name=f"imagefolder:{root}",
        train_images=_stack_at_size(splits["train"][0], size),
        train_labels=splits["train"][1],
        test_images=_stack_at_size(splits["test"][0], size),
        test_labels=splits["test"][1],
        classes=tuple(classes),
    )


def _stack_at_size(pictures: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` from HWC arrays, resizing those not already at ``size``."""
    out = torch.empty((len(pictures), 3, *size), dtype=torch.uint8)
    for i, pic in enumerate(pictures):
        chw = torch.from_numpy(pic).permute(2, 0, 1)
        if pic.shape[:2] != size:
            chw = F.interpolate(chw[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
            chw = chw.round().clamp(0, 255).to(torch.uint8)
        out[i] = chw
    return out


class Preprocessor:
    """uint8 ``[B, 3, H, W]`` on any device -> normalised float ``[B, 3, S, S]`` on the device.

    Resizing uses the interpolation of the model's pretrained configuration (timm: bicubic for
    every paper backbone), as its pretraining pipeline did; values are clamped to [0, 1] after
    it, as an 8-bit image resized by PIL would be.
    """

    def __init__(
        self,
        input_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        interpolation: str = "bicubic",
    ):
        if interpolation not in ("bicubic", "bilinear", "nearest"):
            raise ConfigError(
                f"interpolation {interpolation!r} is not supported; valid choices are bicubic, bilinear, nearest"
            )
        self.input_size = input_size
        self.device = device
        self.interpolation = interpolation
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    @classmethod
    def for_model(cls, spec: ModelSpec, device: torch.device) -> Preprocessor:
        """The input pipeline of ``spec``'s pretrained configuration: size, mean/std, interpolation."""
        return cls(spec.input_size, spec.mean, spec.std, device, spec.interpolation)

    def __call__(self, images: torch.Tensor, flip_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Scale to [0, 1], resize, optionally mirror the samples where ``flip_mask`` [B] is True."""
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            antialias = self.interpolation != "nearest"
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode=self.interpolation,
                antialias=antialias,
                align_corners=False if antialias else None,
            ).clamp_(0.0, 1.0)
        if flip_mask is not None:
            x = torch.where(flip_mask.to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        return (x - self.mean) / self.std
