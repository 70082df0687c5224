"""The book: run pages, the results summary, the run index and the tutorial, built with Jupyter Book.

``alvit book PROFILE [--runs DIR]`` reads the run folders in ``DIR`` (default: the profile's
output) and never trains anything (``execute_notebooks: off``):

1. the runs the profile's ``pages`` key selects get a page in ``book/pages/``: the notebook the
   sweep executed beside the run folder when it is up to date, else one rendered now from the
   run folder (a few seconds each, no torch; two at a time);
2. ``notebooks/summary.ipynb`` (tables, figures, the claims), ``notebooks/power.ipynb`` (how sure
   the verdicts are, by :mod:`alvit.power`) and ``notebooks/runs.ipynb`` (one row per run, linking
   its page) are executed into ``book/``;
3. ``notebooks/tutorial.ipynb`` is executed when missing or older than its template;
4. ``jupyter-book build`` with warnings as errors.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from alvit import paths
from alvit.config import lookup
from alvit.errors import ConfigError
from alvit.pages import encrypted_kernel_manager, publish, render_page
from alvit.results import RunFolder
from alvit.sweep import Profile, load_profile
from alvit.task import one_line

log = logging.getLogger(__name__)
RENDER_WORKERS = 2


def execute_notebook(template: Path, output: Path, parameters: dict, cwd: Path | None = None) -> None:
    """Run ``template`` with papermill into ``output``, keeping papermill's parameter cell off the page.

    A failure is one clear error naming the partly executed notebook.
    """
    import nbformat
    import papermill

    try:
        papermill.execute_notebook(str(template), str(output), parameters=parameters, cwd=str(cwd or paths.book_root()),
                                   progress_bar=False, kernel_name="python3", kernel_manager_class=encrypted_kernel_manager())
    except Exception as err:
        raise ConfigError(f"{template.name} failed ({one_line(err)}); the partly executed notebook is {output}") from err
    executed = nbformat.read(str(output), as_version=4)
    publish(executed, cwd or paths.book_root())
    nbformat.write(executed, str(output))


def page_runs(profile: Profile, runs_dir: Path) -> list[str]:
    """Run ids of the profile's configurations that want a page and have a finished run folder."""
    chosen = []
    for cfg in profile.configs:
        folder = RunFolder(runs_dir / cfg.run_id)
        if profile.wants_page(cfg) and folder.rounds.exists() and len(folder.read_rounds()) == cfg.al.rounds + 1:
            chosen.append(cfg.run_id)
    return chosen


def _up_to_date(notebook: Path, folder: RunFolder) -> bool:
    return notebook.exists() and notebook.stat().st_mtime >= folder.rounds.stat().st_mtime


def collect_pages(run_ids: list[str], runs_dir: Path, pages_dir: Path) -> None:
    """Fill ``pages_dir`` with one page per run: the sweep's notebook if current, else rendered now."""
    if pages_dir.exists():
        shutil.rmtree(pages_dir)
    pages_dir.mkdir(parents=True)
    to_render = []
    for run_id in run_ids:
        executed = runs_dir / f"{run_id}.ipynb"
        if _up_to_date(executed, RunFolder(runs_dir / run_id)):
            shutil.copyfile(executed, pages_dir / executed.name)
        else:
            to_render.append(run_id)
    if not to_render:
        return
    # Processes, not threads: each render runs a kernel, and papermill is not thread-safe.
    with ProcessPoolExecutor(RENDER_WORKERS, mp_context=get_context("spawn")) as pool:
        jobs = [pool.submit(render_page, runs_dir / run_id, pages_dir / f"{run_id}.ipynb") for run_id in to_render]
        for run_id, job in zip(to_render, jobs):
            try:
                job.result()
            except Exception as err:
                raise ConfigError(f"the page of run {run_id} could not be rendered ({one_line(err)}); "
                                  f"see {pages_dir / (run_id + '.ipynb')}") from err


