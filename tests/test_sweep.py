"""Sweeps: profiles expand to validated grids, slice with --only, choose their pages, refuse stale
runs, move simulated previews aside and train the real runs, survive failing and hung runs, and run
every configuration once however many sweeps run."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import REPO, TINY

from alvit.book.pages import notebook_parameters
from alvit.config import dump_yaml, flatten, with_overrides
from alvit.errors import ConfigError
from alvit.profile import SlurmSettings, load_profile
from alvit.results import ROUND_COLUMNS, RunFolder, load_runs
from alvit.sweep.estimate import estimate_gpu_hours
from alvit.sweep.run import SweepOptions, plan, run_sweep, set_aside
from alvit.sweep.simulate import simulate_profile
from alvit.sweep.status import sweep_status
from alvit.sweep.task import record_failure
from alvit.sweep.workers import make_slots

PROFILES = REPO / "configs" / "profiles"


def test_demo_profile_is_two_models_four_rates_three_strategies_three_seeds():
    profile = load_profile(PROFILES / "demo.yaml")
    assert len(profile.configs) == 2 * 4 * 3 * 3
    assert {cfg.strategy for cfg in profile.configs} == {"random", "entropy", "gci_vital"}
    assert len({cfg.seed for cfg in profile.configs}) >= 3  # the floor for a stable spread
    assert len({cfg.run_id for cfg in profile.configs}) == 72  # one folder each


def test_paper_profile_is_the_full_grid_of_the_study():
    profile = load_profile(PROFILES / "paper.yaml")
    assert len(profile.configs) == 7 * 2 * 10 * 3 * 3
    first = profile.configs[0]
    assert first.pretrained and (first.al.initial, first.al.query, first.al.rounds) == (1000, 1000, 10)
    assert (first.train.lr, first.train.epochs, first.train.patience) == (1e-4, 20, 3)


def test_only_slices_the_grid_for_one_machine():
    profile = load_profile(PROFILES / "paper.yaml", ["model=vit_b16,vit_l32", "seed=0", "dataset=cifar10"])
    assert len(profile.configs) == 2 * 10 * 3
    assert {cfg.model for cfg in profile.configs} == {"vit_b16", "vit_l32"}


def test_only_given_twice_for_one_key_keeps_either_value():
    profile = load_profile(PROFILES / "demo.yaml", ["seed=0", "seed=1", "model=vit_nano_p4"])
    assert {cfg.seed for cfg in profile.configs} == {0, 1} and len(profile.configs) == 4 * 3 * 2


@pytest.mark.parametrize(
    "only, message",
    [
        (["model"], "not of the form key=value"),
        (["colour=red"], "--only key 'colour' is not a config key"),
        (["seed=99"], r"--only seed=99 matches no configuration of profile .*demo.yaml; its seed values are: 0, 1, 2$"),
        (
            ["model=nosuch"],
            "--only model=nosuch matches no configuration .*; its model values are: vit_nano_p4, vit_mini_p8$",
        ),
        (["dataset=cifar10"], "--only dataset=cifar10 matches no configuration .*; its dataset values are: digits$"),
    ],
)
def test_bad_only_filters_are_one_sentence(only, message):
    with pytest.raises(ConfigError, match=message):
        load_profile(PROFILES / "demo.yaml", only)


def test_bad_profiles_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grids: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'grids'"):
        load_profile(bad)
    bad.write_text("grid:\n  model: [vit_nope]\n")
    with pytest.raises(ConfigError, match="model 'vit_nope' is not known"):
        load_profile(bad)
    bad.write_text("grid:\n  model: [vit_b16\n  seed: {\n")
    with pytest.raises(ConfigError, match=r"profile .*bad.yaml is not valid YAML \(line \d+, column \d+\)"):
        load_profile(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping of the keys base, "):
        load_profile(bad)


def test_notebook_parameters_reproduce_the_configuration_exactly(tmp_path):
    from alvit.book.notebook import config_from_parameters

    cfg = load_profile(PROFILES / "demo.yaml").configs[7]
    params = notebook_parameters(cfg, tmp_path)
    rebuilt = config_from_parameters(
        params["CONFIG"],
        params["SETTINGS"],
        **{k: params[k] for k in params if k not in ("CONFIG", "SETTINGS", "RUN_DIR")},
    )
    assert rebuilt == cfg


def test_gpu_hours_scale_with_flops():
    rows = {
        row["model"]: row
        for row in estimate_gpu_hours(
            load_profile(PROFILES / "paper.yaml", ["seed=0", "dataset=cifar10", "noise.rate=0.0", "strategy=random"])
        )
    }
    assert rows["vit_l16"]["gflops_per_image"] / rows["vit_l32"]["gflops_per_image"] == pytest.approx(4.0, rel=0.1)
    assert rows["vit_l16"]["gpu_hours"] > rows["vit_b16"]["gpu_hours"] > rows["vit_b32"]["gpu_hours"] > 0


def write_profile(tmp_path, grid, pages="all", base=None, **extra):
    """A profile of TINY runs (digits, vit_nano_p4, 3 rounds; ``base`` over them) over ``grid``, output in tmp_path/runs."""
    settings = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in TINY)}
    tree: dict = {}
    for key, value in {**settings, **flatten(base or {})}.items():
        node = tree
        for part in key.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[key.split(".")[-1]] = value
    path = tmp_path / "profile.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "t", "output": str(tmp_path / "runs"), "base": tree, "grid": grid, "pages": pages, **extra}
        )
    )
    return path


def fake_finished_run(output, cfg, page=True):
    """A run folder as the loop leaves it after its last round (config.yaml, rounds.csv), and its page."""
    folder = RunFolder(output / cfg.run_id)
    folder.path.mkdir(parents=True)
    folder.config.write_text(dump_yaml(cfg, {"device": "cpu"}))
    folder.write_rounds(
        pd.DataFrame(0.0, index=range(cfg.al.rounds + 1), columns=ROUND_COLUMNS).assign(round=range(cfg.al.rounds + 1))
    )
    if page:
        (output / f"{cfg.run_id}.ipynb").write_text("{}")


def test_the_demo_profile_pages_seed_0_and_the_paper_profile_48_runs():
    demo = load_profile(PROFILES / "demo.yaml")
    assert sum(map(demo.wants_page, demo.configs)) == len(demo.configs) // 3
    assert all(cfg.seed == 0 for cfg in demo.configs if demo.wants_page(cfg))
    paper = load_profile(PROFILES / "paper.yaml")
    assert sum(map(paper.wants_page, paper.configs)) == 2 * 2 * 4 * 3


def test_pages_select_runs_matching_every_listed_key(tmp_path):
    grid = {"noise.rate": [0.0, 0.5], "strategy": ["random", "entropy"]}
    assert all(map((p := load_profile(write_profile(tmp_path, grid))).wants_page, p.configs))
    assert not any(map((p := load_profile(write_profile(tmp_path, grid, pages="none"))).wants_page, p.configs))
    profile = load_profile(write_profile(tmp_path, grid, pages={"noise.rate": [0.5], "strategy": "random"}))
    assert [cfg.run_id for cfg in profile.configs if profile.wants_page(cfg)] == [
        "digits-vit_nano_p4-flip0.5-random-s0"
    ]


@pytest.mark.parametrize(
    "pages, message",
    [
        ({"colour": [1]}, "pages key 'colour' in profile .* is not a config key"),
        ("some", "pages in profile .* must be all, none, or a mapping"),
    ],
)
def test_bad_pages_are_one_sentence(tmp_path, pages, message):
    with pytest.raises(ConfigError, match=message):
        load_profile(write_profile(tmp_path, {"seed": [0]}, pages=pages))


def test_a_grid_whose_runs_would_share_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="several configurations the run id digits-vit_nano_p4-flip0.3-entropy-s0"):
        load_profile(write_profile(tmp_path, {"train.epochs": [3, 4]}))


def test_a_finished_run_of_another_configuration_is_stale_and_refused(tmp_path):
    """Issue 8: a finished run made with train.epochs 3 is not the profile's run with 4 epochs."""
    profile = load_profile(write_profile(tmp_path, {"seed": [0]}, base={"train": {"epochs": 4}}))
    output = tmp_path / "runs"
    fake_finished_run(output, with_overrides(profile.configs[0], {"train.epochs": 3}))
    with pytest.raises(
        ConfigError,
        match=r"1 run folder\(s\) in .* hold runs of another configuration \(differing in "
        r"train.epochs\).*rerun them with --rerun-stale",
    ):
        run_sweep(profile, progress=False)
    assert (output / profile.configs[0].run_id / "rounds.csv").exists()  # nothing moved or lost


