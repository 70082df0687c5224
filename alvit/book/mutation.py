"""The book's "Mutation testing" page, written from ``benchmarks/results/mutation.json``.

``benchmarks/mutation.py`` (``make mutation``) runs mutmut over the science modules and writes
the JSON, then this page from it (``book/mutation.md``); a test checks that the committed page is
the one the committed JSON gives, so every figure on it was measured, never typed.
"""

from __future__ import annotations

# The score first and what was mutated last: a wide function list must not push the score out of view.
COLUMNS = ("module", "score", "mutants", "killed", "timed out", "survived", "equivalent", "minutes", "mutated")
INTRO = """\
# Mutation testing

A test suite guards the study's numbers only if a wrong line in the code that makes them fails a
test. [mutmut](https://github.com/boxed/mutmut) checks that mechanically: it changes the code of a
module one small edit at a time (a *mutant*: `<` for `<=`, `+ 1` for `- 1`, a constant, an argument
left out, a string garbled) and runs the tests that reach the changed function against each
mutant. A mutant is *killed* when a test fails. One that survives is either a gap in the tests or
a change no caller can observe (an *equivalent* mutant, such as a `dtype` argument that numpy's
own promotion makes redundant); each equivalent mutant is listed below with the reason it cannot be
killed, in `benchmarks/mutation-equivalents.yaml`. The score is killed / (mutants - equivalent);
the target is {target:.0%} in every module.

```bash
make mutation                   # every module below, one process; writes benchmarks/results/mutation.json and this page
make mutation MODULES=noise     # one module (or MODULES="noise metrics")
```
"""


def table(results: dict) -> list[dict[str, str]]:
    """One row per module: what is mutated, the counts, the score and the wall time, as the page shows them."""
    rows = []
    for name, entry in results["modules"].items():
        functions = entry["functions"]
        mutated = f"`{entry['file']}`" + ("" if functions == "all" else ": " + ", ".join(f"`{f}`" for f in functions))
        score = entry["score"]
        rows.append(
            {
                "module": name,
                "mutated": mutated,
                "mutants": str(entry["mutants"]),
                "killed": str(entry["killed"]),
                "timed out": str(entry["timed_out"]),
                "survived": str(entry["survived"] + entry["no_tests"] + entry["other"]),
                "equivalent": str(entry["equivalent"]),
                "score": "n/a" if score is None else f"{score:.1%}",
                "minutes": f"{entry['seconds'] / 60:.1f}",
            }
        )
    return rows


def _markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[column] for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _diff_block(change: str) -> list[str]:
    return ["  ```diff", *(f"  {line}" for line in change.splitlines()), "  ```"]


def _below_and_unmeasured(results: dict) -> list[str]:
    """Sentences naming the modules under the target and those configured in ``make mutation`` but not yet measured."""
    below = [name for name, entry in results["modules"].items() if (entry["score"] or 0.0) < results["target"]]
    unmeasured = results.get("not_measured", [])
    lines = []
    if below:
        lines += [
            f"Below the target of {results['target']:.0%}: {', '.join(below)} (their survivors are listed below).",
            "",
        ]
    if unmeasured:
        lines += [f"Configured but not measured yet: {', '.join(unmeasured)}.", ""]
    return lines


def page(results: dict) -> str:
    """The page's MyST markdown: the table of every module, how it was measured, and every listed
    equivalent mutant and unexplained survivor with its diff."""
    modules = results["modules"]
    dates = sorted({entry["date"] for entry in modules.values()})
    commits = sorted({entry["commit"] for entry in modules.values()})
    parts = [
        INTRO.format(target=results["target"]),
        "## Scores",
        "",
        _markdown_table(table(results)),
        "",
        f"Measured with {results['tool']} and {results['max_children']} test process on {results['machine']}, "
        f"{results['cores']} cores shared with other work, on {' to '.join(dict.fromkeys([dates[0], dates[-1]]))} "
        f"(commit {', '.join(commits)}). The modules together took {results['total_seconds'] / 60:.1f} minutes "
        "(the sum of each module's wall time). *Timed out*: the mutant made a test run far longer than "
        "without it (an endless loop); *survived* counts every mutant that is neither killed nor listed as "
        "equivalent.",
        "",
        *_below_and_unmeasured(results),
        "Each module runs against these tests (of them, mutmut runs those that call the mutated function):",
        "",
        *(f"- {name}: " + " ".join(f"`{test}`" for test in entry["tests"]) for name, entry in modules.items()),
        "",
        "## The equivalent mutants",
        "",
    ]
    for name, entry in modules.items():
        if not entry["equivalents"]:
            continue
        parts += [f"### {name}", ""]
        for equivalent in entry["equivalents"]:
            parts += [
                f"- `{equivalent['function']}`: {equivalent['reason']}",
                "",
                *_diff_block(equivalent["change"]),
                "",
            ]
    survivors = [(name, survivor) for name, entry in modules.items() for survivor in entry["survivors"]]
    parts += ["## Survivors no test kills yet", ""]
    if not survivors:
        parts += ["None: every mutant is killed, timed out or listed as equivalent.", ""]
    for name, survivor in survivors:
        parts += [
            f"- {name}, `{survivor['function']}` ({survivor['status']})",
            "",
            *_diff_block(survivor["change"]),
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"
