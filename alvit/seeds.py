"""Independent random streams per purpose and round, all from one experiment seed.

``SeedSequence(seed, spawn_key=(stream, round))`` is what ``SeedSequence(seed).spawn`` produces,
addressed by name, so a stream never depends on how many others were drawn before it. The
noisy oracle and the initial set therefore never depend on the strategy, and a resumed run
draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np

STREAMS = {"oracle": 0, "initial": 1, "model": 2, "train": 3, "strategy": 4, "predict": 5}


def stream(seed: int, name: str, round_: int = 0) -> np.random.SeedSequence:
    """The seed sequence of stream ``name`` (a key of :data:`STREAMS`) in round ``round_``."""
    return np.random.SeedSequence(seed, spawn_key=(STREAMS[name], round_))


def rng(seed: int, name: str, round_: int = 0) -> np.random.Generator:
    return np.random.default_rng(stream(seed, name, round_))


def torch_seed(seed: int, name: str, round_: int = 0) -> int:
    """A 32-bit seed for ``torch.manual_seed`` from the same stream."""
    return int(stream(seed, name, round_).generate_state(1)[0])


SUBSET_SEED = 0  # data.max_pool / max_test subsets are the same for every experiment seed


def subset_indices(n: int, limit: int) -> np.ndarray:
    """Sorted indices of a fixed random subset of ``range(n)`` of size ``limit`` (all if 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, size=limit, replace=False))
