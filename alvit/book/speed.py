"""Issue 28's GPU speed check on the "Performance and cost" page: its figures beside the first GPU
check's, per model, batch and path; where each work's time went on the device; and each target
of the issue met or missed, with the measurement that says why.

Read from ``benchmarks/results/``: the ``gpu_speed*.json`` reports of :mod:`alvit.gpuspeed` and
the GPU ``bench-*.json`` files that their provenance record names (one commit), and the first
check (:func:`alvit.book.performance.gpu`). A sentence states a pattern only where the figures
show it.

Kernel profiles (``alvit bench --profile``): ``busy`` is a call's summed kernel time over its wall
time. Profiles written before ``alvit.kernelprofile`` left profiler ranges out also count the
optimizer's range (``Optimizer.step#AdamW.step``) as device time, over its own kernels; it is
taken out here wherever the profile lists it among its top kernels (:func:`kernel_ms`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alvit.book.performance import (
    MISSING,
    GpuFigures,
    gpu,
    gpu_benches_named,
    number_text,
    provenance_records,
    results_dir,
)
from alvit.errors import ResultsError
from alvit.gpuspeed import targets

# work -> (rate key, MFU key, batch key) of an alvit bench result
WORKS = {"train": ("train_img_s", "mfu", "batch"), "score": ("score_img_s", "score_mfu", "eval_batch")}
WORK_NAMES = {"train": "training", "score": "scoring"}
PROFILED_WORKS = {  # the keys of a bench's "kernels", in words
    "train_img_s": "training",
    "score_img_s": "scoring",
    "deterministic_train_img_s": "training, deterministic",
    "deterministic_nan_fill_train_img_s": "training, deterministic, NaN fill",
}
PATH_ORDER = ("eager", "compiled", "compiled+fused", "compiled+graphs+fused")
KIND_WORDS = {
    "matmul": "matmuls",
    "fused (Triton)": "Triton's fused kernels",
    "attention": "attention",
    "convolution": "convolutions",
    "optimizer": "the optimizer",
    "eager elementwise and reductions": "eager elementwise kernels",
}
ATTENTION_WORDS = {  # scaled-dot-product attention's backends (torch.nn.attention.SDPBackend)
    "CUDNN_ATTENTION": "cuDNN's kernel",
    "FLASH_ATTENTION": "the flash kernel",
    "EFFICIENT_ATTENTION": "the memory-efficient kernel",
    "MATH": "the unfused math path",
}
RANGE_MARK = "#"  # torch names a profiled optimizer step's range "Optimizer.step#AdamW.step"; no kernel has one
KERNEL_BOUND = 0.95  # busy at least this: the time is the kernels' own


@dataclass(frozen=True)
class SpeedFigures:
    """The speed check's figures at one commit, and the first check's to compare with."""

    provenance: list[dict]  # the records naming these files
    commit: str
    reports: list[dict]  # each gpu_speed report, with "file"
    benches: list[dict]  # every bench that ran, its figures with "job" (its name) and "file"
    first: GpuFigures | None

    def job(self, name: str) -> dict | None:
        """The figures of job ``name``, or None."""
        return next((b for b in self.benches if b["job"] == name), None)

    def records(self) -> list[dict]:
        """Every job record of the reports, then one per lone bench file (as :func:`alvit.gpuspeed.targets` reads them)."""
        jobs = [job for report in self.reports for job in report["jobs"]]
        lone = [b for b in self.benches if b["file"].startswith("bench-")]
        return jobs + [{"name": b["job"], "kind": "bench", "figures": b} for b in lone]


def speed(folder: Path | None = None) -> SpeedFigures | None:
    """The speed check's figures under ``benchmarks/results/``, or None where none was committed.

    Raises ResultsError for a GPU result without provenance, and for reports of more than one
    commit or whose commit is not their record's."""
    folder = folder or results_dir()
    paths = sorted(folder.glob("gpu_speed*.json"))
    if not paths:
        return None
    records = provenance_records(folder)
    mine = [record for record in records if any(path.name in record["files"] for path in paths)]
    commits = sorted({record["commit"] for record in mine})
    reports = [{**json.loads(path.read_text()), "file": path.name} for path in paths]
    stated = sorted({report["provenance"]["commit"] for report in reports})
    if len(commits) != 1 or stated != commits:
        raise ResultsError(
            f"the GPU speed reports in {folder} name commit(s) {', '.join(stated)} and their provenance records "
            f"{', '.join(commits)}; commit the reports of one commit, with one record naming them"
        )
    benches = [
        {**job["figures"], "job": job["name"], "file": report["file"]}
        for report in reports
        for job in report["jobs"]
        if job["kind"] == "bench" and job.get("figures")
    ]
    benches += [{**b, "job": Path(b["file"]).stem} for b in gpu_benches_named(folder, mine)]
    return SpeedFigures(mine, commits[0], reports, benches, gpu(folder))


