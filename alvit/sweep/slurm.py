"""The slurm executor: one SLURM array task per configuration, through submitit.

``submitit.AutoExecutor.map_array`` submits :class:`SweepTask` over the sweep's tasks as job
arrays of at most the cluster's ``MaxArraySize`` (``scontrol show config``; some sites cap it at
100, and submitit does not split), with ``array_parallelism`` runs at once in all. Each array
task claims its configuration (:mod:`alvit.sweep.leases`), runs it in the job's process and renders
its page, like a local worker. Preempted, or at its time limit, a task is requeued by submitit
(:meth:`SweepTask.checkpoint`; at most 3 times for time limits), takes over its own claim and
resumes after the run's last finished round.

Logs and submitit's pickles go to ``<output>/_slurm/<sweep-stamp>/``, a new folder per sweep:
job ids restart at 1 on a fresh slurmctld, and a shared folder could hand back an old result.

Following the jobs: submitit asks ``sacct`` for job states, which fails where accounting is off
and then warns "Bypassing sacct error ..., status may be inaccurate" at every poll. alvit never
asks submitit for a state: a task is over when its result file exists, or when ``squeue`` no
longer lists it (then ``scontrol show job`` says why: cancelled, out of memory, ...). Both work
without accounting, and no such warning is printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alvit.errors import ConfigError, ResultsError, one_line
from alvit.profile import SlurmSettings
from alvit.sweep.leases import Leases, slurm_job_id
from alvit.sweep.task import (
    CLAIMED,
    DONE,
    FAILED,
    Outcome,
    Task,
    is_complete,
    record_failure,
    run_task,
)

log = logging.getLogger(__name__)

SLURM_DIR = "_slurm"
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's own default


class SweepTask:
    """The array task's callable: one configuration, claimed and run in the job's own process."""

    def __call__(self, task: Task) -> Outcome:
        return run_task(task, job=slurm_job_id())

    def checkpoint(self, task: Task) -> Any:
        """Called by submitit when SLURM preempts the job or its time is nearly up: requeue this same call.

        Nothing to save: the run folder holds every finished round, and the requeued task takes
        over its own claim (same job id) and resumes after the last one.
        """
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, task)


def require_slurm() -> None:
    """Refuse, in one sentence, where there is no SLURM to submit to."""
    missing = [tool for tool in ("sbatch", "squeue", "scontrol") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(
            f"--executor slurm needs SLURM's {', '.join(missing)} on the PATH (run the sweep on the cluster's "
            f"login node), or use --executor local"
        )


def check_offline(tasks: Sequence[Task], profile_path: str) -> None:
    """Refuse to submit when a dataset or pretrained weights the runs need are not on this machine.

    A compute node without network would otherwise fail every array task for one missing file.
    """
    from alvit.sweep.fetch import missing, needs

    absent = missing(needs([task.cfg for task in tasks]))
    if absent:
        raise ConfigError(
            f"{len(absent)} dataset(s) or weights the runs need are not here, so every job would fail; "
            f"download them on a machine with network with alvit fetch {profile_path}, then sweep again:\n  "
            + "\n  ".join(absent)
        )


def run_slurm(
    tasks: Sequence[Task], settings: SlurmSettings, timeout_s: float | None = None, name: str = "alvit"
) -> Iterator[Outcome]:
    """Submit ``tasks`` as job arrays, wait for them, and yield each outcome as it comes."""
    import submitit

    require_slurm()
    claims = Leases(tasks[0].output, tasks[0].stale_after_s)
    live = {
        task.run_id: claim
        for task in tasks
        if (claim := claims.read(task.run_id)) is not None and claims.is_live(claim)
    }
    for run_id, claim in live.items():
        yield Outcome(run_id, CLAIMED, claim.describe())
    tasks = [task for task in tasks if task.run_id not in live]
    if not tasks:
        return
    folder = sweep_folder(tasks[0].output)
    size = max_array_size()
    chunks = [list(tasks[start : start + size]) for start in range(0, len(tasks), size)]
    jobs = []
    for index, chunk in enumerate(chunks):
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        share = settings.array_parallelism // len(chunks) + (index < settings.array_parallelism % len(chunks))
        executor.update_parameters(
            name=name, slurm_setup=job_environment(), **settings.submitit_parameters(timeout_s, max(1, share))
        )
        jobs += list(zip(executor.map_array(SweepTask(), chunk), chunk))
    log.info("submitted %d array task(s) in %d array(s); logs in %s", len(jobs), len(chunks), folder)
    try:
        yield from _follow(jobs)
    except KeyboardInterrupt:
        arrays = sorted({job.job_id.split("_")[0] for job, _ in jobs})
        log.warning(
            "the SLURM jobs keep running; follow them with alvit status, or stop them with scancel %s", " ".join(arrays)
        )
        raise


def sweep_folder(output: Path) -> Path:
    """A new, empty ``<output>/_slurm/<stamp>/`` for this sweep's logs and pickles."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    folder = output / SLURM_DIR / stamp
    folder.mkdir(parents=True)
    return folder


