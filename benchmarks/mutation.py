"""Mutation testing of the science modules with mutmut 3: a plausible wrong line must fail a test.

For each module of :data:`MODULES`, mutmut makes every small change it knows to the module's
code (or to the functions named), one at a time (a "mutant"), and runs the tests that reach
the changed function. A mutant is killed when a test fails. A survivor is either a gap in the
tests, or a change that no program could observe (an "equivalent" mutant); the equivalent ones
are listed with a reason in ``benchmarks/mutation-equivalents.yaml``. The score is
killed / (mutants - equivalent), and the target is 90% in every module.

    python benchmarks/mutation.py                         # every module (make mutation)
    python benchmarks/mutation.py --module noise          # one module (make mutation MODULES=noise)

Each module runs in a fresh copy of the checkout (mutmut keeps its state in ``mutants/`` of
the folder it runs in), with one test process (``--max-children 1``) and one thread. The
results go into ``benchmarks/results/mutation.json``: per module the counts, the score, the
wall time, and every survivor's diff; a module run alone replaces only its own entry. The book's
page ``book/mutation.md`` is written from that file (:mod:`alvit.book.mutation`).
Adding a module is one entry of :data:`MODULES`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's alvit renders the page, whichever one is installed
RESULTS = REPO / "benchmarks" / "results" / "mutation.json"
PAGE = REPO / "book" / "mutation.md"
EQUIVALENTS = REPO / "benchmarks" / "mutation-equivalents.yaml"
TARGET = 0.9
CLASS_SEPARATOR = "ǁ"  # mutmut's: a method's mutants are named alvit.module.xǁClassǁmethod__mutmut_N


@dataclass(frozen=True)
class Module:
    """What one entry mutates, and the tests it runs against.

    ``tests``: pytest arguments selecting the tests (files, node ids, ``-k``, ``--deselect``);
    mutmut runs, of these, only those that call the mutated function. ``functions``: names
    (``fn``, ``Class.method``, ``Class.*``, shell patterns allowed) of the functions to mutate;
    empty mutates every function of the file.
    """

    file: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return self.file.removesuffix(".py").replace("/", ".")

    def mutant_patterns(self) -> list[str]:
        """mutmut's mutant-name patterns for :attr:`functions` (one pattern for the whole file)."""
        if not self.functions:
            return [f"{self.dotted}.*__mutmut_*"]
        patterns = []
        for name in self.functions:
            owner, _, method = name.rpartition(".")
            mangled = f"x{CLASS_SEPARATOR}{owner}{CLASS_SEPARATOR}{method}" if owner else f"x_{name}"
            patterns.append(f"{self.dotted}.{mangled}__mutmut_*")
        return patterns


