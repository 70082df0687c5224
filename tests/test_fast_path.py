"""The fast path's choices (issue 28): where CUDA graphs may run, which torch.compile mode each
choice means, and that scoring stays right under CUDA-graph semantics (each replay overwrites
the outputs of the one before), checked on a CPU with a stand-in for the replay."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from alvit import accel
from alvit.accel import EAGER, FastPath, resolve_graphs
from alvit.config import TrainConfig, load_config
from alvit.data import Preprocessor, load_dataset
from alvit.errors import ConfigError
from alvit.models import create_model, resolve_model
from alvit.train import predict

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize(
    "setting, device, compiled, accumulate, expected",
    [
        ("auto", CUDA, True, 1, True),  # the default: on wherever they can run
        ("auto", CPU, True, 1, False),
        ("auto", CUDA, False, 1, False),
        ("auto", CUDA, True, 4, False),
        (True, CUDA, True, 1, True),
        (False, CUDA, True, 1, False),
        (True, CPU, True, 1, False),  # a CPU run stays as it was
        (True, CUDA, False, 1, False),  # eager: nothing to replay
        (True, CUDA, True, 2, False),  # the second micro-batch would overwrite the first one's gradients
    ],
)
def test_cuda_graphs_run_only_on_cuda_compiled_without_accumulation(setting, device, compiled, accumulate, expected):
    assert resolve_graphs(setting, device, compiled, accumulate) is expected


def test_each_fast_path_is_one_torch_compile_mode():
    assert FastPath(compile=True).mode is None
    assert FastPath(compile=True, graphs=True).mode == "reduce-overhead"
    assert FastPath(compile=True, autotune=True).mode == "max-autotune-no-cudagraphs"
    assert FastPath(compile=True, graphs=True, autotune=True).mode == "max-autotune"
    assert [FastPath(compile=True, graphs=True).describe(), EAGER.describe()] == ["compiled+graphs+fused", "eager"]


def test_a_runs_fast_path_follows_its_train_section():
    cfg = TrainConfig()  # compile and cuda_graphs auto
    assert FastPath.for_run(cfg, CUDA) == FastPath(compile=True, graphs=True)
    assert FastPath.for_run(cfg, CPU) == EAGER  # compile auto is off on a CPU, and graphs with it
    assert FastPath.for_run(dataclasses.replace(cfg, accumulate=2), CUDA) == FastPath(compile=True)
    assert FastPath.for_run(dataclasses.replace(cfg, cuda_graphs=False), CUDA) == FastPath(compile=True)
    assert FastPath.for_run(dataclasses.replace(cfg, compile=True), CPU) == FastPath(compile=True)  # no CUDA


def test_cuda_graphs_is_auto_true_or_false_and_changes_no_result():
    from alvit.config import NOT_RESULT_KEYS

    assert load_config(None).train.cuda_graphs == "auto"
    assert load_config(None, ["train.cuda_graphs=true"]).train.cuda_graphs is True
    assert load_config(None, ["train.cuda_graphs=false"]).train.cuda_graphs is False
    assert "train.cuda_graphs" in NOT_RESULT_KEYS
    for bad in ("sometimes", "1", "0", "-1", ".nan", ".inf", "-.inf", "1.5", "Auto"):
        with pytest.raises(ConfigError) as refused:
            load_config(None, [f"train.cuda_graphs={bad}"])
        message = str(refused.value)
        assert message.startswith("train.cuda_graphs ") and message.endswith("valid choices are auto, true, false")
    for bad, shown in (("", "None"), ("[true]", r"\[True\]")):  # not a value at all: the key's type, as for any key
        with pytest.raises(ConfigError, match=rf"^config key 'train.cuda_graphs' must be bool or str, not {shown}$"):
            load_config(None, [f"train.cuda_graphs={bad}"])


def replayed_like_a_cuda_graph(fn, dynamic=None, mode=None):
    """A stand-in for ``torch.compile(fn, mode=...)`` with CUDA-graph semantics on a CPU: every
    call runs ``fn`` and returns the same output tensors, overwritten in place, as a replay
    overwrites its static outputs. A caller that keeps an output past the next call sees it change."""
    static: list[torch.Tensor] = []

    def replay(*args):
        flat, spec = tree_flatten(fn(*args))
        if not static:
            static.extend(torch.empty_like(t) for t in flat)
        for out, value in zip(static, flat):
            out.copy_(value)
        return tree_unflatten(list(static), spec)

    return replay


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("fuse_preprocess", [True, False])
def test_scoring_is_right_when_each_replay_overwrites_the_last_ones_outputs(monkeypatch, digits, fuse_preprocess):
    spec = resolve_model("vit_nano_p4")
    torch.manual_seed(0)
    model, pre = create_model(spec, num_classes=10), Preprocessor.for_model(spec, CPU)
    monkeypatch.setattr(accel.torch, "compile", replayed_like_a_cuda_graph)
    fast = FastPath(compile=True, graphs=True, fuse_preprocess=fuse_preprocess)
    images = digits.test_images[:100]  # batches of 32: three full and one padded
    replayed = predict(model, images, pre, 32, features=True, logits=True, fast=fast)
    eager = predict(model, images, pre, 32, features=True, logits=True)
    for name in ("probs", "features", "logits"):
        # Not bit for bit: the padded batch is 32 rows, not 4, and a CPU's matmul blocks by size.
        np.testing.assert_allclose(getattr(replayed, name), getattr(eager, name), rtol=0, atol=1e-5)
