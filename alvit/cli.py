"""``alvit run | sweep | status | fetch | simulate | power | book | bench | labels | list``: the command line.

Errors a user can cause end with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import select
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from alvit import __version__, flags, paths
from alvit.catalog import ASSUMED_SUSTAINED_TFLOPS
from alvit.errors import ConfigError, ResultsError, TrainingError
from alvit.leases import DEFAULT_STALE_AFTER_S
from alvit.wording import plural

if TYPE_CHECKING:
    from alvit.profile import Profile  # imported by the commands that need it: `alvit --version` stays quick,


def _cmd_run(args: argparse.Namespace) -> None:
    from alvit.config import check_budget, load_config

    cfg = load_config(args.config, args.set)  # a wrong value is refused before torch is imported (5-6 s)
    check_budget(cfg)
    paths.check_feature_caches([cfg])
    from alvit.loop import run_experiment

    path = run_experiment(cfg, args.out, progress=not args.quiet)
    print(f"run folder: {path}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from alvit.catalog import PAPER_MODELS
    from alvit.profile import load_profile
    from alvit.sweep.run import SweepOptions, run_sweep, summary_line

    profile = _with_output(load_profile(args.profile, args.only), args.output)
    if args.output is None:  # --output is checked with every other path flag, in main
        paths.writable_folder(profile.output, f"the output of profile {args.profile}")
    print(f"profile {profile.name}: {plural(len(profile.configs), 'configuration')} -> {profile.output}")
    if args.estimate or any(cfg.model in PAPER_MODELS for cfg in profile.configs):
        _print_estimate(profile, args.tflops, args.bench)
    if args.estimate:
        return 0
    options = SweepOptions(
        executor=args.executor,
        jobs=args.jobs,
        gpus=args.gpus,
        per_gpu=args.per_gpu,
        timeout_s=args.timeout,
        rerun_stale=args.rerun_stale,
        stale_after_s=args.stale_after,
        slurm=_slurm_overrides(args),
        progress=not args.quiet,
    )
    outcome = run_sweep(profile, options=options, profile_path=args.profile)
    print(summary_line(outcome))
    if outcome["failed"]:
        print(f"failed runs and their errors: {profile.output}/_failed/", file=sys.stderr)
        return 1
    return 0


def _print_estimate(profile: Profile, tflops: float, bench: list[str] | None) -> None:
    """GPU hours per model: from the throughput ``alvit bench`` measured on a GPU (the files in
    ``bench``, else the committed ``benchmarks/results/``), else at ``tflops``."""
    from alvit import throughput
    from alvit.sweep.estimate import estimate_gpu_hours

    measured = throughput.read_files(bench) if bench else throughput.committed()
    rows = estimate_gpu_hours(profile, tflops, measured)
    where = "the files given" if bench else "benchmarks/results/"
    print(
        f"estimated GPU hours, from the throughput alvit bench measured on a GPU ({where}) where it measured "
        f"the model, else at an assumed {tflops:g} TFLOP/s (see alvit.sweep.estimate):"
    )
    for row in rows:
        print(
            f"  {row['model']:<16} {row['runs']:>5} runs  {row['gflops_per_image']:8.1f} GFLOPs/image  "
            f"{_hours(row['gpu_hours'])}  {row['source']}"
        )
        if row["cpu_hours"] is not None:
            print(f"  {'':<16} {'':>5}       heads on a CPU {_hours(row['cpu_hours'])}  {row['cpu_source']}")
    total, assumed = sum(r["gpu_hours"] for r in rows), sum(r["assumed_gpu_hours"] for r in rows)
    print(
        f"  {'total':<16} {sum(r['runs'] for r in rows):>5} runs  {'':>20}  {_hours(total)}  "
        f"({_hours(assumed).strip()} at an assumed {tflops:g} TFLOP/s throughout)"
    )
    cpu = [r["cpu_hours"] for r in rows if r["cpu_hours"] is not None]
    if cpu:
        print(
            f"  linear heads on a CPU, one thread a run: {_hours(sum(cpu)).strip()} (core-hours; "
            f"{sum(cpu) / 2:.1f} h on 2 cores), the heads alone: reading the cache, selection and calibration add to it"
        )


def _with_output(profile: Profile, folder: str | None) -> Profile:
    """The profile with its ``output:`` replaced by ``--output`` / ``--runs`` when given."""
    return profile if folder is None else dataclasses.replace(profile, output=Path(folder))


def _slurm_overrides(args: argparse.Namespace) -> dict:
    """``--slurm-*`` flags given on the command line, as profile ``slurm:`` keys."""
    given = {
        key: getattr(args, f"slurm_{key}")
        for key in ("partition", "account", "gpus_per_task", "cpus_per_task", "mem_gb", "time_min", "array_parallelism")
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    if args.slurm_extra:
        from alvit.config import split_assignment

        example = "--slurm-extra qos=high (an sbatch option without its dashes)"
        overrides["extra"] = dict(split_assignment(item, "--slurm-extra", example) for item in args.slurm_extra)
    return overrides


def _cmd_status(args: argparse.Namespace) -> int:
    from alvit.profile import load_profile
    from alvit.sweep.status import format_status, status_json, sweep_status

    profile = load_profile(args.profile, args.only)
    # A typo in --runs is refused, never counted as "pending"; the profile's own output may not exist yet.
    if args.runs is not None:
        paths.runs_folder(args.runs, profile)
    elif paths.resolve(profile.output).exists():
        paths.existing_folder(profile.output, f"the output of profile {args.profile}")
    profile = _with_output(profile, args.runs)
    rows = sweep_status(profile, args.stale_after)
    print(status_json(profile, rows) if args.json else format_status(profile, rows, every=args.all))
    return 1 if any(row.state == "failed" for row in rows) else 0


def _hours(hours: float) -> str:
    """GPU hours to a tenth, or to a thousandth below one hour (a frozen backbone's sweep takes minutes)."""
    return f"{hours:8.1f} h" if hours >= 1 else f"{hours:8.3f} h"


def _cmd_fetch(args: argparse.Namespace) -> int:
    from alvit.profile import load_profile
    from alvit.sweep.fetch import download, env_lines, is_present, missing, needs

    profile = load_profile(args.profile, args.only)
    if args.features:
        paths.check_feature_caches(profile.configs)
    found = needs(profile.configs)
    if args.check:
        absent = missing(found)
        for line in absent:
            print(line)
        if absent:
            print(
                f"alvit: {len(absent)} of the {len(found)} datasets and weights {args.profile} needs are missing here; "
                f"run alvit fetch {args.profile} on a machine with network",
                file=sys.stderr,
            )
            return 1
        print(f"all {len(found)} datasets and weights {args.profile} needs are here")
        return 0
    for need in found:
        if is_present(need):
            print(f"have  {need.describe()}")
        else:
            print(f"fetch {need.describe()} ...", flush=True)
            download(need)
    if args.features:
        from alvit.features import fill_cache

        linear = [cfg for cfg in profile.configs if cfg.train.mode == "linear"]
        if not linear:
            print(f"no configuration of {args.profile} is in linear mode (train.mode: linear): no features to cache")
        fill_cache(linear)
    print("# a job needs these (the slurm executor sets them):")
    for line in env_lines():
        print(f"export {line}")
    return 0


def _cmd_labels(args: argparse.Namespace) -> None:
    from alvit.data import training_split_labels
    from alvit.label_files import check_template_path, write_template

    out = paths.resolve(args.out)
    check_template_path(out)  # before CIFAR's 50,000 images are read
    labels, classes = training_split_labels(args.dataset)
    write_template(labels, out)
    print(
        f"wrote the true labels of the {len(labels)} training samples of {args.dataset} to {out}, position i "
        "for sample i in the order alvit lists the split; change an entry to the label a person gave, then run "
        f"with --set noise.kind=labels --set noise.rate=0 --set noise.labels={out}"
    )
    if any(name != str(index) for index, name in enumerate(classes)):
        print("classes: " + ", ".join(f"{index} {name}" for index, name in enumerate(classes)))


def _cmd_book(args: argparse.Namespace) -> None:
    from alvit.book.build import build_book

    if args.runs is not None:
        from alvit.profile import load_profile

        paths.runs_folder(args.runs, load_profile(args.profile))
    built = build_book(args.profile, args.runs, tutorial=not args.no_tutorial, html=args.html)
    print(
        f"book: {built['index']} ({built['run_pages']} run pages, {built['html_pages']} HTML pages, {built['seconds']} s)"
    )


def _cmd_simulate(args: argparse.Namespace) -> None:
    from alvit.profile import load_profile
    from alvit.sweep.simulate import simulate_profile

    profile = load_profile(args.profile, args.only)
    out = paths.resolve(args.out)
    outcome = simulate_profile(profile, out, args.test_size, progress=not args.quiet)
    print(
        f"simulated {plural(len(outcome['written']), 'run')} of profile {profile.name} into {out}"
        + (f" ({plural(len(outcome['kept']), 'folder')} already held a run and were kept)" if outcome["kept"] else "")
    )
    print(
        f"preview its book (the checkout's own book stays as it is): "
        f"alvit book {args.profile} --runs {out} --html {out.with_name(out.name + '-html')}"
    )


def _cmd_power(args: argparse.Namespace) -> None:
    from alvit.book.power import profile_power

    report = profile_power(args.profile, args.runs, args.seeds, args.effect, args.sd, args.tables)
    print(report.format())
    if args.json:
        from alvit.results import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(report.to_json(), indent=1))
        print(f"figures: {args.json}")


