"""The commands the book and the README show work as written (papermill's own parser, prepare-only),
and papermill's ``alvit`` engine they use runs notebooks without kernel warnings."""

import re
import shlex
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

from alvit.book.notebook import KNOBS

DOCS = [REPO / "book" / "reproduce.md", REPO / "book" / "reference.md", REPO / "README.md"]


def shown_commands(path, program: str) -> list[str]:
    """Every command of ``program`` in the bash blocks of ``path``, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.strip().split(" ")[0].endswith(program)]


PAPERMILL = [(path.name, command) for path in DOCS for command in shown_commands(path, "papermill")]


def test_the_docs_show_papermill_commands():
    assert len(PAPERMILL) >= 3
    assert all("--engine alvit" in command for _, command in PAPERMILL)  # no kernel warnings from the docs' commands


def test_the_notebooks_papermill_commands_use_alvits_engine():
    """The tutorial's and the experiment page's own rerun commands, as the README's."""
    shown = [
        line
        for path in sorted((REPO / "notebooks").glob("*.ipynb"))
        for cell in nbformat.read(str(path), as_version=4).cells
        if cell.cell_type == "markdown"
        for line in re.findall(r"papermill notebooks/\S+ .*", cell.source)
    ]
    assert len(shown) >= 2 and all("--engine alvit" in line for line in shown), shown


def test_installing_alvit_registers_its_papermill_engine():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["papermill.engine"] == {"alvit": "alvit.book.papermill_engine:QuietEngine"}


def test_the_alvit_engine_runs_a_notebook_without_the_kernels_encryption_warning(tmp_path, capfd):
    """Issue 14: the README's papermill command printed ipykernel's "running over TCP without encryption"."""
    import papermill
    from papermill.engines import papermill_engines

    from alvit.book.papermill_engine import QuietEngine

    papermill_engines.register("alvit", QuietEngine)  # what the installed entry point does
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nbformat.write(notebook, str(tmp_path / "in.ipynb"))
    papermill.execute_notebook(
        str(tmp_path / "in.ipynb"),
        str(tmp_path / "out.ipynb"),
        engine_name="alvit",
        kernel_name="python3",
        progress_bar=False,
    )
    assert nbformat.read(str(tmp_path / "out.ipynb"), as_version=4).cells[0].outputs[0]["text"] == "42\n"
    assert "without encryption" not in capfd.readouterr().err


