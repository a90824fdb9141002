"""Decides when each check runs, within a global and a per-host concurrency cap.

Checks wait in one queue per host; hosts with room take turns (round robin), so a slow or hung
host only ever holds its own `per_host` slots and everything else keeps moving. A check is never
queued while it is queued or running, so it cannot overlap itself. The TUI and the CLI steer the
engine through `run_now`, `pause`, `resume` and `stop`; results only ever flow out, to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.config.inventory import Check, Concurrency
from monitor.core.model import ProbeResult
from monitor.engine.runner import run_check
from probes.base import SharedResources

Sink = Callable[[ProbeResult], None]
CheckRunner = Callable[[Check, SharedResources, dict[str, Any]], Awaitable[ProbeResult]]

# The first round is paced: no probe should have its latency measured while a burst of others'
# handshakes (and SNMP's pure-Python message processing, and a lab in the same process) competes
# for the same CPU. A start waits START_GAP after the one before, longer while this process kept
# the CPU busy over the last gap (up to MAX_HOLD gaps); a one-off sweep, which must end
# promptly, starts the next check as soon as the previous one has finished. The gap shrinks for
# large inventories so the round takes about its spread (below MIN_GAP, checks start in groups).
# A continuous run's later runs keep the stagger: each comes `interval` after the check's
# previous start.
START_GAP = 0.05
SWEEP_SPREAD = 1.0
RUN_SPREAD = 10.0
MIN_GAP = 0.005
BUSY_SHARE = 0.3  # of one core, over the last gap: the process is busy (idle, it uses ~0)
MAX_HOLD = 4


@dataclass(frozen=True, slots=True)
class SchedulerFigures:
    """What the scheduler is doing at one moment, for the engine's metrics."""

    in_flight: int  # checks running now
    queued: int  # checks due and waiting for a free slot (the global or their host's cap)
    paused: int
    started: int  # runs started since the scheduler was made
    start_lag_total: float  # seconds, summed over those starts, each began after it was due
    backlog: float  # seconds the longest-waiting queued check is past due; 0 with none queued


class Steering(Protocol):
    """What the engine and its operators tell whoever runs the checks: a `Scheduler` in this
    process, or the probe processes of `run --workers` (monitor.cluster.workers)."""

    def run_now(self, check_id: str) -> None: ...
    def repoll(self, check_id: str) -> None: ...
    def expedite(self, check_id: str, delay: float) -> None: ...
    def pause(self, check_id: str) -> None: ...
    def resume(self, check_id: str) -> None: ...
    def is_paused(self, check_id: str) -> bool: ...
    def figures(self) -> SchedulerFigures: ...
    def stop(self) -> None: ...


