"""Acknowledgements: an operator saying "I know, I am on it" about a subject's problem.

An acknowledgement belongs to the problem it was made for. It ends at its expiry, when its
subject's confirmed state changes (a check from CRIT to WARN or OK, a group from AT RISK to
DOWN: a new situation is news again), or when an operator withdraws it. While it holds, alerting
sends no reminder of that problem (monitor.alerts.policy). The engine holds them
(`Monitor.acknowledge`) and stores every change (monitor.store.controls, the values' owner): a
restarted engine takes up those still in force for the same problem (`take_up`).

This module is pure: no clock and no I/O; times come from the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping

from monitor.core.events import PENDING, CheckStatus, Event, EventKind, GroupStatus, LinkStatus
from monitor.core.events import Subject as SubjectKind
from monitor.core.options import OptionError, duration
from monitor.core.text import printable
from monitor.store.controls import Ack, AckChange, AckEnd

MAX_COMMENT_CHARS = 500
MAX_ACK_SECONDS = 30 * 86400.0

# The confirmed states that are no problem: nothing to acknowledge there.
_FINE = frozenset({CheckStatus.OK, LinkStatus.UP, GroupStatus.RESILIENT})


class AckRefused(ValueError):
    """An acknowledgement that cannot be made as asked; the message says why, for the
    operator."""


class NothingToAcknowledge(AckRefused):
    """The subject has no problem (or no confirmed state) to acknowledge."""


DEFAULT_EXPIRY = "4h"  # what a dashboard offers: a shift at most


def moment(text: object, now: float, *, ahead: bool = True) -> float:
    """POSIX seconds from a duration (`ahead` of `now`, else back from it: "4h") or an ISO 8601
    time with its UTC offset; ValueError saying what it is not, to follow the thing's name
    ("expires is neither ...")."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError('is a duration ("4h") or an ISO 8601 time')
    try:
        seconds = duration(text)
    except OptionError:
        pass
    else:
        return now + seconds if ahead else now - seconds
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError('is neither a duration ("4h", "1d") nor an ISO 8601 time') from None
    if parsed.tzinfo is None:
        raise ValueError("has no UTC offset: write e.g. 2026-12-01T18:00:00Z or +01:00")
    return parsed.timestamp()


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
    return Ack(subject, subject_id, shown, by, at, expires, str(state))


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
        """The acknowledgement `event` ends: a confirmed change of its subject's state to
        another than the one acknowledged. Not a held problem announced at last (the same
        state), nor the change to the acknowledged state itself: an engine with history shows
        an event once it is stored, and an acknowledgement made meanwhile is of its state."""
        if event.kind is not EventKind.HARD or event.before == event.after:
            return None
        ack = self._by_subject.get(event.subject_id)
        if ack is None or str(event.after) == ack.state:
            return None
        return self.end(event.subject_id, AckEnd.STATE_CHANGED)

    def expire(self, now: float) -> list[AckChange]:
        """End every acknowledgement whose expiry is at or before `now`."""
        due = [ack.subject_id for ack in self._by_subject.values() if ack.expires <= now]
        return [change for sid in due if (change := self.end(sid, AckEnd.EXPIRED)) is not None]

    def next_expiry(self) -> float | None:
        return min((ack.expires for ack in self._by_subject.values()), default=None)

    def take_up(
        self, stored: Iterable[Ack], now: float, state_of: Mapping[str, object]
    ) -> list[AckChange]:
        """Hold again what a previous run of the engine held: those of `stored` still in
        force for the problem they were made for (`state_of`: each subject's confirmed state
        now; a subject not in it is no longer watched). The others end, as changes."""
        ended = []
        for ack in stored:
            why = None
            if ack.subject_id not in state_of:
                why = AckEnd.UNWATCHED
            elif ack.expires <= now:
                why = AckEnd.EXPIRED
            elif str(state_of[ack.subject_id]) != ack.state:
                why = AckEnd.STATE_CHANGED
            if why is None:
                self._by_subject[ack.subject_id] = ack
            else:
                ended.append(AckChange(ack.subject_id, None, (ack, why)))
        return ended


def reminder_holds(acks: Iterable[Ack]) -> dict[str, float]:
    """Until when each acknowledged subject's reminders are held, as alerting keys subjects."""
    return {ack.subject_key: ack.expires for ack in acks}
