"""``alvit labels DATASET --out FILE.npy``: the true labels of the whole training split, in the order a
``noise.labels`` file follows, as a template for human labels. A run with the template unchanged is a
noise-free oracle, so the order is right; each edited entry is one wrong answer of the oracle."""

import numpy as np
import pytest
import yaml
from conftest import TINY

from alvit import cli
from alvit.data import load_dataset
from alvit.results import RunFolder
from alvit.seeds import subset_indices

NO_SYNTHETIC_NOISE = [item for item in TINY if not item.startswith("noise.")]


def alvit(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_with_labels(capsys, labels, out, *extra: str) -> RunFolder:
    sets = [*NO_SYNTHETIC_NOISE, "noise.kind=labels", f"noise.labels={labels}", *extra]
    code, _, err = alvit(
        capsys, "run", "--quiet", "--out", str(out), *(arg for item in sets for arg in ("--set", item))
    )
    assert code == 0, err
    return RunFolder(out)


def test_the_template_holds_the_training_split_s_true_labels(capsys, tmp_path):
    code, out, err = alvit(capsys, "labels", "digits", "--out", str(tmp_path / "labels.npy"))
    assert code == 0 and err == ""
    template = np.load(tmp_path / "labels.npy", allow_pickle=False)
    assert template.dtype == np.int64
    np.testing.assert_array_equal(template, load_dataset("digits").train_labels)  # 1,347, not the test split's 450
    assert out.startswith(f"wrote the true labels of the 1347 training samples of digits to {tmp_path / 'labels.npy'}")
    assert f"--set noise.kind=labels --set noise.rate=0 --set noise.labels={tmp_path / 'labels.npy'}" in out


def test_a_run_on_the_template_unchanged_is_a_noise_free_oracle(capsys, tmp_path):
    """Were the template in another order than the oracle reads, about 9 in 10 answers would be wrong."""
    assert alvit(capsys, "labels", "digits", "--out", str(tmp_path / "labels.npy"))[0] == 0
    folder = run_with_labels(capsys, tmp_path / "labels.npy", tmp_path / "run")
    assert folder.read_config()["resolved"]["pool_noise_rate"] == 0.0
    rounds = folder.read_rounds()
    assert len(rounds) == 3 and (rounds["noise_realized"] == 0.0).all()
    queries = folder.read_queries()
    np.testing.assert_array_equal(queries["oracle_label"], queries["true_label"])


def test_each_edited_entry_is_one_wrong_answer_also_with_max_pool(capsys, tmp_path):
    """The file covers the whole split; with data.max_pool alvit keeps its pool's positions from it."""
    assert alvit(capsys, "labels", "digits", "--out", str(tmp_path / "labels.npy"))[0] == 0
    human = np.load(tmp_path / "labels.npy")
    edited = np.arange(0, 1347, 7)  # 193 entries a person answered differently
    human[edited] = (human[edited] + 3) % 10
    np.save(tmp_path / "human.npy", human)
    whole = run_with_labels(capsys, tmp_path / "human.npy", tmp_path / "whole", "al.rounds=0")
    assert whole.read_config()["resolved"]["pool_noise_rate"] == pytest.approx(193 / 1347)
    sliced = run_with_labels(capsys, tmp_path / "human.npy", tmp_path / "sliced", "data.max_pool=500", "al.rounds=0")
    kept = yaml.safe_load((sliced.path / "config.yaml").read_text())["data"]["max_pool"]
    assert kept == 500
    positions = subset_indices(1347, 500)  # the pool's positions in the split, as data.py keeps them
    expected = np.isin(positions, edited).mean()
    assert sliced.read_config()["resolved"]["pool_noise_rate"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "name, message",
    [
        ("labels.txt", "--out {tmp}/labels.txt must end in .npy, the format noise.labels reads"),
        (
            "mine.npy",
            "--out {tmp}/mine.npy exists, and alvit labels never replaces a label file (it may hold edits); "
            "remove it or choose another name",
        ),
    ],
)
def test_a_template_never_replaces_a_file_and_is_a_npy(capsys, tmp_path, name, message):
    np.save(tmp_path / "mine.npy", np.zeros(3, dtype=np.int64))
    code, _, err = alvit(capsys, "labels", "digits", "--out", str(tmp_path / name))
    assert code == 2 and err == f"alvit: error: {message.format(tmp=tmp_path)}\n"
    np.testing.assert_array_equal(np.load(tmp_path / "mine.npy"), np.zeros(3))


def test_an_imagefolder_template_lists_the_class_folders_in_alphabetical_order(capsys, tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    for split in ("train", "test"):
        for cls, names in (("cat", ["b.png", "a.png"]), ("ant", ["z.png", "c.png", "y.png"])):
            (root / split / cls).mkdir(parents=True)
            for name in names:
                Image.new("RGB", (4, 4)).save(root / split / cls / name)
    code, out, _ = alvit(capsys, "labels", f"imagefolder:{root}", "--out", str(tmp_path / "labels.npy"))
    assert code == 0 and "classes: 0 ant, 1 cat" in out
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(load_dataset(f"imagefolder:{root}").train_labels, [0, 0, 0, 1, 1])
