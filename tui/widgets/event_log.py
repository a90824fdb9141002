"""The event log: confirmed state changes as they happen, newest at the bottom, and the log
records of the dashboard's run."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from logging import ERROR, WARNING
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from monitor.core.events import Event, EventKind, Subject
from monitor.core.text import printable
from tui.messages import LogRecorded
from tui.present import clock_text
from tui.widgets.segments import text_segments
from tui.widgets.severity_styles import SEVERITY_CLASSES, SeverityStyles

LOG_CAPACITY = 1024  # event log entries kept


class EventLog(SeverityStyles, ScrollView, can_focus=True, inherit_bindings=False):
    """State changes, newest at the bottom, each with the time it happened; and the log records
    emitted while the dashboard runs (the terminal is not theirs to write on).

    Like `tail -f`, it follows: the newest entry is in view as it arrives, until the user
    scrolls back (keys or wheel); then the entries in view stay put while new ones arrive
    below, and the title counts them, until End (or scrolling to the bottom) follows again.

    On the Line API, like the table: each entry is rendered once. Its virtual height grows in
    doublings (entries aligned to the bottom), so a new entry costs a repaint of the log, not a
    layout of the screen as a growing RichLog does. Every scroll here is immediate: a deferred
    one would leave the position behind a burst of entries."""

    COMPONENT_CLASSES: ClassVar[set[str]] = set(SEVERITY_CLASSES)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "line(-1)", "Older event", show=False),
        Binding("down", "line(1)", "Newer event", show=False),
        Binding("pageup", "page(-1)", "Older page", show=False),
        Binding("pagedown", "page(1)", "Newer page", show=False),
        Binding("home", "oldest", "Oldest event", show=False),
        Binding("end", "follow", "Follow", tooltip="newest event, and follow new ones", show=False),
    ]
    TITLE = "Events"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._entries: collections.deque[tuple[int, Text]] = collections.deque(maxlen=LOG_CAPACITY)
        self._next_seq = 0
        self._older_seq = 0  # entries from before this run count down from here
        self._strips: dict[int, Strip] = {}
        self._strip_width = 0
        self._blank_top = 0
        self.following = True
        self.unseen = 0  # entries that arrived below the view while scrolled back

    @property
    def texts(self) -> list[str]:
        """The entries' plain text, oldest first."""
        return [text.plain for _, text in self._entries]

    def on_mount(self) -> None:
        # (Textual runs ScrollView's own on_mount as well: every class's handler is called.)
        self._show_title()

    def record(self, event: Event) -> None:
        self.write(self.event_line(event))

    def record_log(self, record: LogRecorded) -> None:
        """A log record (already inert text), its level coloured as a severity would be."""
        level = record.level
        style = "sev--crit" if level >= ERROR else "sev--warn" if level >= WARNING else "dim"
        line = Text(f"{clock_text(record.at)} ")
        line.append(record.level_name, self.component_style(style))
        self.write(line.append(f"  {record.text}"))

    def record_older(self, events: Sequence[Event]) -> None:
        """Events from before this run (the history store's), above what is already shown."""
        first_shown = self._seq_at(int(self.scroll_y))
        room = LOG_CAPACITY - len(self._entries)
        for event in reversed(events[max(0, len(events) - room) :]):
            self._older_seq -= 1
            self._entries.appendleft((self._older_seq, self.event_line(event)))
        self._place(first_shown)

    def event_line(self, event: Event) -> Text:
        """A confirmed change of a check, link or group (or its first state), a check
        starting or stopping to flap, with why its notification is held, or an SNMP trap a
        device sent (on its check), or a link's route changing."""
        line = Text(f"{clock_text(event.at)} ")
        if event.kind is EventKind.FLAPPING_START:
            line.append("⇅ flapping", self.component_style("held"))
        elif event.kind is EventKind.FLAPPING_STOP:
            line.append("⇅ settled", self.component_style("dim"))
        elif event.kind is EventKind.TRAP:
            line.append("✉ trap", self.component_style("dim"))
        elif event.kind is EventKind.PATH_CHANGE:  # its cause says where; the routes are long
            line.append("⇄ path changed", self.component_style("held"))
        else:
            line += self.state_mark(event.before)
            line.append(" → ")
            line += self.state_mark(event.after)
        subject = "" if event.subject is Subject.CHECK else f"{event.subject} "
        line.append(f"  {subject}{event.subject_id}  ")
        line.append(printable(event.cause), self.component_style("dim"))
        if event.suppressed:
            line.append("  ")
            line += self.held_text(f"held: {reason}" for reason in event.suppressed)
        return line

    def write(self, line: Text) -> None:
        first_shown = self._seq_at(int(self.scroll_y))
        if len(self._entries) == self._entries.maxlen:
            self._strips.pop(self._entries[0][0], None)
        self._entries.append((self._next_seq, line))
        self._next_seq += 1
        if not self.following:
            self.unseen += 1
        self._place(first_shown)

    def _place(self, first_shown: int | None) -> None:
        """After entries came or went: the newest in view when following; else the same
        entries as before (the one at the top stays at the top)."""
        self._fit()
        if self.following:
            self._scroll(self.max_scroll_y)
        elif first_shown is not None:
            index = max(0, first_shown - self._entries[0][0])
            self._scroll(self._blank_top + index)
        self._show_title()
        self.refresh()

    def on_resize(self) -> None:
        self._place(self._seq_at(int(self.scroll_y)))

    def _scroll(self, y: float) -> None:
        # Forced: until the next layout shows the scrollbar, the first entry beyond the view
        # would be refused a scroll, and the log would stay on the start-up burst.
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    # The blank lines above the oldest entry (the virtual height only doubles) are never
    # shown: however far it is scrolled back, the oldest entry is the top line.
    def validate_scroll_y(self, value: float) -> float:
        return max(min(self._blank_top, self.max_scroll_y), super().validate_scroll_y(value))

    def validate_scroll_target_y(self, value: float) -> float:
        top = min(self._blank_top, self.max_scroll_y)
        return max(top, super().validate_scroll_target_y(value))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Whatever moved the view (keys, wheel, scrollbar, a new entry): at the bottom it
        follows, above it it stays."""
        super().watch_scroll_y(old_value, new_value)
        following = new_value >= self.max_scroll_y
        if following != self.following:
            self.following = following
            if following:
                self.unseen = 0
            self._show_title()

    def _show_title(self) -> None:
        if self.following or not self.unseen:
            title = self.TITLE if self.following else f"{self.TITLE} · scrolled back"
        else:
            title = f"{self.TITLE} · {self.unseen} newer below · End follows"
        if self.border_title != title:
            self.border_title = title

    # --- keys: every move immediate, so the following state is right at once -------------

    def action_line(self, step: int) -> None:
        self._scroll(self.scroll_y + step)

    def action_page(self, direction: int) -> None:
        self._scroll(self.scroll_y + direction * max(1, self.size.height - 1))

    def action_oldest(self) -> None:
        self._scroll(self._blank_top)

    def action_follow(self) -> None:
        self._scroll(self.max_scroll_y)

    def _fit(self) -> None:
        """Entries from the top while they fit; beyond, aligned to the bottom of a virtual
        height that only doubles."""
        count, height = len(self._entries), self.size.height
        if count <= height:
            rows, self._blank_top = height, 0
        else:
            rows = min(LOG_CAPACITY, 1 << (count - 1).bit_length())
            self._blank_top = rows - count
        self.virtual_size = Size(self.size.width, rows)

    def _seq_at(self, virtual_y: int) -> int | None:
        index = virtual_y - self._blank_top
        return self._entries[index][0] if 0 <= index < len(self._entries) else None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._strip_width:
            self._strip_width = width
            self._strips.clear()
        index = int(self.scroll_y) + y - self._blank_top
        if not 0 <= index < len(self._entries):
            return Strip.blank(width, self.rich_style)
        seq, text = self._entries[index]
        strip = self._strips.get(seq)
        if strip is None:
            segments = text_segments(self.app.console, text, self.rich_style)
            strip = Strip(segments).crop_extend(0, width, self.rich_style)
            self._strips[seq] = strip
        return strip
