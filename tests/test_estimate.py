"""``alvit sweep --estimate``: GPU-hours from the throughput alvit bench measured, where it measured
the model on a GPU, else from FLOPs at the assumed rate; each row says which."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO

from alvit import throughput
from alvit.cli import main
from alvit.errors import ConfigError
from alvit.profile import load_profile
from alvit.sweep.estimate import estimate_gpu_hours

PAPER = REPO / "configs" / "profiles" / "paper.yaml"


GRAPHS = "compiled+graphs+fused"  # the path a run takes on CUDA by default


def bench_result(
    model="vit_nano_p4",
    batch=32,
    eval_batch=None,
    train=1000.0,
    score=2000.0,
    device="cuda",
    name="Test GPU",
    path=GRAPHS,
):
    """The fields of an ``alvit bench --json`` file that the estimate reads (vit_nano_p4: 8 px input)."""
    result = {
        "model": model,
        "input_size": 8,
        "device": device,
        "device_name": name,
        "batch": batch,
        "eval_batch": eval_batch or batch,
        "train_img_s": train,
        "score_img_s": score,
    }
    return result if path is None else {**result, "fast_path": path}


def speed_report(*jobs):
    """A benchmarks/gpu_speed.sh report: jobs with figures where they ran, and a probe and the tests."""
    return {
        "check": "alvit.gpuspeed (issue 28)",
        "jobs": [
            *jobs,
            {"name": "probe", "kind": "probe", "status": "ok", "figures": {"device": "cuda"}},
            {"name": "pytest-gpu", "kind": "pytest", "status": "ok", "summary": "9 passed"},
            {"name": "late", "kind": "bench", "status": "skipped", "reason": "the budget was spent before its turn"},
        ],
    }


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def small_profile(tmp_path, models=("vit_nano_p4",), batch=32, eval_batch=64):
    """digits (pool 1,347, test 450): 100 labels, then 2 rounds of 50, 3 epochs."""
    body = {
        "name": "e",
        "base": {
            "dataset": "digits",
            "al": {"initial": 100, "query": 50, "rounds": 2},
            "train": {"epochs": 3, "batch_size": batch, "eval_batch_size": eval_batch},
        },
        "grid": {"model": list(models)},
    }
    return load_profile(write_json(tmp_path / "p.yaml", body))  # JSON is YAML


# Rounds train on 100, 150 and 200 labels for 3 epochs each; the test set (450) is scored every
# round, the unlabeled pool (1,347 - 100, 1,347 - 150) in every round but the last.
TRAINED = (100 + 150 + 200) * 3  # 1,350 image-epochs
SCORED = 3 * 450 + (1347 - 100) + (1347 - 150)  # 3,794 forward passes


def test_measured_hours_are_trained_images_over_training_rate_plus_scored_images_over_scoring_rate(tmp_path):
    measured = throughput.read_files(
        [
            write_json(tmp_path / "a.json", bench_result(batch=32, train=1000.0, score=500.0)),
            write_json(tmp_path / "b.json", bench_result(batch=64, train=1500.0, score=2000.0)),
        ]
    )
    (row,) = estimate_gpu_hours(small_profile(tmp_path), 200.0, measured)
    # Training at batch 32 from a.json, scoring at batch 64 from b.json.
    assert row["gpu_hours"] == pytest.approx((1350 / 1000.0 + 3794 / 2000.0) / 3600, rel=1e-12)
    assert row["source"] == f"measured: Test GPU, training at batch 32, scoring at batch 64, both on {GRAPHS}"
    # The assumed rate prices the same images: 3 forward passes a trained image, one a scored one.
    per_image = row["gflops_per_image"] * 1e9
    assert row["assumed_gpu_hours"] == pytest.approx((3 * TRAINED + SCORED) * per_image / 200e12 / 3600, rel=1e-9)


def test_a_batch_never_measured_takes_the_nearest_measured_one_and_the_row_says_so(tmp_path):
    measured = throughput.read_files(
        [write_json(tmp_path / "a.json", bench_result(batch=128, train=800.0, score=900.0))]
    )
    (row,) = estimate_gpu_hours(small_profile(tmp_path, batch=32, eval_batch=256), 200.0, measured)
    assert row["gpu_hours"] == pytest.approx((1350 / 800.0 + 3794 / 900.0) / 3600, rel=1e-12)
    assert row["source"] == (
        "measured: Test GPU, training at batch 128 (nearest measured to 32), scoring at batch 128 "
        f"(nearest measured to 256), both on {GRAPHS}"
    )


def test_nearest_is_by_ratio_and_a_tie_takes_the_smaller_batch():
    measured = [throughput.Measurement("m", 8, "G", b, b, float(b), float(b), f"{b}.json") for b in (32, 64, 128)]
    assert [throughput.nearest(measured, "m", 8, b, "train").batch for b in (16, 40, 48, 90, 91, 1000)] == [
        32,  # below every measured batch
        32,  # 40/32 = 1.25 against 64/40 = 1.6
        64,  # 64/48 = 1.33 against 48/32 = 1.5
        64,  # 90/64 = 1.406 against 128/90 = 1.422
        128,  # 91/64 = 1.422 against 128/91 = 1.407
        128,
    ]
    tie = [m for m in measured if m.batch != 64]
    assert throughput.nearest(tie, "m", 8, 64, "train").batch == 32  # 64/32 = 128/64: the smaller, the slower
    assert throughput.nearest(measured, "m", 16, 64, "train") is None  # another input size is another workload
    assert throughput.nearest(measured, "other", 8, 64, "train") is None


def test_a_model_never_measured_on_a_gpu_is_priced_at_the_assumed_rate(tmp_path):
    measured = throughput.read_files([write_json(tmp_path / "a.json", bench_result())])
    cpu = throughput.read(
        write_json(tmp_path / "cpu.json", bench_result(model="vit_mini_p8", device="cpu", name="cpu"))
    )
    assert cpu == []  # a CPU's rate says nothing about GPU-hours
    rows = {
        row["model"]: row
        for row in estimate_gpu_hours(small_profile(tmp_path, ("vit_nano_p4", "vit_mini_p8")), 150.0, measured)
    }
    assert rows["vit_mini_p8"]["source"] == "assumed: 150 TFLOP/s"
    assert rows["vit_mini_p8"]["gpu_hours"] == rows["vit_mini_p8"]["assumed_gpu_hours"]
    assert rows["vit_nano_p4"]["source"].startswith("measured: Test GPU")


def test_without_measurements_the_estimate_is_the_assumed_one():
    rows = estimate_gpu_hours(load_profile(PAPER, ["seed=0", "noise.rate=0.0", "strategy=random"]))
    assert all(r["gpu_hours"] == r["assumed_gpu_hours"] and r["source"] == "assumed: 200 TFLOP/s" for r in rows)


def test_a_gpu_check_report_counts_its_benches(tmp_path):
    report = {"targets": [], "bench": [bench_result(batch=64), bench_result(batch=256, device="cuda:0")]}
    assert [m.batch for m in throughput.read(write_json(tmp_path / "gpu_check.json", report))] == [64, 256]


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "is not a readable JSON file"),
        ('{"model": "vit_b16"}', "holds no alvit bench result"),
        (json.dumps(bench_result(device="cpu")), "holds no GPU measurement"),
        (json.dumps(bench_result(train=None, score=None)), "holds no GPU measurement"),  # failed measurements: null
        (json.dumps(speed_report()), "holds no GPU measurement"),  # a speed report whose benches never ran
        (json.dumps({k: v for k, v in bench_result().items() if k != "input_size"}), "a missing or malformed field"),
        (json.dumps({**bench_result(), "batch": 0}), "must be whole numbers above 0"),
        (json.dumps({**bench_result(), "eval_batch": -1}), "must be whole numbers above 0"),
        (json.dumps({**bench_result(), "input_size": 22.5}), "must be whole numbers above 0"),
        (json.dumps([bench_result()]), "holds no alvit bench result"),
    ],
)
def test_bench_files_that_hold_no_gpu_measurement_are_one_sentence(tmp_path, content, message):
    (tmp_path / "b.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        throughput.read_files([tmp_path / "b.json"])


def test_two_devices_are_refused_in_one_sentence_and_of_two_measurements_of_one_path_the_slower_stands():
    h100 = throughput.Measurement("m", 8, "H100", 64, 64, 1.0, 1.0, "a.json")
    h200 = throughput.Measurement("m", 8, "H200", 64, 64, 2.0, 1.0, "b.json")
    again = throughput.Measurement("m", 8, "H200", 64, 64, 1.5, 3.0, "c.json")
    with pytest.raises(ConfigError, match="m was measured on H100 and H200; pass --bench with one device's files"):
        throughput.nearest([h100, h200], "m", 8, 64, "train")
    assert throughput.nearest([h200, again], "m", 8, 64, "train") is again  # 1.5 img/s against 2: more hours
    assert throughput.nearest([h200, again], "m", 8, 64, "score") is h200


def measured_on(path, batch, train=None, score=None, name="x.json"):
    return throughput.Measurement("m", 8, "G", batch, batch, train, score, name, path)


def test_at_the_nearest_batch_the_runs_path_stands_where_it_was_measured():
    graphs = "compiled+graphs+fused"
    before = measured_on("compiled", 64, train=100.0, score=400.0)
    after = measured_on(graphs, 64, train=200.0)  # timed training only
    far = measured_on(graphs, 512, train=900.0, score=900.0)
    measured = [before, after, far]
    assert throughput.nearest(measured, "m", 8, 64, "train", graphs) is after
    assert throughput.nearest(measured, "m", 8, 64, "train", "compiled") is before
    assert throughput.nearest(measured, "m", 8, 64, "score", graphs) is before  # the run's path: not scored at 64
    assert throughput.nearest(measured, "m", 8, 64, "train", "eager") is before  # neither path: the slower
    assert throughput.nearest([after], "m", 8, 64, "score", graphs) is None  # scoring never measured


def test_a_speed_report_counts_the_benches_that_ran_each_for_what_it_timed(tmp_path):
    graphs = bench_result(batch=64, train=3000.0, score=None)
    scoring = bench_result(batch=64, eval_batch=1024, train=None, score=9000.0, path="compiled")
    path = write_json(
        tmp_path / "gpu_speed.json",
        speed_report(
            {"name": "a", "kind": "bench", "status": "ok", "figures": graphs},
            {"name": "b", "kind": "bench", "status": "ok", "figures": scoring},
        ),
    )
    a, b = throughput.read(path)
    assert (a.train_img_s, a.score_img_s, a.fast_path) == (3000.0, None, "compiled+graphs+fused")
    assert (b.train_img_s, b.score_img_s, b.eval_batch, b.fast_path) == (None, 9000.0, 1024, "compiled")


def test_each_row_names_the_batch_and_path_of_each_rate_and_the_runs_path_where_it_differs(tmp_path):
    graphs = bench_result(batch=32, train=1000.0, score=None)
    compiled = {**bench_result(batch=64, train=600.0, score=2000.0, path=None), "compile": True}  # no path recorded
    measured = throughput.read_files(
        [write_json(tmp_path / "g.json", graphs), write_json(tmp_path / "c.json", compiled)]
    )
    (row,) = estimate_gpu_hours(small_profile(tmp_path, batch=32, eval_batch=64), 200.0, measured)
    assert row["gpu_hours"] == pytest.approx((1350 / 1000.0 + 3794 / 2000.0) / 3600, rel=1e-12)
    assert row["source"] == (
        "measured: Test GPU, training at batch 32 on compiled+graphs+fused, "
        "scoring at batch 64 on compiled (not the run's compiled+graphs+fused)"
    )
    # Micro-batches of 16 (accumulate 2) run without CUDA graphs: the compiled rate stands, at batch 64 the nearest.
    accumulating = load_profile(
        write_json(
            tmp_path / "acc.yaml",
            {
                "name": "e",
                "base": {
                    "dataset": "digits",
                    "al": {"initial": 100, "query": 50, "rounds": 2},
                    "train": {"epochs": 3, "batch_size": 32, "accumulate": 2, "eval_batch_size": 64},
                },
                "grid": {"model": ["vit_nano_p4"]},
            },
        )
    )
    (row,) = estimate_gpu_hours(accumulating, 200.0, measured)
    assert (
        row["source"]
        == "measured: Test GPU, training at batch 32 (nearest measured to 16) on compiled+graphs+fused (not the run's compiled+fused), scoring at batch 64 on compiled (not the run's compiled+fused)"
    )


def test_the_paper_profile_is_estimated_from_the_h200_where_it_measured(capsys):
    """The committed results: the first check (vit_b16, vit_b32 at 64 and 256; vit_l16 at 128) and the
    second step (swinv2_t and vit_l32 at 64 and 256; CUDA graphs, the run's path, where measured)."""
    assert main(["sweep", str(PAPER), "--estimate"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    graphs, compiled = "compiled+graphs+fused", "on compiled (not the run's compiled+graphs+fused)"
    assert f"measured: NVIDIA H200, training at batch 64, scoring at batch 256, both on {graphs}" in lines["vit_b16"]
    assert f"training at batch 64 on {graphs}, scoring at batch 256 {compiled}" in lines["vit_b32"]
    assert (
        f"training at batch 128 (nearest measured to 64), scoring at batch 128 (nearest measured to 256), both {compiled}"
        in lines["vit_l16"]
    )
    for model in ("swinv2_t", "vit_l32"):
        assert lines[model].endswith(f"training at batch 64, scoring at batch 256, both {compiled}")
    for model in ("swinv2_s", "swinv2_b"):
        assert lines[model].endswith("assumed: 200 TFLOP/s")
    hours = {model: float(re.search(r"([\d.]+) h", line).group(1)) for model, line in lines.items()}
    # 180 runs each of 1,320,000 trained and 555,000 scored images, at the H200's rates: vit_b16 trains at
    # the slower of its two measurements with CUDA graphs at batch 64 (3,046 and 3,091 img/s).
    assert hours["vit_b32"] == pytest.approx(180 * (1_320_000 / 7610.08 + 555_000 / 27415.3) / 3600, abs=0.05)
    assert hours["vit_b16"] == pytest.approx(180 * (1_320_000 / 3046.41 + 555_000 / 10367.78) / 3600, abs=0.05)
    assert hours["swinv2_t"] == pytest.approx(180 * (1_320_000 / 1600.02 + 555_000 / 10464.29) / 3600, abs=0.05)
    assert "(308.6 h at an assumed 200 TFLOP/s throughout)" in lines["total"]


def test_bench_files_given_replace_the_committed_ones(tmp_path, capsys):
    given = write_json(tmp_path / "b.json", {**bench_result(model="vit_b32", batch=64), "input_size": 224})
    only = ["--only", "model=vit_b32,vit_b16", "--only", "seed=0", "--only", "noise.rate=0.0"]
    assert main(["sweep", str(PAPER), "--estimate", "--bench", str(given), *only]) == 0
    out = capsys.readouterr().out
    assert "training at batch 64, scoring at batch 64 (nearest measured to 256)" in out
    assert re.search(r"vit_b16 .* assumed: 200 TFLOP/s", out)


def test_bad_bench_arguments_are_one_sentence(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(PAPER), "--estimate", "--bench"])
    assert exit_.value.code == 2 and "argument --bench: expected at least one argument" in capsys.readouterr().err
    assert main(["sweep", str(PAPER), "--estimate", "--only", "model=vit_b32", "--bench", "/no/such.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("alvit: error: /no/such.json is not a readable JSON file") and err.count("\n") == 1


def linear_profile(tmp_path, dataset="cifar10", mode="linear"):
    """A frozen ViT-B/16 (D 768): 1,000 labels, then 2 rounds of 1,000, 10 epochs; 2 strategies."""
    body = {
        "name": "lin",
        "base": {
            "dataset": dataset,
            "model": "vit_b16",
            "pretrained": True,
            "al": {"initial": 1000, "query": 1000, "rounds": 2},
            "train": {"mode": mode, "epochs": 10},
        },
        "grid": {"strategy": ["random", "entropy"]},
    }
    return load_profile(write_json(tmp_path / "lin.yaml", body))


HEADS = [
    throughput.HeadCost(768, 10, 0.002, 1e-5, 1e-6, "CPU X", "/b/linear_heads.json"),
    throughput.HeadCost(1024, 100, 0.003, 2e-5, 3e-6, "CPU X", "/b/linear_heads.json"),
]


def test_linear_rows_give_the_heads_cpu_hours_from_the_measured_cost_of_an_epoch_and_a_scored_image(tmp_path):
    [row] = estimate_gpu_hours(linear_profile(tmp_path), heads=HEADS)
    # Rounds train on 1,000, 2,000 and 3,000 labels for 10 epochs; the test set (10,000) is scored every
    # round, the unlabeled pool (50,000 - 1,000, 50,000 - 2,000) in every round but the last.
    epochs = 10 * (3 * 0.002 + 1e-5 * (1000 + 2000 + 3000))
    scored = 1e-6 * (3 * 10_000 + 49_000 + 48_000)
    assert row["cpu_hours"] == pytest.approx(2 * (epochs + scored) / 3600, rel=1e-12)
    assert row["cpu_source"] == "measured on CPU X, 1 thread, at D 768 x K 10 (linear_heads.json), every epoch budgeted"
    [hundred] = estimate_gpu_hours(linear_profile(tmp_path, "cifar100"), heads=HEADS)  # K 100 measured at D 1024 only
    assert hundred["cpu_source"].startswith("measured on CPU X, 1 thread, at D 1024 x K 100 for D 768 x K 100 (")
    [finetuned] = estimate_gpu_hours(linear_profile(tmp_path, mode="finetune"), heads=HEADS)
    assert finetuned["cpu_hours"] is None and finetuned["cpu_source"] is None
    [unmeasured] = estimate_gpu_hours(linear_profile(tmp_path), heads=[])
    assert unmeasured["cpu_hours"] is None


def test_the_linear_profiles_estimate_prints_the_heads_cpu_time_from_the_committed_measurement(capsys):
    only = ["--only", "model=vit_b16", "--only", "seed=0", "--only", "noise.rate=0.0"]
    assert main(["sweep", str(REPO / "configs/profiles/paper-linear.yaml"), "--estimate", *only]) == 0
    out = capsys.readouterr().out
    [cpu] = [line for line in out.splitlines() if "heads on a CPU" in line and "measured on" in line]
    cost = throughput.nearest_head(throughput.head_costs(), 768, 10)
    assert f"measured on {cost.cpu}, 1 thread, at D 768 x K 10 and D 768 x K 100 (linear_heads.json)" in cpu
    assert re.search(r"linear heads on a CPU, one thread a run: [\d.]+ h \(core-hours; [\d.]+ h on 2 cores\)", out)
