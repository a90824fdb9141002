"""The documentation stays true to the tree: every module and registry docs/ARCHITECTURE.md
names exists, its layer list is the one tests/test_import_graph.py enforces, the README's links
resolve inside the repository, and nothing in the repository points outside it.

A moved module, a renamed registry or a new layer then fails here, in the commit that made the
doc wrong, instead of misleading the next person who reads it.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO
from tests.test_import_graph import LAYERS, ONLY

ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
README = REPO / "README.md"
# Where the repository's paths start: a backticked path in the architecture doc must begin here.
ROOTS = ("monitor/", "probes/", "tui/", "tests/", "bench/", "docs/", "tools/", ".ci/")
ROOT_FILES = ("README.md", "CONTRIBUTING.md", "pyproject.toml", "inventory.yaml")
# What is not the repository's own: tools' folders, caches, the virtual environment.
PRUNED = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build"}

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_NAMED_IN = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?` in `([\w/.]+\.py)`")
_DIAGRAM_PATH = re.compile(
    r"(?<![\w/<])((?:monitor|probes|tui)/[\w/]+\.py)(?:[ \t]+([A-Za-z_]\w*))?"
)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _repository_files(*suffixes: str) -> Iterator[Path]:
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in PRUNED and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(suffixes):
                yield Path(folder, name)


@functools.cache
def _top_level_names(module: Path) -> frozenset[str]:
    """What a module defines at its top level, and `Class.method` for its classes' methods."""
    names = set()
    functions = ast.FunctionDef | ast.AsyncFunctionDef
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, functions):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(f"{node.name}.{m.name}" for m in node.body if isinstance(m, functions))
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return frozenset(names)


def _faults_of_path(token: str) -> list[str]:
    """What is wrong with a backticked path (`monitor/engine/state.py`, a folder, a template
    such as `probes/<kind>.py` whose folder must exist, or `path.py::NAME` for a registry)."""
    path, _, name = token.partition("::")
    if "<" in path:
        folder = path[: path.index("<")].rpartition("/")[0]
        return [] if (REPO / folder).is_dir() else [f"{token}: no folder {folder}/"]
    if not (REPO / path).exists():
        return [f"{token}: no such file or folder"]
    if name and name not in _top_level_names(REPO / path):
        return [f"{token}: {path} defines no {name}"]
    return []


def _looks_like_a_path(token: str) -> bool:
    return "/" in token or token.endswith((".py", ".md", ".toml", ".json", ".tcss", ".yaml"))


def architecture_faults(text: str) -> list[str]:
    """Every path, registry and `name` in `module.py` the text names that the tree lacks."""
    faults = []
    prose = _FENCE.sub("", text)
    for token in _INLINE.findall(prose):
        if " " in token or not _looks_like_a_path(token):
            continue
        if not token.startswith(ROOTS) and token.partition("::")[0] not in ROOT_FILES:
            faults.append(f"{token}: not a path of the repository")
            continue
        faults += _faults_of_path(token)
    for name, path in _NAMED_IN.findall(prose):
        if not (REPO / path).is_file():
            faults.append(f"{path}: no such file")
        elif name not in _top_level_names(REPO / path):
            faults.append(f"{name} in {path}: not defined there")
    for block in _FENCE.findall(text):
        for path, name in _DIAGRAM_PATH.findall(block):
            if not (REPO / path).is_file():
                faults.append(f"{path} (diagram): no such file")
            elif name and name not in _top_level_names(REPO / path):
                faults.append(f"{path} {name} (diagram): not defined there")
    return faults


def test_every_path_and_registry_the_architecture_names_exists():
    assert architecture_faults(ARCHITECTURE.read_text(encoding="utf-8")) == []


def test_the_check_finds_a_path_or_a_registry_that_is_not_there():
    text = (
        "`monitor/engine/state.py` `monitor/engine/nowhere.py` `probes/registry.py::_KINDS`\n"
        "`probes/registry.py::_GONE` `probes/<kind>.py` `nowhere/<kind>.py` `src/x.py`\n"
        "`COMMANDS` in `monitor/cli/main.py`, `DashboardScreen.compose` in "
        "`tui/screens/dashboard.py`, `vanished()` in `monitor/cli/main.py`\n"
        "```\n monitor/engine/runner.py  run_check()\n monitor/engine/runner.py  walk_check\n"
        " monitor/engine/moved.py\n```\n"
    )
    assert architecture_faults(text) == [
        "monitor/engine/nowhere.py: no such file or folder",
        "probes/registry.py::_GONE: probes/registry.py defines no _GONE",
        "nowhere/<kind>.py: not a path of the repository",
        "src/x.py: not a path of the repository",
        "vanished in monitor/cli/main.py: not defined there",
        "monitor/engine/runner.py walk_check (diagram): not defined there",
        "monitor/engine/moved.py (diagram): no such file",
    ]


