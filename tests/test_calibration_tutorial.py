"""The calibration chapter: its hand computations equal alvit's within stated tolerances, and what its
text says is what its numbers show. The notebook writes each value it computes by hand beside the
library's to the JSON file its CHECKS parameter names; the tests read that file."""

import json
import re

import nbformat
import pytest
from conftest import REPO

CHAPTER = REPO / "notebooks" / "calibration_tutorial.ipynb"
# ECE by hand bins and averages the same float64 confidences as alvit.metrics, in another order.
ECE_TOLERANCE = 1e-12
# The hand fits search log T by bounded Brent to 1e-9; alvit's plain fit is Newton's method on 1 / T to
# 1e-10 relative, and its noise-aware fit bounded Brent to 1e-6 in log T: T agrees to 1e-5 relative.
T_TOLERANCE = 1e-5
pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    """The chapter executed as the book executes it (about 40 s on 2 busy cores); its checks and page."""
    import papermill

    folder = tmp_path_factory.mktemp("calibration_tutorial")
    papermill.execute_notebook(
        str(CHAPTER),
        str(folder / "executed.ipynb"),
        parameters={"CHECKS": str(folder / "checks.json")},
        cwd=str(REPO),
        progress_bar=False,
    )
    checks = json.loads((folder / "checks.json").read_text())
    return checks, nbformat.read(str(folder / "executed.ipynb"), as_version=4)


def test_ece_and_the_reliability_bins_by_hand_equal_alvit_metrics_at_every_number_of_bins(chapter):
    checks, _ = chapter
    assert checks["ece"]["hand"] == pytest.approx(checks["ece"]["library"], abs=ECE_TOLERANCE)
    assert checks["ece"]["bins_gap"] <= ECE_TOLERANCE  # counts, mean confidences and accuracies, bin by bin
    assert len(checks["ece_by_bins"]) == 7
    for bins, ece in checks["ece_by_bins"].items():
        assert ece["hand"] == pytest.approx(ece["library"], abs=ECE_TOLERANCE), bins
    for bins, ece in checks["adaptive_ece"].items():  # exercise 1: equal-mass bins
        assert ece["by hand"] == pytest.approx(ece["alvit"], abs=ECE_TOLERANCE), bins


def test_temperatures_fitted_by_hand_on_true_and_noisy_labels_equal_alvit_calibration(chapter):
    checks, _ = chapter
    assert set(checks["temperature"]) == {"true", "noisy 0.2", "noisy 0.5"}
    for labels, fit in checks["temperature"].items():
        assert fit["hand"] == pytest.approx(fit["library"], rel=T_TOLERANCE), labels


def test_the_noise_aware_temperature_by_hand_equals_alvit_calibration(chapter):
    checks, _ = chapter
    assert set(checks["aware"]) == {"0.2", "0.5"}
    for rate, fit in checks["aware"].items():
        assert fit["transition_gap"] == 0.0, rate  # the hand-written C is transition_matrix("flip", ...)
        assert fit["hand"] == pytest.approx(fit["library"], rel=T_TOLERANCE), rate


def test_binned_ece_grows_with_the_number_of_bins_even_for_a_perfectly_calibrated_model(chapter):
    checks, _ = chapter
    by_bins = [checks["ece_by_bins"][b] for b in ("5", "10", "15", "20", "30", "50", "100")]
    perfect = [ece["perfect"] for ece in by_bins]
    assert perfect == sorted(perfect) and perfect[0] > 0
    assert by_bins[-1]["hand"] > by_bins[0]["hand"]
    assert 0 < checks["smooth_ece"]["perfect"] < perfect[-1]


def test_noisy_labels_over_soften_and_the_noise_aware_fit_closes_most_of_the_gap(chapter):
    """Sections 2 and 3 as the text tells them: T rises with the noise; the noise-aware T and its
    test ECE come back near the true-label fit's."""
    checks, _ = chapter
    fits, aware = checks["temperature"], checks["aware"]
    true_t = fits["true"]["hand"]
    assert true_t < fits["noisy 0.2"]["hand"] < fits["noisy 0.5"]["hand"]
    for rate in ("0.2", "0.5"):
        noisy = fits[f"noisy {rate}"]
        assert abs(aware[rate]["hand"] - true_t) < 0.2 * abs(noisy["hand"] - true_t), rate
        assert aware[rate]["test_ece"] < noisy["test_ece"] / 2, rate
    for labels in ("noisy 0.2", "noisy 0.5"):  # "a little below the share of labels that agree"
        agree = checks["agreement"][labels]
        assert agree["mean confidence"] < agree["agree with prediction"] < agree["mean confidence"] + 0.1


def test_a_wrongly_assumed_rate_moves_t_as_exercise_3_says(chapter):
    checks, _ = chapter
    true_t = checks["temperature"]["true"]["hand"]
    for rate in (0.2, 0.5):
        low, right, high = (row for row in checks["wrong_rate"] if row["true rate"] == rate)
        assert low["assumed rate"] < right["assumed rate"] < high["assumed rate"]
        assert high["T"] < true_t < low["T"] and high["T"] < right["T"] < low["T"]
        assert low["test ECE"] > high["test ECE"]  # erring low costs more for this model


def test_a_temperature_changes_entropys_picks_with_ten_or_three_classes_and_never_with_two(chapter):
    checks, _ = chapter
    assert checks["two_classes"]["2"] == [50, 50, 50, 50]
    assert min(checks["two_classes"]["3"]) < 50
    active = checks["active_learning"]
    assert 0 < active["same_picks"][0] < active["query"]  # round 0: one model, some picks differ


def test_the_hand_written_rounds_are_the_loops_own(chapter):
    """Without scaling, section 4's rounds buy the labels alvit.loop.run_experiment buys."""
    checks, _ = chapter
    assert checks["active_learning"]["same_labels_as_loop"] is True
    assert checks["active_learning"]["same_accuracy_as_loop"] is True


def test_exercise_5s_under_confident_model_hides_behind_a_noisy_fit_near_one(chapter):
    checks, _ = chapter
    small = checks["small_model"]
    assert small["true labels"] < 0.8 and small["noise-aware"] < 0.8
    assert 0.9 < small["noisy 0.2"] < 1.1


def test_the_executed_page_shows_no_error_and_no_warning(chapter):
    _, executed = chapter
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert not [output for output in outputs if output.get("name") == "stderr"], "a warning on the page"
    glued = {
        output.metadata["scrapbook"]["name"]: output.data["application/papermill.record/text/plain"]
        for output in outputs
        if "scrapbook" in output.get("metadata", {})
    }
    # The text formats each glued number (:.3f); the book warns on a repr such as np.float64(0.1).
    assert len(glued) > 20 and all(re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", text) for text in glued.values()), glued
