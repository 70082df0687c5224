"""Run pages a reader can rerun from: the page's own commands, parsed by the real parsers, and no builder paths."""

from __future__ import annotations

import shlex

import nbformat
import pytest
import yaml
from conftest import REPO
from papermill.cli import _resolve_type
from papermill.cli import papermill as papermill_command

from alvit.book.notebook import config_from_parameters
from alvit.book.pages import page_introduction, render_page, rerun_commands
from alvit.cli import build_parser
from alvit.config import load_config, to_dict
from alvit.profile import load_profile
from alvit.sweep.simulate import simulate_profile

PROFILES = ["configs/profiles/demo.yaml", "tests/profiles/mixed.yaml", "configs/profiles/paper.yaml"]


def configurations():
    for path in PROFILES:
        configs = load_profile(REPO / path).configs
        yield from configs[:: max(1, len(configs) // 40)]  # every profile's shapes, 40 runs at most each


def as_shell_words(command: str) -> list[str]:
    return shlex.split(command.replace("\\\n", " "))


@pytest.mark.parametrize("cfg", list(configurations()), ids=lambda cfg: cfg.run_id)
def test_the_pages_alvit_run_command_rebuilds_its_configuration(cfg):
    run, _ = rerun_commands(cfg)
    args = build_parser().parse_args(as_shell_words(run)[1:])
    assert to_dict(load_config(args.config, args.set)) == to_dict(cfg)


@pytest.mark.parametrize("cfg", list(configurations()), ids=lambda cfg: cfg.run_id)
def test_the_pages_papermill_command_hands_the_notebook_its_configuration(cfg):
    _, command = rerun_commands(cfg)
    words = as_shell_words(command)
    assert words[:3] == ["papermill", "notebooks/experiment.ipynb", "out.ipynb"]
    context = papermill_command.make_context("papermill", words[1:])  # papermill's own option parser
    assert context.params["engine"] == "alvit"  # as the README's: kernels without the encryption warning
    parameters = {name: _resolve_type(value) for name, value in context.params["parameters"]}
    for text in context.params["parameters_yaml"]:
        parameters.update(yaml.safe_load(text))
    config = parameters.pop("CONFIG")
    assert to_dict(config_from_parameters(config, parameters.pop("SETTINGS", {}), **parameters)) == to_dict(cfg)


def test_the_introduction_names_the_run_and_shows_unclipped_commands():
    cfg = load_profile(REPO / "configs/profiles/paper.yaml").configs[0]
    intro = page_introduction(cfg)
    assert intro.startswith(f"# {cfg.model} · flip 0 · random · seed 0 (cifar10)")
    code = [line for block in intro.split("```bash\n")[1:] for line in block.split("```")[0].splitlines()]
    assert max(len(line) for line in code) <= 88  # one option a line: nothing runs off the page


@pytest.mark.notebooks
def test_a_rendered_page_has_its_commands_no_builder_paths_and_no_nan(tmp_path):
    profile = load_profile(
        REPO / "tests/profiles/mixed.yaml",
        only=["dataset=cifar100", "model=vit_l32", "seed=0", "noise.kind=flip", "noise.rate=0.4", "strategy=entropy"],
    )
    simulate_profile(profile, tmp_path / "runs", test_size=100)
    cfg = profile.configs[0]
    page = render_page(tmp_path / "runs" / cfg.run_id, tmp_path / "page.ipynb")
    text = page.read_text()
    assert str(tmp_path) not in text and str(REPO) not in text
    notebook = nbformat.read(str(page), as_version=4)
    assert "alvit run \\\n  --set dataset=cifar100" in notebook.cells[0].source
    injected = next(c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "remove-cell" in injected.metadata["tags"] and "RUN_DIR = None" in injected.source
    tables = " ".join(
        o.get("data", {}).get("text/plain", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "—" in tables and "NaN" not in tables
    printed = [
        line
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
        for line in o["text"].splitlines()
    ]
    assert printed and max(len(line) for line in printed) <= 88, printed  # no printed line runs off the page


def test_a_kernel_that_dies_before_it_starts_is_started_again_and_other_errors_are_not_retried(
    tmp_path, monkeypatch, caplog
):
    """Two kernels starting at once can race for a TCP port ("Address already in use"): the kernel dies
    before any cell runs, so the page is executed again, at most three starts in all."""
    import papermill

    from alvit.book.pages import run_notebook

    died = RuntimeError("Kernel died before replying to kernel_info")
    calls = []

    def fails_with(errors):
        def execute(template, output, **options):
            calls.append(output)
            if errors:
                raise errors.pop(0)

        return execute

    monkeypatch.setattr(papermill, "execute_notebook", fails_with([died, died]))
    run_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb", parameters={})
    assert len(calls) == 3 and "start 2 of 3" in caplog.text

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", fails_with([died, died, died]))
    with pytest.raises(RuntimeError, match="Kernel died"):
        run_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    assert len(calls) == 3

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", fails_with([RuntimeError("a cell failed")]))
    with pytest.raises(RuntimeError, match="a cell failed"):
        run_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    assert len(calls) == 1
