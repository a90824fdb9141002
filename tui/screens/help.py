"""The help screen: every key, by where it works, generated from the bindings themselves."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    """Every key, generated from the bindings themselves so the list cannot drift."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help"),
    ]

    def __init__(self, sections: Sequence[tuple[str, Sequence[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self._keys(), id="help-keys")

    def _keys(self) -> Table:
        table = Table.grid(padding=(0, 2))
        for title, bindings in self.sections:
            table.add_row(Text(title, style="bold"), Text())
            # Keys that do the same (q, ctrl+c) share a line.
            keys: dict[str, list[str]] = {}
            for binding in bindings:
                does = binding.description + (f": {binding.tooltip}" if binding.tooltip else "")
                keys.setdefault(does, []).append(key_display(self.app, binding))
            for does, shown in keys.items():
                table.add_row(Text(", ".join(shown)), Text(does))
            if title.startswith("Filter"):
                table.add_row(Text("…"), Text("the usual editing keys; enter applies the filter"))
        table.add_row(Text("Mouse", style="bold"), Text())
        table.add_row(Text("click"), Text("a row selects it; a column header sorts by it"))
        table.add_row(Text("wheel"), Text("scrolls the table, the event log, the detail pane"))
        close = self.BINDINGS[0]
        assert isinstance(close, Binding)
        table.add_row(Text(key_display(self.app, close)), Text(close.description))
        return table


def key_display(app: App[None], binding: Binding) -> str:
    """Every key of a binding ("ctrl+c,ctrl+q") as the footer shows keys: `^c, ^q`."""
    keys = binding.key.split(",")
    return ", ".join(app.get_key_display(dataclasses.replace(binding, key=key)) for key in keys)
