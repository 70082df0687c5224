"""The book's "Performance and cost" page: tables read from the result files under ``benchmarks/results/``.

Every figure there was written by a command, never typed: ``benchmarks/timed.py`` appends wall
times (with command, commit, date and the machine's load) to ``timings.jsonl``; ``alvit bench
--json`` writes ``bench-*.json``; ``benchmarks/acquisition.py --json`` writes
``acquisition.json``; ``benchmarks/gpu_check.sh`` writes ``gpu_check.json`` on a GPU machine.
Files measured on a GPU are committed with a ``provenance-*.json`` naming them, with the date,
commit, machine and commands (no GPU runs where the book is built).

Tables come back formatted for people (thousands separators, sensible digits, percentages), as
strings: what the page shows is what the functions return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from alvit import paths
from alvit.errors import ResultsError

TIMING_COLUMNS = {  # the command last: it is the widest
    "name": "what",
    "seconds": "seconds",
    "load": "load before → after",
    "cores": "cores",
    "date": "date",
    "commit": "commit",
    "command": "command",
}
MISSING = "—"


def results_dir() -> Path:
    """``benchmarks/results`` of the checkout."""
    return paths.book_root() / "benchmarks" / "results"


def seconds_text(seconds: float | None) -> str:
    """Seconds to the digits that matter: 2,569 / 38.5 / 4.0 / 0.024."""
    if seconds is None or not np.isfinite(seconds):
        return MISSING
    if seconds >= 100:
        return f"{seconds:,.0f}"
    if seconds >= 1:
        return f"{seconds:.1f}"
    return f"{seconds:.2g}"


def number_text(value: float | None, pattern: str) -> str:
    """``value`` formatted by ``pattern``, or the missing mark where it is None or not finite."""
    return MISSING if value is None or not np.isfinite(value) else format(value, pattern)


def timings(folder: Path | None = None) -> pd.DataFrame:
    """Every timed command, newest last: one row per line of ``timings.jsonl``."""
    path = (folder or results_dir()) / "timings.jsonl"
    if not path.exists():
        return pd.DataFrame(columns=list(TIMING_COLUMNS.values()))
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = pd.DataFrame(records).reindex(
        columns=[c for c in TIMING_COLUMNS if c != "load"] + ["load_before", "load_after"]
    )
    table["seconds"] = table["seconds"].map(seconds_text)
    table["cores"] = table["cores"].map(lambda cores: MISSING if pd.isna(cores) else f"{cores:.0f}")
    table["load"] = [
        f"{number_text(before, '.1f')} → {number_text(after, '.1f')}"
        for before, after in zip(table["load_before"], table["load_after"], strict=True)
    ]
    return table[list(TIMING_COLUMNS)].rename(columns=TIMING_COLUMNS).fillna(MISSING)


def bench_table(results: list[dict]) -> pd.DataFrame:
    """One row per ``alvit bench`` result: images per second of the fast path, its MFU on a GPU,
    and how many times the naive pipeline's it is, for training and for scoring."""
    gpu = any(r.get("peak_tflops") for r in results)
    rows = []
    for r in sorted(results, key=lambda r: (r["model"], r["batch"])):
        row = {("", "model"): r["model"], ("", "batch"): f"{r['batch']:,}"}
        for kind, mfu, speedup in (
            ("train", "mfu", "speedup_vs_naive"),
            ("score", "score_mfu", "score_speedup_vs_naive"),
        ):
            row[kind, "img/s"] = number_text(r.get(f"{kind}_img_s"), ",.0f")
            if gpu:
                row[kind, "MFU"] = number_text(r.get(mfu), ".1%")
            row[kind, "× naive"] = MISSING if r.get(speedup) is None else f"{r[speedup]:.1f}x"
        if gpu:
            row["", "peak memory"] = MISSING if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb'] / 1024:.1f} GiB"
        else:
            row["", "threads"] = str(r.get("torch_threads", MISSING))
            row["", "torch"] = r.get("torch", MISSING)
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def _bench_files(folder: Path) -> list[tuple[Path, dict]]:
    return [(path, json.loads(path.read_text())) for path in sorted(folder.glob("bench-*.json"))]


