"""The book: run pages, the results summary, the run index and the tutorials, built with Jupyter Book.

``alvit book PROFILE [--runs DIR] [--html DIR]`` reads the run folders in ``--runs`` (default:
the profile's output) and never trains anything (``execute_notebooks: off``):

0. every run folder's ``rounds.csv`` is read and checked (columns, numbers) before any page is
   rendered, so a damaged file stops the build at once, naming the file and the column;
1. the runs the profile's ``pages`` key selects get a page: the notebook the sweep executed
   beside the run folder when it is up to date, else one rendered now from the run folder (a
   few seconds each, no torch; two at a time, with a progress bar);
2. ``notebooks/summary.ipynb`` (tables, figures, the claims), ``notebooks/power.ipynb`` (how sure
   the verdicts are, by :mod:`alvit.book.power`), ``notebooks/performance.ipynb`` (what alvit costs,
   from ``benchmarks/results/``) and ``notebooks/runs.ipynb`` (one row per run, linking its page)
   are executed, each published without the builder's paths;
3. each tutorial of the Teaching part (:data:`TUTORIALS`) is executed when missing or older than
   its template;
4. ``jupyter-book build`` with warnings as errors; when any run is simulated, every page of the
   book carries a banner saying how many (the theme's announcement bar). When ``_config.yml``
   sets ``repository.url``, every page gets Binder, Colab and repository buttons
   (:mod:`alvit.book.launch`).

All of it happens in a staging copy of the book's sources, ``_build/.staging/``. Only when the
HTML has built does it replace the previous build: the executed notebooks in ``book/`` and
``_build/html/``, or, with ``--html DIR``, the folder ``DIR`` alone (a preview of other run
folders that leaves the checkout's book as it was). A failure leaves the previous build whole
and the staging folder for reading. A freshly executed tutorial is kept in ``book/`` either way:
it does not depend on the runs, and executing it takes minutes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import yaml
from tqdm import tqdm

from alvit import paths
from alvit.book.launch import add_install_cell, repository_of, with_rerun_buttons
from alvit.book.pages import render_page, run_notebook, without_builder_paths
from alvit.config import lookup
from alvit.errors import ConfigError, ResultsError, one_line
from alvit.inputs import InputDigests
from alvit.profile import Profile, load_profile
from alvit.results import RunFolder, load_runs
from alvit.wording import plural

log = logging.getLogger(__name__)
RENDER_WORKERS = 2
STAGING = Path("_build") / ".staging"  # under the book's root
TUTORIALS = ("tutorial.ipynb", "calibration_tutorial.ipynb")  # the Teaching part, in notebooks/


def execute_notebook(template: Path, output: Path, parameters: dict, cwd: Path | None = None) -> None:
    """Run ``template`` with papermill into ``output``, keeping papermill's parameter cell off the page.

    A failure is one clear error naming the partly executed notebook.
    """
    import nbformat

    try:
        run_notebook(template, output, parameters=parameters, cwd=str(cwd or paths.book_root()))
    except Exception as err:
        raise ConfigError(
            f"{template.name} failed ({one_line(err)}); the partly executed notebook is {output}"
        ) from err
    executed = nbformat.read(str(output), as_version=4)
    without_builder_paths(executed)
    nbformat.write(executed, str(output))


def page_runs(profile: Profile, runs_dir: Path) -> list[str]:
    """Run ids of the profile's configurations that want a page and have a finished run folder."""
    chosen, digests = [], InputDigests()
    for cfg in profile.configs:
        folder = RunFolder(runs_dir / cfg.run_id)
        # A stale run folder (another setting, or an input file changed since) gets no page.
        if profile.wants_page(cfg) and folder.config.exists() and folder.is_finished(digests.record(cfg)):
            chosen.append(cfg.run_id)
    return chosen


def check_runs(runs_dir: Path) -> tuple[int, int]:
    """Read every run folder the summary will read; return (finished runs, simulated runs among them).

    A folder that cannot be read (a rounds.csv with a word among its numbers, say) stops the
    build here, before minutes of rendering, in one sentence naming the file and the column.
    """
    runs, problems = load_runs(runs_dir)
    if problems:
        more = f" ({plural(len(problems) - 1, 'other run folder')} cannot be read either)" if len(problems) > 1 else ""
        raise ResultsError(problems[0] + more)
    finished = runs[runs["finished"]].drop_duplicates("run_id")
    if finished.empty:
        raise ConfigError(
            f"{runs_dir} holds no finished run folder; run the sweep first (alvit sweep <profile>), "
            f"or simulate one (alvit simulate <profile> --out DIR) and pass --runs DIR"
        )
    return len(finished), int(finished["simulated"].sum())


def _up_to_date(notebook: Path, folder: RunFolder) -> bool:
    return notebook.exists() and notebook.stat().st_mtime >= folder.rounds.stat().st_mtime


