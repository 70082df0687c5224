"""``alvit bench``: steady-state throughput of alvit's fast path next to a naive pipeline.

Measured in one process, after warm-up (which includes compilation and autotuning), between
device synchronisations:

- ``train_img_s``: :class:`alvit.train.TrainStep`, exactly as :func:`alvit.train.fit` runs it
  (uint8 images on the device, resized there, bf16 autocast and compile on CUDA, fused AdamW).
- ``score_img_s``: :func:`alvit.train.predict` over a pool, including its copy to the host.
- ``tflops``: ``train_img_s`` x 3 x the forward FLOPs of one image (:func:`alvit.models.model_flops`;
  a backward pass counted as twice the forward), and ``mfu``: that over the device's dense bf16
  peak (:data:`PEAK_BF16_TFLOPS`), null where the peak is unknown, as on a CPU.
  ``score_tflops`` and ``score_mfu`` are the same for scoring (1 x forward).
- the **naive pipeline**: a torchvision ``DataLoader`` over PIL images with per-image
  ``Resize`` + ``ToTensor`` + ``Normalize`` on CPU worker processes, fp32, eager, plain
  ``torch.optim.AdamW``, probabilities copied to the host after every batch.
- ``--deterministic``: training again with ``train.deterministic``, and what that costs; and
  once more as it ran before issue 28, with every fresh allocation filled with NaN
  (``deterministic_nan_fill_train_img_s``), so the fix is measured beside it.
- ``--concurrent 1,2,4``: that many processes training at once on one device, started together
  behind a barrier; the aggregate is the sum of their images per second.
- ``--only train`` or ``--only score``: one of the two (less to compile); ``--no-graphs`` (CUDA
  graphs are on where a run would use them, as ``train.cuda_graphs: auto``; ``--graphs`` says so
  explicitly), ``--eager-preprocess`` and ``--autotune`` choose the fast path
  (:class:`alvit.accel.FastPath`).
- ``--profile``: after timing, each work's device kernels (:mod:`alvit.kernelprofile`): the time
  per call in each kind of kernel, beside the wall time per call, which shows overhead.
- ``--hold DIR``: after warm-up, write ``DIR/ready`` and wait for ``DIR/go`` before timing, so a
  driver can compile several benches at once and time them one at a time
  (:mod:`alvit.gpuspeed`). ``warm_s`` (compilation and warm-up) and ``timed_s`` are recorded apart.

Data is synthetic and CIFAR-sized (uint8 32 x 32, 10 classes, each with its own colour pattern,
so a model can learn it) and weights are random: no network and no dataset are needed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.deterministic
from torch import nn

from alvit.accel import FastPath, device_settings, fused_attention, resolve_compile, resolve_graphs
from alvit.catalog import TRAIN_FORWARD_PASSES
from alvit.config import TrainConfig
from alvit.data import Preprocessor
from alvit.errors import TrainingError, one_line
from alvit.kernelprofile import kernel_profile
from alvit.models import ModelSpec, create_model, model_flops, resolve_model
from alvit.train import TrainStep, predict, resolve_device

NUM_CLASSES = 10
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, in TFLOP/s, matched
# against torch.cuda.get_device_name in this order (the first substring found wins).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
WARMUP_STEPS = 5
MEASURES = ("train", "score")
HOLD_POLL_S = 0.05
REPEATS = 3  # timed runs per measurement; the fastest counts
SCORE_POOL_BATCHES = 8  # scoring is timed on pools of this many eval batches
CONCURRENT_TIMEOUT_S = 900


def peak_bf16_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None (a CPU, or a GPU missing from the table)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def synthetic_images(n: int, seed: int = 0, num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, np.ndarray]:
    """``(images uint8 [n, 3, 32, 32], labels int64 [n])``: each class a coarse colour pattern plus noise."""
    # The classes' patterns are the same for every seed, so a test set drawn with another seed
    # shows the classes a model trained on.
    patterns = np.random.default_rng(0).uniform(0, 255, (num_classes, 3, 4, 4)).repeat(8, axis=2).repeat(8, axis=3)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = 0.6 * patterns[labels] + 0.4 * rng.uniform(0, 255, (n, 3, 32, 32))
    return torch.from_numpy(images.round().astype(np.uint8)), labels.astype(np.int64)


def write_synthetic_imagefolder(root: str | Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """:func:`synthetic_images` as PNGs in ``root/{train,test}/<class>/``, a dataset the loop reads
    as ``imagefolder:<root>`` (for real rounds on a machine without CIFAR)."""
    from PIL import Image

    root = Path(root)
    for split, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images, labels = synthetic_images(n, split_seed)
        for c in range(NUM_CLASSES):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images.permute(0, 2, 3, 1).numpy(), labels)):
            Image.fromarray(image).save(root / split / f"class{label}" / f"{i:06d}.png")
    return root


def run_bench(
    model: str,
    device: str = "auto",
    batch: int = 64,
    eval_batch: int | None = None,
    compile: str = "auto",
    seconds: float = 5.0,
    naive: bool = True,
    naive_workers: int | None = None,
    concurrent: tuple[int, ...] = (),
    deterministic: bool = False,
    measure: tuple[str, ...] = MEASURES,
    graphs: bool | str = "auto",
    fuse_preprocess: bool = True,
    autotune: bool = False,
    profile: bool = False,
    hold: str | Path | None = None,
) -> dict:
    """Every figure of ``alvit bench`` for one model, as a dict (the ``--json`` file).

    ``deterministic`` also times training with ``train.deterministic`` (``deterministic_train_img_s``
    and ``deterministic_cost``, the fraction of throughput it costs), and as before issue 28's fix
    (``deterministic_nan_fill_train_img_s`` and ``deterministic_nan_fill_cost``). ``measure``
    names what is timed, a subset of ``("train", "score")``. ``graphs`` (as ``train.cuda_graphs``:
    ``"auto"``, True or False), ``fuse_preprocess`` and ``autotune`` choose the compiled path
    (:class:`alvit.accel.FastPath`; eager: no effect).
    ``profile`` adds each work's kernels; ``hold`` waits for a go before timing (module docstring).
    """
    started, skips = time.perf_counter(), _cudagraph_skips()
    spec = resolve_model(model)
    dev = resolve_device(device)
    eval_batch = eval_batch or batch
    compiled = resolve_compile(_compile_setting(compile), dev)
    fast_path = FastPath(
        compile=compiled,
        graphs=resolve_graphs(graphs, dev, compiled),
        fuse_preprocess=fuse_preprocess,
        autotune=autotune and compiled,
    )
    flops = model_flops(spec, NUM_CLASSES)
    peak = peak_bf16_tflops(dev)
    naive_workers = default_naive_workers() if naive_workers is None else naive_workers
    result: dict = {
        "model": model,
        "timm_name": spec.timm_name,
        "timm_kwargs": spec.kwargs,
        "input_size": spec.input_size,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "batch": batch,
        "eval_batch": eval_batch,
        "measure": list(measure),
        "compile": compiled,
        "fast_path": fast_path.describe(),
        "graphs": fast_path.graphs,
        "fuse_preprocess": compiled and fuse_preprocess,
        "autotune": fast_path.autotune,
        "gflops_per_image": flops / 1e9,
        "peak_tflops": peak,
        "seconds_per_measurement": seconds,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "errors": {},
    }
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    works: dict[str, Callable[[], int]] = {}
    fast = _guarded(
        result, "fast", lambda: _fast_pipeline(spec, dev, batch, eval_batch, fast_path, deterministic, measure)
    )
    if fast is not None:
        works.update(fast.works)
    result["fused_attn"] = None if fast is None else fused_attention(fast.model)
    result["peak_mem_mb"] = _peak_mem_mb(dev)  # the warm-up reached the fast path's peak; measured before naive runs
    result["cudagraph_skips"] = _cudagraph_skips() - skips  # graphs run without CUDA graphs although asked to
    result["naive_workers"] = naive_workers
    baseline = (
        _guarded(result, "naive", lambda: _naive_pipeline(spec, dev, batch, eval_batch, naive_workers, measure))
        if naive
        else None
    )
    if baseline is not None:
        works.update(baseline.works)
    result["warm_s"] = time.perf_counter() - started  # compilation and warm-up
    if hold is not None:
        wait_for_go(Path(hold), dev, result)
    timed = time.perf_counter()
    rates = _guarded(result, "timing", lambda: steady_rates(works, dev, seconds)) or {}
    for key in RATE_KEYS:
        result[key] = rates.get(key)
    # The cost of train.deterministic: the fraction of training throughput it gives up.
    result["deterministic_cost"] = _cost(result["deterministic_train_img_s"], result["train_img_s"])
    result["deterministic_nan_fill_cost"] = _cost(result["deterministic_nan_fill_train_img_s"], result["train_img_s"])
    if profile:
        result["kernels"] = _guarded(result, "profile", lambda: kernel_profile(works, dev, rates)) or {}
    result["tflops"] = _tflops(result["train_img_s"], TRAIN_FORWARD_PASSES * flops)
    result["score_tflops"] = _tflops(result["score_img_s"], flops)
    result["mfu"] = _ratio(result["tflops"], peak)
    result["score_mfu"] = _ratio(result["score_tflops"], peak)
    result["speedup_vs_naive"] = _ratio(result["train_img_s"], result["naive_train_img_s"])
    result["score_speedup_vs_naive"] = _ratio(result["score_img_s"], result["naive_score_img_s"])
    result["concurrent"] = []
    result["timed_s"] = time.perf_counter() - timed
    fast = baseline = None  # free the device, and the naive pipeline's workers, for the concurrent processes
    works.clear()
    for processes in concurrent:
        _release(dev)
        rates = _guarded(
            result,
            f"concurrent_{processes}",
            lambda k=processes: _measure_concurrent(model, str(dev), batch, compile, seconds, k),
        )
        if rates is not None:
            result["concurrent"].append(
                {"processes": processes, "aggregate_train_img_s": sum(rates), "per_process_train_img_s": rates}
            )
    one = next((row["aggregate_train_img_s"] for row in result["concurrent"] if row["processes"] == 1), None)
    for row in result["concurrent"]:
        row["scaling_vs_one"] = _ratio(row["aggregate_train_img_s"], one)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _compile_setting(text: str) -> bool | str:
    """The command line's ``--compile auto|true|false`` as ``train.compile`` takes it."""
    return {"true": True, "false": False}.get(text, text)


