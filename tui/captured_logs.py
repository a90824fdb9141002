"""Log records while the dashboard owns the terminal.

`logs.configure()` points a handler at stderr, which is the terminal the dashboard draws on: a
record written there lands in the middle of the screen, and the next repaint covers it, so it is
lost as well. While the app runs, the handlers that write to a terminal are set aside and every
record goes to the dashboard instead (as a `LogRecorded` message: the app shows it in the event
log). The records are kept, and when the app has given the terminal back, the handlers return
and get them: the scrollback holds them after the dashboard, tracebacks and all. Handlers that
write elsewhere (a file, a test's capture) go on receiving records as they come.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

from monitor.core.logs import PrintableFormatter
from tui.messages import LogRecorded

KEPT = 1000  # records kept for the terminal's handlers, the newest


class _DashboardHandler(logging.Handler):
    def __init__(self, post: Callable[[LogRecorded], object]) -> None:
        super().__init__()
        self.setFormatter(PrintableFormatter("%(name)s: %(message)s"))
        self.kept: collections.deque[logging.LogRecord] = collections.deque(maxlen=KEPT)
        self._post = post

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = self.format(record).split("\n")
            self.kept.append(record)
            text = lines[0] + (" …" if len(lines) > 1 else "")
            self._post(LogRecorded(record.levelno, record.levelname, record.created, text))
        except Exception:
            self.handleError(record)


class CapturedLogs:
    """`start()` when the app loads, `stop()` when it has ended; `post` is thread-safe (records
    come from worker threads too)."""

    def __init__(self, post: Callable[[LogRecorded], object]) -> None:
        self._handler = _DashboardHandler(post)
        self._parked: list[logging.Handler] = []

    def start(self) -> None:
        root = logging.getLogger()
        self._parked = [handler for handler in root.handlers if _writes_to_terminal(handler)]
        for handler in self._parked:
            root.removeHandler(handler)
        root.addHandler(self._handler)

    def stop(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        for handler in self._parked:
            root.addHandler(handler)
            for record in self._handler.kept:
                if record.levelno >= handler.level:
                    handler.handle(record)
        self._parked = []
        self._handler.kept.clear()


def _writes_to_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
