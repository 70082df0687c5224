"""Sweeps: each configuration of a profile (:mod:`alvit.profile`) run once, here or on a SLURM cluster.

Each configuration writes its run folder ``<output>/<run-id>/`` and, when the profile's
``pages`` selects it, ``<output>/<run-id>.ipynb`` (the executed experiment notebook, a page of
the book).

A sweep first sorts the configurations: finished ones (every round, the same configuration up
to :data:`alvit.config.NOT_RESULT_KEYS`, and the page if wanted) are skipped; a run folder of
another configuration is *stale*: the sweep refuses to go on, naming the differing keys, unless
``rerun_stale`` moves it to ``_stale/`` first. A folder ``alvit simulate`` wrote is a preview,
never a finished run: the sweep moves it to ``_simulated/`` and trains the run. The rest go to
an executor, local worker processes (:mod:`alvit.sweep.workers`) or SLURM array tasks
(:mod:`alvit.sweep.slurm`), which claim each configuration before running it
(:mod:`alvit.sweep.leases`), so sweeps running at once on one output never run a configuration
twice. Failures go to ``_failed/<run-id>.txt`` and the sweep goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from alvit import paths
from alvit.catalog import ASSUMED_SUSTAINED_TFLOPS, TRAIN_FORWARD_PASSES, dataset_shape
from alvit.errors import ConfigError, ResultsError
from alvit.profile import Profile, SlurmSettings
from alvit.results import RunFolder
from alvit.sweep.leases import DEFAULT_STALE_AFTER_S, Leases
from alvit.sweep.task import (
    CLAIMED,
    DONE,
    FAILED,
    SIMULATED_DIR,
    SKIPPED,
    STALE_DIR,
    Outcome,
    Task,
    is_complete,
    move_aside,
    stale_keys,
)

log = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep: where (executor, slots), how long a run may take, what to do with stale runs."""

    executor: str = "local"
    jobs: int | None = None  # local: worker processes (None: one per GPU slot, else 1)
    gpus: tuple[str, ...] = ()  # local: CUDA device ids to spread workers over
    per_gpu: int = 1  # local: runs at once on each GPU
    timeout_s: float | None = None  # per run (local: the worker is killed; slurm: the job's time limit)
    rerun_stale: bool = False  # move runs of an older configuration to _stale/ and rerun them
    stale_after_s: float = DEFAULT_STALE_AFTER_S  # a claim whose heartbeat is older is taken over
    slurm: dict[str, Any] = field(default_factory=dict)  # command-line SLURM settings over the profile's
    progress: bool = True


def run_sweep(
    profile: Profile,
    jobs: int | None = None,
    progress: bool = True,
    options: SweepOptions | None = None,
    profile_path: str | Path | None = None,
) -> dict[str, list[str]]:
    """Run every configuration of ``profile`` not yet finished; return run ids by outcome.

    Outcomes: ``done`` (run here), ``skipped`` (finished before), ``failed`` (reason in
    ``_failed/``), ``claimed`` (another sweep is running it). ``jobs`` and ``progress`` are
    shorthands for the same fields of ``options``; ``profile_path`` names the profile in messages.
    """
    options = options or SweepOptions(jobs=jobs, progress=progress)
    execute = _executor(profile, options)
    output = paths.resolve(profile.output)
    tasks, skipped, stale, simulated = plan(profile, output, options)
    if stale and not options.rerun_stale:
        keys = sorted({key for changed in stale.values() for key in changed})
        raise ConfigError(
            f"{len(stale)} run folder(s) in {output} hold runs of another configuration (differing in "
            f"{', '.join(keys)}), e.g. {next(iter(stale))}; rerun them with --rerun-stale, which moves the old "
            f"folders to {output / STALE_DIR}/"
        )
    if options.executor == "slurm" and tasks:
        from alvit.sweep.slurm import check_offline

        check_offline(tasks, str(profile_path or f"configs/profiles/{profile.name}.yaml"))
    paths.make_folder(output, "the sweep's output")
    set_aside(output, stale, options.stale_after_s)
    if simulated:
        set_aside(output, simulated, options.stale_after_s, into=SIMULATED_DIR)
        log.info(
            "%d simulated run folder(s) (from alvit simulate) moved to %s/; their real runs are trained now",
            len(simulated),
            output / SIMULATED_DIR,
        )
    outcome: dict[str, list[str]] = {DONE: [], SKIPPED: list(skipped), FAILED: [], CLAIMED: []}
    bar = tqdm(
        total=len(profile.configs),
        initial=len(skipped),
        desc=f"sweep {profile.name}",
        unit="run",
        disable=not options.progress,
        dynamic_ncols=True,
    )
    try:
        with logging_redirect_tqdm():  # log lines above the bar, not through it
            for result in execute(tasks) if tasks else ():
                outcome[result.status].append(result.run_id)
                if result.status == FAILED:
                    bar.write(f"{result.run_id} failed: {result.reason}")
                bar.update(1)
    finally:
        bar.close()
    return outcome