@pytest.fixture
def papermill_env(tmp_path):
    """The environment of a papermill that finds the ``alvit`` engine.

    An install of this checkout registers it (pyproject's entry point); an install made before
    the entry point existed (a venv not yet reinstalled) gets the same registration from a
    metadata folder on PYTHONPATH, written from pyproject.toml.
    """
    import importlib.metadata
    import os

    import tomllib

    if any(point.name == "alvit" for point in importlib.metadata.entry_points(group="papermill.engine")):
        return dict(os.environ)
    points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["papermill.engine"]
    shim = tmp_path / "shim" / "alvit_engine-0.dist-info"
    shim.mkdir(parents=True)
    (shim / "METADATA").write_text("Metadata-Version: 2.1\nName: alvit-engine\nVersion: 0\n")
    (shim / "entry_points.txt").write_text("[papermill.engine]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("doc, command", PAPERMILL, ids=[f"{doc}:{i}" for i, (doc, _) in enumerate(PAPERMILL)])
def test_each_papermill_command_hands_the_notebook_parameters_of_the_right_types(doc, command, tmp_path, papermill_env):
    args = shlex.split(command)
    assert args[1] == "notebooks/experiment.ipynb"
    out = tmp_path / "prepared.ipynb"
    result = subprocess.run(
        [sys.executable, "-m", "papermill", args[1], str(out), *args[3:], "--prepare-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=papermill_env,
    )
    assert result.returncode == 0, result.stderr
    injected = next(
        c for c in nbformat.read(str(out), as_version=4).cells if "injected-parameters" in c.metadata.get("tags", [])
    )
    namespace: dict = {}
    exec(injected.source, namespace)
    assert isinstance(namespace.get("SETTINGS", {}), dict)  # a string here was the old -p SETTINGS bug
    assert {name for name in namespace if name.isupper()} <= {*KNOBS, "CONFIG", "SETTINGS", "RUN_DIR"}


ALVIT = [(path.name, command) for path in DOCS for command in shown_commands(path, "alvit")]


def test_the_docs_show_alvit_commands_of_every_kind():
    shown = {shlex.split(command)[1] for _, command in ALVIT}
    assert {"run", "sweep", "status", "fetch", "simulate", "book", "bench", "labels"} <= shown


@pytest.mark.parametrize("doc, command", ALVIT, ids=[f"{doc}:{i}" for i, (doc, _) in enumerate(ALVIT)])
def test_each_alvit_command_parses_as_shown(doc, command, monkeypatch):
    """Options and arguments as the docs spell them (alternatives written ``a | b`` take the first),
    on a machine with the GPUs the docs' ``--gpus`` examples name (``--gpus`` is checked against the devices present)."""
    from alvit import flags
    from alvit.cli import build_parser

    monkeypatch.setattr(flags, "gpu_count", lambda: 8)

    args = [arg for arg in shlex.split(command.split(" | ")[0].replace("[", "").replace("]", ""))][1:]
    build_parser().parse_args(args)  # argparse exits (SystemExit) on anything it does not know


def test_the_conda_environment_installs_what_make_install_does():
    """environment.yml takes Python from conda and the rest through pip, with the same pins as make install."""
    import tomllib
    import yaml

    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert pip == ["-c constraints.txt", "-e .[test,lint]"]
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python="))
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.10" and tuple(map(int, python.split("=")[1].split("."))) >= (3, 10)
    makefile = (REPO / "Makefile").read_text()
    assert "-c constraints.txt -e '.[test,lint]'" in makefile


def test_the_workflows_run_the_readmes_commands_and_deploy_with_the_official_pages_actions():
    import yaml

    tests = yaml.safe_load((REPO / ".github" / "workflows" / "tests.yml").read_text())
    book = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    runs = lambda workflow: [step.get("run") for job in workflow["jobs"].values() for step in job["steps"]]  # noqa: E731
    uses = [step.get("uses", "") for job in book["jobs"].values() for step in job["steps"]]
    assert "make test" in runs(tests) and "make book" in runs(book)
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    pinned = [
        u for w in (tests, book) for job in w["jobs"].values() for step in job["steps"] if (u := step.get("uses"))
    ]
    assert all(re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", u) for u in pinned), pinned  # pinned to a commit
    assert tests["permissions"] == {} and book["permissions"] == {}  # each job asks for what it needs


def test_the_reference_maps_each_temperature_fits_column_prefix_to_the_books_letter():
    """The book's plots label the fits (a), (b), (c); the reference's rounds.csv list says which prefix is which."""
    from alvit.book.plots import REPAIRS

    text = " ".join((REPO / "book" / "reference.md").read_text().split())
    fits = {prefix.rstrip("_"): label.split()[0] for prefix, (label, _) in REPAIRS.items() if prefix}
    assert fits == {"ts_noisy": "(a)", "ts_true": "(b)", "ts_aware": "(c)"}
    for column, letter in fits.items():
        assert re.search(rf"`{column}` \((the book's )?{re.escape(letter)}:", text), column


def test_the_human_label_workflow_fits_the_text_column_at_1400_px():
    """Issue 23: at 1400 px the reference cut its human-label example command. The column's code
    shows 89 characters a line there (measured in headless chromium), so each line keeps to 88."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "book" / "reference.md").read_text(), flags=re.S)
    workflow = [block for block in blocks if "noise.labels=" in block]
    assert len(workflow) == 2  # a file of CIFAR-N's, and a template of your own
    assert all(len(line) <= 88 for block in workflow for line in block.splitlines()), workflow
