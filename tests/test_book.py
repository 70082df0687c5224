"""The book at the paper's shape: simulated runs of two datasets and two noise kinds build with -W,
say on every page that they are simulated, and a build that fails leaves the previous one whole."""

import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml
from conftest import REPO

from alvit.book import build as book_module
from alvit.book.build import (
    TUTORIALS,
    as_seen_from,
    build_book,
    check_destination,
    collect_pages,
    publish,
    simulated_banner,
    stage_tutorials,
)
from alvit.book.launch import with_rerun_buttons
from alvit.errors import ConfigError, ResultsError
from alvit.profile import load_profile
from alvit.results import RunFolder
from alvit.sweep.simulate import simulate_profile

MIXED = REPO / "tests" / "profiles" / "mixed.yaml"
REPOSITORY = "https://github.com/example-lab/alvit"
SETTINGS = ["cifar10 · flip", "cifar10 · pairflip", "cifar100 · flip", "cifar100 · pairflip"]


def book_sources(root, repository_url: str = ""):
    """A copy of the book's sources (config, contents, pages), so a test never touches the checkout's build."""
    root.mkdir()
    shutil.copy(REPO / "_toc.yml", root / "_toc.yml")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["repository"]["url"] = repository_url
    (root / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("runs", "pages", "*.ipynb"))
    # The tutorials train models; they have tests of their own. Stand-in pages keep the contents whole.
    for name in TUTORIALS:
        stand_in = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}, a stand-in")])
        nbformat.write(stand_in, str(root / "book" / name))


def outputs_of(notebook, marker: str) -> list[dict]:
    """The outputs of the first code cell whose source contains ``marker``."""
    cell = next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)
    return cell.outputs


@pytest.fixture(scope="module")
def mixed_book(tmp_path_factory):
    base = tmp_path_factory.mktemp("mixed")
    profile = load_profile(MIXED)
    simulate_profile(profile, base / "runs", test_size=100)
    book_sources(base / "root", repository_url=REPOSITORY)
    built = build_book(MIXED, base / "runs", root=base / "root")
    return profile, base, built


@pytest.mark.notebooks
def test_the_book_builds_with_warnings_as_errors_and_pages_only_for_chosen_runs(mixed_book):
    profile, base, built = mixed_book
    chosen = [cfg.run_id for cfg in profile.configs if profile.wants_page(cfg)]
    assert built["run_pages"] == len(chosen) == 2
    html = base / "root" / "_build" / "html" / "book"
    assert sorted(p.stem for p in (html / "pages").glob("*.html")) == sorted(chosen)
    root = html.parent  # its index.html only redirects to book/intro.html; _static/ holds templates
    every_page = [page for page in root.rglob("*.html") if "_static" not in page.parts and page != root / "index.html"]
    assert len(every_page) > 8 and all(
        "Simulated results." in page.read_text() for page in every_page
    )  # every page says so
    assert (
        "All 144 runs in this book come from <code>alvit simulate</code>" in (html / "intro.html").read_text()
    )  # the index page too
    assert not (base / "root" / "_build" / ".staging").exists()  # built, swapped in, staging removed


@pytest.mark.notebooks
def test_every_figure_and_table_of_the_results_shows_one_setting(mixed_book):
    _, base, _ = mixed_book
    summary = nbformat.read(str(base / "root" / "book" / "summary.ipynb"), as_version=4)
    heatmaps = outputs_of(summary, 'plots.heatmaps(rows, "test_acc"')
    assert sum("image/png" in o.get("data", {}) for o in heatmaps) == len(SETTINGS)  # a figure per setting, none pooled
    tables = outputs_of(summary, 'show_tables("test_acc"')
    captions = " ".join(o["data"].get("text/html", "") for o in tables if "data" in o)
    assert all(f"Test accuracy, final round, {name}" in captions for name in SETTINGS)
    gains = outputs_of(summary, "plots.gain_vs_noise")
    assert sum("image/png" in o.get("data", {}) for o in gains) == len(SETTINGS)
    verdicts = " ".join(
        o["data"].get("text/html", "") for o in outputs_of(summary, "claims.verdict_table") if "data" in o
    )
    assert all(name in verdicts for name in SETTINGS)  # a verdict column per setting


