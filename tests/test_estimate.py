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


def bench_result(
    model="vit_nano_p4", batch=32, eval_batch=None, train=1000.0, score=2000.0, device="cuda", name="Test GPU"
):
    """The fields of an ``alvit bench --json`` file that the estimate reads (vit_nano_p4: 8 px input)."""
    return {
        "model": model,
        "input_size": 8,
        "device": device,
        "device_name": name,
        "batch": batch,
        "eval_batch": eval_batch or batch,
        "train_img_s": train,
        "score_img_s": score,
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
    assert row["source"] == "measured: Test GPU, training at batch 32, scoring at batch 64"
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
        "measured: Test GPU, training at batch 128 (nearest measured to 32), scoring at batch 128 (nearest measured to 256)"
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
        (json.dumps(bench_result(train=None)), "holds no GPU measurement"),  # a failed measurement is null
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


def test_ambiguous_measurements_are_refused_in_one_sentence():
    h100 = throughput.Measurement("m", 8, "H100", 64, 64, 1.0, 1.0, "a.json")
    h200 = throughput.Measurement("m", 8, "H200", 64, 64, 1.0, 1.0, "b.json")
    again = throughput.Measurement("m", 8, "H200", 64, 64, 2.0, 2.0, "c.json")
    with pytest.raises(ConfigError, match="m was measured on H100 and H200; pass --bench with one device's files"):
        throughput.nearest([h100, h200], "m", 8, 64, "train")
    with pytest.raises(ConfigError, match=r"m was measured twice at batch 64 \(b.json, c.json\)"):
        throughput.nearest([h200, again], "m", 8, 64, "train")


def test_the_paper_profile_is_estimated_from_the_h200_where_it_measured(capsys):
    """The committed results: vit_b16 and vit_b32 at batches 64 and 256, vit_l16 at 128 (one NVIDIA H200)."""
    assert main(["sweep", str(PAPER), "--estimate"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "measured: NVIDIA H200, training at batch 64, scoring at batch 256" in lines["vit_b16"]
    assert "measured: NVIDIA H200, training at batch 64, scoring at batch 256" in lines["vit_b32"]
    assert "measured: NVIDIA H200, training at batch 128 (nearest measured to 64)" in lines["vit_l16"]
    for model in ("vit_l32", "swinv2_t", "swinv2_s", "swinv2_b"):
        assert lines[model].endswith("assumed: 200 TFLOP/s")
    hours = {model: float(re.search(r"([\d.]+) h", line).group(1)) for model, line in lines.items()}
    # 180 runs each of 1,320,000 trained and 555,000 scored images, at the H200's rates.
    assert hours["vit_b32"] == pytest.approx(180 * (1_320_000 / 4389.19 + 555_000 / 27415.3) / 3600, abs=0.05)
    assert hours["vit_b16"] == pytest.approx(180 * (1_320_000 / 2606.18 + 555_000 / 10388.3) / 3600, abs=0.05)
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
