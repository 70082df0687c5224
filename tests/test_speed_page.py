"""Issue 28's second GPU step on the performance page (alvit.book.speed): its figures beside the
first check's, per model, batch and path; kernel time without the profiler's ranges; each target
read from the measurements, and nothing said that they do not show."""

from __future__ import annotations

import json

import pytest

from alvit.book import performance, speed
from alvit.errors import ResultsError

COMMIT, FIRST = "c65f33b", "f92379e"


def profile(wall_ms, kernel_ms, kinds, top=(), items=64):
    """A kernel profile as alvit bench --profile wrote it at c65f33b (ranges counted as kernels)."""
    return {
        "calls": 3,
        "items_per_call": items,
        "wall_ms": wall_ms,
        "profiled_wall_ms": wall_ms * 3,
        "kernel_ms": kernel_ms,
        "busy": kernel_ms / wall_ms,
        "kinds": kinds,
        "top": [{"name": name, "kind": kind, "ms": ms, "count": 1} for name, kind, ms in top],
    }


OPTIMIZER_RANGE = ("Optimizer.step#AdamW.step", "optimizer", 1.5)


def bench(model, batch, path=None, eval_batch=None, **figures):
    """An alvit bench result on the H200; ``path`` None: the first check's, which recorded none."""
    result = {
        "model": model,
        "device": "cuda",
        "device_name": "NVIDIA H200",
        "batch": batch,
        "eval_batch": eval_batch or batch,
        "input_size": 224,
        "gflops_per_image": 8.8,
        "compile": True,
        "train_img_s": None,
        "score_img_s": None,
        "mfu": None,
        "score_mfu": None,
        "concurrent": [],
    }
    if path is not None:
        result["fast_path"] = path
    return {**result, **figures}


def job(name, figures=None, status="ok", **extra):
    record = {"name": name, "kind": "bench", "command": ["-m", "alvit.cli", "bench"], "status": status}
    return {**record, "figures": figures, **extra} if figures else {**record, **extra}


# vit_b32 training at batch 64: the kernels take 8 ms a step on both paths (plus a 1.5 ms range the
# profile counted as a kernel); the step takes 16 ms without CUDA graphs and 8.2 ms with them.
B32_BEFORE = bench(
    "vit_b32",
    64,
    "compiled",
    train_img_s=4000.0,
    mfu=0.10,
    kernels={
        "train_img_s": profile(16.0, 9.5, {"matmul": 4.0, "optimizer": 3.5, "fused (Triton)": 2.0}, [OPTIMIZER_RANGE])
    },
)
B32_GRAPHS = bench(
    "vit_b32",
    64,
    "compiled+graphs+fused",
    train_img_s=7800.0,
    mfu=0.205,
    kernels={
        "train_img_s": profile(8.2, 9.5, {"matmul": 4.0, "optimizer": 3.5, "fused (Triton)": 2.0}, [OPTIMIZER_RANGE])
    },
)
FIRST_B32 = bench("vit_b32", 64, train_img_s=4400.0, score_img_s=18000.0, mfu=0.117, score_mfu=0.17)


def write_results(folder, jobs, lone=(), report_commit=COMMIT, record_commit=COMMIT, first=True):
    """A speed report, lone bench files, the first check, and their provenance records."""
    report = {
        "check": "alvit.gpuspeed (issue 28)",
        "provenance": {"date": "2026-12-04T17:27:47Z", "commit": report_commit},
        "seconds": 300.0,
        "budget_s": 380.0,
        "jobs": jobs,
    }
    (folder / "gpu_speed-x.json").write_text(json.dumps(report))
    names = ["gpu_speed-x.json"]
    for i, result in enumerate(lone):
        (folder / f"bench-lone-{i}.json").write_text(json.dumps(result))
        names.append(f"bench-lone-{i}.json")
    record = {"date": "2026-12-04", "time_utc": "17:21", "commit": record_commit, "machine": "one H200"}
    (folder / "provenance-speed.json").write_text(json.dumps({**record, "files": dict.fromkeys(names, "")}))
    if first:
        check = {"started": "2026-12-04T13:16:48+0000", "bench": [FIRST_B32], "targets": [], "steps": []}
        (folder / "gpu_check-x.json").write_text(json.dumps(check))
        first_record = {"date": "2026-12-04", "time_utc": "13:16", "commit": FIRST, "machine": "one H200"}
        (folder / "provenance-first.json").write_text(json.dumps({**first_record, "files": {"gpu_check-x.json": ""}}))


