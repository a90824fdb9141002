"""State-change events: what the state engine emits and what history, alerts and the dashboard
consume. Frozen, and each carries a stable id that doubles as the alerts' idempotency key."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

# The `before` of a subject's first state: nothing was known about it.
PENDING = "PENDING"


class Subject(enum.StrEnum):
    CHECK = "check"
    LINK = "link"
    GROUP = "group"


class EventKind(enum.StrEnum):
    SOFT = "soft"  # a check's latest results disagree with its confirmed state (not alerted)
    HARD = "hard"  # a confirmed change of a check, link or group
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"


class Suppression(enum.StrEnum):
    """Why an event must not be notified (it is still recorded and shown)."""

    FLAPPING = "flapping"
    UNREACHABLE = "unreachable"  # a parent it depends on is down
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # POSIX seconds: when the result that caused it started
    subject: Subject
    subject_id: str  # check id (site/link/check), link id (site/link) or group id
    site_id: str
    kind: EventKind
    before: str  # e.g. "OK", "RESILIENT"
    after: str  # e.g. "CRIT", "AT RISK"
    cause: str  # one line: the result's summary, or which link went down
    suppressed: tuple[Suppression, ...] = ()

    @property
    def event_id(self) -> str:
        """Stable across restarts and replays: the same change is the same event."""
        key = f"{self.subject}|{self.subject_id}|{self.kind}|{self.before}|{self.after}|{self.at!r}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @property
    def notifiable(self) -> bool:
        return self.kind is not EventKind.SOFT and not self.suppressed
