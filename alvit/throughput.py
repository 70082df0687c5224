"""Measured GPU throughput: what ``alvit bench`` measured, and which measurement stands for a model
at a batch size.

Read from ``alvit bench --json`` files (one result each) and ``benchmarks/gpu_check.sh`` reports
(a ``bench`` list). Only GPU measurements count (``device`` ``cuda...``): a CPU's rate says
nothing about GPU-hours. A measurement stands for a model at one input size; asked for a batch
that was not measured, :func:`nearest` takes the measured batch nearest by ratio (64 is as far
from 128 as 256 is), the smaller on a tie: throughput grows with the batch, so the smaller one
errs towards more hours. It never interpolates: throughput is not linear in the batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alvit.errors import ConfigError
from alvit.paths import CHECKOUT

RESULTS = CHECKOUT / "benchmarks" / "results"  # the committed results (absent from an installed copy)


@dataclass(frozen=True)
class Measurement:
    """One ``alvit bench`` result on a GPU: steady-state images per second of the fast path."""

    model: str
    input_size: int
    device_name: str  # e.g. "NVIDIA H200"
    batch: int  # training batch
    eval_batch: int  # scoring batch
    train_img_s: float  # images trained per second (forward, backward and optimizer step)
    score_img_s: float  # images scored per second (forward, probabilities to the host)
    source: str  # the file it was read from

    def batch_for(self, kind: str) -> int:
        """The batch at which ``kind`` ("train" or "score") was measured."""
        return self.batch if kind == "train" else self.eval_batch

    def img_s(self, kind: str) -> float:
        return self.train_img_s if kind == "train" else self.score_img_s


def read(path: str | Path) -> list[Measurement]:
    """The GPU measurements of one bench file or GPU check report, in its order (CPU results left out)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(
            f"{path} is not a readable JSON file ({err.__class__.__name__}); give alvit bench --json files or a gpu_check report"
        ) from None
    results = data.get("bench") if isinstance(data, dict) and "bench" in data else [data]
    if not isinstance(results, list) or not all(isinstance(r, dict) and "train_img_s" in r for r in results):
        raise ConfigError(f"{path} holds no alvit bench result; give alvit bench --json files or a gpu_check report")
    try:
        return [_measurement(r, path) for r in results if _on_gpu(r)]
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"{path} holds an alvit bench result with a missing or malformed field ({err.__class__.__name__}: {err}); "
            "give alvit bench --json files or a gpu_check report"
        ) from None


def _on_gpu(r: dict) -> bool:
    """Measured on a CUDA device, both rates finite and above 0 (a failed measurement is null)."""
    return str(r.get("device", "")).startswith("cuda") and _rate(r.get("train_img_s")) and _rate(r.get("score_img_s"))


def _measurement(r: dict, path: Path) -> Measurement:
    sizes = {"input_size": r["input_size"], "batch": r["batch"], "eval_batch": r.get("eval_batch") or r["batch"]}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes.values()):
        raise ValueError(f"input_size, batch and eval_batch must be whole numbers above 0, not {sizes}")
    return Measurement(
        model=r["model"],
        input_size=sizes["input_size"],
        device_name=r["device_name"],
        batch=sizes["batch"],
        eval_batch=sizes["eval_batch"],
        train_img_s=float(r["train_img_s"]),
        score_img_s=float(r["score_img_s"]),
        source=str(path),
    )


def read_files(paths: Iterable[str | Path]) -> list[Measurement]:
    """Every GPU measurement of the files given, each of which must hold at least one."""
    measured = []
    for path in paths:
        found = read(path)
        if not found:
            raise ConfigError(
                f"{path} holds no GPU measurement (only CPU results or failed runs); give results of alvit bench on a GPU"
            )
        measured += found
    return measured


def committed(folder: Path = RESULTS) -> list[Measurement]:
    """The GPU measurements committed under ``benchmarks/results/`` (``bench-*.json``, ``gpu_check*.json``)."""
    return [m for path in sorted([*folder.glob("bench-*.json"), *folder.glob("gpu_check*.json")]) for m in read(path)]


def nearest(measured: Sequence[Measurement], model: str, input_size: int, batch: int, kind: str) -> Measurement | None:
    """The measurement of ``model`` at ``input_size`` whose ``kind`` batch is nearest ``batch`` by ratio,
    the smaller on a tie; None when the model was never measured at that size.

    Raises ConfigError when the choice is ambiguous: two devices, or two measurements at one batch."""
    mine = [m for m in measured if m.model == model and m.input_size == input_size]
    devices = sorted({m.device_name for m in mine})
    if len(devices) > 1:
        raise ConfigError(
            f"{model} was measured on {' and '.join(devices)}; pass --bench with one device's files to choose"
        )
    if not mine:
        return None
    best = min(mine, key=lambda m: (abs(math.log(m.batch_for(kind) / batch)), m.batch_for(kind)))
    twins = [m for m in mine if m.batch_for(kind) == best.batch_for(kind) and m != best]
    if twins:
        raise ConfigError(
            f"{model} was measured twice at batch {best.batch_for(kind)} ({best.source}, {twins[0].source}); "
            "pass --bench with the files to use"
        )
    return best


def _rate(value: object) -> bool:
    """A measured rate: a finite number above 0 (a failed measurement is null)."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
