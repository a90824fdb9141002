"""How the dashboard's parts talk: the screens and widgets never call into the app (attributes
down, messages up), and no class of ours takes over a private name of Textual's by accident."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
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


def _private_names_set(cls: type) -> set[str]:
    """The `self._name` attributes the class's own methods assign."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    }


def test_no_class_overrides_a_private_name_of_textual():
    """A method or attribute named like one of Textual's private ones replaces it silently (the
    app's own `_flush` once broke `sys.stderr.flush()` inside the running app). What Textual
    sets on every subclass by itself (its CSS type names, merged bindings) is not ours."""
    clashes = []
    for cls in _classes():
        textual_bases = [base for base in cls.__mro__[1:] if base.__module__.startswith("textual")]
        if not textual_bases:
            continue
        nearest = textual_bases[0]
        # A bare subclass of the nearest Textual base: what Textual puts on every class itself.
        automatic = set(vars(type("Bare", (nearest,), {})))
        defined = {
            name
            for name in vars(cls)
            if name.startswith("_") and not name.startswith("__") and name not in automatic
        }
        theirs = set(dir(nearest)) | set(getattr(nearest(), "__dict__", {}))
        clashes += [
            f"{cls.__module__}.{cls.__qualname__}.{name} ({nearest.__name__})"
            for name in sorted((defined | _private_names_set(cls)) & theirs)
        ]
    assert clashes == []


def test_the_structure_tests_see_every_dashboard_class():
    """The walk above must reach the app, the screens and the widgets, or it proves nothing."""
    names = {cls.__name__ for cls in _classes() if issubclass(cls, DOMNode)}
    assert {"CommwatchApp", "DashboardScreen", "HelpScreen", "CheckTable", "EventLog"} <= names
