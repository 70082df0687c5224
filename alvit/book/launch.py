"""Rerun buttons: Binder, Colab and the repository, all from ``repository.url`` in ``_config.yml``.

The book's pages are notebooks executed by the build, and they are not committed to the main
branch. The book workflow publishes them, on top of the commit they were built from, to the
branch that ``repository.branch`` names (``.ci/publish-notebooks``), so a launch button opens a
file that exists. With no URL set the buttons are left out: the theme cannot build a link
without one. A page opened in Colab or Binder has no alvit yet; its first cell, hidden in the
book, installs it from that same branch.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

INSTALL_TAG = "alvit-install"  # marks the cell, so a notebook staged twice gets it once
LAUNCHERS = {  # where the buttons launch, unless _config.yml has launch_buttons of its own
    "notebook_interface": "jupyterlab",
    "binderhub_url": "https://mybinder.org",
    "colab_url": "https://colab.research.google.com",
}


def repository_of(config: dict) -> tuple[str, str]:
    """The repository URL (``""`` when unset) and the branch holding the executed notebooks."""
    repository = config.get("repository") or {}
    return str(repository.get("url") or "").rstrip("/"), str(repository.get("branch") or "main")


def with_rerun_buttons(config: dict) -> dict:
    """``config`` (a parsed ``_config.yml``) with the repository and launch buttons on when the URL is set.

    They go in the theme's options, because ``sphinx.config.html_theme_options`` in ``_config.yml``
    replaces the ones Jupyter Book derives from ``repository`` and ``launch_buttons``. Without a URL
    both are off: the theme would fail building a launch link from no repository.
    """
    url, branch = repository_of(config)
    launchers = config.pop("launch_buttons", None) or dict(LAUNCHERS)
    config.pop("repository", None)
    options = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_theme_options", {})
    options["use_repository_button"] = bool(url)
    if url:
        options.update(repository_url=url, repository_branch=branch, path_to_docs="", launch_buttons=launchers)
    return config


def install_cell(url: str, branch: str) -> nbformat.NotebookNode:
    """A code cell, hidden from the book, that installs alvit from ``url`` at ``branch`` where it is missing."""
    source = (
        "# Opened in Colab or Binder: install alvit from the branch this book was built from.\n"
        "import importlib.util, subprocess, sys\n"
        'if importlib.util.find_spec("alvit") is None:\n'
        f'    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "alvit @ git+{url}@{branch}"])'
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["remove-cell", INSTALL_TAG]
    return cell


def add_install_cell(notebook_path: Path, url: str, branch: str) -> None:
    """Put :func:`install_cell` first in the notebook at ``notebook_path``, once."""
    notebook = nbformat.read(str(notebook_path), as_version=4)
    if any(INSTALL_TAG in cell.metadata.get("tags", []) for cell in notebook.cells):
        return
    notebook.cells.insert(0, install_cell(url, branch))
    nbformat.write(notebook, str(notebook_path))