def default_naive_workers() -> int:
    """DataLoader workers of the naive pipeline: one per core, at most 8 (a common choice)."""
    return max(1, min(8, os.cpu_count() or 1))


def _guarded(result: dict, name: str, measure: Callable[[], object]) -> object | None:
    """Run one measurement; a device out of memory is recorded under ``errors``, not raised,
    so one oversized batch does not lose the other figures."""
    try:
        return measure()
    except (torch.OutOfMemoryError, TrainingError) as err:
        result["errors"][name] = one_line(err)
        return None


RATE_KEYS = (
    "train_img_s",
    "score_img_s",
    "naive_train_img_s",
    "naive_score_img_s",
    "deterministic_train_img_s",
    "deterministic_nan_fill_train_img_s",
)


@dataclass(frozen=True)
class _Pipeline:
    """A warmed-up pipeline: ``works`` maps a figure (a key of :data:`RATE_KEYS`) to a call that
    does one unit of work (a training step, or scoring a pool of SCORE_POOL_BATCHES batches) and
    returns the images it processed."""

    model: nn.Module
    works: dict[str, Callable[[], int]]


def _fast_trainer(
    spec: ModelSpec, device: torch.device, batch: int, n_images: int, fast: FastPath
) -> tuple[nn.Module, Preprocessor, torch.Tensor, Callable[..., int]]:
    """A model, its preprocessing, synthetic images on the device, and one training step as fit
    runs it (``train(deterministic=True)`` as with ``train.deterministic``; ``nan_fill=True``
    as that ran before issue 28, filling every fresh allocation with NaN)."""
    torch.manual_seed(0)
    model = create_model(spec, NUM_CLASSES).to(device)
    preprocess = Preprocessor.for_model(spec, device)
    images, labels = synthetic_images(n_images)
    images, targets = images.to(device), torch.as_tensor(labels, device=device)
    cfg = TrainConfig(batch_size=batch, epochs=1, warmup_epochs=0)
    step = TrainStep(model, cfg, preprocess, steps_per_epoch=10**9, fast=fast)  # the lr schedule is irrelevant
    generator = torch.Generator(device=device)
    generator.manual_seed(0)

    def train(deterministic: bool = False, nan_fill: bool = False) -> int:
        with device_settings(device, deterministic), _nan_fill(nan_fill):
            model.train()
            index = torch.randint(0, len(images), (batch,), generator=generator, device=device)
            step(images[index], targets[index])
        return batch

    return model, preprocess, images, train


