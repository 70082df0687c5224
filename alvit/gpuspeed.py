"""The GPU speed check of issue 28: one command, on a machine with one CUDA GPU, within its budget.

    python -m alvit.gpuspeed OUT            # OUT/gpu_speed.json, OUT/gpu_speed.log, a table last on stdout
    python -m alvit.gpuspeed OUT --small    # the same on a CPU with tiny models: checks this module anywhere
    python -m alvit.gpuspeed OUT --only swinv2_t-64,probe   # some jobs only, in their order

Compilation is what costs (a minute or more per model and batch, cold), so every bench starts at
once, each ``alvit bench --hold`` in its own process, and holds once warmed up. Then, in
priority order, each is timed alone on the device: the processes still compiling are stopped
(SIGSTOP) for the length of the timing and continued after it, so no other work touches the
device or the CPU's launch thread while a figure is taken. A job that is not warm when its turn
comes is waited for, up to its warm-up limit; a job that no longer fits in the budget is skipped;
a failed job is recorded with the tail of its log, and the check goes on.

The report carries provenance (date, git commit: ``ALVIT_COMMIT`` when set, since a copy of the
repository without ``.git`` cannot say; else ``git rev-parse``), the machine (GPU, torch, timm,
CUDA, cuDNN), each job's command, status, warm-up and turn seconds and figures (the bench's own
JSON, settings included), the probe of :mod:`alvit.gpuprobe`, and each target of issue 28 as
met, missed or not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alvit import flags, paths
from alvit.errors import one_line

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 380.0  # the whole check, so that it ends within 400 s and a 15-minute lease has room for a rerun
SMALL_BUDGET_S = 900.0
WARM_LIMIT_S = 240.0  # a job not warm this long after its start is stopped, so the rest still fit
TURN_LIMIT_S = 60.0  # a bench's timing and profile, or the probe (about 15 s each expected)
TESTS_TURN_LIMIT_S = 150.0  # what is left of the GPU tests when their turn comes
SMALL_TURN_LIMIT_S = 300.0
TURN_RESERVE_S = 20.0  # a turn needs at least this much budget left to start
CONCURRENT = 9  # jobs compiling at once (each: a Python process and its Inductor compile workers)
POLL_S = 0.2
LOG_TAIL_LINES = 25
NOTABLE = re.compile(r"cudagraph|error|warn|recompil|graph break|out of memory", re.IGNORECASE)
NOTABLE_LINES = 30


@dataclass(frozen=True)
class Job:
    """One process of the check. ``bench`` jobs hold after warm-up (``--hold``) and write their
    figures to JSON; ``probe`` and ``pytest`` jobs run to their end at their turn."""

    name: str
    argv: tuple[str, ...]  # after the interpreter, e.g. ("-m", "alvit.cli", "bench", "vit_b16", ...)
    kind: str  # "bench", "probe" or "pytest"
    early: bool = True  # started with the others, to compile while they do; else at its turn
    exclusive: bool = True  # alone on the device during its turn (jobs not yet warm are stopped)
    threads: int = 2  # Inductor compile workers of the process (TORCHINDUCTOR_COMPILE_THREADS)
    turn_limit_s: float = TURN_LIMIT_S
    nice: int = 0  # above 0: compiles on what CPU the others leave (it and its compile workers)

    def command(self, work: Path) -> list[str]:
        """The full command line; a bench writes ``work/NAME.json`` and holds on ``work/NAME.hold``."""
        extra = ("--json", str(self.figures(work)), "--hold", str(self.hold(work))) if self.kind == "bench" else ()
        if self.kind == "probe":
            extra = ("--json", str(self.figures(work)))
        return [sys.executable, *self.argv, *extra]

    def figures(self, work: Path) -> Path:
        return work / f"{self.name}.json"

    def hold(self, work: Path) -> Path:
        return work / f"{self.name}.hold"


def bench_job(
    name: str, model: str, batch: int, *flags: str, seconds: float, device: str, threads: int = 2, nice: int = 0
) -> Job:
    """``alvit bench MODEL --batch BATCH FLAGS`` without the naive pipeline, with a kernel profile."""
    argv = ("-m", "alvit.cli", "bench", model, "--device", device, "--batch", str(batch))
    argv = (*argv, "--seconds", f"{seconds:g}", "--no-naive", "--profile", *flags)
    return Job(name, argv, "bench", threads=threads, nice=nice)


def tests_job() -> Job:
    """``pytest -m gpu tests/test_gpu.py``: beside the benches (it compiles while they do), never
    alone; only its own file, since others import packages a GPU image may lack."""
    argv = ("-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py")
    return Job("pytest-gpu", argv, "pytest", exclusive=False, turn_limit_s=TESTS_TURN_LIMIT_S)


def full_jobs(seconds: float = 3.0) -> list[Job]:
    """Issue 28's measurements on one CUDA GPU, most important first."""

    def bench(name: str, model: str, batch: int, *flags: str, threads: int = 2, nice: int = 0) -> Job:
        # Each job on the path c65f33b measured it on: CUDA graphs only where asked for (they
        # have been the default on CUDA since), so a rerun repeats the recorded figures' path.
        graphs = () if "--graphs" in flags else ("--no-graphs",)
        return bench_job(
            name, model, batch, *flags, *graphs, seconds=seconds, device="cuda", threads=threads, nice=nice
        )

    score_1024 = ("--only", "score", "--eval-batch", "1024")
    before = "--eager-preprocess"
    return [
        # (a) never measured: the first check ran out of time before them. SwinV2 compiles longest.
        # On the path the first check measured the others on, which compiled there: these figures
        # must not hang on this issue's changes.
        bench("swinv2_t-64", "swinv2_t", 64, before, threads=8),
        bench("swinv2_t-256", "swinv2_t", 256, before, threads=8),
        bench("vit_l32-64", "vit_l32", 64, before),
        bench("vit_l32-256", "vit_l32", 256, before),
        # (b) scoring at 1,024: CUDA graphs and preprocessing in the graph, and as before
        bench("vit_b16-score1024-graphs", "vit_b16", 64, *score_1024, "--graphs"),
        bench("vit_b16-score1024-before", "vit_b16", 64, *score_1024, before),
        # (c) the overhead-bound small batch: CUDA graphs, and as before
        bench("vit_b32-64-graphs", "vit_b32", 64, "--only", "train", "--graphs"),
        bench("vit_b32-64-before", "vit_b32", 64, "--only", "train", before),
        # (d) train.deterministic: what it changes (no compilation), then its cost after and before the
        # fix, on the first check's path (where it cost 37.7%), so that only the fix differs
        Job("probe", ("-m", "alvit.gpuprobe", "--device", "cuda"), "probe", early=False),
        bench("vit_b16-64-deterministic", "vit_b16", 64, "--only", "train", "--deterministic", before),
        # (e) vit_b16 training at 256 with this issue's default changes
        bench("vit_b16-256-train", "vit_b16", 256, "--only", "train"),
        # correctness of the new paths on CUDA (compiled while the benches compile)
        tests_job(),
        # if time is left (compiled on the CPU the others leave): CUDA graphs at other batches,
        # and max-autotune (minutes of compilation; its choices benchmarked beside other work)
        bench("vit_b16-score256-graphs", "vit_b16", 256, "--only", "score", "--graphs", nice=10),
        bench("vit_b16-64-graphs", "vit_b16", 64, "--only", "train", "--graphs", nice=10),
        bench("vit_b16-score1024-autotune", "vit_b16", 64, *score_1024, "--autotune", threads=4, nice=10),
        bench("vit_b16-256-autotune", "vit_b16", 256, "--only", "train", "--autotune", threads=4, nice=10),
    ]


