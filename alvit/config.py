"""One experiment's configuration: frozen dataclasses, YAML in, resolved YAML out.

Every key can be set in a YAML file or on the command line as ``--set section.key=value``.
Values are checked before any work starts; a mistake a user can make is reported as a
:class:`ConfigError` whose message is one sentence naming the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from alvit import catalog
from alvit.errors import ConfigError


@dataclass(frozen=True)
class NoiseConfig:
    """The noisy oracle: which corruption, and the fraction of pool labels it corrupts."""

    kind: str = "flip"
    rate: float = 0.0
    labels: str | None = None  # kind "labels": a .npy of labels or a CIFAR-N .pt file (alvit.label_files)
    labels_key: str | None = None  # which label set of a .pt dict, e.g. "worse_label"


@dataclass(frozen=True)
class DataConfig:
    """Optional subsampling, so a CPU can run on a slice of a large dataset.

    0 means the whole split. Subsets are drawn with a fixed seed (0), so every experiment seed
    sees the same pool and test set.
    """

    max_pool: int = 0
    max_test: int = 0


@dataclass(frozen=True)
class ALConfig:
    """The active-learning budget: ``initial + query * rounds`` labels in all."""

    initial: int = 1000
    query: int = 1000
    rounds: int = 10
    warm_start: bool = False  # False: every round fine-tunes from the pretrained weights again


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning recipe (the study's default protocol: book/protocol, "What the paper did")."""

    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 0.05
    batch_size: int = 64
    warmup_epochs: int = 1
    grad_clip: float = 1.0
    patience: int = 3
    val_fraction: float = 0.1
    label_smoothing: float | None = None  # None: the strategy's default (0.1 for gci_vital, else 0)
    augment: str = "none"  # "none" or "flip" (random horizontal flip, on the device)
    eval_batch_size: int = 256
    accumulate: int = (
        1  # micro-batches per step, of batch_size / accumulate each (batch_size stays the effective batch)
    )
    compile: bool | str = "auto"  # torch.compile: "auto" (on CUDA only), true or false
    cuda_graphs: bool | str = "auto"  # CUDA graphs: "auto" and true (where compiled on CUDA with accumulate 1), false
    deterministic: bool = False  # PyTorch's deterministic algorithms (slower on CUDA)
    # "finetune" (the paper's protocol: the whole backbone trains) or "linear" (the backbone stays
    # frozen; each round trains a fresh logistic-regression head on its cached features, alvit.features)
    mode: str = "finetune"


