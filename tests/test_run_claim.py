"""A single alvit run claims its folder as a sweep does: a second run of the folder at once is refused in one
sentence naming the first (host, pid, since when), and a claim left behind is taken over with a log line."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO, TINY

from alvit.config import load_config
from alvit.errors import ConfigError
from alvit.leases import Leases, claim_run_folder
from alvit.loop import run_experiment
from alvit.results import RunFolder

# The second `alvit run`, its imports paid before the first starts (torch takes seconds to import, longer than
# a tiny run trains), so that it asks for the folder while the first trains: it waits for a line on stdin.
SECOND = "import sys, alvit.loop; from alvit.cli import main; sys.stdin.readline(); sys.exit(main(sys.argv[1:]))"


def test_two_alvit_runs_on_one_folder_at_once_train_each_round_once(tmp_path):
    out = tmp_path / "runs" / "one"
    arguments = ["run", "--quiet", "--out", str(out), *[arg for item in TINY for arg in ("--set", item)]]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": REPO}
    second = subprocess.Popen([sys.executable, "-c", SECOND, *arguments], stdin=subprocess.PIPE, **pipes)
    first = subprocess.Popen([sys.executable, "-m", "alvit.cli", *arguments], **pipes)
    claim = tmp_path / "runs" / "_claims" / "one.json"  # where a sweep of tmp_path/runs claims the run "one"
    deadline = time.monotonic() + 300
    while not claim.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert claim.exists(), "the first run should hold its claim while it trains"
    _, second_err = second.communicate("go\n", timeout=300)
    _, first_err = first.communicate(timeout=600)

    assert first.returncode == 0, first_err
    assert second.returncode == 2, second_err
    assert re.fullmatch(
        rf"alvit: error: {re.escape(str(out))} is being run by {re.escape(socket.gethostname())} pid {first.pid} "
        rf"since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(claim {re.escape(str(claim))}\); wait for it to end, or choose "
        r"another --out \(a claim whose process is gone is taken over, one from another host after 300 s without "
        r"a heartbeat\)\n",
        second_err,
    )
    trained = [line.split()[1] for line in (first_err + second_err).splitlines() if line.startswith("round ")]
    assert trained == ["0/2", "1/2", "2/2"]  # each round once, by the first run alone
    assert RunFolder(out).read_rounds()["round"].tolist() == [0, 1, 2]
    assert not claim.exists()  # let go when the run ended


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(finished.stdout)


def test_a_claim_left_by_a_dead_run_on_this_host_is_taken_over_with_a_log_line(tmp_path, caplog):
    cfg = load_config(None, [*TINY, "al.rounds=0"])
    out = tmp_path / "runs" / "one"
    (tmp_path / "runs" / "_claims").mkdir(parents=True)
    left = {"host": socket.gethostname(), "pid": dead_pid(), "started": time.time(), "job": None, "token": "old"}
    (tmp_path / "runs" / "_claims" / "one.json").write_text(json.dumps(left))
    with caplog.at_level(logging.INFO, logger="alvit"):
        run_experiment(cfg, out, progress=False)
    assert RunFolder(out).read_rounds()["round"].tolist() == [0]
    claim = tmp_path / "runs" / "_claims" / "one.json"
    assert (
        f"one: took over the claim {claim} left by {socket.gethostname()} pid {left['pid']} (its process is gone)"
        in caplog.messages
    )
    assert not claim.exists()


def test_another_hosts_claim_is_taken_over_only_once_its_heartbeat_is_older_than_the_limit(tmp_path, caplog):
    claims = tmp_path / "_claims"
    claims.mkdir()
    left = {"host": "node-7", "pid": 4242, "started": time.time() - 900, "job": None, "token": "old"}
    (claims / "one.json").write_text(json.dumps(left))
    with pytest.raises(ConfigError, match=r"is being run by node-7 pid 4242 since "):
        with claim_run_folder(tmp_path / "one", stale_after_s=600):
            pass
    os.utime(claims / "one.json", (time.time() - 700, time.time() - 700))  # its node died 700 s ago
    with caplog.at_level(logging.INFO, logger="alvit"), claim_run_folder(tmp_path / "one", stale_after_s=600) as mine:
        assert Leases(tmp_path).read("one").token == mine.token
    assert re.search(r"took over the claim .* left by node-7 pid 4242 \(no heartbeat for 70\d s\)", caplog.text)
    assert not (claims / "one.json").exists()


def test_a_folder_whose_parent_cannot_hold_claims_is_one_sentence(tmp_path):
    (tmp_path / "_claims").write_text("a file where the claims folder would go")
    with pytest.raises(
        ConfigError, match=r"cannot be claimed: .*_claims/run.json cannot be created \(FileExistsError\)"
    ):
        with claim_run_folder(tmp_path / "run"):
            pass
