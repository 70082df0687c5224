"""Run folders others can read, and rounds tables whose numbers are checked when read."""

import os
import pwd
import re
import stat
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from alvit.errors import ResultsError
from alvit.results import MEASURE_COLUMNS, ROUND_COLUMNS, RunFolder, atomic_write_text, current_umask


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


def three_rounds(tmp_path) -> RunFolder:
    """A rounds.csv of three whole rows (rounds 0, 1, 2) of realistic numbers, and a config.yaml planning them."""
    folder = RunFolder(tmp_path / "run")
    table = pd.DataFrame(
        {column: [0.1234567, 0.2345678, 0.3456789] for column in ROUND_COLUMNS + MEASURE_COLUMNS}
        | {"n_labeled": [40, 60, 80]}
    )
    folder.write_rounds(table.assign(round=[0, 1, 2]))
    folder.config.write_text("al:\n  rounds: 2\n")
    return folder


def lines_of(folder):
    """The file's lines as written, each with its line end (the reference the tests cut by hand)."""
    return folder.rounds.read_text().splitlines(keepends=True)


@pytest.mark.parametrize(
    "cut, damage",
    [  # the header has 36 fields: ROUND_COLUMNS and MEASURE_COLUMNS (acq_temperature the last)
        (
            lambda lines: [*lines[:3], "2,80,0.3456789,0.3456789,0.3456789,0.345"],
            "line 4 is cut off (6 of 36 fields, no line end)",
        ),
        (lambda lines: [*lines[:3], "2,80\n"], "line 4 is cut off (2 of 36 fields)"),
        (lambda lines: [*lines[:3], "2,80"], "line 4 is cut off (2 of 36 fields, no line end)"),
        (lambda lines: [*lines[:3], lines[3][:-1]], "line 4 is cut off (36 of 36 fields, no line end)"),
        (lambda lines: [*lines[:3], lines[3][:-3]], "line 4 is cut off (36 of 36 fields, no line end)"),  # mid-number
        (lambda lines: [*lines[:2], "1,60,0.234567"], "line 3 is cut off (3 of 36 fields, no line end)"),
    ],
)
def test_a_cut_last_line_is_damage_named_by_file_and_line_and_the_whole_rows_stay(tmp_path, cut, damage):
    """Issue 22: a rounds.csv cut mid-number or down to '2,80' used to count as finished, its cells NaN or cut."""
    folder = three_rounds(tmp_path)
    lines = lines_of(folder)
    folder.rounds.write_text("".join(cut(lines)))
    whole = len(cut(lines)) - 2  # every line but the header and the cut one
    rounds = folder.inspect_rounds(planned=3)
    assert rounds.damage == f"{folder.rounds} {damage}"
    assert rounds.table["round"].tolist() == list(range(whole))
    assert rounds.table["test_acc"].tolist() == [0.1234567, 0.2345678, 0.3456789][:whole]
    assert rounds.whole == "".join(lines[: whole + 1])
    assert not folder.is_finished({"al": {"rounds": 2}})
    with pytest.raises(ResultsError, match=re.escape(f"{folder.rounds} {damage}, so the run is damaged, not finished")):
        folder.read_rounds()


@pytest.mark.parametrize(
    "text, damage",
    [("", "is empty"), ("round,n_labeled,noise_re", "line 1, its header, is cut")],
)
def test_a_file_cut_within_its_header_is_damage_with_no_rounds(tmp_path, text, damage):
    folder = three_rounds(tmp_path)
    folder.rounds.write_text(text)
    rounds = folder.inspect_rounds(planned=3)
    assert rounds.damage == f"{folder.rounds} {damage}" and rounds.table.empty and rounds.whole == ""


def test_a_short_line_with_lines_after_it_is_no_cut_and_is_refused(tmp_path):
    folder = three_rounds(tmp_path)
    lines = lines_of(folder)
    folder.rounds.write_text("".join([*lines[:2], "1,60\n", lines[3]]))
    with pytest.raises(ResultsError, match=r"line 3 has 2 fields where its header has 36, and it is not a cut end"):
        folder.inspect_rounds()


def test_more_rounds_than_the_configuration_plans_is_refused_in_one_sentence(tmp_path):
    """Issue 22: such a folder could never finish, so every sweep 'did' it again."""
    folder = three_rounds(tmp_path)
    lines = lines_of(folder)
    folder.rounds.write_text("".join([*lines, "3" + lines[3][1:]]))
    sentence = (
        f"{folder.rounds} holds 4 rounds, more than the 3 its configuration plans (al.rounds 2), so no run of it "
        "can finish; restore the file or move the folder away to rerun"
    )
    for read in (lambda: folder.inspect_rounds(3), lambda: folder.read_rounds(3), lambda: folder.is_finished(PLAN)):
        with pytest.raises(ResultsError) as refused:
            read()
        assert str(refused.value) == sentence
    assert len(folder.read_rounds()) == 4  # without a plan to hold it to, the table itself is whole


PLAN = {"al": {"rounds": 2}}


def test_a_whole_table_is_finished_and_read_as_written(tmp_path):
    folder = three_rounds(tmp_path)
    rounds = folder.inspect_rounds(planned=3)
    assert rounds.damage is None and rounds.whole == folder.rounds.read_text()
    assert folder.is_finished(PLAN) and len(folder.read_rounds(3)) == 3


def test_setting_damage_aside_keeps_a_copy_and_exactly_the_whole_rows(tmp_path):
    folder = three_rounds(tmp_path)
    lines = lines_of(folder)
    damaged = "".join(lines[:3]) + "2,80,0.3456"
    folder.rounds.write_text(damaged)
    copy = folder.set_damage_aside(folder.inspect_rounds(3))
    assert copy.parent == folder.path and re.fullmatch(r"rounds\.csv\.damaged-\d{8}-\d{6}", copy.name)
    assert copy.read_text() == damaged and folder.rounds.read_text() == "".join(lines[:3])
    folder.rounds.write_text("round,n_lab")  # again within the same second: a second copy, the first kept
    second = folder.set_damage_aside(folder.inspect_rounds(3))
    assert second != copy and copy.read_text() == damaged and second.read_text() == "round,n_lab"
    assert not folder.rounds.exists()  # not even a header was whole: the run starts again at round 0
