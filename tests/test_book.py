"""The book at the paper's shape: simulated runs of two datasets and two noise kinds build with -W."""

import shutil

import nbformat
import pytest
from conftest import REPO

from alvit.book import build_book
from alvit.simulate import simulate_profile
from alvit.sweep import load_profile

MIXED = REPO / "tests" / "profiles" / "mixed.yaml"
SETTINGS = ["cifar10 · flip", "cifar10 · pairflip", "cifar100 · flip", "cifar100 · pairflip"]


def book_sources(root):
    """A copy of the book's sources (config, contents, pages), so a test never touches the checkout's build."""
    root.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("runs", "pages", "*.ipynb"))
    # The tutorial trains models; it has tests of its own. A stand-in page keeps the contents whole.
    stand_in = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Active learning under label noise, by hand")])
    nbformat.write(stand_in, str(root / "book" / "tutorial.ipynb"))


def outputs_of(notebook, marker: str) -> list[dict]:
    """The outputs of the first code cell whose source contains ``marker``."""
    cell = next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)
    return cell.outputs


@pytest.fixture(scope="module")
def mixed_book(tmp_path_factory):
    base = tmp_path_factory.mktemp("mixed")
    profile = load_profile(MIXED)
    simulate_profile(profile, base / "runs", test_size=100)
    book_sources(base / "root")
    built = build_book(MIXED, base / "runs", root=base / "root")
    return profile, base, built


@pytest.mark.notebooks
def test_the_book_builds_with_warnings_as_errors_and_pages_only_for_chosen_runs(mixed_book):
    profile, base, built = mixed_book
    chosen = [cfg.run_id for cfg in profile.configs if profile.wants_page(cfg)]
    assert built["run_pages"] == len(chosen) == 2
    html = base / "root" / "_build" / "html" / "book"
    assert sorted(p.stem for p in (html / "pages").glob("*.html")) == sorted(chosen)
    page = (html / "pages" / f"{chosen[0]}.html").read_text()
    assert "Simulated results" in page  # every page built from simulated runs says so


@pytest.mark.notebooks
def test_every_figure_and_table_of_the_results_shows_one_setting(mixed_book):
    _, base, _ = mixed_book
    summary = nbformat.read(str(base / "root" / "book" / "summary.ipynb"), as_version=4)
    heatmaps = outputs_of(summary, "plots.heatmaps(rows, \"test_acc\"")
    assert sum("image/png" in o.get("data", {}) for o in heatmaps) == len(SETTINGS)  # a figure per setting, none pooled
    tables = outputs_of(summary, 'show_tables("test_acc"')
    captions = " ".join(o["data"].get("text/html", "") for o in tables if "data" in o)
    assert all(f"Test accuracy, final round, {name}" in captions for name in SETTINGS)
    gains = outputs_of(summary, "plots.gain_vs_noise")
    assert sum("image/png" in o.get("data", {}) for o in gains) == len(SETTINGS)
    verdicts = " ".join(o["data"].get("text/html", "") for o in outputs_of(summary, "claims.verdict_table") if "data" in o)
    assert all(name in verdicts for name in SETTINGS)  # a verdict column per setting


@pytest.mark.notebooks
def test_the_run_index_has_a_row_per_run_and_links_the_pages(mixed_book):
    profile, base, built = mixed_book
    index = nbformat.read(str(base / "root" / "book" / "runs.ipynb"), as_version=4)
    html = " ".join(o["data"].get("text/html", "") for c in index.cells if c.cell_type == "code" for o in c.outputs if "data" in o)
    assert html.count("<tr>") == len(profile.configs)  # body rows; header rows carry a style
    assert html.count('<a href="pages/') == built["run_pages"]
    assert "Simulated results" in html
    assert built["html_pages"] > len(SETTINGS)


@pytest.mark.notebooks
def test_the_power_page_shows_the_operating_characteristics_a_figure_and_what_would_settle_each_doubt(mixed_book):
    _, base, _ = mixed_book
    page = nbformat.read(str(base / "root" / "book" / "power.ipynb"), as_version=4)
    table = " ".join(o["data"].get("text/html", "") for o in outputs_of(page, "report.table()") if "data" in o)
    assert "P(holds | true)" in table and "P(does not hold | true)" in table and "P(holds | false)" in table
    assert all(name in " ".join(str(o.get("data", "")) for o in outputs_of(page, "report.table()")) for name in SETTINGS)
    assert any("image/png" in o.get("data", {}) for o in outputs_of(page, "plots.power_vs_seeds"))
    settle = " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs_of(page, "settling_sentences"))
    assert "inconclusive" in settle or "No verdict of these runs is inconclusive" in settle
    html = (base / "root" / "_build" / "html" / "book" / "power.html").read_text()
    assert "How sure are these verdicts?" in html and "Holm" in html and "Simulated results" in html


@pytest.mark.notebooks
def test_no_page_of_the_built_book_holds_the_build_machines_paths(mixed_book):
    _, base, _ = mixed_book
    root = str((base / "root").resolve())
    html = base / "root" / "_build" / "html"
    holding = [str(p.relative_to(html)) for p in html.rglob("*") if p.is_file() and p.suffix in (".html", ".ipynb", ".txt")
               and root in p.read_text(errors="replace")]
    assert not holding, holding
