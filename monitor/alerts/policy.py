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
- An acknowledged problem is not reminded of while the acknowledgement holds (`holds`: until
  when, per subject key); once it expires, a reminder that fell due meanwhile goes out at once.
  A change of the subject's state ends the acknowledgement (the engine's rule) and is notified
  as any change is.
- Flapping start/stop are notified as WARN and change no problem; SOFT events are ignored.
- Events of one site arriving within `group_window` seconds of the first go out as one message
  per notifier (arriving: see `Grouper`); reminders due together for one site share a message
  as well.

The configuration (`notifiers`, `sites`, `min_severity`, `group_window`, ...) is read and
checked by `monitor.config.alerts`, whose docstring shows an example.
"""

from __future__ import annotations

import dataclasses
import math
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
from monitor.config.alerts import AlertsConfig
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


# Until when each acknowledged subject's reminders are held (POSIX seconds), by subject key.
Holds = Mapping[str, float]


def _reminder_at(interval: float | None, problem: Problem, holds: Holds) -> float | None:
    """When the problem's next reminder falls due; None when none will without a new event."""
    if interval is None or not problem.event.notifiable:
        return None
    return max(problem.last_sent + interval, holds.get(problem.subject_key, -math.inf))


def plan_reminders(
    config: AlertsConfig,
    problems: Mapping[ProblemKey, Problem],
    now: float,
    holds: Holds | None = None,
) -> Plan:
    """Reminders of open problems that are due, one message per notifier and site."""
    holds = {} if holds is None else holds
    messages: list[Message] = []
    changes: dict[ProblemKey, Problem | None] = {}
    for notifier in config.notifiers:
        by_site: dict[str, list[tuple[ProblemKey, Problem]]] = {}
        for key, problem in problems.items():
            at = _reminder_at(notifier.renotify_interval, problem, holds)
            if key[0] == notifier.id and at is not None and at <= now:
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


def next_reminder(
    config: AlertsConfig, problems: Mapping[ProblemKey, Problem], holds: Holds | None = None
) -> float | None:
    """When the earliest reminder falls due, or None when none will without a new event."""
    holds = {} if holds is None else holds
    intervals = {n.id: n.renotify_interval for n in config.notifiers}
    times = [
        due
        for (notifier_id, _), problem in problems.items()
        if (due := _reminder_at(intervals.get(notifier_id), problem, holds)) is not None
    ]
    return min(times, default=None)


class Grouper:
    """Per-site group windows by arrival: a site's window opens when its first event arrives and
    takes every event that arrives within `window` seconds of that, so a storm becomes one
    message and none waits longer than the window (and the horizon, below).

    When an event arrived is the caller's to say: when its result was taken (one process), or
    when the results stream stored it (a central: the same time for every central reading the
    stream, so that all of them group alike, however late each reads). An event arriving at or
    after its site's window closes opens the next one: membership depends on arrival times
    alone, never on when a window happens to be flushed. `due(horizon)` flushes the windows
    that closed by `horizon`, the time up to which every event that arrived has been added."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._events: dict[str, list[Event]] = {}
        self._closes: dict[str, float] = {}
        self._complete: list[tuple[float, str, tuple[Event, ...]]] = []  # closed, not flushed

    def add(self, events: Iterable[Event], arrived: float) -> bool:
        """Returns True when a window opened (the caller's timer may need to wake earlier)."""
        opened = False
        for event in events:
            site = event.site_id
            closes = self._closes.get(site)
            if closes is not None and arrived >= closes:
                self._complete.append((closes, site, tuple(self._events.pop(site))))
                del self._closes[site]
            if site not in self._events:
                self._events[site] = []
                self._closes[site] = arrived + self.window
                opened = True
            self._events[site].append(event)
        return opened

    def due(self, horizon: float) -> list[tuple[str, tuple[Event, ...]]]:
        """Takes out the groups whose window closed by `horizon`, earliest first."""
        closed = [(closes, site) for site, closes in self._closes.items() if closes <= horizon]
        for closes, site in closed:
            del self._closes[site]
            self._complete.append((closes, site, tuple(self._events.pop(site))))
        ready = sorted(
            (entry for entry in self._complete if entry[0] <= horizon), key=lambda e: e[0]
        )
        self._complete = [entry for entry in self._complete if entry[0] > horizon]
        return [(site, events) for _, site, events in ready]

    def next_close(self) -> float | None:
        closes = [*self._closes.values(), *(entry[0] for entry in self._complete)]
        return min(closes, default=None)
