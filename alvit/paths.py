"""Where alvit finds its notebook templates and its book, in a checkout or an installed package.

In a checkout (``git clone``, ``pip install -e .``) the templates are ``notebooks/*.ipynb`` beside
the package and the book's pages are ``book/`` with ``_config.yml`` at the root. A plain
``pip install .`` copies the templates into the package as ``alvit/_notebooks/`` (see
``pyproject.toml``), so ``alvit sweep`` and ``alvit run`` work from any folder; building the
book needs a checkout, whose pages it renders.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from alvit.errors import ConfigError

if TYPE_CHECKING:
    from alvit.config import ExperimentConfig
    from alvit.profile import Profile

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent  # the repository root, when alvit runs from a checkout


def git_state(repo: Path = CHECKOUT) -> tuple[str | None, bool | None]:
    """The commit checked out in ``repo`` and whether tracked files differ from it: commit None where
    ``repo`` is no checkout (an installed package, a copied tree), both None where git cannot run."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD") or None
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


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


def existing_folder(path: str | Path, named: str, holding: str = "the run folders") -> Path:
    """The folder ``path`` a command reads (``--runs``), resolved; one sentence when it is missing or a file.

    ``named`` is how the user gave it (``--runs``) and ``holding`` what it should hold, for the
    message: a typo in a folder to read is refused, never read as an empty one.
    """
    folder = resolve(path)
    if not folder.exists():
        raise ConfigError(f"{named} {folder} does not exist; give the folder that holds {holding}")
    if not folder.is_dir():
        raise ConfigError(f"{named} {folder} is a file, not a folder; give the folder that holds {holding}")
    return folder


def runs_folder(runs: str | Path, profile: Profile) -> Path:
    """``--runs DIR`` of a command that reads a profile's run folders (status, power, book), resolved;
    one sentence when it is missing or a file, naming where the profile's sweep writes them."""
    return existing_folder(
        runs, "--runs", f"the run folders (profile {profile.name}'s sweep writes them to {profile.output})"
    )


def writable_folder(path: str | Path, named: str, holding: str = "the run folders") -> Path:
    """The folder ``path`` a command writes into, resolved, once it is known it can: a folder that
    exists and takes new files, or a path whose nearest existing folder does. Leaves nothing behind.

    Checked before any work starts, so a typo costs a sentence (exit 2), not a finished run's results.
    """
    folder = resolve(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{named} {folder} is a file, not a folder; choose a folder for {holding}")
    _check_can_write(folder, named, folder)
    return folder


def writable_file(path: str | Path, named: str) -> Path:
    """The file ``path`` a command writes (``--json FILE``), resolved, once its folder is known to take it."""
    file = resolve(path)
    if file.is_dir():
        raise ConfigError(f"{named} {file} is a folder; give the name of a file to write")
    _check_can_write(file.parent, named, file)
    return file


def _check_can_write(folder: Path, named: str, target: Path) -> None:
    """``folder`` exists and takes new entries, or its nearest existing ancestor does (``target`` is
    what the user named). Writing is tried, with a folder made and removed at once: permissions,
    read-only mounts and pseudo file systems (``/proc``) each refuse in their own way."""
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())  # "/" exists
    if not existing.is_dir():
        raise ConfigError(f"{named} {target} cannot be created: {existing} is a file; choose another path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".alvit-write-check-", dir=existing))
    except OSError as err:
        verb = "written" if target.exists() else "created"
        raise ConfigError(
            f"{named} {target} cannot be {verb}: {existing} takes no new files ({err.strerror or err}); "
            "choose a folder you can write"
        ) from None


def make_folder(path: Path, named: str, holding: str = "the run folders") -> None:
    """Create the folder ``path`` (and its parents), or say in one sentence why it cannot be one.

    ``named`` is how the user gave it (``--out``, ``the profile's output``) and ``holding`` what
    it is for, for the message.
    """
    writable_folder(path, named, holding)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # the file system changed since the check
        raise ConfigError(f"{named} {path} cannot be created ({err.strerror or err}); choose another folder") from None


def feature_cache(cache: str | None) -> Path:
    """Linear mode's feature cache: a configuration's ``cache``, else ``$ALVIT_DATA/features``."""
    return resolve(cache) if cache else data_home() / "features"


def check_feature_caches(configs: Iterable[ExperimentConfig]) -> None:
    """The feature cache of every linear-mode configuration in ``configs`` can be a folder, or one sentence.

    ``alvit run``, ``alvit sweep`` and ``alvit fetch --features`` check it before any run starts;
    a cache that is a file would otherwise fail each run once its backbone is built.
    """
    for cache in dict.fromkeys(feature_cache(cfg.cache) for cfg in configs if cfg.train.mode == "linear"):
        writable_folder(cache, "cache", "the cached features")


def data_home() -> Path:
    """Where downloaded datasets live: ``$ALVIT_DATA``, else ``~/.cache/alvit`` (no torch import)."""
    return Path(os.environ.get("ALVIT_DATA", Path.home() / ".cache" / "alvit")).expanduser()
