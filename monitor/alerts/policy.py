"""Alerting: which state changes reach which notifier, grouped how, reminded when, resolved when.

The decisions are pure (`Grouper`, `plan_events`, `plan_reminders`): they take the open problems
and the events and return messages plus the problem changes, so they are table-tested without
I/O. `monitor.alerts.alerter.Alerter` is the shell around them.

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

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.alerts.message import (
    Message,
    MessageKind,
    event_severity,
    message_key,
    state_severity,
)
from monitor.alerts.outbox import Problem, ProblemKey, subject_key
from monitor.config.alerts import AlertsConfig, NotifierConfig
from monitor.core.events import Event, EventKind
from monitor.core.model import Severity

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
