"""Label files read exactly as written: every label, as int64, from a .npy or a .pt (a dict of sets or one
tensor), checked against the arrays the test wrote; each refusal names what is wrong."""

import numpy as np
import pytest
import torch

from alvit.errors import ConfigError
from alvit.label_files import labels_for_pool, load_labels


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_a_npy_of_any_integer_type_reads_as_the_same_int64_labels(tmp_path, dtype):
    written = np.array([0, 9, 3, 3, 7], dtype=dtype)
    np.save(tmp_path / "labels.npy", written)
    labels = load_labels(tmp_path / "labels.npy")
    assert labels.dtype == np.int64 and labels.tolist() == [0, 9, 3, 3, 7]


def test_a_pt_holding_one_tensor_needs_no_key_and_refuses_one(tmp_path):
    torch.save(torch.tensor([4, 1, 1, 0]), tmp_path / "one.pt")
    labels = load_labels(tmp_path / "one.pt")
    assert labels.dtype == np.int64 and labels.tolist() == [4, 1, 1, 0]
    with pytest.raises(ConfigError, match=r"holds one label set, not a dict; leave noise.labels_key unset"):
        load_labels(tmp_path / "one.pt", "aggre_label")


def test_a_pt_dict_of_tensors_reads_the_set_the_key_names(tmp_path):
    torch.save({"a": torch.tensor([1, 2]), "b": np.array([3, 4], dtype=np.int16)}, tmp_path / "sets.pt")
    assert load_labels(tmp_path / "sets.pt", "a").tolist() == [1, 2]
    assert load_labels(tmp_path / "sets.pt", "b").tolist() == [3, 4]


def test_the_pool_gets_every_label_when_the_file_is_the_pools_length():
    labels = np.arange(30) % 7
    np.testing.assert_array_equal(labels_for_pool(labels, 30, 0, "x.npy"), labels)
    np.testing.assert_array_equal(labels_for_pool(labels, 30, 30, "x.npy"), labels)


def test_a_pt_written_under_numpy_1_reads_as_well(tmp_path):
    """CIFAR-N's files pickle numpy 1's name of the array rebuilder, numpy.core.multiarray._reconstruct."""
    import io

    buffer = io.BytesIO()
    torch.save({"aggre_label": np.array([3, 1, 4], dtype=np.int64)}, buffer, _use_new_zipfile_serialization=False)
    old = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in old
    (tmp_path / "CIFAR-10_human.pt").write_bytes(old)
    assert load_labels(tmp_path / "CIFAR-10_human.pt", "aggre_label").tolist() == [3, 1, 4]


def test_a_refused_pt_gives_torchs_reason_in_one_line_of_at_most_200_characters(tmp_path):
    """A pickled dtype torch does not allow: its (long, many-line) refusal is cut to its first line's start."""
    torch.save({"labels": np.zeros(3, dtype=np.int64), "odd": np.zeros(2, dtype="V2")}, tmp_path / "x.pt")
    with pytest.raises(ConfigError) as refused:
        load_labels(tmp_path / "x.pt", "labels")
    prefix = f"noise.labels file {tmp_path / 'x.pt'} cannot be loaded safely (weights only: tensors and numpy arrays, no code): "
    assert str(refused.value).startswith(prefix)
    reason = str(refused.value).removeprefix(prefix)
    assert reason.startswith("Weights only load failed") and "\n" not in reason and len(reason) == 200


