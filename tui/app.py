"""The commwatch dashboard: the engine runs in the app's own event loop, as a worker.

Data flows one way. The scheduler's sink posts every result to the app as a message (never
blocking); results are collected and applied to the table on a short timer, so a burst of
results costs one update of the changed cells. Commands (run now, pause, resume) go down only
through the scheduler's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from monitor.inventory import Check, Inventory
from monitor.model import ProbeResult
from monitor.scheduler import Scheduler
from tui.board import Board
from tui.screens import DashboardScreen, HelpScreen
from tui.widgets import CheckTable

FLUSH_INTERVAL = 0.1  # seconds: results arriving within this are applied as one batch
ENGINE_STOP_WAIT = 3.0


class ResultArrived(Message):
    """A probe result from the scheduler's sink, stamped with when it arrived."""

    def __init__(self, result: ProbeResult, arrived: float) -> None:
        super().__init__()
        self.result = result
        self.arrived = arrived


class CommwatchApp(App[None]):
    """The live dashboard over an inventory.

    `engine=False` shows the inventory without running anything: results then come only from
    `deliver()` (tests, benchmarks). `lab` is entered before the engine starts and left after it
    stops, so a demo lab can live in the same loop as the checks against it.
    """

    # Absolute, so subclasses defined elsewhere (the demo, the benchmark) find it too.
    CSS_PATH = Path(__file__).with_name("dashboard.tcss")
    TITLE = "commwatch"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (140, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        inventory: Inventory,
        *,
        checks: Iterable[Check] | None = None,
        engine: bool = True,
        lab: AbstractAsyncContextManager[Any] | None = None,
        clock: Callable[[], float] = time.time,
        start_spread: float | None = None,
    ) -> None:
        super().__init__()
        self.inventory = inventory
        self.board = Board(inventory, checks)
        self.now = clock
        self.started_at = clock()
        self.scheduler: Scheduler | None = None
        self._engine = engine
        self._lab = lab
        self._start_spread = start_spread
        self._engine_worker: Worker[None] | None = None
        self._arrivals: list[ResultArrived] = []

    @property
    def dashboard(self) -> DashboardScreen:
        screen = self.get_screen("dashboard")
        assert isinstance(screen, DashboardScreen)
        return screen

    def on_mount(self) -> None:
        self.install_screen(DashboardScreen(self.board), "dashboard")
        self.push_screen("dashboard")
        self.set_interval(FLUSH_INTERVAL, self._flush)
        self.set_interval(1.0, self.dashboard.tick)
        self.call_after_refresh(self._first_build)
        if self._engine:
            self._engine_worker = self.run_worker(self._run_engine(), name="engine")

    def _first_build(self) -> None:
        self.dashboard.rebuild()
        # A full garbage collection walks every tracked object, and at thousands of checks it
        # pauses the screen for 100 ms and more. The inventory, the board and the widgets live
        # as long as the app: freezing them leaves the collector only what comes and goes.
        gc.collect()
        gc.freeze()

    async def _run_engine(self) -> None:
        async with self._lab if self._lab is not None else contextlib.nullcontext():
            self.scheduler = Scheduler(
                self.board.checks.values(),
                self.inventory.concurrency,
                self.deliver,
                start_spread=self._start_spread,
            )
            await self.scheduler.run()

    # --- results in --------------------------------------------------------------------------

    def deliver(self, result: ProbeResult) -> None:
        """The scheduler's sink: never blocks, whatever the screen is doing."""
        self.post_message(ResultArrived(result, time.perf_counter()))

    def on_result_arrived(self, message: ResultArrived) -> None:
        self._arrivals.append(message)

    def _flush(self) -> None:
        if self._arrivals:
            arrivals, self._arrivals = self._arrivals, []
            self.apply_arrivals(arrivals)

    def apply_arrivals(self, arrivals: Sequence[ResultArrived]) -> None:
        self.dashboard.apply_results([arrival.result for arrival in arrivals])

    # --- commands down -----------------------------------------------------------------------

    def paused(self) -> set[str]:
        scheduler = self.scheduler
        if scheduler is None:
            return set()
        return {cid for cid in self.board.checks if scheduler.is_paused(cid)}

    def run_now(self, check_ids: Sequence[str]) -> bool:
        scheduler = self._running_scheduler()
        if scheduler is None or not check_ids:
            return False
        for check_id in check_ids:
            scheduler.run_now(check_id)
        return True

    def toggle_pause(self, check_ids: Sequence[str]) -> bool | None:
        """Pause the checks, or resume them when all are paused; returns whether they are now
        paused (None without an engine)."""
        scheduler = self._running_scheduler()
        if scheduler is None:
            return None
        resume = all(scheduler.is_paused(cid) for cid in check_ids)
        for check_id in check_ids:
            if resume:
                scheduler.resume(check_id)
            else:
                scheduler.pause(check_id)
        return not resume

    def _running_scheduler(self) -> Scheduler | None:
        if self.scheduler is None:
            self.notify("The engine is not running.", severity="warning", timeout=3)
        return self.scheduler

    # --- keys --------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_bindings()))

    async def action_quit(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._engine_worker is not None:
            # Let the scheduler close its sockets before the loop goes away.
            with contextlib.suppress(TimeoutError, WorkerCancelled, WorkerFailed):
                await asyncio.wait_for(self._engine_worker.wait(), ENGINE_STOP_WAIT)
        self.exit()


def help_bindings() -> list[Binding]:
    """Every key the help screen lists: moving in the table, the dashboard's, the app's."""
    sources = (CheckTable.BINDINGS, DashboardScreen.BINDINGS, CommwatchApp.BINDINGS)
    return [binding for source in sources for binding in source if isinstance(binding, Binding)]