@dataclass(frozen=True)
class AcquisitionConfig:
    """Knobs of the strategies that need them."""

    mc_passes: int = 10  # BALD: stochastic forward passes
    mc_dropout: float = 0.1  # BALD: dropout and drop-path rate during those passes only
    # Which of the round's fitted temperatures divides the logits before a strategy ranks the pool
    # (ACQ_CALIBRATE): "none" ranks by the model's own probabilities, as the paper did.
    calibrate: str = "none"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides one active-learning run."""

    dataset: str = "digits"
    model: str = "vit_nano_p4"
    pretrained: bool = False
    weights: str | None = None
    img_size: int | None = None  # None: the model's own input size
    cache: str | None = None  # linear mode's feature cache; None: $ALVIT_DATA/features
    strategy: str = "entropy"
    seed: int = 0
    device: str = "auto"
    # CPU threads of torch and of numpy's BLAS during the run. A CPU's sums depend on how many threads
    # share them, so this decides results as a seed does; 1 is what a sweep's workers used before it was a key.
    threads: int = 1
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    data: DataConfig = field(default_factory=DataConfig)
    al: ALConfig = field(default_factory=ALConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    acq: AcquisitionConfig = field(default_factory=AcquisitionConfig)

    @property
    def run_id(self) -> str:
        """A readable folder name that differs between the configurations of a sweep."""
        model = Path(self.model).name.replace("/", "-")
        dataset = self.dataset.split(":", 1)[0]
        linear = "-linear" if self.train.mode == "linear" else ""  # a frozen backbone's runs never share a folder
        # Calibrated acquisition gets a folder of its own; "none" keeps the ids folders had before the key.
        calibrated = "" if self.acq.calibrate == "none" else f"-cal{self.acq.calibrate}"
        return f"{dataset}-{model}-{self.noise_tag}-{self.strategy}-s{self.seed}{linear}{calibrated}"

    @property
    def noise_tag(self) -> str:
        """The noise in a run id: kind and rate (``flip0.3``), or the label set of a file (``labels-worse_label``)."""
        return self.noise_name.replace(" ", "-" if self.noise.kind == "labels" else "")

    @property
    def noise_name(self) -> str:
        """The noise in words: kind and rate (``flip 0.3``), or the label set of a file (``labels worse_label``)."""
        if self.noise.kind == "labels":
            return f"labels {self.noise.labels_key or Path(self.noise.labels or '').stem}"
        return f"{self.noise.kind} {self.noise.rate:g}"

    @property
    def budget(self) -> int:
        """Labels bought by the end of the run, the clean initial set included."""
        return self.al.initial + self.al.query * self.al.rounds

    def resolved_label_smoothing(self) -> float:
        """Label smoothing for this run: the explicit value, else the strategy's default."""
        if self.train.label_smoothing is not None:
            return self.train.label_smoothing
        return 0.1 if self.strategy == "gci_vital" else 0.0


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict of a config dataclass, in field order (for YAML and comparisons)."""
    return dataclasses.asdict(cfg)


TRAIN_MODES = ("finetune", "linear")
# acq.calibrate: the temperature a strategy's probabilities are scaled by (alvit.calibration.ACQUISITION_FITS):
# none (T = 1, the paper's), or the round's fit on the noisy held-out labels, the noise-aware fit, or the fit
# on the true labels (an oracle bound: true labels are not available in practice).
ACQ_CALIBRATE = ("none", "noisy", "aware", "true")

# Keys that decide how a run is computed, not what it computes: a run folder holds the same
# experiment whatever they say, so a run started on cuda:0 resumes on cuda:1, and a finished
# run is reused. (``train.accumulate`` splits a batch and keeps the effective batch size.)
NOT_RESULT_KEYS = (
    "device",
    "train.eval_batch_size",
    "train.compile",
    "train.cuda_graphs",
    "train.accumulate",
    "cache",
)
MAX_THREADS = 1024
# The resolved section's SHA-256 of each file a run reads by a configured path (alvit.inputs).
INPUTS_SHA256 = "inputs_sha256"


def identity(experiment: dict[str, Any]) -> dict[str, Any]:
    """The result-deciding keys of a config dict (``to_dict``'s or a run's ``config.yaml``), dotted.

    ``resolved`` and :data:`NOT_RESULT_KEYS` are left out, but for the SHA-256 of each input file
    under ``resolved.inputs_sha256``, which counts as the key ``SHA-256 of <key>``. A key the
    dict lacks takes today's default, so a folder written before a key existed matches a
    configuration that keeps it; a file's digest has no default, so a folder that never recorded
    it differs from a configuration that reads the file.
    """
    flat = flatten(to_dict(ExperimentConfig()))
    flat.update(flatten({key: value for key, value in experiment.items() if key != "resolved"}))
    for key in NOT_RESULT_KEYS:
        flat.pop(key, None)
    inputs = (experiment.get("resolved") or {}).get(INPUTS_SHA256) or {}
    flat.update({f"SHA-256 of {key}": digest for key, digest in inputs.items()})
    return flat


def differing_keys(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config dicts, by :func:`identity`."""
    a, b = identity(stored), identity(wanted)
    return sorted(key for key in a.keys() | b.keys() if key not in a or key not in b or a[key] != b[key])


def dump_yaml(cfg: ExperimentConfig, extra: dict[str, Any] | None = None) -> str:
    """The configuration as YAML, with derived values under ``resolved`` when given."""
    data = to_dict(cfg)
    if extra:
        data["resolved"] = extra
    return yaml.safe_dump(data, sort_keys=False)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML file (or start from the defaults), apply ``key=value`` overrides, validate.

    Keys of a ``resolved`` section (as written next to results) are ignored, so a run folder's
    ``config.yaml`` can be fed back in.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist; pass the path of a YAML file such as configs/demo.yaml"
            )
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"config file {path} is not valid YAML ({err.__class__.__name__}); fix its syntax"
            ) from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping of keys to values, not a {type(loaded).__name__}"
            )
        data = loaded or {}
        data.pop("resolved", None)
    for item in overrides:
        key, raw = split_assignment(item, "override", "noise.rate=0.3")
        value = _parse_value(raw, item)
        if key == "acq.calibrate" and isinstance(value, bool):  # YAML reads yes, on and True as true too
            value = raw.strip()  # so the word is kept as typed, and only true means true
        _set_nested(data, key.split("."), value)
    _read_calibrate(data)
    cfg = _build(ExperimentConfig, data, prefix="")
    validate(cfg)
    return cfg