def _cmd_bench(args: argparse.Namespace) -> None:
    from alvit.bench import MEASURES, format_report, run_bench, write_json

    if args.only == "score" and (args.deterministic or args.concurrent):
        flag = "--deterministic" if args.deterministic else "--concurrent"
        raise ConfigError(f"{flag} times training, which --only score leaves out; drop one of the two")
    result = run_bench(
        args.model,
        args.device,
        args.batch,
        args.eval_batch,
        args.compile,
        args.seconds,
        naive=not args.no_naive,
        naive_workers=args.naive_workers,
        concurrent=args.concurrent,
        deterministic=args.deterministic,
        measure=(args.only,) if args.only else MEASURES,
        graphs="auto" if args.graphs is None else args.graphs,
        fuse_preprocess=not args.eager_preprocess,
        autotune=args.autotune,
        profile=args.profile,
        hold=args.hold,
    )
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
        print(f"figures: {args.json}")


def _cmd_list(args: argparse.Namespace) -> None:
    for name, description in _listing(args.what).items():
        print(f"{name:<22} {description}")


def _listing(what: str) -> dict[str, str]:
    if what == "models":
        from alvit.catalog import MODEL_DESCRIPTIONS

        return {**MODEL_DESCRIPTIONS, "<any timm name>": "passed to timm.create_model as is"}
    if what == "datasets":
        from alvit.catalog import DATASETS

        return DATASETS
    if what == "strategies":
        from alvit.strategies import STRATEGIES

        return {name: cls.description for name, cls in STRATEGIES.items()}
    from alvit.catalog import NOISE_KINDS

    return NOISE_KINDS


