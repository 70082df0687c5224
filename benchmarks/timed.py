"""Run a command, time it, and keep the figure: one JSON line in ``benchmarks/results/timings.jsonl``.

The book's "Performance and cost" page reads this file, so a wall time in the book is always a
measurement with its command, commit, date and the machine's load beside it, never a typed
number. The command's own output passes through.

    python benchmarks/timed.py "make test" -- make test
    python benchmarks/timed.py "alvit power, paper profile" -- .venv/bin/alvit power configs/profiles/paper.yaml
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parent)
    return result.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="what is timed, as the book's table names it")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "timings.jsonl", help="the JSON-lines file to append to (before NAME)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    status = subprocess.call(command)
    seconds = time.perf_counter() - start
    record = {
        "name": args.name,
        "command": " ".join(command),
        "seconds": round(seconds, 1),
        "exit_status": status,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "commit": _commit(),
        "cores": os.cpu_count(),
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "machine": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(f"timed: {args.name}: {seconds:.1f} s (exit {status}) -> {args.out}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
