"""The package's modules import each other without cycles (static walk of every import).

Edges come from the source (`ast`), and every import statement counts:
at module level, inside functions and under `if TYPE_CHECKING:`. A lazy
import (of an optional framework's backend, say) runs as surely as a
top-level one, only later; a type-only import still makes one module's
meaning depend on the other's. Either can hide a cycle in the layering
(issue 11's `modules/*` <-> `_fused.py` went through a type-only import),
and the refactor that hoists it turns it into an import-time failure. To
type a helper against its owner, give the helper a Protocol of what it
uses. `importlib.import_module` calls are not imports here; the package
keeps them to the registry of Vector types (names given as data).

`from pkg import name` depends on the submodule `pkg.name` when there is
one, else on `pkg` itself. A package's `__init__` importing its own
submodules is not a cycle with them unless a submodule imports the package
back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import flwr_declearn

ROOT = Path(flwr_declearn.__file__).parent
PACKAGE = "flwr_declearn"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    if not level:
        return module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(source: str, name: str, is_package: bool, modules: Iterable[str]) -> set[str]:
    """Return the package's modules that the code `source` of module `name` imports."""
    known = set(modules)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in known:  # `import a.b.c` names a module
                target = target.rpartition(".")[0]
            if target.split(".")[0] == PACKAGE and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Return `{module: {modules of the package it imports}}`."""
    modules = _modules()
    return {
        name: imports_of(path.read_text(), name, path.name == "__init__.py", modules)
        for name, path in modules.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _example_edges(cycle: list[str], graph: dict[str, set[str]]) -> str:
    members = set(cycle)
    return "; ".join(f"{src} -> {dst}" for src in cycle for dst in sorted(graph[src] & members))


def test_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(
        f"{cycle}: {_example_edges(cycle, graph)}" for cycle in cycles
    )


def test_the_walk_sees_module_level_lazy_type_only_and_relative_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import flwr_declearn.utils._plugin\n"
        "from . import _vector\n"
        "from ..numpy import NumpyVector\n"
        "if TYPE_CHECKING:\n    from flwr_declearn.optimizer import Optimizer\n"
        "def f():\n    from flwr_declearn.data import Batch\n"
    )
    modules = _modules()
    found = imports_of(source, "flwr_declearn.model.api._model", False, modules)
    assert found == {
        "flwr_declearn.utils._plugin",
        "flwr_declearn.model.api._vector",
        "flwr_declearn.model.numpy",
        "flwr_declearn.optimizer",
        "flwr_declearn.data",
    }
    graph = import_graph()
    assert "flwr_declearn.optimizer._backend_torch" in graph["flwr_declearn.optimizer._backend"]


def test_find_cycles_reports_a_two_module_cycle_and_ignores_a_chain() -> None:
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
