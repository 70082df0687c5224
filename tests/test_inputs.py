"""Every input is part of a run's identity: a label file, a weights file or an image folder changed in place
makes the run stale, refused in one sentence as a changed setting is, by alvit run, a sweep, status and the book."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import yaml
from conftest import TINY
from PIL import Image

from alvit.cli import main
from alvit.config import dump_yaml, load_config
from alvit.data import load_dataset
from alvit.errors import ConfigError
from alvit.inputs import InputDigests, input_paths
from alvit.loop import run_experiment
from alvit.profile import load_profile
from alvit.results import RunFolder
from alvit.sweep.status import sweep_status
from alvit.sweep.task import Task, is_complete, stale_keys


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def labels_run_settings(path) -> list[str]:
    tiny = [item for item in TINY if not item.startswith("noise.rate")]
    return [*tiny, "noise.kind=labels", f"noise.labels={path}"]


def test_a_label_file_edited_in_place_makes_its_finished_run_stale_and_refused(tmp_path, capsys):
    true = load_dataset("digits").train_labels
    labels = tmp_path / "crowd.npy"
    np.save(labels, np.where(np.arange(len(true)) % 4 == 0, (true + 1) % 10, true))
    cfg = load_config(None, labels_run_settings(labels))
    folder = RunFolder(run_experiment(cfg, tmp_path / "runs" / cfg.run_id, progress=False))
    recorded = yaml.safe_load(folder.config.read_text())["resolved"]["inputs_sha256"]
    assert recorded == {"noise.labels": sha256(labels.read_bytes())}  # the file's bytes, by its config key

    command = [
        "run",
        "--out",
        str(folder.path),
        *[arg for item in labels_run_settings(labels) for arg in ("--set", item)],
    ]
    assert main(command) == 0  # unchanged: finished, nothing to do
    capsys.readouterr()
    np.save(labels, np.where(np.arange(len(true)) % 3 == 0, (true + 2) % 10, true))  # same path, other labels
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error == (
        f"alvit: error: {folder.path} holds a run of another configuration (differs in: SHA-256 of noise.labels); "
        "choose another --out, or move that folder away to start afresh\n"
    )
    task = Task(cfg=cfg, output=tmp_path / "runs", page=False)
    assert not is_complete(task) and stale_keys(cfg, tmp_path / "runs") == ["SHA-256 of noise.labels"]


def test_a_changed_weights_file_makes_a_run_stale_for_the_sweep_status_and_alvit_run(tmp_path):
    weights = tmp_path / "backbone.safetensors"
    weights.write_bytes(b"weights as they were")  # never loaded: the folder is refused before any model exists
    profile_path = tmp_path / "profile.yaml"
    base = {"dataset": "digits", "model": "vit_nano_p4", "weights": str(weights), "al": {"initial": 40, "query": 20}}
    profile_path.write_text(
        yaml.safe_dump(
            {"name": "w", "output": str(tmp_path / "runs"), "base": base, "grid": {"seed": [0]}, "pages": "none"}
        )
    )
    [cfg] = load_profile(profile_path).configs
    folder = RunFolder(tmp_path / "runs" / cfg.run_id)
    folder.path.mkdir(parents=True)
    folder.config.write_text(dump_yaml(cfg, {"inputs_sha256": {"weights": sha256(b"weights as they were")}}))
    assert stale_keys(cfg, tmp_path / "runs") == []

    weights.write_bytes(b"weights fine-tuned since")
    assert stale_keys(cfg, tmp_path / "runs") == ["SHA-256 of weights"]
    [row] = sweep_status(load_profile(profile_path))
    assert (row.state, row.detail) == ("stale", "differs in SHA-256 of weights")
    with pytest.raises(ConfigError, match=r"holds a run of another configuration \(differs in: SHA-256 of weights\)"):
        run_experiment(cfg, folder.path, progress=False)


def write_images(root, names: dict[str, list[str]], colour: int = 40) -> None:
    for split in ("train", "test"):
        for cls, files in names.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i, name in enumerate(files):
                Image.new("RGB", (8, 8), color=colour + 10 * i).save(root / split / cls / name)


def reference_folder_digest(root) -> str:
    """The spec, written out: every image the loader lists (train, then test; classes and files sorted),
    its path relative to the root, its length and its bytes."""
    digest = hashlib.sha256()
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    for split in ("train", "test"):
        for cls in classes:
            for path in sorted(p for p in (root / split / cls).iterdir() if p.suffix == ".png"):
                data = path.read_bytes()
                digest.update(f"{split}/{cls}/{path.name}\n{len(data)}\n".encode() + data)
    return digest.hexdigest()


def test_an_image_folder_is_identified_by_every_image_the_loader_reads(tmp_path):
    root = tmp_path / "shapes"
    write_images(root, {"circle": ["0.png", "1.png"], "square": ["0.png", "1.png"]})
    cfg = load_config(None, [f"dataset=imagefolder:{root}", "al.initial=2", "al.query=1", "al.rounds=1"])
    assert input_paths(cfg) == {"dataset": root}
    first = InputDigests().of(cfg)["dataset"]
    assert first == reference_folder_digest(root)

    (root / "train" / "circle" / "notes.txt").write_text("not an image: the loader skips it")
    assert InputDigests().of(cfg)["dataset"] == first
    Image.new("RGB", (8, 8), color=200).save(root / "test" / "square" / "1.png")  # one image redrawn
    edited = InputDigests().of(cfg)["dataset"]
    assert edited != first and edited == reference_folder_digest(root)
    (root / "test" / "square" / "1.png").rename(root / "test" / "square" / "2.png")  # the same image renamed
    assert InputDigests().of(cfg)["dataset"] not in (first, edited)


def test_a_configuration_that_reads_no_file_by_path_records_no_digest_and_each_path_is_read_once(tmp_path):
    assert InputDigests().of(load_config(None, TINY)) == {}
    labels = tmp_path / "labels.npy"
    np.save(labels, np.zeros(1347, dtype=np.int64))
    digests = InputDigests()
    cfg = load_config(None, labels_run_settings(labels))
    first = digests.of(cfg)
    assert first == {"noise.labels": sha256(labels.read_bytes())}
    labels.unlink()  # a sweep's plan hashes a file its configurations share once
    assert digests.of(cfg) == first
    with pytest.raises(ConfigError, match=r"^noise.labels file .*labels.npy cannot be read \(FileNotFoundError\)"):
        InputDigests().of(cfg)
