"""The commands the book and the README show work as written (papermill's own parser, prepare-only)."""

import re
import shlex
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

from alvit.notebook import KNOBS

DOCS = [REPO / "book" / "reproduce.md", REPO / "README.md"]


def shown_commands(path, program: str) -> list[str]:
    """Every command of ``program`` in the bash blocks of ``path``, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.strip().split(" ")[0].endswith(program)]


PAPERMILL = [(path.name, command) for path in DOCS for command in shown_commands(path, "papermill")]


def test_the_docs_show_papermill_commands():
    assert len(PAPERMILL) >= 3


@pytest.mark.parametrize("doc, command", PAPERMILL, ids=[f"{doc}:{i}" for i, (doc, _) in enumerate(PAPERMILL)])
def test_each_papermill_command_hands_the_notebook_parameters_of_the_right_types(doc, command, tmp_path):
    args = shlex.split(command)
    assert args[1] == "notebooks/experiment.ipynb"
    out = tmp_path / "prepared.ipynb"
    result = subprocess.run([sys.executable, "-m", "papermill", args[1], str(out), *args[3:], "--prepare-only"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    injected = next(c for c in nbformat.read(str(out), as_version=4).cells if "injected-parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(injected.source, namespace)
    assert isinstance(namespace.get("SETTINGS", {}), dict)  # a string here was the old -p SETTINGS bug
    assert {name for name in namespace if name.isupper()} <= {*KNOBS, "CONFIG", "SETTINGS", "RUN_DIR"}


ALVIT = [(path.name, command) for path in DOCS for command in shown_commands(path, "alvit")]


def test_the_docs_show_alvit_commands_of_every_kind():
    shown = {shlex.split(command)[1] for _, command in ALVIT}
    assert {"run", "sweep", "status", "fetch", "simulate", "book", "bench"} <= shown


@pytest.mark.parametrize("doc, command", ALVIT, ids=[f"{doc}:{i}" for i, (doc, _) in enumerate(ALVIT)])
def test_each_alvit_command_parses_as_shown(doc, command):
    """Options and arguments as the docs spell them (alternatives written ``a | b`` take the first)."""
    from alvit.cli import build_parser

    args = [arg for arg in shlex.split(command.split(" | ")[0].replace("[", "").replace("]", ""))][1:]
    build_parser().parse_args(args)  # argparse exits (SystemExit) on anything it does not know


def test_the_conda_environment_installs_what_make_install_does():
    """environment.yml takes Python from conda and the rest through pip, with the same pins as make install."""
    import tomllib

    import yaml

    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert pip == ["-c constraints.txt", "-e .[test]"]
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python="))
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.10" and tuple(map(int, python.split("=")[1].split("."))) >= (3, 10)
    makefile = (REPO / "Makefile").read_text()
    assert "-c constraints.txt -e '.[test]'" in makefile
