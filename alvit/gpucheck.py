"""The GPU check's report: ``benchmarks/gpu_check.sh`` runs the steps, this gathers what they left
in its work folder into one JSON file and states each throughput target as met, missed, or not
measured (null). Nothing is estimated: a figure that was not measured is null.

    python -m alvit.gpucheck WORK OUT.json --budget 480 --started EPOCH_SECONDS
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

LOG_TAIL_LINES = 40


def targets(bench: list[dict]) -> list[dict]:
    """Issue 10's targets on an H100/H200, each with the measured value (null when not measured)."""

    def best(model: str, key: str, batch: int | None = None) -> float | None:
        values = [
            b[key]
            for b in bench
            if b["model"] == model and (batch is None or b["batch"] == batch) and b.get(key) is not None
        ]
        return max(values, default=None)

    four = [
        row["scaling_vs_one"]
        for b in bench
        if b["model"] == "vit_b32"
        for row in b.get("concurrent", [])
        if row["processes"] == 4 and row["scaling_vs_one"] is not None
    ]
    rows = [
        ("vit_b16 training MFU (best batch)", best("vit_b16", "mfu"), 0.40),
        ("vit_b16 scoring MFU (best batch)", best("vit_b16", "score_mfu"), 0.50),
        ("vit_b16 training speedup over the naive pipeline at batch 64", best("vit_b16", "speedup_vs_naive", 64), 4.0),
        ("vit_b32 aggregate training throughput of 4 concurrent runs over one", max(four, default=None), 2.0),
    ]
    return [
        {"target": name, "value": value, "at_least": threshold, "met": None if value is None else value >= threshold}
        for name, value, threshold in rows
    ]


def collect(work: Path, budget_s: float, started: float) -> dict:
    """Everything the check's steps left in ``work``, as one dict."""
    steps = []
    for name, status, rc, seconds in _tsv(work / "steps.tsv"):
        row = {"name": name, "status": status, "rc": int(rc) if rc else None, "seconds": int(seconds)}
        log = work / "logs" / f"{name}.log"
        if status != "ok" and log.exists():
            row["log_tail"] = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        steps.append(row)
    bench = [json.loads(path.read_text()) for path in sorted(work.glob("bench-*.json"))]
    pytest_log = work / "logs" / "pytest-gpu.log"
    return {
        "check": "benchmarks/gpu_check.sh",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started),
        "budget_s": budget_s,
        "settings": dict(_tsv(work / "settings.tsv")),
        "machine": machine(),
        "steps": steps,
        "pytest_gpu": pytest_log.read_text(errors="replace").strip().splitlines()[-1:] if pytest_log.exists() else None,
        "bench": bench,
        "rounds": _rounds(work / "run"),
        "targets": targets(bench),
    }


def machine() -> dict:
    import timm
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }


def _rounds(run: Path) -> dict | None:
    """The two real rounds: each round's row, and the run's env.json (device, compile, fused attention)."""
    if not (run / "rounds.csv").exists():
        return None
    with open(run / "rounds.csv", newline="") as handle:
        rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    env = json.loads((run / "env.json").read_text()) if (run / "env.json").exists() else None
    return {"rows": rows, "env": env}


def _number(text: str) -> float | int | str | None:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _tsv(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alvit.gpucheck", description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the check's work folder")
    parser.add_argument("out", type=Path, help="the JSON file to write")
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--started", type=float, required=True, help="start time, seconds since the epoch")
    args = parser.parse_args(argv)
    report = collect(args.work, args.budget, args.started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    done = sum(step["status"] == "ok" for step in report["steps"])
    print(f"gpu_check: {done}/{len(report['steps'])} steps ok in {report['seconds']} s -> {args.out}")
    for target in report["targets"]:
        print(
            f"  {target['target']}: {target['value']} (at least {target['at_least']}): "
            f"{ {True: 'met', False: 'missed', None: 'not measured'}[target['met']] }"
        )


if __name__ == "__main__":
    main()
