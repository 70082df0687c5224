"""Where a sweep stands, from its files alone: run folders, pages, claims and failure records.

It reads nothing a sweep holds in memory, so it works while sweeps run, from any node that sees
the output folder. Each configuration is in one state:

- ``running``: a live claim (its host, pid and SLURM job, since when, rounds done so far);
- ``done``: every round of this configuration, and its page when the profile wants one;
- ``stale``: the run folder holds another configuration (the differing keys);
- ``failed``: the last attempt failed (the first line of ``_failed/<run-id>.txt``), or the run
  folder cannot be resumed as it is (a rounds.csv of more rounds than planned, say);
- ``damaged``: the last line of ``rounds.csv`` is cut (file and line named); the next sweep keeps a
  copy of the file and resumes at that round;
- ``pending``: not started, part-way (rounds done), or a claim left by a dead process;
- ``simulated``: the folder holds a preview from ``alvit simulate``, not a trained run (the next
  sweep moves it to ``_simulated/`` and trains the run).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from alvit import paths
from alvit.config import to_dict
from alvit.errors import ResultsError
from alvit.profile import Profile
from alvit.results import Rounds, RunFolder
from alvit.sweep.leases import DEFAULT_STALE_AFTER_S, Lease, Leases
from alvit.sweep.task import Task, failure_reason, is_complete, stale_keys
from alvit.wording import plural

STATES = ("done", "running", "failed", "damaged", "pending", "stale", "simulated")


@dataclass(frozen=True)
class RunStatus:
    """One configuration's state, and a few words on it."""

    run_id: str
    state: str
    detail: str = ""


def sweep_status(profile: Profile, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> list[RunStatus]:
    """The state of every configuration of ``profile``, in the profile's order."""
    output = paths.resolve(profile.output)
    claims = Leases(output, stale_after_s)
    held = claims.all()
    rows = []
    for cfg in profile.configs:
        task = Task(cfg=cfg, output=output, page=profile.wants_page(cfg), stale_after_s=stale_after_s)
        rows.append(_status(task, held.get(cfg.run_id), claims))
    return rows


def _status(task: Task, claim: Lease | None, claims: Leases) -> RunStatus:
    rounds = _rounds(task)
    done = len(rounds.table) if rounds is not None else None
    progress = f"{done}/{task.cfg.al.rounds + 1} rounds" if done is not None else "unreadable run folder"
    if claim is not None and claims.is_live(claim):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(claim.started))
        return RunStatus(task.run_id, "running", f"{claim.describe()}, since {since}, {progress}")
    try:
        if is_complete(task):
            return RunStatus(task.run_id, "done")
        if RunFolder(task.run_dir).is_simulated():
            return RunStatus(
                task.run_id,
                "simulated",
                "a preview from alvit simulate; the next sweep moves it aside and trains the run",
            )
        changed = stale_keys(task.cfg, task.output)
    except ResultsError as err:
        return RunStatus(task.run_id, "failed", str(err))
    if changed:
        return RunStatus(task.run_id, "stale", "differs in " + ", ".join(changed))
    reason = failure_reason(task.output, task.run_id)
    if reason is not None:
        return RunStatus(task.run_id, "failed", reason)
    if rounds is not None and rounds.damage is not None:
        return RunStatus(
            task.run_id,
            "damaged",
            f"{rounds.damage}; the next sweep keeps a copy of it and resumes at round {done} ({progress} whole)",
        )
    notes = []
    if done:
        notes.append(progress)
    if RunFolder(task.run_dir).is_finished(to_dict(task.cfg)):  # finished yet not complete: the page is missing
        notes = ["run finished, page missing"]
    if claim is not None:
        notes.append(f"claim left by {claim.describe()}, taken over by the next sweep")
    return RunStatus(task.run_id, "pending", "; ".join(notes))


def _rounds(task: Task) -> Rounds | None:
    """The run folder's rounds.csv classified (whole rows, damage), None when it cannot be read."""
    try:
        return RunFolder(task.run_dir).inspect_rounds()
    except ResultsError:
        return None


def state_counts(rows: list[RunStatus]) -> dict[str, int]:
    """How many configurations are in each state, every state listed."""
    return {state: sum(row.state == state for row in rows) for state in STATES}


def status_json(profile: Profile, rows: list[RunStatus]) -> str:
    """The sweep's state for programs: profile, output, counts by state, and every run's state and detail."""
    return json.dumps(
        {
            "profile": profile.name,
            "output": str(paths.resolve(profile.output)),
            "configurations": len(rows),
            "counts": state_counts(rows),
            "runs": [asdict(row) for row in rows],
        },
        indent=2,
    )


def format_status(profile: Profile, rows: list[RunStatus], every: bool = False) -> str:
    """Counts by state, then a table of the runs worth a look (``every``: all of them)."""
    counts = state_counts(rows)
    lines = [
        f"profile {profile.name}: {plural(len(rows), 'configuration')} in {paths.resolve(profile.output)}",
        " / ".join(f"{state} {counts[state]}" for state in STATES),
    ]
    simulated = counts["simulated"]
    shown = [
        row
        for row in rows
        if every or (row.state not in ("done", "simulated") and (row.state != "pending" or row.detail))
    ]
    if shown:
        width = max(len(row.run_id) for row in shown)
        lines.append("")
        lines += [f"{row.state:<8} {row.run_id:<{width}}  {row.detail}".rstrip() for row in shown]
    hidden = sum(row.state == "pending" and not row.detail for row in rows) if not every else 0
    if hidden:
        lines.append(f"({hidden} pending runs not started are not listed; --all lists every run)")
    if simulated and not every:
        lines.append(
            f"({plural(simulated, 'run folder')} from alvit simulate: previews, not trained runs; "
            f"the next sweep moves them to _simulated/ and trains the runs; --all lists them)"
        )
    return "\n".join(lines)


__all__ = ["STATES", "RunStatus", "format_status", "state_counts", "status_json", "sweep_status"]
