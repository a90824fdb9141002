"""The writer thread: results, events and controls stored from the event loop without ever
blocking it, each under the id of the engine's stream it hands out (monitor.store.numbering)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Generator

from monitor.config.inventory import HistoryConfig
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.store.controls import Control
from monitor.store.exclusive import WriterLock
from monitor.store.history import HistoryStore, Numbered
from monitor.store.numbering import StreamOrigin
from monitor.store.retention import MaintenanceStats
from monitor.store.schema import HOUR, HistoryError

log = logging.getLogger(__name__)

# A running writer says it is alive at least this often, even with nothing to write.
HEARTBEAT = 10.0


class HistoryWriter:
    """Stores results, events and controls from the event loop without ever blocking it.

    `add_result`/`add_event`/`add_control` only append to a bounded queue and return a sequence
    number (1, 2, 3, ... in this writer); one thread owns the writing connection and commits
    batches (up to `max_batch` rows, or whatever arrived within `max_delay` of the first). After
    each commit, `acknowledged` is the highest sequence number at or below which everything is
    stored, and `on_acknowledged` (if given) is called with it from the writer thread.

    Each item is stored under the id `origin.after + seq`: `origin` (known once `start()`
    returned) is where the store's numbering stood when this writer opened it, so ids go on
    from the last one any earlier writer handed out.

    When the disk stalls (or a write keeps failing, e.g. the database is locked or full), the
    writer keeps retrying the same batch and the queue fills. A full queue (`capacity` items of
    that kind) REJECTS the newest item: `add_*` returns None, `rejected_results`,
    `rejected_events` or `rejected_controls` count it, and a warning is logged once per stall.
    Rejecting the newest rather than dropping the oldest keeps the acknowledgement exact: every
    item that got a number is stored before anything after it is acknowledged. Probing never
    waits for the disk; the queue's memory stays bounded.

    Maintenance (downsampling, retention) runs in the same thread every `maintenance_interval`
    and on `request_maintenance()`, one short transaction at a time between batches.

    The writer records its run in `runs`: from `start()`, with `run_scope` (what the run
    watches, as the caller's JSON), a heartbeat with every commit and at least every
    `heartbeat` seconds, and its end at `close()`.
    """

    def __init__(
        self,
        config: HistoryConfig,
        *,
        max_batch: int = 500,
        max_delay: float = 0.2,
        capacity: int = 50_000,
        maintenance_interval: float = HOUR,
        on_acknowledged: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        retry_delay: float = 1.0,
        run_scope: str | None = None,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.config = config
        self._run_scope = run_scope
        self._heartbeat = heartbeat
        self._run_id: int | None = None  # recorded with the first commit: start() takes no lock
        self._started_at = 0.0
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._capacity = capacity
        self._maintenance_interval = maintenance_interval
        self._on_acknowledged = on_acknowledged
        self._clock = clock
        self._retry_delay = retry_delay
        self._lock = threading.Condition()
        # (seq, item, when it was queued), in sequence order; how many of each kind it holds.
        self._queue: collections.deque[tuple[int, ProbeResult | Event | Control, float]] = (
            collections.deque()
        )
        self._queued = {_RESULT: 0, _EVENT: 0, _CONTROL: 0}
        self._in_flight: list[int] = []  # sequence numbers taken but not yet committed
        self._last_seq = 0
        self._acknowledged = 0
        self._stopping = False
        self._stalled = False
        self.rejected_results = 0
        self.rejected_events = 0
        self.rejected_controls = 0
        self.origin: StreamOrigin | None = None  # set by start()
        self._maintenance_waiters: list[concurrent.futures.Future[MaintenanceStats]] = []
        self._maintenance_requested = False
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None

    # --- the event loop's side ---------------------------------------------------------------

    def start(self) -> None:
        """Open (creating if needed) the database in the writer thread; raises HistoryError
        here, at start-up, when the path is unusable."""
        self._thread = threading.Thread(target=self._run, name="commwatch-history", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def add_result(self, result: ProbeResult) -> int | None:
        return self._add(_RESULT, result)

    def add_event(self, event: Event) -> int | None:
        return self._add(_EVENT, event)

    def add_control(self, change: Control) -> int | None:
        return self._add(_CONTROL, change)

    def _add(self, kind: str, item: ProbeResult | Event | Control) -> int | None:
        with self._lock:
            if self._queued[kind] >= self._capacity:
                setattr(self, f"rejected_{kind}s", getattr(self, f"rejected_{kind}s") + 1)
                if not self._stalled:
                    self._stalled = True
                    log.warning(
                        "history: %s is not keeping up; new results and events are not "
                        "stored until it does",
                        self.config.path,
                    )
                return None
            self._last_seq += 1
            self._queue.append((self._last_seq, item, self._clock()))
            self._queued[kind] += 1
            if len(self._queue) == 1 or self._full_batch():
                self._lock.notify_all()
            return self._last_seq

    @property
    def acknowledged(self) -> int:
        with self._lock:
            return self._acknowledged

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._in_flight)

    def wait_acknowledged(self, seq: int, timeout: float | None = None) -> bool:
        """Block (a thread, not the loop) until `seq` is stored; False on timeout or if the
        writer stopped first."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self._acknowledged >= seq or not self._alive(), timeout
            ) and (self._acknowledged >= seq)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything added so far is stored, `timeout` seconds at most: whether it
        was."""
        with self._lock:
            seq = self._last_seq
        return await asyncio.to_thread(self.wait_acknowledged, seq, timeout)

    def request_maintenance(self) -> concurrent.futures.Future[MaintenanceStats]:
        """Downsample and prune now; the future completes when done (`asyncio.wrap_future`
        makes it awaitable)."""
        future: concurrent.futures.Future[MaintenanceStats] = concurrent.futures.Future()
        with self._lock:
            self._maintenance_waiters.append(future)
            self._maintenance_requested = True
            self._lock.notify_all()
        return future

    def close(self, timeout: float | None = 10.0) -> bool:
        """Store what is queued, then stop; False if that did not finish within `timeout`
        (the thread is a daemon and never holds the process up)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("history: %d results and events were not stored before exit", self.queued)
            return False
        return True

    async def aclose(self, timeout: float | None = 10.0) -> bool:
        return await asyncio.to_thread(self.close, timeout)

    # --- the writer thread -------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _full_batch(self) -> bool:
        return len(self._queue) >= self._max_batch

    def _run(self) -> None:
        exclusive: WriterLock | None = None
        try:
            exclusive = WriterLock(self.config.path)
            store = HistoryStore(self.config.path, create=True)
            self.origin = store.stream_origin()
        except BaseException as exc:
            if exclusive is not None:
                exclusive.release()
            self._open_error = exc
            self._opened.set()
            return
        self._started_at = self._clock()
        self._opened.set()
        try:
            self._loop(store)
        finally:
            try:
                store.end_run(self._run_of(store), self._clock())
            except sqlite3.Error as exc:
                # The last heartbeat stands for its end: a report counts no more than that.
                log.error("history: cannot record the end of this run: %s", exc)
            store.close()
            exclusive.release()
            with self._lock:
                self._lock.notify_all()

    def _loop(self, store: HistoryStore) -> None:
        maintenance = _Maintenance(self._maintenance_interval, self._clock)
        next_heartbeat = self._clock() + self._heartbeat
        while True:
            batch = self._take_batch(
                busy=maintenance.busy, wake_at=min(maintenance.next_at, next_heartbeat)
            )
            if batch is None:
                with self._lock:
                    maintenance.cancel(self._maintenance_waiters)
                return
            if batch or self._clock() >= next_heartbeat:
                self._store(store, batch)
                next_heartbeat = self._clock() + self._heartbeat
            with self._lock:
                if self._maintenance_requested:
                    self._maintenance_requested = False
                    maintenance.restart(self._maintenance_waiters)
                    self._maintenance_waiters = []
            maintenance.step(store, self.config)

    def _run_of(self, store: HistoryStore) -> int:
        if self._run_id is None:
            self._run_id = store.start_run(self._started_at, self._run_scope)
        return self._run_id

    def _take_batch(self, busy: bool, wake_at: float) -> list[Numbered] | None:
        """The next batch to write; an empty one when maintenance or the heartbeat wants a
        turn (at `wake_at`); None to stop."""
        with self._lock:
            if not busy:
                self._lock.wait_for(
                    lambda: self._queue or self._stopping or self._maintenance_requested,
                    timeout=max(0.0, wake_at - self._clock()),
                )
            if self._queue and not self._stopping:
                # Give a trickle up to max_delay to become a batch: one commit, not hundreds.
                self._lock.wait_for(
                    lambda: self._full_batch() or self._stopping, timeout=self._max_delay
                )
            if self._stopping and not self._queue:
                return None
            assert self.origin is not None  # opened before the first batch
            batch: list[Numbered] = []
            # In sequence order, so each commit acknowledges everything it wrote.
            while self._queue and len(self._in_flight) < self._max_batch:
                seq, item, at = self._queue.popleft()
                self._queued[_kind(item)] -= 1
                batch.append((self.origin.after + seq, item, at))
                self._in_flight.append(seq)
            return batch

    def _store(self, store: HistoryStore, batch: list[Numbered]) -> None:
        failing = False
        while True:
            try:
                store.write_numbered(batch, heartbeat=(self._run_of(store), self._clock()))
                break
            except sqlite3.Error as exc:
                if not failing:
                    log.error("history: cannot write to %s (retrying): %s", store.path, exc)
                    failing = True
                # A stop request does not end the retries: close()'s timeout bounds them.
                time.sleep(self._retry_delay)
        if failing:
            log.warning("history: writing to %s again", store.path)
        with self._lock:
            self._in_flight.clear()
            self._acknowledged = self._queue[0][0] - 1 if self._queue else self._last_seq
            acknowledged = self._acknowledged
            if self._stalled and max(self._queued.values()) < self._capacity // 2:
                self._stalled = False
            self._lock.notify_all()
        if self._on_acknowledged is not None:
            self._on_acknowledged(acknowledged)


