"""The three packages import each other without cycles, function-level imports included.

A cycle hidden in a function-level import still couples the modules it joins: it only moves the
failure from import time to the first call. The graph is read from the source with `ast`, so no
module is imported to build it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("monitor", "probes", "tui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
    }


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules of ours that an import statement loads (the deepest one each name resolves
    to: `from monitor import output` loads monitor.output)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        for alias in node.names:
            yield f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _imported(node, name, is_package, known):
                # `import monitor.core.model` loads the packages on the way too.
                parts = target.split(".")
                for depth in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:depth])
                    if prefix in known and prefix != name:
                        graph[name].add(prefix)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or with a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    source = "def late():\n    from monitor.runner import run_check\n"
    tree = ast.parse(source)
    imported = {
        target
        for node in ast.walk(tree)
        for target in _imported(node, "monitor.revocation", False, {"monitor.runner"})
    }
    assert imported == {"monitor.runner"}


# The layers, lowest first. A module may import its own layer and those below it; the demo
# lab stands beside the engine and imports core alone (the demo command joins the two).
LAYERS = (
    ("core", ("monitor.core",)),
    ("probes", ("probes",)),
    ("lab", ("monitor.lab",)),
    ("config", ("monitor.config",)),
    ("store", ("monitor.store",)),
    ("output", ("monitor.output",)),
    ("alerts", ("monitor.alerts",)),
    ("engine", ("monitor.engine",)),
    ("api", ("monitor.api",)),
    ("cluster", ("monitor.cluster",)),
    ("tui", ("tui",)),
    ("cli", ("monitor.cli",)),
)
# What a layer may import besides the layers below it: nothing; and the lab only core.
ONLY = {"lab": {"core", "lab"}}


def layer_of(module: str) -> str | None:
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None  # a package __init__ above the layers (monitor)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, (name, _) in enumerate(LAYERS)}
    found = []
    for module, targets in sorted(graph.items()):
        own = layer_of(module)
        if own is None:
            continue
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs is None:
                continue
            allowed = ONLY.get(own)
            if (allowed is not None and theirs not in allowed) or rank[theirs] > rank[own]:
                found.append(f"{module} ({own}) imports {target} ({theirs})")
    return found


def test_every_module_imports_only_its_layer_and_those_below() -> None:
    assert upward_imports(import_graph()) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    graph = {"monitor.core.model": {"monitor.engine.state"}, "monitor.lab.lab": {"probes.tls"}}
    assert upward_imports(graph) == [
        "monitor.core.model (core) imports monitor.engine.state (engine)",
        "monitor.lab.lab (lab) imports probes.tls (probes)",
    ]
