"""One line of styled text as the segments a Line API widget returns."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text


def text_segments(
    console: Console, text: Text, base: Style, over: Style | None = None
) -> Iterable[Segment]:
    """A one-line Text as segments: its styles on `base`, `over` laid on top of them."""
    # Text.render leaves the text's own style to its caller.
    style = base + console.get_style(text.style, default=Style.null())
    return Segment.apply_style(text.render(console), style, over)
