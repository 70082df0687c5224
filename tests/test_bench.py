"""alvit bench and the GPU check: the figures they promise, in the shapes they promise."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from alvit import bench, gpucheck
from alvit.models import model_flops, resolve_model

FIGURES = {
    "train_img_s",
    "score_img_s",
    "naive_train_img_s",
    "speedup_vs_naive",
    "tflops",
    "mfu",
    "peak_mem_mb",
    "device",
    "model",
}


def test_bench_on_a_cpu_measures_both_pipelines_and_derives_flops_without_inventing_an_mfu():
    result = bench.run_bench("vit_nano_p4", "cpu", batch=16, seconds=0.05, naive_workers=0, deterministic=True)
    assert FIGURES <= set(result) and not result["errors"]
    assert result["deterministic_cost"] == pytest.approx(
        1 - result["deterministic_train_img_s"] / result["train_img_s"]
    )
    assert result["device"] == "cpu" and result["compile"] is False and result["fused_attn"] is True
    assert result["train_img_s"] > 0 and result["score_img_s"] > 0 and result["naive_train_img_s"] > 0
    assert result["speedup_vs_naive"] == pytest.approx(result["train_img_s"] / result["naive_train_img_s"])
    flops = model_flops(resolve_model("vit_nano_p4"), 10)
    assert result["tflops"] == pytest.approx(result["train_img_s"] * 3 * flops / 1e12)
    assert result["mfu"] is None and result["peak_tflops"] is None and result["peak_mem_mb"] is None
    json.dumps(result)  # what --json writes


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA GeForce RTX 3090", None),
    ],
)
def test_mfu_uses_the_dense_bf16_peak_of_known_gpus_only(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert bench.peak_bf16_tflops(torch.device("cuda")) == peak
    assert bench.peak_bf16_tflops(torch.device("cpu")) is None


def test_a_measurement_that_runs_out_of_memory_is_recorded_not_raised():
    result = {"errors": {}}

    def oversized():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")

    assert bench._guarded(result, "fast", oversized) is None
    assert result["errors"] == {"fast": "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"}


def test_synthetic_images_are_cifar_sized_uint8_seeded_and_show_the_same_classes_for_every_seed():
    images, labels = bench.synthetic_images(500, seed=3)
    again, _ = bench.synthetic_images(500, seed=3)
    assert images.shape == (500, 3, 32, 32) and images.dtype == torch.uint8 and torch.equal(images, again)
    assert labels.shape == (500,) and set(labels) == set(range(10))
    other, other_labels = bench.synthetic_images(500, seed=4)  # e.g. a test split
    for c in range(10):
        mean, other_mean = images[labels == c].float().mean(0), other[other_labels == c].float().mean(0)
        assert (mean - other_mean).abs().mean() < 10  # on a 0-255 scale; the classes differ by far more


def test_bench_command_rejects_a_bad_process_list_in_one_sentence():
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "bench", "vit_nano_p4", "--concurrent", "two"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        "alvit: error: argument --concurrent: must list whole numbers from 1 to 1024, e.g. 1,2,4, not 'two'; "
        "see alvit bench --help\n"
    )


def write_check_parts(work, bench_figures):
    (work / "logs").mkdir(parents=True)
    (work / "steps.tsv").write_text(
        "pytest-gpu\tok\t0\t30\nbench-vit_b16-64\tok\t0\t80\nbench-vit_l16-256\tfailed\t1\t12\n"
        "bench-swinv2_t-64\tskipped\t\t0\n"
    )
    (work / "settings.tsv").write_text("DEVICE\tcuda\nMODELS\tvit_b16 vit_l16\n")
    (work / "logs" / "pytest-gpu.log").write_text("....\n4 passed in 30.0s\n")
    (work / "logs" / "bench-vit_l16-256.log").write_text("Traceback\nRuntimeError: boom\n")
    for i, figures in enumerate(bench_figures):
        (work / f"bench-{i}.json").write_text(json.dumps(figures))
    (work / "run").mkdir()
    (work / "run" / "rounds.csv").write_text(
        "round,n_labeled,test_acc,suspect_precision\n0,1000,0.5,\n1,2000,0.75,0.4\n"
    )
    (work / "run" / "env.json").write_text(json.dumps({"compile": True, "fused_attn": True}))


def test_gpu_check_report_is_one_json_with_steps_figures_rounds_and_targets(tmp_path):
    b16 = {"model": "vit_b16", "batch": 64, "mfu": 0.45, "score_mfu": 0.3, "speedup_vs_naive": 5.0, "concurrent": []}
    b32 = {
        "model": "vit_b32",
        "batch": 64,
        "mfu": 0.2,
        "score_mfu": 0.2,
        "speedup_vs_naive": 3.0,
        "concurrent": [{"processes": 1, "scaling_vs_one": 1.0}, {"processes": 4, "scaling_vs_one": 1.5}],
    }
    write_check_parts(tmp_path, [b16, b32])
    report = gpucheck.collect(tmp_path, budget_s=480, started=0)
    assert {"machine", "settings", "steps", "pytest_gpu", "bench", "rounds", "targets"} <= set(report)
    assert [s["status"] for s in report["steps"]] == ["ok", "ok", "failed", "skipped"]
    assert report["steps"][2]["log_tail"][-1] == "RuntimeError: boom" and "log_tail" not in report["steps"][0]
    assert report["pytest_gpu"] == ["4 passed in 30.0s"] and report["settings"]["DEVICE"] == "cuda"
    assert report["rounds"]["rows"][1] == {"round": 1, "n_labeled": 2000, "test_acc": 0.75, "suspect_precision": 0.4}
    assert [t["met"] for t in report["targets"]] == [True, False, True, False]
    json.dumps(report)


def test_gpu_check_targets_not_measured_are_null_never_estimated(tmp_path):
    write_check_parts(tmp_path, [])
    assert all(t["value"] is None and t["met"] is None for t in gpucheck.collect(tmp_path, 480, 0)["targets"])


def test_the_header_names_a_presets_real_architecture_not_only_its_timm_base():
    """Issue 14: "vit_nano_p4 (vit_tiny_patch16_224, 8 px...)" claimed patch 16 at 224 px."""
    spec = resolve_model("vit_nano_p4")
    text = bench.architecture({"timm_name": spec.timm_name, "timm_kwargs": spec.kwargs})
    assert text == "timm vit_tiny_patch16_224 with patch_size=4, embed_dim=64, depth=2, num_heads=4"
    assert bench.architecture({"timm_name": "vit_base_patch16_224", "timm_kwargs": {}}) == "timm vit_base_patch16_224"


def test_bench_times_only_what_it_is_asked_and_the_deterministic_fix_beside_the_old_way():
    trained = bench.run_bench(
        "vit_nano_p4", "cpu", batch=16, seconds=0.05, naive=False, measure=("train",), deterministic=True
    )
    assert trained["train_img_s"] > 0 and trained["score_img_s"] is None and trained["score_mfu"] is None
    assert trained["deterministic_nan_fill_cost"] == pytest.approx(
        1 - trained["deterministic_nan_fill_train_img_s"] / trained["train_img_s"]
    )
    scored = bench.run_bench(
        "vit_nano_p4", "cpu", batch=16, eval_batch=32, seconds=0.05, naive=False, measure=("score",)
    )
    assert scored["score_img_s"] > 0 and scored["train_img_s"] is None and scored["deterministic_train_img_s"] is None
    assert scored["measure"] == ["score"] and scored["fast_path"] == "eager" and not scored["graphs"]


def test_the_profile_puts_each_works_kernel_time_beside_its_wall_time():
    result = bench.run_bench("vit_nano_p4", "cpu", batch=16, seconds=0.05, naive=False, profile=True)
    assert set(result["kernels"]) == {"train_img_s", "score_img_s"}
    train = result["kernels"]["train_img_s"]
    assert train["items_per_call"] == 16 and train["wall_ms"] == pytest.approx(16 / result["train_img_s"] * 1000)
    assert train["busy"] == pytest.approx(train["kernel_ms"] / train["wall_ms"])
    assert sum(row["ms"] for row in train["top"]) <= train["kernel_ms"] + 1e-9


def test_a_held_bench_warms_up_then_waits_for_go_before_timing(tmp_path):
    import threading
    import time

    hold, done = tmp_path / "hold", {}
    thread = threading.Thread(
        target=lambda: done.update(
            result=bench.run_bench("vit_nano_p4", "cpu", batch=16, seconds=0.05, naive=False, hold=hold)
        )
    )
    thread.start()
    deadline = time.monotonic() + 300
    while not (hold / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = json.loads((hold / "ready").read_text())
    time.sleep(0.5)
    assert thread.is_alive() and not done  # warm, holding
    (hold / "go").touch()
    thread.join(timeout=300)
    assert done["result"]["train_img_s"] > 0 and done["result"]["warm_s"] == ready["warm_s"] and not ready["errors"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--only", "score", "--deterministic"], "--deterministic times training, which --only score leaves out"),
        (["--only", "score", "--concurrent", "2"], "--concurrent times training, which --only score leaves out"),
        (["--only", "everything"], "argument --only: invalid choice: 'everything' (choose from"),
    ],
)
def test_bench_refuses_contradictory_or_unknown_choices_in_one_sentence(flags, message):
    result = subprocess.run(
        [sys.executable, "-m", "alvit.cli", "bench", "vit_nano_p4", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "name, kind",
    [  # kernel names as cuBLAS, cuDNN, FlashAttention, Inductor and PyTorch's own kernels give them
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_cublas", "matmul"),
        ("nvjet_tst_192x192_64x4_2x1_v_bz_coopA_TNT", "matmul"),
        ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>", "matmul"),
        ("triton_tem_fused_addmm_gelu_0", "matmul"),
        ("triton_per_fused_add_native_layer_norm_3", "fused (Triton)"),
        ("triton_poi_fused__to_copy_convolution_mm_5", "fused (Triton)"),
        ("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<64>>", "attention"),
        ("fmha_cutlassB_bf16_aligned_64x64_k64_sm80", "attention"),
        ("cudnn_generated_fort_native_sdpa_sm90_knob_7_64x128x64_4x1x1_kernel0_0", "attention"),
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution"),
        ("cutlass__5x_cudnn::Kernel<cutlass_tensorop_bf16_s16816wgrad_optimized_bf16_64x64_64x5_nhwc>", "convolution"),
        ("void at::native::multi_tensor_apply_kernel<at::native::FusedAdamMathFunctor<float, 4>>", "optimizer"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", "fill"),
        ("Memcpy DtoD (Device -> Device)", "copy"),
        (
            "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::NormTwoOps>>",
            "eager elementwise and reductions",
        ),
        ("void something_else_entirely<int>", "other"),
    ],
)
def test_kernels_are_sorted_into_kinds_by_name(name, kind):
    from alvit.kernelprofile import kernel_kind

    assert kernel_kind(name) == kind


class _ProfiledEvent:
    """What ``torch.profiler``'s ``key_averages()`` gives for one kernel or range on a device."""

    def __init__(self, key: str, us: float, annotation: bool = False):
        self.key, self.self_device_time_total, self.count = key, us, 1
        self.device_type = torch.autograd.DeviceType.CUDA
        self.is_user_annotation = annotation


