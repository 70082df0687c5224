"""Question B on the results side: calibrated runs paired with their uncalibrated twins, kept out of the
paper's sections and claims, their selections compared, and the question judged by the claims' rule.

Tables are built by hand, each number chosen so that the right gain, overlap or verdict is known.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from scipy import stats as scipy_stats

from alvit import calibration
from alvit.book import claims, power, summary
from alvit.book.stats import CANNOT_SAY, FAILS, HOLDS
from alvit.profile import load_profile
from alvit.results import QUERY_FIELDS, RunFolder
from alvit.sweep.simulate import simulate_profile

VALUES = ("none", "noisy", "aware", "true")


def final_table(
    gain: dict[str, float],
    *,
    strategies=("entropy", "margin"),
    datasets=("cifar10", "cifar100"),
    models=("vit_b16", "vit_l32"),
    rates=(0.0, 0.2, 0.5, 0.8),
    seeds=(0, 1, 2),
    jitter: float = 0.002,
) -> pd.DataFrame:
    """Final rounds: accuracy 0.7 - 0.3 rate for acq.calibrate none, plus ``gain[value]`` for the others at
    noise above 0 (nothing at noise 0), plus seed noise of -jitter, 0 or +jitter rotated by each run's hash
    (so a pair's difference has a spread, and its mean over seeds is the gain put in)."""
    rows = []
    for dataset, model, strategy, value, rate, seed in itertools.product(
        datasets, models, strategies, [v for v in VALUES if v in gain or v == "none"], rates, seeds
    ):
        noise = jitter * ((seed + zlib.crc32(f"{dataset}{model}{strategy}{value}{rate}".encode())) % 3 - 1)
        added = gain.get(value, 0.0) if rate > 0 else 0.0
        rows.append(
            {
                "run_id": f"{dataset}-{model}-flip{rate:g}-{strategy}-s{seed}"
                + ("" if value == "none" else f"-cal{value}"),
                "dataset": dataset,
                "noise_kind": "flip",
                "mode": "finetune",
                "model": model,
                "strategy": strategy,
                "acq_calibrate": value,
                "noise_rate": rate,
                "seed": seed,
                "test_acc": 0.7 - 0.3 * rate + added + noise,
                "ece": 0.1 + 0.1 * rate - added / 2,
                "brier": 0.3,
            }
        )
    return pd.DataFrame(rows)


# --- the paper's sections read the paper's runs only ----------------------------------------------


def test_the_paper_protocol_is_the_runs_without_a_temperature_and_a_table_before_the_key_is_all_of_it():
    table = final_table({"aware": 0.05})
    kept = summary.paper_protocol(table)
    assert set(kept["acq_calibrate"]) == {"none"} and len(kept) == len(table) / 2
    older = table[table["acq_calibrate"] == "none"].drop(columns="acq_calibrate")
    assert len(summary.paper_protocol(older)) == len(older)


def test_a_paper_claim_is_judged_as_if_the_calibrated_runs_were_absent():
    """Claim 5 on random / entropy / GCI-ViTAL, with calibrated entropy runs 0.5 ahead beside them."""
    paper = final_table({}, strategies=("random", "entropy", "gci_vital"))
    calibrated = final_table({"aware": 0.5}, strategies=("entropy",))
    calibrated = calibrated[calibrated["acq_calibrate"] == "aware"]
    alone, beside = claims.check_claim(5, paper), claims.check_claim(5, pd.concat([paper, calibrated]))
    assert (alone.verdict, alone.evidence) == (beside.verdict, beside.evidence)


# --- gains, paired by everything but the key -------------------------------------------------------


def test_a_gain_is_the_calibrated_run_minus_its_uncalibrated_pair():
    table = final_table({"noisy": 0.01, "aware": 0.03, "true": 0.05}, jitter=0.0)
    gains = summary.calibrated_gains(table)
    assert len(gains) == 3 * len(table) / 4  # one row per calibrated run
    by_value = gains[gains["noise_rate"] > 0].groupby("acq_calibrate")["gain"]
    assert by_value.min().to_dict() == pytest.approx({"noisy": 0.01, "aware": 0.03, "true": 0.05})
    assert by_value.max().to_dict() == pytest.approx({"noisy": 0.01, "aware": 0.03, "true": 0.05})
    assert (gains[gains["noise_rate"] == 0]["gain"] == 0).all()
    ece = summary.calibrated_gains(table, "ece")
    assert ece[(ece["noise_rate"] > 0) & (ece["acq_calibrate"] == "true")]["gain"].to_numpy() == pytest.approx(-0.025)


def test_strategies_that_read_no_probabilities_are_left_out_of_the_gains():
    table = final_table({"aware": 0.03}, strategies=("random", "coreset", "entropy"))
    assert set(summary.calibrated_gains(table)["strategy"]) == {"entropy"}


def test_the_gain_table_has_a_row_per_model_strategy_and_value_and_a_column_per_rate():
    gains = summary.calibrated_gains(final_table({"noisy": 0.01, "aware": 0.03}, datasets=("cifar10",)))
    table = summary.calibrated_gain_table(gains)
    assert table.index.names == ["model", "strategy", "acq.calibrate"] and len(table) == 2 * 2 * 2
    assert list(table.columns) == ["0", "0.2", "0.5", "0.8"]
    assert table.loc[("vit_b16", "entropy", "aware"), "0.2"].startswith("0.030 ± ")


# --- how much the selections overlap ------------------------------------------------------------------


def folder_with_queries(path, bought: dict[int, list[int]]) -> str:
    """A run folder whose queries.npz holds ``bought[round]`` (pool indices) for each round."""
    rounds = [r for r, indices in bought.items() for _ in indices]
    index = [i for indices in bought.values() for i in indices]
    arrays = {name: np.zeros(len(index), dtype=np.int64) for name in QUERY_FIELDS}
    arrays.update(round=np.array(rounds, dtype=np.int64), index=np.array(index, dtype=np.int64))
    arrays["utility"] = np.zeros(len(index))
    path.mkdir()
    RunFolder(path).write_queries(arrays)
    return str(path)


def test_the_overlap_is_the_share_of_a_calibrated_runs_queries_its_pair_bought_in_the_same_round(tmp_path):
    pair = {"dataset": "cifar10", "noise_kind": "flip", "mode": "finetune", "model": "vit_b16", "noise_rate": 0.4}
    runs = pd.DataFrame(
        [
            {
                **pair,
                "run_id": "e",
                "strategy": "entropy",
                "seed": 0,
                "acq_calibrate": "none",
                "path": folder_with_queries(tmp_path / "e", {1: [1, 2, 3, 4], 2: [5, 6, 7, 8]}),
            },
            {
                **pair,
                "run_id": "e-aware",
                "strategy": "entropy",
                "seed": 0,
                "acq_calibrate": "aware",
                "path": folder_with_queries(tmp_path / "ea", {1: [1, 2, 3, 9], 2: [8, 10, 11, 12]}),
            },
            {
                **pair,
                "run_id": "e-true",
                "strategy": "entropy",
                "seed": 0,
                "acq_calibrate": "true",
                "path": folder_with_queries(tmp_path / "et", {1: [4, 3, 2, 1], 2: [1, 2, 3, 4]}),
            },
            # seed 1 has no uncalibrated run: nothing to compare it with
            {
                **pair,
                "run_id": "e1-aware",
                "strategy": "entropy",
                "seed": 1,
                "acq_calibrate": "aware",
                "path": folder_with_queries(tmp_path / "e1", {1: [1, 2, 3, 4]}),
            },
        ]
    )
    overlap = summary.selection_overlap(runs).set_index(["acq_calibrate", "round"])["overlap"]
    # aware: 3 of 4 again in round 1 ({1, 2, 3}), 1 of 4 in round 2 ({8}); true: all 4 in round 1, and in
    # round 2 the indices its pair bought in round 1, not round 2: none.
    assert overlap.to_dict() == {("aware", 1): 0.75, ("aware", 2): 0.25, ("true", 1): 1.0, ("true", 2): 0.0}
    table = summary.overlap_table(summary.selection_overlap(runs))
    assert list(table.columns) == ["round 1", "round 2"] and table.loc[("entropy", "aware", 0.4), "round 1"] == 0.75


# --- question B, by the claims' rule ------------------------------------------------------------------


def test_question_b_holds_when_both_practical_temperatures_raise_accuracy_whatever_the_oracle_bound_does():
    verdict = claims.check_claim("B", final_table({"noisy": 0.02, "aware": 0.03, "true": -0.2}))
    assert verdict.verdict == HOLDS
    assert "noisy: accuracy gain over none +0.020" in verdict.evidence and "true" not in verdict.evidence


def test_question_b_does_not_hold_when_a_practical_temperature_costs_accuracy():
    verdict = claims.check_claim("B", final_table({"noisy": 0.02, "aware": -0.03}))
    assert verdict.verdict == FAILS and "aware: accuracy gain over none -0.030" in verdict.evidence


def test_question_b_cannot_say_without_runs_of_one_practical_value():
    verdict = claims.check_claim("B", final_table({"noisy": 0.02, "true": 0.05}))
    assert verdict.verdict == CANNOT_SAY and "no runs with acq.calibrate aware beside none" in verdict.evidence


def test_question_b_pools_only_strategies_a_temperature_can_change():
    """Random's calibrated runs are its uncalibrated runs again (the key cannot change them); here they are
    made 0.5 ahead, and entropy's 0.03 behind: B still does not hold, since random is not pooled in."""
    table = pd.concat(
        [
            final_table({"noisy": 0.5, "aware": 0.5}, strategies=("random",)),
            final_table({"noisy": -0.03, "aware": -0.03}, strategies=("entropy",)),
        ]
    )
    assert claims.check_claim("B", table).verdict == FAILS


def test_question_a_reads_the_paper_protocols_runs_only():
    """Question A's statements are about the temperatures of the paper's runs, calibrated ones aside."""
    table = final_table({"aware": 0.03})
    calibrated = table["acq_calibrate"] != "none"
    for prefix, value in (("ts_noisy_", 0.2), ("ts_true_", 0.05), ("ts_aware_", 0.06)):
        table[prefix + "ece"] = value + 0.01 * table["seed"] + np.where(calibrated & (prefix == "ts_noisy_"), 0.5, 0.0)
    only_paper = claims.check_claim("A", summary.paper_protocol(table))
    assert "+0.150" in only_paper.evidence  # 0.2 - 0.05: the calibrated runs' 0.5 is nowhere
    assert claims.check_claim("A", table).evidence == only_paper.evidence


# --- at the study's shape: simulated runs of both datasets, and the results page ---------------------

CALIBRATED = REPO / "tests" / "profiles" / "calibrated.yaml"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """tests/profiles/calibrated.yaml simulated: CIFAR-10 and CIFAR-100, 2 rates, random and entropy,
    every acq.calibrate value, 2 seeds (64 runs)."""
    out = tmp_path_factory.mktemp("calibrated")
    profile = load_profile(CALIBRATED)
    simulate_profile(profile, out, test_size=100)
    return profile, out


def pair_of(cfg):
    return dataclasses.replace(cfg, acq=dataclasses.replace(cfg.acq, calibrate="none"))


def test_a_simulated_calibrated_run_shares_its_pairs_round_0_then_parts(simulated):
    profile, out = simulated
    for cfg in profile.configs:
        if cfg.acq.calibrate == "none":
            continue
        mine, theirs = RunFolder(out / cfg.run_id), RunFolder(out / pair_of(cfg).run_id)
        a, b = mine.read_rounds(), theirs.read_rounds()
        pd.testing.assert_series_equal(a.loc[0, "test_acc":"nll"], b.loc[0, "test_acc":"nll"])  # one round-0 model
        queries, pair_queries = mine.read_queries(), theirs.read_queries()
        first = np.intersect1d(
            queries["index"][queries["round"] == 1], pair_queries["index"][pair_queries["round"] == 1]
        )
        if cfg.strategy == "random":  # the key cannot change random sampling: the same run again
            pd.testing.assert_frame_equal(
                a.drop(columns=["train_s", "select_s"]), b.drop(columns=["train_s", "select_s"])
            )
            assert a["acq_temperature"].tolist()[:-1] == [1.0, 1.0]
        else:  # 1,000 queries, each kept with probability 0.8: 800 +- 4 binomial sds (13 each)
            assert abs(len(first) - 800) < 4 * 13
            fitted = a[f"{calibration.ACQUISITION_FITS[cfg.acq.calibrate]}_temperature"]
            used = a["acq_temperature"]
            assert used.iloc[-1] != used.iloc[-1]  # NaN: the last round chooses nothing
            assert all(t in (1.0, f) for t, f in zip(used.iloc[:-1], fitted.iloc[:-1]))


@pytest.mark.notebooks
def test_the_results_page_shows_question_b_apart_from_the_papers_sections(simulated, tmp_path):
    import papermill

    profile, out = simulated
    executed = tmp_path / "summary.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "summary.ipynb"),
        str(executed),
        cwd=str(REPO),
        progress_bar=False,
        parameters={"PROFILE": profile.name, "PROFILE_PATH": str(CALIBRATED), "RUNS_DIR": str(out)},
    )
    notebook = nbformat.read(str(executed), as_version=4)

    def outputs(marker: str) -> list[dict]:
        cell = next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)
        return cell.outputs

    def text(marker: str) -> str:
        return " ".join(
            str(o.get("data", {}).get(kind, "")) for o in outputs(marker) for kind in ("text/markdown", "text/html")
        )

    def figures(marker: str) -> int:
        return sum("image/png" in o.get("data", {}) for o in outputs(marker))

    # 48 calibrated runs (2 datasets x 2 rates x 2 strategies x 3 values x 2 seeds), said once, shown apart
    assert "48 of these runs acquire with calibrated probabilities" in text("if n_calibrated:")
    assert figures("plots.calibrated_gain_vs_noise") == 2 * 2  # accuracy and ECE, a figure per setting
    assert figures("plots.selection_overlap") == 2
    overlap = text("summary.overlap_table")  # a share in percent, the rate as written, not six decimals
    assert "Mean share of queries shared with the uncalibrated run" in overlap and "%</td>" in overlap
    assert ">0.2</th>" in overlap and "0.200000" not in overlap
    gains = text("summary.calibrated_gain_table")
    assert "Final accuracy gain over acq.calibrate none" in gains and "random" not in gains  # random is left out
    verdict = text('claims.check_claim("B", everything)')
    assert "cifar10 · flip" in verdict and "cifar100 · flip" in verdict and "aware: accuracy gain over none" in verdict
    assert "**Its power.**" in verdict and "2 seeds would confirm question B in" in verdict
    paper = text("claims.check_all(final)")
    assert "Verdict of each claim" in paper


