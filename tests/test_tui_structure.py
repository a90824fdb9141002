"""How the dashboard's parts talk: the screens and widgets never call into the app (attributes
down, messages up), and no class of ours takes over a private name of Textual's by accident."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator

from textual.app import App
from textual.dom import DOMNode

import tui
from tests.conftest import REPO


def _sources(*folders: str) -> Iterator[tuple[str, ast.Module]]:
    for folder in folders:
        for path in sorted((REPO / folder).glob("*.py")):
            yield str(path.relative_to(REPO)), ast.parse(path.read_text(encoding="utf-8"))


def test_screens_and_widgets_use_only_textuals_app():
    """`self.app.x` in a screen or widget is Textual's App (its console, notify, key display),
    never a method or attribute the commwatch app adds: what they want of it, they post."""
    textual = set(dir(App)) | set(vars(App()))  # its instance attributes too (console)
    ours = []
    for path, tree in _sources("tui/screens", "tui/widgets"):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "app"
                and node.attr not in textual
            ):
                ours.append(f"{path}:{node.lineno}: app.{node.attr}")
    assert ours == []


def _classes() -> Iterator[type]:
    for module_info in pkgutil.walk_packages(tui.__path__, "tui."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def test_no_class_overrides_a_private_name_of_textual():
    """A method named like one of Textual's private ones replaces it silently (the app's own
    `_flush` once broke `sys.stderr.flush()` inside the running app). What Textual sets on every
    subclass by itself (its CSS type names, merged bindings) is not ours and is left out."""
    clashes = []
    for cls in _classes():
        textual_bases = [base for base in cls.__mro__[1:] if base.__module__.startswith("textual")]
        if not textual_bases:
            continue
        # A bare subclass of the nearest Textual base: what Textual puts on every class itself.
        automatic = set(vars(type("Bare", (textual_bases[0],), {})))
        for name in vars(cls):
            if not name.startswith("_") or name.startswith("__") or name in automatic:
                continue
            owners = [base.__name__ for base in textual_bases if name in vars(base)]
            if owners:
                clashes.append(f"{cls.__module__}.{cls.__qualname__}.{name} ({owners[0]})")
    assert clashes == []


def test_the_structure_tests_see_every_dashboard_class():
    """The walk above must reach the app, the screens and the widgets, or it proves nothing."""
    names = {cls.__name__ for cls in _classes() if issubclass(cls, DOMNode)}
    assert {"CommwatchApp", "DashboardScreen", "HelpScreen", "CheckTable", "EventLog"} <= names
