"""The line above the table: checks per severity, redundancy groups per state, SNMP traps
taken and refused, since when."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from monitor.core.events import PENDING, GroupStatus
from monitor.core.model import Severity
from monitor.engine.views import NOT_EVALUATED
from tui.board import Board
from tui.present import SYMBOLS, age_text, clock_text, state_text
from tui.widgets.severity_styles import SEVERITY_CLASSES, SeverityStyles

if TYPE_CHECKING:
    from monitor.engine.traps import TrapFigures


class SummaryBar(SeverityStyles, Static):
    """Counts per severity (problems needing attention first) and since when."""

    COMPONENT_CLASSES: ClassVar[set[str]] = set(SEVERITY_CLASSES)
    _shown: Text | None = None

    def show(
        self,
        board: Board,
        *,
        started_at: float,
        now: float,
        view: str,
        alert: str = "",
        traps: TrapFigures | None = None,
    ) -> None:
        counts = board.tally.counts()
        text = Text()
        if alert:  # first, where even a narrow terminal shows it
            text.append(alert, self.severity_style(Severity.CRIT))
            text.append(" │ ")
        for severity in (Severity.CRIT, Severity.UNKNOWN, Severity.WARN, Severity.OK):
            n = counts.get(severity.name, 0)
            style = self.severity_style(severity) if n else Style()
            text.append(f"{SYMBOLS[severity]} {n} {severity.name}", style)
            text.append("  ")
        if counts.get("ack"):
            text.append(f"{counts['ack']} ack  ", self.severity_style(None, acked=True))
        if counts.get("pending"):
            text.append(f"{counts['pending']} pending  ", self.severity_style(None))
        groups = Counter(g.label for g in board.groups.values())
        if groups:
            text.append("│ groups ")
            for status in (
                GroupStatus.DOWN,
                GroupStatus.UNKNOWN,
                GroupStatus.AT_RISK,
                GroupStatus.DEGRADED,
                GroupStatus.RESILIENT,
            ):
                if groups[status]:
                    text.append(f"{state_text(status)} {groups[status]}", self.state_style(status))
                    text.append("  ")
            if groups[PENDING]:
                text.append(f"{groups[PENDING]} pending  ", self.state_style(None))
            if groups[NOT_EVALUATED]:
                text.append(
                    f"{groups[NOT_EVALUATED]} not evaluated  ", self.state_style(NOT_EVALUATED)
                )
        if traps is not None:
            refused = sum(traps.rejected.values())
            text.append(f"│ traps {sum(traps.received.values())}")
            if refused:
                text.append(f", {refused} refused", self.severity_style(Severity.WARN))
            text.append("  ")
        text.append(f"│ since {clock_text(started_at)}")
        changed = board.last_change()
        if changed is not None:
            text.append(f", last change {clock_text(changed)} ({age_text(now - changed)} ago)")
        if view:
            text.append(f" │ {view}")
        if text != self._shown:
            self._shown = text
            # A fixed height in the .tcss: no layout pass per batch of results.
            self.update(text, layout=False)
