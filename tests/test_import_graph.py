"""The package's import graph has no cycles (issue 34).

An AST scan of every module under ``jaxseq/``: imports at module level and inside functions alike (an
import hidden in a function still ties the two modules together: it only moves the failure from import
time to call time), relative imports resolved, ``from jaxseq import x`` counted as the module
``jaxseq.x`` and ``from pkg import name`` as ``pkg.name`` where that is a module file (else as ``pkg``).
Imports under ``if TYPE_CHECKING:`` never run and are left out. The strongly connected components of
more than one module (or a module importing itself) are the cycles.

No module may be part of one: the bench package's two circles were the last (the message of a failure
lists every cycle found).
"""
from __future__ import annotations

import ast
from pathlib import Path


from package_scan import PACKAGE_DIR, module_files, write_package  # tests/package_scan.py


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom in the tree, functions and classes included, `if TYPE_CHECKING:` left out."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The longest dotted prefix of `name` that is one of `modules` (None: outside the package)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that module `name` (file `path`) imports, anywhere in its code."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            targets = []
            for alias in node.names:
                sub = f"{src}.{alias.name}"
                targets.append(sub if alias.name != "*" and sub in modules else src)
        for target in targets:
            owner = _owner(target, modules)
            if owner is not None:
                found.add(owner)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """{module: modules of the package it imports}."""
    modules = module_files(package_dir)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; components in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                comps.append(sorted(comp))
    return sorted(comps)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The components that are cycles: more than one module, or one that imports itself."""
    return [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in graph.get(c[0], ())]


def cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete cycle through the component's first module: [a, b, ..., a] (shortest, by BFS)."""
    members, start = set(comp), comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child in members and child not in prev:
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return comp  # pragma: no cover - a component always holds a cycle


def describe(graph: dict[str, set[str]], cycles: list[list[str]]) -> str:
    return "\n".join(f"  {len(c)} modules: {' -> '.join(cycle_path(graph, c))}"
                     + (f" (component: {', '.join(c)})" if len(c) > 2 else "") for c in cycles)


# ------------------------------------------------------------------------------------------------
# the scanner itself, on a small package written here


def test_scanner_sees_function_level_relative_and_from_package_imports(tmp_path):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg import helper\n",
        "pkg/sub/a.py": "def f():\n    from . import b\n    from ..helper import thing\n",
        "pkg/sub/b.py": "import os\nimport pkg.sub.c as c\nfrom pkg.sub import a\n",
        "pkg/sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import a\n"
                        "from pkg import sub\n",
        "pkg/helper.py": "from pkg.sub.b import nothing_module  # a name, not a module\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.sub"] == {"pkg.helper"}
    assert graph["pkg.sub.a"] == {"pkg.sub.b", "pkg.helper"}
    assert graph["pkg.sub.b"] == {"pkg.sub.c", "pkg.sub.a"}
    assert graph["pkg.sub.c"] == {"pkg.sub"}  # the TYPE_CHECKING import is left out
    assert graph["pkg.helper"] == {"pkg.sub.b"}
    cycles = import_cycles(graph)
    assert cycles == [["pkg.helper", "pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.sub.c"]]
    path = cycle_path(graph, cycles[0])
    assert path[0] == path[-1] == "pkg.helper" and all(b in graph[a] for a, b in zip(path, path[1:]))


def test_self_import_is_a_cycle_and_a_dag_has_none():
    assert import_cycles({"a": {"a"}}) == [["a"]]
    assert import_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


# ------------------------------------------------------------------------------------------------
# the package


def test_bench_has_no_import_cycles():
    graph = import_graph()
    assert any(m.startswith("jaxseq.bench.") for m in graph)  # the scan found the package
    bench = [c for c in import_cycles(graph) if any(m == "jaxseq.bench" or m.startswith("jaxseq.bench.")
                                                    for m in c)]
    assert not bench, "import cycles through jaxseq.bench (issue 34):\n" + describe(graph, bench)


def test_package_has_no_import_cycles():
    graph = import_graph()
    cycles = import_cycles(graph)
    assert not cycles, f"{len(cycles)} import cycles in jaxseq:\n" + describe(graph, cycles)
