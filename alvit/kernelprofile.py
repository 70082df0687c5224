"""Where a work's time goes: its device kernels (CPU operators on a CPU), by kind, per call.

``alvit bench --profile`` runs each warmed-up work a few times under ``torch.profiler`` after
timing it. Beside the wall time per call (from the timed rate), the summed kernel time per call
says how busy the device was: a work at 60% busy loses 40% to launches and host code (what CUDA
graphs remove), one at 99% loses nothing there and is bounded by its kernels, whose kinds
(matmuls, attention, Triton's fused elementwise and reduction kernels, ...) say which.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

PROFILED_CALLS = 3
TOP_KERNELS = 12
NAME_CHARS = 120

# Kinds of kernel by name (lowercased), the first match wins. Inductor names its kernels
# triton_tem_* (matmul templates) and triton_{poi,red,per}_* (fused pointwise and reductions),
# so those prefixes decide first; cuDNN's convolutions (*fprop*, *dgrad*, *wgrad*) come before
# the matmul patterns their names also hold, and attention before CUTLASS.
KERNEL_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention", ("flash", "fmha", "sdpa", "attention", "mha_")),
    ("convolution", ("fprop", "dgrad", "wgrad", "conv")),
    ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "cublas", "matmul")),
    ("optimizer", ("adam", "multi_tensor")),
    ("fill", ("fill",)),
    ("copy", ("memcpy", "memset", "copy")),
    ("eager elementwise and reductions", ("elementwise", "reduce_kernel", "index", "gather", "scatter")),
)


def kernel_kind(name: str) -> str:
    """The kind of a kernel (``matmul``, ``attention``, ...) from its name; ``other`` if none fits."""
    lowered = name.lower()
    if lowered.startswith("triton_"):
        return "matmul" if lowered.startswith("triton_tem") else "fused (Triton)"
    return next((kind for kind, patterns in KERNEL_KINDS if any(p in lowered for p in patterns)), "other")


def kernel_profile(
    works: dict[str, Callable[[], int]],
    device: torch.device,
    rates: dict[str, float],
    calls: int = PROFILED_CALLS,
) -> dict[str, dict]:
    """For each work, per call: ``wall_ms`` (from its timed rate in ``rates``, items per second),
    ``kernel_ms`` (device kernels summed; CPU operators' self time on a CPU), ``busy`` (their
    ratio), ``kinds`` (ms per kind) and ``top`` (the costliest kernels)."""
    return {name: _profile_one(work, device, rates.get(name), calls) for name, work in works.items()}


def _profile_one(work: Callable[[], int], device: torch.device, rate: float | None, calls: int) -> dict:
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    _sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        items = sum(work() for _ in range(calls))
        _sync(device)
    profiled_ms = (time.perf_counter() - start) * 1000 / calls
    events = [event for event in prof.key_averages() if _counts(event, cuda)]
    # On CUDA a profiled range (``record_function``, e.g. the optimizer's "Optimizer.step#AdamW.step")
    # shows as the span of the kernels inside it: counted, they would count twice. (On a CPU its
    # self time is host time no operator holds, so it stays.)
    ranges_us = sum(_self_us(event, cuda) for event in events if cuda and _is_range(event))
    rows = [(event.key, _self_us(event, cuda), event.count) for event in events if not (cuda and _is_range(event))]
    rows = [row for row in rows if row[1] > 0]
    kinds: dict[str, float] = {}
    for name, us, _ in rows:
        kind = kernel_kind(name) if cuda else "operators"
        kinds[kind] = kinds.get(kind, 0.0) + us
    kernel_ms = sum(us for _, us, _ in rows) / 1000 / calls
    wall_ms = items / calls / rate * 1000 if rate else profiled_ms
    top = sorted(rows, key=lambda row: -row[1])[:TOP_KERNELS]
    return {
        "calls": calls,
        "items_per_call": items // calls,
        "wall_ms": wall_ms,
        "profiled_wall_ms": profiled_ms,
        "kernel_ms": kernel_ms,
        "annotations_ms": ranges_us / 1000 / calls,  # profiled ranges' device spans, left out of kernel_ms
        "busy": kernel_ms / wall_ms if wall_ms else None,
        "kinds": {kind: us / 1000 / calls for kind, us in sorted(kinds.items(), key=lambda item: -item[1])},
        "top": [
            {"name": name[:NAME_CHARS], "kind": kernel_kind(name), "ms": us / 1000 / calls, "count": count // calls}
            for name, us, count in top
        ],
    }


def _counts(event, cuda: bool) -> bool:
    """Device kernels (and copies) on CUDA; operators on a CPU."""
    if cuda:
        return event.device_type == torch.autograd.DeviceType.CUDA
    return event.device_type == torch.autograd.DeviceType.CPU


def _is_range(event) -> bool:
    """A user-annotated range (``record_function``) rather than a kernel or operator."""
    return bool(getattr(event, "is_user_annotation", False))


def _self_us(event, cuda: bool) -> float:
    if not cuda:
        return float(event.self_cpu_time_total)
    # Renamed from self_cuda_time_total in torch 2.4; both are microseconds.
    return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["KERNEL_KINDS", "kernel_kind", "kernel_profile"]