def path_of(bench: dict) -> str:
    """A bench's fast path; results from before it was recorded (the first check) ran compiled
    or eager, with preprocessing before the graph and no CUDA graphs."""
    return bench.get("fast_path") or ("compiled" if bench.get("compile") else "eager")


def kernel_ms(profile: dict) -> float:
    """A call's kernel time, without the profiler ranges the profile counted as kernels."""
    return profile["kernel_ms"] - sum(top["ms"] for top in profile["top"] if RANGE_MARK in top["name"])


def busy(profile: dict) -> float:
    """The fraction of a call's wall time its kernels took (:func:`kernel_ms`)."""
    return kernel_ms(profile) / profile["wall_ms"]


def kind_shares(profile: dict) -> dict[str, float]:
    """Each kind's share of :func:`kernel_ms`, largest first (ranges taken out of their kind)."""
    ms = dict(profile["kinds"])
    for top in profile["top"]:
        if RANGE_MARK in top["name"]:
            ms[top["kind"]] -= top["ms"]
    total = kernel_ms(profile)
    return {kind: value / total for kind, value in sorted(ms.items(), key=lambda item: -item[1])}


def kinds_text(profile: dict, most: int = 4, least: float = 0.05) -> str:
    """``matmuls 52%, Triton's fused kernels 24% and attention 9%``: the largest kinds of kernel time."""
    shown = [f"{KIND_WORDS.get(k, k)} {v:.0%}" for k, v in kind_shares(profile).items() if v >= least][:most]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def _measurements(figures: SpeedFigures) -> list[tuple[str, dict]]:
    """(which check, bench) for the first check's benches and this one's."""
    first = [("first", b) for b in figures.first.benches] if figures.first else []
    return first + [("this", b) for b in figures.benches]


def _sort_key(model: str, work: str, batch: int, path: str) -> tuple:
    return model, list(WORKS).index(work), batch, PATH_ORDER.index(path) if path in PATH_ORDER else len(PATH_ORDER)


def before_after_table(figures: SpeedFigures) -> pd.DataFrame:
    """A row per model, work, batch and path: images per second and MFU in the first check and in
    this one (each measurement, where one was taken twice), and how busy this one kept the GPU."""
    first_commit = figures.first.provenance[0]["commit"] if figures.first and figures.first.provenance else "?"
    columns = {"first": f"first check ({first_commit})", "this": f"this check ({figures.commit})"}
    cells: dict[tuple, dict[str, list[str]]] = {}
    for which, bench in _measurements(figures):
        for work, (rate, mfu, batch) in WORKS.items():
            if bench.get(rate) is None:
                continue
            key = (bench["model"], work, bench.get(batch) or bench["batch"], path_of(bench))
            row = cells.setdefault(key, {})
            row.setdefault(which, []).append(f"{bench[rate]:,.0f} ({number_text(bench.get(mfu), '.1%')})")
            profile = (bench.get("kernels") or {}).get(rate)
            if which == "this" and profile:
                row.setdefault("busy", []).append(f"{busy(profile):.0%}")
    rows = [
        {
            "model": model,
            "work": WORK_NAMES[work],
            "batch": f"{batch:,}",
            "path": path,
            columns["first"]: "; ".join(row.get("first", [MISSING])),
            columns["this"]: "; ".join(row.get("this", [MISSING])),
            "GPU busy": "; ".join(row.get("busy", [MISSING])),
        }
        for (model, work, batch, path), row in sorted(cells.items(), key=lambda item: _sort_key(*item[0]))
    ]
    return pd.DataFrame(rows)