class Scheduler:
    def __init__(
        self,
        checks: Iterable[Check],
        concurrency: Concurrency,
        sink: Sink,
        *,
        start_spread: float | None = None,
        runner: CheckRunner = run_check,
    ) -> None:
        self.checks = {check.ref.check_id: check for check in checks}
        self._concurrency = concurrency
        self._sink = sink
        self._start_spread = start_spread
        self._runner = runner
        self._shared = SharedResources()
        self._memory: dict[str, dict[str, Any]] = {cid: {} for cid in self.checks}
        self._queues: dict[str, deque[Check]] = {}
        self._ready: deque[str] = deque()
        self._ready_set: set[str] = set()
        self._in_flight: Counter[str] = Counter()
        self._in_flight_total = 0
        self._busy: set[str] = set()  # queued or running
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._paused: set[str] = set()
        self._continuous = False
        self._idle: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._failure: Exception | None = None
        self._expedited: dict[str, float] = {}  # check id -> loop time it is wanted again by
        self._closing = False
        self._stop_requested = False
        self._finished = asyncio.Event()  # set whenever a check finishes
        self._due: dict[str, float] = {}  # queued check id -> loop time it was due
        self._started = 0
        self._start_lag_total = 0.0

    # --- commands -------------------------------------------------------------------------

    def run_now(self, check_id: str) -> None:
        """Queue a check at once (unless it is already queued or running)."""
        self._cancel_timer(check_id)
        self._enqueue(self.checks[check_id])

    def repoll(self, check_id: str) -> None:
        """Run a check at once because its target sent news (an SNMP trap): as `run_now`, and
        while it runs, once more as soon as it ends, since that run may have read the target
        before the news. A paused check stays paused."""
        if check_id in self._busy and check_id not in self._due:
            self.expedite(check_id, 0.0)
        else:
            self.run_now(check_id)

    def expedite(self, check_id: str, delay: float) -> None:
        """Run a check again within `delay`, sooner than its interval: the state layer asks for
        this while a change of state awaits confirmation (Nagios' retry_interval)."""
        if not self._continuous:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        self._expedited[check_id] = min(due, self._expedited.get(check_id, due))
        timer = self._timers.get(check_id)
        if timer is not None and timer.when() > due:
            self._schedule(self.checks[check_id], self._expedited.pop(check_id))

    def pause(self, check_id: str) -> None:
        """Stop scheduling a check; a run in progress finishes and reports."""
        self._paused.add(check_id)
        self._cancel_timer(check_id)

    def resume(self, check_id: str) -> None:
        if check_id in self._paused:
            self._paused.discard(check_id)
            if self._continuous:
                self._enqueue(self.checks[check_id])

    def is_paused(self, check_id: str) -> bool:
        return check_id in self._paused

    def replace_checks(self, checks: Iterable[Check]) -> None:
        """Run these checks from now on instead of those it has (an agent's share changes as
        agents join and leave). One it keeps goes on as it was; one that is gone is not started
        again, and a run of it in progress finishes and reports; a new one starts at once, the
        new ones paced over at most SWEEP_SPREAD."""
        new = {check.ref.check_id: check for check in checks}
        gone = [check for check_id, check in self.checks.items() if check_id not in new]
        added = [check for check_id, check in new.items() if check_id not in self.checks]
        self.checks = new
        for check in gone:
            check_id = check.ref.check_id
            self._cancel_timer(check_id)
            self._expedited.pop(check_id, None)
            self._memory.pop(check_id, None)
            if check_id in self._due:
                self._unqueue(check)
        for check in added:
            self._memory[check.ref.check_id] = {}
        if not self._continuous or self._stop_requested or not added:
            return  # not running yet: its first round starts what it has then
        now = asyncio.get_running_loop().time()
        gap = min(START_GAP, SWEEP_SPREAD / len(added))
        for position, check in enumerate(added):
            self._schedule(check, now + position * gap)

    def figures(self) -> SchedulerFigures:
        """The scheduler's figures now (read-only: nothing it does changes)."""
        backlog = 0.0
        if self._due:
            # The queues are first in, first out: each host's oldest is at its head.
            now = asyncio.get_running_loop().time()
            oldest = min(self._due[queue[0].ref.check_id] for queue in self._queues.values())
            backlog = max(0.0, now - oldest)
        return SchedulerFigures(
            in_flight=self._in_flight_total,
            queued=len(self._due),
            paused=len(self._paused),
            started=self._started,
            start_lag_total=self._start_lag_total,
            backlog=backlog,
        )

    def stop(self) -> None:
        """End the run: `run()` or `sweep()` cancels what is in flight and returns."""
        self._stop_requested = True
        for event in (self._stopped, self._idle):
            if event is not None:
                event.set()

    # --- the two ways to run --------------------------------------------------------------

    async def sweep(self) -> None:
        """Run every check once, starting them paced (see START_GAP) over about `start_spread`
        (default SWEEP_SPREAD, 0 for all at once), and return when all reported."""
        self._idle = asyncio.Event()
        try:
            await self._first_round(self._first_gap(SWEEP_SPREAD), back_to_back=True)
            if self._busy and not self._stop_requested:
                self._idle.clear()  # it may have been set between two paced starts
                await self._idle.wait()
        finally:
            await self._shutdown()
        self._raise_failure()

    async def run(self) -> None:
        """Run every check on its interval until `stop()`. First runs are paced (see START_GAP)
        over about `start_spread` (default RUN_SPREAD, 0 for all at once), so a large inventory
        does not start as one burst and a small one answers at once."""
        self._continuous = True
        self._stopped = asyncio.Event()
        if self._stop_requested:
            # Stopped before it began (a SIGTERM while history and alerting start): not a run.
            self._stopped.set()
        first_round = asyncio.create_task(
            self._first_round(self._first_gap(RUN_SPREAD), back_to_back=False)
        )
        try:
            await self._stopped.wait()
        finally:
            first_round.cancel()
            await asyncio.gather(first_round, return_exceptions=True)
            await self._shutdown()
        self._raise_failure()

    async def _first_round(self, gap: float, *, back_to_back: bool) -> None:
        """Start every check once, each `gap` after the one before, later while this process is
        busy; `back_to_back`: as soon as the one before has finished, too. Gaps finer than
        MIN_GAP start checks in groups, one group per MIN_GAP: a timer per check would cost a
        large sweep more than the stagger is worth."""
        checks = list(self.checks.values())
        if self._stop_requested:
            return
        if gap <= 0:
            for check in checks:
                self._enqueue(check)
            return
        size = 1 if gap >= MIN_GAP else math.ceil(MIN_GAP / gap)
        gap *= size
        loop = asyncio.get_running_loop()
        for first in range(0, len(checks), size):
            if self._stop_requested:
                return
            group = checks[first : first + size]
            for check in group:
                self._enqueue(check)
            started = window = loop.time()
            window_cpu = time.process_time()
            while not back_to_back or any(c.ref.check_id in self._busy for c in group):
                now = loop.time()
                if now - window >= gap:
                    busy = time.process_time() - window_cpu > BUSY_SHARE * (now - window)
                    if not busy or now - started >= MAX_HOLD * gap:
                        break
                    window, window_cpu = now, time.process_time()
                self._finished.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(window + gap):
                        await self._finished.wait()

    def _first_gap(self, default_spread: float) -> float:
        spread = default_spread if self._start_spread is None else self._start_spread
        return min(START_GAP, spread / len(self.checks)) if self.checks else 0.0

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # --- internals ------------------------------------------------------------------------

    def _schedule(self, check: Check, when: float) -> None:
        check_id = check.ref.check_id
        if check_id in self._paused:
            return
        self._cancel_timer(check_id)
        loop = asyncio.get_running_loop()
        self._timers[check_id] = loop.call_at(when, self._enqueue, check)

    def _cancel_timer(self, check_id: str) -> None:
        timer = self._timers.pop(check_id, None)
        if timer is not None:
            timer.cancel()

    def _enqueue(self, check: Check) -> None:
        check_id = check.ref.check_id
        timer = self._timers.pop(check_id, None)
        if check_id in self._busy or (self._continuous and check_id in self._paused):
            return
        if check_id not in self.checks:
            return  # replaced while its first round was under way
        self._busy.add(check_id)
        # Due when its timer was meant to fire (a busy loop fires it late), else now.
        now = asyncio.get_running_loop().time()
        self._due[check_id] = now if timer is None else min(timer.when(), now)
        host = check.ref.host
        self._queues.setdefault(host, deque()).append(check)
        self._mark_ready(host)
        self._pump()

    def _unqueue(self, check: Check) -> None:
        """Take a queued check out of its host's queue."""
        host = check.ref.host
        queue = self._queues[host]
        queue.remove(check)
        if not queue:
            del self._queues[host]
            if host in self._ready_set:
                self._ready.remove(host)
                self._ready_set.discard(host)
        self._due.pop(check.ref.check_id)
        self._busy.discard(check.ref.check_id)

    def _mark_ready(self, host: str) -> None:
        if (
            host not in self._ready_set
            and self._queues.get(host)
            and self._in_flight[host] < self._concurrency.per_host
        ):
            self._ready.append(host)
            self._ready_set.add(host)

    def _pump(self) -> None:
        if self._closing:
            return
        while self._ready and self._in_flight_total < self._concurrency.global_limit:
            host = self._ready.popleft()
            self._ready_set.discard(host)
            queue = self._queues[host]
            check = queue.popleft()
            if not queue:
                del self._queues[host]
            self._started += 1
            due = self._due.pop(check.ref.check_id)
            self._start_lag_total += asyncio.get_running_loop().time() - due
            self._in_flight[host] += 1
            self._in_flight_total += 1
            # Its memory taken now: the check may be replaced before the task's first step.
            memory = self._memory[check.ref.check_id]
            task = asyncio.create_task(self._run(check, memory), name=f"check {check.ref.check_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._mark_ready(host)

    async def _run(self, check: Check, memory: dict[str, Any]) -> None:
        check_id = check.ref.check_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await self._runner(check, self._shared, memory)
            self._sink(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The runner never raises for anything a target does, so this is a sink that
            # cannot take results (a closed pipe, a full disk): end the run and say why.
            self._failure = exc
            self.stop()
        finally:
            host = check.ref.host
            self._in_flight[host] -= 1
            if not self._in_flight[host]:
                del self._in_flight[host]
            self._in_flight_total -= 1
            self._busy.discard(check_id)
            self._mark_ready(host)
            self._pump()
            self._finished.set()
            if not self._busy and self._idle is not None:
                self._idle.set()
        if self._continuous and check_id in self.checks:
            due = min(started + check.interval, self._expedited.pop(check_id, float("inf")))
            self._schedule(check, max(due, loop.time()))

    async def _shutdown(self) -> None:
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queues.clear()
        self._due.clear()
        self._ready.clear()
        self._ready_set.clear()
        self._busy.clear()
        await self._shared.aclose()
