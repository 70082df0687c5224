"""Simulated run folders: the loop's exact format, marked simulated, at the paper's shape."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, assert_calibration_recomputes

from alvit import metrics, seeds
from alvit.catalog import dataset_shape
from alvit.errors import ConfigError
from alvit.noise import make_noisy_labels
from alvit.profile import load_profile
from alvit.results import MEASURE_COLUMNS, ROUND_COLUMNS, RunFolder, load_runs
from alvit.sweep.simulate import label_signal, simulate_profile

PAPER = REPO / "configs" / "profiles" / "paper.yaml"


@pytest.fixture(scope="module")
def cifar100_slice(tmp_path_factory):
    """Both datasets' runs of one model, rate 0.3, seeds 0-1, every strategy: 2 x 3 x 2 = 12 runs."""
    out = tmp_path_factory.mktemp("sim")
    profile = load_profile(PAPER, ["model=vit_b32", "noise.rate=0.3", "seed=0,1"])
    outcome = simulate_profile(profile, out, test_size=300)
    return profile, out, outcome


def test_every_configuration_gets_a_finished_folder_marked_simulated(cifar100_slice):
    profile, out, outcome = cifar100_slice
    assert sorted(outcome["written"]) == sorted(cfg.run_id for cfg in profile.configs) and not outcome["kept"]
    runs, problems = load_runs(out)
    assert not problems and runs["run_id"].nunique() == 12
    assert runs["finished"].all() and runs["simulated"].all()
    assert set(runs["num_classes"]) == {10, 100} and set(runs["dataset"]) == {"cifar10", "cifar100"}


def test_folders_are_in_the_loops_format_and_every_metric_recomputes(cifar100_slice):
    profile, out, _ = cifar100_slice
    cfg = next(c for c in profile.configs if c.dataset == "cifar100")
    folder = RunFolder(out / cfg.run_id)
    rounds = folder.read_rounds()
    assert list(rounds.columns) == ROUND_COLUMNS + MEASURE_COLUMNS and len(rounds) == cfg.al.rounds + 1
    assert rounds["n_labeled"].tolist() == [1000 * (r + 1) for r in range(11)]
    assert rounds["noise_realized"].iloc[0] == 0.0  # the initial set is clean
    labels = folder.read_test_labels()
    for row in rounds.itertuples():
        recomputed = metrics.evaluate_per_sample(folder.read_predictions(row.round), labels)
        assert recomputed == {name: getattr(row, name) for name in recomputed}
    final = np.load(folder.final_probs)
    assert final.shape == (300, 100) and np.allclose(final.sum(axis=1), 1.0, atol=1e-5)
    config = yaml.safe_load(folder.config.read_text())
    assert config["resolved"]["num_classes"] == 100 and config["resolved"]["gflops_per_image"] > 1
    assert folder.read_env()["simulated"] is True
    assert_calibration_recomputes(folder, cfg.noise.kind, cfg.noise.rate)  # K = 100, as the loop writes it


def test_the_oracle_and_initial_set_are_the_loops_and_never_depend_on_the_strategy(cifar100_slice):
    profile, out, _ = cifar100_slice
    same_oracle = [c for c in profile.configs if c.dataset == "cifar10" and c.seed == 0]
    first_rounds = []
    for cfg in same_oracle:
        queries = RunFolder(out / cfg.run_id).read_queries()
        pool_labels = np.random.default_rng(0).permutation(np.arange(50_000) % 10)
        noisy = make_noisy_labels(pool_labels, 10, "flip", 0.3, seeds.stream(0, "oracle"))
        np.testing.assert_array_equal(queries["oracle_label"], noisy[queries["index"]])
        first_rounds.append(RunFolder(out / cfg.run_id).read_rounds()["noise_realized"].iloc[0])
    assert first_rounds == [0.0] * len(same_oracle)


def test_simulating_again_gives_identical_folders_and_never_overwrites(cifar100_slice, tmp_path):
    profile, out, _ = cifar100_slice
    cfg = profile.configs[0]
    again = simulate_profile(
        load_profile(PAPER, ["model=vit_b32", "noise.rate=0.3", "seed=0,1"]), tmp_path, test_size=300
    )
    assert len(again["written"]) == 12
    pd.testing.assert_frame_equal(
        RunFolder(out / cfg.run_id).read_rounds(), RunFolder(tmp_path / cfg.run_id).read_rounds()
    )
    kept = simulate_profile(profile, out, test_size=300)
    assert not kept["written"] and len(kept["kept"]) == 12


