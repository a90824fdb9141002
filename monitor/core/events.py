"""State-change events: what the state engine emits and what history, alerts and the dashboard
consume. Frozen, and each carries a stable id that doubles as the alerts' idempotency key.

The states an event goes between are enums whose values are the words every output uses
("OK", "AT RISK", "PENDING"): str-valued, so JSON, history rows, notifier payloads and event ids
carry the same text they always did, while code compares members, never spellings.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from monitor.core.model import Severity


class Subject(enum.StrEnum):
    CHECK = "check"
    LINK = "link"
    GROUP = "group"


class Pending(enum.StrEnum):
    """The state of a subject before its first confirmed one: nothing is known about it."""

    PENDING = "PENDING"


PENDING: Final = Pending.PENDING


class CheckStatus(enum.StrEnum):
    """A check's confirmed state as events name it: its severity. `Severity` itself is the
    plugin exit code (an IntEnum); this is its name, for everything that is read or stored."""

    OK = "OK"
    WARN = "WARN"
    CRIT = "CRIT"
    UNKNOWN = "UNKNOWN"

    @property
    def severity(self) -> Severity:
        return _SEVERITY_OF_STATUS[self]

    @classmethod
    def of(cls, severity: Severity) -> CheckStatus:
        return _STATUS_OF_SEVERITY[severity]


_STATUS_OF_SEVERITY: Mapping[Severity, CheckStatus] = MappingProxyType(
    {severity: CheckStatus(severity.name) for severity in Severity}
)
_SEVERITY_OF_STATUS: Mapping[CheckStatus, Severity] = MappingProxyType(
    {status: severity for severity, status in _STATUS_OF_SEVERITY.items()}
)


class LinkStatus(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class GroupStatus(enum.StrEnum):
    RESILIENT = "RESILIENT"  # every link up
    DEGRADED = "DEGRADED"  # redundancy reduced, more than min_up still up
    AT_RISK = "AT RISK"  # exactly min_up up: one more failure is an outage
    DOWN = "DOWN"  # fewer than min_up up
    UNKNOWN = "UNKNOWN"  # fewer than min_up known up, and unknown links could make up the rest


State = CheckStatus | LinkStatus | GroupStatus | Pending

# The states each kind of subject can be in, besides PENDING.
STATES: Mapping[Subject, type[CheckStatus] | type[LinkStatus] | type[GroupStatus]] = (
    MappingProxyType(
        {Subject.CHECK: CheckStatus, Subject.LINK: LinkStatus, Subject.GROUP: GroupStatus}
    )
)


def parse_state(subject: Subject, text: str) -> State | None:
    """The state `text` names for a subject of this kind; None for one this commwatch does not
    know (a newer one wrote it, or it belongs to another kind of subject)."""
    if text == PENDING:
        return PENDING
    try:
        return STATES[subject](text)
    except ValueError:
        return None


def state_label(subject: Subject, text: str) -> State | str:
    """A stored state read back: the member it names, or the text itself for a state this
    commwatch does not know, so that it is shown as written and never guessed."""
    state = parse_state(subject, text)
    return text if state is None else state


class EventKind(enum.StrEnum):
    SOFT = "soft"  # a check's latest results disagree with its confirmed state (not alerted)
    HARD = "hard"  # a confirmed change of a check, link or group
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"
    # Not a change of state: a device's SNMP trap or inform, recorded on it (its before and
    # after are its state then). Never notified (monitor.engine.traps).
    TRAP = "trap"
    # A link's traced route changed (monitor.engine.paths): before and after are the routes.
    PATH_CHANGE = "path_change"


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
    # e.g. CheckStatus.OK -> CheckStatus.CRIT, GroupStatus.RESILIENT -> GroupStatus.AT_RISK; the
    # text itself only for a stored state this commwatch does not know (see `state_label`).
    before: State | str
    after: State | str
    cause: str  # one line: the result's summary, or which link went down
    suppressed: tuple[Suppression, ...] = ()

    @property
    def event_id(self) -> str:
        """Stable across restarts and replays: the same change is the same event."""
        key = f"{self.subject}|{self.subject_id}|{self.kind}|{self.before}|{self.after}|{self.at!r}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @property
    def notifiable(self) -> bool:
        return self.kind not in (EventKind.SOFT, EventKind.TRAP) and not self.suppressed
