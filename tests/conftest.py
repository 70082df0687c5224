"""Shared fixtures: a tiny, fast experiment configuration and the optional CIFAR-10 JPEGs."""

from __future__ import annotations

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
    "dataset=digits", "model=vit_nano_p4", "noise.rate=0.3", "al.initial=40", "al.query=20", "al.rounds=2",
    "train.epochs=3", "train.lr=0.003", "train.batch_size=32", "train.patience=2",
]


@pytest.fixture
def tiny_config():
    """``tiny_config(strategy=..., **dotted overrides)`` -> a validated ExperimentConfig."""

    def make(*extra: str):
        return load_config(None, [*TINY, *extra])

    return make


@pytest.fixture(scope="session")
def cifar10_jpeg_root(tmp_path_factory) -> Path:
    """The real CIFAR-10 JPEGs from ../shared/data, extracted once per session."""
    if not SHARED_CIFAR.exists():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {SHARED_CIFAR} (../shared is absent on this machine)")
    root = tmp_path_factory.mktemp("cifar")
    with tarfile.open(SHARED_CIFAR) as archive:
        archive.extractall(root, filter="data")
    return root / "cifar10"
