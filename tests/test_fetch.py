"""alvit fetch: what a profile downloads, and --check finding it (or not) with the network off."""

import os
import subprocess
import sys

import pytest
from conftest import REPO
from test_sweep import write_profile

from alvit.profile import load_profile
from alvit.sweep import fetch


def test_check_lists_the_paper_profiles_7_weights_and_2_datasets_one_line_each(tmp_path):
    """The issue's acceptance check, on a machine (here: empty caches) without any of them."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "ALVIT_DATA": str(tmp_path / "data")}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "fetch", "configs/profiles/paper.yaml", "--check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 9 and "Traceback" not in result.stderr
    assert lines[:2] == [
        f"missing dataset cifar10: not in {tmp_path / 'data' / 'cifar10'} (or damaged)",
        f"missing dataset cifar100: not in {tmp_path / 'data' / 'cifar100'} (or damaged)",
    ]
    weights = sorted(line.split(":")[0] for line in lines[2:])
    assert weights == [
        f"missing weights of {m}"
        for m in sorted(["vit_b16", "vit_b32", "vit_l16", "vit_l32", "swinv2_t", "swinv2_s", "swinv2_b"])
    ]
    assert "timm/vit_large_patch32_224.orig_in21k is not in the Hugging Face cache" in result.stdout
    assert result.stderr.strip() == (
        "alvit: 9 of the 9 datasets and weights configs/profiles/paper.yaml needs are missing here; "
        "run alvit fetch configs/profiles/paper.yaml on a machine with network"
    )


def test_weights_in_the_hugging_face_cache_are_found_without_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    [need] = fetch.needs(
        load_profile(REPO / "configs" / "profiles" / "paper.yaml", ["model=vit_b32", "dataset=cifar10"]).configs[:1]
    )[1:]
    assert (need.kind, need.name, need.source) == ("weights", "vit_b32", "timm/vit_base_patch32_224.orig_in21k")
    assert not fetch.is_present(need)
    repo = tmp_path / "hub" / "models--timm--vit_base_patch32_224.orig_in21k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(b"weights")
    assert fetch.is_present(need) and fetch.missing([need]) == []


@pytest.mark.parametrize(
    "base", [{"pretrained": False}, {"pretrained": True, "weights": "WEIGHTS"}], ids=["from scratch", "local file"]
)
def test_runs_from_scratch_local_weights_and_digits_need_nothing(tmp_path, base):
    (tmp_path / "w.safetensors").write_bytes(b"")
    if "weights" in base:
        base = {**base, "weights": str(tmp_path / "w.safetensors")}
    profile = load_profile(write_profile(tmp_path, {"model": ["vit_nano_p4", "vit_b16"]}, base=base))
    assert fetch.needs(profile.configs) == []


def test_env_lines_point_a_job_at_the_fetched_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ALVIT_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    lines = fetch.env_lines()
    assert (
        lines[0] == "HF_HUB_OFFLINE=1"
        and lines[1].startswith("HF_HOME=")
        and lines[-1] == f"ALVIT_DATA={tmp_path / 'data'}"
    )