@contextlib.contextmanager
def _nan_fill(on: bool) -> Iterator[None]:
    """Inside :func:`alvit.accel.device_settings`: deterministic mode's NaN fill of fresh memory back on."""
    if not on:
        yield
        return
    saved = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = saved


def _fast_pipeline(
    spec: ModelSpec,
    device: torch.device,
    batch: int,
    eval_batch: int,
    fast: FastPath,
    deterministic: bool,
    measure: tuple[str, ...],
) -> _Pipeline:
    model, preprocess, images, train = _fast_trainer(
        spec, device, batch, max(batch * 8, eval_batch * SCORE_POOL_BATCHES), fast
    )
    pool = images[: eval_batch * SCORE_POOL_BATCHES]

    def score() -> int:
        return len(predict(model, pool, preprocess, eval_batch, fast=fast).probs)

    works: dict[str, Callable[[], int]] = {}
    if "train" in measure:
        works["train_img_s"] = train
        if deterministic:
            # A graph of its own (compiled code depends on the mode); the NaN fill is no part of
            # the graph, so the same one serves the time before the fix.
            works["deterministic_train_img_s"] = functools.partial(train, deterministic=True)
            works["deterministic_nan_fill_train_img_s"] = functools.partial(train, deterministic=True, nan_fill=True)
    if "score" in measure:
        works["score_img_s"] = score
    _warm_up(works)  # compilation and autotuning happen here
    return _Pipeline(model, works)