def benches(folder: Path | None = None) -> pd.DataFrame:
    """:func:`bench_table` of the ``bench-*.json`` measured on a CPU (those of a GPU: :func:`gpu`)."""
    return bench_table([r for _, r in _bench_files(folder or results_dir()) if not _on_gpu(r)])


def _on_gpu(result: dict) -> bool:
    return str(result.get("device", "")).startswith("cuda")


def acquisition(folder: Path | None = None) -> pd.DataFrame:
    """Seconds and peak extra memory of every strategy, columns per number of classes."""
    path = (folder or results_dir()) / "acquisition.json"
    if not path.exists():
        return pd.DataFrame()
    rows = pd.DataFrame(json.loads(path.read_text()))
    rows["cell"] = [
        f"{seconds_text(s)} s / {m:,.0f} MiB" for s, m in zip(rows["seconds"], rows["peak_extra_MiB"], strict=True)
    ]
    table = rows.pivot_table(index="strategy", columns="K", values="cell", aggfunc="first", sort=False)
    table.columns = [f"K = {k}" for k in table.columns]
    return table


def calibration(folder: Path | None = None) -> tuple[pd.DataFrame, dict] | None:
    """Post-hoc calibration's seconds in demo runs (with its share of each) and at the paper's round shape."""
    path = (folder or results_dir()) / "calibration.json"
    if not path.exists():
        return None
    measured = json.loads(path.read_text())
    runs = pd.DataFrame(measured["demo_runs"])
    for column in ("run_s", "held_out_predict_s", "fit_and_apply_s", "measures_s"):
        runs[column] = runs[column].map(seconds_text)
    runs["share"] = runs["share"].map(lambda share: f"{share:.2%}")
    runs = runs.rename(
        columns={
            "run_s": "run s",
            "held_out_predict_s": "held-out predictions s",
            "fit_and_apply_s": "three fits, applied and written s",
            "measures_s": "SmoothECE + L2 s",
            "share": "share of the run",
        }
    )
    return runs, {"demo_share": measured["demo_share"], **measured["paper_round"]}


def linear_probe(folder: Path | None = None) -> tuple[dict, pd.DataFrame] | None:
    """A frozen real backbone on real CIFAR-10 (``benchmarks/linear_probe.py``): its headline figures,
    and accuracy and ECE round by round, a row per run and round (``noise_rate``, ``strategy``,
    ``n_labeled``, ``test_acc``, ``ece``)."""
    path = (folder or results_dir()) / "linear_probe.json"
    if not path.exists():
        return None
    measured = json.loads(path.read_text())
    rows = [
        {"noise_rate": run["noise_rate"], "strategy": run["strategy"], "n_labeled": n, "test_acc": acc, "ece": ece}
        for run in measured["runs"].values()
        for n, acc, ece in zip(run["n_labeled"], run["test_acc"], run["ece"], strict=True)
    ]
    return measured, pd.DataFrame(rows)


