"""The notebooks: committed without outputs, and runnable with papermill on tiny settings."""

import json

import pytest
from conftest import REPO, TINY

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_parameters_cell_of_upper_case_knobs(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [cell for cell in cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    names = [line.split("=")[0].strip() for line in "".join(tagged[0]["source"]).splitlines() if "=" in line]
    assert names and all(name.isupper() for name in names)


def settings_from_tiny() -> dict:
    """TINY's overrides as the notebook's SETTINGS (the knobs aside)."""
    import yaml

    pairs = dict(item.split("=", 1) for item in TINY)
    return {key: yaml.safe_load(value) for key, value in pairs.items() if key not in ("dataset", "model", "noise.rate")}


@pytest.mark.notebooks
def test_experiment_notebook_runs_with_papermill_and_writes_its_run_folder(tmp_path):
    import papermill

    from alvit import metrics
    from alvit.results import RunFolder

    run_dir = tmp_path / "run"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "experiment.ipynb"),
        str(tmp_path / "out.ipynb"),
        cwd=str(REPO),
        progress_bar=False,
        parameters={
            "CONFIG": None,
            "DATASET": "digits",
            "MODEL": "vit_nano_p4",
            "NOISE_RATE": 0.4,
            "STRATEGY": "gci_vital",
            "SEED": 3,
            "RUN_DIR": str(run_dir),
            "SETTINGS": settings_from_tiny(),
        },
    )
    folder = RunFolder(run_dir)
    config = folder.read_config()
    assert config["noise"]["rate"] == 0.4 and config["strategy"] == "gci_vital" and config["seed"] == 3
    rounds = folder.read_rounds()
    assert len(rounds) == 3 and rounds["n_labeled"].tolist() == [40, 60, 80]
    last = folder.read_predictions(2)
    assert rounds["ece"].iloc[-1] == metrics.evaluate_per_sample(last, folder.read_test_labels())["ece"]
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    images = [
        o
        for c in executed["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2  # the learning curve and the reliability diagrams were drawn
    stderr = [
        o["text"]
        for c in executed["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
        if o.get("name") == "stderr"
    ]
    assert not any("Warning" in text for text in stderr), stderr  # a book page shows no library warnings


@pytest.mark.notebooks
def test_a_small_sweep_skips_what_is_done_and_the_summary_reads_it(tmp_path):
    import papermill
    import yaml

    from alvit.profile import load_profile
    from alvit.results import load_runs
    from alvit.sweep.run import run_sweep

    settings = {key: value for key, value in settings_from_tiny().items() if key != "strategy"}
    profile_path = tmp_path / "tiny.yaml"
    base: dict = {"dataset": "digits", "model": "vit_nano_p4"}
    for key, value in settings.items():
        section, _, name = key.partition(".")
        base.setdefault(section, {})[name] = value
    profile_path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "output": str(tmp_path / "runs"),
                "base": base,
                "grid": {"noise.rate": [0.0, 0.5], "strategy": ["random", "entropy"]},
            }
        )
    )
    profile = load_profile(profile_path)
    first = run_sweep(profile, jobs=2, progress=False)
    assert sorted(first["done"]) == sorted(cfg.run_id for cfg in profile.configs) and not first["failed"]
    again = run_sweep(profile, jobs=2, progress=False)
    assert len(again["skipped"]) == 4 and not again["done"]
    runs, problems = load_runs(tmp_path / "runs")
    assert runs["run_id"].nunique() == 4 and not problems
    page = json.loads((tmp_path / "runs" / f"{profile.configs[0].run_id}.ipynb").read_text())
    assert page["cells"][0]["source"][0].startswith("# vit_nano_p4 · flip 0 · random · seed 0")
    papermill.execute_notebook(
        str(REPO / "notebooks" / "summary.ipynb"),
        str(tmp_path / "summary.ipynb"),
        cwd=str(REPO),
        parameters={"PROFILE": "tiny", "RUNS_DIR": str(tmp_path / "runs")},
        progress_bar=False,
    )
    summary = (tmp_path / "summary.ipynb").read_text()
    # One model and one seed: claim 1 (about model sizes) cannot be tested, the others lack seeds.
    assert "Verdict of each claim" in summary and "cannot say" in summary and "inconclusive" in summary


def test_a_notebook_that_loads_models_shows_no_progress_bar_warning(tmp_path):
    """timm imports huggingface_hub, whose tqdm.auto warned "IProgress not found" into the tutorial's first output."""
    import nbformat
    import papermill

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import alvit.models")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(tmp_path / "in.ipynb"))
    papermill.execute_notebook(
        str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(REPO), progress_bar=False
    )
    outputs = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4).cells[0].outputs
    assert not [o for o in outputs if o.get("name") == "stderr"], outputs
