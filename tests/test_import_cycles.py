"""No import cycle in the product packages, counting every import (STYLE: "no import cycles,
including under TYPE_CHECKING").

import-linter sees only the imports Python runs; a cycle hidden under ``if TYPE_CHECKING:``
or inside a function body is still two modules that cannot be understood (or split) one
without the other. So this test reads every module of the product packages with ``ast``,
takes every import statement wherever it stands (module level, ``TYPE_CHECKING`` blocks,
function bodies; absolute and relative), builds the graph of modules, and fails with the
cycle if there is one.

An edge goes to the module named: ``import a.b.c`` and ``from a.b.c import x`` give
``a.b.c`` (``a.b.c.x`` if that is a module itself); the packages above it are not counted
(a package's ``__init__`` that re-exports its submodules would otherwise close a cycle
with every submodule that imports a sibling).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
BASE_PACKAGES: Final = ("client", "federation", "node", "wire", "suites", "trust", "sealrelay")
"""The product packages (``trust`` once it exists); with the import-linter's root packages
of ``pyproject.toml``, so a package added there is read here too."""


def product_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = config["tool"]["importlinter"]["root_packages"]
    return list(dict.fromkeys([*BASE_PACKAGES, *listed]))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in product_packages():
        base = ROOT / package
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            found[module_name(path)] = path
    return found


def _base_package(module: str, is_package: bool, level: int) -> str:
    """The package a relative import of ``level`` dots in ``module`` starts from."""
    parts = module.split(".")
    if not is_package:
        parts.pop()
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts)


def imported(
    module: str, source: str, is_package: bool, known: Mapping[str, Path]
) -> Iterator[str]:
    """Every product module that ``module`` imports anywhere in its ``source``."""
    tree = ast.parse(source, filename=module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _base_package(module, is_package, node.level)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub
                else:
                    yield from _resolve(target, known)


def _resolve(name: str, known: Mapping[str, Path]) -> Iterator[str]:
    """The longest product module that ``name`` names or lies in (nothing for others)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            yield candidate
            return
        parts.pop()


def import_graph() -> dict[str, set[str]]:
    known = product_modules()
    return {
        module: {
            target
            for target in imported(
                module, path.read_text(encoding="utf-8"), path.name == "__init__.py", known
            )
            if target != module
        }
        for module, path in known.items()
    }


def components(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    members.append(top)
                    if top == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def a_cycle(graph: Mapping[str, set[str]], members: list[str]) -> list[str]:
    """One cycle through the first of ``members`` (a strongly connected component), as the
    list of modules with the first repeated at the end."""
    inside = set(members)
    start = members[0]
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & inside):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    raise AssertionError("not a strongly connected component")


def test_the_product_has_no_import_cycle() -> None:
    graph = import_graph()
    cycles = [
        f"{' -> '.join(a_cycle(graph, members))}  (all of: {', '.join(members)})"
        for members in components(graph)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_sees_type_checking_and_function_imports() -> None:
    """The reader counts what import-linter would not: a cycle closed only under
    ``TYPE_CHECKING`` or inside a function."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert components(graph) == [["a", "b", "c"]]
    assert a_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from client.app import Client\n"
        "def f():\n    import wire.relay\n    from . import routing\n"
    )
    known = {"client.app": Path(), "wire.relay": Path(), "client.routing": Path()}
    assert set(imported("client.probe", source, False, known)) == set(known)
