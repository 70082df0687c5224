"""Leases: one claimant per configuration, dead claims taken over, live ones never."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest

from alvit.leases import Leases


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(process.stdout)


def write_claim(claims: Leases, run_id: str, host: str, pid: int, age_s: float = 0.0, job=None) -> None:
    claims.folder.mkdir(parents=True, exist_ok=True)
    path = claims.path(run_id)
    path.write_text(
        json.dumps(
            {"run_id": run_id, "host": host, "pid": pid, "started": time.time() - age_s, "job": job, "token": "old"}
        )
    )
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_a_claim_names_its_host_pid_and_start_and_excludes_a_second(tmp_path):
    claims = Leases(tmp_path)
    mine = claims.acquire("run-a")
    assert mine is not None and (mine.host, mine.pid) == (socket.gethostname(), os.getpid())
    stored = json.loads(claims.path("run-a").read_text())
    assert stored["host"] == mine.host and stored["pid"] == mine.pid and stored["started"] == mine.started
    assert claims.acquire("run-a") is None  # this very process is alive: the claim is live
    claims.release(mine)
    assert not claims.path("run-a").exists() and claims.acquire("run-a") is not None


def test_a_dead_process_on_this_host_loses_its_claim_at_once(tmp_path):
    claims = Leases(tmp_path)
    write_claim(claims, "run-a", socket.gethostname(), dead_pid())
    assert not claims.is_live(claims.read("run-a"))
    taken = claims.acquire("run-a")
    assert taken is not None and claims.read("run-a").token == taken.token


def test_another_hosts_claim_is_taken_over_only_when_its_heartbeat_is_stale(tmp_path):
    claims = Leases(tmp_path, stale_after_s=60)
    write_claim(claims, "fresh", "node-17", 1)
    write_claim(claims, "stale", "node-17", 1, age_s=61)
    assert claims.acquire("fresh") is None
    assert claims.acquire("stale") is not None


def test_a_requeued_slurm_task_takes_over_its_own_claim(tmp_path):
    claims = Leases(tmp_path)
    write_claim(claims, "run-a", "node-17", 1, job="41_3")
    assert claims.acquire("run-a", job="41_4") is None
    assert claims.acquire("run-a", job="41_3") is not None


def test_a_successors_claim_is_neither_released_nor_touched_by_the_old_holder(tmp_path):
    claims = Leases(tmp_path, stale_after_s=60)
    old = claims.acquire("run-a")
    os.utime(claims.path("run-a"), (time.time() - 100, time.time() - 100))  # the old holder froze
    new = Leases(tmp_path, stale_after_s=60).acquire("run-a")
    assert new is not None
    assert claims.beat(old) is False  # its heartbeat notices it lost the claim
    claims.release(old)
    assert claims.read("run-a").token == new.token


def test_the_heartbeat_refreshes_the_claim_files_time(tmp_path):
    claims = Leases(tmp_path, stale_after_s=60)
    mine = claims.acquire("run-a")
    os.utime(claims.path("run-a"), (time.time() - 50, time.time() - 50))
    assert claims.beat(mine) and time.time() - claims.read("run-a").heartbeat < 5


def test_an_unreadable_claim_counts_until_its_heartbeat_is_stale(tmp_path):
    claims = Leases(tmp_path, stale_after_s=60)
    claims.folder.mkdir(parents=True)
    claims.path("run-a").write_text("{not json")
    claim = claims.read("run-a")
    assert not claim.readable and claim.describe() == "an unreadable claim file"
    assert claims.acquire("run-a") is None
    os.utime(claims.path("run-a"), (time.time() - 61, time.time() - 61))
    assert claims.acquire("run-a") is not None


def _race(folder: str, run_id: str, start, results, finish) -> None:
    start.wait()
    results.put(Leases(folder).acquire(run_id) is not None)
    finish.wait()  # stay alive: a winner that exited would leave a dead claim for a latecomer


@pytest.mark.parametrize("left_behind", [False, True], ids=["fresh", "dead claim"])
def test_of_many_processes_claiming_at_once_exactly_one_wins(tmp_path, left_behind):
    claims = Leases(tmp_path)
    if left_behind:
        write_claim(claims, "run-a", socket.gethostname(), dead_pid())
    context = multiprocessing.get_context("fork")
    start, results, finish = context.Event(), context.Queue(), context.Event()
    processes = [context.Process(target=_race, args=(str(tmp_path), "run-a", start, results, finish)) for _ in range(8)]
    for process in processes:
        process.start()
    start.set()
    wins = [results.get(timeout=60) for _ in processes]
    finish.set()
    for process in processes:
        process.join()
    assert sum(wins) == 1