def profile_table(figures: SpeedFigures) -> pd.DataFrame:
    """A row per profiled work of this check: wall and kernel time of a call, busy, and the
    largest kinds of kernel time."""
    rows = []
    for bench in sorted(figures.benches, key=lambda b: (b["model"], b["batch"], b["job"])):
        for work, profile in (bench.get("kernels") or {}).items():
            scoring = work == "score_img_s"
            rows.append(
                {
                    "model": bench["model"],
                    "work": PROFILED_WORKS.get(work, work),
                    "batch": f"{bench['eval_batch' if scoring else 'batch']:,}",
                    "path": path_of(bench),
                    "images a call": f"{profile['items_per_call']:,}",
                    "ms a call": f"{profile['wall_ms']:,.1f}",
                    "kernel ms": f"{kernel_ms(profile):,.1f}",
                    "busy": f"{busy(profile):.0%}",
                    "kernel time by kind": kinds_text(profile, most=3),
                }
            )
    return pd.DataFrame(rows)


def unlisted_ranges_text(figures: SpeedFigures) -> str:
    """For training profiles whose optimizer range is not among the listed kernels (so still
    counted): the most it can add, the smallest listed kernel's time, against the call's."""
    unlisted = []
    for bench in figures.benches:
        profile = (bench.get("kernels") or {}).get("train_img_s")
        if profile and "annotations_ms" not in profile and not any(RANGE_MARK in t["name"] for t in profile["top"]):
            smallest = min(t["ms"] for t in profile["top"])
            unlisted.append(
                f"{bench['model']} at batch {bench['batch']} ({smallest:.1f} of {profile['wall_ms']:.0f} ms, "
                f"{smallest / profile['wall_ms'] * 100:.1f} points)"
            )
    if not unlisted:
        return ""
    return (
        "Where a training profile does not list the optimizer's range among its top kernels, it is still counted, "
        f"and can add at most the smallest listed kernel's time: {'; '.join(unlisted)}."
    )


def deterministic_table(figures: SpeedFigures) -> pd.DataFrame:
    """What ``train.deterministic`` cost on each path this check measured it on: training images
    per second without and with it, its cost, the cost with fresh memory filled with NaN (as
    before issue 28), and GPU busy and attention's ms a step, without → with."""
    rows = []
    for bench in figures.benches:
        if bench.get("deterministic_cost") is None:
            continue
        kernels = bench.get("kernels") or {}
        plain, strict = kernels.get("train_img_s"), kernels.get("deterministic_train_img_s")
        rows.append(
            {
                "model": bench["model"],
                "batch": f"{bench['batch']:,}",
                "path": path_of(bench),
                "img/s": f"{bench['train_img_s']:,.0f}",
                "deterministic": f"{bench['deterministic_train_img_s']:,.0f}",
                "cost": f"{bench['deterministic_cost']:.1%}",
                "cost, NaN fill": number_text(bench.get("deterministic_nan_fill_cost"), ".1%"),
                "busy": f"{busy(plain):.0%} → {busy(strict):.0%}" if plain and strict else MISSING,
                "attention ms": (
                    f"{plain['kinds'].get('attention', 0):.1f} → {strict['kinds'].get('attention', 0):.1f}"
                    if plain and strict
                    else MISSING
                ),
            }
        )
    return pd.DataFrame(rows)


def target_table(figures: SpeedFigures) -> pd.DataFrame:
    """Issue 28's targets over every measurement of this check (all its reports and bench files)."""
    rows = []
    for target in targets(figures.records()):
        bound = "at_least" if "at_least" in target else "at_most"
        count = "(of " in target["target"]
        shown = (lambda v: f"{v:g}") if count else (lambda v: f"{v:.1%}")
        rows.append(
            {
                "target": target["target"],
                "measured": MISSING if target["value"] is None else shown(target["value"]),
                "bound": f"{bound.replace('_', ' ')} {shown(target[bound])}",
                "met": {True: "met", False: "missed", None: "not measured"}[target["met"]],
                "by": target["job"] or MISSING,
            }
        )
    return pd.DataFrame(rows)


