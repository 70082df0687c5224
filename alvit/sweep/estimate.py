"""``alvit sweep --estimate``: a profile's GPU-hours per model, from measured throughput where
``alvit bench`` measured the model on a GPU, else from FLOPs at an assumed sustained rate.

What a run processes (:func:`workload`) is counted once and priced two ways:

- **assumed**: forward FLOPs per image (:func:`alvit.models.model_flops`) x forward passes, at
  ``sustained_tflops`` (an assumption: bf16 on an H100/H200 at about a fifth of its peak). A
  trained image costs 3 forward passes (forward and backward), a scored image one.
- **measured**: trained images / the measured training images per second, plus scored images /
  the measured scoring images per second (:mod:`alvit.throughput`), at the measured batch nearest
  the run's, on the fast path the run takes on CUDA where that path was measured there, else on
  the path that was (the row names batch and path). The bench's rates are steady state: a run's compilation (about
  half a minute on an H200) is not counted, and GCI-ViTAL's attention pass over the pool and
  BALD's MC-dropout passes, which run eagerly, are priced at the compiled scoring rate, so they
  are undercounted.

Both count every epoch budgeted (early stopping only makes a run cheaper) and count the
early-stopping split as trained, so both are upper bounds on the work. Linear mode
(``train.mode: linear``): one backbone forward per pool and test image for each feature-cache key
(model, weights, dataset and its subset, input size: :mod:`alvit.features`), shared by every run
of that key, priced as scoring; the runs' ``D x K`` heads (``2 D K`` FLOPs an image) are priced
at the assumed rate either way, being a negligible share of a GPU's time. The heads also run on a
CPU (the cache filled, a run needs no GPU), and there they cost minutes, not milliseconds: each
linear row also gives ``cpu_hours``, the heads' CPU time at one thread a run (a run's default
``threads``), from the cost per epoch and per scored image that ``benchmarks/linear_heads.py``
measured at the nearest feature width and class count (:class:`alvit.throughput.HeadCost`),
every epoch budgeted. That is the heads alone: for the linear probe's recipe (D 1280, K 10, 100
to 1,000 labels over 11 rounds, a pool of 50,000) it gives 8.9 s, where its whole runs took 15
to 22 s (``benchmarks/results/linear_probe.json``), the rest being the cache's read, selection,
calibration fits and the files written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alvit.catalog import ASSUMED_SUSTAINED_TFLOPS, TRAIN_FORWARD_PASSES, dataset_shape
from alvit.config import ExperimentConfig
from alvit.profile import Profile
from alvit.throughput import HeadCost, Measurement, head_costs, nearest, nearest_head


@dataclass(frozen=True)
class Workload:
    """Images one run processes, summed over its rounds."""

    trained: int  # image-epochs trained: labeled images x epochs budgeted, every round
    scored: int  # forward passes: the test set every round, the unlabeled pool every round but the last


def workload(cfg: ExperimentConfig, pool: int, test: int) -> Workload:
    """What ``cfg`` processes with a pool of ``pool`` images and ``test`` test images (BALD: the pool
    ``1 + acq.mc_passes`` times)."""
    passes = 1 + (cfg.acq.mc_passes if cfg.strategy == "bald" else 0)
    rounds = range(cfg.al.rounds + 1)
    labeled = [cfg.al.initial + r * cfg.al.query for r in rounds]
    return Workload(
        trained=sum(n * cfg.train.epochs for n in labeled),
        scored=sum(test + (pool - n) * passes * (r < cfg.al.rounds) for r, n in zip(rounds, labeled, strict=True)),
    )


def estimate_gpu_hours(
    profile: Profile,
    sustained_tflops: float = ASSUMED_SUSTAINED_TFLOPS,
    measured: Sequence[Measurement] = (),
    heads: Sequence[HeadCost] | None = None,
) -> list[dict[str, Any]]:
    """Rows per model, most hours first: ``model``, ``runs``, ``gflops_per_image``, ``gpu_hours``
    (measured where ``measured`` holds the model, else assumed), ``assumed_gpu_hours`` (at
    ``sustained_tflops`` throughout) and ``source`` ("measured: NVIDIA H200, batch 64 on
    compiled+graphs+fused" or "assumed: 200 TFLOP/s"); for linear mode also ``cpu_hours`` (its heads on a CPU, one thread a
    run, from ``heads``: default the committed ``benchmarks/results/linear_heads.json``) and
    ``cpu_source``, both None for fine-tuning or when no head cost was measured."""
    import torch

    from alvit.accel import EAGER, FastPath
    from alvit.models import model_flops, num_features, resolve_model

    heads = head_costs() if heads is None else heads

    # A folder of one's own is counted once, not once per configuration.
    shapes = {dataset: dataset_shape(dataset) for dataset in dict.fromkeys(cfg.dataset for cfg in profile.configs)}
    flops_cache: dict[tuple[str, int | None, int], float] = {}
    features_cache: dict[tuple[str, int | None], int] = {}
    extracted: set[tuple] = set()
    per_model: dict[str, dict[str, Any]] = {}
    rate = sustained_tflops * 1e12
    for cfg in profile.configs:
        pool, test, classes = shapes[cfg.dataset].pool, shapes[cfg.dataset].test, shapes[cfg.dataset].classes
        pool = min(pool, cfg.data.max_pool or pool)
        test = min(test, cfg.data.max_test or test)
        spec = resolve_model(cfg.model, cfg.img_size)
        key = (cfg.model, cfg.img_size, classes)
        if key not in flops_cache:
            flops_cache[key] = model_flops(spec, classes)
        per_image = flops_cache[key]
        work = workload(cfg, pool, test)
        cpu_s, cpu_source = None, None
        # The path a run takes on CUDA; linear mode extracts its features without compiling.
        path = (EAGER if cfg.train.mode == "linear" else FastPath.for_run(cfg.train, torch.device("cuda"))).describe()
        train_batch = cfg.train.batch_size // cfg.train.accumulate
        train_m = nearest(measured, cfg.model, spec.input_size, train_batch, "train", path)
        score_m = nearest(measured, cfg.model, spec.input_size, cfg.train.eval_batch_size, "score", path)
        if cfg.train.mode == "linear":
            if (cfg.model, cfg.img_size) not in features_cache:
                features_cache[cfg.model, cfg.img_size] = num_features(spec)
            head_flops = (
                (TRAIN_FORWARD_PASSES * work.trained + work.scored)
                * 2.0
                * features_cache[cfg.model, cfg.img_size]
                * classes
            )
            cache_key = (cfg.model, cfg.img_size, cfg.pretrained, cfg.weights, cfg.dataset, pool, test)
            extraction = 0 if cache_key in extracted else pool + test
            extracted.add(cache_key)
            assumed_s = (head_flops + extraction * per_image) / rate
            if score_m is None:
                seconds, source = assumed_s, _assumed(sustained_tflops)
            else:
                seconds = extraction / score_m.score_img_s + head_flops / rate
                source = f"{_measured(None, score_m, cfg, path)}; heads {_assumed(sustained_tflops)}"
            head = nearest_head(heads, features_cache[cfg.model, cfg.img_size], classes)
            if head is not None:
                budget = [(cfg.train.epochs, cfg.al.initial + r * cfg.al.query) for r in range(cfg.al.rounds + 1)]
                cpu_s = head.seconds(budget, work.scored)
                cpu_source = _heads_shape(head, features_cache[cfg.model, cfg.img_size], classes)
        else:
            assumed_s = (TRAIN_FORWARD_PASSES * work.trained + work.scored) * per_image / rate
            if train_m is None or score_m is None:
                seconds, source = assumed_s, _assumed(sustained_tflops)
            else:
                seconds = work.trained / train_m.train_img_s + work.scored / score_m.score_img_s
                source = _measured(train_m, score_m, cfg, path)
        row = per_model.setdefault(
            cfg.model,
            {
                "model": cfg.model,
                "runs": 0,
                "gflops_per_image": per_image / 1e9,
                "gpu_hours": 0.0,
                "assumed_gpu_hours": 0.0,
                "sources": [],
                "cpu_hours": None,
                "cpu_sources": [],
            },
        )
        row["runs"] += 1
        row["gpu_hours"] += seconds / 3600
        row["assumed_gpu_hours"] += assumed_s / 3600
        if source not in row["sources"]:
            row["sources"].append(source)
        if cpu_s is not None:
            row["cpu_hours"] = (row["cpu_hours"] or 0.0) + cpu_s / 3600
            if cpu_source not in row["cpu_sources"]:
                row["cpu_sources"].append(cpu_source)
    rows = [
        {
            **row,
            "source": "; ".join(row.pop("sources")),
            "cpu_source": _heads_measured(row.pop("cpu_sources"), heads),
        }
        for row in per_model.values()
    ]
    return sorted(rows, key=lambda row: -row["gpu_hours"])


def _heads_shape(head: HeadCost, dim: int, classes: int) -> str:
    """``D 768 x K 10``: the measured head standing for a run's, and the run's where it differs."""
    measured = f"D {head.dim} x K {head.classes}"
    return measured if (head.dim, head.classes) == (dim, classes) else f"{measured} for D {dim} x K {classes}"


def _heads_measured(shapes: list[str], heads: Sequence[HeadCost]) -> str | None:
    """The basis of a row's CPU hours: where the heads were measured, at which shapes, and the bound's assumption."""
    if not shapes:
        return None
    return (
        f"measured on {heads[0].cpu}, 1 thread, at {' and '.join(shapes)} ({Path(heads[0].source).name}), "
        "every epoch budgeted"
    )


def _assumed(sustained_tflops: float) -> str:
    return f"assumed: {sustained_tflops:g} TFLOP/s"


def _measured(train: Measurement | None, score: Measurement, cfg: ExperimentConfig, path: str) -> str:
    """``measured: DEVICE, ...`` naming the batch and path of each rate used and, where they
    differ, the run's (``path``: the run's fast path on CUDA)."""
    train_batch, eval_batch = cfg.train.batch_size // cfg.train.accumulate, cfg.train.eval_batch_size

    def at(m: Measurement, kind: str, wanted: int) -> str:
        got = m.batch_for(kind)
        return f"batch {got}" if got == wanted else f"batch {got} (nearest measured to {wanted})"

    def on(m: Measurement) -> str:
        taken = m.fast_path or "a path not recorded"
        return f"on {taken}" if taken == path else f"on {taken} (not the run's {path})"

    if train is None:
        return f"measured: {score.device_name}, scoring at {at(score, 'score', eval_batch)} {on(score)}"
    if train is score and train_batch == eval_batch == train.batch == train.eval_batch:
        return f"measured: {train.device_name}, {at(train, 'train', train_batch)} {on(train)}"
    if train.fast_path == score.fast_path:
        return (
            f"measured: {train.device_name}, training at {at(train, 'train', train_batch)}, "
            f"scoring at {at(score, 'score', eval_batch)}, both {on(train)}"
        )
    return (
        f"measured: {train.device_name}, training at {at(train, 'train', train_batch)} {on(train)}, "
        f"scoring at {at(score, 'score', eval_batch)} {on(score)}"
    )
