"""The project's packages import each other in one direction and without cycles, lazy imports included.

Every `import` / `from` statement (top level, inside functions, under `if TYPE_CHECKING`) of every
module is read with `ast`; `from pkg import name` counts as importing `pkg.name` when that is a
module, else `pkg`; a package's `__init__` is the module `pkg`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "search_space", "latency", "scaling")
# package -> the project packages it must not import
FORBIDDEN = {"search_space": ("nas", "latency", "scaling"), "latency": ("nas", "scaling"), "scaling": ("nas",)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The project module `name` is, or lies in; None outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(_resolve(full) if full in MODULES else _resolve(base))
    found.discard(None)
    found.discard(module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str:
    return module.split(".")[0]


def test_the_graph_is_read():
    # guards the test itself: known edges, lazy and top-level, must be seen
    assert "search_space.ops" in GRAPH["search_space.spec"]
    assert "latency.sources" in GRAPH["latency"]
    assert "latency.profiling" in GRAPH["latency.sources"]  # a lazy import inside a method
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    """Between any of the project's modules, lazy imports inside functions included."""
    cycles = _cycles(GRAPH)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package):
    wrong = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _package(m) == package
                   for d in deps if _package(d) in FORBIDDEN[package])
    assert not wrong, f"{package} must not import {', '.join(FORBIDDEN[package])}: {wrong}"
