"""Alerting: which state changes reach which notifier, grouped how, reminded when, resolved when.

The decisions are pure (`Grouper`, `plan_events`, `plan_reminders`): they take the open problems
and the events and return messages plus the problem changes, so they are table-tested without
I/O. `Alerter` is the shell around them: it records events in the outbox's inbox, runs the
group windows and reminder timers, commits each decision in one transaction and leaves sending
to the `Dispatcher`.

Rules, per notifier:
- It hears about a site when `sites` is empty or names the site.
- A HARD change to a state at or above `min_severity` opens a problem for its subject (a check,
  link or group) and is notified; a first state (from PENDING) is a change like any other.
  Once open, every further notifiable HARD change of that subject is notified too, so the
  reader follows it to its end, whatever its severity; except a change to the very state the
  reader was last told of (a first state evaluated again after a restart): that is not news.
- A change back to OK (or RESILIENT) closes the problem: a resolution notice if
  `send_resolved`. An OK change of a subject it was never told about is not news.
- An open problem whose latest change was notifiable is re-notified every `renotify_interval`.
  A suppressed change (flapping, unreachable, maintenance) is never sent: it holds reminders
  while the subject is suppressed, and one back to OK closes the problem silently.
- Flapping start/stop are notified as WARN and change no problem; SOFT events are ignored.
- Events of one site arriving within `group_window` seconds of the first go out as one message
  per notifier; reminders due together for one site share a message as well.

The configuration (`notifiers`, `sites`, `min_severity`, `group_window`, ...) is read and
checked by `monitor.config.alerts`, whose docstring shows an example.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from monitor.alerts.notifiers import (
    Message,
    MessageKind,
    deliver,
    event_severity,
    message_key,
    render,
    state_severity,
)
from monitor.alerts.outbox import (
    Dispatcher,
    NewRow,
    Outbox,
    OutboxRow,
    Outcome,
    Problem,
    ProblemKey,
    subject_key,
)
from monitor.config.alerts import AlertsConfig, NotifierConfig
from monitor.core.events import Event, EventKind
from monitor.core.model import Severity

log = logging.getLogger("commwatch.alerts")


# --- pure decisions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    messages: tuple[Message, ...] = ()
    problems: Mapping[ProblemKey, Problem | None] = field(default_factory=dict)  # None: closed


def worth_keeping(event: Event) -> bool:
    """SOFT events never matter; suppressed HARD ones still move problems (never messages)."""
    return event.kind is EventKind.HARD or event.notifiable


def plan_events(
    config: AlertsConfig,
    problems: Mapping[ProblemKey, Problem],
    site_id: str,
    events: Sequence[Event],
    now: float,
) -> Plan:
    """The messages for one site's group of events, one per notifier that has something."""
    messages: list[Message] = []
    changes: dict[ProblemKey, Problem | None] = {}
    for notifier in config.notifiers:
        if not notifier.routes(site_id):
            continue
        chosen: list[Event] = []
        for event in events:
            key = (notifier.id, subject_key(event))
            open_problem = changes[key] if key in changes else problems.get(key)
            if event.kind is not EventKind.HARD:
                if event.notifiable and (open_problem or notifier.wants(event_severity(event))):
                    chosen.append(event)
                continue
            ok = state_severity(event.after) is Severity.OK
            if ok:
                if open_problem is not None:
                    changes[key] = None
                    if event.notifiable and notifier.send_resolved:
                        chosen.append(event)
            elif not event.notifiable or _already_told(open_problem, event):
                if open_problem is not None:
                    changes[key] = dataclasses.replace(open_problem, event=event)
            elif open_problem is not None or notifier.wants(state_severity(event.after)):
                chosen.append(event)
                changes[key] = Problem(notifier.id, event, last_sent=now)
        if chosen:
            group = tuple(chosen)
            messages.append(
                Message(notifier.id, message_key(group), MessageKind.ALERT, site_id, group, now)
            )
    return Plan(tuple(messages), changes)


def _already_told(problem: Problem | None, event: Event) -> bool:
    """The notifier was told of this very state, and nothing held since (a first state
    evaluated again after a restart, say): not news."""
    return problem is not None and problem.event.notifiable and problem.event.after == event.after


def _reminder_due(notifier: NotifierConfig, problem: Problem, now: float) -> bool:
    interval = notifier.renotify_interval
    return interval is not None and problem.event.notifiable and now - problem.last_sent >= interval


def plan_reminders(
    config: AlertsConfig, problems: Mapping[ProblemKey, Problem], now: float
) -> Plan:
    """Reminders of open problems that are due, one message per notifier and site."""
    messages: list[Message] = []
    changes: dict[ProblemKey, Problem | None] = {}
    for notifier in config.notifiers:
        by_site: dict[str, list[tuple[ProblemKey, Problem]]] = {}
        for key, problem in problems.items():
            if key[0] == notifier.id and _reminder_due(notifier, problem, now):
                by_site.setdefault(problem.event.site_id, []).append((key, problem))
        for site_id, due in sorted(by_site.items()):
            events = tuple(problem.event for _, problem in due)
            # The reminder's number is in the key: the same reminder replayed is not sent twice,
            # the next one is.
            salt = "reminder|" + ",".join(
                sorted(f"{p.event.event_id}#{p.renotified + 1}" for _, p in due)
            )
            messages.append(
                Message(
                    notifier.id,
                    message_key(events, salt),
                    MessageKind.REMINDER,
                    site_id,
                    events,
                    now,
                )
            )
            for key, problem in due:
                changes[key] = dataclasses.replace(
                    problem, last_sent=now, renotified=problem.renotified + 1
                )
    return Plan(tuple(messages), changes)


