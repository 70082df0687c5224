"""What linear mode's heads cost on a CPU: an epoch of training and a scored image, per (D, K).

Linear mode (``train.mode: linear``) trains a logistic-regression head ``D x K`` on cached features
every round and scores the test set and the unlabeled pool with it. For the widths of the paper's
backbones (D 768: ViT-B/16, B/32, SwinV2-T, S; D 1024: ViT-L/16, L/32, SwinV2-B; D 1280:
EfficientNet-Lite0, the linear probe's) and both CIFARs (K 10, 100), with one CPU thread (a run's
default ``threads``), on random standardised features and the linear profiles' recipe (batch 64,
lr 1e-3, weight decay 1e-4), this measures in CPU seconds of this process (robust to other load
on the machine), each the median of ``--repeats``:

- ``epoch_s``: one epoch of :func:`alvit.train.fit` (its steps and its early-stopping check) at
  1,000 and at 8,000 labels, from which ``epoch_base_s`` and ``epoch_per_label_s`` (a straight
  line through the two: steps grow with the labels, the rest does not);
- ``score_s_per_image``: :func:`alvit.train.predict` of 20,000 images at batch 256, per image.

``alvit sweep --estimate`` prices a linear profile's heads with them (:mod:`alvit.sweep.estimate`).

    python benchmarks/linear_heads.py
    python benchmarks/linear_heads.py --json   # also benchmarks/results/linear_heads.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = [(768, 10), (768, 100), (1024, 10), (1024, 100), (1280, 10)]
LABELS = (1000, 8000)
EPOCHS = 3
SCORED = 20_000


def cpu_seconds(action) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def measure(dim: int, classes: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from alvit.config import TrainConfig
    from alvit.linear import FeatureInputs, LinearHead
    from alvit.train import fit, predict

    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    recipe = TrainConfig(
        epochs=EPOCHS, lr=1e-3, weight_decay=1e-4, batch_size=64, patience=EPOCHS, augment="none", mode="linear"
    )
    epoch_s = {}
    for labels in LABELS:
        features = torch.from_numpy(rng.standard_normal((labels, dim), dtype=np.float32))
        targets = rng.integers(0, classes, labels)

        def train(features: torch.Tensor = features, targets: np.ndarray = targets) -> None:
            head = LinearHead(dim, classes)
            fit(head, features, targets, recipe, FeatureInputs(device), np.random.SeedSequence(1), progress=False)

        epoch_s[labels] = statistics.median(cpu_seconds(train) / EPOCHS for _ in range(repeats))
    pool = torch.from_numpy(rng.standard_normal((SCORED, dim), dtype=np.float32))
    head = LinearHead(dim, classes).eval()
    score = statistics.median(
        cpu_seconds(lambda: predict(head, pool, FeatureInputs(device), 256)) for _ in range(repeats)
    )
    low, high = LABELS
    per_label = (epoch_s[high] - epoch_s[low]) / (high - low)
    return {
        "dim": dim,
        "classes": classes,
        "epoch_s": {str(n): round(s, 5) for n, s in epoch_s.items()},
        "epoch_base_s": round(max(0.0, epoch_s[low] - per_label * low), 6),
        "epoch_per_label_s": float(f"{per_label:.4g}"),
        "score_s_per_image": float(f"{score / SCORED:.4g}"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="keep the figures in benchmarks/results/linear_heads.json")
    args = parser.parse_args(argv)

    import torch

    from alvit.loop import cpu_model

    torch.set_num_threads(1)
    shapes = [measure(dim, classes, args.repeats) for dim, classes in SHAPES]
    for s in shapes:
        print(
            f"D {s['dim']:>4} K {s['classes']:>3}: epoch {s['epoch_base_s'] * 1e3:.1f} ms + "
            f"{s['epoch_per_label_s'] * 1e6:.2f} us a label; scoring {s['score_s_per_image'] * 1e6:.2f} us an image"
        )
    if args.json:
        record = {
            "cpu": cpu_model(),
            "threads": 1,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "batch_size": 64,
            "eval_batch_size": 256,
            "repeats": args.repeats,
            "shapes": shapes,
        }
        (RESULTS / "linear_heads.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
