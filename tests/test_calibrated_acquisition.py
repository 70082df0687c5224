"""Acquisition with calibrated probabilities (acq.calibrate): what one temperature can change, and the loop.

References are independent of the code under test: probabilities are scipy's softmax of the logits
divided by T, entropies scipy's, and the hand-built pools are small enough to rank by hand.
"""

import contextlib
import logging
import shutil
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from scipy.stats import entropy

from alvit import calibration, seeds
from alvit.config import load_config, to_dict, with_overrides
from alvit.data import load_dataset
from alvit.errors import ConfigError
from alvit.loop import make_oracle, run_experiment, train_initial_model
from alvit.results import RunFolder
from alvit.strategies import STRATEGIES, PoolView, create_strategy
from alvit.train import predict

RANKING = ("entropy", "margin", "least_confidence")


def top_k_at(logits: np.ndarray, temperature: float, strategy: str, k: int) -> set[int]:
    """The strategy's top ``k`` of a pool whose probabilities are softmax(logits / T) (scipy's)."""
    view = PoolView(probs=softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))
    return set(create_strategy(strategy).select(view, k, np.random.default_rng(0)).indices.tolist())


# Two samples of K = 3 classes. X: two close classes (logit gap 1), the third out of reach.
# Y: a top class with the rest shared evenly by two runners-up (gap 1.2 to each).
# At T = 1: p_X = (0.731, 0.269, 0), p_Y = (0.624, 0.188, 0.188): Y is the more uncertain by all
# three (entropy 0.92 > 0.58; 1 - (p1 - p2) 0.564 > 0.538; 1 - p1 0.376 > 0.269).
# At T = 0.1 the gaps are 10 and 12: p_X = (1 - e^-10, e^-10, 0), p_Y = (1 - 2e^-12, e^-12, e^-12),
# and e^-10 = 4.5e-5 outweighs 2e^-12 = 1.2e-5: X is now the more uncertain by all three
# (entropy ~ 10 e^-10 against ~ 2 x 12 e^-12; margin ~ 2e^-10 against 3e^-12; 1 - p1 ~ e^-10 against 2e^-12).
K3_POOL = np.array([[0.0, -1.0, -30.0], [0.0, -1.2, -1.2]])


@pytest.mark.parametrize("strategy", RANKING)
def test_with_three_classes_a_temperature_changes_the_top_k(strategy):
    assert top_k_at(K3_POOL, 1.0, strategy, 1) == {1}
    assert top_k_at(K3_POOL, 0.1, strategy, 1) == {0}


@settings(max_examples=150, deadline=None)
@given(
    magnitudes=st.sets(st.integers(0, 24), min_size=2, max_size=25),
    signs=st.lists(st.booleans(), min_size=25, max_size=25),
    offsets=st.lists(st.integers(-40, 40), min_size=25, max_size=25),
    temperature=st.floats(0.1, 10.0),
    k_share=st.floats(0.0, 1.0),
)
def test_with_two_classes_no_temperature_changes_the_top_k(magnitudes, signs, offsets, temperature, k_share):
    """With K = 2 every utility is monotone in |logit gap|, and T divides every gap alike: at any T the
    top k of all three are the k samples of smallest |gap|, whatever the temperature.

    Gaps are distinct multiples of 1/8 up to 3 (at most 30 after T = 0.1, where float64 still
    tells neighbours apart); each sample has its own offset, to which softmax is blind.
    """
    gaps = np.array(sorted(magnitudes)) / 8 * np.where(signs[: len(magnitudes)], 1, -1)
    base = np.array(offsets[: len(gaps)]) / 8
    logits = np.stack([base, base + gaps], axis=1)
    k = 1 + int(k_share * (len(gaps) - 1))
    closest = set(range(k))  # the magnitudes are sorted: the first k gaps are the smallest
    for strategy in RANKING:
        assert top_k_at(logits, temperature, strategy, k) == top_k_at(logits, 1.0, strategy, k) == closest


def test_random_and_coreset_say_they_read_no_probabilities_and_every_other_strategy_does():
    assert {name for name, cls in STRATEGIES.items() if not cls.reads_probabilities} == {"random", "coreset"}


# --- which temperature a round acquires with ---------------------------------------------------------------


def held_out_split(logits, oracle_label, true_label=None, noisy_channel=None) -> calibration.HeldOut:
    n = len(oracle_label)
    return calibration.HeldOut(
        index=np.arange(n),
        oracle_label=np.asarray(oracle_label, np.int64),
        true_label=np.asarray(oracle_label if true_label is None else true_label, np.int64),
        noisy_channel=np.ones(n, bool) if noisy_channel is None else np.asarray(noisy_channel),
        logits=np.asarray(logits, np.float32),
    )