def summary_line(outcome: dict[str, list[str]]) -> str:
    """``done N / skipped M / failed F / claimed elsewhere C``."""
    return (
        f"done {len(outcome[DONE])} / skipped {len(outcome[SKIPPED])} / failed {len(outcome[FAILED])} / "
        f"claimed elsewhere {len(outcome[CLAIMED])}"
    )


class Plan(NamedTuple):
    """A sweep's configurations, sorted before anything runs."""

    tasks: list[Task]  # to run (stale and simulated ones included, once moved aside)
    skipped: list[str]  # run ids finished before
    stale: dict[str, list[str]]  # run id -> the keys in which its folder's configuration differs
    simulated: list[str]  # run ids whose folder alvit simulate wrote


def plan(profile: Profile, output: Path, options: SweepOptions) -> Plan:
    """Sort the configurations: tasks to run, run ids complete, stale run ids with their differing keys, simulated ones."""
    tasks, skipped, stale, simulated = [], [], {}, []
    for cfg in profile.configs:
        task = Task(
            cfg=cfg,
            output=output,
            page=profile.wants_page(cfg),
            cell_timeout_s=options.timeout_s,  # a page's cell may take as long as a whole run
            stale_after_s=options.stale_after_s,
        )
        try:
            if is_complete(task):
                skipped.append(cfg.run_id)
                continue
            if RunFolder(task.run_dir).is_simulated():
                simulated.append(cfg.run_id)
                changed = []
            else:
                changed = stale_keys(cfg, output)
        except ResultsError:
            changed = []  # a damaged folder: the task's run says what is wrong, and it is recorded as failed
        if changed:
            stale[cfg.run_id] = changed
        tasks.append(task)
    return Plan(tasks, skipped, stale, simulated)


def set_aside(output: Path, run_ids: Iterable[str], stale_after_s: float, into: str = STALE_DIR) -> None:
    """Move run folders to ``<into>/`` (``_stale/``, ``_simulated/``), each under a claim: never one another sweep is writing."""
    claims = Leases(output, stale_after_s)
    for run_id in run_ids:
        claim = claims.acquire(run_id)
        if claim is None:
            continue  # running elsewhere: that sweep's task will say what it finds
        try:
            log.info("%s: the old folder moved to %s", run_id, move_aside(output, run_id, into))
        finally:
            claims.release(claim)


Executor = Callable[[Sequence[Task]], Iterator[Outcome]]


