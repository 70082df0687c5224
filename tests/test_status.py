"""alvit status: every configuration's state, from run folders, claims and failure records alone;
simulated folders counted apart; JSON for programs; exit 1 when a run failed."""

import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
from test_sweep import fake_finished_run, write_profile

from alvit.config import with_overrides
from alvit.leases import Leases
from alvit.profile import load_profile
from alvit.results import ROUND_COLUMNS, RunFolder
from alvit.sweep.simulate import simulate_profile
from alvit.sweep.status import format_status, sweep_status
from alvit.sweep.task import record_failure


def test_each_configuration_is_done_running_failed_damaged_stale_pending_or_simulated(tmp_path):
    profile = load_profile(write_profile(tmp_path, {"seed": [0, 1, 2, 3, 4, 5, 6, 7, 8]}, pages="none"))
    output = tmp_path / "runs"
    done, running, failed, stale, partial, abandoned, preview, damaged, beyond = profile.configs
    simulate_profile(dataclasses.replace(profile, configs=[preview]), output)
    fake_finished_run(output, done, page=False)
    claim = Leases(output).acquire(running.run_id)  # this process: alive
    record_failure(output, failed.run_id, "ConfigError: the pool is too small", "details")
    fake_finished_run(output, with_overrides(stale, {"train.lr": 0.1}), page=False)
    fake_finished_run(output, partial, page=False)
    RunFolder(output / partial.run_id).write_rounds(
        pd.DataFrame(0.0, index=[0], columns=ROUND_COLUMNS).assign(round=[0])
    )
    fake_finished_run(output, damaged, page=False)
    cut = RunFolder(output / damaged.run_id).rounds
    # The last line, "2" then sixteen ",0.0" and eighteen empty fields, cut 26 characters short as a copy that
    # stopped part-way leaves it: "2", fourteen ",0.0" and a comma, 16 fields.
    cut.write_text(cut.read_text()[:-26])
    fake_finished_run(output, beyond, page=False)
    RunFolder(output / beyond.run_id).write_rounds(
        pd.DataFrame(0.0, index=range(4), columns=ROUND_COLUMNS).assign(round=range(4))
    )
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (output / "_claims" / f"{abandoned.run_id}.json").write_text(
        json.dumps(
            {"host": socket.gethostname(), "pid": int(dead.stdout), "started": time.time(), "job": None, "token": "t"}
        )
    )

    rows = {row.run_id: row for row in sweep_status(profile)}
    assert rows[done.run_id].state == "done"
    assert rows[running.run_id].state == "running"
    assert rows[running.run_id].detail.startswith(f"{socket.gethostname()} pid {os.getpid()}, since ")
    assert rows[running.run_id].detail.endswith(", 0/3 rounds")
    assert (rows[failed.run_id].state, rows[failed.run_id].detail) == ("failed", "ConfigError: the pool is too small")
    assert (rows[stale.run_id].state, rows[stale.run_id].detail) == ("stale", "differs in train.lr")
    assert (rows[partial.run_id].state, rows[partial.run_id].detail) == ("pending", "1/3 rounds")
    assert rows[abandoned.run_id].state == "pending" and "taken over by the next sweep" in rows[abandoned.run_id].detail
    assert rows[preview.run_id].state == "simulated"  # a preview never counts as done
    assert (rows[damaged.run_id].state, rows[damaged.run_id].detail) == (
        "damaged",
        f"{cut} line 4 is cut off (16 of 36 fields, no line end); the next sweep keeps a copy of it and resumes at "
        "round 2 (2/3 rounds whole)",
    )
    assert (rows[beyond.run_id].state, rows[beyond.run_id].detail) == (
        "failed",
        f"{output / beyond.run_id / 'rounds.csv'} holds 4 rounds, more than the 3 its configuration plans "
        "(al.rounds 2), so no run of it can finish; restore the file or move the folder away to rerun",
    )

    text = format_status(profile, list(rows.values()))
    assert text.splitlines()[1] == "done 1 / running 1 / failed 2 / damaged 1 / pending 2 / stale 1 / simulated 1"
    assert f"damaged  {damaged.run_id}  {cut} line 4 is cut off" in text
    assert done.run_id not in text and partial.run_id in text and preview.run_id not in text
    assert text.splitlines()[-1].startswith("(1 run folder from alvit simulate: previews, not trained runs")
    Leases(output).release(claim)