@pytest.mark.notebooks
def test_the_run_index_has_a_row_per_run_and_links_the_pages(mixed_book):
    profile, base, built = mixed_book
    index = nbformat.read(str(base / "root" / "book" / "runs.ipynb"), as_version=4)
    html = " ".join(
        o["data"].get("text/html", "") for c in index.cells if c.cell_type == "code" for o in c.outputs if "data" in o
    )
    assert html.count("<tr>") == len(profile.configs)  # body rows; header rows carry a style
    assert html.count('<a href="pages/') == built["run_pages"]
    assert "Simulated results" in html
    assert built["html_pages"] > len(SETTINGS)


@pytest.mark.notebooks
def test_the_power_page_shows_the_operating_characteristics_a_figure_and_what_would_settle_each_doubt(mixed_book):
    _, base, _ = mixed_book
    page = nbformat.read(str(base / "root" / "book" / "power.ipynb"), as_version=4)
    table = " ".join(o["data"].get("text/html", "") for o in outputs_of(page, "report.table()") if "data" in o)
    assert "P(holds | true)" in table and "P(does not hold | true)" in table
    assert "P(holds | nothing differs)" in table and "P(holds | least favourable false)" in table and " ± " in table
    spreads = " ".join(o["data"].get("text/html", "") for o in outputs_of(page, "report.spread_table()") if "data" in o)
    assert "Seed-to-seed standard deviation per setting, metric and noise rate" in spreads
    claim_5 = " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs_of(page, "plots.power_vs_sd"))
    assert "This grid cannot test claim 5." in claim_5  # no GCI-ViTAL in this profile
    assert all(name in spreads for name in SETTINGS)  # a spread per setting, metric and rate
    assert any("image/png" in o.get("data", {}) for o in outputs_of(page, "plots.power_vs_seeds"))
    settle = " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs_of(page, "settling_sentences"))
    assert "inconclusive" in settle or "No verdict of these runs is inconclusive" in settle
    html = (base / "root" / "_build" / "html" / "book" / "power.html").read_text()
    assert "How sure are these verdicts?" in html and "Holm" in html and "Simulated results" in html


@pytest.mark.notebooks
def test_the_performance_page_shows_the_h200s_tables_the_readings_and_the_estimate_both_ways(mixed_book):
    _, base, _ = mixed_book
    page = nbformat.read(str(base / "root" / "book" / "performance.ipynb"), as_version=4)
    assert not [o for cell in page.cells for o in cell.get("outputs", []) if o["output_type"] in ("stream", "error")]
    html = (base / "root" / "_build" / "html" / "book" / "performance.html").read_text()
    assert "Measured on 2026-12-04 at commit <code" in html and "NVIDIA H200" in html
    assert "alvit bench on the GPU" in html and "2,606" in html and "43.0%" in html  # vit_b16 at 64, vit_l16's MFU
    assert html.count("Missed: ") == 5 and "Met: 6.9x at batch 64" in html  # 3 of the first check, 2 of the second
    # The second step, before and after: the first check's figure beside this one's, and its readings.
    assert "first check (f92379e)" in html and "this check (c65f33b)" in html and "7,610 (20.3%)" in html
    assert "2.05x the compiled path measured beside it" in html and "Never measured: vit_b16-score1024-autotune" in html
    assert "GPU-hours of the paper profile" in html and "308.6" in html and "measured: NVIDIA H200" in html
    assert "both on compiled+graphs+fused" in html  # vit_b16's rates, on the path a run takes
    assert "<details><summary>The figure" in html  # the linear probe's table, folded below its figure


@pytest.mark.notebooks
def test_no_page_of_the_built_book_holds_the_build_machines_paths(mixed_book):
    _, base, _ = mixed_book
    root = str((base / "root").resolve())
    html = base / "root" / "_build" / "html"
    holding = [
        str(p.relative_to(html))
        for p in html.rglob("*")
        if p.is_file() and p.suffix in (".html", ".ipynb", ".txt") and root in p.read_text(errors="replace")
    ]
    assert not holding, holding


