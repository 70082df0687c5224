"""Profiles: a named grid of experiments sharing one protocol, read by the sweep and by the book.

A profile (``configs/profiles/*.yaml``) names the shared protocol (``base``: any config keys),
the grid (``grid``: dotted keys to lists of values; the sweep is their product), which runs get
a book page (``pages``: ``all``, ``none`` or a filter like ``{seed: [0]}``), where the run
folders go (``output``) and, optionally, the SLURM resources of a run (``slurm``:
:class:`SlurmSettings`). Loading one validates every configuration, so a wrong value stops
before any run starts; nothing here imports torch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from alvit.config import (
    ExperimentConfig,
    check_budget,
    flatten,
    load_config,
    lookup,
    split_assignment,
    with_overrides,
)
from alvit.errors import ConfigError

DEFAULT_TIME_MIN = 60  # a SLURM job's time limit when neither the profile nor --timeout gives one


@dataclass(frozen=True)
class SlurmSettings:
    """What one array task (one run) asks SLURM for: a profile's ``slurm:`` section, or ``--slurm-*``."""

    partition: str | None = None
    account: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    time_min: int | None = None  # None: from --timeout, else 60 minutes
    array_parallelism: int = 256  # runs at once, over all the sweep's arrays
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch options: {qos: high} -> --qos=high

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> SlurmSettings:
        """Checked settings from a mapping; a wrong key or value is one sentence naming ``where``."""
        if not isinstance(data, dict):
            raise ConfigError(f"slurm in {where} must be a mapping of settings, not {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"slurm setting {unknown[0]!r} in {where} is not known; valid ones are: {', '.join(known)}"
            )
        for name in ("gpus_per_task", "cpus_per_task", "time_min", "array_parallelism"):
            value = data.get(name)
            minimum = 0 if name == "gpus_per_task" else 1
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
                raise ConfigError(
                    f"slurm setting {name} in {where} must be an integer of at least {minimum}, not {value!r}"
                )
        mem = data.get("mem_gb")
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem <= 0):
            raise ConfigError(f"slurm setting mem_gb in {where} must be a positive number, not {mem!r}")
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise ConfigError(
                f"slurm setting extra in {where} must be a mapping of sbatch options, such as {{qos: high}}"
            )
        values = {key: value for key, value in data.items() if value is not None}
        values["extra"] = {str(key): str(value) for key, value in extra.items()}
        for name in ("partition", "account"):
            if name in values:
                values[name] = str(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults."""
        defaults = SlurmSettings()
        return {key: value for key, value in asdict(self).items() if value != getattr(defaults, key)}

    def time_limit_min(self, timeout_s: float | None) -> int:
        """The job's time limit: ``time_min``, else the per-run ``--timeout`` rounded up, else 60."""
        if self.time_min is not None:
            return self.time_min
        return math.ceil(timeout_s / 60) if timeout_s else DEFAULT_TIME_MIN

    def submitit_parameters(self, timeout_s: float | None, chunk_parallelism: int) -> dict[str, Any]:
        """``AutoExecutor.update_parameters`` keywords for one array."""
        params: dict[str, Any] = {
            "timeout_min": self.time_limit_min(timeout_s),
            "cpus_per_task": self.cpus_per_task,
            "tasks_per_node": 1,
            "nodes": 1,
            "slurm_array_parallelism": chunk_parallelism,
        }
        if self.gpus_per_task:
            params["gpus_per_node"] = self.gpus_per_task  # one task per job: per node is per task
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.account:
            params["slurm_account"] = self.account
        if self.extra:
            params["slurm_additional_parameters"] = dict(self.extra)
        return params


PROFILE_KEYS = ("base", "cache", "description", "grid", "name", "output", "pages", "slurm")


@dataclass(frozen=True)
class Profile:
    """A named grid of experiments sharing one protocol."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    output: Path
    description: str = ""
    configs: list[ExperimentConfig] = field(default_factory=list)
    pages: str | dict[str, list[Any]] = "all"  # "all", "none", or dotted keys -> the values to keep
    slurm: dict[str, Any] = field(default_factory=dict)  # the profile's ``slurm:`` section, checked

    def wants_page(self, cfg: ExperimentConfig) -> bool:
        """Whether the run of ``cfg`` gets a book page (an executed notebook)."""
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
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(
            f"profile {path} is not valid YAML{where}; see configs/profiles/demo.yaml for the form"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"profile {path} must be a mapping of the keys {', '.join(PROFILE_KEYS)}, not a {type(data).__name__}"
        )
    unknown = sorted(set(data) - set(PROFILE_KEYS))
    if unknown:
        raise ConfigError(f"profile {path} has unknown key {unknown[0]!r}; valid keys are: {', '.join(PROFILE_KEYS)}")
    grid = data.get("grid") or {}
    if not all(isinstance(values, list) and values for values in grid.values()):
        raise ConfigError(f"every grid entry of profile {path} must be a non-empty list of values")
    base = load_config(None, [])
    if data.get("cache") is not None:  # the feature cache of linear mode, for every configuration
        if not isinstance(data["cache"], str) or not data["cache"].strip():
            raise ConfigError(
                f"cache in profile {path} must be the path of a folder for the cached features, not {data['cache']!r}"
            )
        base = with_overrides(base, {"cache": data["cache"]})
    base = with_overrides(base, flatten(data.get("base") or {}))
    filters = _parse_only(only, grid)
    _check_filters_match(filters, grid, base, path)
    configs = []
    for combination in itertools.product(*grid.values()):
        point = dict(zip(grid, combination))
        if all(point.get(key, lookup(base, key)) in allowed for key, allowed in filters.items()):
            configs.append(with_overrides(base, point))
    _check_unique_run_ids(configs, grid, path)
    for cfg in configs:  # a budget too large for a built-in dataset fails here, not in every job
        check_budget(cfg)
    name = data.get("name", path.stem)
    slurm = SlurmSettings.from_dict(data.get("slurm") or {}, f"profile {path}")
    return Profile(
        name=name,
        base=data.get("base") or {},
        grid=grid,
        description=data.get("description", ""),
        output=Path(data.get("output", f"book/runs/{name}")),
        configs=configs,
        pages=_parse_pages(data.get("pages", "all"), path),
        slurm=slurm.to_dict(),
    )


def _parse_only(only: list[str] | tuple[str, ...], grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``--only`` items as dotted key -> allowed values; a key given twice allows the values of both."""
    filters: dict[str, list[Any]] = {}
    for item in only:
        key, raw = split_assignment(item, "--only", "--only model=vit_b16,vit_b32")
        try:
            lookup(ExperimentConfig(), key)
        except AttributeError:
            raise ConfigError(
                f"--only key {key!r} is not a config key; the grid's keys are: {', '.join(grid)}"
            ) from None
        filters.setdefault(key, []).extend(yaml.safe_load(value) for value in raw.split(","))
    return filters


def _check_filters_match(
    filters: dict[str, list[Any]], grid: dict[str, list[Any]], base: ExperimentConfig, path: Path
) -> None:
    """Each ``--only`` key must keep some value of the profile: a filter matching nothing is a typo, not an empty sweep.

    The grid is a product, so filters that each keep a value keep a configuration together.
    """
    for key, allowed in filters.items():
        present = grid.get(key, [lookup(base, key)])
        if not any(value in allowed for value in present):
            given = ",".join(str(value) for value in allowed)
            raise ConfigError(
                f"--only {key}={given} matches no configuration of profile {path}; "
                f"its {key} values are: {', '.join(str(value) for value in present)}"
            )


def _parse_pages(pages: Any, path: Path) -> str | dict[str, list[Any]]:
    """``pages:`` is all, none, or a mapping of dotted config keys to a value or a list of values."""
    if pages in ("all", "none"):
        return pages
    if not isinstance(pages, dict) or not pages:
        raise ConfigError(
            f"pages in profile {path} must be all, none, or a mapping such as {{seed: [0]}}, not {pages!r}"
        )
    selection = {}
    for key, values in pages.items():
        try:
            lookup(ExperimentConfig(), str(key))
        except AttributeError:
            raise ConfigError(
                f"pages key {key!r} in profile {path} is not a config key; use dotted keys such as noise.rate"
            ) from None
        selection[str(key)] = values if isinstance(values, list) else [values]
    return selection


def _check_unique_run_ids(configs: list[ExperimentConfig], grid: dict[str, list[Any]], path: Path) -> None:
    """Two configurations in one run folder would mix; the run id names only some keys."""
    seen: dict[str, ExperimentConfig] = {}
    for cfg in configs:
        if cfg.run_id in seen:
            raise ConfigError(
                f"profile {path} gives several configurations the run id {cfg.run_id} (its run id names dataset, "
                f"model, noise, strategy, seed, training mode and acq.calibrate; the grid varies {', '.join(grid)}); sweep other keys in profiles of their own"
            )
        seen[cfg.run_id] = cfg
