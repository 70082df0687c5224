"""Run folders: atomic writes, reading back with clear errors, and aggregation into one table.

A run folder ``<results>/<run-id>/`` holds:

- ``config.yaml``: the fully resolved configuration (timm name, input size, mean/std, label
  smoothing and device under ``resolved``).
- ``rounds.csv``: one row per round r = 0..R. Row r trained on the labeled set of round r and
  was evaluated on the clean test set; ``select_s``, ``n_queried``, ``n_suspect`` and
  ``suspect_precision`` describe the queries chosen *with round r's model* (bought for round
  r + 1; none after the last round), and so does ``acq_temperature``: the temperature the pool's
  logits were divided by before the strategy ranked it (``acq.calibrate``; 1 for ``none``, for a
  strategy that reads no probabilities, and where the held-out split gave no usable fit; NaN
  after the last round, and in folders written before the key).
- ``queries.npz``: every queried sample: ``round`` (first round trained on it), ``index`` (into
  the pool), ``oracle_label``, ``true_label``, ``utility``, ``suspect`` (1/0, or -1 where the
  strategy does not flag).
- ``predictions/round_XXX.npz``: for every sample of the clean test set after each round, its
  top-class ``confidence``, ``prediction``, probability of the true class ``p_true`` and sum of
  squared probabilities ``sum_sq`` (:class:`alvit.metrics.PerSample`): every metric and every
  reliability diagram of every round can be recomputed from them. About 18 bytes a sample.
- ``predictions/final_probs.npy``: the full probabilities ``[M, K]`` of the last round only,
  and ``test_labels.npy``.
- ``predictions/held_out_XXX.npz``: the round's held-out split (the labeled samples early
  stopping kept out of training), on which post-hoc calibration is fitted: pool ``index``,
  ``oracle_label`` (what the model was scored on), ``true_label``, ``noisy_channel`` (bought
  from the noisy oracle, not the clean initial set) and the model's ``logits`` ``[n, K]``
  (:class:`alvit.calibration.HeldOut`).
- ``predictions/calibrated_XXX.npz``: the test set after each fitted temperature
  (``ts_noisy``, ``ts_true``, ``ts_aware``; :data:`alvit.calibration.VARIANTS`): per sample its
  ``confidence``, ``p_true`` and ``sum_sq`` as float32, which is what the ``<variant>_*``
  columns of ``rounds.csv`` were measured on; the predicted classes are the round's own.

A CIFAR-100 run of 11 rounds at the paper's budget takes about 13.4 MB in all: 6.6 MB of test
predictions and the rest, and 6.8 MB for post-hoc calibration (2.8 MB of held-out logits, 4.0 MB
of calibrated test predictions). 11 x 10,000 x K floats of test probabilities would be 44 MB.
- ``env.json``: versions, device, git commit, and ``simulated`` (true for folders written by
  :mod:`alvit.sweep.simulate`, which trains nothing).

Every file is written to a temporary name and renamed, so a killed run leaves either the old
or the new file, never half of one. A ``rounds.csv`` cut some other way (a copy that stopped, a
full disk) is told apart by :meth:`RunFolder.inspect_rounds`, the one place that classifies it:
whole rows, and a damaged last line named by file and line, which the loop sets aside
(:meth:`RunFolder.set_damage_aside`) before redoing its round, and which every reader refuses.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from alvit.calibration import CALIBRATION_COLUMNS, HeldOut, calibrated_test, fit_variants
from alvit.config import INPUTS_SHA256, differing_keys
from alvit.errors import ResultsError
from alvit.metrics import PerSample, debiased_l2_ce_from, evaluate_per_sample, smooth_ece_from
from alvit.noise import realized_noise
from alvit.wording import plural

if TYPE_CHECKING:  # annotations only: the book reads run folders without importing torch
    from alvit.config import ExperimentConfig
    from alvit.models import ModelSpec

ROUND_COLUMNS = [
    "round",
    "n_labeled",
    "noise_realized",
    "test_acc",
    "ece",
    "mce",
    "adaptive_ece",
    "brier",
    "nll",
    "epochs",
    "best_epoch",
    "val_loss",
    "train_s",
    "select_s",
    "n_queried",
    "n_suspect",
    "suspect_precision",
]
# Written since post-hoc calibration joined the loop (n_held_out: since its size was recorded, the
# samples each temperature was fitted on; acq_temperature: since calibrated acquisition, the
# temperature the round's selection used); a folder written before reads them as NaN.
MEASURE_COLUMNS = ["smooth_ece", "l2_ce", *CALIBRATION_COLUMNS, "n_held_out", "acq_temperature"]
TIME_COLUMNS = ["train_s", "select_s"]
CALIBRATED_FIELDS = ("confidence", "p_true", "sum_sq")  # per variant; temperature keeps the predicted class
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser reads 1,260 configs 10x faster
QUERY_FIELDS = ("round", "index", "oracle_label", "true_label", "utility", "suspect")


def resolved_section(
    cfg: ExperimentConfig,
    spec: ModelSpec,
    device: str,
    pool_size: int,
    test_size: int,
    classes: Sequence[str],
    gflops_per_image: float,
    pool_noise_rate: float,
    inputs: dict[str, str],
) -> dict[str, Any]:
    """The ``resolved`` section of a run's ``config.yaml``: what the configuration came to on this data.

    One definition for the loop and for ``alvit simulate``, so a simulated folder records the same
    keys (the model's input size, mean and std among them) as a trained one. ``pool_noise_rate``
    is the share of the oracle's answers that are wrong over the pool: the noise-rate axis of a
    run whose labels come from a file. ``inputs``: the SHA-256 of each file the configuration
    reads by path, by its key (:mod:`alvit.inputs`), part of the run's identity.
    """
    return {
        "timm_name": spec.timm_name,
        "model_kwargs": spec.kwargs,
        "input_size": spec.input_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "interpolation": spec.interpolation,
        "label_smoothing": cfg.resolved_label_smoothing(),
        "device": device,
        "budget": cfg.budget,
        "pool_size": pool_size,
        "test_size": test_size,
        "num_classes": len(classes),
        "classes": list(classes),
        "gflops_per_image": gflops_per_image,
        "pool_noise_rate": pool_noise_rate,  # the oracle's wrong answers over the whole pool
        INPUTS_SHA256: dict(inputs),
    }


def round_record(
    round_: int,
    per_sample: PerSample,
    test_labels: np.ndarray,
    given: np.ndarray,
    true: np.ndarray,
    fitted: tuple[int, int, float, float],
    calibrated: dict[str, float],
) -> dict[str, Any]:
    """One row of ``rounds.csv`` for a round that bought no labels yet (:func:`with_queries` adds them).

    ``given``/``true``: ``[n_labeled]`` labels the model trained on and their true values (the
    realized noise); ``fitted``: epochs, best epoch, held-out loss and training seconds;
    ``calibrated``: the test metrics after temperature scaling
    (:func:`alvit.calibration.calibrated_test`).
    """
    epochs, best_epoch, val_loss, train_s = fitted
    correct = per_sample.correct(test_labels)
    return {
        "round": round_,
        "n_labeled": len(given),
        "noise_realized": realized_noise(given, true),
        **evaluate_per_sample(per_sample, test_labels),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "val_loss": val_loss,
        "train_s": round(train_s, 3),
        "select_s": 0.0,
        "n_queried": 0,
        "n_suspect": 0,
        "suspect_precision": np.nan,
        "smooth_ece": smooth_ece_from(per_sample.confidence, correct),
        "l2_ce": debiased_l2_ce_from(per_sample.confidence, correct),
        **calibrated,
    }


def record_calibration(
    folder: RunFolder,
    round_: int,
    held_out: HeldOut,
    transition: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, float]:
    """Round ``round_``'s post-hoc calibration: the three temperatures fitted on ``held_out``, applied
    to ``test_logits`` (``[M, K]``); the held-out split and the calibrated test predictions are
    written to ``folder``, and the ``rounds.csv`` columns returned, ``n_held_out`` (the fits' sample
    size) among them. One definition for the loop and for ``alvit simulate``."""
    folder.write_held_out(round_, held_out)
    temperatures = fit_variants(held_out, transition)
    columns, per_variant = calibrated_test(test_logits, test_labels, temperatures)
    folder.write_calibrated(round_, per_variant)
    return {**columns, "n_held_out": len(held_out.index)}


def with_queries(row: dict[str, Any], select_s: float, queries: dict[str, np.ndarray]) -> dict[str, Any]:
    """``row`` with the queries its round's model chose: their number, seconds, and GCI-ViTAL's suspects.

    ``queries``: :data:`QUERY_FIELDS` arrays of the labels bought; ``suspect_precision`` is the
    share of flagged queries whose oracle label is truly wrong (NaN when none is flagged).
    """
    flagged = queries["suspect"] == 1
    row.update(select_s=round(select_s, 3), n_queried=len(queries["index"]), n_suspect=int(flagged.sum()))
    if flagged.any():
        row["suspect_precision"] = float(np.mean(queries["oracle_label"][flagged] != queries["true_label"][flagged]))
    return row


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the mode any file a tool creates gets (0666 less the umask: 0644 under umask
    022), not ``mkstemp``'s private 0600, so collaborators on shared storage can read results.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (threads may be creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, and set it back at once
    os.umask(mask)
    return mask


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


@dataclasses.dataclass(frozen=True)
class Rounds:
    """A run folder's ``rounds.csv`` classified: whole rows, and the damage of a cut last line if any."""

    table: pd.DataFrame  # the whole rows, checked: one per finished round, rounds 0, 1, 2, ...
    whole: str  # the file's text up to the end of its last whole row ("" when even the header is cut)
    damage: str | None  # one sentence naming the file and the damaged line; None when every line is whole


def _fields(line: str) -> int:
    """How many comma-separated fields a line of a CSV file holds (none for a blank line)."""
    return len(next(csv.reader([line]), []))


class RunFolder:
    """The files of one run, read and written by name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.rounds = self.path / "rounds.csv"
        self.queries = self.path / "queries.npz"
        self.env = self.path / "env.json"
        self.predictions_dir = self.path / "predictions"
        self.final_probs = self.predictions_dir / "final_probs.npy"
        self.test_labels = self.path / "test_labels.npy"

    def checkpoint_path(self, round_: int) -> Path:
        """Weights after ``round_`` (kept only with al.warm_start, for the next round)."""
        return self.path / "checkpoints" / f"round_{round_:03d}.pt"

    def predictions_path(self, round_: int) -> Path:
        return self.predictions_dir / f"round_{round_:03d}.npz"

    def write_predictions(self, round_: int, per_sample: PerSample) -> None:
        """Store what every metric of round ``round_`` needs, at its own precision."""
        small = np.int16 if per_sample.prediction.max(initial=0) < np.iinfo(np.int16).max else np.int32
        atomic_save_npz(
            self.predictions_path(round_),
            {
                "confidence": per_sample.confidence,
                "prediction": per_sample.prediction.astype(small),
                "p_true": per_sample.p_true,
                "sum_sq": per_sample.sum_sq,
            },
        )

    def held_out_path(self, round_: int) -> Path:
        return self.predictions_dir / f"held_out_{round_:03d}.npz"

    def write_held_out(self, round_: int, held_out: HeldOut) -> None:
        """Round ``round_``'s held-out split: pool index, oracle and true labels, and the model's logits."""
        atomic_save_npz(self.held_out_path(round_), dataclasses.asdict(held_out))

    def read_held_out(self, round_: int) -> HeldOut:
        path = self.held_out_path(round_)
        try:
            with np.load(path) as data:
                return HeldOut(**{field.name: data[field.name] for field in dataclasses.fields(HeldOut)})
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise ResultsError(
                f"{path} cannot be read ({err.__class__.__name__}); restore it or rerun the run into a new folder"
            ) from err

    def calibrated_path(self, round_: int) -> Path:
        return self.predictions_dir / f"calibrated_{round_:03d}.npz"

    def write_calibrated(self, round_: int, per_variant: dict[str, PerSample]) -> None:
        """The test set's confidence, probability of the true class and sum of squares after each
        temperature (``<variant>_<field>``); the predicted classes are the round's own, unchanged."""
        atomic_save_npz(
            self.calibrated_path(round_),
            {
                f"{variant}_{name}": getattr(per_sample, name)
                for variant, per_sample in per_variant.items()
                for name in CALIBRATED_FIELDS
            },
        )

    def read_calibrated(self, round_: int, variant: str) -> PerSample:
        """Round ``round_``'s test predictions after the temperature of ``variant`` (e.g. ``ts_noisy``)."""
        path = self.calibrated_path(round_)
        try:
            with np.load(path) as data:
                fields = {name: data[f"{variant}_{name}"] for name in CALIBRATED_FIELDS}
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise ResultsError(
                f"{path} cannot be read for {variant} ({err.__class__.__name__}); "
                "restore it or rerun the run into a new folder"
            ) from err
        return PerSample(prediction=self.read_predictions(round_).prediction, **fields)

    def read_predictions(self, round_: int) -> PerSample:
        """Round ``round_``'s per-sample predictions on the test set."""
        path = self.predictions_path(round_)
        try:
            with np.load(path) as data:
                return PerSample(
                    confidence=data["confidence"],
                    prediction=data["prediction"].astype(np.int64),
                    p_true=data["p_true"],
                    sum_sq=data["sum_sq"],
                )
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise ResultsError(
                f"{path} cannot be read ({err.__class__.__name__}); restore it or rerun the run into a new folder"
            ) from err

    def read_test_labels(self) -> np.ndarray:
        try:
            return np.load(self.test_labels)
        except (OSError, ValueError, EOFError) as err:
            raise ResultsError(
                f"{self.test_labels} cannot be read ({err.__class__.__name__}); restore it or rerun the run into a new folder"
            ) from err

    def read_env(self) -> dict[str, Any]:
        """``env.json`` (an empty dict if it is missing)."""
        if not self.env.exists():
            return {}
        try:
            return json.loads(self.env.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ResultsError(
                f"{self.env} is not valid JSON ({err.__class__.__name__}); restore it or move the folder away to rerun"
            ) from err

    def is_simulated(self) -> bool:
        """Whether :mod:`alvit.sweep.simulate` wrote this folder (``env.json`` says so): a preview, never a result."""
        return bool(self.read_env().get("simulated", False))

    def read_config(self) -> dict[str, Any] | None:
        """``config.yaml`` as a dict (None if there is none).

        A folder trained before ``threads`` was a key holds the count it used in ``env.json``
        (``torch_threads``), which stands in for the key, so it is never taken for a run of another count.
        """
        if not self.config.exists():
            return None
        try:
            data = yaml.load(self.config.read_text(), Loader=YAML_LOADER)
        except yaml.YAMLError as err:
            raise ResultsError(
                f"{self.config} is not valid YAML ({err.__class__.__name__}); restore it or move the folder away to rerun"
            ) from err
        if not isinstance(data, dict):
            raise ResultsError(
                f"{self.config} does not hold a configuration; restore it or move the folder away to rerun"
            )
        if "threads" not in data:
            env = self.read_env()
            if isinstance(env.get("torch_threads"), int) and not env.get("simulated", False):
                data["threads"] = env["torch_threads"]
        return data

    def inspect_rounds(self, planned: int | None = None) -> Rounds:
        """``rounds.csv`` as it lies: its whole rows, and a damaged last line if it has one.

        A whole row ends with a line end and has as many fields as the header; a last line that
        does not (a copy or a full disk cut it mid-number, or down to ``2,80``) is damage, told in
        :attr:`Rounds.damage`, and left out of the table. Anything else amiss is a ResultsError: a
        short line with lines after it (no cut makes one), a word among the numbers, round numbers
        other than 0, 1, 2, ..., and more rounds than ``planned`` (``al.rounds`` + 1), which no run
        of the configuration can write.
        """
        if not self.rounds.exists():
            return Rounds(pd.DataFrame(columns=ROUND_COLUMNS + MEASURE_COLUMNS), "", None)
        try:
            text = self.rounds.read_bytes().decode()
        except (OSError, UnicodeDecodeError) as err:
            raise ResultsError(
                f"{self.rounds} cannot be read ({err.__class__.__name__}); restore it or move the folder away to rerun"
            ) from err
        whole, damage = self._whole_lines(text)
        present = whole.count("\n") - 1 + (damage is not None)  # data lines, the damaged one counted
        if planned is not None and present > planned:
            raise ResultsError(
                f"{self.rounds} holds {plural(present, 'round')}, more than the {planned} its configuration plans "
                f"(al.rounds {planned - 1}), so no run of it can finish; restore the file or move the folder away to rerun"
            )
        if not whole:
            return Rounds(pd.DataFrame(columns=ROUND_COLUMNS + MEASURE_COLUMNS), whole, damage)
        return Rounds(self._checked_table(whole), whole, damage)

    def _whole_lines(self, text: str) -> tuple[str, str | None]:
        """The header and whole rows of ``text`` (the file's leading part), and what damages its last line.

        Both empty and damaged: the file is empty or its header is cut.
        """
        pieces = text.split("\n")  # a row ends at "\n" only (splitlines would also split at a stray "\r")
        lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        if not lines:
            return "", f"{self.rounds} is empty"
        if not lines[0].endswith("\n"):
            return "", f"{self.rounds} line 1, its header, is cut"
        width = _fields(lines[0])
        for number, line in enumerate(lines[1:], start=2):
            fields, ended = _fields(line), line.endswith("\n")
            if fields == width and ended:
                continue
            if number < len(lines) or fields > width:  # a cut leaves fewer fields, and only at the end
                raise ResultsError(
                    f"{self.rounds} line {number} has {fields} fields where its header has {width}, and it is not "
                    "a cut end; restore the file or move the folder away to rerun"
                )
            cut = f"{fields} of {width} fields" + ("" if ended else ", no line end")
            return "".join(lines[: number - 1]), f"{self.rounds} line {number} is cut off ({cut})"
        return text, None

    def _checked_table(self, whole: str) -> pd.DataFrame:
        """The whole rows as numbers, every column alvit writes present (measures added since: NaN)."""
        try:
            table = pd.read_csv(io.StringIO(whole))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ResultsError(
                f"{self.rounds} cannot be read ({err.__class__.__name__}); restore it or move the folder away to rerun"
            ) from err
        missing = [c for c in ROUND_COLUMNS if c not in table.columns]
        if missing:
            raise ResultsError(
                f"{self.rounds} is not a rounds table written by alvit (it lacks the column {missing[0]}); "
                "restore it or move the folder away to rerun"
            )
        for column in MEASURE_COLUMNS:  # a folder from before these measures: NaN, honestly missing
            if column not in table.columns:
                table[column] = np.nan
        for column in ROUND_COLUMNS + MEASURE_COLUMNS:  # every column is a number; a stray word would fail later
            numbers = pd.to_numeric(table[column], errors="coerce")
            bad = table[column][numbers.isna() & table[column].notna()]
            if len(bad):
                raise ResultsError(
                    f"{self.rounds} has the non-numeric value {bad.iloc[0]!r} in column {column} (row {bad.index[0] + 1}); "
                    "restore it or move the folder away to rerun"
                )
            table[column] = numbers
        if list(table["round"]) != list(range(len(table))):
            raise ResultsError(
                f"{self.rounds} is not a rounds table written by alvit (its round numbers are not 0, 1, 2, ...); "
                "restore it or move the folder away to rerun"
            )
        return table

    def read_rounds(self, planned: int | None = None) -> pd.DataFrame:
        """Finished rounds (an empty table if none); a damaged last line is a ResultsError naming it.

        ``planned``: the rounds the configuration plans (``al.rounds`` + 1); more is refused.
        """
        rounds = self.inspect_rounds(planned)
        if rounds.damage is not None:
            raise ResultsError(
                f"{rounds.damage}, so the run is damaged, not finished; resume it (alvit sweep, or alvit run on its "
                f"config.yaml), which keeps a copy of the file and redoes the rounds from round {len(rounds.table)}"
            )
        return rounds.table

    def set_damage_aside(self, rounds: Rounds) -> Path:
        """Copy the damaged ``rounds.csv`` to ``rounds.csv.damaged-<time>`` beside it, then keep only its whole
        rows (no file when even the header is cut), so a run resumes after them; returns the copy."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy = self.path / f"{self.rounds.name}.damaged-{stamp}"
        for attempt in itertools.count(2):
            if not copy.exists():
                break
            copy = self.path / f"{self.rounds.name}.damaged-{stamp}-{attempt}"
        atomic_write_bytes(copy, self.rounds.read_bytes())
        if rounds.whole:
            atomic_write_text(self.rounds, rounds.whole)
        else:
            self.rounds.unlink()
        return copy

    def read_queries(self) -> dict[str, np.ndarray]:
        """All queries so far (empty arrays if none)."""
        if not self.queries.exists():
            return {name: np.zeros(0, dtype=np.float64 if name == "utility" else np.int64) for name in QUERY_FIELDS}
        try:
            with np.load(self.queries) as data:
                arrays = {name: data[name] for name in QUERY_FIELDS}
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise ResultsError(
                f"{self.queries} cannot be read ({err.__class__.__name__}); restore it or move the folder away to rerun"
            ) from err
        return arrays

    def is_finished(self, experiment: dict[str, Any]) -> bool:
        """Every round of ``experiment`` (a config as a dict) is done, and the folder holds that experiment.

        Keys that do not change results (:data:`alvit.config.NOT_RESULT_KEYS`) may differ. A damaged
        last line of ``rounds.csv`` is not finished; more rounds than planned is a ResultsError.
        """
        config = self.read_config()
        if config is None or differing_keys(config, experiment):
            return False
        planned = experiment["al"]["rounds"] + 1
        rounds = self.inspect_rounds(planned)
        return rounds.damage is None and len(rounds.table) == planned

    def write_rounds(self, table: pd.DataFrame) -> None:
        atomic_write_text(self.rounds, table.reindex(columns=ROUND_COLUMNS + MEASURE_COLUMNS).to_csv(index=False))

    def write_queries(self, arrays: dict[str, np.ndarray]) -> None:
        atomic_save_npz(self.queries, arrays)

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def noise_by_round(folder: RunFolder) -> pd.DataFrame:
    """Nominal pool noise against what the labeled set actually holds, round by round.

    The initial set is clean and a strategy may prefer (or avoid) mislabeled samples, so the
    labeled set's noise differs from the pool's rate.
    """
    config, rounds, queries = folder.read_config(), folder.read_rounds(), folder.read_queries()
    wrong = queries["oracle_label"] != queries["true_label"]
    bought = [
        float(wrong[queries["round"] == r].mean()) if np.any(queries["round"] == r) else np.nan for r in rounds["round"]
    ]
    return (
        pd.DataFrame(
            {
                "round": rounds["round"],
                "n_labeled": rounds["n_labeled"],
                "pool noise rate": config["noise"]["rate"],
                "wrong among this round's queries": bought,
                "wrong in the labeled set": rounds["noise_realized"],
            }
        )
        .round(3)
        .set_index("round")
    )


def suspects_by_round(folder: RunFolder) -> pd.DataFrame | None:
    """GCI-ViTAL's suspect flags per round: how many, and how many of them truly were wrong.

    None when the strategy flags nothing (every ``suspect`` is -1).
    """
    queries = folder.read_queries()
    if not np.any(queries["suspect"] >= 0):
        return None
    table = pd.DataFrame(
        {
            "round": queries["round"],
            "suspect": queries["suspect"] == 1,
            "wrong": queries["oracle_label"] != queries["true_label"],
        }
    )
    table["flagged and wrong"] = table["suspect"] & table["wrong"]
    grouped = table.groupby("round")
    return pd.DataFrame(
        {
            "queried": grouped.size(),
            "wrong": grouped["wrong"].sum(),
            "flagged": grouped["suspect"].sum(),
            "flagged and wrong": grouped["flagged and wrong"].sum(),
        }
    )


def pooled_predictions(paths: list[str], round_: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Confidence and correctness ``[sum of M]`` of several runs' test predictions, concatenated.

    ``round_`` None takes each run's last finished round. Runs of different datasets can be
    pooled (only the top label matters), but a caller comparing like with like should not.
    """
    confidence, correct = [], []
    for path in paths:
        folder = RunFolder(path)
        chosen = round_ if round_ is not None else len(folder.read_rounds()) - 1
        per_sample = folder.read_predictions(chosen)
        confidence.append(per_sample.confidence)
        correct.append(per_sample.correct(folder.read_test_labels()))
    return np.concatenate(confidence), np.concatenate(correct)


def noise_rate_of(config: dict[str, Any]) -> float:
    """A run's noise rate: the configured one, or for labels from a file the pool's measured rate (to 3 places)."""
    if config["noise"]["kind"] == "labels":
        return round(float((config.get("resolved") or {}).get("pool_noise_rate", np.nan)), 3)
    return config["noise"]["rate"]


RUN_COLUMNS = [
    "run_id",
    "dataset",
    "model",
    "strategy",
    "noise_kind",
    "noise_rate",
    "mode",
    "acq_calibrate",
    "seed",
    "rounds_planned",
    "finished",
    "simulated",
    "num_classes",
    "gflops_per_image",
    "path",
]


def load_runs(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Every run folder below ``root`` as one tidy table: one row per (run, round).

    Columns: :data:`RUN_COLUMNS` (from each ``config.yaml``), :data:`ROUND_COLUMNS`, then
    :data:`MEASURE_COLUMNS` (NaN for folders written before them).
    A folder that cannot be read is left out and named in the returned list of problems (one
    sentence each), so one damaged run never hides the others.
    """
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(
            f"results folder {root} does not exist; run a sweep first (alvit sweep configs/profiles/demo.yaml)"
        )
    tables, identities, problems = [], [], []
    for config_path in sorted(root.glob("*/config.yaml")):
        folder = RunFolder(config_path.parent)
        try:
            config = folder.read_config()
            planned = config["al"]["rounds"] + 1
            rounds = folder.read_rounds(planned)
            env = folder.read_env()
        except ResultsError as err:
            problems.append(str(err))
            continue
        resolved = config.get("resolved") or {}
        identities.append(
            {
                "run_id": folder.path.name,
                "dataset": config["dataset"],
                "model": config["model"],
                "strategy": config["strategy"],
                "noise_kind": config["noise"]["kind"],
                "noise_rate": noise_rate_of(config),
                "mode": (config.get("train") or {}).get("mode", "finetune"),
                "acq_calibrate": (config.get("acq") or {}).get("calibrate", "none"),
                "seed": config["seed"],
                "rounds_planned": planned,
                "finished": len(rounds) == planned,
                "simulated": bool(env.get("simulated", False)),
                "num_classes": resolved.get("num_classes", np.nan),
                "gflops_per_image": resolved.get("gflops_per_image", np.nan),
                "path": str(folder.path),
            }
        )
        tables.append(rounds)
    if not tables:
        return pd.DataFrame(columns=RUN_COLUMNS + ROUND_COLUMNS + MEASURE_COLUMNS), problems
    # One identity row per run, repeated for its rounds: far cheaper than assigning columns run by run.
    identity = (
        pd.DataFrame(identities).loc[np.repeat(np.arange(len(tables)), [len(t) for t in tables])].reset_index(drop=True)
    )
    rounds = pd.concat(tables, ignore_index=True)
    return pd.concat([identity, rounds], axis=1)[RUN_COLUMNS + ROUND_COLUMNS + MEASURE_COLUMNS], problems