def build_book(profile_path: str | Path, runs_dir: Path | None = None, tutorial: bool = True,
               root: Path | None = None) -> dict[str, object]:
    """Build the book of the profile at ``profile_path`` from the run folders in ``runs_dir``.

    ``root`` is the folder holding ``_config.yml``, ``_toc.yml`` and ``book/`` (default: the
    checkout). Returns the index page, the number of run pages and of HTML pages, and seconds.
    """
    start = time.perf_counter()
    profile = load_profile(profile_path)
    root = root or paths.book_root()
    runs_dir = paths.resolve(runs_dir if runs_dir is not None else profile.output)
    if not runs_dir.is_dir():
        raise ConfigError(f"{runs_dir} does not exist; run the sweep first (alvit sweep <profile>), "
                          f"or simulate one (alvit simulate <profile> --out DIR) and pass --runs DIR")
    book = root / "book"
    phase = _Phases()
    run_ids = page_runs(profile, runs_dir)
    collect_pages(run_ids, runs_dir, book / "pages")
    phase.done(f"{len(run_ids)} run pages")
    execute_notebook(paths.notebook_template("protocol.ipynb"), book / "protocol.ipynb", {"PROFILE": str(paths.resolve(profile_path))}, root)
    execute_notebook(paths.notebook_template("summary.ipynb"), book / "summary.ipynb",
                     {"PROFILE": profile.name, "RUNS_DIR": str(runs_dir)}, root)
    phase.done("results summary")
    execute_notebook(paths.notebook_template("power.ipynb"), book / "power.ipynb",
                     {"PROFILE": str(paths.resolve(profile_path)), "RUNS_DIR": str(runs_dir)}, root)
    phase.done("power of the verdicts")
    execute_notebook(paths.notebook_template("performance.ipynb"), book / "performance.ipynb", {}, root)
    phase.done("performance and cost")
    execute_notebook(paths.notebook_template("runs.ipynb"), book / "runs.ipynb", {"RUNS_DIR": str(runs_dir), "PAGES": run_ids}, root)
    phase.done("run index")
    tutorial_out = book / "tutorial.ipynb"
    template = paths.notebook_template("tutorial.ipynb")
    if tutorial and (not tutorial_out.exists() or tutorial_out.stat().st_mtime < template.stat().st_mtime):
        execute_notebook(template, tutorial_out, {}, root)
        phase.done("tutorial")
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jupyter_book is None:
        raise ConfigError("jupyter-book is not installed here; run make install (it pins jupyter-book<2)")
    result = subprocess.run([jupyter_book, "build", str(root), "--warningiserror", "--keep-going"], capture_output=True, text=True)
    phase.done("HTML (jupyter-book build)")
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        problems = [line for line in lines if "WARNING" in line or "ERROR" in line] or lines[-25:]
        raise ConfigError("the book did not build (warnings are errors); jupyter-book said:\n" + "\n".join(problems[:25]))
    html = root / "_build" / "html"
    return {"index": html / "index.html", "run_pages": len(run_ids), "html_pages": len(list(html.rglob("*.html"))),
            "seconds": round(time.perf_counter() - start, 1)}


class _Phases:
    """Log how long each step of the build took (the paper-scale book's cost is worth seeing)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def done(self, what: str) -> None:
        now = time.perf_counter()
        log.info("book: %s in %.0f s", what, now - self.last)
        self.last = now


def profile_facts(profile: Profile, path: str) -> dict[str, object]:
    """What the protocol page says of the profile (read from ``path``) a book was built from."""
    configs = profile.configs

    def values(key: str) -> str:
        seen = list(dict.fromkeys(str(lookup(cfg, key)) for cfg in configs))
        return ", ".join(seen)

    noise = "; ".join(f"{kind} noise at rates {', '.join(f'{r:g}' for r in sorted({c.noise.rate for c in configs if c.noise.kind == kind}))}"
                      for kind in dict.fromkeys(c.noise.kind for c in configs))
    return {
        "name": profile.name, "path": path, "description": profile.description or "no description",
        "runs": len(configs), "datasets": values("dataset"), "models": values("model"),
        "weights": "pretrained" if all(c.pretrained for c in configs) else "trained from scratch" if not any(c.pretrained for c in configs) else "pretrained and from scratch",
        "noise": noise, "strategies": values("strategy"), "seeds": values("seed"),
        "initial": values("al.initial"), "query": values("al.query"), "rounds": values("al.rounds"), "budget": values("budget"),
        "epochs": values("train.epochs"), "lr": values("train.lr"), "batch": values("train.batch_size"),
        "patience": values("train.patience"), "augment": values("train.augment"),
    }