# Four held-out samples of K = 3, predicted 0, 1, 2, 0. The oracle's labels miss the last two, the true
# labels the last one (a close second): neither set is all predicted right or all far off, so each of the
# three likelihoods has its maximum at a temperature inside (0.01, 100).
SPLIT = held_out_split(
    [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.5, 0.0]], [0, 1, 0, 1], true_label=[0, 1, 2, 1]
)
FLIP = calibration.transition_matrix("flip", 0.3, 3)


@pytest.mark.parametrize("calibrate, variant", [("noisy", "ts_noisy"), ("aware", "ts_aware"), ("true", "ts_true")])
def test_each_value_acquires_with_its_own_fit_and_none_with_the_models_probabilities(calibrate, variant):
    fitted = calibration.fit_variants(SPLIT, FLIP)
    assert len(set(fitted.values())) == 3  # three different temperatures, so a mix-up would show
    assert calibration.acquisition_temperature(calibrate, SPLIT, FLIP, fitted) == (fitted[variant], None)
    assert calibration.acquisition_temperature("none", SPLIT, FLIP, fitted) == (1.0, None)


def test_an_empty_held_out_split_acquires_at_temperature_one_and_says_why():
    empty = held_out_split(np.zeros((0, 3)), [])
    fitted = calibration.fit_variants(empty, FLIP)
    temperature, why = calibration.acquisition_temperature("aware", empty, FLIP, fitted)
    assert temperature == 1.0 and "held-out split is empty" in why and "T = 1" in why


@pytest.mark.parametrize(
    "labels",
    [[0, 1], [2, 2]],
    ids=["all predicted right: best as T -> 0", "all far off: best as T -> 100"],
)
@pytest.mark.parametrize("calibrate", ["noisy", "aware", "true"])
def test_a_tiny_split_whose_likelihood_has_no_inner_maximum_acquires_at_temperature_one(labels, calibrate):
    """Two held-out samples predicted class 0 and class 1 with a logit gap of 3. Both labels right:
    the likelihood keeps rising as T falls. Both labels class 2, at the bottom: it keeps rising as T grows."""
    split = held_out_split([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]], labels, noisy_channel=[False, False])
    fitted = calibration.fit_variants(split, FLIP)
    temperature, why = calibration.acquisition_temperature(calibrate, split, FLIP, fitted)
    assert temperature == 1.0 and "has no maximum inside [0.01, 100]" in why


# --- the key ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["none", "noisy", "aware", "true"])
def test_the_four_values_are_accepted_from_the_command_line_and_from_yaml(value, tmp_path):
    assert load_config(None, [f"acq.calibrate={value}"]).acq.calibrate == value
    path = tmp_path / "c.yaml"
    path.write_text(f"acq:\n  calibrate: {value}\n")  # YAML reads the bare word true as a boolean
    assert load_config(path).acq.calibrate == value
    assert with_overrides(load_config(), {"acq.calibrate": value}).acq.calibrate == value


@pytest.mark.parametrize(
    "value", ["0", "-1", "0.5", "nan", "inf", "false", "yes", "True", "Aware", "calibrated", "awre"]
)
def test_anything_else_is_one_sentence_naming_the_four_values(value):
    with pytest.raises(
        ConfigError, match=r"^acq\.calibrate .* is not known; valid choices are none, noisy, aware, true$"
    ):
        load_config(None, [f"acq.calibrate={value}"])


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_value_is_called_empty_and_the_four_values_named(value):
    with pytest.raises(ConfigError, match=r"^acq\.calibrate is empty; valid choices are none, noisy, aware, true$"):
        load_config(None, [f"acq.calibrate={value}"])


@pytest.mark.parametrize("value", [None, False, 0, -1, float("nan"), float("inf"), [], {}])
def test_a_yaml_or_grid_value_that_is_not_one_of_the_four_is_refused_alike(value):
    with pytest.raises(ConfigError, match="valid choices are none, noisy, aware, true"):
        with_overrides(load_config(), {"acq.calibrate": value})


def test_run_ids_tell_the_variants_apart_and_none_keeps_todays_id():
    base = load_config(None, TINY)
    assert base.run_id == "digits-vit_nano_p4-flip0.3-entropy-s0"  # the id folders had before the key
    ids = {v: with_overrides(base, {"acq.calibrate": v}).run_id for v in ("none", "noisy", "aware", "true")}
    assert ids["none"] == base.run_id
    assert ids["aware"] == "digits-vit_nano_p4-flip0.3-entropy-s0-calaware"
    assert len(set(ids.values())) == 4
    linear = with_overrides(base, {"acq.calibrate": "true", "train.mode": "linear"})
    assert linear.run_id.endswith("-s0-linear-caltrue")


# --- the loop -----------------------------------------------------------------------------------------------

NOISY = [*TINY, "noise.rate=0.5", "al.rounds=1"]  # round 0 selects once, with the round-0 fit


