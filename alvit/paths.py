"""Where alvit finds its notebook templates and its book, in a checkout or an installed package.

In a checkout (``git clone``, ``pip install -e .``) the templates are ``notebooks/*.ipynb`` beside
the package and the book's pages are ``book/`` with ``_config.yml`` at the root. A plain
``pip install .`` copies the templates into the package as ``alvit/_notebooks/`` (see
``pyproject.toml``), so ``alvit sweep`` and ``alvit run`` work from any folder; building the
book needs a checkout, whose pages it renders.
"""

from __future__ import annotations

import os
from pathlib import Path

from alvit.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent  # the repository root, when alvit runs from a checkout


def notebook_template(name: str) -> Path:
    """The template ``notebooks/<name>`` of the checkout, else the copy installed with the package."""
    for folder in (CHECKOUT / "notebooks", PACKAGE / "_notebooks"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(
        f"the notebook template {name} is neither in {CHECKOUT / 'notebooks'} nor installed with alvit; reinstall alvit"
    )


def book_root() -> Path:
    """The checkout holding ``_config.yml``, ``_toc.yml`` and ``book/``: where the book is built."""
    if not (CHECKOUT / "_config.yml").is_file() or not (CHECKOUT / "book").is_dir():
        raise ConfigError(
            f"building the book needs a checkout of alvit (with _config.yml and book/), not an installed copy in {PACKAGE}; "
            "git clone the repository and run alvit book there"
        )
    return CHECKOUT


def resolve(path: str | Path) -> Path:
    """A path from a profile or the command line: relative ones are taken from the current folder."""
    return Path(path).expanduser().resolve()


def make_folder(path: Path, named: str, holding: str = "the run folders") -> None:
    """Create the folder ``path`` (and its parents), or say in one sentence why it cannot be one.

    ``named`` is how the user gave it (``--out``, ``the profile's output``) and ``holding`` what
    it is for, for the message.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{named} {path} is a file, not a folder; choose a folder for {holding}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"{named} {path} cannot be a folder: a file stands in its path; choose another folder"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{named} {path} cannot be created here (permission denied); choose a folder you can write"
        ) from None


def data_home() -> Path:
    """Where downloaded datasets live: ``$ALVIT_DATA``, else ``~/.cache/alvit`` (no torch import)."""
    return Path(os.environ.get("ALVIT_DATA", Path.home() / ".cache" / "alvit")).expanduser()
