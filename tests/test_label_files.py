"""Human label noise: the oracle answers from a file (a .npy, or CIFAR-N's dict of label sets), loaded
without running pickled code; the rate is what the file holds; test labels stay clean; a file that
does not fit gets one sentence. CIFAR-N itself is not shipped (CC BY-NC 4.0): synthetic files of
its layout stand in."""

import pickle

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, assert_calibration_recomputes

from alvit.config import load_config
from alvit.data import load_dataset
from alvit.errors import ConfigError
from alvit.label_files import labels_for_pool, load_labels
from alvit.loop import run_experiment
from alvit.noise import make_oracle
from alvit.results import RunFolder, load_runs
from alvit.seeds import subset_indices

CIFAR10N_SETS = ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3", "clean_label")


def human_like(true_labels: np.ndarray, rate: float, seed: int, num_classes: int = 10) -> np.ndarray:
    """Labels as a crowd gives them: a share ``rate`` wrong, confusions favouring the next class."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(true_labels)) < rate
    shift = np.where(rng.random(len(true_labels)) < 0.7, 1, rng.integers(1, num_classes, len(true_labels)))
    return np.where(wrong, (true_labels + shift) % num_classes, true_labels).astype(np.int64)


@pytest.fixture(scope="module")
def digits_pool():
    return load_dataset("digits")


@pytest.fixture
def cifar10n_file(tmp_path):
    """A file in CIFAR-10_human.pt's layout: a dict of six numpy arrays of 50,000 labels."""
    true = np.random.default_rng(0).integers(0, 10, 50_000)
    sets = {
        name: human_like(true, rate, i)
        for i, (name, rate) in enumerate(zip(CIFAR10N_SETS, (0.09, 0.4, 0.17, 0.18, 0.18, 0.0)))
    }
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save(sets, path)
    return path, sets


def labels_config(path, *extra):
    """A TINY run whose oracle answers from the file at ``path``."""
    tiny = [item for item in TINY if not item.startswith("noise.rate")]  # the file's labels set the rate
    return load_config(None, [*tiny, "noise.kind=labels", f"noise.labels={path}", *extra])


def test_the_oracle_answers_the_files_label_for_every_pool_sample_and_the_run_records_its_rate(digits_pool, tmp_path):
    given = human_like(digits_pool.train_labels, 0.25, seed=1)
    np.save(tmp_path / "crowd.npy", given)
    cfg = labels_config(tmp_path / "crowd.npy")
    assert cfg.run_id == "digits-vit_nano_p4-labels-crowd-entropy-s0"
    oracle = make_oracle(cfg, digits_pool.train_labels, 10)
    np.testing.assert_array_equal(oracle.noisy_labels, given)
    folder = RunFolder(run_experiment(cfg, tmp_path / "run", progress=False))
    measured = float(np.mean(given != digits_pool.train_labels))
    assert yaml.safe_load(folder.config.read_text())["resolved"]["pool_noise_rate"] == measured
    np.testing.assert_array_equal(folder.read_test_labels(), digits_pool.test_labels)  # the test set stays clean
    queries = folder.read_queries()
    np.testing.assert_array_equal(queries["oracle_label"], given[queries["index"]])
    runs, _ = load_runs(tmp_path)
    assert set(runs["noise_kind"]) == {"labels"} and set(runs["noise_rate"]) == {round(measured, 3)}  # the noise axis
    # the noise-aware temperature assumes the confusion the file holds over the pool, counted here
    confusion = np.zeros((10, 10))
    np.add.at(confusion, (digits_pool.train_labels, given), 1)
    assert_calibration_recomputes(folder, "labels", 0.0, confusion / confusion.sum(axis=1, keepdims=True))


def test_cifar_n_label_sets_load_by_key_without_running_pickled_code(cifar10n_file):
    path, sets = cifar10n_file
    for name in ("worse_label", "aggre_label"):
        np.testing.assert_array_equal(load_labels(path, name), sets[name])
    with pytest.raises(
        ConfigError,
        match=r"holds the label sets aggre_label, clean_label, .*worse_label, and it has no 'worst_label'; set noise.labels_key",
    ):
        load_labels(path, "worst_label")
    with pytest.raises(ConfigError, match="no noise.labels_key was given; set noise.labels_key to one of them"):
        load_labels(path)


class Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('ran')",))


def test_a_label_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"noisy_label": np.zeros(10, dtype=np.int64), "trap": Payload()}, tmp_path / "CIFAR-100_human.pt")
    with pytest.raises(ConfigError, match="cannot be loaded safely .weights only: tensors and numpy arrays, no code"):
        load_labels(tmp_path / "CIFAR-100_human.pt", "noisy_label")
    (tmp_path / "plain.pkl.npy").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ConfigError, match="is not a readable .npy of labels"):
        load_labels(tmp_path / "plain.pkl.npy")
    assert not (tmp_path / "PWNED").exists()