def linear_probe_table(rounds: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One ``measure`` (``test_acc`` or ``ece``) of :func:`linear_probe`'s rows: a row per label
    count, a column per noise rate and strategy, three decimals."""
    table = rounds.assign(noise=rounds["noise_rate"].map(lambda rate: f"noise {rate:g}")).pivot_table(
        index="n_labeled", columns=["noise", "strategy"], values=measure, aggfunc="first", sort=False
    )
    table.index = [f"{n:,}" for n in table.index]
    table.index.name = "labels"
    return table.map(lambda value: f"{value:.3f}")


@dataclass(frozen=True)
class GpuFigures:
    """What the GPU check measured: its report, the GPU benches of the same provenance record, and
    that record (date, commit, machine, commands)."""

    provenance: list[dict]  # the provenance-*.json records naming these files, oldest first
    check: dict  # the newest gpu_check report
    check_file: str
    benches: list[dict]  # the check's bench results and the GPU bench-*.json its record names, each with "file"

    def bench(self, model: str, batch: int) -> dict | None:
        return next((b for b in self.benches if b["model"] == model and b["batch"] == batch), None)


GPU_REPORTS = ("gpu_check*.json", "gpu_speed*.json")  # files that only a GPU machine writes


def provenance_records(folder: Path) -> list[dict]:
    """Every ``provenance-*.json`` of ``folder``, oldest first (by ``date``, then ``time_utc``).

    Raises ResultsError for a GPU result (a GPU check or speed report, a bench file measured on
    CUDA) that no record names: a figure without its date, commit and machine is not shown."""
    records = sorted(
        (json.loads(path.read_text()) for path in folder.glob("provenance-*.json")),
        key=lambda p: (p["date"], p.get("time_utc", "")),
    )
    named = {name for record in records for name in record["files"]}
    measured = [path for pattern in GPU_REPORTS for path in folder.glob(pattern)]
    measured += [path for path, r in _bench_files(folder) if _on_gpu(r)]
    for path in sorted(measured):
        if path.name not in named:
            raise ResultsError(
                f"{path} was measured on a GPU but no provenance-*.json in {folder} names it; "
                "add one with its date, commit, machine and commands"
            )
    return records


def gpu_benches_named(folder: Path, records: list[dict]) -> list[dict]:
    """The GPU ``bench-*.json`` results that ``records`` name, each with its ``file``."""
    named = {name for record in records for name in record["files"]}
    return [{**r, "file": path.name} for path, r in _bench_files(folder) if _on_gpu(r) and path.name in named]


def gpu(folder: Path | None = None) -> GpuFigures | None:
    """The GPU check's figures under ``benchmarks/results/``, or None where no GPU has run the check.

    Only the files of the provenance record that names the newest check count, so figures taken
    later at another commit (:mod:`alvit.book.speed`) do not mix with its readings. Raises
    ResultsError for a GPU result without provenance (:func:`provenance_records`)."""
    folder = folder or results_dir()
    checks = sorted(folder.glob("gpu_check*.json"))
    if not checks:
        return None
    records = provenance_records(folder)
    newest_path, newest = max(
        ((path, json.loads(path.read_text())) for path in checks), key=lambda item: item[1]["started"]
    )
    mine = [record for record in records if newest_path.name in record["files"]]
    benches = [{**b, "file": newest_path.name} for b in newest["bench"]] + gpu_benches_named(folder, mine)
    return GpuFigures(mine, newest, newest_path.name, benches)


def provenance_text(figures: GpuFigures) -> str:
    """One sentence per provenance record of ``figures`` (a :class:`GpuFigures` or anything with
    ``provenance``): date, commit, machine and files."""
    return " ".join(
        f"Measured on {p['date']} at commit `{p['commit']}` on {p['machine']} "
        f"({', '.join(f'`{name}`' for name in p['files'])})."
        for p in figures.provenance
    )


def target_table(figures: GpuFigures) -> pd.DataFrame:
    """The check's targets: measured value, threshold, met or not (:func:`target_readings` says why)."""
    rows = []
    for target in figures.check["targets"]:
        ratio = "speedup" in target["target"] or "concurrent" in target["target"]
        shown = (lambda v: f"{v:.2f}x") if ratio else (lambda v: f"{v:.1%}")
        rows.append(
            {
                "target": target["target"],
                "measured": MISSING if target["value"] is None else shown(target["value"]),
                "at least": shown(target["at_least"]),
                "met": {True: "met", False: "missed", None: "not measured"}[target["met"]],
            }
        )
    return pd.DataFrame(rows)


def target_readings(figures: GpuFigures) -> list[str]:
    """A sentence per target of the check, in its order, read from the GPU figures.

    Each reading states a pattern only where the figures show it; otherwise it says the figures
    do not explain the result."""
    return [_reading(target, figures) for target in figures.check["targets"]]


def _reading(target: dict, figures: GpuFigures) -> str:
    if target["met"] is None:
        return "Not measured."
    name = target["target"]
    if "training speedup" in name:
        return _speedup_reading(target, figures)
    if "concurrent" in name:
        return _concurrency_reading(target, figures)
    return _mfu_reading(target, figures, "score_mfu" if "scoring" in name else "mfu")


def _by_batch(figures: GpuFigures, model: str, key: str) -> dict[int, float]:
    return {
        b["batch"]: b[key]
        for b in sorted(figures.benches, key=lambda b: b["batch"])
        if b["model"] == model and b.get(key) is not None
    }


def _mfu_reading(target: dict, figures: GpuFigures, key: str) -> str:
    """Training (``key`` "mfu") or scoring ("score_mfu") MFU of vit_b16 against the other models' and batches'."""
    b16 = _by_batch(figures, "vit_b16", key)
    at = ", ".join(f"{v:.1%} at batch {b}" for b, v in sorted(b16.items(), key=lambda item: -item[1]))
    if target["met"]:
        return f"Met: {at}."
    flops = {b["model"]: b["gflops_per_image"] for b in figures.benches}
    others = {model: _by_batch(figures, model, key) for model in sorted(flops) if model != "vit_b16"}
    measured = [by_batch for by_batch in (b16, *others.values()) if by_batch]
    rises_with_batch = all(list(v.values()) == sorted(v.values()) for v in measured)
    # A model with more FLOPs per image that uses the GPU better than vit_b16 does at any batch.
    bigger = next(
        (
            m
            for m in others
            if flops[m] > flops["vit_b16"] and others[m] and max(others[m].values()) > max(b16.values())
        ),
        None,
    )
    if bigger is None or len(b16) < 2 or not rises_with_batch:
        return f"Missed: {at}; these figures do not show why."
    big = (
        f"{bigger}, {flops[bigger] / flops['vit_b16']:.1f}x vit_b16's FLOPs per image, reaches "
        f"{max(others[bigger].values()):.1%} at batch {max(others[bigger], key=others[bigger].get)}"
    )
    low, high = min(b16), max(b16)
    gain = b16[high] - b16[low]
    if key == "mfu":
        smaller = "; ".join(
            f"{m} {' → '.join(f'{v:.1%}' for v in others[m].values())} from batch {min(others[m])} to {max(others[m])}"
            for m in others
            if flops[m] < flops["vit_b16"] and len(others[m]) > 1
        )
        return (
            f"Missed: {at}. MFU rises with the work in each step ({smaller + '; ' if smaller else ''}{big}): "
            "vit_b16's steps are too small to keep the GPU busy, and fixed costs per step weigh most at small batches."
        )
    if gain < 0.1:
        return (
            f"Missed: {at}. {high // low}x the batch adds only {gain * 100:.1f} points, while {big}: a larger "
            "batch barely helps and a larger model does, so what is missing lies in each image's forward pass at "
            "vit_b16's size rather than in per-batch overhead."
        )
    return f"Missed: {at}; these figures do not show why."


def _speedup_reading(target: dict, figures: GpuFigures) -> str:
    other = _by_batch(figures, "vit_b16", "speedup_vs_naive")
    rest = ", ".join(f"{v:.1f}x at batch {b}" for b, v in other.items() if b != 64)
    verdict = "Met" if target["met"] else "Missed"
    return f"{verdict}: {target['value']:.1f}x at batch 64" + (f" ({rest})." if rest else ".")


def _concurrency_reading(target: dict, figures: GpuFigures) -> str:
    rows = next((b["concurrent"] for b in figures.benches if b["model"] == "vit_b32" and b.get("concurrent")), [])
    scaling = {row["processes"]: row for row in rows}
    if target["met"]:
        return f"Met: {target['value']:.2f}x."
    if 2 in scaling and 4 in scaling and scaling[4]["scaling_vs_one"] - scaling[2]["scaling_vs_one"] < 0.1:
        two, four = scaling[2], scaling[4]
        batch = max(b["batch"] for b in figures.benches if b["model"] == "vit_b32")
        one_big = figures.bench("vit_b32", batch)
        tail = ""
        if one_big and one_big["train_img_s"] > four["aggregate_train_img_s"]:
            tail = (
                f" One process at batch {batch} ({one_big['train_img_s']:,.0f} img/s) does more than four "
                "together, so a larger batch fills the GPU where more processes only share it."
            )
        return (
            f"Missed: {four['scaling_vs_one']:.2f}x. Two processes already reach {two['scaling_vs_one']:.2f}x "
            f"({two['aggregate_train_img_s']:,.0f} img/s together) and four add nothing "
            f"({four['aggregate_train_img_s']:,.0f}): the GPU is saturated at two.{tail}"
        )
    return f"Missed: {target['value']:.2f}x; these figures do not show why."


def concurrency_table(figures: GpuFigures) -> pd.DataFrame:
    """Training throughput of 1, 2, 4 processes at once on the GPU, per model measured so."""
    rows = [
        {
            "model": b["model"],
            "batch": b["batch"],
            "processes": row["processes"],
            "img/s together": f"{row['aggregate_train_img_s']:,.0f}",
            "img/s each": ", ".join(f"{v:,.0f}" for v in row["per_process_train_img_s"]),
            "over one process": number_text(row["scaling_vs_one"], ".2f") + "x",
        }
        for b in figures.benches
        for row in b.get("concurrent", [])
    ]
    return pd.DataFrame(rows)


def rounds_table(figures: GpuFigures) -> pd.DataFrame:
    """The check's two real rounds of the paper's recipe: labels, epochs, seconds."""
    rounds = (figures.check.get("rounds") or {}).get("rows", [])
    return pd.DataFrame(
        [
            {
                "round": r["round"],
                "labels": f"{r['n_labeled']:,}",
                "epochs run (best)": f"{r['epochs']} ({r['best_epoch']})",
                "training s": seconds_text(r["train_s"]),
                "selection s": seconds_text(r["select_s"]) if r["n_queried"] else MISSING,  # the last round buys none
            }
            for r in rounds
        ]
    )


def batch_caveat(rows: list[dict], figures: GpuFigures) -> str:
    """For estimate rows priced at a batch other than the profile's: how much the batch moved the
    training throughput of the models measured at two batches, so a reader can judge the row."""
    nearest = [r["model"] for r in rows if "nearest measured" in r["source"]]
    if not nearest:
        return ""
    moves = []
    for model in sorted({b["model"] for b in figures.benches}):
        rates = _by_batch(figures, model, "train_img_s")
        if len(rates) > 1:
            low, high = min(rates), max(rates)
            moves.append(f"{model} trains {1 - rates[low] / rates[high]:.0%} slower at batch {low} than at {high}")
    return (
        f"{', '.join(nearest)} {'was' if len(nearest) == 1 else 'were'} priced at a batch other than the profile's "
        "(the row names it), and throughput depends on the batch" + (f": {'; '.join(moves)}." if moves else ".")
    )


def estimate_table(rows: list[dict], sustained_tflops: float) -> pd.DataFrame:
    """``alvit.sweep.estimate.estimate_gpu_hours`` rows both ways, with a total: hours at the
    assumed rate throughout, and from measured throughput where there is one."""
    table = pd.DataFrame(
        [
            {
                "model": r["model"],
                "runs": f"{r['runs']:,}",
                f"hours at {sustained_tflops:g} TFLOP/s": f"{r['assumed_gpu_hours']:,.1f}",
                "hours, measured where measured": f"{r['gpu_hours']:,.1f}",
                "measured over assumed": f"{r['gpu_hours'] / r['assumed_gpu_hours']:.2f}",
                "source": r["source"],
            }
            for r in rows
        ]
    )
    assumed, chosen = sum(r["assumed_gpu_hours"] for r in rows), sum(r["gpu_hours"] for r in rows)
    total = {
        "model": "total",
        "runs": f"{sum(r['runs'] for r in rows):,}",
        f"hours at {sustained_tflops:g} TFLOP/s": f"{assumed:,.1f}",
        "hours, measured where measured": f"{chosen:,.1f}",
        "measured over assumed": f"{chosen / assumed:.2f}",
        "source": "",
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def styled(table: pd.DataFrame, caption: str, wrap: tuple = (), index: bool = False) -> Styler:
    """``table`` as the page shows it: captioned, without the row numbers unless ``index``, and the
    ``wrap`` columns (long text: commands, sources) wrapping inside a column of at least 14em, so
    the table fits the page's width instead of scrolling."""
    style = table.style.set_caption(caption)
    if not index:
        style = style.hide(axis="index")
    if wrap:
        style = style.set_properties(
            subset=list(wrap), **{"white-space": "normal", "min-width": "14em", "overflow-wrap": "anywhere"}
        )
    return style