def collect_pages(run_ids: list[str], runs_dir: Path, pages_dir: Path, progress: bool = True) -> None:
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
    with (
        ProcessPoolExecutor(RENDER_WORKERS, mp_context=get_context("spawn")) as pool,
        tqdm(
            total=len(to_render), desc="book: run pages", unit="page", disable=not progress, dynamic_ncols=True
        ) as bar,
    ):
        jobs = {
            pool.submit(render_page, runs_dir / run_id, pages_dir / f"{run_id}.ipynb"): run_id for run_id in to_render
        }
        for job in as_completed(jobs):
            run_id = jobs[job]
            try:
                job.result()
            except Exception as err:
                raise ConfigError(
                    f"the page of run {run_id} could not be rendered ({one_line(err)}); "
                    f"see {pages_dir / (run_id + '.ipynb')}"
                ) from err
            bar.update(1)


def build_book(
    profile_path: str | Path,
    runs_dir: Path | None = None,
    tutorial: bool = True,
    root: Path | None = None,
    html: str | Path | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Build the book of the profile at ``profile_path`` from the run folders in ``runs_dir``.

    ``root`` is the folder holding ``_config.yml``, ``_toc.yml`` and ``book/`` (default: the
    checkout). ``html`` is where the HTML goes (default: ``<root>/_build/html``, with the
    executed notebooks in ``<root>/book/``); either is replaced only once the new build has
    succeeded. Returns the index page, the number of run pages and of HTML pages, and seconds.
    """
    start = time.perf_counter()
    profile = load_profile(profile_path)
    root = root or paths.book_root()
    runs_dir = paths.resolve(runs_dir if runs_dir is not None else profile.output)
    if not runs_dir.is_dir():
        raise ConfigError(
            f"{runs_dir} does not exist; run the sweep first (alvit sweep <profile>), "
            f"or simulate one (alvit simulate <profile> --out DIR) and pass --runs DIR"
        )
    destination = paths.resolve(html) if html is not None else root / "_build" / "html"
    if html is not None:
        check_destination(destination)
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jupyter_book is None:  # known before minutes of rendering, not after
        raise ConfigError("jupyter-book is not installed here; run make install (it pins jupyter-book<2)")
    n_runs, n_simulated = check_runs(runs_dir)
    staging = stage_sources(root, simulated_banner(n_simulated, n_runs))
    book = staging / "book"
    phase = _Phases()
    run_ids = page_runs(profile, runs_dir)
    collect_pages(run_ids, runs_dir, book / "pages", progress)
    phase.done(f"{len(run_ids)} run pages")
    execute_notebook(
        paths.notebook_template("protocol.ipynb"),
        book / "protocol.ipynb",
        {"PROFILE": as_seen_from(root, profile_path)},
        root,
    )
    execute_notebook(
        paths.notebook_template("summary.ipynb"),
        book / "summary.ipynb",
        {
            "PROFILE": profile.name,
            "PROFILE_PATH": as_seen_from(root, profile_path),
            "RUNS_DIR": as_seen_from(root, runs_dir),
        },
        root,
    )
    phase.done("results summary")
    execute_notebook(
        paths.notebook_template("power.ipynb"),
        book / "power.ipynb",
        {"PROFILE": as_seen_from(root, profile_path), "RUNS_DIR": as_seen_from(root, runs_dir)},
        root,
    )
    phase.done("power of the verdicts")
    execute_notebook(paths.notebook_template("performance.ipynb"), book / "performance.ipynb", {}, root)
    phase.done("performance and cost")
    execute_notebook(
        paths.notebook_template("runs.ipynb"),
        book / "runs.ipynb",
        {"RUNS_DIR": as_seen_from(root, runs_dir), "PAGES": run_ids},
        root,
    )
    phase.done("run index")
    fresh_tutorials = stage_tutorials(root, book, tutorial)
    if fresh_tutorials:
        phase.done(plural(len(fresh_tutorials), "tutorial"))
    url, branch = repository_of(yaml.safe_load((root / "_config.yml").read_text()) or {})
    if url:  # the launch buttons open these notebooks where alvit is not installed yet
        for notebook in book.rglob("*.ipynb"):
            add_install_cell(notebook, url, branch)
    result = subprocess.run(
        [jupyter_book, "build", str(staging), "--warningiserror", "--keep-going"], capture_output=True, text=True
    )
    phase.done("HTML (jupyter-book build)")
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        problems = [line for line in lines if "WARNING" in line or "ERROR" in line] or lines[-25:]
        raise ConfigError(
            f"the book did not build (warnings are errors; the previous build is untouched, this one is in {staging}); "
            "jupyter-book said:\n" + "\n".join(problems[:25])
        )
    publish(staging, root, destination, every_notebook=html is None, tutorials=fresh_tutorials)
    return {
        "index": destination / "index.html",
        "run_pages": len(run_ids),
        "html_pages": len(list(destination.rglob("*.html"))),
        "seconds": round(time.perf_counter() - start, 1),
    }


def as_seen_from(root: Path, path: str | Path) -> str:
    """``path`` as a notebook run from ``root`` reads it: relative when it lies under ``root``.

    Notebooks record their parameters and glue them into pages, so a relative path keeps the
    builder's folders out of the published book.
    """
    resolved, root = paths.resolve(path), paths.resolve(root)
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def check_destination(destination: Path) -> None:
    """``--html DIR`` may be new, empty, or an earlier build (it is replaced); never a folder of other files."""
    if destination.exists() and not destination.is_dir():
        raise ConfigError(f"--html {destination} is a file; choose a folder for the book's HTML")
    if destination.is_dir() and any(destination.iterdir()) and not (destination / "index.html").exists():
        raise ConfigError(f"--html {destination} holds files that are not a built book; choose a new or empty folder")


def simulated_banner(n_simulated: int, n_runs: int) -> str:
    """The announcement every page shows when some runs are simulated ("" when none is)."""
    if not n_simulated:
        return ""
    which = f"All {n_runs} runs" if n_simulated == n_runs else f"{n_simulated} of the {n_runs} runs"
    return (
        f"<strong>Simulated results.</strong> {which} in this book come from <code>alvit simulate</code>, "
        "with no training: their numbers preview the layout and are not measurements."
    )


def stage_sources(root: Path, announcement: str) -> Path:
    """A fresh staging copy of the book's sources (configuration, contents, static pages); return its root.

    The staging folder of an earlier failed build is removed first; run folders and executed
    notebooks are not copied (the build writes its own).
    """
    staging = root / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copy2(root / "_toc.yml", staging / "_toc.yml")
    config = with_rerun_buttons(yaml.safe_load((root / "_config.yml").read_text()) or {})
    if announcement:  # the theme's options, where _config.yml sets the others (they would hide html.announcement)
        options = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_theme_options", {})
        options["announcement"] = announcement
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(root / "book", staging / "book", ignore=shutil.ignore_patterns("runs", "pages", "*.ipynb", ".*"))
    return staging


def stage_tutorials(root: Path, book: Path, execute: bool) -> list[str]:
    """Put each of :data:`TUTORIALS` in the staging ``book``: executed now when missing or older than
    its template (and ``execute``), else the one executed before. Return the names executed now."""
    fresh = []
    for name in TUTORIALS:
        kept = root / "book" / name
        template = paths.notebook_template(name)
        if execute and (not kept.exists() or kept.stat().st_mtime < template.stat().st_mtime):
            execute_notebook(template, book / name, {}, root)
            fresh.append(name)
        elif kept.exists():
            shutil.copy2(kept, book / name)
    return fresh


def publish(staging: Path, root: Path, destination: Path, every_notebook: bool, tutorials: list[str]) -> None:
    """Move the built HTML to ``destination`` and, when ``every_notebook``, the executed notebooks to ``root/book``.

    The ``tutorials`` executed in this build (names in :data:`TUTORIALS`) move to ``root/book``
    either way; the others there are left as they are. Each replaced folder is renamed aside first
    and removed only once its successor is in place.
    """
    replace_folder(staging / "_build" / "html", destination)
    staged = staging / "book"
    executed = (
        [notebook for notebook in staged.glob("*.ipynb") if notebook.name not in TUTORIALS] if every_notebook else []
    )
    if every_notebook:
        replace_folder(staged / "pages", root / "book" / "pages")
    executed += [staged / name for name in tutorials]  # the freshly executed ones
    for notebook in executed:
        os.replace(notebook, root / "book" / notebook.name)
    shutil.rmtree(staging)


def replace_folder(new: Path, old: Path) -> None:
    """Put the folder ``new`` where ``old`` is; ``old`` is back in place if the move fails."""
    old.parent.mkdir(parents=True, exist_ok=True)
    aside = old.with_name(f".{old.name}.replaced")
    if aside.exists():
        shutil.rmtree(aside)
    if old.exists():
        old.rename(aside)
    try:
        shutil.move(str(new), str(old))  # a rename on one file system; a copy to another
    except BaseException:
        if aside.exists():
            shutil.rmtree(old, ignore_errors=True)
            aside.rename(old)
        raise
    shutil.rmtree(aside, ignore_errors=True)


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

    noise = "; ".join(
        f"{kind} noise at rates {', '.join(f'{r:g}' for r in sorted({c.noise.rate for c in configs if c.noise.kind == kind}))}"
        for kind in dict.fromkeys(c.noise.kind for c in configs)
    )
    return {
        "name": profile.name,
        "path": path,
        "description": profile.description or "no description",
        "runs": len(configs),
        "datasets": values("dataset"),
        "models": values("model"),
        "weights": "pretrained"
        if all(c.pretrained for c in configs)
        else "trained from scratch"
        if not any(c.pretrained for c in configs)
        else "pretrained and from scratch",
        "noise": noise,
        "strategies": values("strategy"),
        "seeds": values("seed"),
        "initial": values("al.initial"),
        "query": values("al.query"),
        "rounds": values("al.rounds"),
        "budget": values("budget"),
        "epochs": values("train.epochs"),
        "lr": values("train.lr"),
        "batch": values("train.batch_size"),
        "patience": values("train.patience"),
        "augment": values("train.augment"),
        "mode": values("train.mode"),
        "calibrate": values("acq.calibrate"),
    }
