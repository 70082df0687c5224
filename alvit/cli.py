"""``alvit run | list`` (and ``sweep`` once profiles exist): the command line.

Errors a user can cause end with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from alvit.config import ConfigError
from alvit.results import ResultsError


def _cmd_run(args: argparse.Namespace) -> None:
    from alvit.config import load_config
    from alvit.loop import run_experiment

    cfg = load_config(args.config, args.set)
    path = run_experiment(cfg, args.out, progress=not args.quiet)
    print(f"run folder: {path}")


def _cmd_list(args: argparse.Namespace) -> None:
    for name, description in _listing(args.what).items():
        print(f"{name:<22} {description}")


def _listing(what: str) -> dict[str, str]:
    if what == "models":
        from alvit.models import MODEL_DESCRIPTIONS

        return {**MODEL_DESCRIPTIONS, "<any timm name>": "passed to timm.create_model as is"}
    if what == "datasets":
        from alvit.data import DATASETS

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

    listing = commands.add_parser("list", help="list the valid names of one kind")
    listing.add_argument("what", choices=["models", "datasets", "strategies", "noise"])
    listing.set_defaults(handler=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.handler(args)
    except (ConfigError, ResultsError) as err:
        print(f"alvit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alvit: interrupted; finished rounds are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