@pytest.mark.notebooks
def test_the_power_page_gives_question_b_a_row_and_the_papers_claims_only_the_none_runs(simulated, tmp_path):
    import papermill

    profile, out = simulated
    executed = tmp_path / "power.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "power.ipynb"),
        str(executed),
        cwd=str(REPO),
        progress_bar=False,
        parameters={"PROFILE": str(CALIBRATED), "RUNS_DIR": str(out)},
    )
    notebook = nbformat.read(str(executed), as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "report.table()" in c.source)
    table = " ".join(str(o.get("data", {}).get("text/html", "")) for o in cell.outputs)
    shown = " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in cell.outputs)
    assert table.count(">B</th>") == 1  # question B is a row of the table (its seeds 3, 5, 10), as the text says
    assert (
        "- claim B: acq.calibrate noisy raises accuracy by 10 pooled sds at every noisy rate, aware not at all" in shown
    )


# --- how sure question B's verdict is ------------------------------------------------------------------

B_STRATEGIES = tuple(f"{s}{v}" for s in ("entropy", "margin") for v in ("", " · noisy", " · aware", " · true"))


def b_grid(sd_by_rate=(0.01, 0.03)) -> power.SettingGrid:
    """One setting of question B: one model, entropy and margin each with every acq.calibrate value, two noisy rates."""
    spreads = {metric: tuple(sd_by_rate) for metric in power.METRICS}
    return power.SettingGrid("cifar10 · flip", ("vit_b16",), B_STRATEGIES, (0.2, 0.6), spreads, ("given", "given"))