def test_rerun_stale_moves_the_old_run_and_its_page_aside(tmp_path):
    profile = load_profile(write_profile(tmp_path, {"seed": [0]}, base={"train": {"epochs": 4}}))
    output, run_id = tmp_path / "runs", profile.configs[0].run_id
    fake_finished_run(output, with_overrides(profile.configs[0], {"train.epochs": 3}))
    tasks, skipped, stale, simulated = plan(profile, output, SweepOptions())
    assert (
        [task.run_id for task in tasks] == [run_id]
        and not skipped
        and stale == {run_id: ["train.epochs"]}
        and not simulated
    )
    set_aside(output, stale, 60)
    [moved] = (output / "_stale").glob(f"{run_id}-*[0-9]")
    assert RunFolder(moved).read_config()["train"]["epochs"] == 3 and moved.with_name(moved.name + ".ipynb").exists()
    assert not (output / run_id).exists() and not (output / f"{run_id}.ipynb").exists()
    assert not list((output / "_claims").iterdir())


def test_a_run_differing_only_in_device_or_eval_batch_is_finished(tmp_path):
    profile = load_profile(write_profile(tmp_path, {"seed": [0]}, pages="none"))
    fake_finished_run(
        tmp_path / "runs",
        with_overrides(profile.configs[0], {"device": "cuda:1", "train.eval_batch_size": 8}),
        page=False,
    )
    tasks, skipped, stale, _ = plan(profile, tmp_path / "runs", SweepOptions())
    assert not tasks and skipped == [profile.configs[0].run_id] and not stale


