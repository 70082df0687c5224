"""The active-learning loop: train -> evaluate -> score the pool -> select -> ask the oracle.

Round 0 trains on the clean initial set. Each round r then evaluates on the clean test set and,
unless it is the last, scores the unlabeled pool with round r's model and buys ``al.query``
noisy labels, which round r + 1 trains on. Each round's results are written atomically when it
ends; rerunning the same command resumes after the last finished round and produces the same
files as an uninterrupted run (time columns aside).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alvit import calibration, metrics, paths, seeds
from alvit.accel import EAGER, FastPath, fast_path_record
from alvit.config import INPUTS_SHA256, ExperimentConfig, check_budget, differing_keys, dump_yaml
from alvit.data import Dataset, Preprocessor, load_dataset
from alvit.errors import ConfigError, ResultsError, TrainingError
from alvit.features import load_or_extract
from alvit.inputs import InputDigests
from alvit.leases import claim_run_folder
from alvit.linear import FeatureInputs, LinearHead, standardised
from alvit.models import ModelSpec, create_model, gflops_per_image, resolve_model
from alvit.noise import Oracle, make_oracle, realized_noise
from alvit.results import (
    QUERY_FIELDS,
    RunFolder,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_text,
    record_calibration,
    resolved_section,
    round_record,
    with_queries,
)
from alvit.strategies import PoolView, Selection, Strategy, create_strategy
from alvit.train import FitResult, fit, predict, resolve_device

log = logging.getLogger(__name__)


def default_out_dir(cfg: ExperimentConfig, results_root: str | Path = "results") -> Path:
    return Path(results_root) / cfg.run_id


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path | None = None, progress: bool = True, claimed: bool = False
) -> Path:
    """Run (or resume, or recognise as finished) one experiment; return its run folder.

    The folder is claimed while the run writes it (:func:`alvit.leases.claim_run_folder`), so a
    second run of it at once is refused in one sentence naming the first; ``claimed``: the caller
    (a sweep's task) holds that claim already. The run computes with ``cfg.threads`` CPU threads.
    """
    folder = RunFolder(out_dir if out_dir is not None else default_out_dir(cfg))
    wanted = InputDigests().record(cfg)
    _check_folder(folder, wanted)
    if _is_finished(folder, cfg):  # a finished run is read, never written: no claim needed
        log.info("%s is already finished (%d rounds); nothing to do", folder.path, cfg.al.rounds + 1)
        return folder.path
    with contextlib.nullcontext() if claimed else claim_run_folder(folder.path), cpu_threads(cfg.threads):
        _check_folder(folder, wanted)  # again, now that no one else writes it
        _run(cfg, folder, wanted["resolved"][INPUTS_SHA256], progress)
    return folder.path


def _run(cfg: ExperimentConfig, folder: RunFolder, inputs: dict[str, str], progress: bool) -> None:
    """The rounds of ``cfg`` not yet in ``folder``, run and written round by round."""
    done = _finished_rounds(folder, cfg)
    if len(done) == cfg.al.rounds + 1:
        log.info("%s is already finished (%d rounds); nothing to do", folder.path, cfg.al.rounds + 1)
        return
    spec = resolve_model(cfg.model, cfg.img_size)
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data.max_pool, cfg.data.max_test)
    check_budget(cfg, len(data.train_labels))
    strategy = create_strategy(cfg.strategy)
    if cfg.acq.calibrate != "none" and not strategy.reads_probabilities:
        log.info(
            "strategy %s does not rank by the model's probabilities, so acq.calibrate %s changes nothing; "
            "its rounds record acq_temperature 1",
            cfg.strategy,
            cfg.acq.calibrate,
        )
    oracle = make_oracle(cfg, data.train_labels, data.num_classes)
    resolved = resolved_section(
        cfg,
        spec,
        str(device),
        len(data.train_labels),
        len(data.test_labels),
        data.classes,
        gflops_per_image(spec, data.num_classes),
        realized_noise(oracle.noisy_labels, data.train_labels),
        inputs,
    )
    folder.path.mkdir(parents=True, exist_ok=True)
    if not folder.config.exists():
        atomic_write_text(folder.config, dump_yaml(cfg, resolved))

    queries = _queries_before(folder.read_queries(), len(done))
    _check_queries(queries, oracle, data.train_labels, folder)
    runner = _RoundRunner(cfg, spec, device, data, strategy, folder, progress)
    if not folder.env.exists():
        folder.write_json(
            folder.env,
            {**environment(device), **fast_path_record(runner.model, device, runner.fast, cfg.train.deterministic)},
        )
    rows = done.to_dict("records")
    for round_ in range(len(done), cfg.al.rounds + 1):
        row, new_queries = runner.run_round(round_, oracle, queries)
        if new_queries is not None:
            queries = {name: np.concatenate([queries[name], new_queries[name]]) for name in QUERY_FIELDS}
            folder.write_queries(queries)
        rows.append(row)
        folder.write_rounds(pd.DataFrame(rows))  # written last: a round counts as done only now
        log.info(_summary_line(row, cfg.al.rounds))


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Compute with ``threads`` CPU threads in torch and in numpy's BLAS while the block runs.

    This overrides ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, which only set the pools' sizes at
    start: a CPU's sums (a matrix product, a gradient's reduction) split over another number of
    threads add in another order and differ in their last bits, so the count is part of a run's
    configuration (``threads``). The previous counts come back afterwards.
    """
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def train_initial_model(
    cfg: ExperimentConfig, data: Dataset, oracle: Oracle, progress: bool = False
) -> tuple[torch.nn.Module, Preprocessor]:
    """Round 0 of :func:`run_experiment`, exactly: the model trained on the clean initial set.

    The same starting weights, training stream, recipe and device as the loop, so its
    predictions equal the loop's round-0 predictions bit for bit (tested). Returns the model
    and the preprocessing its predictions need.
    """
    with cpu_threads(cfg.threads):
        runner = _RoundRunner(
            cfg,
            resolve_model(cfg.model, cfg.img_size),
            resolve_device(cfg.device),
            data,
            strategy=None,
            folder=None,
            progress=progress,
        )
        runner.train(0, oracle.initial, data.train_labels[oracle.initial])
    return runner.model, runner.preprocess


def _check_folder(folder: RunFolder, wanted: dict) -> None:
    """Refuse to mix two configurations in one folder; never touch finished results.

    ``wanted``: the configuration with its inputs' digests (:meth:`alvit.inputs.InputDigests.record`).
    """
    if folder.path.exists() and not folder.path.is_dir():
        raise ConfigError(f"output path {folder.path} is a file, not a folder; choose another --out")
    blocking = next((parent for parent in folder.path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"output path {folder.path} cannot be a folder: {blocking} is a file; choose another --out")
    if folder.is_simulated():  # its rounds are an effect model's, not training: resuming would mix them in
        raise ConfigError(
            f"{folder.path} holds a simulated run (from alvit simulate); choose another --out, "
            f"or move that folder away to train the run"
        )
    existing = folder.read_config()
    if existing is None:
        return
    changed = differing_keys(existing, wanted)  # device and the like may differ: same results
    if changed:
        raise ConfigError(
            f"{folder.path} holds a run of another configuration (differs in: {', '.join(changed)}); "
            f"choose another --out, or move that folder away to start afresh"
        )


def _is_finished(folder: RunFolder, cfg: ExperimentConfig) -> bool:
    """Every planned round is in ``rounds.csv``, whole (read only; a damaged file is resumed, under the claim)."""
    rounds = folder.inspect_rounds(cfg.al.rounds + 1)
    return rounds.damage is None and len(rounds.table) == cfg.al.rounds + 1


def _finished_rounds(folder: RunFolder, cfg: ExperimentConfig) -> pd.DataFrame:
    """The rounds the run resumes after: a damaged last line of ``rounds.csv`` set aside (a copy kept
    beside it) so its round is redone; more rounds than planned, or warm-start weights gone, refused."""
    rounds = folder.inspect_rounds(cfg.al.rounds + 1)
    if rounds.damage is not None:
        copy = folder.set_damage_aside(rounds)
        log.warning(
            "%s; the file is kept as %s and the run resumes at round %d", rounds.damage, copy, len(rounds.table)
        )
    done = rounds.table
    last = folder.checkpoint_path(len(done) - 1)
    if cfg.al.warm_start and 0 < len(done) <= cfg.al.rounds and not last.exists():
        raise ResultsError(
            f"{folder.path} resumes at round {len(done)} with al.warm_start, which starts from the weights after "
            f"round {len(done) - 1}, and {last} is gone; restore it or move the folder away to rerun"
        )
    return done


def _queries_before(queries: dict[str, np.ndarray], finished_rounds: int) -> dict[str, np.ndarray]:
    """Queries bought for rounds up to ``finished_rounds`` (later ones belong to an unfinished round)."""
    keep = queries["round"] <= finished_rounds
    return {name: values[keep] for name, values in queries.items()}


def _check_queries(queries: dict[str, np.ndarray], oracle: Oracle, true_labels: np.ndarray, folder: RunFolder) -> None:
    index = queries["index"].astype(np.int64)
    if len(index) and (
        index.max() >= len(true_labels) or np.any(oracle.noisy_labels[index] != queries["oracle_label"])
    ):
        raise ConfigError(
            f"{folder.queries} does not match this configuration's pool and oracle; move the folder away to start afresh"
        )


class _RoundRunner:
    """What stays the same across rounds: data on the device, the starting weights, the strategy."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        spec: ModelSpec,
        device: torch.device,
        data: Dataset,
        strategy: Strategy | None,
        folder: RunFolder | None,
        progress: bool,
    ):
        self.cfg, self.spec, self.device, self.data = cfg, spec, device, data
        self.strategy, self.folder, self.progress = strategy, folder, progress
        self.train_cfg = dataclasses.replace(
            cfg.train, label_smoothing=cfg.resolved_label_smoothing()
        )  # fit's one source
        self.linear = cfg.train.mode == "linear"
        self.attention: np.ndarray | None = None  # linear mode: the frozen backbone's CLS attention of the pool
        if self.linear:
            self._use_cached_features()
        else:
            self.fast = FastPath.for_run(cfg.train, device)
            self.preprocess = Preprocessor.for_model(spec, device)
            # On a GPU the uint8 images live on it: batches are then indexed there, no host copies.
            self.pool_images = data.train_images.to(device)
            self.test_images = data.test_images.to(device)
            torch.manual_seed(seeds.torch_seed(cfg.seed, "model"))
            self.model = create_model(spec, data.num_classes, cfg.pretrained, cfg.weights).to(device)
        self.start_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _use_cached_features(self) -> None:
        """Linear mode: the pool and test set become the frozen backbone's features (cached once,
        standardised with the pool's statistics), and the model a fresh logistic-regression head."""
        cached = load_or_extract(self.cfg, self.spec, self.data, self.device)
        train, test = standardised(cached.train, cached.test)
        self.fast = EAGER  # a linear layer gains nothing from compilation
        self.preprocess = FeatureInputs(self.device)
        self.pool_images = torch.from_numpy(train).to(self.device)
        self.test_images = torch.from_numpy(test).to(self.device)
        # Without a class token, GCI-ViTAL reads the pooled features, as it does when fine-tuning.
        self.attention = cached.train_attention if cached.train_attention is not None else train[:, None, :]
        torch.manual_seed(seeds.torch_seed(self.cfg.seed, "model"))
        self.model = LinearHead(train.shape[1], self.data.num_classes).to(self.device)

    def run_round(self, round_: int, oracle: Oracle, queries: dict[str, np.ndarray]) -> tuple[dict, dict | None]:
        cfg = self.cfg
        labeled = np.concatenate([oracle.initial, queries["index"].astype(np.int64)])
        given = np.concatenate([self.data.train_labels[oracle.initial], queries["oracle_label"]])  # initial set: clean
        fitted = self.train(round_, labeled, given)
        if cfg.al.warm_start:
            self._save_checkpoint(round_)
        test = predict(
            self.model,
            self.test_images,
            self.preprocess,
            cfg.train.eval_batch_size,
            fast=self.fast,
            logits=True,
        )
        probs = test.probs
        if not np.isfinite(probs).all():
            raise TrainingError(
                f"round {round_}/{cfg.al.rounds}: the model's test predictions are not finite, "
                f"so the run stops here rather than record meaningless metrics; lower train.lr"
            )
        per_sample = metrics.PerSample.from_probs(probs, self.data.test_labels)
        self.folder.write_predictions(round_, per_sample)
        if round_ == cfg.al.rounds:
            atomic_save_npy(self.folder.final_probs, probs)
        if not self.folder.test_labels.exists():
            atomic_save_npy(self.folder.test_labels, self.data.test_labels)
        held_out = self._held_out(
            labeled[fitted.held_out], given[fitted.held_out], fitted.held_out >= len(oracle.initial)
        )
        noise_model = self._noise_model(oracle)
        calibrated = record_calibration(self.folder, round_, held_out, noise_model, test.logits, self.data.test_labels)
        fit_record = (fitted.epochs, fitted.best_epoch, fitted.val_loss, fitted.seconds)
        row = round_record(
            round_, per_sample, self.data.test_labels, given, self.data.train_labels[labeled], fit_record, calibrated
        )
        if round_ == cfg.al.rounds:
            return row, None
        row["acq_temperature"] = temperature = self._acquisition_temperature(round_, held_out, noise_model, calibrated)
        start = time.perf_counter()
        unlabeled = np.setdiff1d(np.arange(len(self.data.train_labels)), labeled)
        selection = self.strategy.select(
            self._pool_view(unlabeled, labeled, oracle, temperature),
            cfg.al.query,
            seeds.rng(cfg.seed, "strategy", round_),
        )
        select_s = time.perf_counter() - start
        new = self._new_queries(round_ + 1, unlabeled, selection, oracle)
        return with_queries(row, select_s, new), new

    def _acquisition_temperature(
        self, round_: int, held_out: calibration.HeldOut, noise_model: np.ndarray, calibrated: dict[str, float]
    ) -> float:
        """What this round's strategy divides the pool's logits by: this round's fit named by
        ``acq.calibrate`` (1 for none, for a strategy that reads no probabilities, and, with a log
        line, where the held-out split gave no usable fit: :func:`alvit.calibration.acquisition_temperature`)."""
        if not self.strategy.reads_probabilities:
            return 1.0
        fitted = {variant: calibrated[f"{variant}_temperature"] for variant in calibration.VARIANTS}
        temperature, why = calibration.acquisition_temperature(self.cfg.acq.calibrate, held_out, noise_model, fitted)
        if why:
            log.warning("round %d/%d: %s", round_, self.cfg.al.rounds, why)
        return temperature

    def train(self, round_: int, labeled: np.ndarray, given: np.ndarray) -> FitResult:
        """Round ``round_``'s model: the pool samples ``labeled`` with the labels ``given``, the loop's seeds and recipe."""
        self._reset_weights(round_)
        return fit(
            self.model,
            self._pool_subset(labeled),
            given,
            self.train_cfg,
            self.preprocess,
            seeds.stream(self.cfg.seed, "train", round_),
            desc=f"round {round_}/{self.cfg.al.rounds}",
            progress=self.progress,
        )

    def _held_out(self, index: np.ndarray, given: np.ndarray, noisy_channel: np.ndarray) -> calibration.HeldOut:
        """The split kept out of this round's training, with the round's model's logits on it.

        Empty without early stopping (``train.patience`` 0, or too few labels for ``train.val_fraction``).
        """
        logits = (
            predict(
                self.model,
                self._pool_subset(index),
                self.preprocess,
                self.cfg.train.eval_batch_size,
                fast=self.fast,
                logits=True,
            ).logits
            if len(index)
            else np.zeros((0, self.data.num_classes), dtype=np.float32)
        )
        return calibration.HeldOut(
            index=index,
            oracle_label=given,
            true_label=self.data.train_labels[index],
            noisy_channel=noisy_channel,
            logits=logits,
        )

    def _noise_model(self, oracle: Oracle) -> np.ndarray:
        """The oracle's transition matrix ``[K, K]``, as the noise-aware temperature assumes it."""
        noise = self.cfg.noise
        return calibration.oracle_transition(
            noise.kind, noise.rate, self.data.train_labels, oracle.noisy_labels, self.data.num_classes
        )

    def _reset_weights(self, round_: int) -> None:
        """Round 0, and every round unless warm-starting, begins from the starting weights."""
        if self.cfg.al.warm_start and round_ > 0:
            state = torch.load(self.folder.checkpoint_path(round_ - 1), map_location=self.device, weights_only=True)
            self.model.load_state_dict(state)
        else:
            self.model.load_state_dict(self.start_state)

    def _save_checkpoint(self, round_: int) -> None:
        """Keep this round's weights for the next (warm start); the one before is no longer needed."""
        buffer = io.BytesIO()
        torch.save(self.model.state_dict(), buffer)
        atomic_write_bytes(self.folder.checkpoint_path(round_), buffer.getvalue())
        self.folder.checkpoint_path(round_ - 2).unlink(missing_ok=True)

    def _pool_view(self, unlabeled: np.ndarray, labeled: np.ndarray, oracle: Oracle, temperature: float) -> PoolView:
        """Predict exactly what the strategy needs, for the unlabeled pool (and labeled/initial sets).

        The pool's probabilities, every MC pass's included, are ``softmax(logits / temperature)``.
        """
        needs, cfg = self.strategy.needs, self.cfg
        batch = cfg.train.eval_batch_size
        torch.manual_seed(seeds.torch_seed(cfg.seed, "predict"))  # MC-dropout masks
        pool = predict(
            self.model,
            self._pool_subset(unlabeled),
            self.preprocess,
            batch,
            features="features" in needs,
            attention="attention" in needs and not self.linear,
            mc_passes=cfg.acq.mc_passes if "mc_probs" in needs else 0,
            mc_rate=cfg.acq.mc_dropout,
            fast=self.fast,
            temperature=temperature,
        )
        attention = self._frozen_attention(unlabeled) if self.linear and "attention" in needs else pool.attention
        view = {"probs": pool.probs, "mc_probs": pool.mc_probs, "features": pool.features, "attention": attention}
        if "labeled_features" in needs:
            view["labeled_features"] = predict(
                self.model, self._pool_subset(labeled), self.preprocess, batch, features=True, fast=self.fast
            ).features
        if "reference_attention" in needs:
            view["reference_attention"] = (
                self._frozen_attention(oracle.initial)
                if self.linear
                else predict(
                    self.model, self._pool_subset(oracle.initial), self.preprocess, batch, attention=True
                ).attention
            )
            view["reference_labels"] = self.data.train_labels[oracle.initial]
        return PoolView(**view)

    def _frozen_attention(self, indices: np.ndarray) -> np.ndarray:
        """Linear mode: the cached attention ``float32 [n, heads, tokens]`` of these pool samples, the same every round."""
        return np.asarray(self.attention[indices], dtype=np.float32)

    def _pool_subset(self, indices: np.ndarray) -> torch.Tensor:
        return self.pool_images[torch.from_numpy(indices).to(self.device)]

    def _new_queries(
        self, round_: int, unlabeled: np.ndarray, selection: Selection, oracle: Oracle
    ) -> dict[str, np.ndarray]:
        index = unlabeled[selection.indices]
        oracle_label = oracle.noisy_labels[index]
        suspect = (
            np.full(len(index), -1, dtype=np.int64)
            if selection.attention_class is None
            else (selection.attention_class != oracle_label).astype(np.int64)
        )
        return {
            "round": np.full(len(index), round_, dtype=np.int64),
            "index": index.astype(np.int64),
            "oracle_label": oracle_label,
            "true_label": self.data.train_labels[index],
            "utility": selection.utilities[selection.indices].astype(np.float64),
            "suspect": suspect,
        }


def _summary_line(row: dict, rounds: int) -> str:
    """A round in one console line: its numbers, then the temperatures fitted (a) on the noisy, (b) on the
    true, (c) noise-aware on the noisy held-out labels, and how many labels that was."""
    line = (
        f"round {row['round']}/{rounds}  labeled {row['n_labeled']}  noise {row['noise_realized']:.3f}  "
        f"acc {row['test_acc']:.4f}  ece {row['ece']:.4f}  brier {row['brier']:.4f}  "
        f"epochs {row['epochs']}  train {row['train_s']:.1f}s  select {row['select_s']:.1f}s  "
        f"T noisy {row['ts_noisy_temperature']:.2f} true {row['ts_true_temperature']:.2f} "
        f"aware {row['ts_aware_temperature']:.2f} on {row['n_held_out']} held out"
    )
    if row["n_suspect"]:
        line += f"  suspects {row['n_suspect']} (precision {row['suspect_precision']:.2f})"
    return line


def environment(device: torch.device) -> dict:
    """Versions, device and git commit, for ``env.json``."""
    import timm

    commit, dirty = paths.git_state()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": commit,
        "git_dirty": dirty,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "simulated": False,
    }


def cpu_model() -> str:
    """The processor's model name (Linux's ``/proc/cpuinfo``), else what the platform says: what a rebuild
    on a CPU must match, as the threads and versions."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.partition(':')[2].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


__all__ = ["Oracle", "default_out_dir", "environment", "make_oracle", "run_experiment"]