def boundary_faults(text: str) -> list[str]:
    """Each value of the table of what crosses each boundary must be defined in one of the
    modules its row names."""
    rows = re.findall(r"^\| [^|]+ \| ([^|]+) \| ([^|]+) \|$", text, re.MULTILINE)
    header = rows.index(("value", "defined in"))
    faults = []
    for values, modules in rows[header + 2 :]:  # past the header and its --- line
        if values.strip().startswith("---") or "`" not in modules:
            break
        paths = [REPO / path for path in _INLINE.findall(modules)]
        defined = set().union(*(_top_level_names(p) for p in paths if p.is_file()))
        for name in re.findall(r"`([A-Z]\w*)`", values):
            if name not in defined:
                faults.append(f"{name}: not defined in {modules.strip()}")
    return faults


def test_every_value_crossing_a_boundary_is_defined_where_the_architecture_says():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert boundary_faults(text) == []
    wrong = text.replace("`ProbeResult`, `Verdict`", "`ProbeResult`, `Verdicts`")
    assert boundary_faults(wrong) == ["Verdicts: not defined in `monitor/core/model.py`"]


def _expected_allowed(name: str) -> set[str]:
    names = [layer for layer, _ in LAYERS]
    return set(ONLY.get(name, names[: names.index(name) + 1]))


def _allowed_in_doc(cell: str, name: str) -> set[str]:
    names = [layer for layer, _ in LAYERS]
    if cell == "everything":
        return set(names)
    below = "the layers below, "
    if cell.startswith(below):
        own = cell.removeprefix(below)
        return set(names[: names.index(own)]) | {own}
    return {word.strip() for word in cell.split(",")}


def test_the_layers_in_the_architecture_are_the_ones_the_import_test_enforces():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    orders = re.findall(r"^(\w+(?: < \w+)+)\s*$", text, re.MULTILINE)
    assert orders == [" < ".join(name for name, _ in LAYERS)]
    table = re.findall(r"^\| (\w+) \| `([\w/]+)/` \| ([^|]+) \|$", text, re.MULTILINE)
    assert [(name, package.replace("/", ".")) for name, package, _ in table] == [
        (name, prefix) for name, (prefix,) in LAYERS
    ]
    for name, _, allowed in table:
        assert _allowed_in_doc(allowed.strip(), name) == _expected_allowed(name), name


def _links(markdown: Path) -> Iterator[str]:
    for target in _LINK.findall(_FENCE.sub("", markdown.read_text(encoding="utf-8"))):
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#"):
            yield target.partition("#")[0]


def _outside(markdown: Path, target: str) -> bool:
    return target.startswith("/") or not (markdown.parent / target).resolve().is_relative_to(REPO)


def test_the_readme_and_the_architecture_links_resolve_inside_the_repository():
    broken = [
        f"{doc.name}: {target}"
        for doc in (README, ARCHITECTURE)
        for target in _links(doc)
        if _outside(doc, target) or not (doc.parent / target).exists()
    ]
    assert broken == []
    assert "docs/ARCHITECTURE.md" in set(_links(README))
    assert "CONTRIBUTING.md" in set(_links(README))


def test_no_markdown_file_links_outside_the_repository():
    markdown = list(_repository_files(".md"))
    assert {README, ARCHITECTURE, REPO / "CONTRIBUTING.md"} <= set(markdown)
    escaping = [
        f"{path.relative_to(REPO)}: {target}"
        for path in markdown
        for target in _links(path)
        if _outside(path, target)
    ]
    assert escaping == []


def test_the_link_check_sees_a_link_that_leaves_the_repository(tmp_path):
    doc = REPO / "docs" / "ARCHITECTURE.md"
    assert _outside(doc, "../../sibling/DESIGN.md")
    assert _outside(doc, "/etc/commwatch/inventory.yaml")
    assert not _outside(doc, "../README.md")
    page = tmp_path / "page.md"
    page.write_text(
        "[a](../sibling/DESIGN.md) [b](https://example.net/) [c](#layers) [d](docs/x.md#top)\n"
        "```\n[e](../in-a-code-block.md)\n```\n"
    )
    assert list(_links(page)) == ["../sibling/DESIGN.md", "docs/x.md"]


# The places outside the repository it was written beside; built here so this file is no hit.
_OUTSIDE_PLACES = ("../" + "shared/", "/" + "work/")


def test_nothing_in_the_repository_names_a_place_beside_it():
    found = [
        f"{path.relative_to(REPO)}:{number}: {place}"
        for path in _repository_files(".md", ".py", ".toml", ".yaml", ".cfg", ".tcss")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for place in _OUTSIDE_PLACES
        if place in line
    ]
    assert found == []
