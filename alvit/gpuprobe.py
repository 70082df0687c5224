"""What ``train.deterministic`` changes on this device, in a few seconds and with no compilation.

For attention of ViT-B/16's shape (64 images, 12 heads, 197 tokens, 64 per head, bf16; a tiny
shape on a CPU), with PyTorch's deterministic algorithms off and on (as
:func:`alvit.accel.device_settings` sets them): the backend that scaled-dot-product attention
picks, and each backend's forward + backward time; then the same for ViT-B/16's patch embedding
(a 16 x 16 convolution of stride 16). Also whether the deterministic switch reaches Inductor's
own deterministic mode, which picks reduction kernels' configurations without benchmarking them.

    python -m alvit.gpuprobe --json PROBE.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from alvit.accel import device_settings
from alvit.errors import one_line

WARMUP = 3
REPEATS = 10
# (batch, heads, tokens, head width): ViT-B/16 at batch 64 on CUDA; a tiny stand-in on a CPU.
ATTENTION_SHAPE = {"cuda": (64, 12, 197, 64), "cpu": (2, 2, 17, 16)}
# (batch, input size, width, patch): ViT-B/16's patch embedding; a tiny stand-in on a CPU.
PATCH_SHAPE = {"cuda": (64, 224, 768, 16), "cpu": (2, 32, 16, 4)}
BACKENDS = ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")


def probe(device: torch.device) -> dict:
    """Every figure of the probe, as a dict (the ``--json`` file)."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    dtype = torch.bfloat16 if kind == "cuda" else torch.float32
    result: dict = {
        "device": str(device),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if kind == "cuda" else None,
        "attention_shape": ATTENTION_SHAPE[kind],
        "patch_shape": PATCH_SHAPE[kind],
        "dtype": str(dtype),
    }
    for deterministic in (False, True):
        mode = "deterministic" if deterministic else "default"
        with device_settings(device, deterministic):
            result[mode] = {
                "inductor_deterministic": _or_error(_inductor_deterministic),
                "sdpa_choice": _or_error(lambda: _sdpa_choice(device, dtype)),
                "attention_ms": {name: _or_error(lambda n=name: _attention_ms(device, dtype, n)) for name in BACKENDS},
                "patch_embedding_ms": _or_error(lambda: _patch_embedding_ms(device, dtype)),
            }
    return result


def _or_error(measure: Callable[[], object]) -> object:
    """A figure, or the one line of why it could not be taken (a backend this device or this
    torch lacks is an answer too, not a reason to lose the other figures)."""
    try:
        return measure()
    except Exception as err:
        return one_line(err)


def _inductor_deterministic() -> bool | None:
    """Whether Inductor's deterministic mode is on now (None where this torch has no such switch)."""
    import torch._inductor.config as inductor_config

    return getattr(inductor_config, "deterministic", None)


def _qkv(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    shape = ATTENTION_SHAPE["cuda" if device.type == "cuda" else "cpu"]
    generator = torch.Generator(device=device).manual_seed(0)
    return tuple(torch.randn(shape, device=device, dtype=dtype, generator=generator).requires_grad_() for _ in range(3))


def _sdpa_choice(device: torch.device, dtype: torch.dtype) -> str:
    """The backend scaled-dot-product attention picks for inputs that need gradients."""
    names = {int(member): name for name, member in SDPBackend.__members__.items()}
    return names.get(torch._fused_sdp_choice(*_qkv(device, dtype)), "unknown")


def _attention_ms(device: torch.device, dtype: torch.dtype, backend: str) -> float:
    """Forward + backward of attention with only ``backend`` allowed, in ms."""
    q, k, v = _qkv(device, dtype)
    grad = torch.randn_like(q)

    def step() -> None:
        out = F.scaled_dot_product_attention(q, k, v)
        out.backward(grad)

    with sdpa_kernel(getattr(SDPBackend, backend)):
        return _median_ms(step, device)


def _patch_embedding_ms(device: torch.device, dtype: torch.dtype) -> float:
    """Forward + backward of the patch embedding (a convolution of stride = kernel), in ms."""
    batch, size, width, patch = PATCH_SHAPE["cuda" if device.type == "cuda" else "cpu"]
    conv = torch.nn.Conv2d(3, width, patch, stride=patch).to(device=device, dtype=dtype)
    x = torch.randn(batch, 3, size, size, device=device, dtype=dtype)

    def step() -> None:
        conv(x).float().square().mean().backward()

    return _median_ms(step, device)


def _median_ms(step: Callable[[], None], device: torch.device) -> float:
    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(REPEATS):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            step()
            times.append((time.perf_counter() - began) * 1000)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alvit.gpuprobe", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    result = probe(torch.device(args.device))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for mode in ("default", "deterministic"):
        figures = result[mode]
        print(
            f"gpuprobe {mode}: attention picks {figures['sdpa_choice']}, ms {figures['attention_ms']}; "
            f"patch embedding {figures['patch_embedding_ms']} ms; inductor deterministic {figures['inductor_deterministic']}"
        )


if __name__ == "__main__":
    main()
