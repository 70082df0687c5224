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

For programs, :func:`status_json` gives one record per configuration (``pandas.read_json`` reads
it as a table): its state, its grid values, rounds done and planned, and the metrics of its last
whole round (the final ones once every round is done).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from alvit import paths
from alvit.config import lookup
from alvit.errors import ResultsError
from alvit.inputs import InputDigests
from alvit.leases import DEFAULT_STALE_AFTER_S, Lease, Leases
from alvit.profile import Profile
from alvit.results import MEASURE_COLUMNS, ROUND_COLUMNS, Rounds, RunFolder, noise_rate_of
from alvit.sweep.task import Task, failure_reason, is_complete, stale_keys
from alvit.wording import plural

STATES = ("done", "running", "failed", "damaged", "pending", "stale", "simulated")
# The columns of status_json's records: who the run is (then any other grid key), where it stands, its last round.
IDENTITY_COLUMNS = [
    "run_id",
    "state",
    "detail",
    "dataset",
    "model",
    "strategy",
    "noise_kind",
    "noise_rate",
    "seed",
    "mode",
]
PROGRESS_COLUMNS = ["rounds_done", "rounds_planned"]
# The last round's measures: ROUND_COLUMNS from n_labeled to nll (the test metrics), then MEASURE_COLUMNS.
METRIC_COLUMNS = [*ROUND_COLUMNS[1 : ROUND_COLUMNS.index("epochs")], *MEASURE_COLUMNS]
_SHOWN_KEYS = {"dataset", "model", "strategy", "noise.kind", "noise.rate", "seed", "train.mode"}


@dataclass(frozen=True)
class RunStatus:
    """One configuration's state, a few words on it, and the rounds its folder holds of it."""

    run_id: str
    state: str
    detail: str = ""
    rounds_done: int | None = None  # whole rounds of this configuration; None: no readable folder of it
    last_round: dict[str, float] = dataclasses.field(default_factory=dict)  # its last whole round's metrics


def sweep_status(profile: Profile, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> list[RunStatus]:
    """The state of every configuration of ``profile``, in the profile's order."""
    output = paths.resolve(profile.output)
    claims = Leases(output, stale_after_s)
    held = claims.all()
    digests = InputDigests()  # a label file or image folder shared by the configurations is read once
    rows = []
    for cfg in profile.configs:
        task = Task(cfg=cfg, output=output, page=profile.wants_page(cfg), stale_after_s=stale_after_s)
        rounds = _rounds(task)
        state = _status(task, rounds, held.get(cfg.run_id), claims, digests)
        if rounds is not None and state.state not in ("stale", "simulated"):  # their rounds are not this run's
            last = rounds.table.iloc[-1] if len(rounds.table) else None
            state = dataclasses.replace(
                state,
                rounds_done=len(rounds.table),
                last_round={} if last is None else {column: float(last[column]) for column in METRIC_COLUMNS},
            )
        rows.append(state)
    return rows


def _status(task: Task, rounds: Rounds | None, claim: Lease | None, claims: Leases, digests: InputDigests) -> RunStatus:
    done = len(rounds.table) if rounds is not None else None
    progress = f"{done}/{task.cfg.al.rounds + 1} rounds" if done is not None else "unreadable run folder"
    if claim is not None and claims.is_live(claim):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(claim.started))
        return RunStatus(task.run_id, "running", f"{claim.describe()}, since {since}, {progress}")
    try:
        if is_complete(task, digests):
            return RunStatus(task.run_id, "done")
        if RunFolder(task.run_dir).is_simulated():
            return RunStatus(
                task.run_id,
                "simulated",
                "a preview from alvit simulate; the next sweep moves it aside and trains the run",
            )
        changed = stale_keys(task.cfg, task.output, digests)
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
    if RunFolder(task.run_dir).is_finished(digests.record(task.cfg)):  # finished yet not complete: the page is missing
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


def status_records(profile: Profile, rows: list[RunStatus]) -> list[dict[str, Any]]:
    """One record per configuration (``rows`` in the profile's order): :data:`IDENTITY_COLUMNS`, then
    any other key of the profile's grid (dotted), :data:`PROGRESS_COLUMNS` and :data:`METRIC_COLUMNS`
    (None where a run has no whole round of this configuration). ``noise_rate`` of labels from a
    file is the pool's measured rate, once the folder records it."""
    output = paths.resolve(profile.output)
    other_keys = [key for key in profile.grid if key not in _SHOWN_KEYS]
    records = []
    for cfg, row in zip(profile.configs, rows, strict=True):
        try:
            stored = RunFolder(output / cfg.run_id).read_config() if row.rounds_done is not None else None
        except ResultsError:
            stored = None
        record = {
            "run_id": row.run_id,
            "state": row.state,
            "detail": row.detail,
            "dataset": cfg.dataset,
            "model": cfg.model,
            "strategy": cfg.strategy,
            "noise_kind": cfg.noise.kind,
            "noise_rate": noise_rate_of(stored or {"noise": {"kind": cfg.noise.kind, "rate": cfg.noise.rate}}),
            "seed": cfg.seed,
            "mode": cfg.train.mode,
            **{key: lookup(cfg, key) for key in other_keys},
            "rounds_done": row.rounds_done,
            "rounds_planned": cfg.al.rounds + 1,
            **{column: row.last_round.get(column) for column in METRIC_COLUMNS},
        }
        records.append({key: None if isinstance(v, float) and math.isnan(v) else v for key, v in record.items()})
    return records


def status_json(profile: Profile, rows: list[RunStatus]) -> str:
    """The sweep's state for programs: a JSON array of :func:`status_records`, a table for
    ``pandas.read_json`` (counts by state are ``table["state"].value_counts()``)."""
    return json.dumps(status_records(profile, rows), indent=1, allow_nan=False)


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


__all__ = ["STATES", "RunStatus", "format_status", "state_counts", "status_json", "status_records", "sweep_status"]
