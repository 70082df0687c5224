"""Run folders others can read, and rounds tables whose numbers are checked when read."""

import os
import pwd
import re
import stat
import subprocess
import tempfile
import time
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
    with pytest.raises(ResultsError) as refused:
        folder.read_rounds()
    assert str(refused.value) == (
        f"{folder.rounds} has the non-numeric value '{value}' in column {column} (row 2); "
        "restore it or move the folder away to rerun"
    )


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


def test_setting_damage_aside_keeps_a_copy_and_exactly_the_whole_rows(tmp_path, monkeypatch):
    clock = time.struct_time((2026, 12, 5, 7, 15, 0, 5, 339, 0))  # every copy within this one second
    monkeypatch.setattr(time, "strftime", lambda pattern, t=clock, real=time.strftime: real(pattern, t))
    folder = three_rounds(tmp_path)
    lines = lines_of(folder)
    damaged = "".join(lines[:3]) + "2,80,0.3456"
    folder.rounds.write_text(damaged)
    copy = folder.set_damage_aside(folder.inspect_rounds(3))
    assert copy == folder.path / "rounds.csv.damaged-20261205-071500"
    assert copy.read_text() == damaged and folder.rounds.read_text() == "".join(lines[:3])
    folder.rounds.write_text("round,n_lab")  # again within the same second: a second copy, the first kept
    second = folder.set_damage_aside(folder.inspect_rounds(3))
    assert second == folder.path / "rounds.csv.damaged-20261205-071500-2"
    assert copy.read_text() == damaged and second.read_text() == "round,n_lab"
    assert not folder.rounds.exists()  # not even a header was whole: the run starts again at round 0


def test_a_run_folder_without_rounds_csv_has_no_rounds_and_no_damage(tmp_path):
    rounds = RunFolder(tmp_path / "run").inspect_rounds(planned=3)
    assert rounds.whole == "" and rounds.damage is None
    assert rounds.table.empty and list(rounds.table.columns) == ROUND_COLUMNS + MEASURE_COLUMNS


def test_a_file_cut_within_its_header_reads_as_an_empty_table_of_every_column(tmp_path):
    folder = three_rounds(tmp_path)
    folder.rounds.write_text("round,n_labeled,noise_re")
    assert list(folder.inspect_rounds(planned=3).table.columns) == ROUND_COLUMNS + MEASURE_COLUMNS


def test_a_header_alone_is_a_whole_file_of_no_rounds(tmp_path):
    """A run stopped before its first round: nothing damaged, nothing finished, round 0 next."""
    folder = three_rounds(tmp_path)
    header = lines_of(folder)[0]
    folder.rounds.write_text(header)
    rounds = folder.inspect_rounds(planned=3)
    assert rounds.damage is None and rounds.whole == header and rounds.table.empty
    assert not folder.is_finished(PLAN)


def test_a_cut_first_row_is_measured_against_the_header_not_against_itself(tmp_path):
    folder = three_rounds(tmp_path)
    folder.rounds.write_text(lines_of(folder)[0] + "0,40")
    assert folder.inspect_rounds(planned=3).damage == f"{folder.rounds} line 2 is cut off (2 of 36 fields, no line end)"


def test_whole_rows_short_of_the_plan_are_not_finished(tmp_path):
    """A run stopped between rounds: every line whole, yet fewer rounds than al.rounds + 1."""
    folder = three_rounds(tmp_path)
    folder.rounds.write_text("".join(lines_of(folder)[:3]))
    assert folder.inspect_rounds(planned=3).damage is None
    assert not folder.is_finished(PLAN)


def test_a_cut_line_after_every_planned_round_is_more_rounds_than_planned(tmp_path):
    """The damaged line counts: three whole rounds and the start of a fourth is four rounds for a plan of three."""
    folder = three_rounds(tmp_path)
    folder.rounds.write_text("".join(lines_of(folder)) + "3,100,0.1")
    with pytest.raises(ResultsError, match=r"holds 4 rounds, more than the 3 its configuration plans"):
        folder.inspect_rounds(planned=3)


def test_every_measure_is_read_as_written_and_a_table_from_before_the_measures_reads_them_as_nan(tmp_path):
    folder = three_rounds(tmp_path)
    table = folder.read_rounds(3)
    assert all(table[column].tolist() == [0.1234567, 0.2345678, 0.3456789] for column in MEASURE_COLUMNS)
    old = pd.read_csv(folder.rounds)[ROUND_COLUMNS]  # a folder written before the measures existed
    old.to_csv(folder.rounds, index=False)
    table = folder.read_rounds(3)
    assert list(table.columns) == ROUND_COLUMNS + MEASURE_COLUMNS
    assert table[MEASURE_COLUMNS].isna().all().all() and table["test_acc"].tolist()[0] == 0.1234567


RESTORE = "; restore it or move the folder away to rerun"


def opened_quote(line: str) -> str:
    """``line`` with its last cell opening a quote that never closes: the header's fields, so no cut."""
    head, _, last = line.rpartition(",")
    return f'{head},"{last}'


@pytest.mark.parametrize(
    "damage, reason",
    [
        (
            lambda lines: [lines[0].replace("test_acc", "test_accuracy"), *lines[1:]],
            "is not a rounds table written by alvit (it lacks the column test_acc)",
        ),
        (
            lambda lines: [*lines[:2], lines[3]],  # rounds 0 and 2
            "is not a rounds table written by alvit (its round numbers are not 0, 1, 2, ...)",
        ),
        (lambda lines: [lines[0], opened_quote(lines[1])], "cannot be read (ParserError)"),  # the CSV parser fails
    ],
    ids=["a column missing", "a round missing", "a quote never closed"],
)
def test_a_rounds_table_alvit_could_not_have_written_is_refused_saying_what_is_wrong(tmp_path, damage, reason):
    folder = three_rounds(tmp_path)
    folder.rounds.write_text("".join(damage(lines_of(folder))))
    with pytest.raises(ResultsError) as refused:
        folder.read_rounds(3)
    assert str(refused.value) == f"{folder.rounds} {reason}{RESTORE}"


def test_a_rounds_csv_that_is_not_text_is_refused_as_unreadable(tmp_path):
    folder = three_rounds(tmp_path)
    folder.rounds.write_bytes(b"round,n_labeled\n\xff\xfe\n")
    with pytest.raises(ResultsError) as refused:
        folder.inspect_rounds(3)
    assert str(refused.value) == f"{folder.rounds} cannot be read (UnicodeDecodeError){RESTORE}"
