"""Run folders others can read, and rounds tables whose numbers are checked when read."""

import os
import pwd
import stat
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from alvit.errors import ResultsError
from alvit.results import ROUND_COLUMNS, RunFolder, atomic_write_text, current_umask


@pytest.fixture
def umask_022():
    """The common default, set explicitly so the expected modes do not depend on the test runner's."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a" / "b.txt", "x")
    assert stat.S_IMODE((tmp_path / "a" / "b.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.txt", "x")  # a user who asks for private files gets them
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    assert current_umask() == 0o077


def test_every_file_of_a_run_folder_is_read_by_another_user(tiny_config, umask_022):
    """Issue 14: collaborators on shared storage could not run status, fetch --check or book."""
    if os.geteuid() != 0:
        pytest.skip("reading as another user needs root here, to switch to the user nobody")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this machine has no user nobody to read as")
    from alvit.loop import run_experiment

    with tempfile.TemporaryDirectory() as base:
        os.chmod(base, 0o755)  # the shared folder itself is the collaborators' to open (mkdtemp makes it 0700)
        run = run_experiment(tiny_config("al.warm_start=true"), Path(base) / "run", progress=False)
        files = sorted(path for path in run.rglob("*") if path.is_file())
        assert {
            "config.yaml",
            "rounds.csv",
            "queries.npz",
            "env.json",
            "test_labels.npy",
            "round_000.npz",
            "final_probs.npy",
            "round_001.pt",
        } <= {path.name for path in files}
        assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o644}
        assert {stat.S_IMODE(path.stat().st_mode) for path in run.rglob("*") if path.is_dir()} <= {0o755}
        read = subprocess.run(["cat", *map(str, files)], user="nobody", capture_output=True, timeout=60)
        assert read.returncode == 0, read.stderr.decode()
        listed = subprocess.run(["find", str(run)], user="nobody", capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and len(listed.stdout.splitlines()) > len(files)


def rounds_with(tmp_path, **second_row):
    """A two-round rounds.csv whose second row holds these cells as written."""
    folder = RunFolder(tmp_path / "run")
    folder.write_rounds(pd.DataFrame(0.5, index=[0, 1], columns=ROUND_COLUMNS).assign(round=[0, 1]))
    text = folder.rounds.read_text().splitlines()
    cells = text[2].split(",")
    for column, value in second_row.items():
        cells[ROUND_COLUMNS.index(column)] = value
    folder.rounds.write_text("\n".join([*text[:2], ",".join(cells)]) + "\n")
    return folder


@pytest.mark.parametrize("column, value", [("test_acc", "abc"), ("ece", "0.1.2"), ("n_labeled", "many")])
def test_a_word_among_the_numbers_of_rounds_csv_names_the_file_the_column_and_the_row(tmp_path, column, value):
    folder = rounds_with(tmp_path, **{column: value})
    with pytest.raises(
        ResultsError, match=rf"{folder.rounds} has the non-numeric value '{value}' in column {column} \(row 2\)"
    ):
        folder.read_rounds()


def test_empty_cells_and_numbers_in_any_notation_are_read(tmp_path):
    folder = rounds_with(
        tmp_path, suspect_precision="", test_acc="1e-1"
    )  # no suspect flagged: NaN, as the loop writes it
    table = folder.read_rounds()
    assert table["test_acc"].iloc[1] == 0.1 and table["suspect_precision"].isna().iloc[1]
