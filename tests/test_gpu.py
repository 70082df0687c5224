"""On a CUDA machine (pytest -m gpu): two rounds of a paper backbone with bf16 autocast."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gpu_smoke_runs_two_rounds_of_vit_b16_and_reports_throughput(tmp_path):
    out = tmp_path / "figures.json"
    subprocess.run([sys.executable, "benchmarks/gpu_smoke.py", "--pool", "2000", "--labeled", "256", "--json", str(out)],
                   cwd=REPO, check=True, timeout=900)
    figures = json.loads(out.read_text())
    assert figures["device"].startswith("cuda") and len(figures["rounds"]) == 2
    assert all(r["train_img_per_s"] > 0 and r["score_img_per_s"] > 0 and r["entropy_finite"] for r in figures["rounds"])