def _warm_up(works: dict[str, Callable[[], int]]) -> None:
    """Calls before timing: compilation, autotuning, the allocator's growth, worker start-up."""
    for name, work in works.items():
        for _ in range(2 if name.startswith(("score", "naive_score")) else WARMUP_STEPS):
            work()


def wait_for_go(hold: Path, device: torch.device, result: dict) -> None:
    """Write ``hold/ready`` (what was warmed up, and any error) and wait until ``hold/go`` exists.

    The cached device memory is handed back first, so benches waiting side by side hold only
    their weights and compiled graphs; the first timed call takes it again (an untimed call).
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
    hold.mkdir(parents=True, exist_ok=True)
    ready = {"pid": os.getpid(), "warm_s": result["warm_s"], "errors": result["errors"]}
    (hold / "ready.tmp").write_text(json.dumps(ready))
    (hold / "ready.tmp").replace(hold / "ready")  # seen whole or not at all
    while not (hold / "go").exists():
        time.sleep(HOLD_POLL_S)


def _cudagraph_skips() -> int:
    """How many graphs torch.compile has run without CUDA graphs in this process although asked to."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["cudagraph_skips"])


def _cost(slower: float | None, faster: float | None) -> float | None:
    """The fraction of ``faster``'s throughput that ``slower`` gives up."""
    ratio = _ratio(slower, faster)
    return None if ratio is None else 1 - ratio


