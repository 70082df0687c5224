"""Verdicts with a known truth, in the paper profile's grid: how often each claim is called wrong.

Tables are simulated by :mod:`alvit.book.power` (the profile's exact grid: 7 models x 10 noise rates
x 3 strategies x 3 seeds; seed noise of one standard deviation, effects in those units) and
judged by the book's own code. Every draw is seeded, and the bounds leave a binomial margin, so
none of these can flake.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from alvit.book import claims, power, stats
from alvit.profile import load_profile

PAPER = "configs/profiles/paper.yaml"
TABLES = 400
EFFECT = 2.0  # seed-sds
ERROR_BOUND = 0.05


def paper_grids(datasets=("cifar10",), kinds=("flip",)) -> list[power.SettingGrid]:
    """The paper profile's settings for ``datasets``, repeated for each noise kind in ``kinds``."""
    grids = power.setting_grids(load_profile(PAPER, only=[f"dataset={','.join(datasets)}"]).configs)
    return [dataclasses.replace(g, name=g.name.replace("flip", kind)) for g in grids for kind in kinds]


ONE_DATASET = paper_grids()
EFFECT_ONLY = (1, 2, 3, 4, 6)  # claims whose statements are all effect tests (claim 3's FLOPs ratio is a fact)


@pytest.fixture(scope="module")
def paper_3_seeds() -> dict[int, power.Characteristics]:
    return {claim: power.characteristics(claim, ONE_DATASET, 3, EFFECT, TABLES) for claim in range(1, 7)}


@pytest.mark.parametrize("claim", [1, 2, 3, 4, 5, 6])
def test_a_true_claim_is_rarely_called_false_and_a_null_one_rarely_true(claim, paper_3_seeds):
    oc = paper_3_seeds[claim]
    assert oc.fails_if_true <= ERROR_BOUND, f"claim {claim}: P(does not hold | true) = {oc.fails_if_true:.3f}"
    assert oc.holds_if_false <= ERROR_BOUND, f"claim {claim}: P(holds | nothing differs) = {oc.holds_if_false:.3f}"


@pytest.mark.parametrize("claim", EFFECT_ONLY)
def test_claims_of_effects_alone_have_80_percent_power_at_2_seed_sds_with_3_seeds(claim, paper_3_seeds):
    oc = paper_3_seeds[claim]
    assert oc.holds_if_true >= 0.8, f"claim {claim}: P(holds | true) = {oc.holds_if_true:.3f}"


def test_claim_5_has_about_30_percent_power_at_3_seeds_and_80_percent_at_6(paper_3_seeds):
    """Reported, not promised: claim 5's "no gain" statements are equivalence tests with a 0.01 margin."""
    oc = paper_3_seeds[5]
    needed = power.seeds_for_power(5, ONE_DATASET, EFFECT, 200)
    assert 0.2 < oc.holds_if_true < 0.45 and needed == 6, (oc, needed)


def test_the_worst_false_claim_is_confirmed_at_most_at_the_level():
    """Intersection-union: nine rates strongly true and one exactly null still say "holds" at most 5% of the time."""
    grid = ONE_DATASET[0]
    means = power.claim_effects(3, grid, 10.0)
    means["test_acc"][grid.models.index("vit_l32"), :, 4] = 0.0  # no advantage at noise 0.4
    cube = power.simulated_cube(grid, means, 3, 4_000, np.random.default_rng(1))
    verdicts = claims.judge_settings(3, {grid.name: cube})[0].verdict
    held = (verdicts == stats.HOLDS).mean()
    assert held <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4_000), held


def test_claim_5_without_its_moderate_gain_is_rarely_confirmed():
    """The least favourable false claim 5: no gain anywhere, so every "no gain" statement is true."""
    grid = ONE_DATASET[0]
    cube = power.simulated_cube(grid, power.claim_effects(5, grid, 0.0), 10, 2_000, np.random.default_rng(2))
    held = (claims.judge_settings(5, {grid.name: cube})[0].verdict == stats.HOLDS).mean()
    assert held <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2_000), held


# P(holds | true) at 3 seeds in four settings, as measured: claim 3 needs every rate in every
# setting (40 statements), claim 5 eight equivalence tests.
FOUR_SETTING_POWER = {2: (0.95, 1.0), 3: (0.3, 0.5), 4: (0.9, 1.0), 5: (0.0, 0.05), 6: (0.95, 1.0)}