def test_a_missing_file_names_what_to_give(tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_labels(tmp_path / "none.npy")
    assert str(missing.value) == (
        f"noise.labels file {tmp_path / 'none.npy'} does not exist; give a .npy of integer labels or a CIFAR-N file "
        "such as CIFAR-10_human.pt"
    )


def test_a_file_changed_on_disk_is_read_again(tmp_path):
    """Reads are cached by path, modification time and size: a rewrite that keeps either is still seen."""
    import os

    path = tmp_path / "labels.npy"
    np.save(path, np.array([1, 2, 3]))
    stamp = os.stat(path).st_mtime_ns
    assert load_labels(path).tolist() == [1, 2, 3]
    np.save(path, np.array([3, 2, 1]))  # the same size
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert load_labels(path).tolist() == [3, 2, 1]
    np.save(path, np.array([5, 6, 7, 8]))  # another size, the same time
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert load_labels(path).tolist() == [5, 6, 7, 8]


def test_data_max_pool_takes_its_subset_of_a_whole_split_file_and_nothing_else():
    from alvit.seeds import subset_indices

    labels = np.arange(500) % 10
    np.testing.assert_array_equal(labels_for_pool(labels, 1, 1, "x.npy"), labels[subset_indices(500, 1)])
    with pytest.raises(ConfigError) as mismatch:  # max_pool kept 100, but the pool has 120
        labels_for_pool(labels, 120, 100, "x.npy")
    assert str(mismatch.value) == (
        "noise.labels file x.npy has 500 labels, but the pool has 120 training samples (data.max_pool 100 of the split)"
        "; give one label per training sample of the dataset, in its order"
    )


def labels_config(path, *extra):
    """A TINY run on digits (a pool of 1,347) whose oracle answers from the file at ``path``."""
    from conftest import TINY

    from alvit.config import load_config

    tiny = [item for item in TINY if not item.startswith("noise.rate")]
    return load_config(None, [*tiny, "noise.kind=labels", f"noise.labels={path}", *extra])


def test_the_oracle_answers_the_files_labels_and_draws_the_initial_set_as_for_any_noise(tmp_path):
    from conftest import initial_set_by_definition

    from alvit.noise import make_oracle

    written = (np.arange(1347) * 7) % 10  # every class, 0 and 9 included
    np.save(tmp_path / "crowd.npy", written)
    oracle = make_oracle(labels_config(tmp_path / "crowd.npy", "seed=3"), np.zeros(1347, dtype=np.int64), 10)
    np.testing.assert_array_equal(oracle.noisy_labels, written)
    np.testing.assert_array_equal(oracle.initial, initial_set_by_definition(1347, 40, seed=3))


def test_the_oracle_reads_the_set_labels_key_names_and_the_positions_data_max_pool_keeps(tmp_path):
    from alvit.noise import make_oracle
    from alvit.seeds import subset_indices

    sets = {"aggre_label": (np.arange(1347) * 3) % 10, "worse_label": (np.arange(1347) * 7) % 10}
    torch.save(sets, tmp_path / "human.pt")
    cfg = labels_config(tmp_path / "human.pt", "noise.labels_key=worse_label", "data.max_pool=1000")
    oracle = make_oracle(cfg, np.zeros(1000, dtype=np.int64), 10)
    np.testing.assert_array_equal(oracle.noisy_labels, sets["worse_label"][subset_indices(1347, 1000)])


@pytest.mark.parametrize("bad", [-1, 10])
def test_labels_outside_the_datasets_classes_are_refused_naming_them(tmp_path, bad):
    from alvit.noise import make_oracle

    written = np.arange(1347) % 10
    written[5] = bad  # one label out of range, below or above
    np.save(tmp_path / "bad.npy", written)
    with pytest.raises(ConfigError) as refused:
        make_oracle(labels_config(tmp_path / "bad.npy"), np.zeros(1347, dtype=np.int64), 10)
    assert str(refused.value) == (
        f"noise.labels file {tmp_path / 'bad.npy'} holds labels outside 0..9, the classes of digits; "
        "give labels of this dataset"
    )


def test_a_file_for_another_pool_is_refused_naming_the_file(tmp_path):
    from alvit.noise import make_oracle

    np.save(tmp_path / "short.npy", np.zeros(100, dtype=np.int64))
    with pytest.raises(ConfigError, match=f"^noise.labels file {tmp_path / 'short.npy'} has 100 labels, but the pool"):
        make_oracle(labels_config(tmp_path / "short.npy"), np.zeros(1347, dtype=np.int64), 10)


def test_a_pt_saved_from_a_gpu_reads_on_a_machine_without_one(tmp_path):
    """Tensors a GPU machine saved name their device; here they are read onto the CPU (this test needs no GPU:
    the file's device tag is rewritten from cpu to cuda:0)."""
    import io

    buffer = io.BytesIO()
    torch.save({"noisy_label": torch.tensor([1, 2, 3])}, buffer, _use_new_zipfile_serialization=False)
    tag = b"X\x03\x00\x00\x00cpu"  # the pickled location string: length 3, "cpu"
    assert buffer.getvalue().count(tag) == 1
    (tmp_path / "gpu.pt").write_bytes(buffer.getvalue().replace(tag, b"X\x06\x00\x00\x00cuda:0"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="on a CUDA device"):
            torch.load(tmp_path / "gpu.pt", weights_only=True)  # what reading it as saved would do here
    assert load_labels(tmp_path / "gpu.pt", "noisy_label").tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("dtype", "kind"), [(np.float16, "floats"), (np.float32, "floats"), (np.bool_, "true/false values")]
)
def test_a_pt_of_floats_or_booleans_is_named_for_what_it_holds(tmp_path, dtype, kind):
    """Every float and boolean dtype unpickles (so the sentence can name it), not only float64's."""
    torch.save({"noisy_label": np.array([1, 0, 1], dtype=dtype)}, tmp_path / "soft.pt")
    with pytest.raises(ConfigError) as refused:
        load_labels(tmp_path / "soft.pt", "noisy_label")
    assert str(refused.value) == (
        f"noise.labels in {tmp_path / 'soft.pt'} holds {kind} ({np.dtype(dtype)}), not class indices; "
        "give one integer label per sample"
    )
