"""The "Performance and cost" page reads its tables from result files that commands wrote, never typed figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

from alvit.book import performance
from alvit.errors import ResultsError


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
    assert list(table["what"]) == ["a pause", "a pause"] and all(float(shown) >= 0.2 for shown in table["seconds"])
    assert {"command", "commit", "date", "load before → after"} <= set(table.columns)
    assert all(re.fullmatch(r"\d+\.\d → \d+\.\d", load) for load in table["load before → after"])


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


def cpu_bench(**extra):
    return {
        "model": "vit_nano_p4",
        "device": "cpu",
        "device_name": "cpu",
        "batch": 64,
        "train_img_s": 291.16,
        "naive_train_img_s": 117.8,
        "speedup_vs_naive": 2.4716,
        "score_img_s": 357.7,
        "score_speedup_vs_naive": 1.05,
        "peak_tflops": None,
        "mfu": None,
        "torch_threads": 2,
        "torch": "2.11",
        **extra,
    }


def gpu_bench(model, batch, train, score, mfu, score_mfu, gflops, **extra):
    return {
        "model": model,
        "device": "cuda",
        "device_name": "NVIDIA H200",
        "batch": batch,
        "eval_batch": batch,
        "input_size": 224,
        "gflops_per_image": gflops,
        "peak_tflops": 989.4,
        "train_img_s": train,
        "score_img_s": score,
        "mfu": mfu,
        "score_mfu": score_mfu,
        "speedup_vs_naive": 6.91,
        "score_speedup_vs_naive": 9.71,
        "peak_mem_mb": 5420.9,
        "concurrent": [],
        **extra,
    }


def write_gpu_results(folder, check, extra_benches=(), provenance=True):
    """A GPU check report, bench files of a GPU, and (unless not ``provenance``) the record naming them."""
    (folder / "gpu_check-x.json").write_text(json.dumps(check))
    names = ["gpu_check-x.json"]
    for i, bench in enumerate(extra_benches):
        (folder / f"bench-gpu-{i}.json").write_text(json.dumps(bench))
        names.append(f"bench-gpu-{i}.json")
    if provenance:
        record = {
            "date": "2026-12-04",
            "commit": "f92379e",
            "machine": "one NVIDIA H200",
            "files": dict.fromkeys(names, ""),
        }
        (folder / "provenance-x.json").write_text(json.dumps(record))


def target(name, value, at_least):
    return {"target": name, "value": value, "at_least": at_least, "met": value >= at_least}


def check_report(b16_64, b16_256, b32_64, b32_256, concurrent):
    """A check's report shaped like the H200's of 2026-12-04 (the figures are the test's own)."""
    b32_64 = {**b32_64, "concurrent": concurrent}
    return {
        "started": "2026-12-04T13:16:48+0000",
        "seconds": 446,
        "steps": [{"name": "pytest-gpu", "status": "ok"}, {"name": "bench-vit_l16-64", "status": "skipped"}],
        "pytest_gpu": ["4 passed in 60.79s"],
        "bench": [b16_256, b16_64, b32_256, b32_64],
        "rounds": {"rows": []},
        "targets": [
            target("vit_b16 training MFU (best batch)", max(b16_64["mfu"], b16_256["mfu"]), 0.4),
            target("vit_b16 scoring MFU (best batch)", max(b16_64["score_mfu"], b16_256["score_mfu"]), 0.5),
            target("vit_b16 training speedup over the naive pipeline at batch 64", 6.91, 4.0),
            target(
                "vit_b32 aggregate training throughput of 4 concurrent runs over one",
                concurrent[-1]["scaling_vs_one"],
                2.0,
            ),
        ],
    }


def concurrency(two, four):
    return [
        {"processes": 1, "aggregate_train_img_s": 4000.0, "per_process_train_img_s": [4000.0], "scaling_vs_one": 1.0},
        {
            "processes": 2,
            "aggregate_train_img_s": 4000.0 * two,
            "per_process_train_img_s": [2000.0 * two] * 2,
            "scaling_vs_one": two,
        },
        {
            "processes": 4,
            "aggregate_train_img_s": 4000.0 * four,
            "per_process_train_img_s": [1000.0 * four] * 4,
            "scaling_vs_one": four,
        },
    ]


B16_64 = gpu_bench("vit_b16", 64, 2600.0, 9300.0, 0.28, 0.33, 35.1)
B16_256 = gpu_bench("vit_b16", 256, 3500.0, 10400.0, 0.37, 0.37, 35.1, speedup_vs_naive=8.37)
B32_64 = gpu_bench("vit_b32", 64, 4400.0, 18800.0, 0.12, 0.17, 8.8)
B32_256 = gpu_bench("vit_b32", 256, 9600.0, 27400.0, 0.26, 0.24, 8.8)
L16_128 = gpu_bench("vit_l16", 128, 1150.0, 3600.0, 0.43, 0.45, 123.1)


def test_cpu_tables_are_formatted_for_people(tmp_path):
    (tmp_path / "bench-cpu.json").write_text(json.dumps(cpu_bench()))
    (tmp_path / "acquisition.json").write_text(
        json.dumps(
            [
                {"strategy": "entropy", "K": 10, "seconds": 0.0123, "peak_extra_MiB": 0.1},
                {"strategy": "entropy", "K": 100, "seconds": 24.61, "peak_extra_MiB": 1057.2},
            ]
        )
    )
    (row,) = performance.benches(tmp_path).to_dict("records")
    assert (
        row[("", "model")] == "vit_nano_p4" and row[("train", "img/s")] == "291" and row[("train", "× naive")] == "2.5x"
    )
    assert row[("", "threads")] == "2"
    assert not any(
        "MFU" in column for column in performance.benches(tmp_path).columns.get_level_values(1)
    )  # no peak on a CPU
    table = performance.acquisition(tmp_path)
    assert (
        table.loc["entropy", "K = 10"] == "0.012 s / 0 MiB" and table.loc["entropy", "K = 100"] == "24.6 s / 1,057 MiB"
    )


@pytest.mark.parametrize(
    "seconds, shown",
    [(2569.12, "2,569"), (267.3, "267"), (38.46, "38.5"), (4.0, "4.0"), (0.0243, "0.024"), (None, "—")],
)
def test_seconds_are_shown_with_the_digits_that_matter(seconds, shown):
    assert performance.seconds_text(seconds) == shown


def test_the_linear_probe_tables_show_noise_rates_as_written_and_three_decimals():
    rounds = pd.DataFrame(
        {
            "noise_rate": [0.3, 0.3, 0.0],
            "strategy": ["random", "random", "entropy"],
            "n_labeled": [100, 1000, 100],
            "test_acc": [0.5334, 0.71191, 0.5],
            "ece": [0.1063, 0.02, 0.3],
        }
    )
    accuracy = performance.linear_probe_table(rounds, "test_acc")
    assert accuracy.index.tolist() == ["100", "1,000"] and accuracy.index.name == "labels"
    assert accuracy[("noise 0.3", "random")].tolist() == ["0.533", "0.712"]
    assert accuracy.loc["100", ("noise 0", "entropy")] == "0.500"
    assert performance.linear_probe_table(rounds, "ece")[("noise 0.3", "random")].tolist() == ["0.106", "0.020"]


def test_the_gpu_tables_come_from_the_check_and_the_gpu_bench_files(tmp_path):
    write_gpu_results(tmp_path, check_report(B16_64, B16_256, B32_64, B32_256, concurrency(1.47, 1.47)), [L16_128])
    figures = performance.gpu(tmp_path)
    table = performance.bench_table(figures.benches)
    assert table[("", "model")].tolist() == ["vit_b16", "vit_b16", "vit_b32", "vit_b32", "vit_l16"]
    first = table.iloc[0]
    assert (first[("", "batch")], first[("train", "img/s")], first[("train", "MFU")], first[("score", "MFU")]) == (
        "64",
        "2,600",
        "28.0%",
        "33.0%",
    )
    assert first[("", "peak memory")] == "5.3 GiB"  # 5,420.9 MiB
    assert performance.benches(tmp_path).empty  # the CPU section shows no GPU figure
    targets = performance.target_table(figures)
    assert targets["met"].tolist() == ["missed", "missed", "met", "missed"]
    assert targets["measured"].tolist() == ["37.0%", "37.0%", "6.91x", "1.47x"]
    assert "Measured on 2026-12-04 at commit `f92379e` on one NVIDIA H200" in performance.provenance_text(figures)
    assert performance.concurrency_table(figures)["img/s together"].tolist() == ["4,000", "5,880", "5,880"]


def test_each_missed_target_is_explained_from_the_figures():
    report = check_report(B16_64, B16_256, B32_64, B32_256, concurrency(1.47, 1.47))
    figures = performance.GpuFigures([], report, "c.json", [*report["bench"], L16_128])
    train, score, speedup, four = performance.target_readings(figures)
    assert train.startswith("Missed: 37.0% at batch 256, 28.0% at batch 64. MFU rises with the work in each step")
    assert "vit_b32 12.0% → 26.0% from batch 64 to 256" in train and "reaches 43.0% at batch 128" in train
    assert score.startswith("Missed: 37.0% at batch 256, 33.0% at batch 64. 4x the batch adds only 4.0 points")
    assert speedup == "Met: 6.9x at batch 64 (8.4x at batch 256)."
    assert four.startswith("Missed: 1.47x. Two processes already reach 1.47x (5,880 img/s together)")
    assert "the GPU is saturated at two. One process at batch 256 (9,600 img/s) does more than four together" in four


def test_a_reading_that_the_figures_do_not_support_is_not_given():
    # MFU falling with the batch; four processes scaling well past two; no larger model measured.
    falling = {**B16_256, "mfu": 0.2}
    report = check_report(B16_64, falling, B32_64, B32_256, concurrency(1.2, 1.8))
    figures = performance.GpuFigures([], report, "c.json", report["bench"])
    train, score, _, four = performance.target_readings(figures)
    assert train == "Missed: 28.0% at batch 64, 20.0% at batch 256; these figures do not show why."
    assert score.endswith("these figures do not show why.")  # no model larger than vit_b16 was measured
    assert four == "Missed: 1.80x; these figures do not show why."


def test_a_gpu_figure_without_provenance_stops_the_page(tmp_path):
    write_gpu_results(
        tmp_path, check_report(B16_64, B16_256, B32_64, B32_256, concurrency(1.47, 1.47)), provenance=False
    )
    with pytest.raises(ResultsError, match="gpu_check-x.json was measured on a GPU but no provenance-.*json"):
        performance.gpu(tmp_path)


def test_the_estimate_table_shows_both_ways_and_the_batch_caveat():
    rows = [
        {
            "model": "vit_l16",
            "runs": 180,
            "gpu_hours": 64.94,
            "assumed_gpu_hours": 139.0,
            "source": "measured: G, training at batch 128 (nearest measured to 64)",
        },
        {
            "model": "swinv2_b",
            "runs": 180,
            "gpu_hours": 45.9,
            "assumed_gpu_hours": 45.9,
            "source": "assumed: 200 TFLOP/s",
        },
    ]
    table = performance.estimate_table(rows, 200.0)
    assert table.iloc[-1].tolist() == ["total", "360", "184.9", "110.8", "0.60", ""]
    assert table.iloc[0]["measured over assumed"] == "0.47"
    figures = performance.GpuFigures([], {}, "c.json", [B16_64, B16_256])
    assert performance.batch_caveat(rows, figures) == (
        "vit_l16 was priced at a batch other than the profile's (the row names it), and throughput depends on the "
        "batch: vit_b16 trains 26% slower at batch 64 than at 256."
    )
    assert performance.batch_caveat(rows[1:], figures) == ""


def test_before_any_measurement_the_tables_are_empty_not_invented(tmp_path):
    assert performance.timings(tmp_path).empty and performance.benches(tmp_path).empty
    assert performance.acquisition(tmp_path).empty and performance.gpu(tmp_path) is None


def test_the_committed_results_are_readable_and_every_gpu_figure_has_its_provenance():
    assert not performance.timings().empty
    assert not performance.benches().empty
    figures = performance.gpu()
    assert {b["model"] for b in figures.benches} == {"vit_b16", "vit_b32", "vit_l16"}
    assert figures.check["machine"]["gpu"] == "NVIDIA H200"
