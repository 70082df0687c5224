"""Run folders that cannot lie: a rounds.csv whose last line is cut is damaged, not finished (status
names the file and line, the loop and the sweep keep a copy and redo the round, the book refuses
it), one of more rounds than planned is refused by all four, and after a sweep over damaged folders
among good ones its report agrees with alvit status while the good results stay untouched."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, TINY
from test_sweep import write_profile

from alvit.book.build import check_runs
from alvit.config import load_config, to_dict
from alvit.errors import ResultsError
from alvit.loop import run_experiment
from alvit.profile import load_profile
from alvit.results import TIME_COLUMNS, RunFolder, load_runs
from alvit.sweep.simulate import simulate_profile
from alvit.sweep.status import STATES

MIXED = REPO / "tests" / "profiles" / "mixed.yaml"


def cut_mid_number(folder: RunFolder) -> None:
    """The last line cut inside its fourth number, with no line end: a copy that stopped part-way."""
    text = folder.rounds.read_text()
    start = text.rstrip("\n").rindex("\n") + 1
    fourth = [m.start() for m in re.finditer(",", text[start:])][2] + start + 4
    folder.rounds.write_text(text[:fourth])


def cut_to(folder: RunFolder, line: int, cells: str) -> None:
    """Everything from line ``line`` on replaced by ``cells`` and a line end (``2,80``: round and labels only)."""
    lines = folder.rounds.read_text().splitlines(keepends=True)
    folder.rounds.write_text("".join(lines[: line - 1]) + cells + "\n")


def one_round_too_many(folder: RunFolder) -> None:
    """A row for a round the configuration does not plan, as a merge of two folders could leave."""
    lines = folder.rounds.read_text().splitlines(keepends=True)
    last = lines[-1].split(",")
    folder.rounds.write_text("".join(lines) + ",".join([str(int(last[0]) + 1), *last[1:]]))


def files_of(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def results_of(path) -> dict[str, object]:
    """What a run computed: its rounds (times aside), queries and every prediction file, for comparison."""
    folder = RunFolder(path)
    arrays = {}
    for file in sorted((folder.predictions_dir).glob("*.np[yz]")) + [folder.queries, folder.test_labels]:
        loaded = np.load(file)
        arrays[file.name] = {k: loaded[k] for k in loaded.files} if file.suffix == ".npz" else {"": loaded}
    return {"rounds": folder.read_rounds().drop(columns=TIME_COLUMNS), "arrays": arrays}


def assert_same_results(a, b) -> None:
    pd.testing.assert_frame_equal(a["rounds"], b["rounds"])
    assert a["arrays"].keys() == b["arrays"].keys()
    for name, fields in a["arrays"].items():
        for field, values in fields.items():
            np.testing.assert_array_equal(values, b["arrays"][name][field], err_msg=f"{name} {field}")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished TINY run (rounds 0, 1, 2) and what it computed."""
    cfg = load_config(None, TINY)
    path = run_experiment(cfg, tmp_path_factory.mktemp("runs") / "run", progress=False)
    return cfg, path, results_of(path)