_RESULT, _EVENT, _CONTROL = "result", "event", "control"  # the kinds queued, each bounded


def _kind(item: ProbeResult | Event | Control) -> str:
    if isinstance(item, ProbeResult):
        return _RESULT
    return _EVENT if isinstance(item, Event) else _CONTROL


class _Maintenance:
    """The writer's maintenance cycle: when the next one is due, the one under way (a step at a
    time between batches), and who waits for it."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        # Maintenance starts with the writer: a commwatch restarted daily still gets it.
        self.next_at = clock()
        self._steps: Generator[None, None, MaintenanceStats] | None = None
        self._waiters: list[concurrent.futures.Future[MaintenanceStats]] = []

    @property
    def busy(self) -> bool:
        return self._steps is not None

    def restart(self, waiters: list[concurrent.futures.Future[MaintenanceStats]]) -> None:
        """A cycle asked for: start one afresh now (one under way may have passed rows written
        since), and tell `waiters` when it is done."""
        self._waiters += waiters
        self._steps = None
        self.next_at = self._clock()

    def step(self, store: HistoryStore, config: HistoryConfig) -> None:
        """One step of the cycle under way, or the first of one that is due."""
        if self._steps is None and self._clock() >= self.next_at:
            self._steps = store.maintenance_steps(self._clock(), config)
        if self._steps is None:
            return
        try:
            next(self._steps)
        except StopIteration as done:
            stats: MaintenanceStats = done.value
            log.info("history: maintenance done: %s", stats)
            for waiter in self._finished():
                waiter.set_result(stats)
        except sqlite3.Error as exc:
            log.error("history: maintenance failed: %s", exc)
            for waiter in self._finished():
                waiter.set_exception(HistoryError(f"maintenance failed: {exc}"))

    def cancel(self, waiters: list[concurrent.futures.Future[MaintenanceStats]]) -> None:
        """The writer stops: nobody waits for a cycle that will not end."""
        for waiter in [*self._waiters, *waiters]:
            waiter.cancel()

    def _finished(self) -> list[concurrent.futures.Future[MaintenanceStats]]:
        self._steps = None
        self.next_at = self._clock() + self._interval
        waiters, self._waiters = self._waiters, []
        return waiters