def test_a_wanted_page_that_is_missing_makes_the_run_a_task(tmp_path):
    profile = load_profile(write_profile(tmp_path, {"seed": [0]}))
    fake_finished_run(tmp_path / "runs", profile.configs[0], page=False)
    tasks, skipped, _, _ = plan(profile, tmp_path / "runs", SweepOptions())
    assert [task.run_id for task in tasks] == [profile.configs[0].run_id] and not skipped


def test_is_finished_compares_the_result_deciding_keys_only(tiny_config, tmp_path):
    from alvit.config import to_dict

    cfg = tiny_config()
    fake_finished_run(tmp_path, cfg, page=False)
    folder = RunFolder(tmp_path / cfg.run_id)
    stored = yaml.safe_load(folder.config.read_text())
    del stored["train"]["eval_batch_size"]  # a folder written before a key existed: its default applies
    folder.config.write_text(yaml.safe_dump(stored))
    assert folder.is_finished(to_dict(cfg))
    assert folder.is_finished(to_dict(with_overrides(cfg, {"device": "cuda:3"})))
    assert not folder.is_finished(to_dict(with_overrides(cfg, {"train.epochs": 9})))
    assert not folder.is_finished(to_dict(with_overrides(cfg, {"al.query": 21})))


def test_a_sweep_into_a_folder_simulate_filled_moves_the_previews_aside_and_trains_the_real_runs(tmp_path):
    """Issue 14: a preview in a real output folder used to count as finished, so the real runs never trained."""
    profile = load_profile(write_profile(tmp_path, {"seed": [0, 1]}, pages="none"))
    output = tmp_path / "runs"
    simulate_profile(profile, output)
    assert {row.state for row in sweep_status(profile)} == {"simulated"}
    outcome = run_sweep(profile, progress=False)
    assert sorted(outcome["done"]) == sorted(cfg.run_id for cfg in profile.configs) and not outcome["skipped"]
    for cfg in profile.configs:
        assert not RunFolder(output / cfg.run_id).is_simulated()
        assert len(RunFolder(output / cfg.run_id).read_rounds()) == cfg.al.rounds + 1
        [preview] = (output / "_simulated").glob(f"{cfg.run_id}-*")
        assert RunFolder(preview).is_simulated()  # moved, not deleted
    assert {row.state for row in sweep_status(profile)} == {"done"}


