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