def test_a_profiled_range_on_cuda_is_not_counted_again_beside_the_kernels_inside_it(monkeypatch):
    """The optimizer's range spans its own kernels on the device; torch's own table leaves it out too."""
    import contextlib

    from alvit import kernelprofile

    events = [
        _ProfiledEvent("nvjet_sm90_tst_128x160_64x5_2x4_h_bz_NNT", 1000.0),
        _ProfiledEvent("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor>", 600.0),
        _ProfiledEvent("Optimizer.step#AdamW.step", 700.0, annotation=True),
    ]

    class Profile:
        def key_averages(self):
            return events

    monkeypatch.setattr(kernelprofile, "profile", lambda activities: contextlib.nullcontext(Profile()))
    monkeypatch.setattr(kernelprofile, "_sync", lambda device: None)
    (result,) = kernelprofile.kernel_profile(
        {"train": lambda: 64}, torch.device("cuda"), {"train": 32_000.0}, 1
    ).values()
    # 64 images at 32,000 a second: 2 ms a call, of which the two kernels take 1.6.
    assert result["kernel_ms"] == pytest.approx(1.6) and result["annotations_ms"] == pytest.approx(0.7)
    assert result["busy"] == pytest.approx(0.8) and result["kinds"] == pytest.approx({"matmul": 1.0, "optimizer": 0.6})
    assert [top["name"] for top in result["top"]] == [events[0].key, events[1].key]