def test_the_loop_refuses_to_resume_a_simulated_folder(tiny_config, tmp_path):
    from alvit.loop import run_experiment

    cfg = tiny_config()
    profile = load_profile(write_profile(tmp_path, {"seed": [0]}, pages="none"))
    simulate_profile(profile, tmp_path / "sim")
    with pytest.raises(ConfigError, match=r"holds a simulated run \(from alvit simulate\); choose another --out"):
        run_experiment(cfg, tmp_path / "sim" / cfg.run_id, progress=False)


def test_a_failure_record_starts_with_its_reason_and_takes_the_partial_page(tmp_path):
    (tmp_path / "run-a.ipynb").write_text("{}")
    record_failure(tmp_path, "run-a", "TimeoutError: cell 3 ran over", "details")
    assert (tmp_path / "_failed" / "run-a.txt").read_text().splitlines()[0] == "TimeoutError: cell 3 ran over"
    assert (tmp_path / "_failed" / "run-a.ipynb").exists() and not (tmp_path / "run-a.ipynb").exists()


def test_gpu_slots_spread_workers_round_robin_at_most_per_gpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    slots = make_slots(None, ("0", "1"), per_gpu=2)
    assert [slot.gpu for slot in slots] == ["0", "1", "0", "1"] and {slot.threads for slot in slots} == {4}
    assert slots[1].environment() == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "CUDA_VISIBLE_DEVICES": "1"}
    assert "CUDA_VISIBLE_DEVICES" not in make_slots(2)[0].environment()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" not in make_slots(2)[0].environment()  # the user's choice stands
    with pytest.raises(ConfigError, match="--jobs 5 is more than --gpus 0,1 x --per-gpu 2 = 4"):
        make_slots(5, ("0", "1"), per_gpu=2)


def test_slurm_settings_come_from_the_profile_and_the_command_line(tmp_path):
    profile = load_profile(
        write_profile(
            tmp_path,
            {"seed": [0]},
            slurm={"partition": "gpu", "gpus_per_task": 1, "mem_gb": 32, "extra": {"qos": "high"}},
        )
    )
    settings = SlurmSettings.from_dict({**profile.slurm, "time_min": 90}, "x")
    params = settings.submitit_parameters(None, 8)
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 1 and params["mem_gb"] == 32
    assert params["timeout_min"] == 90 and params["slurm_array_parallelism"] == 8
    assert params["slurm_additional_parameters"] == {"qos": "high"}
    assert SlurmSettings().time_limit_min(timeout_s=150) == 3 and SlurmSettings().time_limit_min(None) == 60


@pytest.mark.parametrize(
    "slurm, message",
    [
        ({"partitions": "gpu"}, "slurm setting 'partitions' in profile .* is not known; valid ones are: partition"),
        ({"gpus_per_task": "two"}, "gpus_per_task in profile .* must be an integer of at least 0, not 'two'"),
        ({"mem_gb": -1}, "mem_gb in profile .* must be a positive number"),
    ],
)
def test_bad_slurm_settings_are_one_sentence(tmp_path, slurm, message):
    with pytest.raises(ConfigError, match=message):
        load_profile(write_profile(tmp_path, {"seed": [0]}, slurm=slurm))