def test_status_of_a_sweep_not_started_lists_counts_only(tmp_path):
    profile = load_profile(write_profile(tmp_path, {"seed": [0, 1]}))
    text = format_status(profile, sweep_status(profile))
    assert text.splitlines()[1:] == [
        "done 0 / running 0 / failed 0 / damaged 0 / pending 2 / stale 0 / simulated 0",
        "(2 pending runs not started are not listed; --all lists every run)",
    ]


def test_alvit_status_prints_the_counts_from_any_folder(tmp_path):
    profile_path = write_profile(tmp_path, {"seed": [0, 1]})
    fake_finished_run(tmp_path / "runs", load_profile(profile_path).configs[0])
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "status", str(profile_path), "--all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert result.stdout.splitlines()[1] == (
        "done 1 / running 0 / failed 0 / damaged 0 / pending 1 / stale 0 / simulated 0"
    )
    assert len(result.stdout.splitlines()) == 5  # header, counts, blank, one row per run


def status(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "alvit.cli", "status", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_status_json_is_a_table_of_each_runs_settings_rounds_and_last_metrics_for_pandas(tmp_path):
    grid = {"strategy": ["random", "entropy"], "seed": [0, 1], "train.lr": [0.003]}  # a grid key beyond the run id's
    profile_path = write_profile(tmp_path, grid, pages="none")
    output = tmp_path / "runs"
    finished, partial, failed, untouched = load_profile(profile_path).configs
    measured = {"test_acc": [0.5, 0.625, 0.75], "ece": [0.25, 0.1875, 0.125], "brier": [0.5, 0.4375, 0.375]}
    for cfg, rounds in ((finished, 3), (partial, 2)):
        fake_finished_run(output, cfg, page=False)
        table = pd.DataFrame(0.0, index=range(rounds), columns=ROUND_COLUMNS).assign(round=range(rounds))
        RunFolder(output / cfg.run_id).write_rounds(table.assign(**{k: v[:rounds] for k, v in measured.items()}))
    record_failure(output, failed.run_id, "TimeoutError: ran over")

    result = status(str(profile_path), "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # a run failed
    table = pd.read_json(io.StringIO(result.stdout))
    assert list(table.columns[:10]) == [
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
    assert list(table.columns[10:13]) == ["train.lr", "rounds_done", "rounds_planned"]  # the grid's other key
    assert {"test_acc", "ece", "brier", "nll", "smooth_ece", "ts_noisy_ece", "ts_aware_temperature"} <= set(table)
    runs = table.set_index("run_id")
    assert list(runs.index) == [cfg.run_id for cfg in (finished, partial, failed, untouched)]
    assert list(runs["state"]) == ["done", "pending", "failed", "pending"]
    assert list(runs["strategy"]) == ["random", "entropy"] * 2 and list(runs["seed"]) == [0, 0, 1, 1]
    assert (runs["train.lr"] == 0.003).all()
    assert (runs["dataset"] == "digits").all()
    assert runs["noise_rate"].tolist() == pytest.approx([0.3] * 4, abs=1e-15)  # read_json's fast float parser
    assert (runs["rounds_planned"] == 3).all()
    assert list(runs["rounds_done"]) == [3, 2, 0, 0]
    assert runs.loc[finished.run_id, ["test_acc", "ece", "brier"]].tolist() == [0.75, 0.125, 0.375]  # the last round
    assert runs.loc[partial.run_id, ["test_acc", "ece", "brier"]].tolist() == [0.625, 0.1875, 0.4375]
    assert runs.loc[untouched.run_id, ["test_acc", "ece", "brier"]].isna().all()  # nothing measured yet
    assert runs["state"].value_counts().to_dict() == {"pending": 2, "done": 1, "failed": 1}
    assert runs.loc[failed.run_id, "detail"] == "TimeoutError: ran over"
    assert status(str(profile_path), cwd=tmp_path).returncode == 1  # the table too
