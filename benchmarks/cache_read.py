"""What checking a feature-cache entry on every read costs, at CIFAR's size with a ViT-B/16 backbone.

An entry of 50,000 pool and 10,000 test images, D = 768, and the pool's CLS attention of 12
heads x 197 tokens in float16 (421 MB in all, random numbers of those dtypes), is written once
with :func:`alvit.features.write_entry`; then, with the files in the page cache (as a sweep's
second run finds them), three ways of reading it are timed, each the median of ``--repeats``, in
wall-clock seconds and in CPU seconds of this process (``_cpu_s``):

- ``plain_load_s``: ``np.load`` of the three arrays, unchecked (what a read did before the checks);
- ``load_then_hash_s``: ``np.load``, then SHA-256 and ``np.isfinite`` over each array: three passes;
- ``checked_read_s``: :func:`alvit.features.read_entry`, the read every run does: key, dtype,
  shape, finiteness and SHA-256 in one pass over each file.

    python benchmarks/cache_read.py
    python benchmarks/cache_read.py --json   # also benchmarks/results/cache_read.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
POOL, TEST, WIDTH, HEADS, TOKENS = 50_000, 10_000, 768, 12, 197


def median_seconds(read, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (this process's user and system time: on a shared machine
    the wall clock counts other people's work too, the CPU seconds only this read's)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        read()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return round(statistics.median(wall), 3), round(statistics.median(cpu), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="reads of each kind (default 5)")
    parser.add_argument("--json", action="store_true", help="also write benchmarks/results/cache_read.json")
    args = parser.parse_args()

    from alvit import features

    rng = np.random.default_rng(0)
    arrays = {
        "train_features": rng.standard_normal((POOL, WIDTH), dtype=np.float32),
        "test_features": rng.standard_normal((TEST, WIDTH), dtype=np.float32),
        "train_attention": rng.random((POOL, HEADS, TOKENS), dtype=np.float32).astype(np.float16),
    }
    key = features.FeatureKey(
        model="vit_base_patch16_224",
        model_kwargs={},
        weights_sha256="0" * 64,
        dataset="cifar10",
        images_sha256="0" * 64,
        pool_size=POOL,
        test_size=TEST,
        input_size=224,
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        compute_dtype="bfloat16",
        timm="1.0",
    )
    shapes = {name: array.shape for name, array in arrays.items()}
    with tempfile.TemporaryDirectory() as cache:
        folder = Path(cache) / "entry"
        features.write_entry(folder, key, arrays)
        paths = [folder / f"{name}.npy" for name in arrays]
        megabytes = sum(path.stat().st_size for path in paths) / 1e6

        def plain():
            return [np.load(path) for path in paths]

        def load_then_hash():
            for array in plain():
                hashlib.sha256(array).hexdigest()
                np.isfinite(array).all()

        def checked():
            served, damage = features.read_entry(folder, key, shapes)
            assert served is not None, damage

        checked()  # the files into the page cache, and the check passes
        result: dict = {"entry_mb": round(megabytes, 1)}
        for name, read in (("plain_load", plain), ("load_then_hash", load_then_hash), ("checked_read", checked)):
            result[f"{name}_s"], result[f"{name}_cpu_s"] = median_seconds(read, args.repeats)
        result |= {
            "repeats": args.repeats,
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine slows every figure
            "numpy": np.__version__,
        }
    result["checks_add_s"] = round(result["checked_read_s"] - result["plain_load_s"], 3)
    result["checks_add_cpu_s"] = round(result["checked_read_cpu_s"] - result["plain_load_cpu_s"], 3)
    for name, value in result.items():
        print(f"{name:>18}  {value}")
    if args.json:
        (RESULTS / "cache_read.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
