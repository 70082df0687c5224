"""The local executor: warm worker processes on this machine, one GPU slot each.

Each worker is a process (papermill's ``cwd=`` changes the working folder of the whole process,
nteract/papermill#473, so threads would race) that imports torch, timm and alvit once and then
runs configuration after configuration in-process (:func:`alvit.sweep.task.run_task`). The parent
hands out tasks over one pipe per worker, so killing a worker breaks nothing shared.

GPU slots: ``--gpus 0,1 --per-gpu 2`` makes 4 slots, assigned round-robin (slot 0 -> GPU 0,
slot 1 -> GPU 1, ...); a worker sees only its slot's GPU through ``CUDA_VISIBLE_DEVICES``, as
``cuda:0``. Without ``--gpus`` the variable is left as it is. Each worker gets
``cpu_count // workers`` threads for OpenMP/MKL and torch, unless the user set
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``; a run itself computes with its configuration's
``threads`` (:func:`alvit.loop.cpu_threads`), which decide its numbers.

Timeouts: the parent times each run from its claim's start and, past ``timeout_s``, kills the
worker (an in-process run cannot be interrupted safely; a killed process can, and the run
folder resumes after its last finished round), records the run as failed with the reason
"timed out after N s", removes the claim and starts a fresh worker for the slot.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from alvit.errors import ConfigError
from alvit.leases import Lease, Leases
from alvit.sweep.task import FAILED, Outcome, Task, record_failure

POLL_S = 0.5  # how often the parent looks at the clock when no worker reports


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: a GPU (or none) and a thread budget."""

    index: int
    gpu: str | None
    threads: int

    def environment(self) -> dict[str, str]:
        """Variables the worker sets before importing torch (CUDA and OpenMP read them at import)."""
        env = {key: str(self.threads) for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if key not in os.environ}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env


def make_slots(jobs: int | None, gpus: Sequence[str] = (), per_gpu: int = 1) -> list[Slot]:
    """Worker slots for ``--jobs`` / ``--gpus`` / ``--per-gpu`` (jobs None: one per GPU slot, else 1)."""
    if per_gpu < 1:
        raise ConfigError(f"--per-gpu must be 1 or more, not {per_gpu}")
    capacity = len(gpus) * per_gpu if gpus else None
    jobs = jobs if jobs is not None else (capacity or 1)
    if jobs < 1:
        raise ConfigError(f"--jobs must be 1 or more, not {jobs}")
    if capacity is not None and jobs > capacity:
        raise ConfigError(
            f"--jobs {jobs} is more than --gpus {','.join(gpus)} x --per-gpu {per_gpu} = {capacity} runs at once; "
            f"lower --jobs or raise --per-gpu"
        )
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return [Slot(index=i, gpu=gpus[i % len(gpus)] if gpus else None, threads=threads) for i in range(jobs)]


def run_local(tasks: Sequence[Task], slots: Sequence[Slot], timeout_s: float | None = None) -> Iterator[Outcome]:
    """Run ``tasks`` on up to ``len(slots)`` warm workers; yield each outcome as it comes."""
    queue = deque(tasks)
    workers = [_Worker(slot) for slot in slots[: len(tasks)]]
    try:
        while queue or any(worker.task for worker in workers):
            for worker in workers:
                if worker.task is None and queue:
                    worker.give(queue.popleft())
            busy = {worker.conn: worker for worker in workers if worker.task is not None}
            for conn in multiprocessing.connection.wait(list(busy), timeout=POLL_S):
                outcome = busy[conn].receive()
                if outcome is not None:
                    yield outcome
            for worker in workers:
                if worker.overdue(timeout_s):
                    yield worker.stop_overdue(timeout_s)
    finally:
        for worker in workers:
            worker.close()


class _Worker:
    """One slot's worker process (started when it gets a task), its pipe, and the task and claim it is on."""

    def __init__(self, slot: Slot):
        self.slot = slot
        self.task: Task | None = None
        self.claim: Lease | None = None
        self.process: multiprocessing.process.BaseProcess | None = None

    def give(self, task: Task) -> None:
        if self.process is None:
            context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or CUDA state
            self.conn, child = context.Pipe()
            self.process = context.Process(
                target=_worker_main,
                args=(child, self.slot.environment(), self.slot.threads),
                name=f"alvit-worker-{self.slot.index}",
                daemon=True,
            )
            self.process.start()
            child.close()
        self.task, self.claim = task, None
        self.conn.send(task)

    def receive(self) -> Outcome | None:
        """Read the worker's message; an outcome ends the task (a dead worker fails it)."""
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            return self._fail(f"the worker process died (exit code {self._exit_code()}), e.g. out of memory")
        if kind == "claimed":
            self.claim = payload
            return None
        self.task = self.claim = None
        return payload

    def overdue(self, timeout_s: float | None) -> bool:
        return (
            timeout_s is not None
            and self.claim is not None
            and self.task is not None
            and time.time() - self.claim.started > timeout_s
        )

    def stop_overdue(self, timeout_s: float) -> Outcome:
        return self._fail(f"timed out after {timeout_s:g} s")

    def _fail(self, reason: str) -> Outcome:
        """Stop the worker, record its task as failed, free the claim; the next task starts a fresh worker."""
        task, claim = self.task, self.claim
        assert task is not None
        self._kill()
        record_failure(
            task.output,
            task.run_id,
            reason,
            "The run was stopped; its finished rounds are kept, and the next sweep resumes after them.\n",
        )
        if claim is not None:
            Leases(task.output, task.stale_after_s).release(claim)
        self.task = self.claim = None
        return Outcome(task.run_id, FAILED, reason)

    def _exit_code(self) -> Any:
        assert self.process is not None
        self.process.join(timeout=5)
        return self.process.exitcode

    def _kill(self) -> None:
        # The page's kernel, if one runs, is in its own session and exits when its parent is gone.
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.conn.close()
            self.process = None

    def close(self) -> None:
        """Stop the worker: politely when idle, at once when it is still running a task."""
        if self.process is None:
            return
        if self.task is None:
            try:
                self.conn.send(None)
                self.process.join(timeout=10)
            except (BrokenPipeError, OSError):
                pass
        elif self.claim is not None:
            task, claim = self.task, self.claim
            self._kill()
            Leases(task.output, task.stale_after_s).release(claim)
        self._kill()


def _worker_main(conn: multiprocessing.connection.Connection, env: dict[str, str], threads: int) -> None:
    """A worker: set the slot's environment, import torch once, then run tasks until told to stop."""
    os.environ.update(env)
    # tqdm's default lock holds a named POSIX semaphore, registered with the sweep's resource
    # tracker; a worker killed at a timeout or on Ctrl-C never unregisters it, and the tracker
    # then warns of "leaked semaphore objects" at exit. A worker's bars are its own: a thread lock will do.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    try:
        import torch

        if "OMP_NUM_THREADS" in env:
            torch.set_num_threads(threads)
        import alvit.loop  # noqa: F401  (the imports a run needs, paid here once)
        from alvit.sweep.task import run_task

        while (task := conn.recv()) is not None:
            outcome = run_task(task, on_claimed=lambda claim: conn.send(("claimed", claim)))
            conn.send(("outcome", outcome))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the parent is gone or stopping (Ctrl-C): run_task has let go of its claim


__all__ = ["Slot", "make_slots", "run_local"]
