"""The active-learning loop: run folder contents, determinism, resume, and refusals."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY, assert_calibration_recomputes, initial_set_by_definition, oracle_by_definition, oracle_stream

from alvit import metrics
from alvit.config import load_config
from alvit.errors import ConfigError, ResultsError, TrainingError
from alvit.loop import run_experiment
from alvit.results import MEASURE_COLUMNS, ROUND_COLUMNS, TIME_COLUMNS, RunFolder


def without_times(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIME_COLUMNS)


def assert_same_run(a, b):
    fa, fb = RunFolder(a), RunFolder(b)
    pd.testing.assert_frame_equal(without_times(fa.read_rounds()), without_times(fb.read_rounds()))
    qa, qb = fa.read_queries(), fb.read_queries()
    for name in qa:
        np.testing.assert_array_equal(qa[name], qb[name])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from alvit.config import load_config

    cfg = load_config(None, TINY)
    return cfg, run_experiment(cfg, tmp_path_factory.mktemp("runs") / "a", progress=False)


def test_run_folder_holds_config_rounds_queries_env_and_predictions(finished_run):
    _cfg, path = finished_run
    folder = RunFolder(path)
    rounds = folder.read_rounds()
    assert list(rounds.columns) == ROUND_COLUMNS + MEASURE_COLUMNS
    assert rounds["round"].tolist() == [0, 1, 2]
    assert rounds["n_labeled"].tolist() == [40, 60, 80]
    assert rounds["noise_realized"].iloc[0] == 0.0  # the initial set is clean
    assert rounds["n_queried"].tolist() == [20, 20, 0]
    saved = yaml.safe_load(folder.config.read_text())
    assert saved["resolved"]["timm_name"] == "vit_tiny_patch16_224" and saved["noise"]["rate"] == 0.3
    env = yaml.safe_load(folder.env.read_text())
    assert {"torch", "timm", "device", "git_commit"} <= set(env)
    assert env["compile"] is False and env["fused_attn"] is True  # on a CPU: eager, timm's fused attention
    assert env["cuda_graphs"] is False and env["fused_preprocess"] is False


def test_saved_predictions_reproduce_every_metric(finished_run):
    _, path = finished_run
    folder = RunFolder(path)
    labels = folder.read_test_labels()
    rounds = folder.read_rounds()
    for row in rounds.itertuples():
        recomputed = metrics.evaluate_per_sample(folder.read_predictions(row.round), labels)
        assert recomputed == {name: getattr(row, name) for name in recomputed}
    final = np.load(folder.final_probs)  # the full probabilities are kept for the last round
    assert final.shape == (len(labels), 10)
    assert rounds["ece"].iloc[-1] == pytest.approx(metrics.ece(final, labels), abs=1e-12)
    assert rounds["brier"].iloc[-1] == pytest.approx(metrics.brier(final, labels), abs=1e-12)


def test_each_rounds_held_out_split_and_calibrated_predictions_reproduce_its_calibration_columns(finished_run):
    cfg, path = finished_run
    assert_calibration_recomputes(RunFolder(path), cfg.noise.kind, cfg.noise.rate)


def test_queries_come_from_the_unlabeled_pool_and_the_fixed_noisy_oracle(finished_run):
    cfg, path = finished_run
    queries = RunFolder(path).read_queries()
    from alvit.data import load_dataset

    data = load_dataset("digits")
    # The oracle and the initial set as the book defines them, written out with numpy in conftest
    noisy = oracle_by_definition(data.train_labels, 10, cfg.noise.kind, cfg.noise.rate, oracle_stream(cfg.seed))
    initial = initial_set_by_definition(len(data.train_labels), cfg.al.initial, cfg.seed)
    assert len(np.unique(queries["index"])) == len(queries["index"]) == 40
    assert not set(queries["index"]) & set(initial)
    np.testing.assert_array_equal(queries["oracle_label"], noisy[queries["index"]])
    np.testing.assert_array_equal(queries["true_label"], data.train_labels[queries["index"]])
    rounds = RunFolder(path).read_rounds()
    labeled_noise = np.mean(queries["oracle_label"] != queries["true_label"]) * 40 / 80
    assert rounds["noise_realized"].iloc[-1] == pytest.approx(labeled_noise)


def test_same_seed_same_results(finished_run, tmp_path):
    cfg, path = finished_run
    assert_same_run(path, run_experiment(cfg, tmp_path / "b", progress=False))


def test_a_finished_run_is_not_redone(finished_run):
    cfg, path = finished_run
    before = RunFolder(path).rounds.stat().st_mtime_ns
    start = time.monotonic()
    run_experiment(cfg, path, progress=False)
    assert RunFolder(path).rounds.stat().st_mtime_ns == before and time.monotonic() - start < 5


def run_until_round_1_is_almost_saved(cfg, path, monkeypatch):
    """Run ``cfg`` and crash just before round 1's row is written (its queries already are)."""
    real_write, calls = RunFolder.write_rounds, {"n": 0}

    def crash_on_second_round(self, table):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_write(self, table)

    with monkeypatch.context() as patch:
        patch.setattr(RunFolder, "write_rounds", crash_on_second_round)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, path, progress=False)


