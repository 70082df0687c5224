"""No typo is silent: every path a command reads or writes is checked before any work starts, and a
missing, unwritable or wrong-kind path is one sentence with exit status 2. A closed pipe ends quietly,
a profile's feature cache is checked before any run, and ``alvit list`` takes each kind's singular."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from alvit import cli

DEMO = "configs/profiles/demo.yaml"
UNCREATABLE = "/proc/alvit-typo"  # /proc takes no new folders, even from root
needs_proc = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")


def in_process(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_sentence(code: int, err: str) -> str:
    """The error line, once it is known to be the only line and the exit status 2."""
    assert code == 2 and err.startswith("alvit: error: ") and err.count("\n") == 1, (code, err)
    assert "Traceback" not in err
    return err.removeprefix("alvit: error: ").rstrip("\n")


@pytest.fixture(autouse=True)
def in_the_checkout(monkeypatch):
    monkeypatch.chdir(REPO)  # the demo profile's output, book/runs/demo, is relative to the checkout


@pytest.mark.parametrize("command", ["status", "power", "book"])
def test_runs_naming_a_folder_that_does_not_exist_is_refused_not_read_as_empty(capsys, command):
    """``--runs book/run/demo`` (for book/runs/demo) once reported "pending 72" and exited 0; ``power``
    read it as no runs and simulated with its default spread."""
    code, out, err = in_process(capsys, command, DEMO, "--runs", "book/run/demo")
    assert one_sentence(code, err) == (
        f"--runs {REPO / 'book/run/demo'} does not exist; give the folder that holds the run folders "
        "(profile demo's sweep writes them to book/runs/demo)"
    )
    assert out == "" and "pending" not in out


@pytest.mark.parametrize("command", ["status", "power", "book"])
def test_runs_naming_a_file_is_refused(capsys, tmp_path, command):
    (tmp_path / "runs.txt").write_text("notes\n")
    code, _, err = in_process(capsys, command, DEMO, "--runs", str(tmp_path / "runs.txt"))
    assert one_sentence(code, err).startswith(f"--runs {tmp_path / 'runs.txt'} is a file, not a folder; ")


def write_profile(tmp_path, output, base=None, **extra) -> Path:
    """A profile of two small digits runs (seeds 0 and 1) whose run folders go to ``output``."""
    path = tmp_path / "p.yaml"
    base = {
        "dataset": "digits",
        "model": "vit_nano_p4",
        "al": {"initial": 40, "query": 20, "rounds": 2},
        **(base or {}),
    }
    path.write_text(
        yaml.safe_dump({"name": "p", "output": str(output), "base": base, "grid": {"seed": [0, 1]}, **extra})
    )
    return path


def test_status_of_a_profile_whose_output_is_a_file_is_one_sentence(capsys, tmp_path):
    (tmp_path / "runs").write_text("not a folder\n")
    profile = write_profile(tmp_path, tmp_path / "runs")
    code, _, err = in_process(capsys, "status", str(profile))
    assert one_sentence(code, err).startswith(f"the output of profile {profile} {tmp_path / 'runs'} is a file")


def test_status_of_a_profile_not_yet_swept_counts_its_runs_pending(capsys, tmp_path):
    """The profile's own output may not exist yet: that is a sweep not started, not a typo."""
    profile = write_profile(tmp_path, tmp_path / "runs")
    code, out, _ = in_process(capsys, "status", str(profile))
    assert code == 0 and "pending 2" in out


def command_line(command: str, flag: str, value: str) -> list[str]:
    """The shortest command line of ``command`` that reaches its checks, with ``flag`` set to ``value``."""
    required = {"run": [], "bench": ["vit_nano_p4"], "labels": ["digits"]}.get(command, [DEMO])
    extra = ["--out", "/tmp/unused"] if command == "simulate" and flag != "out" else []
    return [command, *required, *extra, f"--{flag}", value]


