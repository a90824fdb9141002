"""The continuous engine with its resilience layer: scheduler -> state engine -> history,
alerts and the caller's sinks (JSON lines, the dashboard).

Data flows one way. The only thing sent back down is a command to the scheduler: look again
soon (`expedite`) while a change of state awaits confirmation. An engine fed from a
`ResultSource` (a central, taking what agents probed) has no scheduler: the source's results
take its place, and everything after them is the same. A source that runs the checks itself
(the probe processes of `run --workers`) is the engine's `Steering` too, and takes those
commands.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from monitor.alerts.alerter import Alerter
from monitor.alerts.dispatcher import Gate
from monitor.config.inventory import Check, Inventory
from monitor.config.traps import TrapsConfig
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine import paths
from monitor.engine.acks import reminder_holds
from monitor.engine.commands import OperatorCommands
from monitor.engine.published import Publication, StreamWatcher
from monitor.engine.restore import restore
from monitor.engine.run_scope import scope_of
from monitor.engine.scheduler import Scheduler, SchedulerFigures, Steering
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.views import topology_of
from monitor.store.controls import Ack, Control
from monitor.store.history import HistoryStore
from monitor.store.renewals import CertificateWatch
from monitor.store.schema import HistoryError
from monitor.store.writer import HistoryWriter

if TYPE_CHECKING:
    from monitor.engine.traps import TrapFigures, TrapReceiver

log = logging.getLogger(__name__)

# Sees every result and event the sinks see, in the same order, with the engine's state at
# that moment (which may be ahead of the item: with history on, items are shown once stored).
Watcher = Callable[[ProbeResult | Event, EngineState], None]


class ResultSource(Protocol):
    """Where the results of an engine without a scheduler come from (a central: its agents'
    results, through NATS)."""

    async def run(self, take: Callable[[ProbeResult], None]) -> None:
        """Hand each result of the engine's checks to `take`, in time order per check, until
        `stop()`; an exception
        from `take` ends the run with it. After a `stop()` before `run()`, it returns at once."""
        ...

    def stop(self) -> None: ...

    def settled(self, result: ProbeResult) -> None:
        """The engine is done with `result`, one `take` was given: judged and shown and, with
        history on, stored (or refused by a stalled store, as any result is). A durable source
        acknowledges it now; may come after `run` returned, while history closes."""
        ...


class Arrivals(Protocol):
    """When a source's results arrived, for alerting's group windows (see
    `monitor.alerts.policy.Grouper`). A central says when the results stream stored each, the
    same for every central, so that all of them group the same events into the same messages."""

    def arrived(self, result: ProbeResult) -> float:
        """When `result`, the one just handed to `take`, arrived (POSIX seconds)."""
        ...

    def horizon(self) -> float:
        """The time up to which every result that arrived has been handed to `take`."""
        ...


@dataclass(frozen=True, slots=True)
class EngineFigures:
    """What the engine is doing at one moment, for its metrics."""

    scheduler: SchedulerFigures | None  # None: no scheduler, the results come from a source
    store_queued: int | None  # results and events waiting to be stored; None without history
    store_rejected_results: int  # refused by a store that is not keeping up, since start
    store_rejected_events: int
    traps: TrapFigures | None = None  # None: not listening for SNMP traps


class Monitor(OperatorCommands):
    """Runs `checks` continuously with state, history and alerts, until `stop()`; with a
    `source`, takes their results from it instead of running them.

    `on_result` and `on_event` see everything in order. With history on, they are called only
    once what they report is durably stored, so a crash never loses anything already shown.
    """

    def __init__(
        self,
        inventory: Inventory,
        checks: Sequence[Check],
        *,
        on_result: Callable[[ProbeResult], None],
        on_event: Callable[[Event], None],
        history: bool = True,
        alerts: bool = True,
        start_spread: float | None = None,
        source: ResultSource | None = None,
        arrivals: Arrivals | None = None,
        alert_gate: Gate | None = None,
        steering: Steering | None = None,
        traps: TrapsConfig | None = None,
    ) -> None:
        """`steering`, with a `source` that runs the checks itself (the probe processes of `run
        --workers`): what takes run now, pause and the engine's look-again-soon instead of a
        scheduler here. Without it, a source's checks run elsewhere and cannot be steered."""
        super().__init__()
        self.inventory = inventory
        self.checks = {check.ref.check_id: check for check in checks}
        self.topology = topology_of(inventory, checks)
        self._on_result = on_result
        self._on_event = on_event
        self.state = restore(self.topology)
        self.path_policy = paths.path_policy(inventory)
        self.paths = paths.PathState()
        self._source = source
        self._own_scheduler = (
            Scheduler(checks, inventory.concurrency, self._take, start_spread=start_spread)
            if source is None
            else None
        )
        self.scheduler: Steering | None = self._own_scheduler if source is None else steering
        resilience = inventory.resilience
        self._writer = (
            HistoryWriter(
                resilience.history,
                on_acknowledged=self._acknowledged,
                run_scope=scope_of(self.topology, resilience.maintenance).to_json(),
            )
            if history
            else None
        )
        self._certificates = CertificateWatch(self.history_path, keep_originals=bool(source))
        self._arrivals = arrivals
        self._alerter = (
            Alerter(
                resilience.alerts,
                resilience.history.path,
                horizon=self._alert_horizon,
                gate=alert_gate,
            )
            if alerts and resilience.alerts.notifiers
            else None
        )
        self._pending: list[tuple[int, ProbeResult | Event | Control]] = []
        self._failure: Exception | None = None
        # Each result's events and when it arrived; the arrival times of those not yet taken
        # by alerting, oldest first.
        self._alert_queue: asyncio.Queue[tuple[float, tuple[Event, ...]]] = asyncio.Queue()
        self._unsubmitted: collections.deque[float] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[Watcher] = []
        self._stream = Publication(numbered_here=not history)
        if self._alerter is not None:
            self.on_acks_changed = self._alerter.hold_reminders
        # Set once history and alerting run and the scheduler (or source) has started: the
        # engine serves.
        self.ready = asyncio.Event()
        self.started_at: float | None = None
        # SNMP traps and informs: results and re-polls of the checks of the devices sending them.
        self.traps: TrapReceiver | None = None
        if traps is not None and self.scheduler is not None:
            from monitor.engine.traps import TrapReceiver  # pysnmp loads only for a listener

            self.traps = TrapReceiver(traps, self)

    def start_errors(self) -> tuple[type[Exception], ...]:
        """What `run()` raises, with a message for people, when a part of the engine cannot
        start: the history, and the trap listener when there is one (whose module, and pysnmp,
        load only then)."""
        if self.traps is None:
            return (HistoryError,)
        from monitor.engine.traps import ListenError

        return (HistoryError, ListenError)

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` after the sinks for every item from now on; returns how to stop."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher)

    def watch_stream(self, watcher: StreamWatcher) -> Callable[[], None]:
        """Tell `watcher` where the ids start (now, or once history is open), then every item
        with its id, after the sinks and before the other watchers; returns how to stop."""
        return self._stream.watch(watcher)

    @property
    def history_path(self) -> Path | None:
        """The history database this engine writes; None when it runs without history."""
        return None if self._writer is None else self._writer.config.path

    def stop(self) -> None:
        if self._source is not None:
            self._source.stop()
        elif self.scheduler is not None:
            self.scheduler.stop()

    def figures(self) -> EngineFigures:
        """The scheduler's and the store's figures now; reading them changes nothing."""
        writer = self._writer
        return EngineFigures(
            scheduler=None if self.scheduler is None else self.scheduler.figures(),
            store_queued=None if writer is None else writer.queued,
            store_rejected_results=0 if writer is None else writer.rejected_results,
            store_rejected_events=0 if writer is None else writer.rejected_events,
            traps=None if self.traps is None else self.traps.figures(),
        )

    async def stored(self, timeout: float) -> bool:
        """Whether everything this engine has handed to its history so far (a control just
        made, say) is stored, waiting `timeout` seconds at most; True at once without one."""
        writer = self._writer
        return True if writer is None else await writer.flush(timeout)

    async def pending_alerts(self) -> dict[str, int] | None:
        """Alert messages waiting to be delivered, per notifier; None while alerting does not
        run (turned off, no notifiers, or not started yet)."""
        alerter = self._alerter
        if alerter is None or not self.ready.is_set():
            return None
        return await alerter.pending_messages()

    async def run(self) -> None:
        """Start history and alerting, restore the state they remember, run the scheduler (or
        take the source's results) until `stop()`; then stop alerting and history, in that
        order. Whatever started is stopped however the run ends, a failure to start the next
        part included."""
        self._loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as started:
            last, acks = await self._start_history(started)
            if self._alerter is not None:
                self._alerter.hold_reminders(reminder_holds(acks))  # before its first tick
                last = await self._start_alerts(started, self._alerter, last)
            self.state = restore(self.topology, last)
            if self.traps is not None:
                await self.traps.start()  # ListenError before any check has run
                started.push_async_callback(self.traps.stop)
            self.take_up_acks(acks)
            self.started_at = time.time()
            self._loop.call_soon(self.ready.set)  # once the scheduler's run has begun
            try:
                if self._own_scheduler is not None:
                    await self._own_scheduler.run()
                elif self._source is not None:
                    await self._source.run(self._take)
            finally:
                self.ready.clear()
                self._cancel_ack_expiry()
        if self._failure is not None:
            raise self._failure

    async def _start_history(
        self, started: contextlib.AsyncExitStack
    ) -> tuple[list[Event], list[Ack]]:
        """The writer's thread running, each subject's last confirmed change it stored, and
        the acknowledgements it last held."""
        writer = self._writer
        if writer is None:
            return [], []
        writer.start()  # raises HistoryError at once for an unusable path
        started.push_async_callback(self._stop_history, writer)
        assert writer.origin is not None  # known once started
        self._stream.opened(writer.origin)
        with HistoryStore(writer.config.path) as store:
            return store.last_events_before(time.time() + 1), store.acks()

    async def _stop_history(self, writer: HistoryWriter) -> None:
        await asyncio.to_thread(writer.close)
        self._flush(writer.acknowledged)

    async def _start_alerts(
        self, started: contextlib.AsyncExitStack, alerter: Alerter, last: list[Event]
    ) -> list[Event]:
        """Alerting running, and those of `last` whose news it already has."""
        # Closing an alerter that started only in part closes that part.
        started.push_async_callback(alerter.aclose)
        await alerter.start()
        # A state alerting never took (a crash between storing and alerting, or a run
        # without alerts) is evaluated afresh, so that it reaches alerting like any first
        # state; it is not news where alerting already has it.
        last = await alerter.announced(last)
        delivering = asyncio.create_task(self._deliver_alerts(alerter), name="commwatch-alerts")
        started.push_async_callback(self._stop_delivering, delivering)
        return last

    async def _stop_delivering(self, delivering: asyncio.Task[None]) -> None:
        """Hand alerting what the run queued for it, then stop taking more."""
        await self._alert_queue.join()
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)

    def take(self, result: ProbeResult) -> None:
        """A result from outside the scheduler (a trap's: monitor.engine.traps), judged,
        stored and shown as the scheduler's are."""
        self._take(result)

    def record(self, event: Event) -> None:
        """An event the state engine did not make (a trap a device sent): stored and shown as
        its own are, never alerted; it changes no state."""
        if self._writer is None:
            self._emit(event, self._stream.count())
        else:
            self._stored(event, self._writer.add_event(event))

    def _take(self, result: ProbeResult) -> None:
        result = self._certificates.judge(self.checks.get(result.check.check_id), result)
        self.state, events = step(self.topology, self.state, result)
        self.paths, path_events = paths.observe(self.path_policy, self.paths, result)
        events += path_events
        check_id = result.check.check_id
        check_state = self.state.checks.get(check_id)
        if check_state is not None and check_state.is_soft and self.scheduler is not None:
            self.scheduler.expedite(check_id, self.checks[check_id].retry_interval)
        if events and self._alerter is not None:
            arrived = time.time() if self._arrivals is None else self._arrivals.arrived(result)
            self._unsubmitted.append(arrived)
            self._alert_queue.put_nowait((arrived, events))
        if self._writer is None:
            self._emit(result, self._stream.count())
            for event in events:
                self._emit(event, self._stream.count())
            return
        self._stored(result, self._writer.add_result(result))
        for event in events:
            self._stored(event, self._writer.add_event(event))

    def _announce(self, change: Control) -> None:
        """A control is an item of the stream like a result: stored, then shown."""
        if self._writer is None:
            self._emit(change, self._stream.count())
        else:
            self._stored(change, self._writer.add_control(change))

    def _stored(self, item: ProbeResult | Event | Control, seq: int | None) -> None:
        """Show `item` once the writer has stored it (its sequence number `seq`)."""
        if seq is None:
            # The store is stalled and refused it: show it anyway, unstored and without an
            # id, after what was queued before it (shown now, to keep the order).
            if self._pending:
                self._flush(self._pending[-1][0])
            self._emit(item, None)
        else:
            self._pending.append((seq, item))

    def _acknowledged(self, seq: int) -> None:
        """Called from the history thread after a commit."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._flush, seq)

    def _flush(self, seq: int) -> None:
        ready = 0
        while ready < len(self._pending) and self._pending[ready][0] <= seq:
            ready += 1
        stored, self._pending = self._pending[:ready], self._pending[ready:]
        try:
            for seq, item in stored:
                self._emit(item, seq)
        except Exception as exc:
            # A sink that cannot take more (a closed pipe) ends the run, as in the scheduler.
            self._failure = exc
            self.stop()

    def _emit(self, item: ProbeResult | Event | Control, seq: int | None) -> None:
        if isinstance(item, ProbeResult):
            self._on_result(item)
        elif isinstance(item, Event):
            self._on_event(item)
        else:
            self._tell_controls(item)
        self._stream.publish(seq, item, self.state)
        if not isinstance(item, ProbeResult | Event):
            return
        for watcher in tuple(self._watchers):
            watcher(item, self.state)
        if self._source is not None and isinstance(item, ProbeResult):
            self._source.settled(self._certificates.original(item))
        if isinstance(item, Event) and (ended := self.acks.ended_by(item)) is not None:
            self._publish(ended)
            self._arm_ack_expiry()

    def _alert_horizon(self) -> float:
        """Up to when every result that arrived has its events submitted to alerting: a group
        window closing by then has all it will ever have."""
        taken = time.time() if self._arrivals is None else self._arrivals.horizon()
        return min(taken, self._unsubmitted[0]) if self._unsubmitted else taken

    async def _deliver_alerts(self, alerter: Alerter) -> None:
        while True:
            arrived, events = await self._alert_queue.get()
            try:
                await alerter.submit(events, arrived)
            except Exception:
                log.exception("alerts could not take %d events", len(events))
            finally:
                self._unsubmitted.popleft()
                self._alert_queue.task_done()
