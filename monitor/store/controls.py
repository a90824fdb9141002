"""What operators do to the engine, as values and as rows: acknowledgements made and ended,
checks paused and resumed.

They are items of the engine's stream like results and events (numbered by the store, stored
before they are shown), so this layer owns their values: the engine makes and ends them
(monitor.engine.acks, monitor.engine.commands), alerting reads the acknowledgements in force to
hold reminders back, and the API shows them.

Two tables: `controls`, the log of every change in the stream's order (what a viewer that
reconnects is replayed, and an audit of who acknowledged or paused what), and `acks`, the
acknowledgements in force, one per subject, which a restarted engine takes up again.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from monitor.core.events import Subject


class AckEnd(enum.StrEnum):
    """Why an acknowledgement ended."""

    EXPIRED = "expired"
    STATE_CHANGED = "state changed"
    WITHDRAWN = "withdrawn"
    UNWATCHED = "no longer watched"  # a restarted engine no longer has its subject


@dataclass(frozen=True, slots=True)
class Ack:
    """An operator's "I know, I am on it" about the problem of one subject."""

    subject: Subject
    subject_id: str
    comment: str  # printable, at most monitor.engine.acks.MAX_COMMENT_CHARS
    by: str  # the name of the token (or the dashboard) it was made with
    at: float  # POSIX seconds
    expires: float
    state: str = ""  # the confirmed state acknowledged ("CRIT", "AT RISK"): its problem

    @property
    def subject_key(self) -> str:
        """The subject as alerting keys its problems (monitor.alerts.outbox.subject_key)."""
        return f"{self.subject}:{self.subject_id}"


@dataclass(frozen=True, slots=True)
class AckChange:
    """An acknowledgement made (`ack`), or ended (`ack` None, and `ended` the acknowledgement
    that was and why)."""

    subject_id: str
    ack: Ack | None
    ended: tuple[Ack, AckEnd] | None = None


@dataclass(frozen=True, slots=True)
class PauseChange:
    """An operator paused or resumed a check."""

    check_id: str
    paused: bool


Control = AckChange | PauseChange


def _ack_json(ack: Ack) -> dict[str, Any]:
    return {
        "subject": str(ack.subject),
        "subject_id": ack.subject_id,
        "comment": ack.comment,
        "by": ack.by,
        "at": ack.at,
        "expires": ack.expires,
        "state": ack.state,
    }


def _ack_of_json(values: dict[str, Any]) -> Ack:
    return Ack(
        subject=Subject(values["subject"]),
        subject_id=str(values["subject_id"]),
        comment=str(values["comment"]),
        by=str(values["by"]),
        at=float(values["at"]),
        expires=float(values["expires"]),
        state=str(values.get("state", "")),
    )


def control_row(change: Control, at: float) -> tuple[Any, ...]:
    """The `controls` row of a change made at `at`, without its id: (at, kind, subject_id,
    data)."""
    if isinstance(change, PauseChange):
        return (at, "pause", change.check_id, json.dumps({"paused": change.paused}))
    data: dict[str, Any] = {"ack": None if change.ack is None else _ack_json(change.ack)}
    if change.ended is not None:
        data["ended"] = {"ack": _ack_json(change.ended[0]), "why": str(change.ended[1])}
    return (at, "ack", change.subject_id, json.dumps(data, separators=(",", ":")))


INSERT_CONTROL = "INSERT INTO controls (id, at, kind, subject_id, data) VALUES (?, ?, ?, ?, ?)"
CONTROL_COLUMNS = "kind, subject_id, data"


def control_of_row(row: tuple[Any, ...]) -> Control:
    """A change from the columns CONTROL_COLUMNS names, in that order."""
    kind, subject_id, data = row[0], row[1], json.loads(row[2])
    if kind == "pause":
        return PauseChange(subject_id, bool(data["paused"]))
    ended = data.get("ended")
    return AckChange(
        subject_id,
        None if data["ack"] is None else _ack_of_json(data["ack"]),
        None if ended is None else (_ack_of_json(ended["ack"]), AckEnd(ended["why"])),
    )


def ack_statements(change: Control) -> list[tuple[str, tuple[Any, ...]]]:
    """What a change does to the acknowledgements in force (the `acks` table)."""
    if isinstance(change, PauseChange):
        return []
    if change.ack is None:
        return [("DELETE FROM acks WHERE subject_id = ?", (change.subject_id,))]
    ack = change.ack
    return [
        (
            "INSERT INTO acks (subject_id, subject, state, comment, by, at, expires) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject_id) DO UPDATE SET "
            "subject = excluded.subject, state = excluded.state, comment = excluded.comment, "
            "by = excluded.by, at = excluded.at, expires = excluded.expires",
            (ack.subject_id, str(ack.subject), ack.state, ack.comment, ack.by, ack.at, ack.expires),
        )
    ]


ACK_COLUMNS = "subject, subject_id, comment, by, at, expires, state"


def ack_of_row(row: tuple[Any, ...]) -> Ack:
    """An acknowledgement from the columns ACK_COLUMNS names, in that order."""
    return Ack(Subject(row[0]), row[1], row[2], row[3], row[4], row[5], row[6])
