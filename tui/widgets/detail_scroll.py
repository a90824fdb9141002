"""The detail pane's scrolling frame: what the zoom maximizes."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll


class DetailScroll(VerticalScroll, inherit_bindings=False):
    """The detail pane's frame: it scrolls the pane while focused (d, or tab, or zoomed)."""

    ALLOW_MAXIMIZE = True  # the zoom

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Scroll up", show=False),
        Binding("down", "scroll_down", "Scroll down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]