def steady_rates(
    works: dict[str, Callable[[], int]], device: torch.device, seconds: float, repeats: int = REPEATS
) -> dict[str, float]:
    """Items per second of each warmed-up ``work()`` (which returns how many items it processed).

    One timed call sizes each work's runs to about ``seconds / repeats``; then the works run in
    turn, ``repeats`` times, each run timed between device synchronisations. Taking turns lets
    a change in the machine's load (other processes on a shared CPU) touch every work alike, and
    the fastest run of each work counts, since other processes only ever slow a run down.
    """
    calls = {}
    for name, work in works.items():
        _sync(device)
        start = time.perf_counter()
        work()
        _sync(device)
        calls[name] = max(3, min(100_000, math.ceil(seconds / repeats / max(time.perf_counter() - start, 1e-9))))
    rates = dict.fromkeys(works, 0.0)
    for _ in range(repeats):
        for name, work in works.items():
            _sync(device)
            start = time.perf_counter()
            items = sum(work() for _ in range(calls[name]))
            _sync(device)
            rates[name] = max(rates[name], items / (time.perf_counter() - start))
    return rates


class PILImages(torch.utils.data.Dataset):
    """The naive pipeline's dataset: one PIL image at a time through a torchvision transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform  # images: uint8 [N, 32, 32, 3]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _naive_pipeline(
    spec: ModelSpec, device: torch.device, batch: int, eval_batch: int, workers: int, measure: tuple[str, ...]
) -> _Pipeline:
    """The same model and data through a per-image CPU pipeline, fp32, eager, plain AdamW."""
    from torchvision import transforms

    torch.manual_seed(0)
    model = create_model(spec, NUM_CLASSES).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    images, labels = synthetic_images(max(batch, eval_batch) * 16)
    resize = transforms.Resize(spec.input_size, interpolation=transforms.InterpolationMode(spec.interpolation))
    transform = transforms.Compose([resize, transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])
    dataset = PILImages(images.permute(0, 2, 3, 1).numpy(), labels, transform)

    def loader(size: int, shuffle: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = torch.utils.data.DataLoader(
            dataset,
            batch_size=size,
            shuffle=shuffle,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
        )
        return itertools.chain.from_iterable(itertools.repeat(batches))

    train_batches = loader(batch, shuffle=True)

    def train() -> int:
        model.train()
        x, y = next(train_batches)
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return len(y)

    score_batches = loader(eval_batch, shuffle=False)

    def score() -> int:
        model.eval()
        x, _ = next(score_batches)
        with torch.no_grad():
            model(x.to(device)).softmax(dim=-1).cpu()
        return len(x)

    works = {f"naive_{what}_img_s": {"train": train, "score": score}[what] for what in MEASURES if what in measure}
    _warm_up(works)
    return _Pipeline(model, works)


def _measure_concurrent(
    model: str, device: str, batch: int, compile: str, seconds: float, processes: int
) -> list[float]:
    """Training images/s of each of ``processes`` processes sharing the device, timed together."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_concurrent_worker, args=(model, device, batch, compile, seconds, barrier, queue))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        results = [queue.get(timeout=CONCURRENT_TIMEOUT_S) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise TrainingError(f"{processes} concurrent runs: {errors[0]}")
    return [r["img_s"] for r in results]


