"""Shared fixtures: a tiny, fast experiment configuration and the optional CIFAR-10 JPEGs."""

from __future__ import annotations

import collections
import os
import tarfile
from pathlib import Path

import pytest

from alvit.config import load_config

REPO = Path(__file__).resolve().parent.parent
# Worker processes, kernels and SLURM jobs the tests start import this checkout's alvit too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

# A run that takes a few seconds on a CPU: digits, the smallest preset, 3 rounds.
TINY = [
    "dataset=digits",
    "model=vit_nano_p4",
    "noise.rate=0.3",
    "al.initial=40",
    "al.query=20",
    "al.rounds=2",
    "train.epochs=3",
    "train.lr=0.003",
    "train.batch_size=32",
    "train.patience=2",
]


@pytest.fixture
def tiny_config():
    """``tiny_config(strategy=..., **dotted overrides)`` -> a validated ExperimentConfig."""

    def make(*extra: str):
        return load_config(None, [*TINY, *extra])

    return make


@pytest.fixture(scope="session")
def cifar10_jpeg_root(tmp_path_factory) -> Path:
    """Real CIFAR-10 JPEGs from ../shared/data: the first 100 of each class and split, extracted once.

    Writing all 60,000 files took 20 s; the loader reads every file of the folders it is given,
    so a slice of real images tests the same code.
    """
    if not SHARED_CIFAR.exists():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {SHARED_CIFAR} (../shared is absent on this machine)")
    root = tmp_path_factory.mktemp("cifar")
    per_folder: collections.Counter = collections.Counter()
    with tarfile.open(SHARED_CIFAR) as archive:
        for member in archive:
            folder = member.name.rsplit("/", 1)[0]
            if member.isfile() and per_folder[folder] < 100:
                per_folder[folder] += 1
                archive.extract(member, root, filter="data")
    return root / "cifar10"
