"""The GPU speed check's driver (alvit.gpuspeed): jobs compile at once and are timed one at a
time, in priority order, alone (the others stopped meanwhile); late, failed and over-budget jobs
are recorded, never waited for past their limits; the report states each target plainly.
Fake jobs (small Python scripts) stand in for the benches."""

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO

from alvit import gpuspeed
from alvit.gpuspeed import Job, Scheduler

# A bench's protocol without the bench: warm for WARM seconds (writing a heartbeat every 20 ms),
# hold, and after the go take TURN seconds, then write its figures with the times it saw.
FAKE_BENCH = r"""
import json, pathlib, sys, time
args = sys.argv[1:]
warm, turn = float(args[0]), float(args[1])
out = pathlib.Path(args[args.index("--json") + 1])
hold = pathlib.Path(args[args.index("--hold") + 1])
start = time.time()
with open(str(out) + ".beats", "a") as beats:
    while time.time() - start < warm:
        beats.write(f"{time.time()}\n")
        beats.flush()
        time.sleep(0.02)
hold.mkdir(parents=True, exist_ok=True)
(hold / "ready").write_text("{}")
while not (hold / "go").exists():
    time.sleep(0.02)
went = time.time()
time.sleep(turn)
out.write_text(json.dumps({"model": "fake", "batch": 64, "go": went, "done": time.time()}))
"""


def fake_bench(name, warm, turn=0.2):
    return Job(name, ("-c", FAKE_BENCH, str(warm), str(turn)), "bench")


def run(tmp_path, jobs, **settings):
    lines = []
    scheduler = Scheduler(tmp_path, settings.pop("budget_s", 60.0), say=lines.append, **settings)
    records = scheduler.run(jobs)
    assert all(entry.process.poll() is not None for entry in scheduler.ended.values())  # nothing left running
    return {r["name"]: r for r in gpuspeed.collect(records, tmp_path)}, lines


def beats(tmp_path, name):
    path = tmp_path / f"{name}.json.beats"
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def test_jobs_are_timed_in_priority_order_alone_while_the_others_are_stopped(tmp_path):
    jobs = [fake_bench("first", warm=1.0, turn=0.8), fake_bench("second", warm=0.1, turn=0.8), fake_bench("late", 4.0)]
    records, _ = run(tmp_path, jobs, concurrent=3)
    assert [records[name]["status"] for name in ("first", "second", "late")] == ["ok", "ok", "ok"]
    first, second = records["first"]["figures"], records["second"]["figures"]
    assert first["go"] < second["go"]  # priority order, though the second was warm first
    for turn in (first, second):  # "late" was still warming up: stopped during both turns
        assert not [t for t in beats(tmp_path, "late") if turn["go"] + 0.1 < t < turn["done"] - 0.1]
    assert records["first"]["warm_s"] >= 0.9 and records["first"]["turn_s"] >= 0.8


def test_a_job_not_warm_in_time_or_ending_early_is_recorded_and_the_rest_run(tmp_path):
    exits = Job("exits", ("-c", "import sys; sys.exit(3)"), "bench")
    jobs = [fake_bench("slow", warm=60), exits, fake_bench("fine", warm=0.1)]
    records, lines = run(tmp_path, jobs, warm_limit_s=1.5)
    assert records["slow"]["status"] == "warm-up timeout" and "after its start" in records["slow"]["reason"]
    assert records["exits"]["status"] == "failed" and "exited with 3" in records["exits"]["reason"]
    assert records["fine"]["status"] == "ok" and "gpu_speed: slow: warm-up timeout" in "\n".join(lines)
    assert "log_tail" in records["exits"] and "log_tail" not in records["fine"]


def test_a_turn_that_runs_past_its_limit_is_stopped(tmp_path):
    stuck = Job("stuck", ("-c", FAKE_BENCH, "0.1", "60"), "bench", turn_limit_s=0.5)
    records, _ = run(tmp_path, [stuck, fake_bench("next", warm=0.1)])
    assert records["stuck"]["status"] == "timeout" and records["stuck"]["turn_s"] < 5
    assert records["next"]["status"] == "ok"


def test_jobs_past_the_budget_are_skipped(tmp_path):
    jobs = [fake_bench("quick", warm=0.1), fake_bench("never", warm=60), fake_bench("after", warm=0.1)]
    records, _ = run(tmp_path, jobs, budget_s=3.0, turn_reserve_s=1.0, concurrent=1)
    assert records["quick"]["status"] == "ok"
    assert records["never"]["status"] == "warm-up timeout"  # waited for until the budget less its reserve
    assert records["after"]["status"] == "skipped" and "budget" in records["after"]["reason"]


