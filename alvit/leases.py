"""Claims on run folders, so that no run is computed twice at once: by any number of sweeps, and by
single ``alvit run`` commands.

Before a worker starts a configuration it creates ``<output>/_claims/<run-id>.json`` with
``O_CREAT | O_EXCL``: of any number of processes creating it at once, on one machine or on many
sharing a file system (NFS v3 and later make the exclusive create atomic), exactly one succeeds.
The file holds the claimant's host, pid, start time and, for a SLURM array task, its job id.
Its modification time is a heartbeat: a thread of the claimant touches it every
``stale_after_s / 6`` seconds. When the run ends, finished or failed, the claim is removed.

A claim left behind is taken over when

- its claimant ran on this host and its pid is gone (a killed worker: at once);
- its heartbeat is older than ``stale_after_s`` (any host: a node that died, a frozen job);
- it names the SLURM array task that is asking (the same task, requeued after preemption).

Two processes that both see a dead claim must not both take it. Taking over is therefore
guarded by a second exclusive create, ``<run-id>.json.takeover``, held for the milliseconds the
swap takes; a guard older than ``stale_after_s`` (its holder died mid-swap) is cleared. In code
a claim is a :class:`Lease` and a folder of them :class:`Leases`, so that nothing here is named
like :mod:`alvit.book.claims`, the paper's six claims; the files and the messages say "claim".

A single run claims its folder the same way (:func:`claim_run_folder`): the run folder
``<parent>/<name>/`` is claimed as ``<parent>/_claims/<name>.json``, the very file a sweep of
``<parent>`` creates for that run, so a sweep and ``alvit run`` on one folder exclude each other too.
Taking over a claim left behind is said in one log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alvit.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_STALE_AFTER_S = 300.0
CLAIMS_DIR = "_claims"


@dataclass(frozen=True)
class Lease:
    """Who runs a configuration: read from (or written to) its claim file."""

    run_id: str
    host: str
    pid: int
    started: float  # seconds since the epoch
    job: str | None  # SLURM job id of the array task ("123_4"); None outside the slurm executor
    token: str  # unique per claim, so a holder tells its claim from a successor's
    heartbeat: float = 0.0  # the file's mtime when read
    readable: bool = True  # False: the file is empty or not JSON (its writer died, or someone else wrote it)

    def describe(self) -> str:
        """``host pid 123 (job 45_6)``: where the claimant runs."""
        if not self.readable:
            return "an unreadable claim file"
        return f"{self.host} pid {self.pid}" + (f" (job {self.job})" if self.job else "")


class Leases:
    """The claim files of one sweep output folder."""

    def __init__(self, output: str | Path, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.folder = Path(output) / CLAIMS_DIR
        self.stale_after_s = stale_after_s

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def read(self, run_id: str) -> Lease | None:
        """The claim on ``run_id``, None if there is none."""
        return _read(self.path(run_id), run_id)

    def all(self) -> dict[str, Lease]:
        """Every claim in the folder, by run id."""
        if not self.folder.is_dir():
            return {}
        claims = {}
        for path in sorted(self.folder.glob("*.json")):
            claim = _read(path, path.stem)
            if claim is not None:
                claims[path.stem] = claim
        return claims

    def is_live(self, claim: Lease, now: float | None = None) -> bool:
        """Its claimant may still be running: a fresh heartbeat, and not a dead pid of this host."""
        if (now if now is not None else time.time()) - claim.heartbeat > self.stale_after_s:
            return False
        return not (claim.readable and claim.host == socket.gethostname() and not _pid_alive(claim.pid))

    def acquire(self, run_id: str, job: str | None = None) -> Lease | None:
        """Claim ``run_id`` for this process (``job``: the asking SLURM array task); None if it is taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        mine = Lease(
            run_id=run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=time.time(),
            job=job,
            token=uuid.uuid4().hex,
        )
        if self._create(mine):
            return mine
        current = self.read(run_id)
        if current is None:  # released between our create and our read
            return mine if self._create(mine) else None
        if self.is_live(current) and not (job is not None and current.job == job):
            return None
        taken = self._take_over(current, mine)
        if taken is not None:
            log.info(
                "%s: took over the claim %s left by %s (%s)",
                run_id,
                self.path(run_id),
                current.describe(),
                self._why_free(current, job),
            )
        return taken

    def _why_free(self, claim: Lease, job: str | None) -> str:
        """Why a claim that is not ours could be taken over, in a few words."""
        if job is not None and claim.job == job:
            return "the same SLURM task, requeued"
        age = time.time() - claim.heartbeat
        if age > self.stale_after_s:
            return f"no heartbeat for {age:.0f} s"
        return "its process is gone"

    def holds(self, claim: Lease) -> bool:
        """The claim file is still ``claim`` (not released, not taken over)."""
        current = self.read(claim.run_id)
        return current is not None and current.token == claim.token

    def release(self, claim: Lease) -> None:
        """Remove the claim file if it is still ``claim``; a successor's claim is left alone."""
        if self.holds(claim):
            self.path(claim.run_id).unlink(missing_ok=True)

    def beat(self, claim: Lease) -> bool:
        """Touch the claim file (the heartbeat); False if it is no longer ``claim``."""
        if not self.holds(claim):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(claim.run_id))
            return True
        return False

    @contextlib.contextmanager
    def heartbeat(self, claim: Lease) -> Iterator[None]:
        """Keep ``claim`` fresh from a background thread while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.stale_after_s / 6):
                if not self.beat(claim):
                    return  # taken over (we looked dead): the successor's heartbeat counts now

        thread = threading.Thread(target=beat, name=f"heartbeat {claim.run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _create(self, claim: Lease) -> bool:
        try:
            fd = os.open(self.path(claim.run_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        record = {
            "run_id": claim.run_id,
            "host": claim.host,
            "pid": claim.pid,
            "started": claim.started,
            "job": claim.job,
            "token": claim.token,
        }
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _take_over(self, dead: Lease, mine: Lease) -> Lease | None:
        path = self.path(dead.run_id)
        guard = path.with_name(path.name + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - guard.stat().st_mtime > self.stale_after_s:
                    guard.unlink()  # its holder died mid-swap; the next attempt may take over
            return None
        try:
            again = self.read(dead.run_id)
            if again is not None and again.token != dead.token:
                return None  # someone else took over first
            path.unlink(missing_ok=True)
            return mine if self._create(mine) else None
        finally:
            os.close(fd)
            guard.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_run_folder(run_dir: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> Iterator[Lease]:
    """Hold the claim on ``run_dir`` (as ``<parent>/_claims/<name>.json``) while the block runs, its heartbeat kept.

    A live claim of anyone else is a ConfigError naming its holder (host, pid, since when); a claim
    left behind is taken over (a log line says so).
    """
    claims = Leases(run_dir.parent, stale_after_s)
    try:
        claim = claims.acquire(run_dir.name)
    except OSError as err:  # the parent folder cannot hold a _claims/ folder
        raise ConfigError(
            f"{run_dir} cannot be claimed: {claims.path(run_dir.name)} cannot be created ({err.__class__.__name__}); "
            "choose an --out inside a folder you can write"
        ) from None
    if claim is None:
        holder = claims.read(run_dir.name)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.started)) if holder else "a moment ago"
        raise ConfigError(
            f"{run_dir} is being run by {holder.describe() if holder else 'another process'} since {since} "
            f"(claim {claims.path(run_dir.name)}); wait for it to end, or choose another --out "
            f"(a claim whose process is gone is taken over, one from another host after {stale_after_s:g} s without a heartbeat)"
        )
    try:
        with claims.heartbeat(claim):
            yield claim
    finally:
        claims.release(claim)


def slurm_job_id() -> str | None:
    """This process's SLURM array task (``123_4``) or job (``123``); None outside SLURM."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _read(path: Path, run_id: str) -> Lease | None:
    try:
        heartbeat = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return Lease(
            run_id=run_id,
            host=str(data["host"]),
            pid=int(data["pid"]),
            started=float(data["started"]),
            job=data.get("job"),
            token=str(data["token"]),
            heartbeat=heartbeat,
        )
    except (ValueError, KeyError, TypeError):
        # Being written this very moment, or damaged: it counts as a claim until its heartbeat is stale.
        return Lease(
            run_id=run_id, host="", pid=0, started=heartbeat, job=None, token="", heartbeat=heartbeat, readable=False
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


__all__ = ["CLAIMS_DIR", "DEFAULT_STALE_AFTER_S", "Lease", "Leases", "claim_run_folder", "slurm_job_id"]
