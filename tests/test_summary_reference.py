"""The summary's numbers against references written here: every table is small and made by hand, and every
expected number is worked out by hand (in a comment) or with numpy / Python sets in the test, never with
:mod:`alvit.book.summary` itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alvit.book import summary
from alvit.results import QUERY_FIELDS, RunFolder

# --- the area under the learning curve -------------------------------------------------------------


def curve(n_labeled: list[int], accs: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"n_labeled": n_labeled, "test_acc": accs, "ece": [0.1 * i for i in range(len(accs))]})


def test_the_aulc_is_the_trapezoid_area_over_the_label_range_whatever_the_steps_and_row_order():
    n_labeled, accs = [100, 150, 300, 600], [0.4, 0.55, 0.62, 0.7]
    # (0.4 + 0.55) / 2 * 50 + (0.55 + 0.62) / 2 * 150 + (0.62 + 0.7) / 2 * 300 = 309.5 over 500 labels
    expected = np.trapezoid(accs, n_labeled) / (600 - 100)
    assert expected == pytest.approx(0.619)
    shuffled = curve(n_labeled, accs).iloc[[2, 0, 3, 1]]
    assert summary.area_under_learning_curve(shuffled) == pytest.approx(expected)
    eces = [0.0, 0.1, 0.2, 0.3]
    assert summary.area_under_learning_curve(shuffled, "ece") == pytest.approx(np.trapezoid(eces, n_labeled) / 500)


def test_a_curve_of_one_round_has_its_one_value_and_a_curve_of_none_has_no_area():
    assert summary.area_under_learning_curve(curve([100], [0.7])) == 0.7
    assert np.isnan(summary.area_under_learning_curve(curve([], [])))


def test_the_aulc_reads_labels_and_metric_as_numbers_in_a_table_read_as_text():
    """Labels and metric are taken as numbers, so a table holding them as text (``read_csv(dtype=str)``) has the
    same area; the counts here have one width, so that their order as text is their order as numbers."""
    as_text = curve([100, 200, 400], [0.5, 0.6, 0.9]).astype(str)
    # (0.5 + 0.6) / 2 * 100 + (0.6 + 0.9) / 2 * 200 = 205 over 300 labels
    assert summary.area_under_learning_curve(as_text) == pytest.approx(205 / 300)


# --- the final rounds ------------------------------------------------------------------------------


def three_round_runs() -> pd.DataFrame:
    """Run "b" (3 of 3 rounds, rows out of order), run "a" (3 of 3), run "c" (2 of 3: unfinished)."""
    rows = [
        ("b", 2, 300, 0.8, 3.0, 0.3),
        ("b", 0, 100, 0.5, 1.0, 0.1),
        ("b", 1, 200, 0.7, 2.0, 0.2),
        ("a", 0, 100, 0.4, 1.5, 0.5),
        ("a", 1, 150, 0.6, 2.5, 0.5),
        ("a", 2, 400, 0.9, 3.5, 1.0),
        ("c", 0, 100, 0.3, 1.0, 0.1),
        ("c", 1, 200, 0.4, 1.0, 0.1),
    ]
    table = pd.DataFrame(rows, columns=["run_id", "round", "n_labeled", "test_acc", "train_s", "select_s"])
    return table.assign(finished=table["run_id"] != "c")


def test_final_rounds_are_the_last_round_of_each_finished_run_in_run_order_with_its_area_and_seconds():
    final = summary.final_rounds(three_round_runs())
    assert list(final.columns) == [*three_round_runs().columns, "aulc", "total_train_s", "total_select_s"]
    assert final["run_id"].tolist() == ["a", "b"]  # sorted by run, not in the order the rows came
    assert final["round"].tolist() == [2, 2] and final["test_acc"].tolist() == [0.9, 0.8]
    assert final["aulc"].tolist() == pytest.approx(
        [np.trapezoid([0.4, 0.6, 0.9], [100, 150, 400]) / 300, np.trapezoid([0.5, 0.7, 0.8], [100, 200, 300]) / 200]
    )
    assert final["total_train_s"].tolist() == pytest.approx([7.5, 6.0])
    assert final["total_select_s"].tolist() == pytest.approx([2.0, 0.6])


def test_no_finished_run_gives_an_empty_table_that_still_has_its_columns():
    unfinished = three_round_runs().assign(finished=False)
    final = summary.final_rounds(unfinished)
    assert len(final) == 0
    assert list(final.columns) == [*unfinished.columns, "aulc", "total_train_s", "total_select_s"]


# --- settings and the mean +- std tables --------------------------------------------------------------


def test_settings_come_in_sorted_order_whatever_the_order_of_the_rows():
    table = pd.DataFrame(
        {
            "dataset": ["cifar100", "cifar10", "cifar10", "cifar10"],
            "noise_kind": ["flip", "pairflip", "flip", "flip"],
            "mode": ["finetune", "finetune", "linear", "finetune"],
        }
    )
    assert [name for name, _ in summary.by_setting(table)] == [
        "cifar10 · flip",
        "cifar10 · flip · linear",
        "cifar10 · pairflip",
        "cifar100 · flip",
    ]


def test_a_setting_is_named_without_its_mode_when_it_fine_tunes_as_the_paper_did():
    assert summary.setting_name("cifar10", "flip") == "cifar10 · flip"
    assert summary.setting_name("cifar10", "flip", "linear") == "cifar10 · flip · linear"


def test_a_mean_std_cell_is_the_mean_and_sample_std_over_seeds_and_its_columns_are_the_noise_rates():
    accs = [0.61, 0.64, 0.70]
    rows = pd.DataFrame(
        {
            "model": "vit",
            "strategy": ["entropy"] * 3 + ["random"],
            "noise_rate": [0.25] * 3 + [0.5],
            "test_acc": [*accs, 0.5],
        }
    )
    table = summary.mean_std_table(rows, "test_acc", digits=4)
    assert table.loc[("vit", "entropy"), "0.25"] == f"{np.mean(accs):.4f} ± {np.std(accs, ddof=1):.4f}"
    assert table.loc[("vit", "random"), "0.5"] == "0.5000"  # one seed: no spread to show
    assert list(table.columns) == ["0.25", "0.5"] and table.columns.name == "noise rate"


# --- the representative rates -------------------------------------------------------------------------


def test_four_representative_rates_by_default_evenly_spaced_in_rank():
    rates = [0.6, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert summary.representative_rates(rates) == [0.0, 0.2, 0.4, 0.6]  # ranks 0, 2, 4, 6 of 7
    assert summary.representative_rates([0.3, 0.1, 0.2, 0.0]) == [0.0, 0.1, 0.2, 0.3]  # as many as asked: all


# --- the overview and the run index ---------------------------------------------------------------------


def study_runs() -> pd.DataFrame:
    """Four runs of two rounds each (two simulated), one unfinished run of two rounds of three."""
    rows = []
    runs = [
        ("r1", "cifar10", "flip", "vit_b16", "entropy", 0.0, 0, True, [0.5, 0.87654]),
        ("r2", "cifar10", "pairflip", "vit_l32", "random", 0.25, 1, True, [0.5, 0.6]),
        ("r3", "cifar100", "flip", "vit_b16", "margin", 0.25, 2, False, [0.2, 0.3]),
        ("r4", "cifar100", "flip", "vit_b16", "entropy", 0.0, 0, False, [0.2, 0.4]),
    ]
    for run_id, dataset, kind, model, strategy, rate, seed, simulated, accs in runs:
        for round_, acc in enumerate(accs):
            rows.append(
                {
                    "run_id": run_id,
                    "dataset": dataset,
                    "noise_kind": kind,
                    "model": model,
                    "strategy": strategy,
                    "noise_rate": rate,
                    "seed": seed,
                    "rounds_planned": 2,
                    "simulated": simulated,
                    "round": round_,
                    "n_labeled": 100 * (round_ + 1),
                    "test_acc": acc,
                    "ece": 0.1,
                    "brier": 0.2,
                    "train_s": 1.0,
                    "select_s": 0.5,
                }
            )
    for round_ in (0, 1):  # r5 stopped after round 1 of rounds 0, 1, 2
        rows.append({**rows[0], "run_id": "r5", "rounds_planned": 3, "round": round_, "simulated": False})
    table = pd.DataFrame(rows)
    return table.assign(finished=table["run_id"] != "r5")


def test_the_overview_counts_runs_not_rounds_and_lists_what_the_finished_runs_span():
    runs = study_runs()
    assert summary.overview(runs, summary.final_rounds(runs)) == {
        "n_runs": 4,
        "n_unfinished": 1,  # r5, of two rounds
        "n_simulated": 2,  # r1 and r2, of two rounds each
        "datasets": "cifar10, cifar100",
        "noise_kinds": "flip, pairflip",
        "models": "vit_b16, vit_l32",
        "strategies": "entropy, margin, random",
        "rates": "0, 0.25",
        "n_seeds": 3,
        "budget": 200,
    }


def test_the_overview_of_a_study_with_no_finished_run_has_a_budget_of_0():
    runs = study_runs().assign(finished=False)
    facts = summary.overview(runs, summary.final_rounds(runs))
    assert facts["n_runs"] == 0 and facts["n_unfinished"] == 5 and facts["budget"] == 0 and facts["models"] == ""


def test_the_run_index_gives_each_finished_run_its_final_metrics_to_3_places_and_the_others_their_round():
    runs = study_runs()
    index = summary.run_index(runs, summary.final_rounds(runs), {}).set_index("page")
    assert index.loc["r1", "status"] == "finished" and index.loc["r5", "status"] == "round 1 of 2"
    assert index.loc["r1", "test_acc"] == 0.877  # 0.87654 to 3 places
    assert index.loc["r1", "aulc"] == pytest.approx(0.688)  # (0.5 + 0.87654) / 2 = 0.68827, to 3 places
    assert np.isnan(index.loc["r5", "aulc"])


def test_the_run_index_of_a_study_with_no_finished_run_lists_every_run_without_an_area():
    runs = study_runs().assign(finished=False)
    index = summary.run_index(runs, summary.final_rounds(runs), {})
    assert len(index) == 5 and index["aulc"].isna().all() and set(index["status"]) == {"round 1 of 1", "round 1 of 2"}


# --- question B: the paper's runs, the calibrated runs and their pairs ------------------------------------


def test_a_table_from_before_acq_calibrate_is_all_the_papers_protocol():
    older = pd.DataFrame({"strategy": ["entropy", "random"]})
    assert summary.with_calibrate(older)["acq_calibrate"].tolist() == ["none", "none"]
    assert summary.paper_protocol(older)["strategy"].tolist() == ["entropy", "random"]
    newer = pd.DataFrame({"strategy": ["entropy", "entropy"], "acq_calibrate": ["aware", "none"]})
    assert summary.with_calibrate(newer)["acq_calibrate"].tolist() == ["aware", "none"]
    assert summary.paper_protocol(newer).index.tolist() == [1]


def test_only_strategies_ranking_by_probabilities_can_be_changed_by_a_temperature():
    table = pd.DataFrame({"strategy": ["random", "entropy", "coreset", "margin", "gci_vital"]})
    assert summary.reading_probabilities(table)["strategy"].tolist() == ["entropy", "margin", "gci_vital"]


def test_a_run_is_named_by_its_strategy_and_the_temperature_it_acquires_with():
    assert summary.acquisition_name("entropy", "none") == "entropy"
    assert summary.acquisition_name("entropy", "aware") == "entropy · aware"
    table = pd.DataFrame({"strategy": ["entropy", "entropy", "margin"], "acq_calibrate": ["none", "true", "noisy"]})
    named = summary.named_by_acquisition(table)
    assert named["strategy"].tolist() == ["entropy", "entropy · true", "margin · noisy"]
    older = pd.DataFrame({"strategy": ["entropy"]})
    assert summary.named_by_acquisition(older)["strategy"].tolist() == ["entropy"]


def calibrated_final() -> pd.DataFrame:
    """Final rounds of one setting (no mode column: fine-tuned), entropy at 2 rates x 2 seeds acquiring with
    none and aware, one entropy run with true, random with none and aware, and an aware run without a pair."""
    columns = ["strategy", "acq_calibrate", "noise_rate", "seed", "test_acc", "ece"]
    rows = [
        ("entropy", "none", 0.2, 0, 0.70, 0.10),
        ("entropy", "none", 0.2, 1, 0.72, 0.12),
        ("entropy", "none", 0.4, 0, 0.60, 0.20),
        ("entropy", "none", 0.4, 1, 0.62, 0.18),
        ("entropy", "aware", 0.2, 0, 0.73, 0.05),
        ("entropy", "aware", 0.2, 1, 0.76, 0.06),
        ("entropy", "aware", 0.4, 0, 0.61, 0.15),
        ("entropy", "aware", 0.4, 1, 0.66, 0.10),
        ("entropy", "true", 0.4, 1, 0.70, 0.08),
        ("entropy", "aware", 0.4, 2, 0.99, 0.01),  # seed 2 acquired with none never ran
        ("random", "none", 0.2, 0, 0.50, 0.10),
        ("random", "aware", 0.2, 0, 0.90, 0.10),  # random cannot be changed by a temperature: left out
    ]
    table = pd.DataFrame(rows, columns=columns)
    return table.assign(dataset="cifar10", noise_kind="flip", model="vit_b16")


def test_a_calibrated_gain_is_each_calibrated_runs_metric_minus_its_pairs():
    gains = summary.calibrated_gains(calibrated_final())
    assert list(gains.columns) == [*summary.PAIR, "acq_calibrate", "test_acc", "baseline", "gain"]
    assert (gains["mode"] == "finetune").all()
    got = {
        (v, r, s): g for v, r, s, g in zip(gains["acq_calibrate"], gains["noise_rate"], gains["seed"], gains["gain"])
    }
    assert got == pytest.approx(
        {
            ("aware", 0.2, 0): 0.73 - 0.70,
            ("aware", 0.2, 1): 0.76 - 0.72,
            ("aware", 0.4, 0): 0.61 - 0.60,
            ("aware", 0.4, 1): 0.66 - 0.62,
            ("true", 0.4, 1): 0.70 - 0.62,
        }
    )
    ece = summary.calibrated_gains(calibrated_final(), "ece")
    assert ece[ece["acq_calibrate"] == "true"]["gain"].tolist() == pytest.approx([0.08 - 0.18])
    assert ece[ece["acq_calibrate"] == "true"]["baseline"].tolist() == pytest.approx([0.18])


def test_the_calibrated_gain_table_gives_the_mean_and_std_of_the_gain_per_strategy_value_and_rate():
    gains = summary.calibrated_gains(calibrated_final())
    table = summary.calibrated_gain_table(gains, digits=4)
    assert table.index.names == ["model", "strategy", "acq.calibrate"]
    assert table.index.tolist() == [("vit_b16", "entropy", "aware"), ("vit_b16", "entropy", "true")]
    assert list(table.columns) == ["0.2", "0.4"]
    low, high = [0.03, 0.04], [0.01, 0.04]
    assert table.loc[("vit_b16", "entropy", "aware"), "0.2"] == f"{np.mean(low):.4f} ± {np.std(low, ddof=1):.4f}"
    assert table.loc[("vit_b16", "entropy", "aware"), "0.4"] == f"{np.mean(high):.4f} ± {np.std(high, ddof=1):.4f}"
    assert table.loc[("vit_b16", "entropy", "true"), "0.4"] == "0.0800"
    assert summary.calibrated_gain_table(gains).loc[("vit_b16", "entropy", "true"), "0.4"] == "0.080"


# --- question B: how much a calibrated run's queries overlap its pair's -----------------------------------


def folder_with_queries(path, bought: dict[int, list[int]]) -> str:
    """A run folder whose queries.npz holds ``bought[round]`` (pool indices) for each round."""
    rounds = [r for r, indices in bought.items() for _ in indices]
    index = [i for indices in bought.values() for i in indices]
    arrays = {name: np.zeros(len(index), dtype=np.int64) for name in QUERY_FIELDS}
    arrays.update(round=np.array(rounds, dtype=np.int64), index=np.array(index, dtype=np.int64))
    path.mkdir()
    RunFolder(path).write_queries(arrays)
    return str(path)


def share(mine: list[int], theirs: list[int]) -> float:
    """The reference: the fraction of my queries that are among theirs."""
    return len(set(mine) & set(theirs)) / len(mine)


def test_the_overlap_is_the_share_of_the_calibrated_runs_queries_and_only_of_rounds_both_runs_bought(tmp_path):
    none = {1: [1, 2, 3, 4], 2: [5, 6, 7, 8], 3: [9, 10]}
    aware = {1: [1, 2, 9, 10, 11, 12, 13, 14], 2: [5, 6, 7]}  # bought more than its pair in round 1
    identity = {"dataset": "cifar10", "noise_kind": "flip", "model": "vit_b16", "noise_rate": 0.4, "seed": 0}
    rows = [
        ("m-true", "margin", "true", folder_with_queries(tmp_path / "mt", {1: [1]})),  # no pair: left out
        ("e", "entropy", "none", folder_with_queries(tmp_path / "e", none)),
        ("e-aware", "entropy", "aware", folder_with_queries(tmp_path / "ea", aware)),
        ("r", "random", "none", folder_with_queries(tmp_path / "r", {1: [1, 2]})),
        ("r-aware", "random", "aware", folder_with_queries(tmp_path / "ra", {1: [3, 4]})),  # random: left out
    ]
    runs = pd.DataFrame(
        [
            {**identity, "run_id": run_id, "strategy": strategy, "acq_calibrate": value, "path": path, "round": r}
            for run_id, strategy, value, path in rows
            for r in (0, 1)  # one row per round of the runs table: each run is read once
        ]
    )
    overlap = summary.selection_overlap(runs)
    assert list(overlap.columns) == [*summary.PAIR, "acq_calibrate", "round", "overlap"]
    assert overlap[["strategy", "acq_calibrate", "mode", "seed"]].drop_duplicates().values.tolist() == [
        ["entropy", "aware", "finetune", 0]
    ]
    assert overlap["round"].tolist() == [1, 2]  # round 3 was bought by the pair only
    assert overlap["overlap"].tolist() == pytest.approx([share(aware[1], none[1]), share(aware[2], none[2])])
    assert overlap["overlap"].tolist() == pytest.approx([2 / 8, 3 / 3])
    paper_only = summary.selection_overlap(runs[runs["acq_calibrate"] == "none"])
    assert len(paper_only) == 0 and list(paper_only.columns) == list(overlap.columns)


def test_the_overlap_table_averages_over_models_and_seeds_to_2_places_per_round():
    pair = {"dataset": "cifar10", "noise_kind": "flip", "mode": "finetune", "strategy": "entropy"}
    rows = [
        ("vit_b16", 0, "aware", 0.2, 1, 0.75),
        ("vit_l32", 0, "aware", 0.2, 1, 0.5),
        ("vit_b16", 1, "aware", 0.2, 1, 0.6),
        ("vit_b16", 0, "aware", 0.2, 2, 0.125),
        ("vit_b16", 0, "true", 0.2, 1, 1.0),
        ("vit_b16", 0, "aware", 0.4, 1, 0.1),
    ]
    overlap = pd.DataFrame(
        [
            {**pair, "model": m, "seed": s, "acq_calibrate": v, "noise_rate": r, "round": n, "overlap": o}
            for m, s, v, r, n, o in rows
        ]
    )
    table = summary.overlap_table(overlap)
    assert table.index.names == ["strategy", "acq.calibrate", "noise rate"]
    assert list(table.columns) == ["round 1", "round 2"]
    assert table.loc[("entropy", "aware", 0.2), "round 1"] == round((0.75 + 0.5 + 0.6) / 3, 2) == 0.62
    assert table.loc[("entropy", "aware", 0.2), "round 2"] == 0.12  # 0.125 to 2 places (half to even)
    assert table.loc[("entropy", "true", 0.2), "round 1"] == 1.0
    assert table.loc[("entropy", "aware", 0.4), "round 1"] == 0.1
    assert summary.overlap_table(overlap, digits=3).loc[("entropy", "aware", 0.2), "round 1"] == 0.617


# --- costs, temperatures and the fits' sizes --------------------------------------------------------------


def test_the_cost_table_is_the_mean_seconds_per_run_of_each_model_and_strategy_to_a_tenth():
    rows = pd.DataFrame(
        {
            "model": ["vit_b16", "vit_b16", "vit_b16", "vit_l32"],
            "strategy": ["entropy", "entropy", "random", "entropy"],
            "total_train_s": [100.0, 200.04, 50.0, 7.0],
            "total_select_s": [10.0, 11.0, 0.26, 1.0],
        }
    )
    table = summary.cost_table(rows)
    assert list(table.columns) == ["training s / run", "scoring + selection s / run"]
    assert table.loc[("vit_b16", "entropy")].tolist() == [150.0, 10.5]  # 150.02 to a tenth; (10 + 11) / 2
    assert table.loc[("vit_b16", "random")].tolist() == [50.0, 0.3]
    assert table.loc[("vit_l32", "entropy")].tolist() == [7.0, 1.0]


def test_the_temperature_table_is_each_variants_mean_temperature_per_noise_rate_to_3_places():
    rows = pd.DataFrame(
        {
            "noise_rate": [0.2, 0.2, 0.4],
            "ts_noisy_temperature": [1.5, 1.6, 2.0],
            "ts_true_temperature": [1.0, 1.2, 1.1],
            "ts_aware_temperature": [1.2341, 1.2345, 1.3],
        }
    )
    table = summary.temperature_table(rows)
    assert list(table.columns) == ["(a) ts_noisy", "(b) ts_true", "(c) ts_aware"]
    assert table.index.tolist() == ["0.2", "0.4"] and table.index.name == "noise rate"
    assert table.loc["0.2"].tolist() == pytest.approx([1.55, 1.1, 1.234])  # (1.2341 + 1.2345) / 2 = 1.2343 -> 1.234
    assert table.loc["0.4"].tolist() == pytest.approx([2.0, 1.1, 1.3])


def test_small_fits_count_the_rounds_fitted_below_the_threshold_among_those_whose_size_is_recorded():
    rows = pd.DataFrame({"n_held_out": [10, 20, 49, 50, np.nan, 200]})
    assert summary.small_fits(rows) == (3, 5, 6)  # 10, 20, 49 are below 50; one size not recorded
    assert summary.small_fits(rows, below=20) == (1, 5, 6)  # only 10: the threshold itself is not below
    assert summary.small_fits(pd.DataFrame({"seed": [0, 1]})) == (0, 0, 2)  # a table from before the column


def test_the_small_fit_sentences_use_the_threshold_given_and_count_finished_runs_only():
    runs = pd.DataFrame(
        {
            "dataset": ["cifar10"] * 2 + ["cifar100"] * 5 + ["digits"] * 2,
            "noise_kind": "flip",
            "finished": [1, 1, 1, 1, 1, 1, 0, 1, 1],  # as read back from a file: 0 and 1, not False and True
            # cifar10's runs predate the sizes; one of cifar100's is missing; digits has all of them
            "n_held_out": [np.nan, np.nan, 10, 45, 60, np.nan, 5, 10, 60],
        }
    )
    older = "cifar10 · flip: the held-out sizes of its 2 round fits are not recorded (older runs)."
    assert summary.small_fits_sentences(runs, below=40) == [
        older,
        "cifar100 · flip: 1 of 3 round fits used fewer than 40 held-out labels (1 more not recorded).",
        "digits · flip: 1 of 2 round fits used fewer than 40 held-out labels.",
    ]
    assert summary.small_fits_sentences(runs) == [
        older,
        "cifar100 · flip: 2 of 3 round fits used fewer than 50 held-out labels (1 more not recorded).",
        "digits · flip: 1 of 2 round fits used fewer than 50 held-out labels.",
    ]
