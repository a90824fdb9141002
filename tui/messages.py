"""The dashboard's messages: what the engine and the history store report to the app, and what
the screens ask of it.

Attributes down, messages up: the app hands its screens what to show (by calling them), and a
screen or widget never calls the app; it posts one of these, and the app, which owns the
engine, decides what follows. A widget's messages about itself (the table's row highlighted, its
header clicked) are declared on the widget, as Textual's own are.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from monitor.core.events import Event
from monitor.core.model import ProbeResult
from tui.state import HistoryLine


class ResultArrived(Message):
    """A probe result from the scheduler's sink, stamped with when it arrived."""

    def __init__(self, result: ProbeResult, arrived: float) -> None:
        super().__init__()
        self.result = result
        self.arrived = arrived


class EventArrived(Message):
    """A state-change event from the state engine."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class HistoryLoaded(Message):
    """What the history store remembers from before this run."""

    def __init__(
        self,
        latencies: dict[str, list[float | None]],
        history: dict[str, list[HistoryLine]],
        events: list[Event],
    ) -> None:
        super().__init__()
        self.latencies = latencies
        self.history = history
        self.events = events


class RunNow(Message):
    """The user asks for these checks to run now (none: nothing is selected)."""

    def __init__(self, check_ids: Sequence[str]) -> None:
        super().__init__()
        self.check_ids = tuple(check_ids)


class TogglePause(Message):
    """The user asks for these checks to be paused, or resumed when all of them are paused."""

    def __init__(self, check_ids: Sequence[str]) -> None:
        super().__init__()
        self.check_ids = tuple(check_ids)


class Acknowledge(Message):
    """The user acknowledges a subject's problem (a check, link or group), saying why, until
    `expires` (as typed: a duration, "4h", or an ISO 8601 time with its offset)."""

    def __init__(self, subject_id: str, comment: str, expires: str) -> None:
        super().__init__()
        self.subject_id = subject_id
        self.comment = comment
        self.expires = expires


class Unacknowledge(Message):
    """The user ends the acknowledgement of a subject's problem."""

    def __init__(self, subject_id: str) -> None:
        super().__init__()
        self.subject_id = subject_id


class LogRecorded(Message):
    """A log record emitted while the dashboard runs (from any thread), formatted inert:
    `text` is `logger: message`, its first line only when it has several (a traceback)."""

    def __init__(self, level: int, level_name: str, at: float, text: str) -> None:
        super().__init__()
        self.level = level
        self.level_name = level_name
        self.at = at
        self.text = text