def test_a_file_for_the_whole_split_serves_the_pool_that_data_max_pool_keeps(cifar10n_file):
    path, sets = cifar10n_file
    labels = load_labels(path, "random_label1")
    np.testing.assert_array_equal(
        labels_for_pool(labels, 1000, 1000, path), sets["random_label1"][subset_indices(50_000, 1000)]
    )
    with pytest.raises(
        ConfigError, match=r"has 50000 labels, but the pool has 1347 training samples; give one label per"
    ):
        labels_for_pool(labels, 1347, 0, path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["noise.kind=labels"], "noise kind labels needs noise.labels: the path of a .npy"),
        (
            ["noise.kind=labels", "noise.labels=/nowhere/labels.npy"],
            "noise.labels file /nowhere/labels.npy does not exist",
        ),
        (
            ["noise.kind=labels", "noise.rate=0.3", "noise.labels=x.npy"],
            "noise rate 0.3 cannot be set for noise kind labels, whose rate is measured on the file of labels; "
            "the config file or a --set gave it, so add --set noise.rate=0",
        ),
        (
            ["noise.kind=flip", "noise.labels=x.npy"],
            "noise.labels and noise.labels_key are read only with noise.kind labels",
        ),
    ],
)
def test_a_labels_setting_that_cannot_work_gets_one_sentence(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["dataset=digits", *overrides])


def test_a_file_of_the_wrong_shape_type_or_classes_gets_one_sentence(digits_pool, tmp_path):
    np.save(tmp_path / "short.npy", digits_pool.train_labels[:100])
    with pytest.raises(ConfigError, match="has 100 labels, but the pool has 1347 training samples"):
        make_oracle(labels_config(tmp_path / "short.npy"), digits_pool.train_labels, 10)
    np.save(tmp_path / "big.npy", digits_pool.train_labels + 10)
    with pytest.raises(ConfigError, match="holds labels outside 0..9, the classes of digits"):
        make_oracle(labels_config(tmp_path / "big.npy"), digits_pool.train_labels, 10)
    np.save(tmp_path / "soft.npy", np.full(1347, 0.5))
    with pytest.raises(ConfigError, match=r"holds floats \(float64\), not class indices; give one integer label per"):
        load_labels(tmp_path / "soft.npy")
    np.save(tmp_path / "table.npy", np.zeros((1347, 2), dtype=np.int64))
    with pytest.raises(
        ConfigError, match=r"must be one integer label per sample, not an array of int64 shaped \(1347, 2\)"
    ):
        load_labels(tmp_path / "table.npy")
    with pytest.raises(ConfigError, match="noise.labels_key 'aggre_label' is for .pt files"):
        load_labels(tmp_path / "big.npy", "aggre_label")


def test_a_label_file_that_is_not_what_its_name_says_gets_a_sentence_saying_what_it_is(tmp_path):
    """Issue 22: each of these used to end in a traceback or in a sentence that did not say what was wrong."""
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(
        ConfigError, match=r"^noise.labels file .*empty.npy is empty \(0 bytes\); give a .npy that holds"
    ):
        load_labels(tmp_path / "empty.npy")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^noise.labels file .*empty.pt is empty \(0 bytes\); give a .pt that holds"):
        load_labels(tmp_path / "empty.pt", "noisy_label")
    torch.save({"noisy_label": np.random.default_rng(0).random(50)}, tmp_path / "probabilities.pt")
    with pytest.raises(ConfigError, match=r"probabilities.pt holds floats \(float64\), not class indices"):
        load_labels(tmp_path / "probabilities.pt", "noisy_label")
    torch.save({"noisy_label": torch.rand(50, dtype=torch.float64)}, tmp_path / "tensor.pt")
    with pytest.raises(ConfigError, match=r"tensor.pt holds floats \(float64\), not class indices"):
        load_labels(tmp_path / "tensor.pt", "noisy_label")
    with open(tmp_path / "archive.npy", "wb") as handle:  # np.savez to a name of .npy: an npz archive, renamed
        np.savez(handle, labels=np.arange(50), clean=np.arange(50))
    with pytest.raises(
        ConfigError,
        match=r"archive.npy is an npz archive \(of the arrays labels, clean\), not a .npy array; save the labels alone",
    ):
        load_labels(tmp_path / "archive.npy")
    torch.save({"noisy_label": np.arange(50)}, tmp_path / "renamed.npy")  # a .pt file, renamed
    with pytest.raises(ConfigError, match=r"renamed.npy is a zip archive, not a .npy array; a file torch saved needs"):
        load_labels(tmp_path / "renamed.npy")