def test_accuracy_falls_to_chance_when_flip_noise_leaves_no_information():
    assert label_signal("flip", 0.9, 10) == 0.0 and label_signal("flip", 0.0, 100) == 1.0
    assert label_signal("pairflip", 0.5, 10) == 0.0 and label_signal("none", 0.8, 10) == 1.0
    assert dataset_shape("cifar100").classes == 100


def test_a_full_size_cifar100_run_folder_stays_under_15_mb(tmp_path):
    """6.6 MB before post-hoc calibration; its held-out logits (400 bytes a held-out sample at K = 100)
    and calibrated test predictions (3 x 12 bytes a test sample) add 6.8 MB over 11 rounds."""
    profile = load_profile(PAPER, ["model=vit_b32", "noise.rate=0.3", "seed=0", "dataset=cifar100", "strategy=random"])
    simulate_profile(profile, tmp_path)
    size = sum(path.stat().st_size for path in (tmp_path / profile.configs[0].run_id).rglob("*") if path.is_file())
    assert size < 15e6, f"{size / 1e6:.1f} MB"


def test_the_command_line_writes_the_folders_and_says_how_to_preview(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alvit.cli",
            "simulate",
            str(PAPER),
            "--out",
            str(tmp_path / "sim"),
            "--test-size",
            "200",
            "--only",
            "model=vit_b16",
            "--only",
            "noise.rate=0.0",
            "--only",
            "seed=0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "simulated 6 runs of profile paper" in result.stdout and "alvit book" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "simulate", "configs/profiles/none.yaml", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("alvit: error: ") and "Traceback" not in bad.stderr


def simulate_cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "alvit.cli", "simulate", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


DEMO = "configs/profiles/demo.yaml"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "{tmp}/file"], "--out {tmp}/file is a file, not a folder"),
        (
            ["--out", "{tmp}/file/sub"],
            "--out {tmp}/file/sub cannot be created: {tmp}/file is a file; choose another path",
        ),
        (
            ["--out", "{tmp}/new", "--test-size", "100000"],
            "--test-size 100000 is more than the 450 test samples of digits in profile demo; choose 1 to 450",
        ),
        (["--out", "{tmp}/new", "--only", "seed=99"], "--only seed=99 matches no configuration"),
    ],
)
def test_an_output_or_filter_simulate_cannot_use_is_one_sentence_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "file").write_text("a file\n")
    result = simulate_cli(DEMO, *(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == 2 and result.stderr.startswith(f"alvit: error: {message.format(tmp=tmp_path)}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "new").exists() and (tmp_path / "file").read_text() == "a file\n"


def test_simulate_shows_a_progress_bar_unless_quiet(tmp_path):
    shown = simulate_cli(
        DEMO, "--out", str(tmp_path / "a"), "--only", "model=vit_nano_p4", "--only", "seed=0", "--test-size", "50"
    )
    assert shown.returncode == 0, shown.stderr
    assert "simulate demo: 100%" in shown.stderr and "12/12" in shown.stderr
    assert shown.stdout.startswith("simulated 12 runs of profile demo")
    quiet = simulate_cli(
        DEMO, "--out", str(tmp_path / "b"), "--only", "model=vit_nano_p4", "--only", "seed=0", "--quiet"
    )
    assert quiet.returncode == 0 and "simulate demo" not in quiet.stderr


def test_labels_from_a_file_are_refused_in_one_sentence(tmp_path):
    np.save(tmp_path / "crowd.npy", np.zeros(50_000, dtype=np.int64))
    (tmp_path / "crowd.yaml").write_text(
        "name: crowd\noutput: runs\nbase:\n  dataset: cifar10\n  al: {initial: 1000, query: 1000, rounds: 1}\n"
        f"  noise: {{kind: labels, labels: {tmp_path / 'crowd.npy'}}}\ngrid:\n  seed: [0, 1]\n"
    )
    with pytest.raises(ConfigError, match="profile crowd has labels from a file .*; leave those out with --only"):
        simulate_profile(load_profile(tmp_path / "crowd.yaml"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
