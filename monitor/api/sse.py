"""Server-Sent Events as the WHATWG HTML standard parses them (§9.2 "Server-sent events"),
incrementally, with bounds.

Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next
are one line end); a leading byte-order mark is dropped; `:` starts a comment; a line without a
colon is a field with an empty value; one space after the colon is not part of the value;
`data` lines join with LF; `id` holding NUL is ignored; `retry` only as ASCII digits; an empty
line dispatches the event, but not one without data. Unknown fields are ignored.

A peer can send anything: a line longer than `max_line` bytes and an event whose data passes
`max_event` bytes are discarded whole (counted in `dropped`), never buffered, so memory stays
bounded whatever the stream holds. Bytes that are not UTF-8 are replaced, as the standard says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 1024 * 1024
MAX_EVENT = 4 * 1024 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: `id` is the stream's last event id once it was dispatched (the
    standard keeps the last one seen, so an event without an `id:` line carries it on)."""

    event: str
    data: str
    id: str


class SseParser:
    """Feed it the bytes as they come; it returns the events they complete."""

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self.max_line = max_line
        self.max_event = max_event
        self.last_event_id = ""
        self.retry_ms: int | None = None  # the reconnection time the server asked for
        self.dropped = 0  # events discarded for their size
        self._line = bytearray()
        self._line_too_long = False
        self._after_cr = False
        self._first_line = True
        self._event_type = ""
        self._data: list[str] = []
        self._data_size = 0
        self._id_buffer = ""
        self._discarding = False  # the current event passed a bound: skip to its end

    def feed(self, chunk: bytes) -> list[SseEvent]:
        events: list[SseEvent] = []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._after_cr = chunk.endswith(b"\r")
        start = 0
        for end in _LINE_END.finditer(chunk):
            self._take(chunk[start : end.start()])
            self._end_line(events)
            start = end.end()
        self._take(chunk[start:])
        return events

    def _take(self, part: bytes) -> None:
        if self._line_too_long or not part:
            return
        if len(self._line) + len(part) > self.max_line:
            self._line_too_long = True
            self._line.clear()
            return
        self._line += part

    def _end_line(self, events: list[SseEvent]) -> None:
        line = self._line.decode("utf-8", errors="replace")
        self._line.clear()
        too_long, self._line_too_long = self._line_too_long, False
        if self._first_line:
            self._first_line = False
            line = line.removeprefix(_BOM)
        if too_long:
            self._discard()
        elif not line:
            self._dispatch(events)
        elif not line.startswith(":"):
            name, colon, value = line.partition(":")
            self._field(name, value.removeprefix(" ") if colon else "")

    def _field(self, name: str, value: str) -> None:
        if name == "event":
            self._event_type = value
        elif name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_event:
                self._discard()
            elif not self._discarding:
                self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)

    def _discard(self) -> None:
        if not self._discarding:
            self._discarding = True
            self.dropped += 1
        self._data.clear()

    def _dispatch(self, events: list[SseEvent]) -> None:
        self.last_event_id = self._id_buffer
        data, event_type, discarded = self._data, self._event_type, self._discarding
        self._data, self._data_size, self._event_type, self._discarding = [], 0, "", False
        if data and not discarded:
            events.append(SseEvent(event_type or "message", "\n".join(data), self.last_event_id))