def split_assignment(item: str, what: str, example: str) -> tuple[str, str]:
    """``key=value`` -> ``(key, value text)``, for ``--set``, ``--only`` and ``--slurm-extra`` alike.

    Anything else is one sentence naming ``what`` it was and an ``example`` of the form.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {item!r} is not of the form key=value, e.g. {example}")
    return key.strip(), raw


def _parse_value(raw: str, item: str) -> Any:
    """A ``--set`` value read as YAML (``0.3`` is a float, ``true`` a bool); empty is null."""
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {item!r} has a value that is not valid YAML ({err.__class__.__name__}); quote it or fix it"
        ) from err


def with_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """A copy of ``cfg`` with dotted keys replaced, validated (used by sweeps and notebooks)."""
    data = to_dict(cfg)
    for key, value in overrides.items():
        _set_nested(data, key.split("."), value)
    _read_calibrate(data)
    new = _build(ExperimentConfig, data, prefix="")
    validate(new)
    return new


def _set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = data.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"key {key!r} is a value, not a section, so {'.'.join(keys)!r} cannot be set")
        data = child
    data[keys[-1]] = value


def _read_calibrate(data: dict[str, Any]) -> None:
    """``acq.calibrate`` in place: a YAML file or grid reads the bare word ``true`` as a boolean, which means
    the value ``true``; anything but the four values is one sentence naming them (before a type error could)."""
    acq = data.get("acq")
    if not isinstance(acq, dict) or "calibrate" not in acq:
        return
    if acq["calibrate"] is True:
        acq["calibrate"] = "true"
    _check_calibrate(acq["calibrate"])


def _check_calibrate(value: Any) -> None:
    choices = ", ".join(ACQ_CALIBRATE)
    if value is None:  # an empty --set value or YAML field, which would otherwise read "None is not known"
        raise ConfigError(f"acq.calibrate is empty; valid choices are {choices}")
    if not (isinstance(value, str) and value in ACQ_CALIBRATE):
        raise ConfigError(f"acq.calibrate {value!r} is not known; valid choices are {choices}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(key) for key in data if key not in known)  # YAML keys may be None, numbers, dates
    if unknown:
        where = f"in section {prefix.rstrip('.')!r}" if prefix else "at the top level"
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r} {where}; valid keys are: "
            + ", ".join(prefix + k for k in sorted(known))
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = _build(hint, value if value is not None else {}, prefix + name + ".")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a field's type, accepting ints where floats are expected."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for typ in allowed:
        if typ is bool and isinstance(value, bool):
            return value
        if typ is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if typ is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if typ is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise ConfigError(f"config key {key!r} must be {names}, not {value!r}")


def _check_label_file(cfg: ExperimentConfig) -> None:
    """``noise.labels`` goes with ``noise.kind: labels``, and its file and key must read (alvit.label_files)."""
    from alvit import label_files

    if cfg.noise.kind != "labels":
        if cfg.noise.labels or cfg.noise.labels_key:
            raise ConfigError(
                f"noise.labels and noise.labels_key are read only with noise.kind labels, not {cfg.noise.kind}; "
                "set noise.kind=labels or drop them"
            )
        return
    if not cfg.noise.labels:
        raise ConfigError(
            "noise kind labels needs noise.labels: the path of a .npy of integer labels or a CIFAR-N .pt file"
        )
    label_files.load_labels(cfg.noise.labels, cfg.noise.labels_key)


def validate(cfg: ExperimentConfig) -> None:
    """Check every value that can be checked without loading data or models."""
    # Imported here: strategies brings scipy, which loading a config does not otherwise need.
    from alvit import strategies

    catalog.check_dataset_name(cfg.dataset)
    catalog.check_model_name(cfg.model)
    if cfg.weights is not None and not Path(cfg.weights).is_file():
        raise ConfigError(
            f"weights file {cfg.weights} does not exist; give the path of a .safetensors or .pth file, or weights: null"
        )
    strategies.check_strategy_name(cfg.strategy)
    catalog.check_noise(cfg.noise.kind, cfg.noise.rate)
    _check_label_file(cfg)
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"device {cfg.device!r} is not known; valid choices are auto, cpu, cuda, cuda:N")
    if not 1 <= cfg.threads <= MAX_THREADS:
        raise ConfigError(f"threads must be a whole number from 1 to {MAX_THREADS}, not {cfg.threads}")
    if cfg.img_size is not None and cfg.img_size < 8:
        raise ConfigError(f"img_size must be at least 8 pixels or null, not {cfg.img_size}")
    _check_minimum(
        cfg,
        [
            "al.initial",
            "al.query",
            "train.epochs",
            "train.batch_size",
            "train.eval_batch_size",
            "train.accumulate",
            "acq.mc_passes",
        ],
        1,
        "a positive integer",
    )
    _check_minimum(
        cfg,
        ["al.rounds", "train.warmup_epochs", "train.patience", "data.max_pool", "data.max_test", "seed"],
        0,
        "zero or more",
    )
    if not (cfg.train.lr > 0 and math.isfinite(cfg.train.lr)):
        raise ConfigError(f"train.lr must be a positive number, not {cfg.train.lr}")
    for key, value in (("train.val_fraction", cfg.train.val_fraction), ("acq.mc_dropout", cfg.acq.mc_dropout)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key} must lie in [0, 1), not {value}")
    smoothing = cfg.train.label_smoothing
    if smoothing is not None and not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"train.label_smoothing must lie in [0, 1) or be null, not {smoothing}")
    if cfg.train.augment not in ("none", "flip"):
        raise ConfigError(f"train.augment {cfg.train.augment!r} is not known; valid choices are none, flip")
    _check_calibrate(cfg.acq.calibrate)
    if cfg.train.mode not in TRAIN_MODES:
        raise ConfigError(f"train.mode {cfg.train.mode!r} is not known; valid choices are {', '.join(TRAIN_MODES)}")
    if cfg.train.mode == "linear" and cfg.train.augment != "none":
        raise ConfigError(
            f"train.augment {cfg.train.augment} needs images, and linear mode trains on cached features; "
            "set train.augment=none"
        )
    if cfg.train.batch_size % cfg.train.accumulate:
        size = cfg.train.batch_size  # listed up to 4096 only, so a huge batch size cannot stall validation
        divisors = ", ".join(
            str(d) for d in [*range(1, min(size, 4096) + 1), *([size] if size > 4096 else [])] if size % d == 0
        )
        raise ConfigError(
            f"train.accumulate {cfg.train.accumulate} does not divide train.batch_size "
            f"{cfg.train.batch_size} into equal micro-batches; valid choices are {divisors}"
        )
    if cfg.train.compile not in ("auto", True, False):
        raise ConfigError(f"train.compile {cfg.train.compile!r} is not known; valid choices are auto, true, false")
    if cfg.train.cuda_graphs not in ("auto", True, False):
        raise ConfigError(
            f"train.cuda_graphs {cfg.train.cuda_graphs!r} is not known; valid choices are auto, true, false"
        )
    if cfg.data.max_pool and cfg.budget > cfg.data.max_pool:
        raise ConfigError(
            f"the labeling budget al.initial + al.query * al.rounds = {cfg.budget} is larger than "
            f"data.max_pool = {cfg.data.max_pool}; lower the budget or raise data.max_pool"
        )


def check_budget(cfg: ExperimentConfig, pool_size: int | None = None) -> None:
    """The budget must fit in the pool.

    ``pool_size`` None takes the pool of a built-in dataset from the catalog, so a run or a sweep
    refuses before it imports torch or loads data; an imagefolder's pool is known only once loaded.
    """
    if pool_size is None:
        if cfg.dataset not in catalog.DATASET_SIZES:
            return
        pool_size = catalog.DATASET_SIZES[cfg.dataset][0]
    if cfg.budget > pool_size:
        raise ConfigError(
            f"the labeling budget al.initial + al.query * al.rounds = {cfg.al.initial} + "
            f"{cfg.al.query} * {cfg.al.rounds} = {cfg.budget} is larger than the pool of "
            f"{pool_size} samples of {cfg.dataset}; lower al.initial, al.query or al.rounds"
        )


def lookup(cfg: ExperimentConfig, key: str) -> Any:
    """The value of a dotted key, e.g. ``lookup(cfg, "noise.rate")``; AttributeError if unknown."""
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys: ``{"noise": {"rate": 0.3}}`` -> ``{"noise.rate": 0.3}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_minimum(cfg: ExperimentConfig, keys: list[str], minimum: int, requirement: str) -> None:
    for key in keys:
        if lookup(cfg, key) < minimum:
            raise ConfigError(f"{key} must be {requirement}, not {lookup(cfg, key)}")


__all__ = [
    "ACQ_CALIBRATE",
    "INPUTS_SHA256",
    "MAX_THREADS",
    "NOT_RESULT_KEYS",
    "ALConfig",
    "AcquisitionConfig",
    "DataConfig",
    "ExperimentConfig",
    "NoiseConfig",
    "TrainConfig",
    "check_budget",
    "differing_keys",
    "dump_yaml",
    "flatten",
    "identity",
    "load_config",
    "lookup",
    "to_dict",
    "validate",
    "with_overrides",
]