def target_readings(figures: SpeedFigures) -> list[str]:
    """A sentence or a few per target of :func:`target_table`, in its order, from the figures."""
    readers = {
        "vit_b16 scoring": _scoring_reading,
        "vit_b32 training": _small_batch_reading,
        "vit_b16 training": _training_reading,
        "cost of train.deterministic": _deterministic_reading,
        "swinv2_t and vit_l32": _first_seen_reading,
    }
    readings = []
    for target in targets(figures.records()):
        reader = next((r for prefix, r in readers.items() if target["target"].startswith(prefix)), None)
        if target["met"] is None:
            readings.append("Not measured.")
        elif reader is None:
            readings.append(f"{_verdict(target)}; these figures do not show why.")
        else:
            readings.append(reader(target, figures))
    return readings


def _verdict(target: dict) -> str:
    return "Met" if target["met"] else "Missed"


def _time_sentence(bench: dict, work: str) -> str:
    """How busy the GPU was and, where it was busy throughout, which kernels took the time."""
    profile = (bench.get("kernels") or {}).get(work)
    if not profile:
        return "No kernel profile was taken."
    share = busy(profile)
    if share >= KERNEL_BOUND:
        return f"The GPU is busy {share:.0%} of the time, so the kernels bound it: {kinds_text(profile)} of their time."
    return f"The GPU is idle {1 - share:.0%} of the time, between kernels; of the kernels' time, {kinds_text(profile)}."


def _scoring_reading(target: dict, figures: SpeedFigures) -> str:
    best = figures.job(target["job"])
    text = (
        f"{_verdict(target)}: {best['score_mfu']:.1%} at an evaluation batch of {best['eval_batch']:,} on "
        f"{path_of(best)} ({best['score_img_s']:,.0f} img/s)"
    )
    same = [
        b
        for b in figures.benches
        if b["model"] == "vit_b16" and b is not best and b.get("score_mfu") and b["eval_batch"] == best["eval_batch"]
    ]
    text += "".join(f", {b['score_mfu']:.1%} on {path_of(b)}" for b in same)
    other_batches = [
        b
        for b in figures.benches
        if b["model"] == "vit_b16" and b.get("score_mfu") and b["eval_batch"] != best["eval_batch"]
    ]
    text += "".join(f", {b['score_mfu']:.1%} at {b['eval_batch']:,} on {path_of(b)}" for b in other_batches)
    first = [b for b in (figures.first.benches if figures.first else []) if b["model"] == "vit_b16"]
    if first:
        top = max(first, key=lambda b: b["score_mfu"])
        gain = (best["score_mfu"] - top["score_mfu"]) * 100
        text += (
            f", against {top['score_mfu']:.1%} at batch {top['eval_batch']} in the first check: the larger batch "
            f"and {path_of(best)} add {gain:.1f} points"
        )
    return f"{text}. {_time_sentence(best, 'score_img_s')}"


def _small_batch_reading(target: dict, figures: SpeedFigures) -> str:
    best = figures.job(target["job"])
    batch = best["batch"]
    text = f"{_verdict(target)}: {best['mfu']:.1%} on {path_of(best)} ({best['train_img_s']:,.0f} img/s)"
    beside = [
        b
        for b in figures.benches
        if b["model"] == best["model"] and b["batch"] == batch and b is not best and b.get("mfu")
    ]
    for other in beside:
        text += (
            f", {best['train_img_s'] / other['train_img_s']:.2f}x the {path_of(other)} path measured beside it "
            f"({other['train_img_s']:,.0f} img/s, {other['mfu']:.1%})"
        )
    first = figures.first.bench(best["model"], batch) if figures.first else None
    if first:
        text += (
            f" and {best['train_img_s'] / first['train_img_s']:.2f}x the first check's "
            f"({first['train_img_s']:,.0f} img/s, {first['mfu']:.1%})"
        )
    text += "."
    after = (best.get("kernels") or {}).get("train_img_s")
    before = next(((b.get("kernels") or {}).get("train_img_s") for b in beside if b.get("kernels")), None)
    if after and before:
        text += (
            f" A step's kernels take {kernel_ms(before):.1f} ms on {path_of(beside[0])} and {kernel_ms(after):.1f} ms "
            f"on {path_of(best)}, while the step takes {before['wall_ms']:.1f} and {after['wall_ms']:.1f} ms: the GPU "
            f"is busy {busy(before):.0%} of the time, then {busy(after):.0%}"
        )
        same_kernels = abs(kernel_ms(after) - kernel_ms(before)) < 0.1 * kernel_ms(before)
        text += (
            "; the same kernels, without the waits between them that CUDA graphs remove."
            if same_kernels and "graphs" in path_of(best)
            else "."
        )
    return text