def path_flags() -> list[tuple[str, str]]:
    """(command, flag) for every flag of every command that names a path it writes."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    found = []
    for name, sub in commands.items():
        for action in sub._actions:
            takes_value = not isinstance(action, argparse._StoreTrueAction)
            if takes_value and action.dest in ("out", "output", "html", "json"):  # every path a command writes
                found.append((name, action.dest))
    return found


def test_every_flag_naming_an_output_is_checked():
    assert sorted(path_flags()) == sorted([*cli.OUTPUT_FOLDERS, *cli.OUTPUT_FILES])


@needs_proc
@pytest.mark.parametrize("command, flag", path_flags())
def test_an_output_that_cannot_be_created_is_one_sentence(capsys, command, flag):
    """``--out /proc/x`` was a FileNotFoundError traceback; now every output flag says it in one sentence."""
    target = UNCREATABLE + ("/labels.npy" if (command, flag) in cli.OUTPUT_FILES else "")
    code, out, err = in_process(capsys, *command_line(command, flag, target))
    assert one_sentence(code, err) == (
        f"--{flag} {target} cannot be created: /proc takes no new files (No such file or directory); "
        "choose a folder you can write"
    )


@pytest.mark.parametrize("command, flag", path_flags())
def test_an_output_under_a_file_is_one_sentence_and_the_file_is_kept(capsys, tmp_path, command, flag):
    (tmp_path / "notes.txt").write_text("mine\n")
    target = tmp_path / "notes.txt" / "sub"
    code, _, err = in_process(capsys, *command_line(command, flag, str(target)))
    assert one_sentence(code, err) == (
        f"--{flag} {target} cannot be created: {tmp_path / 'notes.txt'} is a file; choose another path"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("command, flag", [key for key in path_flags() if key in cli.OUTPUT_FOLDERS])
def test_an_output_folder_that_is_a_file_is_one_sentence(capsys, tmp_path, command, flag):
    (tmp_path / "notes.txt").write_text("mine\n")
    code, _, err = in_process(capsys, *command_line(command, flag, str(tmp_path / "notes.txt")))
    assert one_sentence(code, err).startswith(f"--{flag} {tmp_path / 'notes.txt'} is a file, not a folder; choose ")
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("command, flag", sorted(cli.OUTPUT_FILES))
def test_an_output_file_that_is_a_folder_is_one_sentence(capsys, tmp_path, command, flag):
    code, _, err = in_process(capsys, *command_line(command, flag, str(tmp_path)))
    assert one_sentence(code, err) == f"--{flag} {tmp_path} is a folder; give the name of a file to write"


@needs_proc
def test_a_profile_output_that_cannot_be_created_is_refused_before_any_run(capsys, tmp_path):
    profile = write_profile(tmp_path, UNCREATABLE)
    code, _, err = in_process(capsys, "sweep", str(profile), "--quiet")
    assert one_sentence(code, err).startswith(f"the output of profile {profile} {UNCREATABLE} cannot be created: ")


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "{profile}", "--quiet"],
        ["fetch", "{profile}", "--features"],
        [
            "run",
            "--set",
            "train.mode=linear",
            "--set",
            "cache={cache}",
            "--set",
            "al.initial=40",
            "--set",
            "al.query=20",
            "--set",
            "al.rounds=2",
            "--out",
            "{tmp}/run",
        ],
    ],
    ids=["sweep", "fetch", "run"],
)
def test_a_feature_cache_that_is_a_file_is_refused_before_any_run_starts(capsys, tmp_path, args):
    """A sweep once started every run and ended "failed 2", the reason only in _failed/*.txt."""
    cache = tmp_path / "cache"
    cache.write_text("not a folder\n")
    profile = write_profile(tmp_path, tmp_path / "runs", {"train": {"mode": "linear"}}, cache=str(cache))
    argv = [arg.format(profile=profile, cache=cache, tmp=tmp_path) for arg in args]
    code, _, err = in_process(capsys, *argv)
    assert one_sentence(code, err) == f"cache {cache} is a file, not a folder; choose a folder for the cached features"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()
    assert cache.read_text() == "not a folder\n"


def test_a_closed_pipe_ends_quietly_with_the_status_of_sigpipe():
    """``alvit status --json | head -c 3000``: the reader is gone before alvit writes a byte."""
    status = subprocess.Popen(
        [sys.executable, "-m", "alvit.cli", "status", DEMO, "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    status.stdout.close()  # as head does once it has its 3000 bytes
    _, err = status.communicate(timeout=120)
    assert err.decode() == "" and status.returncode == 141  # 128 + SIGPIPE, as the shell reports for cat or grep


def test_the_same_listing_through_a_pipe_that_reads_it_all_is_whole():
    whole = subprocess.run(
        f"{sys.executable} -m alvit.cli status {DEMO} --json | head -c 100000000",
        shell=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert whole.returncode == 0 and whole.stderr == ""
    assert isinstance(json.loads(whole.stdout), list)  # the whole table, one record a run


def test_a_broken_pipe_that_is_not_stdout_is_not_hidden(capsys, monkeypatch):
    """A worker's pipe breaking is a fault to see; only a reader closing stdout is ended quietly."""

    def breaks(args):
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(cli, "_cmd_list", breaks)
    with pytest.raises(BrokenPipeError, match="a worker's pipe"):
        cli.main(["list", "models"])


@pytest.mark.parametrize("singular, plural", [("model", "models"), ("dataset", "datasets"), ("strategy", "strategies")])
def test_list_takes_each_kind_by_its_singular(capsys, singular, plural):
    assert in_process(capsys, "list", singular) == in_process(capsys, "list", plural)
    code, out, _ = in_process(capsys, "list", singular)
    assert code == 0 and len(out.splitlines()) >= 3


def test_list_of_an_unknown_kind_names_the_valid_ones(capsys):
    code, _, err = in_process(capsys, "list", "colours")
    assert one_sentence(code, err).startswith(
        "argument what: invalid choice: 'colours' (choose from 'models', 'datasets', 'strategies', 'noise')"
    )