@pytest.mark.parametrize(
    "damage, line, resumes_at",
    [
        (cut_mid_number, 4, 2),
        (lambda folder: cut_to(folder, 4, "2,80"), 4, 2),
        (lambda folder: cut_to(folder, 3, "1,6"), 3, 1),  # rounds 1 and 2 redone, their old files overwritten
    ],
)
def test_the_loop_keeps_a_copy_of_a_damaged_rounds_csv_and_redoes_the_rounds_after_the_whole_ones(
    finished, tmp_path, caplog, damage, line, resumes_at
):
    cfg, path, computed = finished
    shutil.copytree(path, tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    damage(folder)
    damaged = folder.rounds.read_bytes()
    with caplog.at_level("WARNING", logger="alvit.loop"):
        run_experiment(cfg, folder.path, progress=False)
    [copy] = folder.path.glob("rounds.csv.damaged-*")
    assert copy.read_bytes() == damaged  # nothing silently lost
    [said] = [record.getMessage() for record in caplog.records]
    assert re.fullmatch(
        rf"{re.escape(str(folder.rounds))} line {line} is cut off \(\d+ of 36 fields(, no line end)?\); "
        rf"the file is kept as {re.escape(str(copy))} and the run resumes at round {resumes_at}",
        said,
    ), said
    assert folder.is_finished(to_dict(cfg))
    assert_same_results(results_of(folder.path), computed)  # redone exactly as first computed


def test_a_plain_alvit_run_refuses_more_rounds_than_planned_in_one_sentence_and_touches_nothing(finished, tmp_path):
    cfg, path, _ = finished
    shutil.copytree(path, tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    one_round_too_many(folder)
    before = files_of(folder.path)
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "run", str(folder.config), "--out", str(folder.path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"alvit: error: {folder.rounds} holds 4 rounds, more than the 3 its configuration plans (al.rounds 2), "
        "so no run of it can finish; restore the file or move the folder away to rerun\n"
    )
    assert files_of(folder.path) == before


def test_a_warm_started_run_whose_last_weights_are_gone_is_refused_before_training(tiny_config, tmp_path):
    cfg = tiny_config("al.warm_start=true")
    folder = RunFolder(run_experiment(cfg, tmp_path / "run", progress=False))
    cut_to(folder, 3, "1,6")  # resumes at round 1, which starts from round 0's weights, long deleted
    assert not folder.checkpoint_path(0).exists()
    with pytest.raises(ResultsError, match=r"resumes at round 1 with al.warm_start, which starts from the weights"):
        run_experiment(cfg, folder.path, progress=False)


def test_the_book_refuses_a_damaged_run_and_one_of_too_many_rounds_in_one_sentence(tmp_path):
    """At the paper's shape: both datasets (K = 10 and 100), three backbones, two seeds, simulated."""
    profile = load_profile(MIXED, ["noise.kind=flip", "noise.rate=0.4"])
    simulate_profile(profile, tmp_path / "runs", test_size=50)
    cut, beyond = (RunFolder(tmp_path / "runs" / cfg.run_id) for cfg in profile.configs[:2])
    cut_mid_number(cut)
    one_round_too_many(beyond)
    runs, problems = load_runs(tmp_path / "runs")
    assert sorted(problems) == sorted(
        [
            f"{cut.rounds} line 5 is cut off (4 of 36 fields, no line end), so the run is damaged, not finished; "
            "resume it (alvit sweep, or alvit run on its config.yaml), which keeps a copy of the file and redoes "
            "the rounds from round 3",
            f"{beyond.rounds} holds 5 rounds, more than the 4 its configuration plans (al.rounds 3), so no run of "
            "it can finish; restore the file or move the folder away to rerun",
        ]
    )
    assert runs["run_id"].nunique() == len(profile.configs) - 2 and runs.groupby("run_id").size().eq(4).all()
    with pytest.raises(ResultsError) as refused:
        check_runs(tmp_path / "runs")
    assert str(refused.value) in {f"{problem} (1 other run folder cannot be read either)" for problem in problems}


def sweep(profile_path, cwd):
    """``alvit sweep --jobs 2``: two workers at once; returns its counts by outcome."""
    command = [sys.executable, "-m", "alvit.cli", "sweep", str(profile_path), "--jobs", "2", "--quiet"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    match = re.search(r"^done (\d+) / skipped (\d+) / failed (\d+) / claimed elsewhere (\d+)$", result.stdout, re.M)
    assert match, result.stdout + result.stderr
    return dict(zip(("done", "skipped", "failed", "claimed"), map(int, match.groups()))), result


def status(profile_path, cwd) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "status", str(profile_path), "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    runs = json.loads(result.stdout)  # one record per configuration
    return {"counts": {state: sum(run["state"] == state for run in runs) for state in STATES}, "runs": runs}


def test_after_a_sweep_over_damaged_folders_among_good_ones_its_report_agrees_with_status(tmp_path):
    """Issue 22: a cut rounds.csv counted as done, and one of too many rounds was 'done' by every sweep."""
    profile_path = write_profile(tmp_path, {"model": ["vit_nano_p4", "vit_mini_p8"], "seed": [0, 1, 2]}, pages="none")
    configs = load_profile(profile_path).configs
    output = tmp_path / "runs"
    first, _ = sweep(profile_path, tmp_path)
    assert first == {"done": 6, "skipped": 0, "failed": 0, "claimed": 0}
    computed = {cfg.run_id: results_of(output / cfg.run_id) for cfg in configs}
    good, mid_number, short, early, beyond, pending = (cfg.run_id for cfg in configs)
    folders = {run_id: RunFolder(output / run_id) for run_id in computed}
    cut_mid_number(folders[mid_number])
    cut_to(folders[short], 4, "2,80")
    cut_to(folders[early], 3, "1,6")
    one_round_too_many(folders[beyond])
    shutil.rmtree(output / pending)
    kept = {run_id: files_of(output / run_id) for run_id in (good, beyond)}

    before = status(profile_path, tmp_path)
    assert before["counts"] == {
        "done": 1,
        "running": 0,
        "failed": 1,
        "damaged": 3,
        "pending": 1,
        "stale": 0,
        "simulated": 0,
    }
    states = {run["run_id"]: (run["state"], run["detail"]) for run in before["runs"]}
    assert states[short] == (
        "damaged",
        f"{folders[short].rounds} line 4 is cut off (2 of 36 fields); the next sweep keeps a copy of it and "
        "resumes at round 2 (2/3 rounds whole)",
    )
    assert states[early][1].startswith(f"{folders[early].rounds} line 3 is cut off (2 of 36 fields); ")
    assert states[mid_number][1].startswith(f"{folders[mid_number].rounds} line 4 is cut off (")
    assert states[beyond] == (
        "failed",
        f"{folders[beyond].rounds} holds 4 rounds, more than the 3 its configuration plans (al.rounds 2), so no "
        "run of it can finish; restore the file or move the folder away to rerun",
    )

    report, result = sweep(profile_path, tmp_path)
    assert report == {"done": 4, "skipped": 1, "failed": 1, "claimed": 0}
    after = status(profile_path, tmp_path)
    assert after["counts"]["done"] == report["done"] + report["skipped"]
    assert after["counts"]["failed"] == report["failed"]
    assert sum(after["counts"].values()) == after["counts"]["done"] + after["counts"]["failed"]  # nothing else
    assert f"{beyond} failed: ResultsError: {folders[beyond].rounds} holds 4 rounds" in result.stdout + result.stderr
    for run_id in (good, beyond):
        assert files_of(output / run_id) == kept[run_id]  # a finished run and a refused one: not a byte changed
    for run_id in (mid_number, short, early, pending):
        assert_same_results(results_of(output / run_id), computed[run_id])
    for run_id in (mid_number, short, early):
        assert len(list((output / run_id).glob("rounds.csv.damaged-*"))) == 1

    again, _ = sweep(profile_path, tmp_path)  # the next sweep agrees too: nothing left to do but the refused run
    assert again == {"done": 0, "skipped": 5, "failed": 1, "claimed": 0}
    assert status(profile_path, tmp_path)["counts"] == after["counts"]