def test_kernel_time_leaves_out_the_profilers_ranges_it_lists():
    kernels = B32_BEFORE["kernels"]["train_img_s"]
    assert speed.kernel_ms(kernels) == pytest.approx(8.0)  # 9.5 less the 1.5 ms range
    assert speed.busy(kernels) == pytest.approx(0.5)  # 8 of 16 ms
    assert speed.kind_shares(kernels) == pytest.approx({"matmul": 0.5, "optimizer": 0.25, "fused (Triton)": 0.25})
    assert speed.kinds_text(kernels) == "matmuls 50%, the optimizer 25% and Triton's fused kernels 25%"


def test_each_measurement_sits_beside_the_first_checks_by_model_work_batch_and_path(tmp_path):
    again = {**B32_GRAPHS, "train_img_s": 7600.0, "mfu": 0.2}  # measured twice, in a lone bench file
    write_results(tmp_path, [job("b32-before", B32_BEFORE), job("b32-graphs", B32_GRAPHS)], lone=[again])
    figures = speed.speed(tmp_path)
    assert figures.commit == COMMIT and [b["job"] for b in figures.benches] == [
        "b32-before",
        "b32-graphs",
        "bench-lone-0",
    ]
    rows = speed.before_after_table(figures).to_dict("records")
    first, this = f"first check ({FIRST})", f"this check ({COMMIT})"
    assert [(r["model"], r["work"], r["batch"], r["path"]) for r in rows] == [
        ("vit_b32", "training", "64", "compiled"),
        ("vit_b32", "training", "64", "compiled+graphs+fused"),
        ("vit_b32", "scoring", "64", "compiled"),
    ]
    assert (rows[0][first], rows[0][this], rows[0]["GPU busy"]) == ("4,400 (11.7%)", "4,000 (10.0%)", "50%")
    assert (rows[1][first], rows[1][this]) == ("—", "7,800 (20.5%); 7,600 (20.0%)")
    assert rows[1]["GPU busy"] == "98%; 98%"  # 8 of 8.2 ms
    assert (rows[2][first], rows[2][this]) == ("18,000 (17.0%)", "—")


def test_the_small_batch_target_is_read_from_the_two_paths_and_their_profiles(tmp_path):
    write_results(tmp_path, [job("vit_b32-64-graphs", B32_GRAPHS), job("vit_b32-64-before", B32_BEFORE)])
    figures = speed.speed(tmp_path)
    table = speed.target_table(figures)
    row = table[table["target"].str.startswith("vit_b32")].iloc[0]
    assert (row["measured"], row["bound"], row["met"], row["by"]) == (
        "20.5%",
        "at least 20.0%",
        "met",
        "vit_b32-64-graphs",
    )
    reading = speed.target_readings(figures)[1]
    assert reading == (
        "Met: 20.5% on compiled+graphs+fused (7,800 img/s), 1.95x the compiled path measured beside it "
        "(4,000 img/s, 10.0%) and 1.77x the first check's (4,400 img/s, 11.7%). A step's kernels take 8.0 ms on "
        "compiled and 8.0 ms on compiled+graphs+fused, while the step takes 16.0 and 8.2 ms: the GPU is busy 50% "
        "of the time, then 98%; the same kernels, without the waits between them that CUDA graphs remove."
    )


def test_the_waits_are_not_credited_to_cuda_graphs_where_the_kernels_changed(tmp_path):
    faster_kernels = {
        **B32_GRAPHS,
        "kernels": {"train_img_s": profile(8.2, 6.0, {"matmul": 6.0})},  # 6 ms against 8: not the same kernels
    }
    write_results(tmp_path, [job("vit_b32-64-graphs", faster_kernels), job("vit_b32-64-before", B32_BEFORE)])
    reading = speed.target_readings(speed.speed(tmp_path))[1]
    assert reading.endswith("the GPU is busy 50% of the time, then 73%.") and "CUDA graphs remove" not in reading


