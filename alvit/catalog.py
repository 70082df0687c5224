"""The names a configuration may use for datasets, models and noise, checked without importing torch.

Loading and validating a configuration must stay cheap (a summary of 1,260 runs renders on a
laptop without torch), so the lists of valid names live here, not in :mod:`alvit.data` or
:mod:`alvit.models`. Only a model name outside the paper's and the presets is looked up in
timm, which imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alvit.errors import ConfigError

DATASETS: dict[str, str] = {
    "digits": "scikit-learn's 8x8 handwritten digits, 10 classes, offline (1,347 train / 450 test)",
    "cifar10": "CIFAR-10 via torchvision, 10 classes (50,000 / 10,000), downloaded to $ALVIT_DATA",
    "cifar100": "CIFAR-100 via torchvision, 100 classes (50,000 / 10,000), downloaded to $ALVIT_DATA",
    "imagefolder:<root>": "your images in <root>/train/<class>/ and <root>/test/<class>/",
}

# (pool, test, classes) of the named datasets, known without loading them (estimates, previews).
# The cost model shared by the GPU-hour estimate, the bench's TFLOP/s and simulated timings:
# a training image costs a forward and a backward pass, about 3 forward passes; the sustained
# rate is an assumption (a user passes their own to `alvit sweep --estimate --tflops`).
TRAIN_FORWARD_PASSES = 3
ASSUMED_SUSTAINED_TFLOPS = 200.0

DATASET_SIZES: dict[str, tuple[int, int, int]] = {
    "digits": (1_347, 450, 10),
    "cifar10": (50_000, 10_000, 10),
    "cifar100": (50_000, 10_000, 100),
}

# Our mapping of the paper's backbones to timm's pretrained weights (our choice: no
# source we can read names the paper's checkpoints).
PAPER_MODELS: dict[str, str] = {
    "vit_b16": "vit_base_patch16_224.orig_in21k",
    "vit_b32": "vit_base_patch32_224.orig_in21k",
    "vit_l16": "vit_large_patch16_224.orig_in21k",
    "vit_l32": "vit_large_patch32_224.orig_in21k",
    "swinv2_t": "swinv2_tiny_window8_256.ms_in1k",
    "swinv2_s": "swinv2_small_window8_256.ms_in1k",
    "swinv2_b": "swinv2_base_window8_256.ms_in1k",
}

# Small ViTs for CPUs, trained from scratch. The two 8-px presets differ in width/depth and in
# patch size, so a demo on 8 x 8 digits keeps the paper's two axes (model size, patch size) at a
# size a laptop runs in seconds. Set img_size to use them on larger images.
CPU_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "vit_nano_p4": ("vit_tiny_patch16_224", dict(img_size=8, patch_size=4, embed_dim=64, depth=2, num_heads=4)),
    "vit_mini_p8": ("vit_tiny_patch16_224", dict(img_size=8, patch_size=8, embed_dim=128, depth=4, num_heads=4)),
    "vit_micro_p2": ("vit_tiny_patch16_224", dict(img_size=8, patch_size=2, embed_dim=96, depth=3, num_heads=4)),
    "vit_tiny_p4": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=4)),
}

MODEL_DESCRIPTIONS: dict[str, str] = {
    **{name: f"paper backbone -> timm {timm_name}" for name, timm_name in PAPER_MODELS.items()},
    "vit_nano_p4": "CPU preset: 64-wide, 2-deep ViT, 8 px input, patch 4 (4 tokens + CLS), 0.1 M params",
    "vit_mini_p8": "CPU preset: 128-wide, 4-deep ViT, 8 px input, patch 8 (the whole digit is one token + CLS), 0.8 M params",
    "vit_micro_p2": "CPU preset: 96-wide, 3-deep ViT, 8 px input, patch 2 (16 tokens + CLS), 0.3 M params; "
    "learns poorly from scratch on 250 digits (about 0.4 accuracy), so not in the demo",
    "vit_tiny_p4": "CPU preset: ViT-Ti (192-wide, 12-deep), 32 px input, patch 4 (64 tokens + CLS), 5.4 M params",
}


NOISE_KINDS: dict[str, str] = {
    "none": "the oracle answers the true label",
    "flip": "round(r*N) labels replaced by one of the K-1 other classes, uniformly (symmetric)",
    "uniform": "round(r*N) labels redrawn uniformly from all K classes (effective rate r(K-1)/K)",
    "pairflip": "round(r*N) labels moved to the next class, k -> (k+1) mod K",
    "labels": "the oracle answers from a file of labels (noise.labels), e.g. CIFAR-10N's human labels; rate measured",
}


def check_noise(kind: str, rate: float) -> None:
    """Raise :class:`ConfigError` unless ``kind`` is known and ``0 <= rate < 1``."""
    if kind not in NOISE_KINDS:
        raise ConfigError(f"noise kind {kind!r} is not known; valid choices are: {', '.join(NOISE_KINDS)}")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"noise rate {rate} lies outside [0, 1); give a fraction such as 0.3")
    if kind == "labels" and rate != 0.0:
        raise ConfigError(
            f"noise rate {rate} cannot be set for noise kind labels, whose rate is measured on the file of labels; "
            "the config file or a --set gave it, so add --set noise.rate=0"
        )


def check_dataset_name(name: str) -> None:
    """Raise :class:`ConfigError` for an unknown name or an imagefolder root that is missing."""
    if name.startswith("imagefolder:"):
        root = Path(name.split(":", 1)[1]).expanduser()
        for split in ("train", "test"):
            if not (root / split).is_dir():
                raise ConfigError(
                    f"dataset folder {root / split} does not exist; imagefolder:<root> needs "
                    f"<root>/train/<class>/ and <root>/test/<class>/ with images inside"
                )
        return
    if name not in DATASETS:
        raise ConfigError(f"dataset {name!r} is not known; valid choices are: {', '.join(DATASETS)}")


def check_model_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a paper name, a preset or a timm model."""
    if name in PAPER_MODELS or name in CPU_PRESETS:
        return
    import timm  # only for names of one's own: timm imports torch

    if timm.is_model(name):
        return
    raise ConfigError(
        f"model {name!r} is not known; valid choices are the paper's "
        f"{', '.join(PAPER_MODELS)}, the CPU presets {', '.join(CPU_PRESETS)}, "
        f"or any timm model name (see timm.list_models())"
    )


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class DatasetShape:
    """How many images a dataset's pool and test set hold, and its classes, known without loading an image."""

    pool: int
    test: int
    classes: int


def imagefolder_root(name: str) -> Path:
    """``imagefolder:<root>`` -> ``<root>``."""
    return Path(name.split(":", 1)[1]).expanduser()


def imagefolder_classes(root: Path) -> list[str]:
    """The class folders of ``<root>/train``, sorted (their order gives the labels)."""
    return sorted(p.name for p in (root / "train").iterdir() if p.is_dir())


def image_files(folder: Path) -> list[Path]:
    """The images of one class folder, sorted: files with a known image suffix, nothing else."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def dataset_shape(name: str) -> DatasetShape:
    """Pool, test and class counts of a dataset: the catalog's for a named one, the files an
    imagefolder loader would read for one of one's own (the same suffixes, so never more)."""
    check_dataset_name(name)
    if name in DATASET_SIZES:
        return DatasetShape(*DATASET_SIZES[name])
    root = imagefolder_root(name)
    classes = imagefolder_classes(root)
    pool, test = (
        sum(len(image_files(root / split / c)) for c in classes if (root / split / c).is_dir())
        for split in ("train", "test")
    )
    return DatasetShape(pool, test, len(classes))
