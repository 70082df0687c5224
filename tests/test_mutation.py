"""make mutation's configuration, bookkeeping and page: every module it names exists with its functions
and tests, survivors are matched to the listed equivalents by their change (not mutmut's shifting
numbers), and the book's page is the one the committed results give."""

import ast
import importlib.util
import json
import sys

import pytest
import yaml
from conftest import REPO

from alvit.book.mutation import page, table

spec = importlib.util.spec_from_file_location("mutation_tool", REPO / "benchmarks" / "mutation.py")
tool = importlib.util.module_from_spec(spec)
sys.modules["mutation_tool"] = tool  # its dataclass looks its module up there
spec.loader.exec_module(tool)

RESULTS = REPO / "benchmarks" / "results" / "mutation.json"


def defined_functions(path) -> set[str]:
    """``fn`` and ``Class.method`` for every function a source file defines at its top or in its classes."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{item.name}" for item in node.body if isinstance(item, ast.FunctionDef)}
    return names


@pytest.mark.parametrize("name", sorted(tool.MODULES))
def test_every_module_names_a_file_functions_it_defines_and_tests_that_exist(name):
    module = tool.MODULES[name]
    source = REPO / module.file
    assert source.is_file()
    defined = defined_functions(source)
    for pattern in module.functions:
        assert any(tool.fnmatch.fnmatchcase(function, pattern) for function in defined), pattern
    paths = [arg.split("::")[0] for arg in module.tests if arg.startswith("tests/")]
    assert paths and all((REPO / path).is_file() for path in paths)


def test_mutant_names_map_to_functions_and_back():
    train = tool.MODULES["train"]
    assert train.mutant_patterns() == [
        "alvit.train.x_split_for_early_stopping__mutmut_*",
        "alvit.train.x_lr_factor__mutmut_*",
        "alvit.train.x_epoch_order__mutmut_*",
        "alvit.train.xǁEarlyStoppingǁ*__mutmut_*",
    ]
    assert tool.MODULES["noise"].mutant_patterns() == ["alvit.noise.*__mutmut_*"]
    assert tool.function_of("alvit.noise.x_make_oracle__mutmut_12") == "make_oracle"
    assert tool.function_of("alvit.train.xǁEarlyStoppingǁimproved__mutmut_3") == "EarlyStopping.improved"


def test_a_change_is_the_diffs_removed_and_added_lines_without_their_indentation():
    diff = "--- alvit/noise.py\n+++ alvit/noise.py\n@@ -1,3 +1,3 @@\n def f():\n-    return a < b\n+    return a <= b\n"
    assert tool.change_of(diff) == "- return a < b\n+ return a <= b"


def test_every_listed_equivalent_names_a_module_function_change_and_reason():
    listed = yaml.safe_load(tool.EQUIVALENTS.read_text())
    assert set(listed) <= set(tool.MODULES)
    for name in listed:
        entries = tool.equivalents_of(name)
        defined = defined_functions(REPO / tool.MODULES[name].file)
        for entry in entries:
            assert entry["function"] in defined and entry["reason"].strip()
            lines = entry["change"].splitlines()
            assert lines and all(line[:2] in ("- ", "+ ") for line in lines)
        keys = [(entry["function"], entry["change"]) for entry in entries]
        assert len(keys) == len(set(keys)), f"{name}: an equivalent is listed twice"


def results_of(**module) -> dict:
    entry = {
        "file": "alvit/noise.py",
        "functions": "all",
        "tests": ["tests/test_noise.py"],
        "mutants": 140,
        "killed": 120,
        "survived": 1,
        "timed_out": 2,
        "no_tests": 0,
        "other": 0,
        "equivalent": 17,
        "score": 120 / 123,
        "seconds": 93.0,
        "date": "2026-12-04",
        "commit": "abc1234",
        "survivors": [{"mutant": "m", "status": "survived", "function": "f", "change": "- a\n+ b"}],
        "equivalents": [{"function": "g", "change": "- x < 1\n+ x <= 1", "reason": "x is never 1"}],
        "stale_equivalents": [],
    }
    entry.update(module)
    return {
        "tool": "mutmut 3.8.1",
        "target": 0.9,
        "max_children": 1,
        "cores": 2,
        "machine": "Linux x86_64, Python 3.11.2",
        "total_seconds": 93.0,
        "modules": {"noise": entry},
    }


def test_the_page_shows_each_modules_counts_score_and_time_and_every_listed_mutant():
    results = results_of(functions=["make_oracle", "Oracle.*"])
    assert table(results) == [
        {
            "module": "noise",
            "mutated": "`alvit/noise.py`: `make_oracle`, `Oracle.*`",
            "mutants": "140",
            "killed": "120",
            "timed out": "2",
            "survived": "1",
            "equivalent": "17",
            "score": "97.6%",
            "minutes": "1.6",
        }
    ]
    text = page(results)
    assert "| noise | 97.6% | 140 | 120 | 2 | 1 | 17 | 1.6 | `alvit/noise.py`: `make_oracle`, `Oracle.*` |" in text
    assert "- `g`: x is never 1\n\n  ```diff\n  - x < 1\n  + x <= 1\n  ```" in text
    assert "- noise, `f` (survived)\n\n  ```diff\n  - a\n  + b\n  ```" in text
    assert "took 1.6 minutes" in text and "target is 90%" in text


def test_the_committed_results_add_up_and_give_the_committed_page():
    results = json.loads(RESULTS.read_text())
    assert set(results["modules"]) <= set(tool.MODULES)
    for name, entry in results["modules"].items():
        parts = ("killed", "survived", "timed_out", "no_tests", "other", "equivalent")
        assert entry["mutants"] == sum(entry[part] for part in parts), name
        assert entry["score"] == round(entry["killed"] / (entry["mutants"] - entry["equivalent"]), 4), name
        assert len(entry["survivors"]) == entry["mutants"] - entry["killed"] - entry["equivalent"], name
    assert results["not_measured"] == [name for name in tool.MODULES if name not in results["modules"]]
    assert results["total_seconds"] == round(sum(entry["seconds"] for entry in results["modules"].values()), 1)
    assert (REPO / "book" / "mutation.md").read_text() == page(results)
    assert "book/mutation" in (REPO / "_toc.yml").read_text()


def test_every_module_is_measured_meets_the_target_and_leaves_no_survivor_unexplained():
    """Every module at 90% or more, and every mutant not killed either listed as equivalent (with its reason)
    or a timeout (a change that makes the tests hang, which CI's time limit would catch)."""
    results = json.loads(RESULTS.read_text())
    assert not results["not_measured"]
    for name, entry in results["modules"].items():
        assert entry["score"] >= results["target"], name
        assert entry["survived"] == entry["no_tests"] == entry["other"] == 0, name
        assert not entry["stale_equivalents"], name


def test_each_committed_entry_measured_the_modules_configuration_as_it_stands():
    """A module's tests or functions changed since its entry was measured: run it again (make mutation MODULES=...)."""
    results = json.loads(RESULTS.read_text())
    for name, entry in results["modules"].items():
        module = tool.MODULES[name]
        assert (entry["file"], entry["tests"]) == (module.file, list(module.tests)), name
        assert entry["functions"] == (list(module.functions) or "all"), name
