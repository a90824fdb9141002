"""The dashboard screen: the summary, the filter box, the check table, the event log and the
detail pane, and every key that works on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input

from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.engine.state import EngineState
from tui.board import Board
from tui.messages import Acknowledge, LogRecorded, RunNow, TogglePause, Unacknowledge
from tui.rows import Level, Row, Sort
from tui.screens.acknowledge import AckAnswer, AckPrompt
from tui.state import AckShown, HistoryLine
from tui.widgets.check_table import HEADER_SORTS, CheckTable
from tui.widgets.detail_pane import DetailPane
from tui.widgets.detail_scroll import DetailScroll
from tui.widgets.event_log import EventLog
from tui.widgets.filter_input import FilterInput
from tui.widgets.summary_bar import SummaryBar

if TYPE_CHECKING:
    from monitor.engine.traps import TrapFigures  # the receiver (pysnmp) loads only to listen

DETAIL_TITLE = "Detail"
FILTER_DELAY = 0.15  # seconds of typing pause before the table is rebuilt
PROBLEMS_REFRESH = 1.0  # at most this often, rows join or leave the "problems only" view
TICK = 1.0  # seconds between updates of ages, the summary's "ago" and the detail pane
_SORT_CYCLE = (Sort.NAME, Sort.SEVERITY, Sort.AGE)


class DashboardScreen(Screen[None]):
    """The table of sites, links and checks, with the summary above it and the event log and
    the detail pane beside it. The app hands it results, events and which checks are paused;
    what the user asks of the engine (run now, pause) it posts to the app as messages."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Short descriptions fit the footer at 80 columns; the help screen adds the tooltip.
        Binding("slash", "filter", "Filter", tooltip="filter rows as you type"),
        Binding(
            "escape",
            "back",
            "Back",
            tooltip="end the zoom, clear the filter, back to the table",
            show=False,
        ),
        Binding("p", "toggle_problems", "Problems", tooltip="show problems only, or everything"),
        Binding("s", "cycle_sort", "Sort", tooltip="sort by name, severity, age (oldest first)"),
        Binding("n", "next_problem", "Next", tooltip="jump to the next unacknowledged problem"),
        Binding("r", "run_now", "Run", tooltip="run the selected check(s) now"),
        Binding("space", "toggle_pause", "Pause", tooltip="pause or resume the selected check(s)"),
        Binding(
            "a",
            "acknowledge",
            "Ack",
            tooltip="acknowledge the selected problem (a check, link or group), or end it",
        ),
        # Not in the footer: at 80 columns it would push Help and Quit off the screen.
        Binding(
            "enter",
            "zoom",
            "Zoom",
            tooltip="the selected row's detail full screen, or back",
            show=False,
        ),
        Binding("e", "focus_pane('events')", "Events", tooltip="focus the event log", show=False),
        Binding("d", "focus_pane('detail')", "Detail", tooltip="focus the detail pane", show=False),
        Binding("tab", "app.focus_next", "Next pane", show=False),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False),
        # ctrl+c quits (the app's binding comes first); the selection is copied with super+c.
        Binding(
            "super+c",
            "screen.copy_text",
            "Copy",
            tooltip="text selected with the mouse",
            show=False,
        ),
    ]

    def __init__(self, board: Board, *, clock: Callable[[], float], started_at: float) -> None:
        super().__init__()
        self.board = board
        self.now = clock
        self.started_at = started_at
        self.paused: AbstractSet[str] = frozenset()  # checks the scheduler holds, as the app says
        self.connection = ""  # what is wrong with the link to a remote engine, as the app says
        self.traps: TrapFigures | None = None  # what the trap receiver took, as the app says
        self.filter_text = ""
        self.problems_only = False
        self.sort = Sort.NAME
        self._filter_timer: Timer | None = None
        self._view_dirty = False

    def compose(self) -> ComposeResult:
        yield SummaryBar(id="summary")
        yield FilterInput(placeholder="filter: site, link, check, kind, target…", id="filter")
        with Container(id="main"):
            with Vertical(id="left"):
                yield CheckTable(self.board, id="checks")
                yield EventLog(id="events")
            with DetailScroll(id="detail-scroll"):
                yield DetailPane(id="detail")
        yield Footer()

    @property
    def table(self) -> CheckTable:
        return self.query_one(CheckTable)

    @property
    def live(self) -> bool:
        """Whether the widgets are there: timers may still fire while the app shuts down."""
        return bool(self.query(CheckTable))

    def on_mount(self) -> None:
        self.query_one(DetailScroll).border_title = DETAIL_TITLE
        self.set_interval(PROBLEMS_REFRESH, self._refresh_view_if_dirty)
        self.set_interval(TICK, self.tick)
        self.table.focus()

    def on_resize(self) -> None:
        self.call_after_refresh(self.rebuild)

    # --- what the app feeds in ---------------------------------------------------------------

    def apply_results(
        self,
        results: Sequence[ProbeResult],
        events: Sequence[Event] = (),
        engine: EngineState | None = None,
    ) -> None:
        """One coalesced batch: fold it into the board and rewrite only the changed cells.
        `events` and `engine` come from the state engine when it runs."""
        touched, changes = self.board.apply(results, engine)
        self.board.note(events)
        shown = [e for e in (*changes, *events) if e.kind is not EventKind.SOFT]
        if not (touched or shown) or not self.live:
            return
        now = self.now()
        self.table.refresh_checks(touched, now, self.paused)
        log = self.query_one(EventLog)
        for event in shown:
            log.record(event)
        if shown and (self.problems_only or self.sort is Sort.SEVERITY):
            # Rows join or leave the view, or move up or down: at most once a second.
            self._view_dirty = True
        self._show_summary(now)
        # A selected group's pane follows on the next tick: a busy group changes every batch.
        if self.table.selected_key in touched:
            self._show_detail(now)

    def show_history(
        self,
        latencies: dict[str, list[float | None]],
        history: dict[str, list[HistoryLine]],
        events: Sequence[Event],
    ) -> None:
        """What the history store remembers from before this run: in front of what it saw."""
        if not self.live:
            return
        touched = self.board.preload(latencies, history)
        self.board.note(events)
        self.query_one(EventLog).record_older(events)
        now = self.now()
        self.table.refresh_checks(touched, now, self.paused)
        self._show_detail(now)

    def show_log(self, record: LogRecorded) -> None:
        """A log record of this run, in the event log."""
        if self.live:
            self.query_one(EventLog).record_log(record)

    def tick(self) -> None:
        """Once a second: ages, the summary's 'ago' and the detail pane move on."""
        if not self.live:
            return
        now = self.now()
        self.table.refresh_ages(now, self.paused)
        self._show_summary(now)
        self._show_detail(now)

    def rebuild(self, keep_selected: bool = False) -> None:
        """Rebuild the rows for the current filter, toggle and sort. `keep_selected`: the
        selected row stays even if the problems toggle would now leave it out (the rebuild
        comes from new results, not from the user)."""
        if not self.live:
            return
        now = self.now()
        keep = self.table.selected_key if keep_selected else None
        rows = self.board.rows(self.filter_text, self.problems_only, self.sort, keep)
        self.table.show_rows(rows, now, self.paused)
        self._view_dirty = False
        self._show_summary(now)
        self._show_detail(now)

    def _refresh_view_if_dirty(self) -> None:
        if self._view_dirty:
            self.rebuild(keep_selected=True)

    def _show_summary(self, now: float) -> None:
        view = [f"sort: {self.sort.value}"]
        if self.problems_only:
            view.append("problems only")
        if self.filter_text:
            view.append(f"filter: {self.filter_text}")
        self.query_one(SummaryBar).show(
            self.board,
            started_at=self.started_at,
            now=now,
            view=" · ".join(view),
            alert=self.connection,
            traps=self.traps,
        )

    def _show_detail(self, now: float) -> None:
        self.query_one(DetailPane).show(self.board, self.table.selected_row, now, self.paused)

    # --- table events ------------------------------------------------------------------------

    @on(CheckTable.RowHighlighted, "#checks")
    def _highlighted(self) -> None:
        self._show_detail(self.now())

    @on(CheckTable.HeaderSelected, "#checks")
    def _header_clicked(self, event: CheckTable.HeaderSelected) -> None:
        sort = HEADER_SORTS.get(event.column)
        if sort is not None:
            self.sort = sort
            self.rebuild()

    # --- the filter ---------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        """Escape: out of the zoom and the filter, back to the table."""
        if self.maximized is not None:
            self.minimize()
        box = self.query_one(FilterInput)
        box.value = ""
        box.display = False
        self.table.focus()
        if self.filter_text:
            self.filter_text = ""
            self.rebuild()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, lambda: self._apply_filter(event.value))

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._apply_filter(event.value)
        if not event.value:
            self.query_one(FilterInput).display = False
        self.table.focus()

    def _apply_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self.rebuild()

    # --- panes and zoom -----------------------------------------------------------------------

    def action_focus_pane(self, pane: str) -> None:
        if self.maximized is not None:
            self.minimize()
        widget = self.query_one(EventLog) if pane == "events" else self.query_one(DetailScroll)
        widget.focus()

    def action_zoom(self) -> None:
        """The selected row's detail on the whole screen (every check below a group, not only
        its problems); again, or escape, returns."""
        if self.maximized is not None:
            self.minimize()
            return
        pane = self.query_one(DetailScroll)
        self.maximize(pane, container=False)
        pane.focus()

    def watch_maximized(self, maximized: Widget | None) -> None:
        # Escape reaches here too: Textual minimizes on escape before any binding sees it.
        zoomed = maximized is not None
        pane = self.query_one(DetailScroll)
        pane.border_title = f"{DETAIL_TITLE} · zoomed · escape returns" if zoomed else DETAIL_TITLE
        self.query_one(DetailPane).zoomed = zoomed
        if not zoomed:
            self.table.focus()
        self._show_detail(self.now())

    # --- view actions -------------------------------------------------------------------------

    def action_toggle_problems(self) -> None:
        self.problems_only = not self.problems_only
        self.rebuild()

    def action_cycle_sort(self) -> None:
        self.sort = _SORT_CYCLE[(_SORT_CYCLE.index(self.sort) + 1) % len(_SORT_CYCLE)]
        self.rebuild()

    def action_next_problem(self) -> None:
        rows = self.table.shown
        if not rows:
            return
        start = max(self.table.cursor_row, 0)
        for step in range(1, len(rows) + 1):
            row = rows[(start + step) % len(rows)]
            if row.level is Level.CHECK and self.board.needs_attention(row.key):
                self.table.select_key(row.key)
                return
        self.notify("No unacknowledged problem in view.", timeout=3)

    # --- commands to the engine ---------------------------------------------------------------

    def _selected_checks(self) -> list[str]:
        row = self.table.selected_row
        return [] if row is None else [check.ref.check_id for check in row.checks]

    def action_run_now(self) -> None:
        self.post_message(RunNow(self._selected_checks()))

    def action_toggle_pause(self) -> None:
        check_ids = self._selected_checks()
        if check_ids:
            self.post_message(TogglePause(check_ids))

    def show_paused(self, paused: AbstractSet[str]) -> None:
        """The checks the scheduler now holds: their rows and the detail pane say so."""
        changed, self.paused = self.paused ^ paused, paused
        if not (changed and self.live):
            return
        now = self.now()
        self.table.refresh_checks(changed, now, self.paused)
        self._show_detail(now)

    def action_acknowledge(self) -> None:
        """Acknowledge the selected row's problem (asking why and for how long), or end its
        acknowledgement."""
        row = self.table.selected_row
        if row is None:
            self.notify("Select a row to acknowledge.", timeout=3)
            return
        subject_id = row.subject_id
        if subject_id in self.board.acks or row.key in self.board.acked:
            self.post_message(Unacknowledge(subject_id))
            return
        problem = self.board.problem_of(row)
        if problem is None:
            self.notify("Only a problem can be acknowledged.", timeout=3)
            return

        def answered(answer: AckAnswer | None) -> None:
            if answer is not None:
                self.post_message(Acknowledge(subject_id, answer.comment, answer.expires))

        self.app.push_screen(
            AckPrompt(f"{_subject_words(row)} ({problem})", clock=self.now), answered
        )

    def show_acknowledged(self, acks: Mapping[str, AckShown]) -> None:
        """The acknowledgements in force now, by subject id: rows, summary and detail say
        so."""
        changed = self.board.acknowledged(acks)
        if not (changed and self.live):
            return
        now = self.now()
        self.table.refresh_checks(changed, now, self.paused)
        self._show_summary(now)
        self._show_detail(now)
        if self.sort is Sort.SEVERITY:
            self._view_dirty = True  # an acknowledged problem sorts below the others

    def show_traps(self, figures: TrapFigures) -> None:
        """The trap receiver's counts, for the summary line."""
        if figures != self.traps:
            self.traps = figures
            if self.live:
                self._show_summary(self.now())

    def show_connection(self, text: str) -> None:
        """What is wrong with the link to the engine ("disconnected since ..."), or nothing."""
        self.connection = text
        if self.live:
            self._show_summary(self.now())


def _subject_words(row: Row) -> str:
    """The subject of a row as the engine names it: `check psap/fibre/cad-api`."""
    kind = {Level.CHECK: "check", Level.LINK: "link"}.get(row.level, "group")
    return f"{kind} {row.subject_id}"
