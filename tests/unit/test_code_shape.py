"""The shape the code keeps: no import cycle, and no module a newcomer cannot read whole.

grimp builds the import graph from the source (every import counts: module level,
inside functions and under ``TYPE_CHECKING``), so a cycle cannot hide behind a lazy
import. The layer contracts (``ipc`` <- ``supervisor`` <- ``nordiqd``, serving free of
training code) are checked by import-linter in ``make lint`` (``.importlinter``).
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ipc", "supervisor", "nordiqd")
MAX_LINES = 400


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> set[tuple[str, ...]]:
    """Each import cycle once, as the sorted tuple of the modules on it."""
    found: set[tuple[str, ...]] = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                found.add(tuple(sorted(set(chain))))
    return found


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    assert cycles(graph) == set()


def test_a_cycle_is_found_when_there_is_one() -> None:
    g = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        g.add_module(name)
    g.add_import(importer="pkg.a", imported="pkg.b")
    g.add_import(importer="pkg.b", imported="pkg.c")
    assert cycles(g) == set()
    g.add_import(importer="pkg.c", imported="pkg.a")
    assert cycles(g) == {("pkg.a", "pkg.b", "pkg.c")}


def test_no_module_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 50, "the packages were not found"
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