def _list_kind(what: str) -> str:
    """``alvit list model`` lists the models too: each kind by its singular as by its plural."""
    return {"model": "models", "dataset": "datasets", "strategy": "strategies"}.get(what, what)


# Every flag naming a path a command writes, by command: a folder it must be able to make or
# write into, or a file. Checked before any work starts, so a typo is one sentence, not a traceback
# after minutes of training or rendering. Folders a command reads (--runs) are checked by the
# command, which knows where its runs usually are.
OUTPUT_FOLDERS = {
    ("run", "out"): "the run's files",
    ("sweep", "output"): "the run folders",
    ("simulate", "out"): "the run folders",
    ("book", "html"): "the book's HTML",
}
OUTPUT_FILES = {("power", "json"), ("bench", "json"), ("labels", "out")}


def _check_outputs(args: argparse.Namespace) -> None:
    for (command, flag), holding in OUTPUT_FOLDERS.items():
        if args.command == command and getattr(args, flag) is not None:
            paths.writable_folder(getattr(args, flag), f"--{flag}", holding)
    for command, flag in OUTPUT_FILES:
        if args.command == command and getattr(args, flag) is not None:
            paths.writable_file(getattr(args, flag), f"--{flag}")


class _Parser(argparse.ArgumentParser):
    """argparse, its errors worded as every other user error: one line, exit status 2, no usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"alvit: error: {message}; see {self.prog} --help\n")


def _add_only(parser: argparse.ArgumentParser) -> None:
    """``--only KEY=V1,V2``: the same filter for every command that reads a profile."""
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="keep configurations with these values, e.g. --only model=vit_b16 (repeatable; one key twice: either value)",
    )


def _add_stale_after(parser: argparse.ArgumentParser, meaning: str) -> None:
    """``--stale-after SECONDS``: when a claim's heartbeat counts as abandoned (``meaning`` says what follows)."""
    parser.add_argument(
        "--stale-after",
        type=flags.seconds,
        default=DEFAULT_STALE_AFTER_S,
        metavar="SECONDS",
        help=f"{meaning} (default %(default)g)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alvit", description="Active learning with vision transformers under label noise.")
    parser.add_argument("--version", action="version", version=f"alvit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or resume) one active-learning experiment")
    run.add_argument(
        "config",
        nargs="?",
        default=None,
        help="YAML file, e.g. configs/demo.yaml (default: alvit's defaults, then --set)",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set noise.rate=0.5 (repeatable)",
    )
    run.add_argument("--out", default=None, help="run folder (default: results/<run-id>)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(handler=_cmd_run)

    sweep = commands.add_parser(
        "sweep", help="run every configuration of a profile (on this machine or a SLURM cluster)"
    )
    sweep.add_argument("profile", help="e.g. configs/profiles/demo.yaml")
    sweep.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="local: worker processes here (default); slurm: one array task per configuration",
    )
    sweep.add_argument(
        "--output", default=None, metavar="DIR", help="folder of the run folders (default: the profile's output)"
    )
    sweep.add_argument(
        "--jobs", type=flags.processes, default=None, help="local: runs at once (default 1, or one per GPU slot)"
    )
    sweep.add_argument(
        "--gpus", type=flags.gpu_ids, default=(), metavar="0,1,...", help="local: GPUs to spread the workers over"
    )
    sweep.add_argument(
        "--per-gpu", type=flags.processes, default=1, metavar="M", help="local: runs at once on each GPU (default 1)"
    )
    sweep.add_argument(
        "--timeout",
        type=flags.seconds,
        default=None,
        metavar="SECONDS",
        help="per run: local kills a run past it and records it as failed; slurm: the job's time limit",
    )
    sweep.add_argument(
        "--rerun-stale",
        action="store_true",
        help="rerun runs whose folder holds another configuration, moving the old folder to _stale/",
    )
    _add_stale_after(sweep, "take over a claim whose heartbeat is older than this")
    _add_only(sweep)
    slurm = sweep.add_argument_group("slurm executor (over the profile's slurm: section)")
    slurm.add_argument("--slurm-partition", default=None)
    slurm.add_argument("--slurm-account", default=None)
    slurm.add_argument("--slurm-gpus-per-task", type=flags.whole_number(0, 64), default=None, metavar="N")
    slurm.add_argument("--slurm-cpus-per-task", type=flags.whole_number(1, 4096), default=None, metavar="N")
    slurm.add_argument("--slurm-mem-gb", type=flags.positive_number(1e6, "1000000"), default=None, metavar="GB")
    slurm.add_argument(
        "--slurm-time-min",
        type=flags.whole_number(1, 525600),
        default=None,
        metavar="MIN",
        help="time limit per run (default 60; at most a year)",
    )
    slurm.add_argument(
        "--slurm-array-parallelism",
        type=flags.whole_number(1, 100000),
        default=None,
        metavar="N",
        help="runs at once (default 256)",
    )
    slurm.add_argument(
        "--slurm-extra",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="any other sbatch option, e.g. --slurm-extra qos=high (repeatable)",
    )
    sweep.add_argument("--estimate", action="store_true", help="print the GPU-hour estimate and stop")
    sweep.add_argument(
        "--tflops",
        type=flags.positive_number(1e6, "1000000"),
        default=ASSUMED_SUSTAINED_TFLOPS,
        help="sustained TFLOP/s the estimate assumes for models alvit bench has not measured on a GPU",
    )
    sweep.add_argument(
        "--bench",
        nargs="+",
        default=None,
        metavar="FILE",
        help="the estimate's measured throughput: alvit bench --json files or gpu_check reports "
        "(default: those in benchmarks/results/)",
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_cmd_sweep)

    status = commands.add_parser(
        "status",
        help="what a profile's sweep has done: done / running / failed / damaged / pending / stale / "
        "simulated (exit 1 when a run failed)",
    )
    status.add_argument("profile", help="e.g. configs/profiles/demo.yaml")
    _add_only(status)
    status.add_argument(
        "--runs", default=None, metavar="DIR", help="folder of run folders (default: the profile's output)"
    )
    status.add_argument("--all", action="store_true", help="list every run, not only those worth a look")
    status.add_argument("--json", action="store_true", help="print the counts and every run's state as JSON")
    _add_stale_after(status, "a claim whose heartbeat is older counts as abandoned")
    status.set_defaults(handler=_cmd_status)

    fetch = commands.add_parser(
        "fetch", help="download the datasets and weights a profile needs (for offline compute nodes)"
    )
    fetch.add_argument("profile", help="e.g. configs/profiles/paper.yaml")
    _add_only(fetch)
    fetch.add_argument(
        "--check", action="store_true", help="download nothing; list what is missing here (exit 1 if any)"
    )
    fetch.add_argument(
        "--features",
        action="store_true",
        help="also compute and cache the frozen backbones' features of linear-mode configurations (run on a GPU node)",
    )
    fetch.set_defaults(handler=_cmd_fetch)

    book = commands.add_parser(
        "book", help="render run pages, the summary, the run index and the tutorials, then build the book"
    )
    book.add_argument("profile", help="the profile whose runs the summary shows")
    book.add_argument(
        "--runs", default=None, help="folder of run folders (default: the profile's output), e.g. from alvit simulate"
    )
    book.add_argument(
        "--html",
        default=None,
        metavar="DIR",
        help="put the HTML here and leave the checkout's build as it is (default: _build/html, replaced on success)",
    )
    book.add_argument("--no-tutorial", action="store_true", help="do not execute the tutorials")
    book.set_defaults(handler=_cmd_book)

    labels = commands.add_parser(
        "labels",
        help="write a dataset's true training labels in alvit's order: a template for a file of human labels",
    )
    labels.add_argument("dataset", help="e.g. digits, cifar10 or imagefolder:<root> (the whole training split)")
    labels.add_argument(
        "--out", required=True, metavar="FILE.npy", help="the file to write (never replaced if it exists)"
    )
    labels.set_defaults(handler=_cmd_labels)

    simulate = commands.add_parser(
        "simulate", help="write simulated run folders for a profile (a preview of its book, no training)"
    )
    simulate.add_argument("profile", help="e.g. configs/profiles/paper.yaml")
    simulate.add_argument("--out", required=True, help="folder for the run folders (a real run already there is kept)")
    simulate.add_argument(
        "--test-size",
        type=flags.whole_number(1, 10**9),
        default=None,
        help="test samples per run, at most the dataset's (default: the dataset's)",
    )
    _add_only(simulate)
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.set_defaults(handler=_cmd_simulate)

    power = commands.add_parser("power", help="how often each verdict is right for a profile's grid, by simulation")
    power.add_argument("profile", help="e.g. configs/profiles/paper.yaml")
    power.add_argument(
        "--seeds",
        type=flags.seed_counts,
        default=(3, 5, 10),
        metavar="3,5,10",
        help="numbers of seeds to report (default 3,5,10)",
    )
    power.add_argument(
        "--effect",
        type=flags.positive_number(100.0, "100"),
        default=2.0,
        metavar="A",
        help="the true claims' effect in pooled seed-to-seed standard deviations (default 2)",
    )
    power.add_argument(
        "--sd",
        type=flags.seed_spreads,
        default=None,
        metavar="S",
        help="seed-to-seed standard deviation: one for every noise rate (e.g. 0.02) or RATE:SD for each rate "
        "(e.g. 0:0.005,0.2:0.03,0.5:0.06,0.8:0.1); default: the runs', per setting and rate, else 0.02",
    )
    power.add_argument(
        "--tables",
        type=flags.whole_number(flags.MIN_TABLES, 10**7),
        default=200,
        metavar="N",
        help=f"simulated tables per estimate (default 200; {flags.MIN_TABLES} at least)",
    )
    power.add_argument(
        "--runs", default=None, help="folder of run folders whose spread to use (default: the profile's output)"
    )
    power.add_argument("--json", default=None, metavar="FILE", help="write every figure to this JSON file")
    power.set_defaults(handler=_cmd_power)

    bench = commands.add_parser(
        "bench", help="steady-state training and scoring throughput and MFU, next to a naive pipeline"
    )
    bench.add_argument("model", help="e.g. vit_b16 (random-init weights, synthetic 32 px images)")
    bench.add_argument("--device", type=flags.device, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    bench.add_argument(
        "--batch", type=flags.batch_size, default=64, help="images per training step and per scoring batch (default 64)"
    )
    bench.add_argument(
        "--eval-batch", type=flags.batch_size, default=None, help="images per scoring batch (default: --batch)"
    )
    bench.add_argument(
        "--compile", choices=["auto", "true", "false"], default="auto", help="as train.compile (default auto)"
    )
    bench.add_argument(
        "--seconds", type=flags.seconds, default=5.0, help="length of each timed measurement (default 5)"
    )
    bench.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    bench.add_argument(
        "--naive-workers",
        type=flags.whole_number(0, flags.MAX_PROCESSES),
        default=None,
        help="DataLoader workers of the naive pipeline (default: cores, at most 8)",
    )
    bench.add_argument(
        "--deterministic",
        action="store_true",
        help="also time training with train.deterministic, and as it ran before issue 28 (fresh memory filled with NaN)",
    )
    bench.add_argument("--only", choices=["train", "score"], default=None, help="time only training or only scoring")
    bench.add_argument(
        "--graphs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="replay the compiled graphs as CUDA graphs, or not (default: as train.cuda_graphs auto, on where compiled on CUDA)",
    )
    bench.add_argument(
        "--eager-preprocess",
        action="store_true",
        help="resize and normalise before the compiled graph, as before issue 28, not inside it",
    )
    bench.add_argument(
        "--autotune", action="store_true", help="compile with max-autotune (minutes: Triton matmuls benchmarked)"
    )
    bench.add_argument(
        "--profile", action="store_true", help="after timing, each work's kernels by kind, beside its wall time"
    )
    bench.add_argument(
        "--hold",
        default=None,
        metavar="DIR",
        help="after warm-up write DIR/ready and wait for DIR/go before timing (for alvit.gpuspeed)",
    )
    bench.add_argument(
        "--concurrent",
        type=flags.process_counts,
        default=(),
        metavar="1,2,4",
        help="also train in that many processes at once on the device",
    )
    bench.add_argument("--json", default=None, metavar="FILE", help="write every figure to this JSON file")
    bench.set_defaults(handler=_cmd_bench)

    listing = commands.add_parser("list", help="list the valid names of one kind")
    listing.add_argument("what", type=_list_kind, choices=["models", "datasets", "strategies", "noise"])
    listing.set_defaults(handler=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per notebook cell otherwise
    try:
        _check_outputs(args)
        status = args.handler(args)
        sys.stdout.flush()  # a reader gone (| head) is found here, where it can still be told apart
    except (ConfigError, ResultsError, TrainingError) as err:
        print(f"alvit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alvit: interrupted; finished rounds are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _reader_gone(sys.stdout):
            raise  # a pipe of alvit's own (a sweep's worker) broke: that is a bug to see, not a reader's choice
        return _end_quietly()
    return status or 0


def _reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reader has closed it (``alvit status --json | head -c 3000``)."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # no file behind the stream: it cannot be a closed pipe
        return False
    if not hasattr(select, "poll"):  # Windows: stdout's own flush above is the likeliest writer
        return True
    poller = select.poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _end_quietly() -> int:
    """Stop writing to a pipe nobody reads, as ``cat`` or ``grep`` does when ``head`` has had enough.

    Python's recipe (the signal module's note on SIGPIPE): point stdout at /dev/null so that the
    flush at exit writes nowhere instead of printing another BrokenPipeError. The exit status is
    141, 128 + SIGPIPE, what the shell reports for those tools: the output was cut, and a script
    under ``set -o pipefail`` can tell a cut listing from a whole one.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


if __name__ == "__main__":
    sys.exit(main())
