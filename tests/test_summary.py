"""The results side's tables: settings kept apart, gains paired by seed, one row per run in the index."""

import numpy as np
import pandas as pd
import pytest

from alvit.book import summary


def runs_table(rows: list[dict]) -> pd.DataFrame:
    """A tidy runs table (one row per run and round) with the columns load_runs gives."""
    base = {
        "noise_kind": "flip",
        "strategy": "random",
        "seed": 0,
        "rounds_planned": 2,
        "simulated": False,
        "ece": 0.1,
        "brier": 0.2,
        "train_s": 1.0,
        "select_s": 0.5,
        "path": "/nowhere",
    }
    table = pd.DataFrame([{**base, **row} for row in rows])
    table["finished"] = table.groupby("run_id")["round"].transform("count") == table["rounds_planned"]
    return table


def two_round_run(run_id: str, accs: tuple[float, float], **identity) -> list[dict]:
    return [
        {"run_id": run_id, "round": r, "n_labeled": 100 * (r + 1), "test_acc": acc, **identity}
        for r, acc in enumerate(accs)
    ]


@pytest.fixture
def runs():
    rows = []
    for dataset in ("cifar10", "cifar100"):
        for strategy, bonus in (("random", 0.0), ("entropy", 0.05)):
            for seed in (0, 1):
                base = 0.8 if dataset == "cifar10" else 0.5
                rows += two_round_run(
                    f"{dataset}-{strategy}-s{seed}",
                    (base - 0.1, base + bonus + 0.01 * seed),
                    dataset=dataset,
                    model="vit_b16",
                    strategy=strategy,
                    seed=seed,
                    noise_rate=0.3,
                )
    rows += [
        {
            "run_id": "cifar10-unfinished",
            "round": 0,
            "n_labeled": 100,
            "test_acc": 0.3,
            "dataset": "cifar10",
            "model": "vit_b16",
            "noise_rate": 0.6,
        }
    ]
    return runs_table(rows)


def test_final_rounds_keep_the_last_round_of_finished_runs_with_their_aulc(runs):
    final = summary.final_rounds(runs)
    assert len(final) == 8 and "cifar10-unfinished" not in set(final["run_id"])
    row = final.set_index("run_id").loc["cifar10-entropy-s1"]
    assert row["test_acc"] == pytest.approx(0.86) and row["round"] == 1
    assert row["aulc"] == pytest.approx((0.7 + 0.86) / 2)  # the mean height of a straight line
    assert row["total_train_s"] == 2.0


def test_gains_pair_runs_of_the_same_dataset_and_seed_only(runs):
    gains = summary.gain_over_baseline(summary.final_rounds(runs))
    assert len(gains) == 4  # entropy vs random, 2 datasets x 2 seeds: never across datasets
    assert np.allclose(gains["gain"], 0.05)
    assert set(gains["dataset"]) == {"cifar10", "cifar100"}


def test_tables_and_figures_come_one_per_setting(runs):
    final = summary.final_rounds(runs)
    names = [name for name, _ in summary.by_setting(final)]
    assert names == ["cifar10 · flip", "cifar100 · flip"]
    _, cifar100 = list(summary.by_setting(final))[1]
    table = summary.mean_std_table(cifar100, "test_acc")
    assert table.loc[("vit_b16", "entropy"), "0.3"] == "0.555 ± 0.007"
    assert summary.accuracy_range(cifar100)[1] == pytest.approx(np.mean([0.5, 0.51, 0.55, 0.56]))


def test_two_noise_kinds_are_two_settings_not_two_seeds():
    rows = two_round_run(
        "a", (0.5, 0.6), dataset="cifar10", model="m", noise_rate=0.3, noise_kind="flip"
    ) + two_round_run("b", (0.5, 0.2), dataset="cifar10", model="m", noise_rate=0.3, noise_kind="pairflip")
    final = summary.final_rounds(runs_table(rows))
    tables = {name: summary.mean_std_table(rows, "test_acc") for name, rows in summary.by_setting(final)}
    assert tables["cifar10 · flip"].iloc[0, 0] == "0.600" and tables["cifar10 · pairflip"].iloc[0, 0] == "0.200"


def test_a_frozen_backbone_is_a_setting_of_its_own_beside_fine_tuning():
    rows = two_round_run(
        "a", (0.5, 0.6), dataset="cifar10", model="m", noise_rate=0.3, noise_kind="flip", mode="finetune"
    ) + two_round_run("b", (0.5, 0.9), dataset="cifar10", model="m", noise_rate=0.3, noise_kind="flip", mode="linear")
    final = summary.final_rounds(runs_table(rows))
    tables = {name: summary.mean_std_table(rows, "test_acc") for name, rows in summary.by_setting(final)}
    assert tables["cifar10 · flip"].iloc[0, 0] == "0.600" and tables["cifar10 · flip · linear"].iloc[0, 0] == "0.900"
    older = final.drop(columns="mode")  # tables from before linear mode: all fine-tuned
    assert [name for name, _ in summary.by_setting(older)] == ["cifar10 · flip"]


def test_the_run_index_lists_every_run_and_links_only_those_with_a_page(runs):
    final = summary.final_rounds(runs)
    index = summary.run_index(runs, final, {"cifar10-random-s0": "pages/cifar10-random-s0.html"})
    assert len(index) == 9 and list(index.columns) == summary.RUN_INDEX_COLUMNS
    linked = index[index["page"].str.startswith("<a ")]
    assert len(linked) == 1 and 'href="pages/cifar10-random-s0.html"' in linked["page"].iloc[0]
    unfinished = index[index["page"] == "cifar10-unfinished"].iloc[0]
    assert unfinished["status"] == "round 0 of 1" and np.isnan(unfinished["aulc"])


def test_representative_rates_span_lowest_to_highest():
    rates = [round(0.1 * i, 1) for i in range(10)]
    assert summary.representative_rates(rates, 4) == [0.0, 0.3, 0.6, 0.9]
    assert summary.representative_rates([0.0, 0.5], 4) == [0.0, 0.5]


def test_the_overview_counts_runs_seeds_and_simulated_ones(runs):
    facts = summary.overview(runs, summary.final_rounds(runs))
    assert facts["n_runs"] == 8 and facts["n_unfinished"] == 1 and facts["n_simulated"] == 0
    assert facts["datasets"] == "cifar10, cifar100" and facts["n_seeds"] == 2 and facts["budget"] == 200


def test_the_accuracy_sentence_gives_a_range_or_the_one_rate_a_setting_has():
    """A one-rate setting (human labels, measured at 0.262) once read "from 0.804 at noise 0.262 to 0.804 at noise 0.262"."""
    rows = [
        *two_round_run("a", (0.5, 0.9), dataset="digits", model="m", noise_rate=0.0),
        *two_round_run("b", (0.5, 0.6), dataset="digits", model="m", noise_rate=0.6),
        *two_round_run("c", (0.5, 0.804), dataset="digits", model="m", noise_rate=0.262, noise_kind="labels"),
    ]
    assert summary.accuracy_sentence(summary.final_rounds(runs_table(rows))) == (
        "on digits · flip goes from 0.900 at noise 0 to 0.600 at noise 0.6; "
        "on digits · labels is 0.804 at its one noise rate, 0.262"
    )
