"""Datasets become uint8 [N, 3, H, W] tensors with int64 labels; preprocessing runs in batches."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

from alvit.data import Preprocessor, load_dataset
from alvit.errors import ConfigError


def test_digits_is_real_split_and_shaped():
    data = load_dataset("digits")
    assert data.train_images.shape == (1347, 3, 8, 8) and data.test_images.shape == (450, 3, 8, 8)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == np.int64
    assert data.train_images.max() == 255 and data.num_classes == 10
    assert np.bincount(data.test_labels).min() >= 40  # stratified


def test_subsets_are_fixed_whatever_the_experiment():
    a, b = load_dataset("digits", max_pool=300, max_test=100), load_dataset("digits", max_pool=300, max_test=100)
    assert len(a.train_labels) == 300 and len(a.test_labels) == 100
    assert torch.equal(a.train_images, b.train_images)


def make_folder(root, sizes_and_modes):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i, (size, mode) in enumerate(sizes_and_modes):
                Image.new(mode, size, color=40 * i).save(root / split / cls / f"{i}.png")
    return root


def test_imagefolder_reads_any_size_and_promotes_grayscale(tmp_path):
    root = make_folder(tmp_path, [((12, 10), "RGB"), ((12, 10), "L"), ((20, 20), "RGB")])
    data = load_dataset(f"imagefolder:{root}")
    assert data.classes == ("cat", "dog")
    assert data.train_images.shape == (6, 3, 10, 12)  # the most common size, H x W
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_an_imagefolders_size_without_loading_counts_the_images_the_loader_reads(tmp_path):
    """One definition of a dataset's size: what previews and estimates count is what a run loads."""
    from alvit.catalog import dataset_shape

    root = make_folder(tmp_path, [((8, 8), "RGB"), ((8, 8), "RGB")])
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "test" / "dog" / ".DS_Store").write_bytes(b"")
    data = load_dataset(f"imagefolder:{root}")
    shape = dataset_shape(f"imagefolder:{root}")
    assert (shape.pool, shape.test, shape.classes) == (len(data.train_labels), len(data.test_labels), 2) == (4, 4, 2)
    assert (dataset_shape("cifar100").pool, dataset_shape("cifar100").classes) == (50_000, 100)


def test_imagefolder_with_mismatched_classes_is_refused(tmp_path):
    root = make_folder(tmp_path, [((8, 8), "RGB")])
    (root / "train" / "bird").mkdir()
    with pytest.raises(ConfigError, match="lacks the class folders bird"):
        load_dataset(f"imagefolder:{root}")


def test_cifar_without_network_fails_in_seconds_with_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("ALVIT_DATA", str(tmp_path))
    start = time.monotonic()
    try:
        load_dataset("cifar10")
    except ConfigError as err:
        assert "could not be downloaded" in str(err) and "imagefolder:<root>" in str(err)
    else:
        pytest.skip("this machine downloaded CIFAR-10, so the offline path was not exercised")
    assert time.monotonic() - start < 60


def test_real_cifar10_jpegs_load_through_imagefolder(cifar10_jpeg_root):
    data = load_dataset(f"imagefolder:{cifar10_jpeg_root}", max_pool=500, max_test=200)
    assert data.classes[0] == "airplane" and data.num_classes == 10
    assert data.train_images.shape == (500, 3, 32, 32) and data.test_images.shape == (200, 3, 32, 32)


def test_preprocessor_resizes_and_normalises_a_batch():
    images = torch.full((4, 3, 8, 8), 255, dtype=torch.uint8)
    out = Preprocessor(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))(images)
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 2.0))


def test_images_are_resized_with_the_interpolation_of_the_models_pretrained_config():
    from alvit.models import resolve_model

    assert {resolve_model(name).interpolation for name in ("vit_b16", "vit_l32", "swinv2_t")} == {"bicubic"}
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8))
    bicubic = Preprocessor(224, (0.5,) * 3, (0.5,) * 3, torch.device("cpu"), "bicubic")(images)
    bilinear = Preprocessor(224, (0.5,) * 3, (0.5,) * 3, torch.device("cpu"), "bilinear")(images)
    assert bicubic.shape == (2, 3, 224, 224) and not torch.allclose(bicubic, bilinear)
    assert bicubic.min() >= -1.0 and bicubic.max() <= 1.0  # clamped to the image range before normalising


def test_preprocessor_flips_only_the_masked_samples():
    images = torch.zeros((2, 3, 4, 4), dtype=torch.uint8)
    images[:, :, :, 0] = 255  # a bright left column
    out = Preprocessor(4, (0, 0, 0), (1, 1, 1), torch.device("cpu"))(images, torch.tensor([True, False]))
    assert out[0, 0, 0, -1] == 1.0 and out[1, 0, 0, 0] == 1.0