def test_the_probe_starts_at_its_turn_and_the_tests_run_beside_the_benches(tmp_path):
    probe = Job(
        "probe", ("-c", "import json, sys; open(sys.argv[2], 'w').write(json.dumps({'x': 1}))"), "probe", early=False
    )
    tests = Job("pytest-gpu", ("-c", "print('3 passed in 1.00s')"), "pytest", exclusive=False)
    records, lines = run(tmp_path, [fake_bench("bench", 0.1), probe, tests])
    assert [r["status"] for r in records.values()] == ["ok", "ok", "ok"]
    assert records["probe"]["figures"] == {"x": 1} and records["pytest-gpu"]["summary"] == "3 passed in 1.00s"
    assert lines.index("gpu_speed: probe: started") > lines.index("gpu_speed: bench: ok")


def test_an_interruption_keeps_the_finished_records_and_stops_the_rest(tmp_path, monkeypatch):
    jobs = [fake_bench("done", warm=0.1), fake_bench("interrupted", warm=30)]
    scheduler = Scheduler(tmp_path, 60.0, say=lambda line: None)
    turn = Scheduler._turn

    def interrupted_at_the_second(self, job, all_jobs):
        if job.name == "interrupted":
            raise KeyboardInterrupt
        return turn(self, job, all_jobs)

    monkeypatch.setattr(Scheduler, "_turn", interrupted_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        scheduler.run(jobs)
    assert [record["name"] for record in scheduler.records] == ["done"] and not scheduler.running
    assert all(entry.process.poll() is not None for entry in scheduler.ended.values())


def test_a_terminated_check_still_writes_its_report(tmp_path):
    import signal

    check = subprocess.Popen(
        [sys.executable, "-m", "alvit.gpuspeed", str(tmp_path / "out"), "--small"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "gpu_speed.log").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # its jobs have started
    check.send_signal(signal.SIGTERM)
    output, _ = check.communicate(timeout=300)
    report = json.loads((tmp_path / "out" / "gpu_speed.json").read_text())
    assert check.returncode == 1 and report["stopped_early"] == "terminated (exit 143)", output[-2000:]
    assert "gpu_speed: stopped early: terminated (exit 143)" in output


def test_a_nice_job_compiles_on_what_cpu_the_others_leave(tmp_path):
    script = "import json, os, sys; open(sys.argv[2], 'w').write(json.dumps({'nice': os.nice(0)}))"
    records, _ = run(tmp_path, [Job("niced", ("-c", script), "probe", nice=5), Job("plain", ("-c", script), "probe")])
    assert records["niced"]["figures"]["nice"] == os.nice(0) + 5 and records["plain"]["figures"]["nice"] == os.nice(0)


def figures(model, batch, **values):
    base = {"model": model, "batch": batch, "train_img_s": None, "mfu": None, "score_mfu": None}
    return {"kind": "bench", "status": "ok", "figures": {**base, **values}}


def test_targets_take_the_best_measured_value_and_say_not_measured_otherwise():
    records = [
        {"name": "b16-score", **figures("vit_b16", 64, score_mfu=0.52)},
        {"name": "b16-256", **figures("vit_b16", 256, mfu=0.38, train_img_s=3500.0)},
        {"name": "b16-det", **figures("vit_b16", 64, mfu=0.3, deterministic_cost=0.15)},
        {"name": "b32-64", **figures("vit_b32", 64, mfu=0.19)},
        {"name": "b32-256", **figures("vit_b32", 256, mfu=0.26)},  # not batch 64: no part in its target
        {"name": "swin", **figures("swinv2_t", 64, train_img_s=900.0)},
        {"name": "l32", **figures("vit_l32", 256, train_img_s=None)},  # failed to time: not measured
    ]
    got = {t["target"].split(" (")[0]: (t["value"], t["met"], t["job"]) for t in gpuspeed.targets(records)}
    assert got == {
        "vit_b16 scoring MFU": (0.52, True, "b16-score"),
        "vit_b32 training MFU at batch 64": (0.19, False, "b32-64"),
        "vit_b16 training MFU": (0.38, False, "b16-256"),
        "cost of train.deterministic": (0.15, True, "b16-det"),
        "swinv2_t and vit_l32 measured at batch 64 and 256": (1, False, None),
    }
    assert all(t["value"] is None and t["met"] is None for t in gpuspeed.targets([])[:4])


def test_provenance_names_the_commit_given_where_the_copy_has_no_git(monkeypatch):
    monkeypatch.setenv("ALVIT_COMMIT", "0123abc")
    record = gpuspeed.provenance()
    assert (record["commit"], record["commit_from"]) == ("0123abc", "ALVIT_COMMIT") and record["date"].endswith("Z")


@pytest.mark.parametrize(
    "arguments, environment, message",
    [
        (["--only", "nonsense"], {}, "--only: no job 'nonsense'; valid names are vit_nano_p4-16,"),
        (["--budget", "0"], {}, "argument --budget: must be a number above 0"),
        (["--budget", "nan"], {}, "argument --budget: must be a number above 0"),
        (["--seconds", "-1"], {}, "argument --seconds: must be a number above 0"),
        ([], {"ALVIT_SPEED_BUDGET_S": "inf"}, "ALVIT_SPEED_BUDGET_S must be a number above 0"),
    ],
)
def test_bad_choices_stop_before_anything_runs(tmp_path, arguments, environment, message):
    result = subprocess.run(
        [sys.executable, "-m", "alvit.gpuspeed", str(tmp_path / "out"), "--small", *arguments],
        cwd=REPO,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_speed_check_runs_end_to_end_on_a_cpu_in_small_mode(tmp_path):
    env = {**os.environ, "ALVIT_SPEED_SMALL": "1", "PYTHON": sys.executable, "ALVIT_COMMIT": "cafe123"}
    began = time.monotonic()
    result = subprocess.run(
        ["bash", "benchmarks/gpu_speed.sh", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu_speed.json", "gpu_speed.log"]
    report = json.loads((tmp_path / "out" / "gpu_speed.json").read_text())
    assert report["provenance"]["commit"] == "cafe123" and report["seconds"] < time.monotonic() - began
    assert {r["name"]: r["status"] for r in report["jobs"]} == dict.fromkeys(report["settings"]["jobs"], "ok")
    bench = next(r["figures"] for r in report["jobs"] if r["name"] == "vit_nano_p4-16-deterministic")
    assert bench["deterministic_train_img_s"] > 0 and bench["deterministic_nan_fill_train_img_s"] > 0
    assert bench["kernels"]["train_img_s"]["wall_ms"] > 0
    probe = next(r["figures"] for r in report["jobs"] if r["name"] == "probe")
    assert probe["deterministic"]["inductor_deterministic"] in (True, False, None)
    assert result.stdout.rstrip().splitlines()[-1].startswith("  swinv2_t and vit_l32 measured")  # the table is last


def test_the_probe_reports_each_mode_and_an_unavailable_measurement_as_its_reason(monkeypatch):
    import torch

    from alvit import gpuprobe

    def broken(device, dtype):
        raise ValueError("no such convolution here")

    monkeypatch.setattr(gpuprobe, "_patch_embedding_ms", broken)
    result = gpuprobe.probe(torch.device("cpu"))
    for mode in ("default", "deterministic"):
        figures = result[mode]
        assert figures["patch_embedding_ms"] == "ValueError: no such convolution here"
        assert isinstance(figures["attention_ms"]["MATH"], float) and figures["attention_ms"]["MATH"] > 0
        assert figures["attention_ms"]["CUDNN_ATTENTION"].startswith("RuntimeError")  # none on a CPU
        assert figures["sdpa_choice"] in gpuprobe.BACKENDS
    assert not torch.are_deterministic_algorithms_enabled()  # the deterministic mode was left again


def test_every_job_keeps_the_path_it_was_measured_on_at_c65f33b():
    """CUDA graphs became the default after c65f33b: a job that ran without them says --no-graphs."""
    recorded = json.loads((REPO / "benchmarks" / "results" / "gpu_speed-h200-2026-12-04-check.json").read_text())
    paths = {
        j["name"]: j["figures"]["fast_path"] for j in recorded["jobs"] if j["kind"] == "bench" and j.get("figures")
    }
    for job in gpuspeed.full_jobs():
        if job.kind != "bench":
            continue
        assert ("--graphs" in job.argv) != ("--no-graphs" in job.argv), job.name
        if job.name in paths:
            assert ("--graphs" in job.argv) == ("graphs" in paths[job.name]), job.name
