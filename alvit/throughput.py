"""Measured GPU throughput: what ``alvit bench`` measured, and which measurement stands for a model
at a batch size on a fast path; and what linear mode's heads cost on a CPU (:class:`HeadCost`).

Read from ``alvit bench --json`` files (one result each), ``benchmarks/gpu_check.sh`` reports (a
``bench`` list) and ``benchmarks/gpu_speed.sh`` reports (a ``jobs`` list, each bench's under
``figures``). Only GPU measurements count (``device`` ``cuda...``): a CPU's rate says nothing
about GPU-hours. A bench may time training or scoring only; it then stands for that work only.

A measurement stands for a model at one input size; asked for a batch that was not measured,
:func:`nearest` takes the measured batch nearest by ratio (64 is as far from 128 as 256 is), the
smaller on a tie: throughput grows with the batch, so the smaller one errs towards more hours. It
never interpolates: throughput is not linear in the batch. At that batch it prefers the path a
run takes (``compiled+graphs+fused`` by default on CUDA) over others, and of two measurements of
one path the slower, which errs the same way.
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
HEADS = RESULTS / "linear_heads.json"  # linear mode's heads on a CPU (benchmarks/linear_heads.py)


@dataclass(frozen=True)
class Measurement:
    """One ``alvit bench`` result on a GPU: steady-state images per second of the fast path."""

    model: str
    input_size: int
    device_name: str  # e.g. "NVIDIA H200"
    batch: int  # training batch
    eval_batch: int  # scoring batch
    train_img_s: float | None  # images trained per second (forward, backward and optimizer step); None: not timed
    score_img_s: float | None  # images scored per second (forward, probabilities to the host); None: not timed
    source: str  # the file it was read from
    fast_path: str | None = None  # alvit.accel.FastPath.describe(), e.g. "compiled+graphs+fused"; None: not recorded

    def batch_for(self, kind: str) -> int:
        """The batch at which ``kind`` ("train" or "score") was measured."""
        return self.batch if kind == "train" else self.eval_batch

    def img_s(self, kind: str) -> float | None:
        return self.train_img_s if kind == "train" else self.score_img_s


GIVE = "give alvit bench --json files, a gpu_check report or a gpu_speed report"


def read(path: str | Path) -> list[Measurement]:
    """The GPU measurements of one bench file, GPU check or GPU speed report, in its order (CPU
    results and benches that timed nothing left out)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path} is not a readable JSON file ({err.__class__.__name__}); {GIVE}") from None
    results = _results(data)
    if not isinstance(results, list) or not all(isinstance(r, dict) and "train_img_s" in r for r in results):
        raise ConfigError(f"{path} holds no alvit bench result; {GIVE}")
    try:
        return [_measurement(r, path) for r in results if _on_gpu(r)]
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"{path} holds an alvit bench result with a missing or malformed field ({err.__class__.__name__}: {err}); "
            f"{GIVE}"
        ) from None


def _results(data: object) -> object:
    """The bench results of a file: a check's ``bench`` list, a speed report's bench jobs' ``figures``
    (those that ran), or the file itself."""
    if isinstance(data, dict) and "bench" in data:
        return data["bench"]
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        jobs = [job for job in data["jobs"] if isinstance(job, dict) and job.get("kind") == "bench"]
        return [job["figures"] for job in jobs if job.get("figures") is not None]
    return [data]


def _on_gpu(r: dict) -> bool:
    """Measured on a CUDA device, at least one rate finite and above 0 (a failed or untimed one is null)."""
    return str(r.get("device", "")).startswith("cuda") and (_rate(r.get("train_img_s")) or _rate(r.get("score_img_s")))