@pytest.mark.notebooks
def test_with_a_repository_url_every_executed_page_launches_its_published_notebook_in_binder_and_colab(mixed_book):
    _, base, _ = mixed_book
    root = base / "root"
    html = root / "_build" / "html"
    page = next((root / "book" / "pages").glob("*.ipynb"))
    for notebook in (f"book/pages/{page.name}", "book/summary.ipynb"):
        shown = (html / notebook).with_suffix(".html").read_text()
        # the files .ci/publish-notebooks puts on the branch _config.yml names
        assert f"https://mybinder.org/v2/gh/example-lab/alvit/book-notebooks?urlpath=lab/tree/{notebook}" in shown
        assert f"https://colab.research.google.com/github/example-lab/alvit/blob/book-notebooks/{notebook}" in shown
        assert f'href="{REPOSITORY}"' in shown  # the repository button
    first = nbformat.read(str(page), as_version=4).cells[0]
    assert "alvit @ git+https://github.com/example-lab/alvit@book-notebooks" in first.source
    assert "remove-cell" in first.metadata.tags  # it installs alvit where the page is launched, unseen in the book
    assert "importlib.util" not in (html / "book" / "pages" / page.name).with_suffix(".html").read_text()


def test_without_a_repository_url_the_book_has_no_rerun_buttons():
    def theme_options(config):
        return with_rerun_buttons(config)["sphinx"]["config"]["html_theme_options"]

    options = theme_options({"repository": {"url": "", "branch": "book-notebooks"}})
    assert options == {"use_repository_button": False}  # no launch link the theme would fail to build
    options = theme_options({"repository": {"url": REPOSITORY, "branch": "book-notebooks"}})
    assert options["use_repository_button"] and options["repository_branch"] == "book-notebooks"
    assert options["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_the_published_branch_is_the_built_commit_plus_its_executed_notebooks(tmp_path):
    checkout, remote = tmp_path / "checkout", tmp_path / "remote.git"
    shutil.copytree(REPO / ".ci", checkout / ".ci")
    shutil.copy(REPO / "_config.yml", checkout / "_config.yml")
    shutil.copy(REPO / ".gitignore", checkout / ".gitignore")
    (checkout / "book" / "pages").mkdir(parents=True)
    (checkout / "book" / "intro.md").write_text("# alvit")
    for notebook in ("book/summary.ipynb", "book/pages/run-a.ipynb"):  # executed by the build: ignored by git
        nbformat.write(nbformat.v4.new_notebook(), str(checkout / notebook))

    def git(*args, cwd=checkout):
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "--quiet", str(remote), cwd=tmp_path)
    git("init", "--quiet")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "the built commit")
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", ".ci/publish-notebooks", str(remote)], cwd=checkout, env=env, check=True)
    published = git("ls-tree", "-r", "--name-only", "book-notebooks", cwd=remote).splitlines()
    assert {"book/summary.ipynb", "book/pages/run-a.ipynb", "book/intro.md", "_config.yml"} <= set(published)
    assert git("rev-parse", "book-notebooks^", cwd=remote) == git("rev-parse", "HEAD")
    assert git("status", "--porcelain") == ""  # the checkout's own index is untouched


ONE_PAGE = ["seed=0", "model=vit_l32", "noise.rate=0.4", "strategy=entropy", "noise.kind=flip"]  # both datasets: 2 runs


@pytest.fixture
def good_build(tmp_path):
    """A checkout copy holding an earlier good build (its executed summary and HTML), and two simulated runs."""
    root = tmp_path / "root"
    book_sources(root)
    (root / "book" / "summary.ipynb").write_text("the good summary")
    (root / "book" / "pages").mkdir()
    (root / "book" / "pages" / "old.ipynb").write_text("a good page")
    (root / "_build" / "html").mkdir(parents=True)
    (root / "_build" / "html" / "index.html").write_text("the good book")
    simulate_profile(load_profile(MIXED, ONE_PAGE), tmp_path / "runs", test_size=50)
    return root, tmp_path / "runs"


def assert_untouched(root):
    assert (root / "book" / "summary.ipynb").read_text() == "the good summary"
    assert (root / "book" / "pages" / "old.ipynb").read_text() == "a good page"
    assert (root / "_build" / "html" / "index.html").read_text() == "the good book"


def test_a_build_from_an_empty_folder_fails_at_once_and_leaves_the_good_build(good_build, tmp_path):
    """Issue 14: an empty --runs folder overwrote the executed summary, then failed with KeyError: 'run_id'."""
    root, _ = good_build
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=f"{tmp_path / 'empty'} holds no finished run folder; run the sweep first"):
        build_book(MIXED, tmp_path / "empty", root=root)
    assert_untouched(root)


