"""The calibration fits' sizes are seen: each round records its held-out split's size (rounds.csv's n_held_out,
the existing columns as they were), the console's round line shows the three temperatures and that size, the run
page flags fits on fewer than 50 held-out labels and the summary counts them per setting."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from conftest import TINY

from alvit.book.notebook import held_out_note
from alvit.book.summary import small_fits_sentences
from alvit.config import load_config
from alvit.loop import run_experiment
from alvit.results import MEASURE_COLUMNS, ROUND_COLUMNS, RunFolder


def test_each_round_records_its_held_out_size_and_the_round_line_shows_the_three_temperatures(tmp_path, caplog):
    cfg = load_config(None, [*TINY, "al.rounds=1"])
    with caplog.at_level(logging.INFO, logger="alvit.loop"):
        folder = RunFolder(run_experiment(cfg, tmp_path / "run", progress=False))
    rounds = folder.read_rounds()
    assert list(rounds.columns) == ROUND_COLUMNS + MEASURE_COLUMNS and MEASURE_COLUMNS[-2:] == [
        "n_held_out",
        "acq_temperature",
    ]
    with np.load(folder.held_out_path(0)) as first, np.load(folder.held_out_path(1)) as second:
        sizes = [len(first["index"]), len(second["index"])]  # the splits the temperatures were fitted on
    assert rounds["n_held_out"].tolist() == sizes and 0 < sizes[0] < sizes[1]
    lines = [message for message in caplog.messages if message.startswith("round ")]
    for line, (_, row) in zip(lines, rounds.iterrows(), strict=True):
        assert line.endswith(
            f"  T noisy {row['ts_noisy_temperature']:.2f} true {row['ts_true_temperature']:.2f} "
            f"aware {row['ts_aware_temperature']:.2f} on {int(row['n_held_out'])} held out"
        )


def run_with_sizes(tmp_path, sizes) -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir(parents=True)
    table = pd.DataFrame(0.5, index=range(len(sizes)), columns=ROUND_COLUMNS + MEASURE_COLUMNS)
    folder.write_rounds(table.assign(round=range(len(sizes)), n_held_out=sizes))
    return folder


def test_the_run_page_flags_the_rounds_fitted_on_fewer_than_50_held_out_labels(tmp_path):
    assert held_out_note(run_with_sizes(tmp_path / "a", [10, 25, 49, 50, 75])) == (
        "**Fitted on few labels:** 3 of 5 rounds fitted their temperatures on fewer than 50 held-out labels "
        "(round 0: 10, round 1: 25, round 2: 49), so those temperatures are rough."
    )
    assert held_out_note(run_with_sizes(tmp_path / "b", [50, 60])) == (
        "Every round's temperatures were fitted on at least 50 held-out labels (50 or more)."
    )
    assert held_out_note(run_with_sizes(tmp_path / "c", [np.nan, np.nan])).startswith(
        "The held-out sizes of this run's fits are not recorded"
    )


def test_the_summary_counts_per_setting_the_round_fits_on_fewer_than_50_held_out_labels():
    def rounds(dataset, kind, sizes, finished=True):
        return pd.DataFrame(
            {"dataset": dataset, "noise_kind": kind, "mode": "finetune", "finished": finished, "n_held_out": sizes}
        )

    runs = pd.concat(
        [
            rounds("cifar10", "flip", [10, 40, 90, 140]),  # one run: 2 of its 4 fits small
            rounds("cifar10", "flip", [12, 60, 110, 160]),  # another: 1
            rounds("cifar10", "flip", [5, 5], finished=False),  # unfinished: not in the summary
            rounds("cifar100", "flip", [100, 200, np.nan]),  # a fit whose size is not recorded
            rounds("digits", "pairflip", [np.nan, np.nan]),  # runs from before the column
        ],
        ignore_index=True,
    )
    assert small_fits_sentences(runs) == [
        "cifar10 · flip: 3 of 8 round fits used fewer than 50 held-out labels.",
        "cifar100 · flip: 0 of 2 round fits used fewer than 50 held-out labels (1 more not recorded).",
        "digits · pairflip: the held-out sizes of its 2 round fits are not recorded (older runs).",
    ]
