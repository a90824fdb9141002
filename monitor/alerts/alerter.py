"""Alerting for one process: the shell around the pure decisions of `monitor.alerts.policy`.

It records events in the outbox's inbox, runs the group windows and reminder timers, renders
each decision's messages in their notifier's format, commits them in one transaction with the
problem changes, and leaves sending to the `Dispatcher`.

Fed by a central (several may judge the same results), it groups events by when they reached
the results stream and flushes a window only once everything that arrived before it closed has
been submitted (`horizon`), so that every central makes the same messages with the same keys;
its `gate` says whether this one delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import aiohttp

from monitor.alerts.delivery import deliver
from monitor.alerts.dispatcher import Dispatcher, Gate, Outcome
from monitor.alerts.formats.registry import render
from monitor.alerts.outbox import NewRow, Outbox, OutboxRow, Problem, ProblemKey
from monitor.alerts.policy import (
    Grouper,
    Holds,
    Plan,
    next_reminder,
    plan_events,
    plan_reminders,
    worth_keeping,
)
from monitor.config.alerts import AlertsConfig
from monitor.core.events import Event

log = logging.getLogger("commwatch.alerts")

# Seconds between looks at the horizon while a window has closed by the clock but not yet by
# the horizon (a central still taking what arrived before it closed).
HORIZON_POLL = 0.1


class Alerter:
    """Alerting for one process: `await start()`, `await submit(events)`, `await aclose()`.

    `submit` returns once the events are stored (on the outbox's thread; the event loop is not
    held), never waiting for a receiver. A restart on the same database picks up what a
    previous process left: events still in a group window, pending messages, open problems.

    `horizon`: the time up to which every event that arrived has been submitted (the clock
    when not given: events arrive when they are submitted). `gate`: whether this process may
    deliver (monitor.alerts.dispatcher.Gate), when several hold the same messages.
    """

    def __init__(
        self,
        config: AlertsConfig,
        db_path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        horizon: Callable[[], float] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.config = config
        self.outbox = Outbox(db_path)
        self._clock = clock
        self._jitter = jitter
        self._horizon = clock if horizon is None else horizon
        self._gate = gate
        self._notifiers = {n.id: n for n in config.notifiers}
        self._grouper = Grouper(config.group_window)
        self._problems: dict[ProblemKey, Problem] = {}
        self._holds: Holds = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._dispatcher: Dispatcher | None = None
        self._timer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        now = self._clock()
        await self.outbox.open()
        orphans = await self.outbox.fail_orphans(self._notifiers, now)
        if orphans:
            log.warning(
                "%d pending alert messages were for notifiers no longer configured", orphans
            )
        await self.outbox.prune(now - self.config.retention)
        self._problems = await self.outbox.problems()
        for received_at, event in await self.outbox.waiting():
            # Windows count from when the events first arrived: ones that closed while
            # commwatch was stopped flush right away.
            self._grouper.add([event], min(received_at, now))
        # No proxy from the environment and no cookies: a webhook goes exactly where configured.
        self._session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        self._dispatcher = Dispatcher(
            self.outbox,
            self._send,
            {n.id: n.concurrency for n in self.config.notifiers},
            self.config.retry,
            describe=lambda notifier_id: self._notifiers[notifier_id].target,
            clock=self._clock,
            jitter=self._jitter,
            gate=self._gate,
        )
        self._dispatcher.start()
        self._timer = asyncio.create_task(self._run_timer(), name="commwatch-alert-timer")

    def hold_reminders(self, holds: Holds) -> None:
        """The acknowledgements in force: no reminder of those subjects' problems until then
        (`holds`: subject key -> POSIX seconds), in place of what was held before."""
        self._holds = dict(holds)
        self._wake.set()  # a withdrawn one may let a reminder that is due go out now

    async def announced(self, events: Iterable[Event]) -> list[Event]:
        """Those of `events` whose news alerting has taken: accepted once, or older than the
        inbox keeps what it accepted (`retention`)."""
        events = list(events)
        kept = await self.outbox.accepted(e.event_id for e in events)
        oldest = self._clock() - self.config.retention
        return [e for e in events if e.event_id in kept or e.at < oldest]

    async def submit(self, events: Iterable[Event], arrived: float | None = None) -> None:
        """Take events that arrived at `arrived` (now when not given)."""
        kept = [e for e in events if worth_keeping(e)]
        if not kept:
            return
        arrived = self._clock() if arrived is None else arrived
        fresh = await self.outbox.accept(kept, arrived)
        closes = self._grouper.next_close()
        if self._grouper.add(fresh, arrived) or (closes is not None and closes <= arrived):
            self._wake.set()

    async def aclose(self, grace: float = 2.0) -> None:
        """Stop. Open group windows and undelivered messages stay stored for the next start;
        deliveries already under way get `grace` seconds to finish."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._dispatcher is not None:
            await self._dispatcher.aclose(grace)
        if self._session is not None:
            await self._session.close()
        await self.outbox.close()

    async def pending_messages(self) -> dict[str, int]:
        """Messages waiting to be delivered, per configured notifier (0 for none waiting)."""
        counts = await self.outbox.pending_counts()
        return {notifier_id: counts.get(notifier_id, 0) for notifier_id in self._notifiers}

    async def _send(self, row: OutboxRow, fencing_token: int | None) -> Outcome:
        assert self._session is not None
        notifier = self._notifiers[row.notifier_id]
        return await deliver(self._session, notifier, row, self._clock(), fencing_token)

    async def _run_timer(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                # Nothing is lost: unflushed events stay in the inbox, problems in the store.
                log.exception("alert timer failed; retrying")
                await asyncio.sleep(1.0)
            now = self._clock()
            closes = self._grouper.next_close()
            if closes is not None and closes <= now:
                closes = now + HORIZON_POLL  # closed by the clock, not yet by the horizon
            reminder = next_reminder(self.config, self._problems, self._holds)
            wakes = [t for t in (closes, reminder) if t is not None]
            timeout = max(0.0, min(wakes) - now) if wakes else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def tick(self) -> None:
        """Flush closed group windows and send due reminders."""
        async with self._lock:
            now = self._clock()
            for site_id, events in self._grouper.due(min(now, self._horizon())):
                plan = plan_events(self.config, self._problems, site_id, events, now)
                try:
                    await self._commit(plan, [e.event_id for e in events], now)
                except Exception:
                    # Still waiting in the inbox; keep them grouped and try again.
                    log.exception("could not store alert messages for site %s", site_id)
                    self._grouper.add(events, now)
            plan = plan_reminders(self.config, self._problems, now, self._holds)
            if plan.messages:
                await self._commit(plan, [], now)

    async def _commit(self, plan: Plan, flushed: list[str], now: float) -> None:
        rows = []
        for message in plan.messages:
            rendered = render(message, self._notifiers[message.notifier_id].kind)
            rows.append(
                NewRow(
                    notifier_id=message.notifier_id,
                    key=message.key,
                    kind=str(message.kind),
                    site_id=message.site_id,
                    content_type=rendered.content_type,
                    body=rendered.body,
                )
            )
        await self.outbox.commit(rows, plan.problems, flushed, now)
        for key, problem in plan.problems.items():
            if problem is None:
                self._problems.pop(key, None)
            else:
                self._problems[key] = problem
        if rows and self._dispatcher is not None:
            self._dispatcher.wake()