@contextlib.contextmanager
def capturing_views(strategy: str) -> Iterator[list[PoolView]]:
    """Record every PoolView the strategy is handed (it then selects as usual)."""
    cls, views = STRATEGIES[strategy], []
    original = cls.select

    def select(self, view, k, rng):
        views.append(view)
        return original(self, view, k, rng)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cls, "select", select)
        yield views


@pytest.fixture(scope="module")
def entropy_runs(tmp_path_factory) -> dict:
    """Entropy at noise 0.5, with acq.calibrate none and aware, and the views the aware run ranked."""
    root = tmp_path_factory.mktemp("calibrated")
    runs = {}
    for value in ("none", "aware"):
        with capturing_views("entropy") as views:
            cfg = load_config(None, [*NOISY, f"acq.calibrate={value}"])
            runs[value] = (cfg, RunFolder(run_experiment(cfg, root / value, progress=False)), views)
    return runs


def round_zero_model(cfg):
    """The round-0 model, trained apart from the loop (alvit.loop.train_initial_model), the data and the unlabeled pool."""
    data = load_dataset(cfg.dataset, cfg.data.max_pool, cfg.data.max_test)
    oracle = make_oracle(cfg, data.train_labels, data.num_classes)
    model, preprocess = train_initial_model(cfg, data, oracle)
    unlabeled = np.setdiff1d(np.arange(len(data.train_labels)), oracle.initial)
    return model, preprocess, data.train_images[torch.from_numpy(unlabeled)], unlabeled


