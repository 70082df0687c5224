"""Run folders: atomic writes, reading back with clear errors, and aggregation into one table.

A run folder ``<results>/<run-id>/`` holds:

- ``config.yaml``: the fully resolved configuration (timm name, input size, mean/std, label
  smoothing and device under ``resolved``).
- ``rounds.csv``: one row per round r = 0..R. Row r trained on the labeled set of round r and
  was evaluated on the clean test set; ``select_s``, ``n_queried``, ``n_suspect`` and
  ``suspect_precision`` describe the queries chosen *with round r's model* (bought for round
  r + 1; none after the last round).
- ``queries.npz``: every queried sample: ``round`` (first round trained on it), ``index`` (into
  the pool), ``oracle_label``, ``true_label``, ``utility``, ``suspect`` (1/0, or -1 where the
  strategy does not flag).
- ``test_probs/round_XXX.npy``: the clean test set's probabilities ``[M, K]`` after each round,
  and ``test_labels.npy``, so every metric can be recomputed.
- ``env.json``: versions, device and git commit.

Every file is written to a temporary name and renamed, so a killed run leaves either the old
or the new file, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from alvit.errors import ResultsError

ROUND_COLUMNS = [
    "round", "n_labeled", "noise_realized", "test_acc", "ece", "mce", "adaptive_ece", "brier", "nll",
    "epochs", "best_epoch", "val_loss", "train_s", "select_s", "n_queried", "n_suspect", "suspect_precision",
]
TIME_COLUMNS = ["train_s", "select_s"]
QUERY_FIELDS = ("round", "index", "oracle_label", "true_label", "utility", "suspect")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


class RunFolder:
    """The files of one run, read and written by name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.rounds = self.path / "rounds.csv"
        self.queries = self.path / "queries.npz"
        self.env = self.path / "env.json"
        self.probs_dir = self.path / "test_probs"
        self.test_labels = self.path / "test_labels.npy"

    def checkpoint_path(self, round_: int) -> Path:
        """Weights after ``round_`` (kept only with al.warm_start, for the next round)."""
        return self.path / "checkpoints" / f"round_{round_:03d}.pt"

    def probs_path(self, round_: int) -> Path:
        return self.probs_dir / f"round_{round_:03d}.npy"

    def read_config(self) -> dict[str, Any] | None:
        if not self.config.exists():
            return None
        try:
            data = yaml.safe_load(self.config.read_text())
        except yaml.YAMLError as err:
            raise ResultsError(f"{self.config} is not valid YAML ({err.__class__.__name__}); restore it or move the folder away to rerun") from err
        if not isinstance(data, dict):
            raise ResultsError(f"{self.config} does not hold a configuration; restore it or move the folder away to rerun")
        return data

    def read_rounds(self) -> pd.DataFrame:
        """Finished rounds (an empty table if none)."""
        if not self.rounds.exists():
            return pd.DataFrame(columns=ROUND_COLUMNS)
        try:
            table = pd.read_csv(self.rounds)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ResultsError(f"{self.rounds} cannot be read ({err.__class__.__name__}); restore it or move the folder away to rerun") from err
        missing = [c for c in ROUND_COLUMNS if c not in table.columns]
        if missing or list(table["round"]) != list(range(len(table))):
            raise ResultsError(f"{self.rounds} is not a rounds table written by alvit (columns or round numbers are off); restore it or move the folder away to rerun")
        return table

    def read_queries(self) -> dict[str, np.ndarray]:
        """All queries so far (empty arrays if none)."""
        if not self.queries.exists():
            return {name: np.zeros(0, dtype=np.float64 if name == "utility" else np.int64) for name in QUERY_FIELDS}
        try:
            with np.load(self.queries) as data:
                arrays = {name: data[name] for name in QUERY_FIELDS}
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise ResultsError(f"{self.queries} cannot be read ({err.__class__.__name__}); restore it or move the folder away to rerun") from err
        return arrays

    def write_rounds(self, table: pd.DataFrame) -> None:
        atomic_write_text(self.rounds, table[ROUND_COLUMNS].to_csv(index=False))

    def write_queries(self, arrays: dict[str, np.ndarray]) -> None:
        atomic_save_npz(self.queries, arrays)

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


RUN_COLUMNS = ["run_id", "dataset", "model", "strategy", "noise_kind", "noise_rate", "seed", "rounds_planned", "finished", "path"]


def load_runs(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Every run folder below ``root`` as one tidy table: one row per (run, round).

    Columns: :data:`RUN_COLUMNS` (from each ``config.yaml``) then :data:`ROUND_COLUMNS`.
    A folder that cannot be read is left out and named in the returned list of problems (one
    sentence each), so one damaged run never hides the others.
    """
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"results folder {root} does not exist; run a sweep first (alvit sweep configs/profiles/demo.yaml)")
    tables, problems = [], []
    for config_path in sorted(root.glob("*/config.yaml")):
        folder = RunFolder(config_path.parent)
        try:
            config = folder.read_config()
            rounds = folder.read_rounds()
        except ResultsError as err:
            problems.append(str(err))
            continue
        planned = config["al"]["rounds"] + 1
        identity = {
            "run_id": folder.path.name, "dataset": config["dataset"], "model": config["model"],
            "strategy": config["strategy"], "noise_kind": config["noise"]["kind"], "noise_rate": config["noise"]["rate"],
            "seed": config["seed"], "rounds_planned": planned, "finished": len(rounds) == planned, "path": str(folder.path),
        }
        tables.append(rounds.assign(**identity))
    if not tables:
        return pd.DataFrame(columns=RUN_COLUMNS + ROUND_COLUMNS), problems
    return pd.concat(tables, ignore_index=True)[RUN_COLUMNS + ROUND_COLUMNS], problems
