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