def reference_probs(cfg, temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """scipy's softmax(logits / T) of the round-0 model on the pool, and of each of its MC-dropout passes
    (from their probabilities at T = 1: a pass's log-probabilities are its logits less a constant per row)."""
    model, preprocess, images, unlabeled = round_zero_model(cfg)
    logits = predict(model, images, preprocess, cfg.train.eval_batch_size, logits=True).logits
    mc = None
    if cfg.strategy == "bald":
        torch.manual_seed(seeds.torch_seed(cfg.seed, "predict"))  # the loop's dropout masks
        passes = predict(
            model,
            images,
            preprocess,
            cfg.train.eval_batch_size,
            mc_passes=cfg.acq.mc_passes,
            mc_rate=cfg.acq.mc_dropout,
        ).mc_probs
        mc = softmax(np.log(passes.astype(np.float64)) / temperature, axis=2)
    return softmax(logits.astype(np.float64) / temperature, axis=1), unlabeled, mc


def test_round_zero_ranks_the_pool_by_probabilities_scaled_with_the_round_zero_fit(entropy_runs):
    cfg, folder, views = entropy_runs["aware"]
    rounds = folder.read_rounds()
    temperature = rounds["acq_temperature"].iloc[0]
    assert temperature == rounds["ts_aware_temperature"].iloc[0] and abs(temperature - 1) > 0.05
    assert np.isnan(rounds["acq_temperature"].iloc[-1])  # the last round selects nothing

    expected, unlabeled, _ = reference_probs(cfg, temperature)
    np.testing.assert_allclose(views[0].probs, expected, atol=1e-6)
    # The queries are the top entropies of those probabilities (up to float32 near-ties at the edge).
    utility = entropy(expected, axis=1)
    kth = np.sort(utility)[-cfg.al.query]
    chosen = set(folder.read_queries()["index"].tolist())
    assert set(unlabeled[utility > kth + 1e-5]) <= chosen <= set(unlabeled[utility >= kth - 1e-5])


def test_calibrated_selections_differ_from_uncalibrated_ones_at_noise_half(entropy_runs):
    (_, none, _), (_, aware, _) = entropy_runs["none"], entropy_runs["aware"]
    assert set(none.read_queries()["index"]) != set(aware.read_queries()["index"])
    assert none.read_rounds()["acq_temperature"].iloc[0] == 1.0


@pytest.mark.parametrize(
    "strategy",
    ["bald", *(pytest.param(name, marks=pytest.mark.slow) for name in ("badge", "gci_vital", "margin"))],
)
def test_every_strategy_that_reads_probabilities_gets_them_scaled(strategy, tmp_path):
    """BALD in every MC pass, BADGE in its gradient embedding, GCI-ViTAL in its entropy."""
    cfg = load_config(None, [*NOISY, f"strategy={strategy}", "acq.calibrate=true", "acq.mc_passes=3"])
    with capturing_views(strategy) as views:
        rounds = RunFolder(run_experiment(cfg, tmp_path / strategy, progress=False)).read_rounds()
    temperature = rounds["acq_temperature"].iloc[0]
    assert temperature == rounds["ts_true_temperature"].iloc[0] and abs(temperature - 1) > 0.05
    expected, _, mc = reference_probs(cfg, temperature)
    np.testing.assert_allclose(views[0].probs, expected, atol=1e-6)
    if strategy == "bald":
        assert views[0].mc_probs.shape == (3, *expected.shape)
        np.testing.assert_allclose(views[0].mc_probs, mc, atol=1e-5)


@pytest.mark.parametrize("strategy", ["random", pytest.param("coreset", marks=pytest.mark.slow)])
def test_random_and_coreset_ignore_the_key_and_say_so_once(strategy, tmp_path, caplog):
    runs = {}
    with caplog.at_level(logging.INFO, logger="alvit.loop"):
        for value in ("none", "noisy"):
            cfg = load_config(None, [*NOISY, f"strategy={strategy}", f"acq.calibrate={value}"])
            runs[value] = RunFolder(run_experiment(cfg, tmp_path / value, progress=False))
    said = [r.getMessage() for r in caplog.records if "changes nothing" in r.getMessage()]
    assert said == [
        f"strategy {strategy} does not rank by the model's probabilities, so acq.calibrate noisy "
        "changes nothing; its rounds record acq_temperature 1"
    ]
    np.testing.assert_array_equal(runs["none"].read_queries()["index"], runs["noisy"].read_queries()["index"])
    assert runs["noisy"].read_rounds()["acq_temperature"].iloc[0] == 1.0


def test_without_a_held_out_split_a_calibrated_run_acquires_at_temperature_one(tmp_path, caplog):
    """train.patience 0 keeps no held-out split: there is nothing to fit, so nothing is scaled, and it says so."""
    runs = {}
    with caplog.at_level(logging.WARNING, logger="alvit.loop"):
        for value in ("none", "true"):
            cfg = load_config(None, [*NOISY, "train.patience=0", f"acq.calibrate={value}"])
            runs[value] = RunFolder(run_experiment(cfg, tmp_path / value, progress=False))
    warned = [r.getMessage() for r in caplog.records if "held-out split is empty" in r.getMessage()]
    assert warned == [
        "round 0/1: the held-out split is empty, so there is no ts_true temperature to acquire with "
        "(acq.calibrate true); this round ranks the pool with T = 1"
    ]
    rounds = runs["true"].read_rounds()
    assert rounds["acq_temperature"].iloc[0] == 1.0 and rounds["ts_true_temperature"].isna().all()
    assert len(runs["true"].read_held_out(0).index) == 0
    np.testing.assert_array_equal(runs["none"].read_queries()["index"], runs["true"].read_queries()["index"])


def test_a_folder_written_before_the_key_is_the_none_run_and_stays_finished(entropy_runs, tmp_path):
    """A config.yaml without acq.calibrate is today's none: the folder counts as finished, not to rerun,
    and its rounds read acq_temperature as missing (NaN), not as 1."""
    cfg, finished, _ = entropy_runs["none"]
    folder = RunFolder(shutil.copytree(finished.path, tmp_path / "old"))
    saved = yaml.safe_load(folder.config.read_text())
    del saved["acq"]["calibrate"]
    folder.config.write_text(yaml.safe_dump(saved, sort_keys=False))
    pd.read_csv(folder.rounds).drop(columns="acq_temperature").to_csv(folder.rounds, index=False)
    assert folder.is_finished(to_dict(cfg))
    assert folder.read_rounds()["acq_temperature"].isna().all()


@pytest.mark.slow
def test_the_demo_acquires_with_the_aware_temperature_from_the_command_line(tmp_path):
    """The issue's command at noise 0.5 (about 10 s a run on 2 cores): `alvit run configs/demo.yaml --set
    acq.calibrate=aware --set strategy=entropy`; every round that selects records the aware fit it used, and
    from round 1 on it buys other samples than acq.calibrate none."""
    import subprocess
    import sys

    from conftest import REPO

    folders = {}
    for value in ("none", "aware"):
        folders[value] = tmp_path / value
        args = ["run", "configs/demo.yaml", "--set", f"acq.calibrate={value}", "--set", "strategy=entropy"]
        args += ["--set", "noise.rate=0.5", "--out", str(folders[value])]
        result = subprocess.run([sys.executable, "-m", "alvit.cli", *args], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    aware, none = RunFolder(folders["aware"]), RunFolder(folders["none"])
    rounds = aware.read_rounds()
    selecting = rounds.iloc[:-1]
    assert (selecting["acq_temperature"] == selecting["ts_aware_temperature"]).all()
    assert (abs(selecting["acq_temperature"] - 1) > 0.05).any() and np.isnan(rounds["acq_temperature"].iloc[-1])
    assert (none.read_rounds()["acq_temperature"].iloc[:-1] == 1.0).all()
    chosen = {name: folder.read_queries() for name, folder in (("none", none), ("aware", aware))}
    assert set(chosen["none"]["index"]) != set(chosen["aware"]["index"])
