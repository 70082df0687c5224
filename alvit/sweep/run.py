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
(:mod:`alvit.leases`), so sweeps running at once on one output never run a configuration
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
from alvit.errors import ConfigError, ResultsError
from alvit.inputs import InputDigests
from alvit.leases import DEFAULT_STALE_AFTER_S, Leases
from alvit.profile import Profile, SlurmSettings
from alvit.results import RunFolder
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
    paths.check_feature_caches(task.cfg for task in tasks)  # before any run starts, not once in each
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
    digests = InputDigests()  # a label file or image folder shared by the configurations is read once
    for cfg in profile.configs:
        task = Task(
            cfg=cfg,
            output=output,
            page=profile.wants_page(cfg),
            cell_timeout_s=options.timeout_s,  # a page's cell may take as long as a whole run
            stale_after_s=options.stale_after_s,
        )
        try:
            if is_complete(task, digests):
                skipped.append(cfg.run_id)
                continue
            if RunFolder(task.run_dir).is_simulated():
                simulated.append(cfg.run_id)
                changed = []
            else:
                changed = stale_keys(cfg, output, digests)
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
