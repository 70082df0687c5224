"""Sweeps: a profile's grid, one papermill run of ``notebooks/experiment.ipynb`` per configuration.

A profile (``configs/profiles/*.yaml``) names the shared protocol (``base``: any config keys)
and the grid (``grid``: dotted keys to lists of values; the sweep is their product). Each
configuration writes ``<output>/<run-id>.ipynb`` (the executed notebook, a page of the book)
and its run folder ``<output>/<run-id>/`` beside it. Finished configurations are skipped; a
failed one leaves its error in ``<output>/_failed/<run-id>.txt`` (and the partial notebook
there) and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from alvit import pages, paths
from alvit.config import (
    ExperimentConfig,
    flatten,
    load_config,
    lookup,
    with_overrides,
)
from alvit.errors import ConfigError
from alvit.results import RunFolder, atomic_write_text

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Profile:
    """A named grid of experiments sharing one protocol."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    output: Path
    description: str = ""
    configs: list[ExperimentConfig] = field(default_factory=list)
    pages: str | dict[str, list[Any]] = "all"  # which runs get a book page: all, none, or {dotted key: [values]}

    def wants_page(self, cfg: ExperimentConfig) -> bool:
        """Does the run of ``cfg`` get a page of its own in the book?"""
        if isinstance(self.pages, dict):
            return all(lookup(cfg, key) in values for key, values in self.pages.items())
        return self.pages == "all"