def reference_holds(effect: float, seeds: int, sd_by_rate=(0.01, 0.03), tables: int = 20_000) -> float:
    """P(B holds) by a simulation of its own: runs with independent normal seed noise of each rate's sd; for
    noisy and for aware, each seed's mean over (strategy, rate) of calibrated minus none; B holds when both
    one-sided t tests over seeds reject at 5%. ``effect`` in pooled sds (root mean square of the rates' sds)."""
    rng = np.random.default_rng(7)
    sd = np.array(sd_by_rate)[None, None, :, None]  # [table, strategy, rate, seed]
    delta = effect * np.sqrt(np.mean(np.square(sd_by_rate)))
    none = sd * rng.standard_normal((tables, 2, 2, seeds))
    verdicts = []
    for _ in ("noisy", "aware"):
        calibrated = delta + sd * rng.standard_normal((tables, 2, 2, seeds))
        per_seed = (calibrated - none).mean(axis=(1, 2))  # [table, seed]
        t = per_seed.mean(axis=1) / (per_seed.std(axis=1, ddof=1) / np.sqrt(seeds))
        verdicts.append(scipy_stats.t.sf(t, seeds - 1) <= 0.05)
    return float(np.mean(verdicts[0] & verdicts[1]))


@pytest.mark.parametrize("effect, seeds", [(1.0, 3), (0.5, 5)])
def test_question_bs_power_matches_an_independent_simulation_of_its_two_t_tests(effect, seeds):
    report = power.power_report("b", [], seeds=(seeds,), effect=effect, tables=1000, study_settings=[b_grid()])
    b = next(p for p in report.claims if p.claim == "B")
    expected = reference_holds(effect, seeds)
    assert 0.15 < expected < 0.95  # a power that can be told apart from 0 and 1
    assert abs(b.rows[0].holds_if_true - expected) < 4 * np.sqrt(expected * (1 - expected) / 1000) + 0.005
    assert b.rows[0].holds_if_least_favourable < 0.05 + 4 * np.sqrt(0.05 * 0.95 / 5000)  # one value gains nothing
    assert "aware not at all" in b.least_favourable


def test_power_reports_question_b_only_for_a_grid_that_acquires_with_calibrated_probabilities():
    plain = dataclasses.replace(b_grid(), strategies=("entropy", "margin"))
    report = power.power_report("plain", [plain], seeds=(3,), tables=100, study_settings=[plain])
    assert "B" not in [p.claim for p in report.claims]


def test_the_calibrated_acquisition_profiles_power_judges_the_papers_claims_on_its_none_runs_only():
    report = power.profile_power(REPO / "configs" / "profiles" / "calibrated-acquisition.yaml", seeds=(5,), tables=100)
    assert {s for g in report.settings for s in g.strategies} == {"entropy", "margin", "bald", "badge"}
    assert {s for g in report.study_settings for s in g.strategies} >= {"entropy · aware", "badge · true", "bald"}
    b = next(p for p in report.claims if p.claim == "B")
    assert b.untestable is None and b.rows[0].seeds == 5
    sentence = power.question_b_sentence(report, 5)
    assert sentence.startswith("**Its power.**") and "5 seeds would confirm question B in" in sentence
