"""``alvit run | sweep | book | bench | list``: the command line.

Errors a user can cause end with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from alvit.errors import ConfigError, ResultsError, TrainingError


def _cmd_run(args: argparse.Namespace) -> None:
    from alvit.config import load_config
    from alvit.loop import run_experiment

    cfg = load_config(args.config, args.set)
    path = run_experiment(cfg, args.out, progress=not args.quiet)
    print(f"run folder: {path}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from alvit.catalog import PAPER_MODELS
    from alvit.sweep import estimate_gpu_hours, load_profile, run_sweep

    profile = load_profile(args.profile, args.only)
    print(f"profile {profile.name}: {len(profile.configs)} configurations -> {profile.output}")
    if args.estimate or any(cfg.model in PAPER_MODELS for cfg in profile.configs):
        rows = estimate_gpu_hours(profile, args.tflops)
        print(f"estimated GPU hours at {args.tflops:g} sustained TFLOP/s (an assumption; see alvit.sweep.estimate_gpu_hours):")
        for row in rows:
            print(f"  {row['model']:<16} {row['runs']:>5} runs  {row['gflops_per_image']:8.1f} GFLOPs/image  {row['gpu_hours']:8.1f} h")
        print(f"  {'total':<16} {sum(r['runs'] for r in rows):>5} runs  {'':>20}  {sum(r['gpu_hours'] for r in rows):8.1f} h")
    if args.estimate:
        return 0
    outcome = run_sweep(profile, jobs=args.jobs, progress=not args.quiet)
    print(f"done {len(outcome['done'])} / skipped {len(outcome['skipped'])} / failed {len(outcome['failed'])}")
    if outcome["failed"]:
        print(f"failed runs and their errors: {profile.output}/_failed/", file=sys.stderr)
        return 1
    return 0


def _cmd_book(args: argparse.Namespace) -> None:
    from alvit.book import build_book
    from alvit.sweep import load_profile

    index = build_book(load_profile(args.profile), tutorial=not args.no_tutorial)
    print(f"book: {index}")


def _cmd_bench(args: argparse.Namespace) -> None:
    concurrent = _process_counts(args.concurrent) if args.concurrent else ()
    from alvit.bench import format_report, run_bench, write_json

    result = run_bench(args.model, args.device, args.batch, args.eval_batch, args.compile, args.seconds,
                       naive=not args.no_naive, naive_workers=args.naive_workers, concurrent=concurrent,
                       deterministic=args.deterministic)
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
        print(f"figures: {args.json}")


def _process_counts(text: str) -> tuple[int, ...]:
    """``--concurrent 1,2,4`` -> ``(1, 2, 4)``, checked before torch is imported."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = (0,)
    if not counts or min(counts) < 1:
        raise ConfigError(f"--concurrent {text!r} must list process counts of 1 or more, e.g. 1,2,4")
    return counts


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
    from alvit.noise import NOISE_KINDS

    return NOISE_KINDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alvit", description="Active learning with vision transformers under label noise.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or resume) one active-learning experiment")
    run.add_argument("config", help="YAML file, e.g. configs/demo.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set noise.rate=0.5 (repeatable)")
    run.add_argument("--out", default=None, help="run folder (default: results/<run-id>)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(handler=_cmd_run)

    sweep = commands.add_parser("sweep", help="run the experiment notebook for every configuration of a profile")
    sweep.add_argument("profile", help="e.g. configs/profiles/demo.yaml")
    sweep.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    sweep.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                       help="keep configurations with these values, e.g. --only model=vit_b16 (repeatable)")
    sweep.add_argument("--estimate", action="store_true", help="print the GPU-hour estimate and stop")
    sweep.add_argument("--tflops", type=float, default=200.0, help="sustained TFLOP/s assumed by the estimate")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_cmd_sweep)

    book = commands.add_parser("book", help="execute the summary and tutorial notebooks, then build the book")
    book.add_argument("profile", help="the profile whose runs the summary shows")
    book.add_argument("--no-tutorial", action="store_true", help="do not execute the tutorial")
    book.set_defaults(handler=_cmd_book)

    bench = commands.add_parser("bench", help="steady-state training and scoring throughput and MFU, next to a naive pipeline")
    bench.add_argument("model", help="e.g. vit_b16 (random-init weights, synthetic 32 px images)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    bench.add_argument("--batch", type=int, default=64, help="images per training step and per scoring batch (default 64)")
    bench.add_argument("--eval-batch", type=int, default=None, help="images per scoring batch (default: --batch)")
    bench.add_argument("--compile", choices=["auto", "true", "false"], default="auto", help="as train.compile (default auto)")
    bench.add_argument("--seconds", type=float, default=5.0, help="length of each timed measurement (default 5)")
    bench.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    bench.add_argument("--naive-workers", type=int, default=None, help="DataLoader workers of the naive pipeline (default: cores, at most 8)")
    bench.add_argument("--deterministic", action="store_true", help="also time training with train.deterministic")
    bench.add_argument("--concurrent", default="", metavar="1,2,4", help="also train in that many processes at once on the device")
    bench.add_argument("--json", default=None, metavar="FILE", help="write every figure to this JSON file")
    bench.set_defaults(handler=_cmd_bench)

    listing = commands.add_parser("list", help="list the valid names of one kind")
    listing.add_argument("what", choices=["models", "datasets", "strategies", "noise"])
    listing.set_defaults(handler=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per notebook cell otherwise
    try:
        status = args.handler(args)
    except (ConfigError, ResultsError, TrainingError) as err:
        print(f"alvit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alvit: interrupted; finished rounds are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