MODULES: dict[str, Module] = {
    "noise": Module("alvit/noise.py", ("tests/test_noise.py", "tests/test_label_files_reference.py")),
    "label_files": Module(
        "alvit/label_files.py",
        (
            "tests/test_label_files.py",
            "tests/test_label_files_reference.py",
            # a whole training run; the loop's tests cover it, the file's reading is tested above
            "--deselect",
            "tests/test_label_files.py::test_the_oracle_answers_the_files_label_for_every_pool_sample_and_the_run_records_its_rate",
        ),
    ),
    "metrics": Module("alvit/metrics.py", ("tests/test_metrics.py",)),
    "calibration": Module(
        "alvit/calibration.py",
        (
            "tests/test_calibration.py",
            # netcal's fit takes 9 s a run; the scipy fits written in the tests check the same temperatures
            "--deselect",
            "tests/test_calibration.py::test_the_plain_fit_finds_netcals_temperature",
        ),
    ),
    "strategies": Module("alvit/strategies.py", ("tests/test_strategies.py", "-k", "not runs_in_the_loop")),
    "seeds": Module("alvit/seeds.py", ("tests/test_seeds.py",)),
    "train": Module(
        "alvit/train.py",
        ("tests/test_train_schedule.py",),
        functions=("split_for_early_stopping", "lr_factor", "epoch_order", "EarlyStopping.*"),
    ),
    "features": Module(
        "alvit/features.py",
        (
            "tests/test_features.py",
            "tests/test_features_reference.py",
            # whole sweeps (48 s and 78 s a run); the reading and writing of an entry is tested on its own
            "-k",
            "not every_run_of_a_sweep and not two_concurrent_sweeps",
        ),
        # the key and its checks: what names an entry, what key.json holds, and every check of a read
        functions=(
            "FeatureKey.*",
            "sha256_of_tensors",
            "backbone_digest",
            "feature_key",
            "entry_folder",
            "expected_shapes",
            "array_sha256",
            "read_entry",
            "_open_in_entry",
            "read_array",
            "all_finite",
            "write_entry",
        ),
    ),
    "results": Module(
        "alvit/results.py",
        (
            "tests/test_results.py",
            "tests/test_sweep.py::test_is_finished_compares_the_result_deciding_keys_only",
            "tests/test_sweep.py::test_a_run_differing_only_in_device_or_eval_batch_is_finished",
        ),
        # the reading of rounds.csv: whole rows, a cut last line, too many rounds, finished or not
        functions=(
            "_fields",
            "RunFolder.inspect_rounds",
            "RunFolder._whole_lines",
            "RunFolder._checked_table",
            "RunFolder.read_rounds",
            "RunFolder.set_damage_aside",
            "RunFolder.is_finished",
        ),
    ),
    # the weights and the words of a statement are reached from the claims (4 s a run) as well as directly
    "book_stats": Module("alvit/book/stats.py", ("tests/test_stats.py", "tests/test_claims.py")),
    "book_claims": Module(
        "alvit/book/claims.py",
        ("tests/test_claims_reference.py", "tests/test_claims.py"),
        # what computes a verdict; the sentences that describe missing runs and the tables that show verdicts are left out
        functions=(
            "Cube.*",
            "band",
            "_contrast",
            "_statement",
            "tests_claim_*",
            "tests_study_a",
            "judge_settings",
            "_setting_outcome",
            "check_claim",
        ),
    ),
    "book_summary": Module(
        "alvit/book/summary.py",
        # tests/test_question_b.py and tests/test_held_out_sizes.py reach some of these functions too, but their
        # imports (the simulator, the loop, claims, power) cost seconds a mutant; the reference tests reach them all
        ("tests/test_summary.py", "tests/test_summary_reference.py"),
    ),
    "book_power": Module(
        "alvit/book/power.py",
        (
            "tests/test_power_reference.py",
            "tests/test_power.py",
            # the command line's tests read a profile's runs (13 s of setup a run); the functions below are tested directly
            "-k",
            "not alvit_power and not power_says",
            # Monte Carlo simulations of verdicts (10 s in all, for every mutant they reach): the hand-worked spreads,
            # means and draws of tests/test_power_reference.py kill every mutant these killed
            "--deselect",
            "tests/test_power.py::test_power_with_spreads_that_rise_with_noise_matches_a_reference_simulation",
            "--deselect",
            "tests/test_power.py::test_a_true_claim_is_rarely_called_false_and_a_false_one_rarely_true",
            "--deselect",
            "tests/test_power.py::test_the_least_favourable_false_claim_is_confirmed_at_about_the_level",
            "--deselect",
            "tests/test_power.py::test_claim_3_power_at_one_sd_for_every_rate_is_the_noncentral_t_formula",
            "--deselect",
            "tests/test_power.py::test_claim_5_power_falls_with_the_seed_sd_because_its_margin_is_fixed",
            "--deselect",
            "tests/test_power.py::test_power_grows_with_seeds_and_the_report_names_the_fewest_for_80_percent",
        ),
        # the spreads, the seed term and the cell means a power simulation draws from; the report's words are left out
        functions=(
            "rate_spreads",
            "seed_term",
            "seed_effect",
            "claim_effects",
            "least_favourable",
            "simulated_cube",
            "monte_carlo_se",
        ),
    ),
}


