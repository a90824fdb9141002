"""The severity colours every widget shares, as Rich styles read from component classes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from monitor.core.model import Severity
from tui.present import state_text

_SEVERITY_CLASS = {
    Severity.OK: "sev--ok",
    Severity.WARN: "sev--warn",
    Severity.CRIT: "sev--crit",
    Severity.UNKNOWN: "sev--unknown",
}


# Engine states of links and redundancy groups, by the severity class that colours them (AT
# RISK has its own: one more failure is an outage).
_STATE_CLASS = {
    **{severity.name: name for severity, name in _SEVERITY_CLASS.items()},
    "UP": "sev--ok",
    "RESILIENT": "sev--ok",
    "DEGRADED": "sev--warn",
    "AT RISK": "grp--at-risk",
    "DOWN": "sev--crit",
    "NOT EVALUATED": "dim",
}

# Textual merges COMPONENT_CLASSES only along widget classes, so each widget lists these.
SEVERITY_CLASSES = frozenset(
    {*_SEVERITY_CLASS.values(), "grp--at-risk", "sev--pending", "acked", "dim", "held", "soft"}
)


# A mixin for widgets, so typed as a Widget; at run time a plain class: as a Widget it would take
# the place of the widget's own Textual base in its CSS inheritance (Textual follows the first
# DOMNode base), and ScrollView's or Static's default styles would be lost.
if TYPE_CHECKING:
    from textual.widget import Widget as _WidgetMixin
else:
    _WidgetMixin = object


class SeverityStyles(_WidgetMixin):
    """Rich styles for severities, read from the widget's component classes (set in .tcss).

    Looked up thousands of times a second under load, so they are cached until the styles
    change (a theme switch)."""

    _style_cache: dict[str, Style] | None = None

    def component_style(self, name: str) -> Style:
        if self._style_cache is None:
            self._style_cache = {}
        style = self._style_cache.get(name)
        if style is None:
            style = self.get_component_rich_style(name, partial=True)
            self._style_cache[name] = style
        return style

    def notify_style_update(self) -> None:
        self._style_cache = None
        super().notify_style_update()

    def severity_style(self, severity: Severity | None, acked: bool = False) -> Style:
        name = "sev--pending" if severity is None else _SEVERITY_CLASS[severity]
        style = self.component_style(name)
        return style + self.component_style("acked") if acked else style

    def state_style(self, label: str | None) -> Style:
        """The style of an engine state label (UP, AT RISK, CRIT...); None is pending."""
        return self.component_style(_STATE_CLASS.get(label or "", "sev--pending"))

    # Both styled as spans, not as the Text's base style: what is appended after them (with
    # `+` too) must not inherit it.
    def state_mark(self, label: str | None) -> Text:
        return Text().append(state_text(label), self.state_style(label))

    def held_text(self, reasons: Iterable[str]) -> Text:
        """`[unreachable] ` and the like: why notifications are held."""
        text = "".join(f"[{reason}] " for reason in reasons)
        return Text().append(text, self.component_style("held"))
