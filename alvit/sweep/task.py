"""One configuration of a sweep, start to end, in the calling process.

Claim it (:mod:`alvit.leases`), run it in this process with :func:`alvit.loop.run_experiment`
(torch and timm are imported once per worker, not once per run), render its book page when the
profile wants one, record a failure, let go of the claim. Local worker processes and SLURM
array tasks both call :func:`run_task`; the files it reads and writes are the whole protocol
between them and any other sweep of the same output folder.

Files beside the run folders, in ``<output>/``:

- ``<run-id>/``: the run folder; ``<run-id>.ipynb``: its page (the executed experiment notebook);
- ``_claims/<run-id>.json``: who runs it now;
- ``_failed/<run-id>.txt``: why its last attempt failed (one line, then details), with the
  partial page ``_failed/<run-id>.ipynb`` when the page was being rendered;
- ``_stale/<run-id>-<stamp>/``: a run of an older configuration, moved aside by ``--rerun-stale``;
- ``_simulated/<run-id>-<stamp>/``: a folder ``alvit simulate`` wrote, moved aside by the sweep
  (a preview is never taken for a finished run; the real run is trained in its place).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alvit.config import ExperimentConfig, differing_keys
from alvit.errors import ResultsError, one_line
from alvit.inputs import InputDigests
from alvit.leases import DEFAULT_STALE_AFTER_S, Lease, Leases
from alvit.results import RunFolder, atomic_write_text

FAILED_DIR = "_failed"
STALE_DIR = "_stale"
SIMULATED_DIR = "_simulated"

DONE, SKIPPED, FAILED, CLAIMED = "done", "skipped", "failed", "claimed"


@dataclass(frozen=True)
class Task:
    """A configuration to run into ``output``, with or without its book page."""

    cfg: ExperimentConfig
    output: Path
    page: bool = True
    cell_timeout_s: float | None = None  # bounds each notebook cell of the page (a run's own limit: the executor's)
    stale_after_s: float = DEFAULT_STALE_AFTER_S

    @property
    def run_id(self) -> str:
        return self.cfg.run_id

    @property
    def run_dir(self) -> Path:
        return self.output / self.cfg.run_id

    @property
    def page_path(self) -> Path:
        return self.output / f"{self.cfg.run_id}.ipynb"


@dataclass(frozen=True)
class Outcome:
    """What became of a task: done (here), skipped (finished before), failed, or claimed elsewhere."""

    run_id: str
    status: str
    reason: str = ""


def run_task(task: Task, on_claimed: Callable[[Lease], None] | None = None, job: str | None = None) -> Outcome:
    """Claim ``task``, run it (or resume it, or only render its page) here, and let the claim go.

    ``on_claimed`` hears the claim as soon as it is made (a parent timing the run). ``job`` is
    the SLURM array task asking, which may take over its own claim after a requeue.
    """
    claims = Leases(task.output, task.stale_after_s)
    claim = claims.acquire(task.run_id, job=job)
    if claim is None:
        holder = claims.read(task.run_id)
        return Outcome(task.run_id, CLAIMED, holder.describe() if holder else "")
    try:
        if on_claimed is not None:
            on_claimed(claim)
        with claims.heartbeat(claim):
            return _run_claimed(task)
    finally:
        claims.release(claim)


def _run_claimed(task: Task) -> Outcome:
    try:
        if is_complete(task):  # another sweep finished it after this one looked
            return Outcome(task.run_id, SKIPPED)
    except ResultsError:
        pass  # a damaged folder: run_experiment below says what is wrong, and it is recorded
    clear_failure(task.output, task.run_id)
    try:
        from alvit.loop import run_experiment

        run_experiment(task.cfg, task.run_dir, progress=False, claimed=True)
        if task.page:
            from alvit.book.pages import render_page

            render_page(task.run_dir, task.page_path, task.cfg, task.cell_timeout_s)
    except Exception as err:  # one failed configuration must not stop the others
        reason = one_line(err)
        record_failure(task.output, task.run_id, reason, traceback.format_exc())
        return Outcome(task.run_id, FAILED, reason)
    return Outcome(task.run_id, DONE)


def is_complete(task: Task, digests: InputDigests | None = None) -> bool:
    """The run folder holds every round of this configuration, trained (not simulated), and the page if wanted.

    ``digests`` hashes the files the configuration reads (a sweep's plan shares one across configurations).
    """
    folder = RunFolder(task.run_dir)
    if not folder.config.exists():
        return False
    finished = folder.is_finished((digests or InputDigests()).record(task.cfg)) and not folder.is_simulated()
    return finished and (not task.page or task.page_path.exists())


def stale_keys(cfg: ExperimentConfig, output: Path, digests: InputDigests | None = None) -> list[str]:
    """Keys in which the run folder's configuration differs from ``cfg``, the SHA-256 of its input files
    among them (empty: none, or no folder)."""
    stored = RunFolder(output / cfg.run_id).read_config()
    return differing_keys(stored, (digests or InputDigests()).record(cfg)) if stored is not None else []


def move_aside(output: Path, run_id: str, into: str = STALE_DIR) -> Path:
    """Move a run folder (and its page) to ``<into>/<run-id>-<stamp>/``; return where it went."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = output / into / f"{run_id}-{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    (output / run_id).rename(target)
    page = output / f"{run_id}.ipynb"
    if page.exists():
        page.rename(target.parent / f"{target.name}.ipynb")
    return target


def record_failure(output: Path, run_id: str, reason: str, details: str = "") -> None:
    """Write ``_failed/<run-id>.txt`` (the reason on its first line) and move a partial page there."""
    failed = output / FAILED_DIR
    failed.mkdir(parents=True, exist_ok=True)
    page = output / f"{run_id}.ipynb"
    if page.exists():
        page.replace(failed / page.name)  # out of the book, kept for reading
    atomic_write_text(failed / f"{run_id}.txt", reason + "\n\n" + details)


def clear_failure(output: Path, run_id: str) -> None:
    """Forget the previous attempt's failure: this one starts now."""
    for suffix in (".txt", ".ipynb"):
        (output / FAILED_DIR / f"{run_id}{suffix}").unlink(missing_ok=True)


def failure_reason(output: Path, run_id: str) -> str | None:
    """The first line of ``_failed/<run-id>.txt``, None if the run has not failed."""
    path = output / FAILED_DIR / f"{run_id}.txt"
    try:
        with path.open(errors="replace") as handle:
            return handle.readline().strip()
    except FileNotFoundError:
        return None


__all__ = [
    "CLAIMED",
    "DONE",
    "SIMULATED_DIR",
    "STALE_DIR",
    "FAILED",
    "SKIPPED",
    "Outcome",
    "Task",
    "clear_failure",
    "failure_reason",
    "is_complete",
    "move_aside",
    "record_failure",
    "run_task",
    "stale_keys",
]
