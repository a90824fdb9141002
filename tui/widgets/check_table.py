"""The check table: sites, links and checks as a tree-like table on the Line API."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.board import Board
from tui.rows import Level, Row, Sort
from tui.widgets.segments import text_segments
from tui.widgets.severity_styles import SEVERITY_CLASSES, SeverityStyles
from tui.widgets.table_cells import age_cell, row_cells

CELL_PADDING = 2  # one space either side of every cell
HEADER_LINES = 1


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

    def show_rows(self, rows: list[Row], now: float, paused: AbstractSet[str]) -> None:
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
        for key, shown_cells in cells.items():
            if key not in self._cells or self._changed(key, shown_cells):
                self._strips.pop(key, None)
        self._cells = cells
        self._written = {
            (key, column): _identity(text)
            for key, shown_cells in cells.items()
            for column, text in shown_cells.items()
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

    def refresh_checks(
        self, check_ids: Iterable[str], now: float, paused: AbstractSet[str]
    ) -> None:
        """Rewrite the changed rows of these checks and of the link, site and group rows above
        them (their status sums up what is below)."""
        above: set[str] = set()
        for check_id in check_ids:
            index = self._index_of.get(check_id)
            if index is not None:
                row = self.shown[index]
                self._write(row, self._cells_of(row, now, paused))
            # Also when the check itself is filtered out: its link, site and groups show it.
            above.update(self.board.tally.rows_above(check_id))
        for key in above:
            index = self._index_of.get(key)
            if index is not None:
                row = self.shown[index]
                self._write(row, self._cells_of(row, now, paused))

    def refresh_ages(self, now: float, paused: AbstractSet[str]) -> None:
        """Ages on screen only: under 60 s every age changes every second, and rewriting
        thousands of off-screen cells a second is what makes a table slow. A row scrolled into
        view shows its age at most a second old."""
        top = max(0, int(self.scroll_y))
        for row in self.shown[top : top + self.size.height]:
            if row.level is Level.CHECK:
                self._write(row, {"age": age_cell(self, self.board, row, now, paused)})

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

    def _cells_of(self, row: Row, now: float, paused: AbstractSet[str]) -> dict[str, Text]:
        trend = self.columns_fit.trend if self.columns_fit else 0
        return row_cells(self, self.board, row, now, paused, trend)


def _identity(text: Text) -> tuple[object, ...]:
    return (text.plain, text.style, tuple(text.spans))
