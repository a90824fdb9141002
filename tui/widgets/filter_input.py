"""The filter box above the table."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input


class FilterInput(Input):
    """Filter-as-you-type; escape clears it (handled by the screen)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "screen.back", "Clear filter", tooltip="and back to the table", show=False
        ),
    ]
