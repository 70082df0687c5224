"""A run page's printed command rebuilds its run bit for bit, in a fresh shell whatever OMP_NUM_THREADS says:
the CPU threads are part of a run's configuration (``threads``), and the page says what else a rebuild needs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import TINY

from alvit.book.pages import page_introduction
from alvit.config import load_config
from alvit.results import TIME_COLUMNS, RunFolder
from alvit.sweep.task import Task
from alvit.sweep.workers import Slot, run_local


def rows_without_times(path: Path) -> list[list[str]]:
    """rounds.csv as its written text, cell by cell, the time columns left out: equal text is equal bits."""
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(header) if name not in TIME_COLUMNS]
    return [[line[i] for i in keep] for line in [header, *rows]]


def bash_blocks(markdown: str) -> list[str]:
    return [block.split("```")[0] for block in markdown.split("```bash\n")[1:]]


def test_a_run_pages_printed_command_rebuilds_the_sweeps_run_bit_for_bit_in_a_fresh_shell(tmp_path, monkeypatch):
    cfg = load_config(None, TINY)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    # The run as a sweep makes it: a worker process of one CPU thread (2 cores, --jobs 2).
    [outcome] = run_local([Task(cfg=cfg, output=tmp_path / "sweep", page=False)], [Slot(index=0, gpu=None, threads=1)])
    assert outcome.status == "done", outcome.reason
    original = RunFolder(tmp_path / "sweep" / cfg.run_id)
    env = original.read_env()
    assert env["torch_threads"] == 1

    page = page_introduction(cfg, env)
    command = bash_blocks(page)[0]
    assert command.startswith("alvit run \\\n") and "--set threads=1 \\\n" in command
    assert "1 CPU thread (the `threads` key; `OMP_NUM_THREADS` does not change it)" in page
    assert f"the processor {env['cpu']}" in page
    assert all(f"{name} {env[key]}" in page for name, key in [("torch", "torch"), ("timm", "timm"), ("numpy", "numpy")])

    shell = tmp_path / "shell"
    shell.mkdir()
    fresh = {
        **{key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # alvit, as after make install
        "OMP_NUM_THREADS": "3",  # what a user's shell may say: torch would then sum over 3 threads
        "HF_HUB_OFFLINE": "1",
    }
    rebuilt = subprocess.run(["bash", "-c", command], cwd=shell, env=fresh, capture_output=True, text=True, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = RunFolder(shell / "results" / cfg.run_id)  # the page says so: results/<run-id>/

    assert rows_without_times(again.rounds) == rows_without_times(original.rounds)
    assert again.read_env()["torch_threads"] == 1
    with np.load(original.queries) as before, np.load(again.queries) as after:
        assert before.files == after.files
        for name in before.files:
            assert before[name].dtype == after[name].dtype
            assert before[name].tobytes() == after[name].tobytes(), name
