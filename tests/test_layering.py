"""No module of rag/, index/ or ui/ imports itself back through a cycle, a package and its
own modules included (import-linter's acyclic_siblings contract sees only siblings). The
layering contracts themselves run as `lint-imports` in CI (pyproject.toml)."""
from __future__ import annotations

import grimp


def import_cycles(graph) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_back():
    # Imports under `if TYPE_CHECKING:` never run (as in the import-linter settings).
    graph = grimp.build_graph("rag", "index", "ui", exclude_type_checking_imports=True)
    assert "rag.store" in graph.modules and "index.staging" in graph.modules
    assert import_cycles(graph) == []


def test_a_cycle_would_be_found():
    graph = grimp.ImportGraph()
    for importer, imported in [("p", "p.b"), ("p.b", "p"), ("p.c", "p.b")]:
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [["p", "p.b"]]
