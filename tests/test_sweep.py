"""Sweeps: profiles expand to validated grids, slice with --only, and survive failing runs."""

import nbformat
import pytest
from conftest import REPO

from alvit.errors import ConfigError
from alvit.pages import notebook_parameters
from alvit.sweep import estimate_gpu_hours, load_profile, run_sweep

PROFILES = REPO / "configs" / "profiles"


def test_demo_profile_is_two_models_five_rates_three_strategies_two_seeds():
    profile = load_profile(PROFILES / "demo.yaml")
    assert len(profile.configs) == 2 * 5 * 3 * 2
    assert {cfg.strategy for cfg in profile.configs} == {"random", "entropy", "gci_vital"}
    assert len({cfg.run_id for cfg in profile.configs}) == 60  # one folder each


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


@pytest.mark.parametrize("only, message", [
    (["model"], "not of the form key=value"),
    (["colour=red"], "--only key 'colour' is not a config key"),
])
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


def test_notebook_parameters_reproduce_the_configuration_exactly(tmp_path):
    from alvit.notebook import config_from_parameters

    cfg = load_profile(PROFILES / "demo.yaml").configs[7]
    params = notebook_parameters(cfg, tmp_path)
    rebuilt = config_from_parameters(params["CONFIG"], params["SETTINGS"], **{k: params[k] for k in params if k not in ("CONFIG", "SETTINGS", "RUN_DIR")})
    assert rebuilt == cfg


def test_gpu_hours_scale_with_flops():
    rows = {row["model"]: row for row in estimate_gpu_hours(load_profile(PROFILES / "paper.yaml", ["seed=0", "dataset=cifar10", "noise.rate=0.0", "strategy=random"]))}
    assert rows["vit_l16"]["gflops_per_image"] / rows["vit_l32"]["gflops_per_image"] == pytest.approx(4.0, rel=0.1)
    assert rows["vit_l16"]["gpu_hours"] > rows["vit_b16"]["gpu_hours"] > rows["vit_b32"]["gpu_hours"] > 0


@pytest.mark.notebooks
def test_a_failing_configuration_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import alvit.sweep as sweep

    failing = tmp_path / "failing.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("SEED = 0\nRUN_DIR = None\nSETTINGS = {}\nCONFIG = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("if SEED == 1:\n    raise RuntimeError('seed one is cursed')"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(failing))
    monkeypatch.setattr(sweep.pages.paths, "notebook_template", lambda name: failing)
    profile_path = tmp_path / "p.yaml"
    profile_path.write_text(f"name: p\noutput: {tmp_path / 'runs'}\ngrid:\n  seed: [0, 1]\n")
    outcome = run_sweep(load_profile(profile_path), jobs=2, progress=False)
    assert len(outcome["done"]) == 1 and len(outcome["failed"]) == 1
    failed_id = outcome["failed"][0]
    assert "seed one is cursed" in (tmp_path / "runs" / "_failed" / f"{failed_id}.txt").read_text()
    assert (tmp_path / "runs" / "_failed" / f"{failed_id}.ipynb").exists()
    assert not (tmp_path / "runs" / f"{failed_id}.ipynb").exists()  # kept out of the book
