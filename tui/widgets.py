"""The dashboard's widgets: the check table, the summary bar, the detail pane and the event log.

Colours come from component classes styled in dashboard.tcss; the text alone (symbols, words)
already says everything, so colour only repeats it.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.console import Console, Group, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from monitor.config.inventory import Check
from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import CertificateInfo, ProbeResult, Severity
from monitor.core.text import printable
from monitor.engine.pipeline import NOT_EVALUATED
from tui.board import Board, Level, Row, Sort
from tui.present import (
    SYMBOLS,
    age_text,
    clock_text,
    info_text,
    soft_text,
    sparkline,
    state_text,
    status_text,
)
from tui.state import HistoryLine, finished_at

GROUP_DETAIL_ROWS = 30  # problems a site, link or group lists in the detail pane
ZOOM_DETAIL_ROWS = 500  # checks it lists zoomed
LOG_CAPACITY = 1024  # event log entries kept
CELL_PADDING = 2  # one space either side of every cell
HEADER_LINES = 1

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


class SeverityStyles:
    """Rich styles for severities, read from the widget's component classes (set in .tcss).

    Looked up thousands of times a second under load, so they are cached until the styles
    change (a theme switch)."""

    _style_cache: dict[str, Style] | None = None

    def component_style(self, name: str) -> Style:
        if self._style_cache is None:
            self._style_cache = {}
        style = self._style_cache.get(name)
        if style is None:
            style = self.get_component_rich_style(name, partial=True)  # type: ignore[attr-defined]
            self._style_cache[name] = style
        return style

    def notify_style_update(self) -> None:
        self._style_cache = None
        super().notify_style_update()  # type: ignore[misc]

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


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Fixed column widths for a table width: fixed widths keep updates O(changed cells)."""

    name: int
    trend: int  # 0: no trend column (a narrow screen)
    info: int
    status: int = 11  # "✔ RESILIENT"
    age: int = 6  # "‖ 59m"

    @classmethod
    def fit(cls, width: int) -> Columns:
        trend = 12 if width >= 110 else 8 if width >= 70 else 0
        count = 5 if trend else 4
        rest = max(20, width - 1 - count * CELL_PADDING - 10 - 6 - trend)
        name = max(16, min(40, rest * 45 // 100))
        return cls(name=name, trend=trend, info=max(8, rest - name))

    def spec(self) -> list[tuple[str, str, int]]:
        """(key, label, width) in order."""
        columns = [("status", "Status", self.status), ("name", "Name", self.name)]
        columns.append(("age", "Age", self.age))
        if self.trend:
            columns.append(("trend", "Latency", self.trend))
        columns.append(("info", "Info", self.info))
        return columns


HEADER_SORTS = {"status": Sort.SEVERITY, "name": Sort.NAME, "age": Sort.AGE}


class CheckTable(SeverityStyles, ScrollView, can_focus=True, inherit_bindings=False):
    """Sites, links and checks as a tree-like table on the Line API: one line per row, under a
    fixed header line.

    Each row's line is rendered once and kept as a Strip until that row's cells change (or the
    width, the styles or the cursor row do), and a change repaints only its own line if it is on
    screen. A frame therefore costs the changed visible rows, not every visible cell: Textual's
    DataTable drops its whole render cache on every `update_cell`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *SEVERITY_CLASSES,
        "row--site",
        "row--link",
        "checks--header",
        "checks--cursor",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Previous row", show=False),
        Binding("down", "cursor_down", "Next row", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "First row", show=False),
        Binding("end", "scroll_end", "Last row", show=False),
    ]

    class RowHighlighted(Message):
        """The cursor moved to another row."""

        def __init__(self, table: CheckTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> CheckTable:
            return self.table

    class HeaderSelected(Message):
        """A column header was clicked."""

        def __init__(self, table: CheckTable, column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> CheckTable:
            return self.table

    def __init__(self, board: Board, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.board = board
        self.shown: list[Row] = []
        self.columns_fit: Columns | None = None
        self.cursor_row = 0
        self._spec: list[tuple[str, str, int]] = []
        self._index_of: dict[str, int] = {}
        self._cells: dict[str, dict[str, Text]] = {}
        # What each cell holds, as (plain text, style, spans): rich's Text equality ignores the
        # base style, and a dimmed (acknowledged) cell must still count as changed.
        self._written: dict[tuple[str, str], tuple[object, ...]] = {}
        self._strips: dict[str, Strip] = {}  # rendered rows (not the cursor's), by row key
        self._cursor_strip: tuple[str, Strip] | None = None
        self._header_strip: Strip | None = None
        self._strip_width = 0

    # --- building ---------------------------------------------------------------------------

    def show_rows(self, rows: list[Row], now: float, paused: set[str]) -> None:
        """Replace the table's rows (a user action: filter, sort, toggle, resize), keeping the
        cursor on the same row where it is still shown. Rows whose cells did not change keep
        their rendered lines."""
        keep = self.selected_key
        fit = Columns.fit(self.size.width or 80)
        if fit != self.columns_fit:
            self.columns_fit = fit
            self._spec = fit.spec()
            self._forget_rendering()
        self.shown = rows
        self._index_of = {row.key: i for i, row in enumerate(rows)}
        cells = {row.key: self._cells_of(row, now, paused) for row in rows}
        for key, row_cells in cells.items():
            if key not in self._cells or self._changed(key, row_cells):
                self._strips.pop(key, None)
        self._cells = cells
        self._written = {
            (key, column): _identity(text)
            for key, row_cells in cells.items()
            for column, text in row_cells.items()
        }
        self._cursor_strip = None
        width = sum(width + CELL_PADDING for _, _, width in self._spec)
        self.virtual_size = Size(width, len(rows) + HEADER_LINES)
        index = self._index_of.get(keep, self.cursor_row) if keep is not None else 0
        self.cursor_row = max(0, min(index, len(rows) - 1))
        self._scroll_to_cursor()
        self.refresh()
        if self.selected_key != keep:
            self.post_message(self.RowHighlighted(self, self.selected_key))

    @property
    def selected_key(self) -> str | None:
        if not self.shown or not 0 <= self.cursor_row < len(self.shown):
            return None
        return self.shown[self.cursor_row].key

    @property
    def selected_row(self) -> Row | None:
        key = self.selected_key
        return None if key is None else self.shown[self.cursor_row]

    def select_key(self, key: str) -> bool:
        index = self._index_of.get(key)
        if index is None:
            return False
        self.move_cursor(row=index)
        return True

    def get_cell(self, key: str, column: str) -> Text:
        return self._cells[key][column]

    # --- the cursor -------------------------------------------------------------------------

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        if not self.shown:
            return
        row = max(0, min(row, len(self.shown) - 1))
        if row == self.cursor_row:
            return
        self._refresh_row(self.cursor_row)
        self.cursor_row = row
        self._cursor_strip = None
        self._refresh_row(row)
        if scroll:
            self._scroll_to_cursor()
        self.post_message(self.RowHighlighted(self, self.selected_key))

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.size.height - HEADER_LINES)
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    @property
    def _page(self) -> int:
        return max(1, self.size.height - HEADER_LINES - 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self.cursor_row - self._page)

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page)

    def action_scroll_home(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_end(self) -> None:
        self.move_cursor(row=len(self.shown) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y < HEADER_LINES:
            column = self._column_at(offset.x)
            if column is not None:
                self.post_message(self.HeaderSelected(self, column))
            return
        index = int(self.scroll_y) + offset.y - HEADER_LINES
        if index < len(self.shown):
            self.move_cursor(row=index)

    def _column_at(self, x: int) -> str | None:
        right = 0
        for key, _, width in self._spec:
            right += width + CELL_PADDING
            if x < right:
                return key
        return None

    def on_focus(self) -> None:
        self._restyle_cursor()

    def on_blur(self) -> None:
        self._restyle_cursor()

    def _restyle_cursor(self) -> None:
        self._cursor_strip = None
        self._refresh_row(self.cursor_row)

    # --- updating ---------------------------------------------------------------------------

    def refresh_checks(self, check_ids: Iterable[str], now: float, paused: set[str]) -> None:
        """Rewrite the changed rows of these checks and of the link, site and group rows above
        them (their status sums up what is below)."""
        above: set[str] = set()
        for check_id in check_ids:
            index = self._index_of.get(check_id)
            if index is not None:
                row = self.shown[index]
                self._write(row, self._cells_of(row, now, paused))
            # Also when the check itself is filtered out: its link, site and groups show it.
            above.update(self.board.rows_above(check_id))
        for key in above:
            index = self._index_of.get(key)
            if index is not None:
                row = self.shown[index]
                self._write(row, self._cells_of(row, now, paused))

    def refresh_ages(self, now: float, paused: set[str]) -> None:
        """Ages on screen only: under 60 s every age changes every second, and rewriting
        thousands of off-screen cells a second is what makes a table slow. A row scrolled into
        view shows its age at most a second old."""
        top = max(0, int(self.scroll_y))
        for row in self.shown[top : top + self.size.height]:
            if row.level is Level.CHECK:
                self._write(row, {"age": self._age_cell(row, now, paused)})

    def _changed(self, key: str, cells: dict[str, Text]) -> bool:
        return any(self._written.get((key, c)) != _identity(t) for c, t in cells.items())

    def _write(self, row: Row, cells: dict[str, Text]) -> None:
        changed = False
        held = self._cells[row.key]
        for column, text in cells.items():
            cell, identity = (row.key, column), _identity(text)
            if self._written.get(cell) != identity:
                self._written[cell] = identity
                held[column] = text
                changed = True
        if changed:
            self._strips.pop(row.key, None)
            if self._cursor_strip is not None and self._cursor_strip[0] == row.key:
                self._cursor_strip = None
            self._refresh_row(self._index_of[row.key])

    def _refresh_row(self, index: int) -> None:
        """Repaint one row's line, if it is on screen."""
        line = index - int(self.scroll_y) + HEADER_LINES
        width, height = self.size  # computed anew on every access: once here
        if HEADER_LINES <= line < height:
            self.refresh(Region(0, line, width, 1))

    # --- rendering --------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_rendering()

    def _forget_rendering(self) -> None:
        self._strips.clear()
        self._cursor_strip = None
        self._header_strip = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._strip_width:
            self._strip_width = width
            self._forget_rendering()
        if y < HEADER_LINES:
            if self._header_strip is None:
                labels = {key: Text(label) for key, label, _ in self._spec}
                header = self.component_style("checks--header")
                self._header_strip = self._render_cells(labels, width, header)
            return self._header_strip
        index = int(self.scroll_y) + y - HEADER_LINES
        if index >= len(self.shown):
            return Strip.blank(width, self.rich_style)
        key = self.shown[index].key
        if index == self.cursor_row:
            if self._cursor_strip is None or self._cursor_strip[0] != key:
                cursor = self.component_style("checks--cursor")
                self._cursor_strip = (key, self._render_cells(self._cells[key], width, cursor))
            return self._cursor_strip[1]
        strip = self._strips.get(key)
        if strip is None:
            strip = self._render_cells(self._cells[key], width)
            self._strips[key] = strip
        return strip

    def _render_cells(self, cells: dict[str, Text], width: int, over: Style | None = None) -> Strip:
        """One line: every cell cut or padded to its column's width, one space either side;
        `over` (the cursor, the header) is laid over the cells' own styles, as DataTable did."""
        console = self.app.console
        base = self.rich_style if over is None else self.rich_style + over
        pad = Segment(" ", base)
        segments: list[Segment] = []
        for key, _, column_width in self._spec:
            text = cells[key]
            if text.cell_len > column_width:
                text = text.copy()
                text.truncate(column_width, overflow="ellipsis")
            segments.append(pad)
            segments.extend(text_segments(console, text, base, over))
            segments.append(Segment(" " * (column_width - text.cell_len + 1), base))
        return Strip(segments).adjust_cell_length(width, base)

    # --- cell contents ----------------------------------------------------------------------

    def _cells_of(self, row: Row, now: float, paused: set[str]) -> dict[str, Text]:
        if row.level is Level.CHECK:
            return self._check_cells(row, now, paused)
        board = self.board
        facts: list[str] = []
        if row.link is None:
            style = self.component_style("row--site")
            group = board.group_status(row)
            if group is not None and group.status is not None:
                facts.append(group.describe())
            if (cause := board.cause(row)) != "":
                facts.append(cause)
            n = len(row.checks)
            if row.site is not None:
                name = Text(row.site.name or row.site.id, style)
                facts.append(f"{row.site.id} · {len(row.site.links)} links · {n} checks")
            else:
                assert row.group is not None
                name = Text(row.group.group.name or row.group.group.id, style)
                sites = len({link.site_id for link in row.links})
                facts.append(f"group {row.group.group.id} · {sites} sites · {n} checks")
            label = None if group is None else group.label
        else:
            style = self.component_style("row--link")
            name = Text(f"  {row.link.id}", style)
            if (cause := board.cause(row)) != "":
                facts.append(cause)
            facts += [d for d in (row.link.role, row.link.medium, row.link.name) if d]
            label = board.link_label(row.link)
        subject = row.subject_id
        if board.engine is not None:
            status = self.state_mark(label)
        else:
            # No state engine (fabricated results): the worst below.
            severity, acked = board.row_status(row.key)
            status = Text(status_text(severity, acked), self.severity_style(severity, acked))
        info = self.held_text(board.held(subject)) + Text(" · ".join(facts), style)
        return {"status": status, "name": name, "age": Text(), "trend": Text(), "info": info}

    def _check_cells(self, row: Row, now: float, paused: set[str]) -> dict[str, Text]:
        check = row.check
        assert check is not None
        check_id = check.ref.check_id
        state = self.board.states[check_id]
        acked = check_id in self.board.acked
        dim = self.component_style("acked") if acked else Style()
        own_id = check_id.rsplit("/", 1)[-1]
        width = self.columns_fit.trend if self.columns_fit else 0
        result = state.result
        confirmed = self.board.check_state(check_id)
        if confirmed is not None and confirmed.is_soft and not acked:
            soft = Severity[confirmed.soft]
            status = Text(
                soft_text(soft, confirmed.attempts, self.board.confirmations[check_id]),
                self.severity_style(soft) + self.component_style("soft"),
            )
        else:
            status = Text(
                status_text(state.severity, acked), self.severity_style(state.severity, acked)
            )
        return {
            "status": status,
            "name": Text(f"    {own_id} ", dim)
            + Text(check.kind, self.component_style("dim") + dim),
            "age": self._age_cell(row, now, paused),
            "trend": Text(sparkline(state.latencies, width), dim),
            "info": self.held_text(self.board.held(check_id))
            + Text("" if result is None else printable(info_text(result, now)), dim),
        }

    def _age_cell(self, row: Row, now: float, paused: set[str]) -> Text:
        assert row.check is not None
        check_id = row.check.ref.check_id
        result = self.board.states[check_id].result
        age = "" if result is None else age_text(now - finished_at(result))
        if check_id in paused:
            return Text(f"‖ {age}".rstrip(), self.component_style("dim"))
        return Text(age)


def _identity(text: Text) -> tuple[object, ...]:
    return (text.plain, text.style, tuple(text.spans))


def text_segments(
    console: Console, text: Text, base: Style, over: Style | None = None
) -> Iterable[Segment]:
    """A one-line Text as segments: its styles on `base`, `over` laid on top of them."""
    # Text.render leaves the text's own style to its caller.
    style = base + console.get_style(text.style, default=Style.null())
    return Segment.apply_style(text.render(console), style, over)


# --- the summary bar ------------------------------------------------------------------------


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
    ) -> None:
        counts = board.counts()
        text = Text()
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
            for label in ("DOWN", "UNKNOWN", "AT RISK", "DEGRADED", "RESILIENT"):
                if groups[label]:
                    text.append(f"{state_text(label)} {groups[label]}", self.state_style(label))
                    text.append("  ")
            if groups["PENDING"]:
                text.append(f"{groups['PENDING']} pending  ", self.state_style(None))
            if groups[NOT_EVALUATED]:
                text.append(
                    f"{groups[NOT_EVALUATED]} not evaluated  ", self.state_style(NOT_EVALUATED)
                )
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


# --- the detail pane ------------------------------------------------------------------------


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


class DetailPane(SeverityStyles, Static):
    """Everything about the selected row: verdicts, error, history, certificate chain.

    Zoomed (the whole screen), a site, link or group lists every check below it, not only
    its problems."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {*SEVERITY_CLASSES, "detail--heading"}

    _height: int | None = None
    zoomed = False

    def show(self, board: Board, row: Row | None, now: float, paused: set[str]) -> None:
        if row is None:
            self._show(Text("No row selected.", self._dim))
        elif row.level is Level.CHECK:
            assert row.check is not None
            self._show(self._check(board, row.check, now, row.check.ref.check_id in paused))
        else:
            self._show(self._group(board, row, now))

    def _show(self, content: RenderableType) -> None:
        """Lay the screen out again only when the pane's height changes: it is rewritten every
        second (its ages move on), and a layout repaints the whole screen."""
        self.update(content, layout=False)
        height = self.get_content_height(Size(0, 0), Size(0, 0), self.content_region.width)
        if height != self._height:
            self._height = height
            self.refresh(layout=True)

    @property
    def _dim(self) -> Style:
        return self.component_style("dim")

    def _heading(self, text: str) -> Text:
        return Text(text, self.component_style("detail--heading"))

    def _group(self, board: Board, row: Row, now: float) -> RenderableType:
        named = row.site is None  # a named group: its links are in several sites
        if row.link is not None:
            assert row.site is not None
            link = row.link
            title = f"{row.site.name or row.site.id} / {link.name or link.id}"
            facts = f"link {link.site_id}/{link.id} · {link.role} · {link.medium}"
            if link.availability_from:
                deciding = ", ".join(cid.rsplit("/", 1)[-1] for cid in link.availability_from)
                facts += f" · up or down by {deciding}"
        elif row.site is not None:
            title = row.site.name or row.site.id
            facts = f"site {row.site.id}" + (
                f" · {', '.join(row.site.tags)}" if row.site.tags else ""
            )
        else:
            assert row.group is not None
            title = row.group.group.name or row.group.group.id
            sites = len({link.site_id for link in row.links})
            facts = f"group {row.group.group.id} · {len(row.links)} links in {sites} sites"
        standing = Text()
        if row.link is not None and board.engine is not None:
            standing = Text("link ") + self.state_mark(board.link_label(row.link))
            if cause := board.cause(row):
                standing.append(f" · {cause}")
        elif row.link is None and (group := board.group_status(row)) is not None:
            standing = self.state_mark(group.label)
            standing.append(f" · {group.describe()}")
            for link in row.links:
                standing.append("\n  ")
                standing += self.state_mark(board.link_label(link))
                name = link.full_id if named else link.id
                standing.append(f" {name} ({link.role or 'link'})")
                if cause := board.link_cause(link):
                    standing.append(f": {cause}", self._dim)
        held = board.held(row.subject_id)
        if held:
            standing.append("\n")
            standing += self.held_text(f"held: {reason}" for reason in held)
        tally = Counter(
            {status_text(severity): n for severity, n in board.row_tally(row.key).items()}
        )
        counts = Text(" · ".join(f"{n} {label}" for label, n in sorted(tally.items())))
        # The problems (zoomed: every check), worst first. A group can hold thousands of
        # checks, and this pane is redrawn every second, so it lists a bounded number.
        table = Table.grid(padding=(0, 1))
        listed = sorted(
            (c for c in row.checks if self.zoomed or board.is_problem(c.ref.check_id)),
            key=lambda c: -_attention_rank(board, c.ref.check_id),
        )
        limit = ZOOM_DETAIL_ROWS if self.zoomed else GROUP_DETAIL_ROWS
        for check in listed[:limit]:
            state = board.states[check.ref.check_id]
            acked = check.ref.check_id in board.acked
            summary = "" if state.result is None else printable(state.result.summary())
            table.add_row(
                Text(
                    status_text(state.severity, acked), self.severity_style(state.severity, acked)
                ),
                Text(check.ref.check_id),
                Text(summary, self._dim, overflow="ellipsis", no_wrap=True),
            )
        more = len(listed) - limit
        what = "checks" if self.zoomed else "problems"
        tail = [Text(f"… and {more} more {what}", self._dim)] if more > 0 else []
        return Group(
            self._heading(title), Text(facts, self._dim), standing, counts, Text(), table, *tail
        )

    def _check(self, board: Board, check: Check, now: float, paused: bool) -> RenderableType:
        check_id = check.ref.check_id
        state = board.states[check_id]
        acked = check_id in board.acked
        parts: list[RenderableType] = [
            self._heading(check_id),
            Text(f"{check.kind} {check.ref.target} · every {_seconds(check.interval)}", self._dim),
        ]
        if check.description:
            parts.append(Text(check.description, self._dim))
        line = Text(status_text(state.severity, acked), self.severity_style(state.severity, acked))
        if state.changed_at is not None:
            line.append(f" since {clock_text(state.changed_at)}")
        result = state.result
        if result is not None:
            done = finished_at(result)
            line.append(f" · last {clock_text(done)} ({age_text(now - done)} ago)")
            line.append(f" · took {result.duration_ms:.0f} ms")
        if paused:
            line.append(" · paused")
        if acked:
            line.append(" · acknowledged")
        parts.append(line)
        confirmed = board.check_state(check_id)
        if confirmed is not None and confirmed.is_soft:
            soft = Severity[confirmed.soft]
            need = board.confirmations[check_id]
            parts.append(
                Text(
                    f"unconfirmed: {status_text(soft)}, {confirmed.attempts} of {need} results"
                ).append(" to confirm", self._dim)
            )
        held = board.held(check_id)
        if held:
            parts.append(self.held_text(f"held: {reason}" for reason in held))
        if result is None:
            parts.append(Text("No result yet in this run.", self._dim))
            if not state.history:
                return Group(*parts)
        else:
            parts += self._result(result, now)
        parts += [Text(), self._heading(f"History (last {len(state.history)})")]
        parts.append(self._history(state.history))
        return Group(*parts)

    def _result(self, result: ProbeResult, now: float) -> list[RenderableType]:
        parts: list[RenderableType] = []
        if result.error is not None:
            parts += [Text(), self._heading("Error")]
            parts.append(Text(f"{result.error.error_class}: {printable(result.error.message)}"))
        if result.verdicts:
            parts += [Text(), self._heading("Verdicts")]
            parts.append(self._verdicts(result))
        if result.certificates:
            parts += [Text(), self._heading("Certificate chain")]
            parts.append(self._certificates(result.certificates, now))
        return parts

    def _verdicts(self, result: ProbeResult) -> Table:
        table = Table.grid(padding=(0, 1))
        # Failing verdicts first, worst first: the reason for the state leads.
        for verdict in sorted(result.verdicts, key=lambda v: -v.severity.rank):
            table.add_row(
                Text(SYMBOLS[verdict.severity], self.severity_style(verdict.severity)),
                Text(printable(verdict.sentence())),
            )
        return table

    def _certificates(self, certificates: tuple[CertificateInfo, ...], now: float) -> Table:
        table = Table.grid(padding=(0, 1))
        for cert in certificates:
            role = "leaf" if cert.position == 0 else f"#{cert.position}"
            days = cert.days_left(now)
            if cert.not_after is None or days is None:
                expiry = "not after unreadable"
            else:
                not_after = dt.datetime.fromtimestamp(cert.not_after, dt.UTC)
                expiry = f"not after {not_after:%Y-%m-%d} ({days:.0f} days left)"
            table.add_row(Text(role, self._dim), Text(printable(cert.subject)))
            table.add_row(Text(""), Text(f"issuer {printable(cert.issuer)}", self._dim))
            table.add_row(
                Text(""),
                Text(
                    f"{expiry} · {cert.key_type} {cert.key_bits}"
                    f" · {printable(cert.signature_algorithm)}"
                    + (" · self-signed" if cert.self_signed else "")
                ),
            )
            if cert.malformed:
                table.add_row(Text(""), Text("malformed: " + "; ".join(cert.malformed)))
        return table

    def _history(self, history: tuple[HistoryLine, ...]) -> Table:
        table = Table.grid(padding=(0, 1))
        for line in reversed(history):
            table.add_row(
                Text(clock_text(line.at), self._dim),
                Text(status_text(line.severity), self.severity_style(line.severity)),
                Text(printable(line.summary), overflow="ellipsis", no_wrap=True),
            )
        return table


def _attention_rank(board: Board, check_id: str) -> int:
    severity = board.states[check_id].severity
    if severity is None or check_id in board.acked:
        return -1
    return severity.rank


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"


# --- the event log --------------------------------------------------------------------------


class EventLog(SeverityStyles, ScrollView, can_focus=True, inherit_bindings=False):
    """State changes, newest at the bottom, each with the time it happened.

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
        super().on_mount()
        self._show_title()

    def record(self, event: Event) -> None:
        self.write(self.event_line(event))

    def record_older(self, events: Sequence[Event]) -> None:
        """Events from before this run (the history store's), above what is already shown."""
        first_shown = self._seq_at(int(self.scroll_y))
        room = LOG_CAPACITY - len(self._entries)
        for event in reversed(events[max(0, len(events) - room) :]):
            self._older_seq -= 1
            self._entries.appendleft((self._older_seq, self.event_line(event)))
        self._place(first_shown)

    def event_line(self, event: Event) -> Text:
        """A confirmed change of a check, link or group (or its first state), or a check
        starting or stopping to flap, with why its notification is held."""
        line = Text(f"{clock_text(event.at)} ")
        if event.kind is EventKind.FLAPPING_START:
            line.append("⇅ flapping", self.component_style("held"))
        elif event.kind is EventKind.FLAPPING_STOP:
            line.append("⇅ settled", self.component_style("dim"))
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


class FilterInput(Input):
    """Filter-as-you-type; escape clears it (handled by the screen)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "screen.back", "Clear filter", tooltip="and back to the table", show=False
        ),
    ]
