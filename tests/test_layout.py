"""The package's shape: no import tangles, backend modules one small interface each.

Imports are counted as /work/tools/cycles.py counts them: every ``import`` and
``from ... import`` anywhere in a module (module level, inside functions, under
TYPE_CHECKING), and ``from . import name`` also counts as importing the package.
Two modules that name each other are allowed (two data structures may); a cycle
through three or more is a tangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import skqueue

PACKAGE = Path(skqueue.__file__).parent
BACKEND_MAX_LINES = 400  # one kernel interface fits; more means two were mixed
MAX_CYCLE = 2


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports, by any import statement."""
    paths = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in paths:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def tangles() -> list[list[str]]:
    return [c for c in cycles(import_graph()) if len(c) > MAX_CYCLE]


def test_cycle_finder_sees_a_tangle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_every_kind_of_import_counts(tmp_path: Path) -> None:
    """The aio tangle that was: a package import hidden in ``from . import``."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .api import *\n")
    (pkg / "api.py").write_text("def f():\n    from .sockets import engine\n")
    (pkg / "sockets.py").write_text("from . import zc\n")
    (pkg / "zc.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .jobs import Job\n"
    )
    (pkg / "jobs.py").write_text("import pkg.zc\n")
    graph = import_graph(pkg)
    assert graph["pkg.sockets"] == {"pkg", "pkg.zc"}
    assert sorted(cycles(graph)) == [["pkg", "pkg.api", "pkg.sockets"], ["pkg.jobs", "pkg.zc"]]


def test_no_import_tangle() -> None:
    """Two modules may name each other (two data structures); three or more are a tangle."""
    assert tangles() == [], f"import cycles of more than {MAX_CYCLE} modules: {tangles()}"


def test_backend_modules_are_small() -> None:
    """A backend module wraps one kernel interface; past the bound it mixes several."""
    sizes = {
        path.name: len(path.read_text().splitlines()) for path in (PACKAGE / "backend").glob("*.py")
    }
    assert sizes  # the glob found the backend
    big = {name: lines for name, lines in sizes.items() if lines > BACKEND_MAX_LINES}
    assert big == {}, f"backend modules over {BACKEND_MAX_LINES} lines: {big}"
