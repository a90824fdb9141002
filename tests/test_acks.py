"""Acknowledgements as the engine keeps them (monitor.engine.acks): what may be acknowledged,
for how long, and what ends one."""

from __future__ import annotations

import pytest

from monitor.core.events import (
    PENDING,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
)
from monitor.engine.acks import (
    MAX_ACK_SECONDS,
    AckEnd,
    Acknowledgements,
    AckRefused,
    NothingToAcknowledge,
    make_ack,
)

NOW = 1_800_000_000.0


def ack(subject_id="s/l/c", state=CheckStatus.CRIT, comment="on it", expires=NOW + 3600):
    return make_ack(
        Subject.CHECK, subject_id, state, comment=comment, by="noc", at=NOW, expires=expires
    )


def event(subject_id, before, after, kind=EventKind.HARD):
    return Event(NOW, Subject.CHECK, subject_id, "s", kind, before, after, "why")


def test_a_problem_is_acknowledged_with_a_printable_comment():
    made = ack(comment="  fibre cut\x1b[2J, carrier ticket 42\n")
    assert made.comment == "fibre cut\\x1b[2J, carrier ticket 42"
    assert (made.by, made.at, made.expires) == ("noc", NOW, NOW + 3600)


@pytest.mark.parametrize(
    "state", [None, PENDING, CheckStatus.OK, LinkStatus.UP, GroupStatus.RESILIENT]
)
def test_there_is_nothing_to_acknowledge_without_a_problem(state):
    with pytest.raises(NothingToAcknowledge):
        ack(state=state)


@pytest.mark.parametrize(
    "state", [CheckStatus.WARN, CheckStatus.UNKNOWN, LinkStatus.DOWN, GroupStatus.AT_RISK]
)
def test_every_problem_state_can_be_acknowledged(state):
    assert ack(state=state).subject_id == "s/l/c"


@pytest.mark.parametrize(
    ("comment", "expires", "says"),
    [
        ("   ", NOW + 60, "the comment is empty"),
        ("x" * 501, NOW + 60, "longer than 500 characters"),
        ("ok", NOW, "not in the future"),
        ("ok", NOW + MAX_ACK_SECONDS + 1, "more than 30 days away"),
    ],
)
def test_bad_requests_are_refused_before_the_state_is_judged(comment, expires, says):
    with pytest.raises(AckRefused, match=says) as refused:
        ack(state=CheckStatus.OK, comment=comment, expires=expires)
    assert not isinstance(refused.value, NothingToAcknowledge)
    assert ack(comment="x" * 500, expires=NOW + MAX_ACK_SECONDS).comment == "x" * 500


def test_a_change_of_confirmed_state_ends_it_and_nothing_else_does():
    acks = Acknowledgements()
    placed = acks.place(ack())
    assert placed.ack is not None and placed.ended is None
    # A soft result, a held problem announced at last (same state), another subject: no end.
    assert acks.ended_by(event("s/l/c", CheckStatus.CRIT, CheckStatus.OK, EventKind.SOFT)) is None
    assert acks.ended_by(event("s/l/c", CheckStatus.CRIT, CheckStatus.CRIT)) is None
    assert acks.ended_by(event("s/l/other", CheckStatus.CRIT, CheckStatus.OK)) is None
    # The change to the acknowledged state itself, shown after the ack was made (an engine with
    # history shows an event once stored): the ack is of that state, and holds.
    assert acks.ended_by(event("s/l/c", CheckStatus.OK, CheckStatus.CRIT)) is None
    assert acks.get("s/l/c") is not None
    ended = acks.ended_by(event("s/l/c", CheckStatus.CRIT, CheckStatus.WARN))
    assert ended is not None and ended.ack is None
    assert ended.ended is not None and ended.ended[1] is AckEnd.STATE_CHANGED
    assert acks.get("s/l/c") is None and len(acks) == 0


def test_expiry_ends_only_those_due_and_a_new_ack_replaces_the_old():
    acks = Acknowledgements()
    acks.place(ack("a", expires=NOW + 10))
    acks.place(ack("b", expires=NOW + 20))
    acks.place(ack("b", comment="later", expires=NOW + 30))
    assert len(acks) == 2 and acks.next_expiry() == NOW + 10
    assert acks.expire(NOW + 9) == []
    [expired] = acks.expire(NOW + 10)
    assert expired.subject_id == "a" and expired.ended is not None
    assert expired.ended[1] is AckEnd.EXPIRED
    assert acks.next_expiry() == NOW + 30 and acks.get("b").comment == "later"
    withdrawn = acks.end("b", AckEnd.WITHDRAWN)
    assert withdrawn is not None and acks.next_expiry() is None
    assert acks.end("b", AckEnd.WITHDRAWN) is None