def mutmut_config(module: Module, top_level: list[str]) -> str:
    """The ``[tool.mutmut]`` table for one module's run."""
    settings = {
        "source_paths": ["alvit"],
        "only_mutate": [module.file],
        "also_copy": [name for name in top_level if name != "alvit"],
        "pytest_add_cli_args_test_selection": list(module.tests),
        # one process, the same Hypothesis examples every run, no cache written into the copy
        "pytest_add_cli_args": ["-p", "no:xdist", "-p", "no:cacheprovider", "--hypothesis-seed=0"],
        "process_isolation": "forkserver",  # torch is not fork-safe once its threads started
        "use_git_change_detection": False,
    }
    lines = ["", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def copy_checkout(destination: Path) -> list[str]:
    """Copy the files git knows of (tracked, or new and not ignored) to ``destination``; return its top-level names."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = [name for name in listing.split("\0") if name and (REPO / name).is_file()]
    for name in names:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return sorted({name.split("/", 1)[0] for name in names})


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def function_of(mutant: str) -> str:
    """``alvit.noise.x_make_oracle__mutmut_3`` -> ``make_oracle``; a method -> ``Class.method``."""
    mangled = mutant.rpartition("__mutmut_")[0].rpartition(".")[2]
    if mangled.startswith(f"x{CLASS_SEPARATOR}"):
        _, owner, method = mangled.split(CLASS_SEPARATOR)
        return f"{owner}.{method}"
    return mangled.removeprefix("x_")


def change_of(diff: str) -> str:
    """The lines a mutant removes (``-``) and adds (``+``), stripped: the same text while the code
    around it moves, unlike mutmut's numbered names."""
    lines = diff.splitlines()[2:]  # past the ---/+++ header
    return "\n".join(f"{line[0]} {line[1:].strip()}" for line in lines if line[:1] in "-+")


def equivalents_of(name: str) -> list[dict]:
    """The listed equivalent mutants of module ``name``: ``function``, ``change``, ``reason``."""
    listed = (yaml.safe_load(EQUIVALENTS.read_text()) or {}) if EQUIVALENTS.exists() else {}
    entries = listed.get(name) or []
    for entry in entries:
        if not {"function", "change", "reason"} <= set(entry) or not str(entry["reason"]).strip():
            raise SystemExit(f"{EQUIVALENTS.name}: an entry of {name} lacks its function, change or reason: {entry}")
        entry["change"] = entry["change"].strip()
    return entries


def run_module(name: str, module: Module, keep: bool) -> dict:
    """Run mutmut over one module in a fresh copy of the checkout; return its entry of the JSON."""
    work = Path(tempfile.mkdtemp(prefix=f"alvit-mutation-{name}-"))
    try:
        top_level = copy_checkout(work)
        with (work / "pyproject.toml").open("a") as handle:
            handle.write(mutmut_config(module, top_level))
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
        env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        mutmut = Path(sys.executable).with_name("mutmut")
        start = time.perf_counter()
        result = subprocess.run(
            [str(mutmut), "run", "--max-children", "1", *module.mutant_patterns()],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        log = result.stdout + result.stderr
        (work / "mutmut.log").write_text(log)
        if result.returncode != 0:
            tail = "\n".join(log.replace("\r", "\n").splitlines()[-30:])
            raise SystemExit(f"mutmut stopped on {name} (exit {result.returncode}; the work folder is {work}):\n{tail}")
        return summarise(name, module, work, seconds)
    finally:
        if keep:
            print(f"{name}: mutmut's work folder is {work} (mutmut results / show / browse there)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def summarise(name: str, module: Module, work: Path, seconds: float) -> dict:
    """Counts, score and survivors of one module's finished run in ``work``."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / f"{module.file}.meta").read_text())
    patterns = module.mutant_patterns()
    statuses = {
        mutant: status_by_exit_code[code]
        for mutant, code in meta["exit_code_by_key"].items()
        if any(fnmatch.fnmatchcase(mutant, pattern) for pattern in patterns)
    }
    equivalents = equivalents_of(name)
    counts = dict.fromkeys(("killed", "survived", "timed_out", "no_tests", "other", "equivalent"), 0)
    survivors, matched = [], set()
    with working_directory(work):
        for mutant, status in sorted(statuses.items(), key=lambda item: _natural(item[0])):
            if status == "killed":
                counts["killed"] += 1
                continue
            function = function_of(mutant)
            change = change_of(get_diff_for_mutant(mutant, path=module.file))
            listed = next(
                (
                    i
                    for i, entry in enumerate(equivalents)
                    if (entry["function"], entry["change"]) == (function, change)
                ),
                None,
            )
            if status == "survived" and listed is not None:
                counts["equivalent"] += 1
                matched.add(listed)
                continue
            key = {"survived": "survived", "timeout": "timed_out", "no tests": "no_tests"}.get(status, "other")
            counts[key] += 1
            survivors.append({"mutant": mutant, "status": status, "function": function, "change": change})
    mutants = len(statuses)
    scored = mutants - counts["equivalent"]
    return {
        "file": module.file,
        "functions": list(module.functions) or "all",
        "tests": list(module.tests),
        "mutants": mutants,
        **counts,
        "score": round(counts["killed"] / scored, 4) if scored else None,
        "seconds": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "commit": _commit(),
        "survivors": survivors,
        "equivalents": [equivalents[i] for i in sorted(matched)],
        "stale_equivalents": [
            {"function": entry["function"], "change": entry["change"]}
            for i, entry in enumerate(equivalents)
            if i not in matched
        ],
    }


def _natural(mutant: str) -> tuple[str, int]:
    stem, _, number = mutant.rpartition("__mutmut_")
    return stem, int(number)


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "alvit", "tests"], capture_output=True, text=True, cwd=REPO)
    return (result.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")


def report(name: str, entry: dict) -> str:
    score = "n/a" if entry["score"] is None else f"{entry['score']:.1%}"
    line = (
        f"{name:12} {entry['mutants']:5} mutants  {entry['killed']:5} killed  {entry['survived']:4} survived  "
        f"{entry['timed_out']:3} timed out  {entry['equivalent']:4} equivalent  score {score:>6}  {entry['seconds']:7.1f} s"
    )
    for survivor in entry["survivors"]:
        line += f"\n    {survivor['status']}: {survivor['mutant']}\n" + _indent(survivor["change"], "        ")
    for stale in entry["stale_equivalents"]:
        line += f"\n    listed as equivalent but no survivor matches ({stale['function']}):\n" + _indent(
            stale["change"], "        "
        )
    return line


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--module",
        action="append",
        choices=sorted(MODULES),
        metavar="NAME",
        help=f"a module to run (repeatable; default: all of {', '.join(MODULES)})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON file to write (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep each module's work folder for mutmut show/browse")
    args = parser.parse_args(argv)
    chosen = args.module or list(MODULES)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    modules = results.get("modules", {})
    for name in chosen:
        modules[name] = run_module(name, MODULES[name], args.keep)
        print(report(name, modules[name]), flush=True)
        results = write(modules, args.out)  # after each module, so a stopped run keeps what it measured
    below = [name for name in chosen if (modules[name]["score"] or 0.0) < TARGET]
    print(f"total {results['total_seconds']:.1f} s over {len(results['modules'])} modules -> {args.out}")
    if below:
        print(f"below the target of {TARGET:.0%}: {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


def write(modules: dict[str, dict], out: Path) -> dict:
    """Write the results of ``modules`` (in :data:`MODULES`' order) to ``out``, and the book's page from
    them when ``out`` is the committed results file; return what was written."""
    ordered = {name: modules[name] for name in [*MODULES, *sorted(set(modules) - set(MODULES))] if name in modules}
    results = {
        "tool": f"mutmut {_mutmut_version()}",
        "target": TARGET,
        "max_children": 1,
        "cores": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "total_seconds": round(sum(entry["seconds"] for entry in ordered.values()), 1),
        "modules": ordered,
        "not_measured": [name for name in MODULES if name not in ordered],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    if out.resolve() == RESULTS:
        from alvit.book.mutation import page

        PAGE.write_text(page(results))
    return results


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


if __name__ == "__main__":
    sys.exit(main())
