"""Types for the command line's numeric and list flags: each value is checked where it is parsed.

Each function takes the flag's text and returns its value, or raises
:class:`argparse.ArgumentTypeError` with what the flag takes, so ``alvit sweep --timeout -5``
stops with one sentence and exit status 2 before anything runs. Upper bounds are there because
a huge value breaks something later (a timer's wait overflows past about 300 years; a billion
worker processes or images per batch exhaust the machine), not to second-guess a choice.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

YEAR_S = 365 * 24 * 3600.0  # longest timeout or heartbeat age accepted
MAX_PROCESSES = 1024  # workers, runs per GPU, processes at once
MAX_BATCH = 65536  # images per batch
SEED_COUNTS = (2, 30)  # alvit power: a spread needs 2 seeds; past 30 a grid's power no longer changes its advice
MIN_TABLES = 20  # alvit power: fewer simulated tables give shares too coarse to read


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """A type for a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text!r}")
        return value

    return parse


def positive_number(high: float, limit: str) -> Callable[[str], float]:
    """A type for a number above 0 and at most ``high``, which ``limit`` names (NaN and infinity are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= high:  # False for NaN too
            raise argparse.ArgumentTypeError(f"must be a number above 0 and at most {limit}, not {text!r}")
        return value

    return parse


seconds = positive_number(YEAR_S, "31536000 (a year)")
processes = whole_number(1, MAX_PROCESSES)
batch_size = whole_number(1, MAX_BATCH)


def gpu_ids(text: str) -> tuple[str, ...]:
    """``--gpus 0,1``: distinct device ids, each one of the CUDA devices of this machine."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(f"must list distinct GPU ids such as 0,1, not {text!r}")
    present = gpu_count()
    missing = [part for part in parts if int(part) >= present]
    if missing:
        have = (
            f"GPUs 0 to {present - 1}"
            if present
            else "no CUDA GPU (nvidia-smi finds none); leave --gpus out to run on the CPU"
        )
        raise argparse.ArgumentTypeError(f"GPU {missing[0]} is not on this machine, which has {have}")
    return tuple(parts)


def device(text: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N, a CUDA device being one of this machine's."""
    kind, _, index = text.partition(":")
    if text not in ("auto", "cpu", "cuda") and not (kind == "cuda" and index.isdigit()):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, not {text!r}")
    if kind == "cuda":
        present = gpu_count()
        if not present:
            raise argparse.ArgumentTypeError(
                f"{text} asks for a CUDA GPU, and this machine has none (nvidia-smi finds none); use auto or cpu"
            )
        if index and int(index) >= present:
            raise argparse.ArgumentTypeError(f"{text} is not on this machine, which has cuda:0 to cuda:{present - 1}")
    return text


def gpu_count() -> int:
    """CUDA devices on this machine, without importing torch: ``nvidia-smi -L``, else the driver's
    ``/proc/driver/nvidia/gpus/`` (containers without the tool), else 0."""
    tool = shutil.which("nvidia-smi")
    if tool is not None:
        try:
            listing = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            listing = None
        if listing is not None and listing.returncode == 0:
            return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
    driver = Path("/proc/driver/nvidia/gpus")
    return len(list(driver.iterdir())) if driver.is_dir() else 0


def whole_numbers(low: int, high: int, example: str) -> Callable[[str], tuple[int, ...]]:
    """A type for a comma-separated list of whole numbers from ``low`` to ``high`` (``example`` shows one)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            values = ()
        if not values or not all(low <= value <= high for value in values):
            raise argparse.ArgumentTypeError(
                f"must list whole numbers from {low} to {high}, e.g. {example}, not {text!r}"
            )
        return values

    return parse


process_counts = whole_numbers(1, MAX_PROCESSES, "1,2,4")  # --concurrent 1,2,4
seed_counts = whole_numbers(*SEED_COUNTS, "3,5,10")  # alvit power --seeds


def seed_spreads(text: str) -> float | dict[float, float]:
    """``alvit power --sd``: one seed-to-seed sd for every noise rate (``0.02``), or one per rate as
    ``RATE:SD`` pairs (``0:0.005,0.5:0.05``); each sd above 0 and at most 1, each rate from 0 up to 1,
    none twice. Whether the rates are the profile's is checked against the profile."""
    usage = f"must be one sd above 0 and at most 1 (e.g. 0.02) or RATE:SD pairs (e.g. 0:0.005,0.5:0.05), not {text!r}"

    def number(part: str) -> float:
        try:
            return float(part)
        except ValueError:
            return math.nan

    if ":" not in text:
        value = number(text)
        if not 0 < value <= 1:  # False for NaN too
            raise argparse.ArgumentTypeError(usage)
        return value
    pairs = [part.split(":") for part in text.split(",")]
    if not all(len(pair) == 2 for pair in pairs):
        raise argparse.ArgumentTypeError(usage)
    spreads = [(number(rate), number(sd)) for rate, sd in pairs]
    rates = [round(rate, 6) for rate, _ in spreads]
    if not all(0 <= rate < 1 and 0 < sd <= 1 for rate, sd in spreads) or len(set(rates)) != len(rates):
        raise argparse.ArgumentTypeError(usage + " (each rate from 0 up to 1, once)")
    return dict(zip(rates, (sd for _, sd in spreads)))


__all__ = [
    "batch_size",
    "device",
    "gpu_count",
    "gpu_ids",
    "positive_number",
    "process_counts",
    "processes",
    "seconds",
    "seed_counts",
    "seed_spreads",
    "whole_number",
    "whole_numbers",
]
