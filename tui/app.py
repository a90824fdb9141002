"""The commwatch dashboard: the engine runs in the app's own event loop, as a worker.

Data flows one way. The engine (`Monitor`: scheduler -> state engine -> history and alerts)
posts every result and every state-change event to the app as a message (never blocking), once
it is stored when history is on; they are collected and applied on a short timer with the
state engine's state, so a burst costs one update of the changed rows. Commands (run now, pause,
resume) come up from the screens as messages (`tui.messages`) and go down only through the
scheduler's API; what follows (which checks are paused) the app hands back to the screen. On
start, a worker thread reads what the history store remembers, so a restart keeps the
sparklines, history and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from monitor.config.inventory import Check, Inventory
from monitor.config.traps import TrapsConfig
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.engine.acks import moment
from monitor.engine.pipeline import Monitor
from monitor.engine.scheduler import Steering
from monitor.engine.state import EngineState
from monitor.store.controls import AckChange, Control
from monitor.store.history import HistoryStore
from monitor.store.schema import HistoryError
from tui.board import Board
from tui.captured_logs import CapturedLogs
from tui.messages import (
    Acknowledge,
    EventArrived,
    HistoryLoaded,
    LogRecorded,
    ResultArrived,
    RunNow,
    TogglePause,
    Unacknowledge,
)
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.state import HISTORY, TREND_POINTS, AckShown, HistoryLine
from tui.widgets.check_table import CheckTable
from tui.widgets.detail_scroll import DetailScroll
from tui.widgets.event_log import EventLog
from tui.widgets.filter_input import FilterInput

FLUSH_INTERVAL = 0.1  # seconds: results arriving within this are applied as one batch
TRAPS_INTERVAL = 1.0  # seconds between updates of the summary's trap counts
ENGINE_STOP_WAIT = 3.0
HISTORY_EVENTS = 500  # stored events shown in the log on start
HISTORY_SPAN = 7 * 86400.0  # ... from at most this far back
# The screen's class by its width: dashboard.tcss stacks the panes on -narrow screens and puts
# the detail pane beside the table on -wide ones. (Named here, not written in the class: Textual
# declares the class variable as `ClassVar[...] | None`, which a type checker takes for an
# instance variable that a class variable may not override.)
BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]


class CommwatchApp(App[None]):
    """The live dashboard over an inventory.

    `checks` are the rows (None: the whole inventory), `judged_by` the checks whose engine
    judges the links and groups (None: those). `engine=False` shows the inventory without
    running anything: results then come only from
    `deliver()` (tests, benchmarks). `lab` is entered before the engine starts and left after it
    stops, so a demo lab can live in the same loop as the checks against it. `history=False`
    neither stores nor reads the history; `alerts=False` sends no notifications; `traps`
    listens for SNMP traps and informs (monitor.engine.traps), counted in the summary line.
    """

    # Absolute, so subclasses defined elsewhere (the demo, the benchmark) find it too.
    CSS_PATH = Path(__file__).with_name("dashboard.tcss")
    TITLE = "commwatch"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = BREAKPOINTS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        # As in every terminal tool; a priority binding, so no widget (the filter box, whose
        # ctrl+c would copy) can take it.
        Binding("ctrl+c,ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        inventory: Inventory,
        *,
        checks: Iterable[Check] | None = None,
        judged_by: Iterable[Check] | None = None,
        engine: bool = True,
        lab: AbstractAsyncContextManager[Any] | None = None,
        clock: Callable[[], float] = time.time,
        start_spread: float | None = None,
        history: bool = True,
        alerts: bool = True,
        traps: TrapsConfig | None = None,
        operator: str | None = None,
    ) -> None:
        super().__init__()
        self.inventory = inventory
        # Who acknowledges here: the user running the dashboard unless told.
        self.operator = operator or _operator()
        self.board = Board(inventory, checks, judged_by)
        self.now = clock
        self.started_at = clock()
        self.monitor: Monitor | None = None
        self._engine = engine
        self._lab = lab
        self._start_spread = start_spread
        self._history = history
        self._alerts = alerts
        self._traps = traps
        self._engine_worker: Worker[None] | None = None
        self._arrivals: list[ResultArrived] = []
        self._events: list[Event] = []
        self._logs = CapturedLogs(self.post_message)

    @property
    def scheduler(self) -> Steering | None:
        return None if self.monitor is None else self.monitor.scheduler

    @property
    def dashboard(self) -> DashboardScreen:
        screen = self.get_screen("dashboard")
        assert isinstance(screen, DashboardScreen)
        return screen

    def on_load(self) -> None:
        # Before the screen is taken over: from here on, log records go to the dashboard.
        self._logs.start()

    def on_unmount(self) -> None:
        # The terminal is given back by now: its handlers return, with what they missed.
        self._logs.stop()

    def on_mount(self) -> None:
        dashboard = DashboardScreen(self.board, clock=self.now, started_at=self.started_at)
        self.install_screen(dashboard, "dashboard")
        self.push_screen("dashboard")
        self.set_interval(FLUSH_INTERVAL, self._apply_pending)
        self.call_after_refresh(self._first_build)
        if self._history:
            self.run_worker(self._read_history, name="history", thread=True)
        if self._engine:
            self._engine_worker = self.run_worker(self._run_engine(), name="engine")
            if self._traps is not None:
                self.set_interval(TRAPS_INTERVAL, self._show_traps)

    def _first_build(self) -> None:
        self.dashboard.rebuild()
        # A full garbage collection walks every tracked object, and at thousands of checks it
        # pauses the screen for 100 ms and more. The inventory, the board and the widgets live
        # as long as the app: freezing them leaves the collector only what comes and goes.
        gc.collect()
        gc.freeze()

    async def _run_engine(self) -> None:
        async with self._lab if self._lab is not None else contextlib.nullcontext():
            self.monitor = Monitor(
                self.inventory,
                tuple(self.board.checks.values()),
                on_result=self.deliver,
                on_event=self.deliver_event,
                history=self._history,
                alerts=self._alerts,
                start_spread=self._start_spread,
                traps=self._traps,
            )
            self.monitor.watch_controls(self._engine_control)
            try:
                await self.monitor.run()
            except self.monitor.start_errors() as exc:
                self.monitor = None
                self.notify(
                    f"The engine could not start: {exc}", severity="error", timeout=30, markup=False
                )

    def _show_traps(self) -> None:
        figures = None if self.monitor is None else self.monitor.figures().traps
        if figures is not None:
            self.dashboard.show_traps(figures)

    def _read_history(self) -> None:
        """In a thread: the store's latest points, history and events from before this run."""
        path = self.inventory.resilience.history.path
        if not path.exists():
            return
        before = self.started_at
        try:
            store = HistoryStore(path)
        except HistoryError:
            # A file the engine's writer is creating this moment (no tables yet: the first run
            # on this path) holds nothing from before this run; any other unusable path is the
            # engine's to report, and it does at its start.
            return
        with store:
            series = store.recent_latencies(per_check=TREND_POINTS)
            latencies = {
                cid: [p.latency_ms for p in points if p.started_at < before]
                for cid, points in series.items()
            }
            history = {
                cid: [
                    HistoryLine(r.started_at + r.duration_ms / 1000, r.severity, r.summary)
                    for r in store.recent_results(cid, HISTORY)
                    if r.started_at < before
                ]
                for cid in self.board.checks.keys() & series.keys()
            }
            kinds = (
                EventKind.HARD,
                EventKind.FLAPPING_START,
                EventKind.FLAPPING_STOP,
                EventKind.TRAP,
                EventKind.PATH_CHANGE,
            )
            events = store.events_since(before - HISTORY_SPAN, before, kinds)[-HISTORY_EVENTS:]
        self.post_message(HistoryLoaded(latencies, history, events))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        self.dashboard.show_history(message.latencies, message.history, message.events)

    # --- results in --------------------------------------------------------------------------

    def deliver(self, result: ProbeResult) -> None:
        """The engine's sink for results: never blocks, whatever the screen is doing."""
        self.post_message(ResultArrived(result, time.perf_counter()))

    def deliver_event(self, event: Event) -> None:
        self.post_message(EventArrived(event))

    def on_result_arrived(self, message: ResultArrived) -> None:
        self._arrivals.append(message)

    def on_event_arrived(self, message: EventArrived) -> None:
        self._events.append(message.event)

    def _apply_pending(self) -> None:
        if self._arrivals or self._events:
            arrivals, self._arrivals = self._arrivals, []
            self.apply_arrivals(arrivals)

    def apply_arrivals(self, arrivals: Sequence[ResultArrived]) -> None:
        events, self._events = self._events, []
        self.dashboard.apply_results(
            [arrival.result for arrival in arrivals], events, self.engine_state()
        )
        # Those the engine took up at its start show once their problems have.
        self.show_engine_acks()

    def show_engine_acks(self) -> None:
        """The engine's acknowledgements, as the dashboard shows them."""
        if self.monitor is not None:
            self.dashboard.show_acknowledged(
                {a.subject_id: AckShown(a.by, a.expires, a.comment) for a in self.monitor.acks}
            )

    def _engine_control(self, change: Control) -> None:
        if isinstance(change, AckChange):
            self.show_engine_acks()

    def engine_state(self) -> EngineState | None:
        """The state engine's state: it moves in the same loop as it reports, so read now it
        goes with the results and events reported so far."""
        return None if self.monitor is None else self.monitor.state

    def on_log_recorded(self, message: LogRecorded) -> None:
        self.dashboard.show_log(message)
        if message.level >= logging.ERROR:
            self.notify(message.text, title=message.level_name, severity="error", markup=False)

    # --- commands down: what the screens ask for ------------------------------------------

    def on_run_now(self, message: RunNow) -> None:
        scheduler = self._running_scheduler()
        if scheduler is None or not message.check_ids:
            return
        for check_id in message.check_ids:
            scheduler.run_now(check_id)
        self.notify(f"Running {checks_text(message.check_ids)} now.", timeout=2)

    def on_toggle_pause(self, message: TogglePause) -> None:
        """Pause the checks, or resume them when all are paused."""
        scheduler = self._running_scheduler()
        if scheduler is None:
            return
        check_ids = message.check_ids
        resume = all(scheduler.is_paused(cid) for cid in check_ids)
        for check_id in check_ids:
            if resume:
                scheduler.resume(check_id)
            else:
                scheduler.pause(check_id)
        self.dashboard.show_paused(
            frozenset(cid for cid in self.board.checks if scheduler.is_paused(cid))
        )
        self.notify(f"{'Resumed' if resume else 'Paused'} {checks_text(check_ids)}.", timeout=2)

    def on_acknowledge(self, message: Acknowledge) -> None:
        """The engine's acknowledgement, kept in its store; without an engine (a dashboard of
        results handed to it), the board's own."""
        try:
            expires = moment(message.expires, self.now())
            if self.monitor is None:
                ack = AckShown(self.operator, expires, message.comment)
                self.dashboard.show_acknowledged({**self.board.acks, message.subject_id: ack})
            else:
                self.monitor.acknowledge(
                    message.subject_id, comment=message.comment, by=self.operator, expires=expires
                )
                self.show_engine_acks()
        except KeyError:
            self.notify(f"The engine does not judge {message.subject_id}.", timeout=4, markup=False)
            return
        except ValueError as exc:  # AckRefused too: the engine's reason
            self.notify(f"Not acknowledged: {exc}", severity="error", timeout=6, markup=False)
            return
        self.notify(f"Acknowledged {message.subject_id}.", timeout=2, markup=False)

    def on_unacknowledge(self, message: Unacknowledge) -> None:
        if self.monitor is None:
            acks = dict(self.board.acks)
            acks.pop(message.subject_id, None)
            self.dashboard.show_acknowledged(acks)
        else:
            self.monitor.withdraw_ack(message.subject_id)
            self.show_engine_acks()
        self.notify(f"Acknowledgement of {message.subject_id} ended.", timeout=2, markup=False)

    def _running_scheduler(self) -> Steering | None:
        if self.scheduler is None:
            self.notify("The engine is not running.", severity="warning", timeout=3)
        return self.scheduler

    # --- keys --------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_sections()))

    async def action_quit(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._engine_worker is not None:
            # Let the scheduler close its sockets before the loop goes away.
            with contextlib.suppress(TimeoutError, WorkerCancelled, WorkerFailed):
                await asyncio.wait_for(self._engine_worker.wait(), ENGINE_STOP_WAIT)
        self.exit()


def _operator() -> str:
    """Who acknowledges on a local dashboard: the user running it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid, as in some containers
        return "dashboard"


def checks_text(check_ids: Sequence[str]) -> str:
    return check_ids[0] if len(check_ids) == 1 else f"{len(check_ids)} checks"


def help_sections() -> list[tuple[str, list[Binding]]]:
    """Every key the help screen lists, by where it works."""
    sources = (
        ("Everywhere", CommwatchApp.BINDINGS),
        ("Dashboard", DashboardScreen.BINDINGS),
        ("Check table", CheckTable.BINDINGS),
        ("Event log (e)", EventLog.BINDINGS),
        ("Detail pane (d)", DetailScroll.BINDINGS),
        ("Filter box (/)", FilterInput.BINDINGS),
    )
    return [
        (title, [binding for binding in source if isinstance(binding, Binding)])
        for title, source in sources
    ]