def load_profile(path: str | Path, only: list[str] | tuple[str, ...] = ()) -> Profile:
    """Read a profile, expand its grid into validated configs, keep those matching ``only``.

    ``only`` items are ``key=value`` or ``key=v1,v2`` (dotted keys, as in the grid).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile {path} does not exist; profiles live in configs/profiles/ (demo.yaml, paper.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - {"name", "description", "base", "grid", "output", "pages"})
    if unknown:
        raise ConfigError(f"profile {path} has unknown key {unknown[0]!r}; valid keys are: base, description, grid, name, output, pages")
    grid = data.get("grid") or {}
    if not all(isinstance(values, list) and values for values in grid.values()):
        raise ConfigError(f"every grid entry of profile {path} must be a non-empty list of values")
    base = load_config(None, [])
    base = with_overrides(base, flatten(data.get("base") or {}))
    filters = _parse_only(only, grid)
    configs = []
    for combination in itertools.product(*grid.values()):
        point = dict(zip(grid, combination))
        if all(point.get(key, lookup(base, key)) in allowed for key, allowed in filters.items()):
            configs.append(with_overrides(base, point))
    name = data.get("name", path.stem)
    pages = data.get("pages", "all")
    if isinstance(pages, dict):
        pages = {key: values if isinstance(values, list) else [values] for key, values in pages.items()}
    elif pages not in ("all", "none"):
        raise ConfigError(f"pages of profile {path} must be all, none, or a mapping of config keys to values, not {pages!r}")
    return Profile(name=name, base=data.get("base") or {}, grid=grid, description=data.get("description", ""),
                   output=Path(data.get("output", f"book/runs/{name}")), configs=configs, pages=pages)


def _parse_only(only: list[str] | tuple[str, ...], grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    filters: dict[str, list[Any]] = {}
    for item in only:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--only {item!r} is not of the form key=value, e.g. --only model=vit_b16,vit_b32")
        try:
            lookup(ExperimentConfig(), key)
        except AttributeError:
            raise ConfigError(f"--only key {key!r} is not a config key; the grid's keys are: {', '.join(grid)}") from None
        filters[key] = [yaml.safe_load(value) for value in raw.split(",")]
    return filters


def is_finished(cfg: ExperimentConfig, run_dir: Path, notebook: Path) -> bool:
    """Both the run (every round) and its executed notebook exist."""
    if not notebook.exists():
        return False
    try:
        return len(RunFolder(run_dir).read_rounds()) == cfg.al.rounds + 1
    except Exception:  # an unreadable folder is not finished; the run will say why
        return False


def run_sweep(profile: Profile, jobs: int = 1, progress: bool = True) -> dict[str, list[str]]:
    """Run every configuration of ``profile`` not yet finished; return run ids by outcome."""
    output = paths.resolve(profile.output)
    output.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, list[str]] = {"done": [], "skipped": [], "failed": []}
    todo = []
    for cfg in profile.configs:
        if is_finished(cfg, output / cfg.run_id, output / f"{cfg.run_id}.ipynb"):
            outcome["skipped"].append(cfg.run_id)
        else:
            todo.append(cfg)
    bar = tqdm(total=len(profile.configs), initial=len(outcome["skipped"]), desc=f"sweep {profile.name}",
               unit="run", disable=not progress)
    with _threads_per_kernel(jobs), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_execute, cfg, output): cfg for cfg in todo}
        for future in as_completed(futures):
            cfg, error = futures[future], future.result()
            outcome["failed" if error else "done"].append(cfg.run_id)
            if error:
                log.warning("%s failed: %s", cfg.run_id, error)
            bar.update(1)
    bar.close()
    return outcome


@contextlib.contextmanager
def _threads_per_kernel(jobs: int) -> Iterator[None]:
    """Give each kernel an equal share of the cores, so parallel jobs don't oversubscribe them.

    Kernels inherit this process's environment; a value the user set is left alone.
    """
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    added = [key for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if key not in os.environ]
    os.environ.update({key: threads for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _execute(cfg: ExperimentConfig, output: Path) -> str | None:
    """Run the experiment notebook for ``cfg``; return None, or the error in one line."""
    notebook = output / f"{cfg.run_id}.ipynb"
    failed = output / "_failed"
    (failed / f"{cfg.run_id}.txt").unlink(missing_ok=True)
    try:
        pages.render_page(output / cfg.run_id, notebook, cfg)
    except Exception as err:  # a failed configuration must not stop the sweep
        failed.mkdir(exist_ok=True)
        if notebook.exists():
            notebook.replace(failed / notebook.name)  # out of the book, kept for reading
        lines = str(err).strip().splitlines()
        message = f"{err.__class__.__name__}: {lines[-1] if lines else ''}"
        atomic_write_text(failed / f"{cfg.run_id}.txt", message + "\n\n" + traceback.format_exc())
        return message
    return None


def estimate_gpu_hours(profile: Profile, sustained_tflops: float = 200.0) -> list[dict[str, Any]]:
    """Rough GPU hours per model: forward FLOPs per image x images processed, at a sustained rate.

    Per run: training costs 3 forward passes per image-epoch (forward + backward), for every
    epoch budgeted (early stopping only makes it cheaper); each round also scores the unlabeled
    pool and the test set once (BALD: ``acq.mc_passes`` more). ``sustained_tflops`` is an
    assumption (bf16 on an H100/H200 at about a quarter of its peak), not a measurement.
    """
    from alvit.data import load_dataset
    from alvit.models import model_flops, resolve_model

    # (pool, test, classes) per dataset; a folder of one's own is read once, not once per config.
    sizes = {"cifar10": (50_000, 10_000, 10), "cifar100": (50_000, 10_000, 100), "digits": (1_347, 450, 10)}
    flops_cache: dict[tuple[str, int], float] = {}
    per_model: dict[str, dict[str, Any]] = {}
    for cfg in profile.configs:
        if cfg.dataset not in sizes:
            data = load_dataset(cfg.dataset)
            sizes[cfg.dataset] = (len(data.train_labels), len(data.test_labels), data.num_classes)
        pool, test, classes = sizes[cfg.dataset]
        pool = min(pool, cfg.data.max_pool or pool)
        test = min(test, cfg.data.max_test or test)
        key = (cfg.model, classes)
        if key not in flops_cache:
            flops_cache[key] = model_flops(resolve_model(cfg.model, cfg.img_size), classes)
        images = 0.0
        passes = 1 + (cfg.acq.mc_passes if cfg.strategy == "bald" else 0)
        for round_ in range(cfg.al.rounds + 1):
            labeled = cfg.al.initial + round_ * cfg.al.query
            images += 3 * labeled * cfg.train.epochs + test + (pool - labeled) * passes * (round_ < cfg.al.rounds)
        row = per_model.setdefault(cfg.model, {"model": cfg.model, "runs": 0, "gflops_per_image": flops_cache[key] / 1e9, "gpu_hours": 0.0})
        row["runs"] += 1
        row["gpu_hours"] += images * flops_cache[key] / (sustained_tflops * 1e12) / 3600
    return sorted(per_model.values(), key=lambda row: -row["gpu_hours"])