def test_a_word_in_a_rounds_table_stops_the_build_before_any_page_renders(good_build):
    """Issue 14: 'abc' in rounds.csv failed after 78 s of rendering with a ValueError naming no file."""
    root, runs = good_build
    folder = RunFolder(next(runs.iterdir()))
    folder.rounds.write_text(folder.rounds.read_text().replace("\n1,", "\nabc,", 1))
    with pytest.raises(ResultsError, match=f"{folder.rounds} has the non-numeric value 'abc' in column round"):
        build_book(MIXED, runs, root=root)
    assert not (root / "_build" / ".staging").exists()  # nothing was staged, let alone rendered
    assert_untouched(root)


def test_a_notebook_failing_midway_leaves_the_good_build_and_its_partial_notebook_for_reading(good_build, monkeypatch):
    root, runs = good_build
    monkeypatch.setattr(book_module, "collect_pages", lambda run_ids, runs_dir, pages_dir, progress: pages_dir.mkdir())

    def failing(template, output, parameters, cwd=None):
        output.write_text("partly executed")
        raise ConfigError(f"{template.name} failed (KeyError: 'x'); the partly executed notebook is {output}")

    monkeypatch.setattr(book_module, "execute_notebook", failing)
    with pytest.raises(ConfigError, match=r"the partly executed notebook is .*_build/\.staging/book/protocol\.ipynb"):
        build_book(MIXED, runs, root=root)
    assert_untouched(root)


def staged_build(root):
    """A staging folder as a successful build leaves it: HTML, executed notebooks, pages, the tutorial copied in."""
    staging = root / "_build" / ".staging"
    (staging / "_build" / "html").mkdir(parents=True)
    (staging / "_build" / "html" / "index.html").write_text("the new book")
    (staging / "book" / "pages").mkdir(parents=True)
    (staging / "book" / "pages" / "new.ipynb").write_text("a new page")
    for name in ("summary.ipynb", "runs.ipynb", "protocol.ipynb", "another.ipynb", *TUTORIALS):
        (staging / "book" / name).write_text("new notebook")
    return staging


def test_a_successful_build_replaces_the_html_pages_and_every_executed_notebook(good_build):
    root, _ = good_build
    for name in TUTORIALS:
        (root / "book" / name).write_text("the kept tutorial")
    publish(staged_build(root), root, root / "_build" / "html", every_notebook=True, tutorials=[])
    assert (root / "_build" / "html" / "index.html").read_text() == "the new book"
    assert [page.name for page in (root / "book" / "pages").iterdir()] == ["new.ipynb"]
    assert all(
        (root / "book" / name).read_text() == "new notebook"
        for name in ("summary.ipynb", "runs.ipynb", "another.ipynb")
    )
    assert all(
        (root / "book" / name).read_text() == "the kept tutorial" for name in TUTORIALS
    )  # copied in, not executed: left alone
    assert not (root / "_build" / ".staging").exists() and not (root / "_build" / ".html.replaced").exists()


def test_html_elsewhere_is_a_preview_that_leaves_the_checkouts_book_as_it_was(good_build, tmp_path):
    root, _ = good_build
    staging = staged_build(root)
    (tmp_path / "preview").mkdir()
    (tmp_path / "preview" / "index.html").write_text("an older preview")  # an earlier build there is replaced
    (root / "book" / "tutorial.ipynb").write_text("the kept tutorial")
    publish(staging, root, tmp_path / "preview", every_notebook=False, tutorials=["calibration_tutorial.ipynb"])
    assert (tmp_path / "preview" / "index.html").read_text() == "the new book"
    assert_untouched(root)
    assert (
        root / "book" / "calibration_tutorial.ipynb"
    ).read_text() == "new notebook"  # executed now: kept, it does not depend on the runs
    assert (root / "book" / "tutorial.ipynb").read_text() == "the kept tutorial"  # not executed now: left alone
    assert not staging.exists()