def _training_reading(target: dict, figures: SpeedFigures) -> str:
    best = figures.job(target["job"])
    text = (
        f"{_verdict(target)}: {best['mfu']:.1%} at batch {best['batch']} on {path_of(best)} "
        f"({best['train_img_s']:,.0f} img/s)"
    )
    first = figures.first.bench("vit_b16", best["batch"]) if figures.first else None
    if first:
        text += f"; {first['mfu']:.1%} there in the first check"
    others: dict[tuple, float] = {}
    for b in figures.benches:
        if b["model"] == "vit_b16" and b.get("mfu") and b["batch"] != best["batch"]:
            key = (b["batch"], path_of(b))
            others[key] = max(others.get(key, 0.0), b["mfu"])
    best_other = max(others.items(), key=lambda item: item[1], default=None)
    if best_other:
        (batch, path), mfu = best_other
        text += f"; at batch {batch}, {mfu:.1%} at best, on {path}"
    text += f". {_time_sentence(best, 'train_img_s')}"
    autotune = [
        job
        for report in figures.reports
        for job in report["jobs"]
        if "--autotune" in job["command"] and "train" in job["command"] and not job.get("figures")
    ]
    if autotune:
        text += " Not measured: " + "; ".join(
            f"max-autotune ({job['name']}: {job['status']}, {job.get('reason', '')})" for job in autotune
        )
        text += "."
    return text


def _deterministic_reading(target: dict, figures: SpeedFigures) -> str:
    measured = sorted(
        (b for b in figures.benches if b.get("deterministic_cost") is not None), key=lambda b: b["deterministic_cost"]
    )
    parts = [
        f"{b['deterministic_cost']:.1%} on {path_of(b)} ({b['deterministic_train_img_s']:,.0f} against "
        f"{b['train_img_s']:,.0f} img/s)"
        for b in measured
    ]
    text = f"{_verdict(target)}: " + "; ".join(parts) + "."
    profiled = [b for b in measured if {"train_img_s", "deterministic_train_img_s"} <= set(b.get("kernels") or {})]
    for b in sorted(profiled, key=lambda b: -b["deterministic_cost"]):
        plain, strict = b["kernels"]["train_img_s"], b["kernels"]["deterministic_train_img_s"]
        added_wall, added_kernels = strict["wall_ms"] - plain["wall_ms"], kernel_ms(strict) - kernel_ms(plain)
        text += (
            f" On {path_of(b)} it makes a step {added_wall:.1f} ms longer and its kernels {added_kernels:.1f} ms "
            f"longer, and the GPU is busy {busy(plain):.0%}, then {busy(strict):.0%}"
        )
        waits = added_wall - added_kernels
        text += f": for the other {waits:.1f} ms it waits." if waits > added_kernels else "."
    if profiled:
        plain, strict = (profiled[0]["kernels"][work] for work in ("train_img_s", "deterministic_train_img_s"))
        added = kernel_ms(strict) - kernel_ms(plain)
        attention = strict["kinds"].get("attention", 0.0) - plain["kinds"].get("attention", 0.0)
        if added > 0 and attention >= 0.8 * added:
            text += (
                f" The kernel time it adds is mostly attention's ({plain['kinds']['attention']:.1f} → "
                f"{strict['kinds']['attention']:.1f} ms a step on {path_of(profiled[0])})."
            )
    return text + _probe_sentence(figures)


