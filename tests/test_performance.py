"""The "Performance and cost" page reads its tables from result files that commands wrote, never typed figures."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

from alvit.book import performance


def test_timed_runs_the_command_and_appends_one_record(tmp_path):
    out = tmp_path / "timings.jsonl"
    for _ in range(2):
        result = subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "timed.py"),
                "--out",
                str(out),
                "a pause",
                "--",
                sys.executable,
                "-c",
                "import time; time.sleep(0.2)",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
    table = performance.timings(tmp_path)
    assert list(table["what"]) == ["a pause", "a pause"] and (table["seconds"] >= 0.2).all()
    assert {"command", "commit", "date", "load before", "load after"} <= set(table.columns)


def test_a_failing_command_keeps_its_exit_status(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "timed.py"),
            "--out",
            str(tmp_path / "t.jsonl"),
            "fails",
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(3)",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert json.loads((tmp_path / "t.jsonl").read_text())["exit_status"] == 3


def test_bench_acquisition_and_gpu_tables_come_from_their_json_files(tmp_path):
    bench = {
        "model": "vit_b16",
        "device_name": "NVIDIA H200",
        "batch": 64,
        "train_img_s": 1000.0,
        "naive_train_img_s": 200.0,
        "speedup_vs_naive": 5.0,
        "score_img_s": 3000.0,
        "mfu": 0.45,
        "torch": "2.11",
    }
    (tmp_path / "bench-vit_b16.json").write_text(json.dumps(bench))
    (tmp_path / "acquisition.json").write_text(
        json.dumps(
            [
                {"strategy": "entropy", "K": 10, "seconds": 0.02, "peak_extra_MiB": 0.1},
                {"strategy": "entropy", "K": 100, "seconds": 0.1, "peak_extra_MiB": 75.0},
            ]
        )
    )
    (tmp_path / "gpu_check.json").write_text(
        json.dumps(
            {
                "targets": [{"target": "vit_b16 training MFU", "value": 0.45, "at_least": 0.4, "met": True}],
                "bench": [bench],
            }
        )
    )
    assert performance.benches(tmp_path).iloc[0]["train fast / naive"] == 5.0
    assert performance.acquisition(tmp_path).loc["entropy", "K = 100"] == "0.10 s / 75 MiB"
    targets, gpu_bench = performance.gpu_check(tmp_path)
    assert bool(targets.iloc[0]["met"]) and gpu_bench.iloc[0]["device"] == "NVIDIA H200"


def test_before_any_measurement_the_tables_are_empty_not_invented(tmp_path):
    assert performance.timings(tmp_path).empty and performance.benches(tmp_path).empty
    assert performance.acquisition(tmp_path).empty and performance.gpu_check(tmp_path) is None


def test_the_committed_results_are_readable():
    assert not performance.timings().empty
    assert not performance.benches().empty
