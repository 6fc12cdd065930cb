"""The shape of the code: no import cycle anywhere in cockpit/, and no product module over 600 lines.

The graph is grimp's (the one import-linter checks the layers with): every import counts, at module level,
inside a function or under TYPE_CHECKING, because each one is a dependency a reader has to follow.
"""

from __future__ import annotations

from pathlib import Path

import grimp

import cockpit

PACKAGE = Path(cockpit.__file__).resolve().parent
MAX_LINES = 600

# Cycles still being taken apart, each named by every module it may hold. Empty this list as they go.
KNOWN_CYCLES: list[frozenset[str]] = []

# Modules still being split by duty, each to leave this list when it is under MAX_LINES.
OVERSIZED: frozenset[str] = frozenset()


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The graph's components of more than one module (or a module importing itself), by Tarjan's method
    without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, set()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1 or node in graph.get(node, set()):
                    found.append(frozenset(members))
    return found


def import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("cockpit", cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_the_cycle_finder_finds_cycles_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(), "f": {"f"}}
    assert sorted(map(sorted, strongly_connected(graph))) == [["a", "b", "c"], ["f"]]


def test_no_import_cycle_in_cockpit() -> None:
    graph = import_graph()
    assert "cockpit.core.store" in graph and "cockpit.core.ops" in graph
    cycles = strongly_connected(graph)
    unknown = [sorted(c) for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert unknown == [], f"import cycles: {unknown}"
    gone = [sorted(k) for k in KNOWN_CYCLES if not any(c & k for c in cycles)]
    assert gone == [], f"these cycles are gone: take them out of KNOWN_CYCLES: {gone}"


def product_modules() -> dict[str, int]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50, files
    return {str(f.relative_to(PACKAGE.parent)): len(f.read_text().splitlines()) for f in files}


def test_no_product_module_is_over_600_lines() -> None:
    sizes = product_modules()
    over = {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in OVERSIZED}
    assert over == {}, f"split these by duty (at most {MAX_LINES} lines each): {over}"
    done = sorted(name for name in OVERSIZED if sizes.get(name, 0) <= MAX_LINES)
    assert done == [], f"these are split (or gone): take them out of OVERSIZED: {done}"