def _probe_sentence(figures: SpeedFigures) -> str:
    """What the probe saw attention pick with and without deterministic algorithms."""
    probe = next(
        (
            job["figures"]
            for report in figures.reports
            for job in report["jobs"]
            if job["kind"] == "probe" and job.get("figures")
        ),
        None,
    )
    if not probe:
        return ""
    default, strict = probe["default"], probe["deterministic"]
    was, now = default["sdpa_choice"], strict["sdpa_choice"]
    if was == now or not isinstance(default["attention_ms"].get(was), float):
        return ""
    refused = strict["attention_ms"].get(was)
    why = f" ({refused})" if isinstance(refused, str) else ""
    return (
        f" The probe shows why: attention runs {ATTENTION_WORDS.get(was, was)} by default; with deterministic "
        f"algorithms that one is refused{why} and {ATTENTION_WORDS.get(now, now)} runs, whose forward and backward "
        f"of one layer of ViT-B/16 at batch {probe['attention_shape'][0]} take {strict['attention_ms'][now]:.2f} ms "
        f"against {default['attention_ms'][was]:.2f}."
    )


def _first_seen_reading(target: dict, figures: SpeedFigures) -> str:
    sentences = []
    for model in ("swinv2_t", "vit_l32"):
        mine = sorted((b for b in figures.benches if b["model"] == model), key=lambda b: b["batch"])
        if not mine:
            continue
        train = " and ".join(f"{b['mfu']:.1%} at batch {b['batch']}" for b in mine if b.get("mfu") is not None)
        score = " and ".join(f"{b['score_mfu']:.1%}" for b in mine if b.get("score_mfu") is not None)
        profiles = [(b, (b.get("kernels") or {}).get("train_img_s")) for b in mine]
        busy_text = ", ".join(f"{busy(p):.0%} at {b['batch']}" for b, p in profiles if p)
        sentence = f"{model} trains at {train} and scores at {score}; its training keeps the GPU busy {busy_text}"
        largest = next((p for b, p in reversed(profiles) if p), None)
        if mine[0].get("fused_attn") is False and largest:
            sentence += (
                f"; its attention has no fused kernel in timm, and at batch {mine[-1]['batch']} its training "
                f"kernels are {kinds_text(largest, most=2)}"
            )
        sentences.append(sentence + ".")
    return f"{_verdict(target)}: {target['value']:g} of 4. " + " ".join(sentences)


def runs_text(figures: SpeedFigures) -> str:
    """What ran: each report's jobs and seconds, the GPU tests' result, and the jobs never measured."""
    sentences = []
    measured = {b["job"] for b in figures.benches} | {
        job["name"] for report in figures.reports for job in report["jobs"] if job["status"] == "ok"
    }
    for report in figures.reports:
        ok = sum(job["status"] == "ok" for job in report["jobs"])
        sentences.append(
            f"`{report['file']}` ran {ok} of its {len(report['jobs'])} jobs in {report['seconds']:.0f} s "
            f"of its {report['budget_s']:.0f} s budget."
        )
    for report in figures.reports:
        for job in report["jobs"]:
            if job["kind"] == "pytest" and job.get("summary"):
                sentences.append(f"`pytest -m gpu tests/test_gpu.py` on the device: {job['summary']}.")
    never = {
        job["name"]: f"{job['name']} ({job['status']}: {job.get('reason', '')})"
        for report in figures.reports
        for job in report["jobs"]
        if job["name"] not in measured
    }
    if never:
        sentences.append(f"Never measured: {'; '.join(never.values())}.")
    return " ".join(sentences)


def commands_html(figures: SpeedFigures) -> str:
    """The provenance records' commands and notes, folded."""
    items = "".join(
        f"<li><code>{html.escape(command)}</code></li>"
        for record in figures.provenance
        for command in record["commands"]
    )
    notes = "".join(
        f"<li>{html.escape(note)}</li>" for record in figures.provenance for note in record.get("notes", [])
    )
    return f"<details><summary>The commands, in order, and notes</summary><ol>{items}</ol><ul>{notes}</ul></details>"


__all__ = [
    "SpeedFigures",
    "before_after_table",
    "busy",
    "commands_html",
    "deterministic_table",
    "kernel_ms",
    "kind_shares",
    "kinds_text",
    "path_of",
    "profile_table",
    "runs_text",
    "speed",
    "target_readings",
    "target_table",
    "unlisted_ranges_text",
]