def next_reminder(config: AlertsConfig, problems: Mapping[ProblemKey, Problem]) -> float | None:
    """When the earliest reminder falls due, or None when none will without a new event."""
    intervals = {n.id: n.renotify_interval for n in config.notifiers}
    times = [
        problem.last_sent + interval
        for (notifier_id, _), problem in problems.items()
        if (interval := intervals.get(notifier_id)) is not None and problem.event.notifiable
    ]
    return min(times, default=None)


class Grouper:
    """Per-site group windows: a site's window opens with its first event and closes
    `window` seconds later, so a storm becomes one message and none waits longer than that."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._events: dict[str, list[Event]] = {}
        self._closes: dict[str, float] = {}

    def add(self, events: Iterable[Event], now: float) -> bool:
        """Returns True when a window opened (the caller's timer may need to wake earlier)."""
        opened = False
        for event in events:
            if event.site_id not in self._events:
                self._events[event.site_id] = []
                self._closes[event.site_id] = now + self.window
                opened = True
            self._events[event.site_id].append(event)
        return opened

    def due(self, now: float) -> list[tuple[str, tuple[Event, ...]]]:
        """Takes out the groups whose window has closed."""
        closed = [site for site, closes in self._closes.items() if closes <= now]
        result = []
        for site in closed:
            del self._closes[site]
            result.append((site, tuple(self._events.pop(site))))
        return result

    def next_close(self) -> float | None:
        return min(self._closes.values(), default=None)


# --- the shell -----------------------------------------------------------------------------


class Alerter:
    """Alerting for one process: `await start()`, `await submit(events)`, `await aclose()`.

    `submit` returns once the events are stored (on the outbox's thread; the event loop is not
    held), never waiting for a receiver. A restart on the same database picks up what a
    previous process left: events still in a group window, pending messages, open problems.
    """

    def __init__(
        self,
        config: AlertsConfig,
        db_path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.outbox = Outbox(db_path)
        self._clock = clock
        self._jitter = jitter
        self._notifiers = {n.id: n for n in config.notifiers}
        self._grouper = Grouper(config.group_window)
        self._problems: dict[ProblemKey, Problem] = {}
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
        )
        self._dispatcher.start()
        self._timer = asyncio.create_task(self._run_timer(), name="commwatch-alert-timer")

    async def announced(self, events: Iterable[Event]) -> list[Event]:
        """Those of `events` whose news alerting has taken: accepted once, or older than the
        inbox keeps what it accepted (`retention`)."""
        events = list(events)
        kept = await self.outbox.accepted(e.event_id for e in events)
        oldest = self._clock() - self.config.retention
        return [e for e in events if e.event_id in kept or e.at < oldest]

    async def submit(self, events: Iterable[Event]) -> None:
        kept = [e for e in events if worth_keeping(e)]
        if not kept:
            return
        fresh = await self.outbox.accept(kept, self._clock())
        if self._grouper.add(fresh, self._clock()):
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

    async def _send(self, row: OutboxRow) -> Outcome:
        assert self._session is not None
        return await deliver(self._session, self._notifiers[row.notifier_id], row, self._clock())

    async def _run_timer(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                # Nothing is lost: unflushed events stay in the inbox, problems in the store.
                log.exception("alert timer failed; retrying")
                await asyncio.sleep(1.0)
            wakes = [
                t
                for t in (self._grouper.next_close(), next_reminder(self.config, self._problems))
                if t is not None
            ]
            timeout = max(0.0, min(wakes) - self._clock()) if wakes else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def tick(self) -> None:
        """Flush closed group windows and send due reminders."""
        async with self._lock:
            now = self._clock()
            for site_id, events in self._grouper.due(now):
                plan = plan_events(self.config, self._problems, site_id, events, now)
                try:
                    await self._commit(plan, [e.event_id for e in events], now)
                except Exception:
                    # Still waiting in the inbox; keep them grouped and try again.
                    log.exception("could not store alert messages for site %s", site_id)
                    self._grouper.add(events, now)
            plan = plan_reminders(self.config, self._problems, now)
            if plan.messages:
                await self._commit(plan, [], now)

    async def _commit(self, plan: Plan, flushed: list[str], now: float) -> None:
        rows = []
        for message in plan.messages:
            content_type, body = render(message, self._notifiers[message.notifier_id].kind)
            rows.append(
                NewRow(
                    message.notifier_id,
                    message.key,
                    str(message.kind),
                    message.site_id,
                    content_type,
                    body,
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
