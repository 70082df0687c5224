"""The slurm executor against a real SLURM cluster (start one with: bash .ci/slurm-up.sh).

Where no cluster answers, these tests skip with the reason; with ALVIT_REQUIRE_SLURM=1 (as
.ci/run sets) they fail instead, so CI cannot pass without having run them.
"""

import os
import pickle
import re
import shutil
import subprocess
import sys
import time

import pytest
from test_sweep import write_profile

from alvit.profile import load_profile
from alvit.results import RunFolder, load_runs
from alvit.sweep.status import sweep_status

pytestmark = pytest.mark.slurm

WAIT_S = 600  # a job waiting on a drained node waits forever: give up and cancel


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    """Skip (or, with ALVIT_REQUIRE_SLURM=1, fail) unless a SLURM node is up and takes jobs."""
    reason = None
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        reason = "SLURM is not installed here (no sinfo/sbatch); bring a cluster up with: bash .ci/slurm-up.sh"
    else:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60, check=False)
        if not re.search(r"^(idle|mixed|allocated)", result.stdout, re.MULTILINE):
            reason = f"no SLURM node takes jobs (sinfo: {(result.stdout + result.stderr).strip() or 'nothing'}); start one with: bash .ci/slurm-up.sh"
    if reason:
        if os.environ.get("ALVIT_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def sweep(profile_path, *extra, cwd, wait=True):
    command = [
        sys.executable,
        "-m",
        "alvit.cli",
        "sweep",
        str(profile_path),
        "--executor",
        "slurm",
        "--quiet",
        "--slurm-time-min",
        "15",
        *extra,
    ]
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return finish(process, profile_path) if wait else process


def finish(process, profile_path):
    try:
        output = process.communicate(timeout=WAIT_S)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        subprocess.run(["scancel", "--name", f"alvit-{load_profile(profile_path).name}"], check=False)
        pytest.fail(f"the sweep did not end within {WAIT_S} s (a drained node? see sinfo -R)")
    return process.returncode, output


def counts(output):
    match = re.search(r"^done (\d+) / skipped (\d+) / failed (\d+) / claimed elsewhere (\d+)$", output, re.MULTILINE)
    assert match, output
    return tuple(int(n) for n in match.groups())


def test_a_sweep_through_slurm_runs_every_configuration_exactly_once(tmp_path):
    profile_path = write_profile(
        tmp_path, {"noise.rate": [0.0, 0.5], "strategy": ["random", "entropy"]}, pages={"strategy": ["random"]}
    )
    code, output = sweep(profile_path, cwd=tmp_path)
    assert code == 0 and counts(output) == (4, 0, 0, 0), output
    runs_dir = tmp_path / "runs"
    [logs] = (runs_dir / "_slurm").iterdir()
    results = [pickle.loads(path.read_bytes()) for path in sorted(logs.glob("*_result.pkl"))]
    assert sorted(
        outcome.run_id for status, outcome in results if status == "success" and outcome.status == "done"
    ) == sorted(cfg.run_id for cfg in load_profile(profile_path).configs)  # one array task each, each ran its run
    runs, problems = load_runs(runs_dir)  # what alvit book's summary reads
    assert not problems and runs.groupby("run_id")["finished"].all().sum() == 4
    assert len(list(runs_dir.glob("*.ipynb"))) == 2 and not list((runs_dir / "_claims").iterdir())

    code, output = sweep(profile_path, cwd=tmp_path)
    assert (
        code == 0 and counts(output) == (0, 4, 0, 0) and len(list((runs_dir / "_slurm").iterdir())) == 1
    )  # nothing submitted


def test_a_job_cancelled_mid_run_resumes_after_its_last_round_when_the_sweep_runs_again(tmp_path):
    # Rounds of several seconds (40 epochs, no early stop): the three rounds still to come outlast the SIGKILL that
    # follows scancel's SIGTERM after KillWait (2 s in .ci/slurm-up.sh) even on an idle machine, where 12 epochs
    # took under a second a round and the run finished first.
    profile_path = write_profile(
        tmp_path,
        {"seed": [0]},
        pages="none",
        name="killed",
        base={"al": {"initial": 300, "query": 100, "rounds": 4}, "train": {"epochs": 40, "patience": 40}},
    )
    profile = load_profile(profile_path)
    [cfg] = profile.configs
    folder = RunFolder(tmp_path / "runs" / cfg.run_id)
    process = sweep(profile_path, cwd=tmp_path, wait=False)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (
        folder.rounds.exists() and len(folder.rounds.read_text().splitlines()) >= 2
    ):
        time.sleep(0.1)
    [status] = sweep_status(profile)  # from the files alone, while the job runs
    assert status.state == "running" and re.search(r"\(job \d+(_0)?\), since .*, \d/5 rounds$", status.detail), status
    subprocess.run(["scancel", "--name", "alvit-killed"], check=True)
    code, output = finish(process, profile_path)
    kept = folder.read_rounds()
    assert code == 1 and counts(output) == (0, 0, 1, 0), output
    assert 1 <= len(kept) < 5, "the job should have been cancelled part-way"
    reason = (tmp_path / "runs" / "_failed" / f"{cfg.run_id}.txt").read_text().splitlines()[0]
    assert re.match(r"slurm job \d+(_0)? ended without a result \(CANCELLED", reason), reason

    code, output = sweep(profile_path, cwd=tmp_path)
    assert code == 0 and counts(output) == (1, 0, 0, 0), output
    rounds = folder.read_rounds()
    assert len(rounds) == 5
    assert rounds.iloc[: len(kept)].equals(kept)  # the rounds done before the kill, times included, were not redone
    assert not (tmp_path / "runs" / "_failed" / f"{cfg.run_id}.txt").exists()


def test_the_slurm_executor_refuses_to_submit_runs_whose_weights_are_missing(tmp_path):
    profile_path = write_profile(tmp_path, {"model": ["vit_b16"]}, base={"pretrained": True})
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "sweep", str(profile_path), "--executor", "slurm"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "alvit: error: 1 dataset(s) or weights the runs need are not here" in result.stderr
    assert "missing weights of vit_b16: timm/vit_base_patch16_224.orig_in21k" in result.stderr
    assert not (tmp_path / "runs" / "_slurm").exists()
