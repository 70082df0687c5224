"""The book: execute the summary and tutorial notebooks into ``book/``, then build with Jupyter Book.

The book never executes a run itself (``execute_notebooks: off``): it shows the notebooks the
sweep executed, the summary of their run folders, and the tutorial.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from alvit.errors import ConfigError
from alvit.sweep import REPO, Profile

NOTEBOOKS = REPO / "notebooks"
BOOK = REPO / "book"


def execute_notebook(template: Path, output: Path, parameters: dict) -> None:
    """Run ``template`` with papermill into ``output``, keeping papermill's parameter cell off the page.

    A failure is one clear error naming the partly executed notebook.
    """
    import nbformat
    import papermill

    try:
        papermill.execute_notebook(str(template), str(output), parameters=parameters, cwd=str(REPO),
                                   progress_bar=False, kernel_name="python3")
    except Exception as err:
        lines = str(err).strip().splitlines()
        raise ConfigError(f"{template.name} failed ({err.__class__.__name__}: {lines[-1] if lines else ''}); "
                          f"the partly executed notebook is {output}") from err
    executed = nbformat.read(str(output), as_version=4)
    for cell in executed.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(executed, str(output))


def build_book(profile: Profile, tutorial: bool = True) -> Path:
    """Summary (always, it is quick) and tutorial (when missing or older than its template), then HTML."""
    runs_dir = profile.output if profile.output.is_absolute() else REPO / profile.output
    if not runs_dir.is_dir():
        raise ConfigError(f"{runs_dir} does not exist; run the sweep first: alvit sweep configs/profiles/{profile.name}.yaml")
    execute_notebook(NOTEBOOKS / "summary.ipynb", BOOK / "summary.ipynb", {"PROFILE": profile.name, "RUNS_DIR": str(runs_dir)})
    tutorial_out = BOOK / "tutorial.ipynb"
    if tutorial and (not tutorial_out.exists() or tutorial_out.stat().st_mtime < (NOTEBOOKS / "tutorial.ipynb").stat().st_mtime):
        execute_notebook(NOTEBOOKS / "tutorial.ipynb", tutorial_out, {})
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jupyter_book is None:
        raise ConfigError("jupyter-book is not installed here; run make install (it pins jupyter-book<2)")
    result = subprocess.run([jupyter_book, "build", str(REPO), "--warningiserror", "--keep-going"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        problems = [line for line in lines if "WARNING" in line or "ERROR" in line] or lines[-25:]
        raise ConfigError("the book did not build (warnings are errors); jupyter-book said:\n" + "\n".join(problems[:25]))
    return REPO / "_build" / "html" / "index.html"