def test_interrupted_run_resumes_to_the_same_result(finished_run, tmp_path, monkeypatch):
    """A crash after round 1's queries were saved but before its row: resume redoes round 1."""
    cfg, path = finished_run
    run_until_round_1_is_almost_saved(cfg, tmp_path / "c", monkeypatch)
    assert len(RunFolder(tmp_path / "c").read_rounds()) == 1
    assert (RunFolder(tmp_path / "c").read_queries()["round"] == 2).any()  # stale queries on disk
    run_experiment(cfg, tmp_path / "c", progress=False)
    assert_same_run(path, tmp_path / "c")


def test_run_killed_with_sigkill_resumes_to_the_same_result(tmp_path):
    """The real thing: `alvit run` killed with -9 part-way, then the same command again."""
    args = [sys.executable, "-m", "alvit.cli", "run", "configs/demo.yaml", "--quiet", "--out"]
    extra = [arg for item in TINY + ["al.rounds=4", "train.epochs=6"] for arg in ("--set", item)]
    from conftest import REPO

    # The uninterrupted reference runs in this process (the same code, without a second torch import).
    run_experiment(
        load_config(REPO / "configs" / "demo.yaml", TINY + ["al.rounds=4", "train.epochs=6"]),
        tmp_path / "whole",
        progress=False,
    )
    killed = subprocess.Popen(
        args + [str(tmp_path / "killed")] + extra, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    rounds = tmp_path / "killed" / "rounds.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (rounds.exists() and len(rounds.read_text().splitlines()) >= 3):
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    finished_at_kill = len(RunFolder(tmp_path / "killed").read_rounds())
    assert 2 <= finished_at_kill < 5, "the run should have been killed part-way"
    subprocess.run(args + [str(tmp_path / "killed")] + extra, cwd=REPO, check=True, capture_output=True)
    assert_same_run(tmp_path / "whole", tmp_path / "killed")


def test_warm_start_resumes_from_the_saved_weights(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config("al.warm_start=true")
    whole = run_experiment(cfg, tmp_path / "whole", progress=False)
    run_until_round_1_is_almost_saved(cfg, tmp_path / "part", monkeypatch)
    run_experiment(cfg, tmp_path / "part", progress=False)
    assert_same_run(whole, tmp_path / "part")


def test_another_configuration_in_the_same_folder_is_refused(finished_run, tiny_config):
    _, path = finished_run
    with pytest.raises(
        ConfigError, match=r"holds a run of another configuration \(differs in: noise.rate, train.epochs\)"
    ):
        run_experiment(tiny_config("noise.rate=0.5", "train.epochs=4"), path, progress=False)


def test_a_run_is_the_same_run_on_another_device_or_eval_batch(finished_run, tiny_config):
    """device and train.eval_batch_size change how a run is computed, not its results."""
    _, path = finished_run
    before = RunFolder(path).rounds.stat().st_mtime_ns
    run_experiment(
        tiny_config("device=cuda:1", "train.eval_batch_size=7"), path, progress=False
    )  # finished: no CUDA needed
    assert RunFolder(path).rounds.stat().st_mtime_ns == before


def test_corrupt_rounds_file_is_reported_and_left_as_it_is(finished_run, tmp_path):
    cfg, path = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    (copy / "rounds.csv").write_text("round,this is not\n\x00\x01 what alvit wrote")
    with pytest.raises(ResultsError, match="rounds.csv .*restore it or move the folder away"):
        run_experiment(cfg, copy, progress=False)
    assert (copy / "rounds.csv").read_text().startswith("round,this is not")


def test_budget_larger_than_the_pool_stops_before_training(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="larger than the pool of 1347"):
        run_experiment(tiny_config("al.initial=1000", "al.query=200", "al.rounds=2"), tmp_path / "x", progress=False)
    assert not (tmp_path / "x" / "rounds.csv").exists()


@pytest.mark.parametrize(
    "extra, smoothing",
    [
        (["strategy=gci_vital"], 0.1),
        (["strategy=entropy"], 0.0),
        (["strategy=gci_vital", "train.label_smoothing=0.3"], 0.3),
    ],
)
def test_training_gets_the_configs_resolved_label_smoothing(tiny_config, tmp_path, monkeypatch, extra, smoothing):
    seen = []

    def spy(model, images, labels, cfg, *args, **kwargs):
        seen.append(cfg.label_smoothing)
        raise KeyboardInterrupt  # enough: stop before any training

    monkeypatch.setattr("alvit.loop.fit", spy)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_config(*extra), tmp_path / "run", progress=False)
    assert seen == [smoothing]


def test_a_diverging_run_fails_naming_the_round_and_records_no_row(tiny_config, tmp_path):
    with pytest.raises(TrainingError, match=r"^round 0/2, epoch 1: the training loss is nan"):
        run_experiment(tiny_config("train.lr=1e30", "train.grad_clip=0"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "rounds.csv").exists()
