"""On a CUDA machine (pytest -m gpu): the fast path (compile, bf16, TF32) agrees with eager,
compiles once per run, repeats bit for bit when asked, and the bench reports what it measured."""

import dataclasses

import numpy as np
import pytest
import torch

from alvit.config import TrainConfig
from alvit.data import Preprocessor
from alvit.models import create_model, resolve_model
from alvit.train import fit, predict

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

CFG = TrainConfig(epochs=4, lr=1e-3, batch_size=64, eval_batch_size=128, patience=2, augment="flip")


@pytest.fixture(scope="module")
def synthetic():
    from alvit.bench import synthetic_images

    images, labels = synthetic_images(600)
    spec = resolve_model("vit_micro_p2")  # 3 blocks: quick to compile
    return images.cuda(), labels, spec, Preprocessor(spec.input_size, spec.mean, spec.std, torch.device("cuda"))


def fresh_model(spec):
    torch.manual_seed(0)
    return create_model(spec, num_classes=10).cuda()


def test_compiled_training_learns_and_its_predictions_agree_with_eager(synthetic):
    images, labels, spec, pre = synthetic
    model = fresh_model(spec)
    fit(model, images[:400], labels[:400], CFG, pre, np.random.SeedSequence(0), progress=False)
    compiled = predict(model, images[400:], pre, 128, compiled=True).probs  # 200 = one full + one padded batch
    eager = predict(model, images[400:], pre, 128).probs
    assert np.mean(compiled.argmax(1) == labels[400:]) > 0.5  # the classes are learnable: well above 0.1
    assert np.mean(compiled.argmax(1) == eager.argmax(1)) > 0.97 and np.abs(compiled - eager).max() < 0.05


def test_the_next_round_compiles_nothing_new(synthetic):
    from torch._dynamo.utils import counters

    images, labels, spec, pre = synthetic
    model = fresh_model(spec)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, images[:200], labels[:200], CFG, pre, np.random.SeedSequence(0), progress=False)
    predict(model, images[200:], pre, 128, compiled=True)
    graphs = counters["stats"]["unique_graphs"]
    model.load_state_dict(start)  # what the loop does between rounds
    fit(model, images[:300], labels[:300], CFG, pre, np.random.SeedSequence(1), progress=False)
    predict(model, images[300:], pre, 128, compiled=True)
    assert counters["stats"]["unique_graphs"] == graphs


def test_deterministic_training_repeats_bit_for_bit(synthetic):
    images, labels, spec, pre = synthetic
    cfg = dataclasses.replace(CFG, deterministic=True)
    weights = []
    for _ in range(2):
        model = fresh_model(spec)
        fit(model, images[:300], labels[:300], cfg, pre, np.random.SeedSequence(0), progress=False)
        weights.append(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values()))


def test_bench_reports_throughput_flops_and_memory(tmp_path):
    from alvit.bench import peak_bf16_tflops, run_bench

    result = run_bench("vit_micro_p2", "cuda", batch=64, seconds=0.5, naive_workers=2)
    assert result["compile"] is True and result["fused_attn"] is True and not result["errors"]
    assert result["train_img_s"] > 0 and result["score_img_s"] > 0 and result["peak_mem_mb"] > 0
    assert result["speedup_vs_naive"] > 0
    known = peak_bf16_tflops(torch.device("cuda")) is not None
    assert (result["mfu"] is not None) == known
