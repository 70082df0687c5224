"""The command line: listings, and one-sentence errors with exit status 2."""

import subprocess
import sys

import pytest
from conftest import REPO


def alvit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alvit.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("what, expected", [
    ("strategies", "entropy"), ("models", "vit_b16"), ("datasets", "imagefolder:<root>"), ("noise", "pairflip"),
])
def test_list_shows_each_name_with_a_description(what, expected):
    result = alvit("list", what)
    assert result.returncode == 0 and expected in result.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "configs/demo.yaml", "--set", "model=vit_giant_nope"], "model 'vit_giant_nope' is not known"),
    (["run", "configs/demo.yaml", "--set", "noise.rate=1.2"], "outside [0, 1)"),
    (["run", "configs/demo.yaml", "--set", "al.initial=2000"], "larger than the pool of 1347"),
    (["run", "configs/demo.yaml", "--set", "dataset=imagefolder:/missing"], "/missing/train does not exist"),
    (["run", "configs/missing.yaml"], "does not exist"),
])
def test_user_errors_are_one_sentence_without_a_traceback(args, message, tmp_path):
    result = alvit(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("alvit: error: ")


def test_run_prints_a_summary_line_per_round_and_the_folder(tmp_path):
    from conftest import TINY

    sets = [arg for item in TINY for arg in ("--set", item)]
    result = alvit("run", "configs/demo.yaml", "--quiet", "--out", str(tmp_path / "r"), *sets)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("round ") == 3 and "acc " in result.stderr and "ece " in result.stderr
    assert f"run folder: {tmp_path / 'r'}" in result.stdout


def test_a_wrong_value_is_refused_before_torch_is_imported():
    """Each of these sentences comes from the config alone: no model, no data, no torch."""
    code = ("import sys; from alvit.cli import main\n"
            "for setting in ['noise.rate=1.2', 'al.initial=2000', 'dataset=imagefolder:/missing']:\n"
            "    try: main(['run', 'configs/demo.yaml', '--set', setting])\n"
            "    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
    assert result.stderr.count("alvit: error:") == 3