def test_each_tutorial_is_executed_only_when_missing_or_older_than_its_template(tmp_path, monkeypatch):
    executed = []
    monkeypatch.setattr(
        book_module, "execute_notebook", lambda template, output, parameters, cwd=None: executed.append(output.name)
    )
    root, staging = tmp_path / "root", tmp_path / "staging"
    (root / "book").mkdir(parents=True)
    staging.mkdir()
    first, second = TUTORIALS
    (root / "book" / first).write_text("executed after its template last changed")
    assert stage_tutorials(root, staging, execute=True) == [second] == executed  # the missing one
    assert (staging / first).read_text() == "executed after its template last changed"  # the kept one, copied
    os.utime(root / "book" / first, (0, 0))  # now older than its template
    assert stage_tutorials(root, staging, execute=False) == []  # --no-tutorial: the kept one as it is
    assert stage_tutorials(root, staging, execute=True) == [first, second]
    toc = (REPO / "_toc.yml").read_text()
    assert all(f"file: book/{name.removesuffix('.ipynb')}\n" in toc for name in TUTORIALS)  # each is a chapter


def test_html_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(
        ConfigError, match="--html .*notes holds files that are not a built book; choose a new or empty folder"
    ):
        check_destination(tmp_path / "notes")
    with pytest.raises(ConfigError, match="--html .*todo.txt is a file"):
        check_destination(tmp_path / "notes" / "todo.txt")
    check_destination(tmp_path / "new")  # new or empty: fine


def test_the_banner_counts_simulated_runs_in_a_mixed_book():
    assert simulated_banner(0, 51) == ""
    assert "3 of the 51 runs in this book come from <code>alvit simulate</code>" in simulated_banner(3, 51)
    assert "All 51 runs" in simulated_banner(51, 51)


@pytest.mark.notebooks
def test_rendering_run_pages_shows_a_progress_bar(good_build, tmp_path, capsys):
    """Issue 14: the book rendered run pages for 94 s before printing anything."""
    _, runs = good_build
    run_ids = sorted(path.name for path in runs.iterdir())
    collect_pages(run_ids, runs, tmp_path / "pages")
    shown = capsys.readouterr().err
    assert "book: run pages: 100%" in shown and "2/2" in shown
    assert sorted(page.stem for page in (tmp_path / "pages").glob("*.ipynb")) == run_ids


def test_notebooks_get_paths_under_the_books_root_relative_and_others_whole(tmp_path):
    root = tmp_path / "book-root"
    (root / "configs").mkdir(parents=True)
    assert as_seen_from(root, root / "configs" / "demo.yaml") == "configs/demo.yaml"
    assert as_seen_from(root, tmp_path / "elsewhere") == str((tmp_path / "elsewhere").resolve())


def scroll_boxes(css: str) -> list[str]:
    """The selectors that ``css`` (minified or not) gives ``overflow-x: auto``."""
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", re.sub(r"/\*.*?\*/", "", css, flags=re.S))
    return [
        selector.strip()
        for selectors, body in rules
        if re.search(r"overflow-x\s*:\s*auto", body)
        for selector in selectors.split(",")
    ]


@pytest.mark.notebooks
def test_every_table_of_the_book_scrolls_inside_its_own_box(mixed_book):
    """Issue 23: at 390 px the verdicts' statements, the power table's last column and the reference's
    key table ran past the page's edge. Each table sits in a box the book's CSS lets scroll sideways:
    a cell's output, a div.alvit-scroll (several tables in one output) or the theme's table container."""
    from bs4 import BeautifulSoup

    _, base, _ = mixed_book
    root = base / "root" / "_build" / "html"
    css = "\n".join(path.read_text() for path in (root / "_static").rglob("*.css"))
    boxes = scroll_boxes(css)
    assert ".cell_output .output" in boxes and ".cell_output .alvit-scroll" in boxes
    assert ".pst-scrollable-table-container" in boxes

    def in_a_scroll_box(table) -> bool:
        for box in table.parents:
            classes = set(box.get("class") or [])
            if "alvit-scroll" in classes or "pst-scrollable-table-container" in classes:
                return True
            if "output" in classes and box.find_parent(class_="cell_output") is not None:
                return True
        return False

    tables = {}
    for page in root.rglob("*.html"):
        if "_static" not in page.parts:
            tables[page.relative_to(root).as_posix()] = BeautifulSoup(page.read_text(), "html.parser").find_all("table")
    for page in ("book/summary.html", "book/power.html", "book/reference.html"):  # the pages
        assert tables[page], page
    loose = {page: len([t for t in found if not in_a_scroll_box(t)]) for page, found in tables.items()}
    assert not any(loose.values()), {page: n for page, n in loose.items() if n}