def _concurrent_worker(model: str, device: str, batch: int, compile: str, seconds: float, barrier, queue) -> None:
    try:
        dev = torch.device(device)
        compiled = resolve_compile(_compile_setting(compile), dev)
        _, _, _, train = _fast_trainer(resolve_model(model), dev, batch, batch * 8, FastPath(compile=compiled))
        for _ in range(WARMUP_STEPS):  # compilation and autotuning, before the common start
            train()
        _sync(dev)
        barrier.wait(timeout=CONCURRENT_TIMEOUT_S)
        start, steps = time.perf_counter(), 0
        while True:
            train()
            steps += 1
            if steps % 5 == 0:
                _sync(dev)
                if time.perf_counter() - start >= seconds:
                    break
        queue.put({"img_s": steps * batch / (time.perf_counter() - start)})
    except Exception as err:  # reported by the parent; the others must not wait at the barrier
        barrier.abort()
        queue.put({"error": one_line(err)})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mem_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _tflops(img_s: float | None, flops_per_image: float) -> float | None:
    return None if img_s is None else img_s * flops_per_image / 1e12


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def format_report(r: dict) -> str:
    """The human-readable summary ``alvit bench`` prints."""

    def num(value: float | None, fmt: str = ",.1f", suffix: str = "") -> str:
        return "n/a" if value is None else f"{value:{fmt}}{suffix}"

    mfu = "n/a (peak unknown)" if r["peak_tflops"] is None else f"{num(r['mfu'], '.1%')} of {r['peak_tflops']:g}"
    lines = [
        (
            f"alvit bench {r['model']} ({architecture(r)}, {r['input_size']} px input, {r['gflops_per_image']:.3g} GFLOPs/image) "
            f"on {r['device']} ({r['device_name']}), batch {r['batch']}, eval batch {r['eval_batch']}, "
            f"{r['fast_path']}, fused attention {r['fused_attn']}"
        ),
        f"  fast   train {num(r['train_img_s']):>10} img/s  {num(r['tflops'], '.3g')} TFLOP/s  MFU {mfu}",
        (
            f"         score {num(r['score_img_s']):>10} img/s  {num(r['score_tflops'], '.3g')} TFLOP/s  "
            f"MFU {num(r['score_mfu'], '.1%')}"
        ),
        (
            f"  naive  train {num(r['naive_train_img_s']):>10} img/s  (DataLoader + PIL, {r['naive_workers']} workers, "
            f"fp32, eager, torch.optim.AdamW)"
        ),
        f"         score {num(r['naive_score_img_s']):>10} img/s",
        f"  fast / naive: train {num(r['speedup_vs_naive'], '.2f', 'x')}, score {num(r['score_speedup_vs_naive'], '.2f', 'x')}",
        f"  peak device memory of the fast path: {num(r['peak_mem_mb'], ',.0f', ' MB')}",
        f"  compilation and warm-up {num(r['warm_s'], '.1f', ' s')}, timing {num(r['timed_s'], '.1f', ' s')}",
    ]
    if r["deterministic_train_img_s"] is not None:
        lines.append(
            f"  train.deterministic: train {num(r['deterministic_train_img_s'])} img/s "
            f"({num(r['deterministic_cost'], '.1%')} slower); with fresh memory filled with NaN, as before issue 28: "
            f"{num(r['deterministic_nan_fill_train_img_s'])} img/s ({num(r['deterministic_nan_fill_cost'], '.1%')} slower)"
        )
    if r["graphs"] and r["cudagraph_skips"]:
        lines.append(
            f"  CUDA graphs were refused for {r['cudagraph_skips']} graph(s): see the log's 'skipping cudagraphs'"
        )
    for work, figures in r.get("kernels", {}).items():
        kinds = ", ".join(f"{kind} {ms:.2f}" for kind, ms in list(figures["kinds"].items())[:4])
        lines.append(
            f"  profile {work}: {figures['wall_ms']:.2f} ms a call, kernels {figures['kernel_ms']:.2f} ms "
            f"({num(figures['busy'], '.0%')} busy): {kinds}"
        )
    for row in r["concurrent"]:
        lines.append(
            f"  {row['processes']} concurrent: {num(row['aggregate_train_img_s'])} img/s in all "
            f"({num(row['scaling_vs_one'], '.2f', 'x')} one process)"
        )
    lines += [f"  error in {name}: {message}" for name, message in r["errors"].items()]
    return "\n".join(lines)


def architecture(r: dict) -> str:
    """``timm vit_tiny_patch16_224 with patch_size=4, ...``: a preset's timm name alone would claim patch 16 at 224 px."""
    changed = {key: value for key, value in r.get("timm_kwargs", {}).items() if key != "img_size"}
    return f"timm {r['timm_name']}" + (
        " with " + ", ".join(f"{key}={value}" for key, value in changed.items()) if changed else ""
    )


def write_json(result: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


__all__ = [
    "PEAK_BF16_TFLOPS",
    "format_report",
    "peak_bf16_tflops",
    "run_bench",
    "steady_rates",
    "synthetic_images",
    "write_synthetic_imagefolder",
]
