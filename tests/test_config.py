"""Configuration: YAML and --set in, every mistake a user can make out as one clear sentence."""

import pytest
import yaml

from alvit.config import (
    ExperimentConfig,
    check_budget,
    dump_yaml,
    load_config,
    with_overrides,
)
from alvit.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_study_protocol():
    cfg = ExperimentConfig()
    assert (cfg.al.initial, cfg.al.query, cfg.al.rounds) == (1000, 1000, 10)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.batch_size) == (1e-4, 0.05, 64)
    assert (cfg.train.epochs, cfg.train.patience, cfg.train.val_fraction, cfg.train.grad_clip) == (20, 3, 0.1, 1.0)
    assert cfg.noise.kind == "flip" and not cfg.al.warm_start
    assert (cfg.train.accumulate, cfg.train.compile, cfg.train.deterministic) == (1, "auto", False)


def test_compile_takes_auto_true_or_false():
    assert [load_config(None, [f"train.compile={v}"]).train.compile for v in ("auto", "true", "false")] == [
        "auto",
        True,
        False,
    ]


def test_yaml_and_overrides_combine_with_overrides_winning(tmp_path):
    path = write(tmp_path, "noise:\n  rate: 0.2\nal:\n  rounds: 4\n")
    cfg = load_config(path, ["noise.rate=0.5", "train.lr=3e-4", "pretrained=true"])
    assert cfg.noise.rate == 0.5 and cfg.al.rounds == 4 and cfg.train.lr == 3e-4 and cfg.pretrained is True


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_config(None, ["noise.rate=0.4", "strategy=gci_vital"])
    path = write(tmp_path, dump_yaml(cfg, {"timm_name": "x"}))
    assert load_config(path) == cfg


def test_label_smoothing_defaults_to_the_strategys():
    assert load_config(None, ["strategy=gci_vital"]).resolved_label_smoothing() == 0.1
    assert load_config(None, ["strategy=entropy"]).resolved_label_smoothing() == 0.0
    assert load_config(None, ["strategy=gci_vital", "train.label_smoothing=0.0"]).resolved_label_smoothing() == 0.0


@pytest.mark.parametrize(
    "override, message",
    [
        (["colour=red"], r"unknown config key 'colour' at the top level; valid keys are: .*dataset"),
        (["train.lr_max=1"], r"unknown config key 'train.lr_max' in section 'train'; valid keys are: .*train.lr\b"),
        (
            ["model=vit_huge_imaginary"],
            r"model 'vit_huge_imaginary' is not known; valid choices are the paper's vit_b16",
        ),
        (
            ["dataset=mnist"],
            r"dataset 'mnist' is not known; valid choices are: digits, cifar10, cifar100, imagefolder:<root>",
        ),
        (["strategy=oracle"], r"strategy 'oracle' is not known; valid choices are: random, entropy"),
        (["noise.rate=1.0"], r"noise rate 1.0 lies outside \[0, 1\)"),
        (["noise.rate=-0.1"], r"outside \[0, 1\)"),
        (["noise.kind=asym"], r"valid choices are: none, flip, uniform, pairflip"),
        (["al.rounds=two"], r"config key 'al.rounds' must be int, not 'two'"),
        (["al.query=0"], r"al.query must be a positive integer"),
        (["device=tpu"], r"valid choices are auto, cpu, cuda, cuda:N"),
        (["dataset=imagefolder:/no/such/folder"], r"dataset folder /no/such/folder/train does not exist"),
        (["weights=/no/such/file.safetensors"], r"weights file /no/such/file.safetensors does not exist"),
        (["noise.rate"], r"not of the form key=value"),
        (
            ["al.initial=900", "al.query=100", "al.rounds=5", "data.max_pool=1000"],
            r"budget .* = 1400 is larger than data.max_pool = 1000",
        ),
        (
            ["train.accumulate=3"],
            r"train.accumulate 3 does not divide train.batch_size 64 .*valid choices are 1, 2, 4, 8, 16, 32, 64$",
        ),
        (["train.accumulate=0"], r"train.accumulate must be a positive integer"),
        (["train.compile=fast"], r"train.compile 'fast' is not known; valid choices are auto, true, false"),
        (["train.deterministic=maybe"], r"config key 'train.deterministic' must be bool, not 'maybe'"),
        (["threads=0"], r"threads must be a whole number from 1 to 1024, not 0$"),
        (["threads=-2"], r"threads must be a whole number from 1 to 1024, not -2$"),
        (["threads=1025"], r"threads must be a whole number from 1 to 1024, not 1025$"),
        (["threads=1.5"], r"config key 'threads' must be int, not 1.5$"),
        (["threads=.nan"], r"config key 'threads' must be int, not nan$"),
        (["threads=.inf"], r"config key 'threads' must be int, not inf$"),
        (["threads=true"], r"config key 'threads' must be int, not True$"),
        (["threads=all"], r"config key 'threads' must be int, not 'all'$"),
    ],
)
def test_bad_values_stop_with_one_sentence(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, override)
    assert "\n" not in str(err.value)


def test_budget_larger_than_the_pool_names_the_numbers():
    cfg = load_config(None, ["al.initial=1000", "al.query=500", "al.rounds=2"])
    with pytest.raises(ConfigError, match=r"1000 \+ 500 \* 2 = 2000 is larger than the pool of 1347 samples of digits"):
        check_budget(cfg, 1347)


def test_missing_and_broken_config_files_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "noise: [unclosed"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a list"))


def test_with_overrides_validates():
    cfg = load_config(None)
    assert with_overrides(cfg, {"noise.rate": 0.6}).noise.rate == 0.6
    with pytest.raises(ConfigError):
        with_overrides(cfg, {"noise.rate": 2})


def test_shipped_configs_are_valid():
    from conftest import REPO

    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)
        assert yaml.safe_load(path.read_text())
