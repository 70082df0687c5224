"""The book's "Performance and cost" page: tables read from the result files under ``benchmarks/results/``.

Every figure there was written by a command, never typed: ``benchmarks/timed.py`` appends wall
times (with command, commit, date and the machine's load) to ``timings.jsonl``; ``alvit bench
--json`` writes ``bench-*.json``; ``benchmarks/acquisition.py --json`` writes
``acquisition.json``; ``benchmarks/gpu_check.sh`` writes ``gpu_check.json`` on a GPU machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from alvit import paths

TIMING_COLUMNS = {  # the command last: it is the widest
    "name": "what",
    "seconds": "seconds",
    "load_before": "load before",
    "load_after": "load after",
    "cores": "cores",
    "date": "date",
    "commit": "commit",
    "command": "command",
}
BENCH_COLUMNS = {
    "model": "model",
    "device_name": "device",
    "batch": "batch",
    "train_img_s": "train img/s",
    "naive_train_img_s": "naive train img/s",
    "speedup_vs_naive": "train fast / naive",
    "score_img_s": "score img/s",
    "naive_score_img_s": "naive score img/s",
    "score_speedup_vs_naive": "score fast / naive",
    "mfu": "train MFU",
    "score_mfu": "score MFU",
    "torch_threads": "threads",
    "torch": "torch",
}


def results_dir() -> Path:
    """``benchmarks/results`` of the checkout."""
    return paths.book_root() / "benchmarks" / "results"


def timings(folder: Path | None = None) -> pd.DataFrame:
    """Every timed command, newest last: one row per line of ``timings.jsonl``."""
    path = (folder or results_dir()) / "timings.jsonl"
    if not path.exists():
        return pd.DataFrame(columns=list(TIMING_COLUMNS.values()))
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(records).reindex(columns=list(TIMING_COLUMNS)).rename(columns=TIMING_COLUMNS)


def bench_table(results: list[dict]) -> pd.DataFrame:
    """One row per ``alvit bench`` result: throughput of the fast path against the naive pipeline."""
    return pd.DataFrame(results).reindex(columns=list(BENCH_COLUMNS)).rename(columns=BENCH_COLUMNS).round(2)


def benches(folder: Path | None = None) -> pd.DataFrame:
    """:func:`bench_table` of every ``bench-*.json``."""
    return bench_table(
        [json.loads(path.read_text()) for path in sorted((folder or results_dir()).glob("bench-*.json"))]
    )


def acquisition(folder: Path | None = None) -> pd.DataFrame:
    """Seconds and peak extra memory of every strategy, columns per number of classes."""
    path = (folder or results_dir()) / "acquisition.json"
    if not path.exists():
        return pd.DataFrame()
    rows = pd.DataFrame(json.loads(path.read_text()))
    rows["cell"] = [f"{s:.2f} s / {m:.0f} MiB" for s, m in zip(rows["seconds"], rows["peak_extra_MiB"], strict=True)]
    table = rows.pivot_table(index="strategy", columns="K", values="cell", aggfunc="first", sort=False)
    table.columns = [f"K = {k}" for k in table.columns]
    return table


def calibration(folder: Path | None = None) -> tuple[pd.DataFrame, dict] | None:
    """Post-hoc calibration's seconds in demo runs (with its share of each) and at the paper's round shape."""
    path = (folder or results_dir()) / "calibration.json"
    if not path.exists():
        return None
    measured = json.loads(path.read_text())
    runs = pd.DataFrame(measured["demo_runs"]).rename(
        columns={
            "run_s": "run s",
            "held_out_predict_s": "held-out predictions s",
            "fit_and_apply_s": "three fits, applied and written s",
            "measures_s": "SmoothECE + L2 s",
            "share": "share of the run",
        }
    )
    return runs, {"demo_share": measured["demo_share"], **measured["paper_round"]}


def linear_probe(folder: Path | None = None) -> tuple[dict, pd.DataFrame] | None:
    """A frozen real backbone on real CIFAR-10 (``benchmarks/linear_probe.py``): its headline figures,
    and accuracy and ECE round by round, a row per (noise rate, strategy, measure)."""
    path = (folder or results_dir()) / "linear_probe.json"
    if not path.exists():
        return None
    measured = json.loads(path.read_text())
    rows = []
    for run in measured["runs"].values():
        for measure in ("test_acc", "ece"):
            rows.append(
                {
                    "noise": run["noise_rate"],
                    "strategy": run["strategy"],
                    "measure": "accuracy" if measure == "test_acc" else "ECE",
                    **{f"{n:,} labels": value for n, value in zip(run["n_labeled"], run[measure], strict=True)},
                }
            )
    return measured, pd.DataFrame(rows).set_index(["noise", "strategy", "measure"])


def gpu_check(folder: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The GPU check's targets (met or not) and its benches, or None before any GPU has run it."""
    path = (folder or results_dir()) / "gpu_check.json"
    if not path.exists():
        return None
    check = json.loads(path.read_text())
    return pd.DataFrame(check["targets"]), bench_table(check["bench"])