@pytest.mark.notebooks
def test_a_failing_configuration_is_recorded_and_the_sweep_goes_on(tmp_path):
    empty = tmp_path / "empty"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (empty / split / cls).mkdir(parents=True)
    profile = load_profile(write_profile(tmp_path, {"dataset": ["digits", f"imagefolder:{empty}"]}))
    outcome = run_sweep(profile, progress=False)
    good, bad = (cfg.run_id for cfg in profile.configs)
    assert outcome["done"] == [good] and outcome["failed"] == [bad]
    output = tmp_path / "runs"
    reason = (output / "_failed" / f"{bad}.txt").read_text().splitlines()[0]
    assert (
        reason == f"ConfigError: {empty / 'train'} holds no images (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp)"
    )
    assert (output / f"{good}.ipynb").exists() and not (output / f"{bad}.ipynb").exists()
    assert not list((output / "_claims").iterdir())


def test_a_hung_run_is_stopped_at_its_timeout_and_a_fresh_worker_goes_on(tmp_path):
    """Image files that are FIFOs nobody writes to: reading them blocks, like a dead network mount."""
    hung = tmp_path / "hung"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (hung / split / cls).mkdir(parents=True)
            os.mkfifo(hung / split / cls / "x.png")
    profile = load_profile(write_profile(tmp_path, {"dataset": [f"imagefolder:{hung}"], "seed": [0, 1]}, pages="none"))
    outcome = run_sweep(profile, options=SweepOptions(jobs=1, timeout_s=2, progress=False))
    assert sorted(outcome["failed"]) == sorted(cfg.run_id for cfg in profile.configs)  # the second ran in a new worker
    for cfg in profile.configs:
        assert (tmp_path / "runs" / "_failed" / f"{cfg.run_id}.txt").read_text().startswith("timed out after 2 s\n")
    assert not list((tmp_path / "runs" / "_claims").iterdir())


def test_two_sweeps_at_once_run_every_configuration_exactly_once(tmp_path):
    profile_path = write_profile(
        tmp_path, {"noise.rate": [0.0, 0.5], "strategy": ["random", "entropy"]}, pages={"strategy": ["random"]}
    )
    command = [sys.executable, "-m", "alvit.cli", "sweep", str(profile_path), "--quiet"]
    sweeps = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    counts = []
    for text in outputs:
        match = re.search(r"^done (\d+) / skipped (\d+) / failed (\d+) / claimed elsewhere (\d+)$", text, re.MULTILINE)
        assert match, text
        counts.append([int(n) for n in match.groups()])
    assert sum(done for done, *_ in counts) == 4 and all(failed == 0 for _, _, failed, _ in counts)
    assert all(sum(row) == 4 for row in counts)
    assert "without encryption" not in "".join(outputs)  # no kernel warnings, one summary line each
    runs, problems = load_runs(tmp_path / "runs")
    assert not problems and runs.groupby("run_id")["finished"].all().sum() == 4
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.ipynb")) == [
        "digits-vit_nano_p4-flip0-random-s0.ipynb",
        "digits-vit_nano_p4-flip0.5-random-s0.ipynb",
    ]
    assert not list((tmp_path / "runs" / "_claims").iterdir())


def test_the_slurm_executor_without_slurm_is_one_sentence(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda tool, *args, **kwargs: None)
    with pytest.raises(ConfigError, match="--executor slurm needs SLURM's sbatch, squeue, scontrol on the PATH"):
        run_sweep(
            load_profile(write_profile(tmp_path, {"seed": [0]})), options=SweepOptions(executor="slurm", progress=False)
        )
    assert not (tmp_path / "runs").exists()
