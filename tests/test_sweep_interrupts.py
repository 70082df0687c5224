"""A sweep stopped by Ctrl-C or by --timeout ends with its own words only: no multiprocessing
warnings, no traceback, and the runs it finished are kept byte for byte."""

import os
import signal
import subprocess
import sys
import time

from conftest import REPO
from test_sweep import write_profile

from alvit.profile import load_profile
from alvit.results import RunFolder

LEAK_WARNING = "leaked semaphore"


def start_sweep(profile_path, *flags: str) -> subprocess.Popen:
    """``alvit sweep`` in its own process group, as a terminal starts it (Ctrl-C reaches the group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "alvit.cli", "sweep", str(profile_path), "--quiet", *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finished(run_dir, rounds: int) -> bool:
    csv = run_dir / "rounds.csv"
    return csv.exists() and len(csv.read_text().splitlines()) == rounds + 1


def test_ctrl_c_keeps_finished_runs_and_prints_no_multiprocessing_warning(tmp_path):
    profile_path = write_profile(tmp_path, {"seed": [0, 1, 2]}, pages="none")
    first, second, _ = load_profile(profile_path).configs
    output = tmp_path / "runs"
    sweep = start_sweep(profile_path, "--jobs", "1")
    deadline = time.monotonic() + 300
    while not (finished(output / first.run_id, first.al.rounds + 1) and (output / second.run_id).exists()):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.2)
    kept = (output / first.run_id / "rounds.csv").read_bytes()
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the sweep and its workers
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, err
    assert LEAK_WARNING not in err and "Traceback" not in err and "Warning" not in err, err
    assert err.strip().splitlines()[-1] == (
        "alvit: interrupted; finished rounds are saved, rerun the same command to resume"
    )
    assert (output / first.run_id / "rounds.csv").read_bytes() == kept
    assert not list((output / "_claims").iterdir())  # the interrupted run is free for the next sweep


def test_a_timeout_keeps_the_finished_rounds_and_prints_no_multiprocessing_warning(tmp_path):
    """Two runs of 61 rounds, killed mid-training by --timeout: each keeps whole rows for the rounds it finished."""
    profile_path = write_profile(tmp_path, {"seed": [0, 1]}, base={"al.rounds": 60}, pages="none")
    sweep = start_sweep(profile_path, "--jobs", "2", "--timeout", "15")
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1 and out.splitlines()[-1] == "done 0 / skipped 0 / failed 2 / claimed elsewhere 0"
    assert LEAK_WARNING not in err and "Traceback" not in err and "Warning" not in err, err
    assert err.splitlines()[-1] == f"failed runs and their errors: {tmp_path / 'runs'}/_failed/"
    for cfg in load_profile(profile_path).configs:
        rounds = RunFolder(tmp_path / "runs" / cfg.run_id).inspect_rounds(cfg.al.rounds + 1)
        assert rounds.damage is None and 1 <= len(rounds.table) < cfg.al.rounds + 1
        assert rounds.table["round"].tolist() == list(range(len(rounds.table)))