def test_the_deterministic_cost_is_read_per_path_from_wall_and_kernel_time(tmp_path):
    def deterministic(path, rate, strict_rate, plain_wall, strict_wall, plain_attention, strict_attention):
        kinds = lambda attention: {"matmul": 10.0, "attention": attention}  # noqa: E731
        return bench(
            "vit_b16",
            64,
            path,
            train_img_s=rate,
            mfu=0.3,
            deterministic_train_img_s=strict_rate,
            deterministic_cost=1 - strict_rate / rate,
            kernels={
                "train_img_s": profile(plain_wall, 10.0 + plain_attention, kinds(plain_attention)),
                "deterministic_train_img_s": profile(strict_wall, 10.0 + strict_attention, kinds(strict_attention)),
            },
        )

    # Without graphs: 12 ms a step becomes 20, the kernels 11 -> 12.5 ms; with them 11.5 -> 13 ms, as busy.
    without = deterministic("compiled", 5000.0, 3000.0, 12.0, 20.0, 1.0, 2.5)
    with_graphs = deterministic("compiled+graphs+fused", 5500.0, 4950.0, 11.5, 13.0, 1.0, 2.5)
    write_results(tmp_path, [job("vit_b16-64-deterministic", without)], lone=[with_graphs])
    figures = speed.speed(tmp_path)
    reading = speed.target_readings(figures)[3]
    assert reading == (
        "Met: 10.0% on compiled+graphs+fused (4,950 against 5,500 img/s); 40.0% on compiled (3,000 against "
        "5,000 img/s). On compiled it makes a step 8.0 ms longer and its kernels 1.5 ms longer, and the GPU is "
        "busy 92%, then 62%: for the other 6.5 ms it waits. On compiled+graphs+fused it makes a step 1.5 ms "
        "longer and its kernels 1.5 ms longer, and the GPU is busy 96%, then 96%. The kernel time it adds is "
        "mostly attention's (1.0 → 2.5 ms a step on compiled+graphs+fused)."
    )
    table = speed.deterministic_table(figures)
    assert table["cost"].tolist() == ["40.0%", "10.0%"] and table["busy"].tolist() == [
        "92% → 62%",
        "96% → 96%",
    ]


def test_a_target_never_measured_says_so_and_a_skipped_job_is_named(tmp_path):
    skipped = job(
        "vit_b16-256-autotune", status="warm-up timeout", reason="not compiled and warm 265 s after its start"
    )
    write_results(tmp_path, [job("vit_b32-64-graphs", B32_GRAPHS), skipped])
    figures = speed.speed(tmp_path)
    readings = speed.target_readings(figures)
    assert readings[0] == "Not measured." and readings[2] == "Not measured."  # no vit_b16 figure at all
    assert "Never measured: vit_b16-256-autotune (warm-up timeout: not compiled and warm 265 s after its start)." in (
        speed.runs_text(figures)
    )


def test_reports_whose_commit_their_provenance_does_not_name_stop_the_page(tmp_path):
    write_results(tmp_path, [job("vit_b32-64-graphs", B32_GRAPHS)], report_commit="0000000")
    with pytest.raises(ResultsError, match="name commit.s. 0000000 and their provenance records c65f33b"):
        speed.speed(tmp_path)


def test_a_speed_report_without_provenance_stops_the_page(tmp_path):
    write_results(tmp_path, [job("vit_b32-64-graphs", B32_GRAPHS)])
    (tmp_path / "provenance-speed.json").unlink()
    with pytest.raises(ResultsError, match="gpu_speed-x.json was measured on a GPU but no provenance"):
        speed.speed(tmp_path)
    (tmp_path / "none").mkdir()
    assert speed.speed(tmp_path / "none") is None  # no speed report committed: nothing to show, nothing invented


def test_the_committed_second_step_reads_as_issue_28_measured_it():
    """The H200's figures of 2026-12-04 at c65f33b, beside the first check's at f92379e."""
    figures = speed.speed()
    assert figures.commit == "c65f33b" and figures.first.provenance[0]["commit"] == "f92379e"
    first_check = performance.gpu()
    assert not any(b.get("fast_path") for b in first_check.benches)  # the later files stay out of its readings
    table = speed.target_table(figures)
    assert table["measured"].tolist() == ["37.7%", "20.3%", "36.4%", "4.0%", "4"]
    assert table["met"].tolist() == ["missed", "met", "missed", "met", "met"]
    scoring, small_batch, training, determinism, first_seen = speed.target_readings(figures)
    assert scoring.startswith("Missed: 37.7% at an evaluation batch of 1,024 on compiled+graphs+fused (10,607 img/s)")
    assert (
        "against 36.9% at batch 256 in the first check: the larger batch and compiled+graphs+fused add 0.8" in scoring
    )
    assert "The GPU is busy 100% of the time, so the kernels bound it: matmuls 52%" in scoring
    assert "2.05x the compiled path measured beside it (3,707 img/s, 9.9%)" in small_batch
    assert "the GPU is busy 49% of the time, then 99%" in small_batch
    assert training.startswith("Missed: 36.4% at batch 256 on compiled+fused (3,415 img/s)")
    assert "busy 98% of the time, so the kernels bound it: matmuls 49%" in training
    assert "vit_b16-256-autotune: warm-up timeout, not compiled and warm 265 s after its start" in training
    assert determinism.startswith("Met: 4.0% on compiled+graphs+fused (2,924 against 3,046 img/s); 38.1% on compiled")
    assert "the GPU is busy 86%, then 57%: for the other 13.2 ms it waits" in determinism
    assert "swinv2_t trains at 5.8% at batch 64 and 11.0% at batch 256" in first_seen
    assert "`pytest -m gpu tests/test_gpu.py` on the device: 9 passed" in speed.runs_text(figures)