def small_jobs(seconds: float = 0.3) -> list[Job]:
    """The same kinds of job on a CPU with tiny models: every path of this module, in minutes."""

    def bench(name: str, model: str, batch: int, *flags: str) -> Job:
        job = bench_job(name, model, batch, *flags, "--naive-workers", "0", seconds=seconds, device="cpu")
        return dataclasses.replace(job, turn_limit_s=SMALL_TURN_LIMIT_S)  # a shared CPU can be slow

    return [
        bench("vit_nano_p4-16", "vit_nano_p4", 16),
        bench("vit_micro_p2-score32-graphs", "vit_micro_p2", 16, "--only", "score", "--eval-batch", "32", "--graphs"),
        Job(
            "probe", ("-m", "alvit.gpuprobe", "--device", "cpu"), "probe", early=False, turn_limit_s=SMALL_TURN_LIMIT_S
        ),
        bench("vit_nano_p4-16-deterministic", "vit_nano_p4", 16, "--only", "train", "--deterministic"),
        tests_job(),
    ]


@dataclass
class _Process:
    job: Job
    process: subprocess.Popen
    started: float  # seconds since the check began
    ready_at: float | None = None  # when a bench was first seen holding, warm


@dataclass
class Scheduler:
    """Starts, holds, times (one at a time, in order) and stops the jobs of one check."""

    work: Path
    budget_s: float
    say: Callable[[str], None] = print  # one line of progress
    began: float = field(default_factory=time.monotonic)
    warm_limit_s: float = WARM_LIMIT_S
    turn_reserve_s: float = TURN_RESERVE_S
    concurrent: int = CONCURRENT
    running: dict[str, _Process] = field(default_factory=dict)
    ended: dict[str, _Process] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)  # one per job whose turn is over, in order

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def run(self, jobs: list[Job]) -> list[dict]:
        """Every job's record, in order (kept in ``records`` as they come, so an interruption
        loses none); whatever still runs at the end, or on an error, is killed."""
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        try:
            for job in jobs:
                self._start_early(jobs)
                self.records.append(self._turn(job, jobs))
        finally:
            for name in list(self.running):
                self._kill(name)
        return self.records

    def _turn(self, job: Job, jobs: list[Job]) -> dict:
        """Wait until ``job`` is warm (a bench) or start it (the probe), then let it run alone to its end."""
        if job.name not in self.running and job.name not in self.ended:
            if self.left() < self.turn_reserve_s:
                return self._record(job, "skipped", reason="the budget was spent before it could start")
            self._start(job)
        waited = self._wait_until_warm(job, jobs)
        if waited is None and self.left() < self.turn_reserve_s:
            waited = ("skipped", "the budget was spent before its turn")
        if waited is not None:
            self._kill(job.name)
            return self._record(job, *waited)
        turn_began = self.elapsed()
        paused = self._pause_others(job) if job.exclusive else []
        try:
            if job.kind == "bench":
                entry = self.running[job.name]
                self.say(f"gpu_speed: {job.name}: warm {entry.ready_at - entry.started:.0f} s after its start; timing")
                (job.hold(self.work) / "go").touch()
            rc = self._wait_for_exit(job, min(job.turn_limit_s, self.left()))
        finally:
            for name in paused:
                self._signal(name, signal.SIGCONT)
        turn_s = self.elapsed() - turn_began
        if rc is None:
            self._kill(job.name)
            return self._record(job, "timeout", reason=f"its turn ran past {turn_s:.0f} s", turn_s=turn_s)
        self.ended[job.name] = self.running.pop(job.name)
        return self._record(job, "ok" if rc == 0 else "failed", rc=rc, turn_s=turn_s)

    def _wait_until_warm(self, job: Job, jobs: list[Job]) -> tuple[str, str] | None:
        """None once ``job`` may take its turn; else its status and why not. Early jobs keep
        starting meanwhile, as places among the compiling ones free up."""
        entry = self.running.get(job.name)
        if entry is None:
            return "failed", "it ended before its turn"
        if job.kind != "bench":
            return None  # it runs to its end during its turn
        deadline = min(entry.started + self.warm_limit_s, self.budget_s - self.turn_reserve_s)
        while not self._ready(entry):
            if entry.process.poll() is not None:
                return "failed", f"it exited with {entry.process.returncode} before it was warm"
            if self.elapsed() >= deadline:
                return (
                    "warm-up timeout",
                    f"not compiled and warm {self.elapsed() - entry.started:.0f} s after its start",
                )
            self._start_early(jobs)
            time.sleep(POLL_S)
        return None

    def _wait_for_exit(self, job: Job, limit: float) -> int | None:
        try:
            return self.running[job.name].process.wait(timeout=max(limit, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def _record(
        self, job: Job, status: str, reason: str | None = None, rc: int | None = None, turn_s: float | None = None
    ) -> dict:
        entry = self.ended.get(job.name)
        record = {"name": job.name, "kind": job.kind, "command": job.command(self.work)[1:], "status": status, "rc": rc}
        if reason:
            record["reason"] = reason
        if entry is not None:
            record["started_s"] = round(entry.started, 1)
            record["warm_s"] = None if entry.ready_at is None else round(entry.ready_at - entry.started, 1)
        record["turn_s"] = None if turn_s is None else round(turn_s, 1)
        self.say(f"gpu_speed: {job.name}: {status}" + (f" ({reason})" if reason else ""))
        return record

    def _start_early(self, jobs: list[Job]) -> None:
        """Start early jobs in order while fewer than ``concurrent`` are compiling (not yet warm)."""
        for job in jobs:
            if self._compiling() >= self.concurrent or self.left() < self.turn_reserve_s:
                return
            if job.early and job.name not in self.running and job.name not in self.ended:
                self._start(job)

    def _compiling(self) -> int:
        return sum(1 for entry in self.running.values() if entry.process.poll() is None and not self._ready(entry))

    def _ready(self, entry: _Process) -> bool:
        """Whether a bench holds, warm (noted the first time it is seen)."""
        if entry.ready_at is None and entry.job.kind == "bench" and (entry.job.hold(self.work) / "ready").exists():
            entry.ready_at = self.elapsed()
        return entry.ready_at is not None

    def _start(self, job: Job) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TORCHINDUCTOR_COMPILE_THREADS": str(job.threads),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        with open(self.work / "logs" / f"{job.name}.log", "w") as log:
            # A process group of its own (in this session, so the end of the session still
            # reaps it): the job and its compile workers are stopped, continued and killed together.
            process = subprocess.Popen(
                job.command(self.work),
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=(lambda: os.nice(job.nice)) if job.nice else None,  # this driver has no threads
            )
        self.running[job.name] = _Process(job, process, self.elapsed())
        self.say(f"gpu_speed: {job.name}: started")

    def _pause_others(self, job: Job) -> list[str]:
        """Stop every other job still compiling or running; those holding warm are idle already."""
        paused = [
            name
            for name, entry in self.running.items()
            if name != job.name and entry.process.poll() is None and not self._ready(entry)
        ]
        for name in paused:
            self._signal(name, signal.SIGSTOP)
        return paused

    def _signal(self, name: str, sig: signal.Signals) -> None:
        entry = self.running.get(name)
        if entry is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry.process.pid, sig)

    def _kill(self, name: str) -> None:
        entry = self.running.pop(name, None)
        if entry is None:
            return
        self._ready(entry)
        self.ended[name] = entry
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(entry.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            entry.process.wait(timeout=30)


def collect(records: list[dict], work: Path) -> list[dict]:
    """Each record with the job's figures (a bench's or the probe's JSON) and, unless it went
    well, the tail of its log; every record with the log's notable lines (CUDA graphs refused,
    recompilations, warnings, errors)."""
    for record in records:
        figures = work / f"{record['name']}.json"
        if figures.exists():
            record["figures"] = json.loads(figures.read_text())
        log = work / "logs" / f"{record['name']}.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        if record["status"] != "ok":
            record["log_tail"] = lines[-LOG_TAIL_LINES:]
        record["log_notable"] = list(dict.fromkeys(line for line in lines if NOTABLE.search(line)))[:NOTABLE_LINES]
        if record["kind"] == "pytest":
            record["summary"] = next(
                (line for line in reversed(lines) if " in " in line and "=" not in line), None
            ) or (lines[-1] if lines else None)
    return records


def targets(records: list[dict]) -> list[dict]:
    """Issue 28's targets, each with its best measured value and the job that gave it (null: not measured)."""
    benches = [r["figures"] for r in records if r["kind"] == "bench" and "figures" in r]
    by_name = {r["name"]: r["figures"] for r in records if r["kind"] == "bench" and "figures" in r}

    def best(key: str, model: str, batch: int | None = None) -> tuple[float | None, str | None]:
        found = [
            (figures[key], name)
            for name, figures in by_name.items()
            if figures["model"] == model
            and (batch is None or figures["batch"] == batch)
            and figures.get(key) is not None
        ]
        return max(found, default=(None, None))

    determinism = [
        (f["deterministic_cost"], name)
        for name, f in by_name.items()
        if f["model"] == "vit_b16" and f["batch"] == 64 and f.get("deterministic_cost") is not None
    ]
    first_seen = [
        f"{f['model']}-{f['batch']}"
        for f in benches
        if f["model"] in ("swinv2_t", "vit_l32") and f["batch"] in (64, 256) and f.get("train_img_s") is not None
    ]
    rows = [
        ("vit_b16 scoring MFU (best eval batch and path)", *best("score_mfu", "vit_b16"), "at_least", 0.50),
        ("vit_b32 training MFU at batch 64 (best path)", *best("mfu", "vit_b32", 64), "at_least", 0.20),
        ("vit_b16 training MFU (best batch and path)", *best("mfu", "vit_b16"), "at_least", 0.40),
        ("cost of train.deterministic (vit_b16, batch 64)", *min(determinism, default=(None, None)), "at_most", 0.20),
        (
            "swinv2_t and vit_l32 measured at batch 64 and 256 (of 4)",
            len(set(first_seen)) if benches else None,
            None,
            "at_least",
            4,
        ),
    ]
    out = []
    for name, value, job, bound, threshold in rows:
        met = None if value is None else (value >= threshold if bound == "at_least" else value <= threshold)
        out.append({"target": name, "value": value, "job": job, bound: threshold, "met": met})
    return out


def provenance() -> dict:
    """When, and from which commit: ``ALVIT_COMMIT`` if set (a copy without ``.git``), else git."""
    commit, source, dirty = os.environ.get("ALVIT_COMMIT"), "ALVIT_COMMIT", None
    if not commit:
        source = "git"
        commit, dirty = paths.git_state(REPO)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit or "unknown",
        "commit_from": source if commit else None,
        "dirty": dirty,
    }


def machine() -> dict:
    """The GPU check's machine record, plus cuDNN, the driver and Inductor's cache folder (or why not)."""
    import torch

    from alvit.gpucheck import machine as base

    try:
        record = base()
    except Exception as err:  # a device that cannot even be named; the figures are still reported
        return {"error": one_line(err)}
    record["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    record["inductor_cache"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or "default (/tmp/torchinductor_<user>)"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        record["nvidia_driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    return record


def format_table(report: dict) -> str:
    """The short table printed last: each job's status and headline figures, then the targets."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        f"gpu_speed: {sum(r['status'] == 'ok' for r in report['jobs'])}/{len(report['jobs'])} jobs ok "
        f"in {report['seconds']:.0f} s (budget {report['budget_s']:.0f} s)",
        f"{'job':<28} {'status':<15} {'path':<24} {'batch':>5} {'eval':>5} {'train img/s':>11} {'MFU':>6} "
        f"{'score img/s':>11} {'MFU':>6} {'det cost':>8} {'warm s':>6}",
    ]
    for record in report["jobs"]:
        f = record.get("figures") if record["kind"] == "bench" else None
        f = f or {}
        lines.append(
            f"{record['name']:<28} {record['status']:<15} {f.get('fast_path', record['kind']):<24} "
            f"{num(f.get('batch'), 'd'):>5} {num(f.get('eval_batch'), 'd'):>5} {num(f.get('train_img_s'), ',.0f'):>11} {num(f.get('mfu'), '.1%'):>6} "
            f"{num(f.get('score_img_s'), ',.0f'):>11} {num(f.get('score_mfu'), '.1%'):>6} "
            f"{num(f.get('deterministic_cost'), '.1%'):>8} {num(record.get('warm_s'), '.0f'):>6}"
        )
    for target in report["targets"]:
        bound = "at least" if "at_least" in target else "at most"
        threshold = target.get("at_least", target.get("at_most"))
        verdict = {True: "met", False: "missed", None: "not measured"}[target["met"]]
        value = "-" if target["value"] is None else f"{target['value']:.3g}"
        lines.append(f"  {target['target']}: {value} ({bound} {threshold:g}): {verdict} [{target['job'] or '-'}]")
    return "\n".join(lines)


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """SIGTERM (a time limit around this check) ends it like an exception: jobs are stopped and
    the report of what finished is still written."""

    def stop(signum, frame):  # noqa: ARG001 (a signal handler's signature)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alvit.gpuspeed", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for gpu_speed.json and gpu_speed.log")
    parser.add_argument("--small", action="store_true", help="CPU, tiny models: check this module anywhere")
    parser.add_argument("--budget", type=flags.seconds, default=None, help=f"seconds in all (default {BUDGET_S:g})")
    parser.add_argument(
        "--seconds", type=flags.seconds, default=None, help="each timed measurement (default 3; 0.3 small)"
    )
    parser.add_argument("--only", default=None, help="comma-separated job names to run, in their order")
    args = parser.parse_args(argv)
    small = args.small or os.environ.get("ALVIT_SPEED_SMALL") == "1"
    budget = args.budget
    if budget is None:
        try:
            budget = flags.seconds(os.environ.get("ALVIT_SPEED_BUDGET_S", str(SMALL_BUDGET_S if small else BUDGET_S)))
        except argparse.ArgumentTypeError as err:
            parser.error(f"ALVIT_SPEED_BUDGET_S {err}")
    jobs = small_jobs(args.seconds or 0.3) if small else full_jobs(args.seconds or 3.0)
    if args.only:
        wanted = args.only.split(",")
        unknown = [name for name in wanted if name not in {job.name for job in jobs}]
        if unknown:
            parser.error(f"--only: no job {unknown[0]!r}; valid names are {', '.join(job.name for job in jobs)}")
        jobs = [job for job in jobs if job.name in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "gpu_speed.log"
    with open(log_path, "w") as log, tempfile.TemporaryDirectory(prefix="alvit-gpu-speed-") as tmp:
        work = Path(tmp)

        def say(line: str) -> None:
            stamped = f"[{time.monotonic() - began:6.1f} s] {line}"
            print(stamped, flush=True)
            log.write(stamped + "\n")
            log.flush()

        began = time.monotonic()
        scheduler = Scheduler(work, budget, say=say, began=began, warm_limit_s=budget if small else WARM_LIMIT_S)
        stopped = None
        try:
            with _terminated_as_exit():
                scheduler.run(jobs)
        except (Exception, SystemExit, KeyboardInterrupt) as err:  # what finished is still reported
            stopped = f"terminated (exit {err.code})" if isinstance(err, SystemExit) else one_line(err)
            say(f"gpu_speed: stopped early: {stopped}")
        report = {
            "check": "alvit.gpuspeed (issue 28)",
            "provenance": provenance(),
            "seconds": time.monotonic() - began,
            "budget_s": budget,
            "stopped_early": stopped,
            "settings": {
                "small": small,
                "warm_limit_s": scheduler.warm_limit_s,
                "turn_limits_s": {job.name: job.turn_limit_s for job in jobs},
                "concurrent": scheduler.concurrent,
                "jobs": [job.name for job in jobs],
            },
            "machine": machine(),
            "jobs": collect(scheduler.records, work),
            "targets": targets(scheduler.records),
        }
        (args.out / "gpu_speed.json").write_text(json.dumps(report, indent=2) + "\n")
        for record in report["jobs"]:
            log.write(f"\n--- {record['name']} ({record['status']}): notable lines of its log\n")
            log.writelines(line + "\n" for line in record["log_notable"] + record.get("log_tail", []))
        table = format_table(report)
        log.write("\n" + table + "\n")
        print(table)
    return 0 if stopped is None else 1


if __name__ == "__main__":
    sys.exit(main())
