"""A stored state read back (monitor/core/events.py): the member it names for its kind of
subject, PENDING, or the text itself for a state this commwatch does not know."""

from __future__ import annotations

import pytest

from monitor.core.events import (
    PENDING,
    CheckStatus,
    GroupStatus,
    LinkStatus,
    Subject,
    parse_state,
    state_label,
)


@pytest.mark.parametrize(
    ("subject", "text", "label"),
    [
        (Subject.GROUP, "AT RISK", GroupStatus.AT_RISK),
        (Subject.LINK, "UNKNOWN", LinkStatus.UNKNOWN),
        (Subject.CHECK, "UNKNOWN", CheckStatus.UNKNOWN),
        (Subject.LINK, "PENDING", PENDING),
    ],
)
def test_a_known_state_reads_back_as_its_member(subject, text, label):
    assert state_label(subject, text) is label
    assert parse_state(subject, text) is label


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        (Subject.GROUP, "SPLIT"),  # a newer commwatch's word
        (Subject.CHECK, "DOWN"),  # a link's word, not a check's
        (Subject.GROUP, "UP"),
    ],
)
def test_an_unknown_state_reads_back_as_written(subject, text):
    assert parse_state(subject, text) is None
    label = state_label(subject, text)
    assert label == text and type(label) is str
