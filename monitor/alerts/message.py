"""What an alert says, whatever the format: a `Message` (one site's events for one notifier),
how bad each state is, the order events are told in, and the words every format shares.

The formats in `monitor.alerts.formats` only lay these out; a reader of the webhook, the Slack
message and the Teams card is told the same things in the same words.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.core.events import (
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
    Suppression,
)
from monitor.core.model import Severity
from monitor.core.text import printable
from monitor.output.records import iso_time

# --- states and what they weigh -------------------------------------------------------------

# Check and link states are severities; group states say how much redundancy is left. AT RISK is
# CRIT: one more failure is an outage, the thing an emergency-communications engineer must hear.
STATE_SEVERITY: Mapping[str, Severity] = {
    **{status: status.severity for status in CheckStatus},
    LinkStatus.UP: Severity.OK,
    LinkStatus.DOWN: Severity.CRIT,  # a group DOWN too: the same word
    GroupStatus.RESILIENT: Severity.OK,
    GroupStatus.DEGRADED: Severity.WARN,
    GroupStatus.AT_RISK: Severity.CRIT,
}


def state_severity(state: str) -> Severity:
    """How bad a state is; a state this table does not know is notified as UNKNOWN."""
    return STATE_SEVERITY.get(state.upper(), Severity.UNKNOWN)


def event_severity(event: Event) -> Severity:
    # A flapping check is worth a heads-up, never a page: its notifications are being held.
    # So is a rerouted link (its before and after are routes, not states): diversity may be gone.
    if event.kind in (EventKind.FLAPPING_START, EventKind.FLAPPING_STOP, EventKind.PATH_CHANGE):
        return Severity.WARN
    return state_severity(event.after)


def is_resolution(event: Event) -> bool:
    return event.kind is EventKind.HARD and state_severity(event.after) is Severity.OK


# --- events as data ---------------------------------------------------------------------------


def event_record(event: Event) -> dict[str, Any]:
    """An event as plain JSON-able data, as the outbox stores it and the webhook carries it;
    `at` survives a JSON round trip exactly, so does the id."""
    return {
        "event_id": event.event_id,
        "at": event.at,
        "subject": str(event.subject),
        "subject_id": event.subject_id,
        "site_id": event.site_id,
        "kind": str(event.kind),
        "before": event.before,
        "after": event.after,
        "cause": event.cause,
        "suppressed": [str(s) for s in event.suppressed],
    }


def event_from_record(record: Mapping[str, Any]) -> Event:
    return Event(
        at=record["at"],
        subject=Subject(record["subject"]),
        subject_id=record["subject_id"],
        site_id=record["site_id"],
        kind=EventKind(record["kind"]),
        before=record["before"],
        after=record["after"],
        cause=record["cause"],
        suppressed=tuple(Suppression(s) for s in record["suppressed"]),
    )


# --- messages ------------------------------------------------------------------------------


class MessageKind(enum.StrEnum):
    ALERT = "alert"  # state changes
    REMINDER = "reminder"  # re-notification of problems still unresolved


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to one notifier: one site's events from one group window."""

    notifier_id: str
    key: str  # idempotency key
    kind: MessageKind
    site_id: str
    events: tuple[Event, ...]
    created_at: float

    @property
    def resolved(self) -> bool:
        """Every subject in it ends back at OK/RESILIENT (it may pass AT RISK on the way)."""
        latest = {(e.subject, e.subject_id): e for e in self.events if e.kind is EventKind.HARD}
        return bool(latest) and all(is_resolution(e) for e in latest.values())

    @property
    def severity(self) -> Severity:
        return Severity.worst(event_severity(e) for e in self.events)


def message_key(events: tuple[Event, ...], salt: str = "") -> str:
    """A single event's message is keyed by the event's id, a group by a hash of their ids."""
    if len(events) == 1 and not salt:
        return events[0].event_id
    joined = "|".join([salt, *sorted(e.event_id for e in events)])
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


# --- the words every format shares -------------------------------------------------------------

_SUBJECT_ORDER = {Subject.GROUP: 0, Subject.LINK: 1, Subject.CHECK: 2}


def ordered(events: tuple[Event, ...]) -> list[Event]:
    """Most telling first: a group's state before its links', links before checks."""
    return sorted(events, key=lambda e: (_SUBJECT_ORDER[e.subject], -event_severity(e).rank))


def subject_label(event: Event) -> str:
    """`link psap-north/fibre`."""
    return f"{event.subject} {event.subject_id}"


def change_text(event: Event) -> str:
    if event.kind is EventKind.FLAPPING_START:
        return "is flapping: notifications held until it settles"
    if event.kind is EventKind.FLAPPING_STOP:
        return "stopped flapping"
    if event.kind is EventKind.PATH_CHANGE:
        return f"path changed: {event.before} → {event.after}"
    return f"{event.before} → {event.after}"


def change_and_cause(event: Event) -> str:
    # The cause quotes a result's summary (peer text): a chat message is read by people.
    return f"{change_text(event)} ({printable(event.cause)})"


def event_line(event: Event) -> str:
    return f"{subject_label(event)}: {change_and_cause(event)}"


def summary(message: Message) -> str:
    """One line naming the site, its most telling change and how many more there are."""
    lead, *rest = ordered(message.events)
    label = "RESOLVED" if message.resolved else lead.after
    if lead.kind is not EventKind.HARD:
        label = "PATH CHANGED" if lead.kind is EventKind.PATH_CHANGE else "FLAPPING"
    prefix = "Still unresolved: " if message.kind is MessageKind.REMINDER else ""
    more = f" (+{len(rest)} more)" if rest else ""
    return f"{prefix}[{label}] {message.site_id}: {subject_label(lead)} {change_text(lead)}{more}"


def byline(message: Message) -> str:
    """Who sent it, when, and its key: what a reader quotes when asking about a message."""
    return f"commwatch · {iso_time(message.created_at)} · {message.key}"
