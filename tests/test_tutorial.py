"""The tutorials, for a classroom: exercises with hints and worked solutions, code that fits the page,
the same oracle as the loop, and math typeset offline in the built book. The first chapter's content
is tested here, the calibration chapter's in test_calibration_tutorial.py."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import REPO

from alvit.book.build import TUTORIALS

TUTORIAL = REPO / "notebooks" / "tutorial.ipynb"
PAGE_WIDTH = 88  # characters of code that fit the book's code blocks without a scroll bar
EXERCISES = {"tutorial.ipynb": 5, "calibration_tutorial.ipynb": 5}  # every chapter of the Teaching part
# A formula of each chapter, as it stands in the HTML before MathJax typesets it.
A_FORMULA = {"tutorial.ipynb": "\\(H(x)", "calibration_tutorial.ipynb": "\\(\\mathrm{conf}_i"}


@pytest.fixture(scope="module")
def tutorial():
    return nbformat.read(str(TUTORIAL), as_version=4)


def test_every_tutorial_the_book_executes_is_tested_here():
    assert set(EXERCISES) == set(A_FORMULA) == set(TUTORIALS)


@pytest.mark.parametrize("name", TUTORIALS)
def test_no_code_line_is_cut_off_on_the_page(name):
    chapter = nbformat.read(str(REPO / "notebooks" / name), as_version=4)
    long = [
        line
        for cell in chapter.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > PAGE_WIDTH
    ]
    assert not long, long


@pytest.mark.parametrize("name", TUTORIALS)
def test_every_exercise_has_a_hint_a_worked_solution_and_solution_code_folded_away(name):
    cells = nbformat.read(str(REPO / "notebooks" / name), as_version=4).cells
    exercises = [
        i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and re.match(r"\*\*\d\. ", cell.source)
    ]
    assert len(exercises) == EXERCISES[name]
    for i in exercises:
        assert "```{dropdown} Hint" in cells[i].source and "```{dropdown} Worked solution" in cells[i].source
        solution = cells[i + 1]
        assert solution.cell_type == "code" and "hide-cell" in solution.metadata.get("tags", [])


def test_exercise_1_asks_for_several_seeds_before_a_conclusion(tutorial):
    first = next(
        cell.source for cell in tutorial.cells if cell.cell_type == "markdown" and cell.source.startswith("**1.")
    )
    assert "three seeds" in first


def test_the_oracle_is_the_loops_and_the_moderate_noise_story_is_a_hypothesis(tutorial):
    source = "\n".join(cell.source for cell in tutorial.cells)
    assert "make_oracle(cfg" in source and "hypothesis" in source.lower()


@pytest.mark.slow
@pytest.mark.parametrize("name", TUTORIALS)
def test_the_built_tutorial_typesets_its_math_offline_in_headless_chromium(name, tmp_path):
    """Execute a tutorial, build a one-chapter book, and let Chromium run the page's scripts offline."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed here (apt-get install chromium)")
    import papermill

    root = tmp_path / "book"
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    shutil.copytree(REPO / "book" / "_static", root / "book" / "_static")
    shutil.copy(REPO / "book" / "definitions.md", root / "book" / "definitions.md")  # a chapter links to it
    page = Path(name).stem
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/{page}\nchapters:\n  - file: book/definitions\n")
    papermill.execute_notebook(
        str(REPO / "notebooks" / name), str(root / "book" / name), cwd=str(REPO), progress_bar=False
    )
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"  # the venv's
    subprocess.run([jupyter_book, "build", str(root), "-W"], check=True, capture_output=True)
    html = root / "_build" / "html" / "book" / f"{page}.html"
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--virtual-time-budget=10000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "<mjx-container" in dom  # MathJax ran from the book's own _static, with no network
    assert A_FORMULA[name] not in dom


def test_the_tutorials_model_is_the_loops_round_0_model(tmp_path):
    """Section 2 trains with the loop's own function, so its model predicts exactly as round 0 of a run."""
    from alvit.config import load_config
    from alvit.data import load_dataset
    from alvit.loop import make_oracle, run_experiment, train_initial_model
    from alvit.metrics import PerSample
    from alvit.results import RunFolder
    from alvit.train import predict

    source = "\n".join(cell.source for cell in nbformat.read(str(TUTORIAL), as_version=4).cells)
    assert "train_initial_model(cfg, data, oracle)" in source and "create_model" not in source
    cfg = load_config("configs/demo.yaml", ["al.rounds=1", "train.epochs=3", "noise.rate=0.4"])
    data = load_dataset(cfg.dataset)
    model, pre = train_initial_model(cfg, data, make_oracle(cfg, data.train_labels, data.num_classes))
    mine = PerSample.from_probs(predict(model, data.test_images, pre, 256).probs, data.test_labels)
    loops = RunFolder(run_experiment(cfg, tmp_path / "run", progress=False)).read_predictions(0)
    np.testing.assert_array_equal(mine.confidence, loops.confidence)
    np.testing.assert_array_equal(mine.prediction, loops.prediction)
