"""The product code's modules import each other in one direction: no cycle, not even through an import
inside a function (those are how cycles hide: they work until someone moves one to the top)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "indexer", "encoder")
SCRIPTS = ("run.py",)


def product_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every product module (packages' `__init__` by the package's name)."""
    modules = {path.stem: root / path for path in map(Path, SCRIPTS)}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules that `name` imports anywhere in its file (top level, functions, classes)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:  # `from x import y` imports x.y when that is a module, else x
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = product_modules(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted; a module
    importing itself is dropped by `imported_modules`."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_product_code_has_no_import_cycle():
    graph = import_graph()
    assert {"run", "encoder", "encoder.weights", "indexer.towers", "app.search"} <= set(graph)
    found = cycles(graph)
    assert not found, "import cycles (each group imports itself through the others): " + "; ".join(
        " <-> ".join(group) for group in found
    )


def test_imports_inside_functions_count(tmp_path):
    """The walk sees `from pkg import mod` and `from pkg.mod import name` inside function bodies."""
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "__init__.py").write_text("")
    (tmp_path / "encoder" / "a.py").write_text("def f():\n    from encoder.b import g\n    return g\n")
    (tmp_path / "encoder" / "b.py").write_text("from encoder import a\n\ndef g():\n    return a\n")
    for package in ("app", "indexer"):
        (tmp_path / package).mkdir()
    (tmp_path / "run.py").write_text("import encoder.a\n")
    graph = import_graph(tmp_path)
    assert graph["encoder.a"] == {"encoder.b"} and graph["encoder.b"] == {"encoder.a"}
    assert graph["run"] == {"encoder.a"}
    assert cycles(graph) == [["encoder.a", "encoder.b"]]


def test_relative_imports_resolve_to_the_package(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "indexer" / "__init__.py").write_text("from . import x\n")
    (tmp_path / "indexer" / "x.py").write_text("from .y import z\n")
    (tmp_path / "indexer" / "y.py").write_text("z = 1\n")
    (tmp_path / "run.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["indexer"] == {"indexer.x"} and graph["indexer.x"] == {"indexer.y"}
    assert cycles(graph) == []