def job_environment() -> list[str]:
    """Shell lines the job script runs first: offline data and weights, threads per task."""
    from alvit.sweep.fetch import env_lines

    lines = [f"export {line}" for line in env_lines()]
    if "OMP_NUM_THREADS" not in os.environ:
        lines.append("export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} MKL_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}")
    return lines


def max_array_size() -> int:
    """The cluster's ``MaxArraySize`` (arrays hold task ids 0 .. MaxArraySize - 1)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        config = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        match = re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.MULTILINE)
        if match:
            return max(1, int(match.group(1)))
    return DEFAULT_MAX_ARRAY_SIZE


def _follow(jobs: list[tuple[Any, Task]]) -> Iterator[Outcome]:
    """Yield an outcome per array task as its result file appears or it leaves the queue without one."""
    pending = {job.job_id: (job, task) for job, task in jobs}
    arrays = sorted({job_id.split("_")[0] for job_id in pending})
    gone_before: set[str] = set()
    start = time.monotonic()
    while pending:
        queued = _queued(arrays)
        for job_id, (job, task) in list(pending.items()):
            if job.paths.result_pickle.exists():
                del pending[job_id]
                yield _result(job, task)
            elif queued is not None and job_id not in queued:
                if job_id in gone_before:  # gone two polls running: not a race with its result file
                    del pending[job_id]
                    yield _lost(job, task)
                gone_before.add(job_id)
            else:
                gone_before.discard(job_id)
        if pending:
            time.sleep(min(30.0, max(1.0, (time.monotonic() - start) / 20)))  # 1 s at first, 30 s after 10 minutes


def _queued(arrays: list[str]) -> set[str] | None:
    """Array task ids ``squeue`` lists (pending, running, requeued); None if squeue cannot tell now."""
    queued: set[str] = set()
    for array in arrays:  # one at a time: squeue refuses a whole list for one forgotten id
        try:
            result = subprocess.run(
                ["squeue", "-h", "-r", "-o", "%i", "-j", array], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if result.returncode != 0 and "Invalid job id" not in result.stderr:
            return None
        queued.update(result.stdout.split())  # a forgotten id: every task of that array has ended
    return queued


def _result(job: Any, task: Task) -> Outcome:
    try:
        return job.result()
    except Exception as err:  # the task raised outside run_task, or submitit gave up requeueing it
        return _failed(job, task, f"slurm job {job.job_id} failed: {one_line(err)}")


def _lost(job: Any, task: Task) -> Outcome:
    state = _job_state(job.job_id)
    if state is None and not job.paths.stdout.exists():
        return _failed(job, task, f"slurm job {job.job_id} ended before it started (cancelled while pending?)")
    return _failed(
        job,
        task,
        f"slurm job {job.job_id} ended without a result ({state or 'state unknown'}); its log: {job.paths.stderr}",
    )


def _failed(job: Any, task: Task, reason: str) -> Outcome:
    """Record a task that died outside :func:`run_task`, and free its claim for the next sweep."""
    claims = Leases(task.output, task.stale_after_s)
    claim = claims.read(task.run_id)
    if claim is not None and claim.job == job.job_id:
        claims.release(claim)
    with contextlib.suppress(ResultsError):  # a folder that cannot be resumed is recorded as failed below
        if is_complete(task):  # killed after it finished: nothing is lost
            return Outcome(task.run_id, DONE)
    record_failure(task.output, task.run_id, reason, f"Logs: {job.paths.stdout}\n      {job.paths.stderr}\n")
    return Outcome(task.run_id, FAILED, reason)


def _job_state(job_id: str) -> str | None:
    """``CANCELLED``, ``OUT_OF_MEMORY``, ... from ``scontrol show job`` (kept a few minutes after the end); None if unknown."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run(
            ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        match = re.search(r"JobState=(\S+)", text)
        if match:
            reason = re.search(r"Reason=(\S+)", text)
            return match.group(1) + (f", {reason.group(1)}" if reason and reason.group(1) != "None" else "")
    return None


__all__ = ["SweepTask", "check_offline", "max_array_size", "require_slurm", "run_slurm"]