def _executor(profile: Profile, options: SweepOptions) -> Executor:
    """The executor's run function, its settings checked before anything is touched."""
    if options.executor not in EXECUTORS:
        raise ConfigError(f"executor {options.executor!r} is not known; valid choices are: {', '.join(EXECUTORS)}")
    if options.executor == "slurm":
        from alvit.sweep import slurm

        slurm.require_slurm()
        settings = SlurmSettings.from_dict({**profile.slurm, **options.slurm}, "the profile or the command line")
        return lambda tasks: slurm.run_slurm(tasks, settings, options.timeout_s, name=f"alvit-{profile.name}")
    from alvit.sweep.workers import make_slots, run_local

    slots = make_slots(options.jobs, options.gpus, options.per_gpu)
    if options.gpus:
        pinned = sorted(
            {cfg.device for cfg in profile.configs if cfg.device.startswith("cuda:") and cfg.device != "cuda:0"}
        )
        if pinned:
            raise ConfigError(
                f"with --gpus each worker sees its one GPU as cuda:0, so device {pinned[0]} does not exist there; "
                f"set device: auto (or cuda) in the profile"
            )
    return lambda tasks: run_local(tasks, slots, options.timeout_s)


def estimate_gpu_hours(profile: Profile, sustained_tflops: float = ASSUMED_SUSTAINED_TFLOPS) -> list[dict[str, Any]]:
    """Rough GPU hours per model: forward FLOPs per image x images processed, at a sustained rate.

    Fine-tuning, per run: training costs 3 forward passes per image-epoch (forward + backward),
    for every epoch budgeted (early stopping only makes it cheaper); each round also scores the
    unlabeled pool and the test set once (BALD: ``acq.mc_passes`` more). Linear mode
    (``train.mode: linear``): one backbone forward per pool and test image for each feature-cache
    key (model, weights, dataset and its subset, input size: :mod:`alvit.features`), shared by
    every run of that key, plus the runs' heads: a ``D x K`` layer trained and scored the same way,
    ``2 D K`` FLOPs an image. ``sustained_tflops`` is an assumption (bf16 on an H100/H200 at about
    a quarter of its peak), not a measurement.
    """
    from alvit.models import model_flops, num_features, resolve_model

    # A folder of one's own is counted once, not once per configuration.
    shapes = {dataset: dataset_shape(dataset) for dataset in dict.fromkeys(cfg.dataset for cfg in profile.configs)}
    flops_cache: dict[tuple[str, int], float] = {}
    features_cache: dict[tuple[str, int | None], int] = {}
    extracted: set[tuple] = set()
    per_model: dict[str, dict[str, Any]] = {}
    for cfg in profile.configs:
        pool, test, classes = shapes[cfg.dataset].pool, shapes[cfg.dataset].test, shapes[cfg.dataset].classes
        pool = min(pool, cfg.data.max_pool or pool)
        test = min(test, cfg.data.max_test or test)
        key = (cfg.model, classes)
        if key not in flops_cache:
            flops_cache[key] = model_flops(resolve_model(cfg.model, cfg.img_size), classes)
        per_image = flops_cache[key]
        passes = 1 + (cfg.acq.mc_passes if cfg.strategy == "bald" else 0)
        images = sum(
            TRAIN_FORWARD_PASSES * (cfg.al.initial + r * cfg.al.query) * cfg.train.epochs
            + test
            + (pool - cfg.al.initial - r * cfg.al.query) * passes * (r < cfg.al.rounds)
            for r in range(cfg.al.rounds + 1)
        )
        if cfg.train.mode == "linear":
            if (cfg.model, cfg.img_size) not in features_cache:
                features_cache[cfg.model, cfg.img_size] = num_features(resolve_model(cfg.model, cfg.img_size))
            head = 2.0 * features_cache[cfg.model, cfg.img_size] * classes
            cache_key = (cfg.model, cfg.img_size, cfg.pretrained, cfg.weights, cfg.dataset, pool, test)
            flops = images * head + (0.0 if cache_key in extracted else (pool + test) * per_image)
            extracted.add(cache_key)
        else:
            flops = images * per_image
        row = per_model.setdefault(
            cfg.model, {"model": cfg.model, "runs": 0, "gflops_per_image": per_image / 1e9, "gpu_hours": 0.0}
        )
        row["runs"] += 1
        row["gpu_hours"] += flops / (sustained_tflops * 1e12) / 3600
    return sorted(per_model.values(), key=lambda row: -row["gpu_hours"])