@pytest.mark.parametrize("claim", [2, 3, 4, 5, 6])
def test_two_datasets_and_two_noise_kinds_keep_the_error_rates(claim):
    """Four settings (CIFAR-10 and CIFAR-100, K = 100; flip and pair-flip): one family of statements."""
    grids = paper_grids(("cifar10", "cifar100"), ("flip", "pairflip"))
    assert sorted(g.name for g in grids) == [
        "cifar10 · flip",
        "cifar10 · pairflip",
        "cifar100 · flip",
        "cifar100 · pairflip",
    ]
    oc = power.characteristics(claim, grids, 3, EFFECT, 200)
    assert oc.fails_if_true <= ERROR_BOUND and oc.holds_if_false <= ERROR_BOUND
    low, high = FOUR_SETTING_POWER[claim]
    assert low <= oc.holds_if_true <= high, f"claim {claim}, four settings, 3 seeds: power {oc.holds_if_true:.3f}"


def test_power_grows_with_seeds_and_the_report_names_the_fewest_for_80_percent():
    report = power.power_report("paper", paper_grids(("cifar10", "cifar100")), seeds=(3, 10), tables=100)
    table = report.table()
    claim_3 = table[table["claim"] == 3].set_index("seeds")["P(holds | true)"]
    assert claim_3[10] > claim_3[3]
    assert report.claims[2].seeds_for_80 is not None and report.claims[2].seeds_for_80 > 3
    assert "seeds for 80%" in report.format()


def test_the_spread_defaults_to_the_runs_present_per_setting():
    configs = load_profile("configs/profiles/demo.yaml").configs
    final = power.pd.DataFrame(
        [
            {
                "dataset": c.dataset,
                "noise_kind": c.noise.kind,
                "model": c.model,
                "strategy": c.strategy,
                "noise_rate": c.noise.rate,
                "seed": c.seed,
                "run_id": c.run_id,
                "test_acc": 0.5 + 0.03 * (c.seed - 1),
                "ece": 0.1,
                "brier": 0.2,
            }
            for c in configs
        ]
    )
    grid = power.setting_grids(configs, final)[0]
    assert grid.sd["test_acc"] == pytest.approx(0.03) and grid.sd_source.startswith("runs present")
    assert grid.sd["ece"] == power.DEFAULT_SD  # no spread in the runs: the stated default
    assert power.setting_grids(configs)[0].sd_source == "default"
    assert power.setting_grids(configs, final, sd=0.05)[0].sd["test_acc"] == 0.05


def test_claims_the_grid_cannot_test_are_named_not_simulated():
    report = power.power_report(
        "demo", power.setting_grids(load_profile("configs/profiles/demo.yaml").configs), seeds=(3,), tables=50
    )
    untestable = {p.claim: p.untestable for p in report.claims}
    assert untestable[2] and "vit_l32" in untestable[2] and untestable[5] is None
    assert "not testable in this grid" in report.format()


def test_alvit_power_prints_its_table_and_writes_json(tmp_path):
    out = tmp_path / "power.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alvit.cli",
            "power",
            PAPER,
            "--seeds",
            "3,5",
            "--tables",
            "50",
            "--runs",
            str(tmp_path / "none"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "P(holds|true)" in result.stdout and "cifar100 · flip" in result.stdout
    written = json.loads(out.read_text())
    assert [c["claim"] for c in written["claims"]] == [1, 2, 3, 4, 5, 6]
    assert {r["seeds"] for r in written["claims"][2]["rows"]} == {3, 5}


@pytest.mark.parametrize(
    "arguments",
    [
        dict(seeds=(1,)),
        dict(seeds=(31,)),
        dict(effect=0.0),
        dict(effect=float("nan")),
        dict(sd=0.0),
        dict(sd=float("inf")),
        dict(tables=19),
    ],
)
def test_power_from_python_refuses_a_value_outside_its_range_in_one_sentence(arguments):
    """The command line refuses these where it parses them (tests/test_cli.py); the function does too."""
    with pytest.raises(power.ConfigError):
        power.profile_power(PAPER, **arguments)
