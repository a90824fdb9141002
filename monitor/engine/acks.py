"""Acknowledgements: an operator saying "I know, I am on it" about a subject's problem.

An acknowledgement belongs to the problem it was made for. It ends at its expiry, when its
subject's confirmed state changes (a check from CRIT to WARN or OK, a group from AT RISK to
DOWN: a new situation is news again), or when an operator withdraws it. The engine holds them
(`Monitor.acknowledge`); they are not stored, and a restart forgets them.

This module is pure: no clock and no I/O; times come from the caller.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from monitor.core.events import PENDING, CheckStatus, Event, EventKind, GroupStatus, LinkStatus
from monitor.core.events import Subject as SubjectKind
from monitor.core.text import printable

MAX_COMMENT_CHARS = 500
MAX_ACK_SECONDS = 30 * 86400.0

# The confirmed states that are no problem: nothing to acknowledge there.
_FINE = frozenset({CheckStatus.OK, LinkStatus.UP, GroupStatus.RESILIENT})


class AckRefused(ValueError):
    """An acknowledgement that cannot be made as asked; the message says why, for the
    operator."""


class NothingToAcknowledge(AckRefused):
    """The subject has no problem (or no confirmed state) to acknowledge."""


class AckEnd(enum.StrEnum):
    """Why an acknowledgement ended."""

    EXPIRED = "expired"
    STATE_CHANGED = "state changed"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Ack:
    subject: SubjectKind
    subject_id: str
    comment: str  # printable, at most MAX_COMMENT_CHARS
    by: str  # the name of the token it was made with
    at: float  # POSIX seconds
    expires: float


@dataclass(frozen=True, slots=True)
class AckChange:
    """What watchers are told: an acknowledgement made (`ack`), or ended (`ack` None, and
    `ended` the acknowledgement that was and why)."""

    subject_id: str
    ack: Ack | None
    ended: tuple[Ack, AckEnd] | None = None


def make_ack(
    subject: SubjectKind,
    subject_id: str,
    state: object,
    *,
    comment: str,
    by: str,
    at: float,
    expires: float,
) -> Ack:
    """An acknowledgement of `subject_id`, whose confirmed state is `state` (None: none yet),
    or AckRefused saying what is wrong (NothingToAcknowledge: the subject has no problem)."""
    shown = printable(comment.strip())
    if not shown:
        raise AckRefused("the comment is empty: say what is being done about it")
    if len(shown) > MAX_COMMENT_CHARS:
        raise AckRefused(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    if expires <= at:
        raise AckRefused("the expiry is not in the future")
    if expires - at > MAX_ACK_SECONDS:
        raise AckRefused("the expiry is more than 30 days away")
    if state is None or state == PENDING:
        raise NothingToAcknowledge(f"{subject} {subject_id} has no confirmed state yet")
    if state in _FINE:
        raise NothingToAcknowledge(
            f"{subject} {subject_id} is {state}: there is no problem to acknowledge"
        )
    return Ack(subject, subject_id, shown, by, at, expires)


class Acknowledgements:
    """The acknowledgements in force, one per subject at most (a new one replaces the old)."""

    def __init__(self) -> None:
        self._by_subject: dict[str, Ack] = {}

    def __iter__(self) -> Iterator[Ack]:
        return iter(tuple(self._by_subject.values()))

    def __len__(self) -> int:
        return len(self._by_subject)

    def get(self, subject_id: str) -> Ack | None:
        return self._by_subject.get(subject_id)

    def place(self, ack: Ack) -> AckChange:
        self._by_subject[ack.subject_id] = ack
        return AckChange(ack.subject_id, ack)

    def end(self, subject_id: str, why: AckEnd) -> AckChange | None:
        ack = self._by_subject.pop(subject_id, None)
        return None if ack is None else AckChange(subject_id, None, (ack, why))

    def ended_by(self, event: Event) -> AckChange | None:
        """The acknowledgement `event` ends: a confirmed change of its subject's state (not a
        held problem announced at last, which is the same state)."""
        if event.kind is not EventKind.HARD or event.before == event.after:
            return None
        return self.end(event.subject_id, AckEnd.STATE_CHANGED)

    def expire(self, now: float) -> list[AckChange]:
        """End every acknowledgement whose expiry is at or before `now`."""
        due = [ack.subject_id for ack in self._by_subject.values() if ack.expires <= now]
        return [change for sid in due if (change := self.end(sid, AckEnd.EXPIRED)) is not None]

    def next_expiry(self) -> float | None:
        return min((ack.expires for ack in self._by_subject.values()), default=None)
