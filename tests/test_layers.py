"""The package's shape: three layers (core, book, sweep) whose imports run one way, and no import cycle anywhere.

``lint-imports`` (make lint) checks the contracts in pyproject.toml; these tests keep the
contracts whole: every core module is named in them, and no set of modules imports itself in a
circle, which a layers contract alone would not notice inside a layer.
"""

from __future__ import annotations

import grimp
import tomllib
from conftest import REPO

LAYERS = ("alvit.cli", "alvit.sweep", "alvit.book")


def import_graph() -> grimp.ImportGraph:
    return grimp.build_graph("alvit", include_external_packages=False)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(import_graph()) == []


def test_a_circle_of_imports_is_found_where_there_is_one():
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert cycles(graph) == [["a.b", "a.c"]]


def test_every_module_of_the_core_is_bound_by_the_layer_contract():
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    core = next(c for c in contracts if c["type"] == "forbidden")
    top_level = {m for m in import_graph().find_children("alvit")}
    assert set(core["source_modules"]) == top_level - set(LAYERS)
    assert set(core["forbidden_modules"]) == set(LAYERS)