def _measurement(r: dict, path: Path) -> Measurement:
    sizes = {"input_size": r["input_size"], "batch": r["batch"], "eval_batch": r.get("eval_batch") or r["batch"]}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes.values()):
        raise ValueError(f"input_size, batch and eval_batch must be whole numbers above 0, not {sizes}")
    # Results from before the fast path was recorded ran compiled (or eager), with no options.
    path_taken = r.get("fast_path") or ("compiled" if r.get("compile") else None)
    return Measurement(
        model=r["model"],
        input_size=sizes["input_size"],
        device_name=r["device_name"],
        batch=sizes["batch"],
        eval_batch=sizes["eval_batch"],
        train_img_s=float(r["train_img_s"]) if _rate(r["train_img_s"]) else None,
        score_img_s=float(r["score_img_s"]) if _rate(r.get("score_img_s")) else None,
        source=str(path),
        fast_path=str(path_taken) if path_taken else None,
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
    """The GPU measurements committed under ``benchmarks/results/`` (``bench-*.json``,
    ``gpu_check*.json``, ``gpu_speed*.json``)."""
    patterns = ("bench-*.json", "gpu_check*.json", "gpu_speed*.json")
    return [m for path in sorted(p for pattern in patterns for p in folder.glob(pattern)) for m in read(path)]


def nearest(
    measured: Sequence[Measurement], model: str, input_size: int, batch: int, kind: str, path: str | None = None
) -> Measurement | None:
    """The measurement of ``model`` at ``input_size`` that timed ``kind`` ("train" or "score") at the
    batch nearest ``batch`` by ratio, the smaller on a tie; there, one on ``path`` (a fast path,
    e.g. ``compiled+graphs+fused``) where there is one, and of several the slower. None when the
    model's ``kind`` was never measured at that size.

    Raises ConfigError when the model was measured on two devices."""
    mine = [m for m in measured if m.model == model and m.input_size == input_size and m.img_s(kind) is not None]
    devices = sorted({m.device_name for m in mine})
    if len(devices) > 1:
        raise ConfigError(
            f"{model} was measured on {' and '.join(devices)}; pass --bench with one device's files to choose"
        )
    if not mine:
        return None
    at = min({m.batch_for(kind) for m in mine}, key=lambda b: (abs(math.log(b / batch)), b))
    there = [m for m in mine if m.batch_for(kind) == at]
    on_path = [m for m in there if m.fast_path == path]
    return min(on_path or there, key=lambda m: m.img_s(kind))


def _rate(value: object) -> bool:
    """A measured rate: a finite number above 0 (a failed measurement is null)."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@dataclass(frozen=True)
class HeadCost:
    """A linear head's measured cost on a CPU at one feature width D and class count K, in CPU seconds of one
    thread (``benchmarks/linear_heads.py``): an epoch of training is ``epoch_base_s + epoch_per_label_s x labels``."""

    dim: int
    classes: int
    epoch_base_s: float
    epoch_per_label_s: float
    score_s_per_image: float
    cpu: str  # the processor measured on
    source: str

    def seconds(self, epochs_by_labels: Sequence[tuple[int, int]], scored: int) -> float:
        """CPU seconds of the rounds given as (epochs, labels), and of ``scored`` images scored."""
        training = sum(
            epochs * (self.epoch_base_s + self.epoch_per_label_s * labels) for epochs, labels in epochs_by_labels
        )
        return training + scored * self.score_s_per_image


def head_costs(path: Path = HEADS) -> list[HeadCost]:
    """The heads' costs measured in ``path`` (none where the file is absent, e.g. an installed copy)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(
            f"{path} is not a readable JSON file ({err.__class__.__name__}); rerun benchmarks/linear_heads.py --json"
        ) from None
    fields = ("dim", "classes", "epoch_base_s", "epoch_per_label_s", "score_s_per_image")
    try:
        return [
            HeadCost(**{name: shape[name] for name in fields}, cpu=str(data["cpu"]), source=str(path))
            for shape in data["shapes"]
        ]
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"{path} lacks a field of benchmarks/linear_heads.py's results ({err.__class__.__name__}: {err}); "
            "rerun benchmarks/linear_heads.py --json"
        ) from None


def nearest_head(costs: Sequence[HeadCost], dim: int, classes: int) -> HeadCost | None:
    """The measured head nearest ``D x K`` by ratio of ``D x K`` (the larger on a tie: it errs towards more
    time), K itself first (scoring and the loss grow with K); None when nothing was measured."""
    if not costs:
        return None
    return min(
        costs,
        key=lambda c: (c.classes != classes, abs(math.log(c.dim * c.classes / (dim * classes))), -c.dim * c.classes),
    )
