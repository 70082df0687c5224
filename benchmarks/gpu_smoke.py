"""GPU smoke test and throughput benchmark: two active-learning rounds of a paper backbone.

Random-init weights and synthetic CIFAR-sized data (uint8 32 x 32, resized on the device to the
model's input), so it runs on a machine with no network. Prints training and pool-scoring
images per second and the peak GPU memory.

    python benchmarks/gpu_smoke.py                      # vit_b16 on CUDA, pool 10,000
    python benchmarks/gpu_smoke.py --device cpu --model vit_tiny_p4 --pool 512 --labeled 128
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from alvit.config import TrainConfig
from alvit.data import Preprocessor
from alvit.models import create_model, resolve_model
from alvit.strategies import PoolView, create_strategy
from alvit.train import fit, predict, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_b16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--labeled", type=int, default=1_000, help="labeled set of round 0 (round 1 doubles it)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    spec = resolve_model(args.model)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.pool, 3, 32, 32), dtype=np.uint8)).to(device)
    labels = rng.integers(0, 10, args.pool)
    torch.manual_seed(0)
    model = create_model(spec, num_classes=10).to(device)
    preprocess = Preprocessor(spec.input_size, spec.mean, spec.std, device)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, patience=0)
    gci = create_strategy("gci_vital")
    figures = {"model": args.model, "timm_name": spec.timm_name, "input_size": spec.input_size, "device": str(device),
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "rounds": []}
    labeled = rng.choice(args.pool, args.labeled, replace=False)
    for round_ in range(2):
        _sync(device)
        start = time.perf_counter()
        result = fit(model, images[torch.from_numpy(labeled).to(device)], labels[labeled], cfg, 0.0, preprocess,
                     np.random.SeedSequence(round_), progress=False)
        _sync(device)
        train_s = time.perf_counter() - start
        unlabeled = np.setdiff1d(np.arange(args.pool), labeled)
        start = time.perf_counter()
        scored = predict(model, images[torch.from_numpy(unlabeled).to(device)], preprocess, args.eval_batch_size)
        _sync(device)
        score_s = time.perf_counter() - start
        start = time.perf_counter()
        with_attention = predict(model, images[torch.from_numpy(unlabeled).to(device)], preprocess,
                                 args.eval_batch_size, attention=True)
        reference = predict(model, images[torch.from_numpy(labeled).to(device)], preprocess, args.eval_batch_size, attention=True)
        picked = gci.select(PoolView(probs=with_attention.probs, attention=with_attention.attention,
                                     reference_attention=reference.attention, reference_labels=labels[labeled]),
                            len(labeled), rng)
        _sync(device)
        gci_s = time.perf_counter() - start
        row = {"round": round_, "labeled": len(labeled), "epochs": result.epochs,
               "train_img_per_s": round(len(labeled) * result.epochs / train_s, 1),
               "score_img_per_s": round(len(unlabeled) / score_s, 1),
               "gci_vital_s": round(gci_s, 2), "entropy_finite": bool(np.isfinite(scored.probs).all())}
        figures["rounds"].append(row)
        print(json.dumps(row), flush=True)
        labeled = np.concatenate([labeled, unlabeled[picked.indices]])
    if device.type == "cuda":
        figures["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
