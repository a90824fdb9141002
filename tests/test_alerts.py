"""Alerting: pure routing/grouping/reminder decisions, message formats, configuration, and
end-to-end scripted failure sequences delivered to a real local webhook receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from monitor.alerts.alerter import Alerter
from monitor.alerts.delivery import sign
from monitor.alerts.formats.registry import FORMATS, render
from monitor.alerts.message import Message, MessageKind, message_key
from monitor.alerts.outbox import OutboxRow, Problem, RowStatus
from monitor.alerts.policy import Grouper, next_reminder, plan_events, plan_reminders
from monitor.config.alerts import (
    AlertsConfig,
    NotifierConfig,
    NotifierKind,
    RetryPolicy,
    parse_alerts,
    parse_notifier,
)
from monitor.core.events import Event, EventKind, Subject, Suppression
from monitor.core.model import Severity
from monitor.core.options import OptionError
from monitor.core.secrets import SecretRef
from tests.conftest import REPO
from tests.peers.prometheus_peers import poll
from tests.peers.webhook_peers import Received, WebhookReceiver

SITE = "psap-north"
T0 = 1_800_000_000.0
HMAC_SECRET = "correct horse battery staple"
TOKEN = "T0AAA/B0BBB/XsEcReTtOkEn42"
FAST = RetryPolicy(backoff_base=0.02, backoff_cap=0.1)
HELD = (Suppression.MAINTENANCE,)


def ev(
    subject: Subject,
    subject_id: str,
    before: str,
    after: str,
    at: float,
    *,
    kind: EventKind = EventKind.HARD,
    suppressed: tuple[Suppression, ...] = (),
    site: str = SITE,
    cause: str = "",
) -> Event:
    return Event(
        at,
        subject,
        subject_id,
        site,
        kind,
        before,
        after,
        cause or f"{subject_id} is {after}",
        suppressed,
    )


def link_change(link: str, before: str, after: str, at: float) -> list[Event]:
    """A link's check and the link itself changing together, as the state engine reports."""
    return [
        ev(Subject.CHECK, f"{SITE}/{link}/tcp", before, after, at, cause="connection refused"),
        ev(Subject.LINK, f"{SITE}/{link}", before, after, at),
    ]


def group(before: str, after: str, at: float) -> Event:
    return ev(Subject.GROUP, SITE, before, after, at, cause=f"redundancy {after}")


# The scripted sequence: primary (fibre) down -> AT RISK; backup (lte) down -> DOWN;
# backup back -> AT RISK; primary back -> RESILIENT. A certificate WARN rides along.
CERT_WARN = ev(Subject.CHECK, f"{SITE}/fibre/tls", "OK", "WARN", T0, cause="expires in 12 days")
CERT_OK = ev(Subject.CHECK, f"{SITE}/fibre/tls", "WARN", "OK", T0 + 40, cause="renewed")
PRIMARY_DOWN = [
    *link_change("fibre", "OK", "CRIT", T0),
    group("RESILIENT", "AT RISK", T0),
    CERT_WARN,
]
BACKUP_DOWN = [*link_change("lte", "OK", "CRIT", T0 + 10), group("AT RISK", "DOWN", T0 + 10)]
BACKUP_UP = [*link_change("lte", "CRIT", "OK", T0 + 20), group("DOWN", "AT RISK", T0 + 20)]
PRIMARY_UP = [*link_change("fibre", "CRIT", "OK", T0 + 30), group("AT RISK", "RESILIENT", T0 + 30)]
STEPS = [PRIMARY_DOWN, BACKUP_DOWN, BACKUP_UP, [*PRIMARY_UP, CERT_OK]]
STEP_KEYS = sorted(message_key(tuple(step)) for step in STEPS)


def webhook(notifier_id: str, url: str, **kwargs: Any) -> NotifierConfig:
    values: dict[str, Any] = {"kind": NotifierKind.WEBHOOK, "timeout": 0.5}
    return NotifierConfig(id=notifier_id, url=url, **(values | kwargs))


def config(*notifiers: NotifierConfig, window: float = 0.05) -> AlertsConfig:
    return AlertsConfig(notifiers=notifiers, group_window=window, retry=FAST)


# --- pure decisions ------------------------------------------------------------------------

OPS = webhook("ops", "http://192.0.2.1/ops")
PAGER = webhook("pager", "http://192.0.2.1/pager", min_severity=Severity.CRIT)
QUIET = webhook("quiet", "http://192.0.2.1/quiet", send_resolved=False)
SOUTH = webhook("south", "http://192.0.2.1/south", sites=("radio-south",))


def chosen(plan_messages: Iterable[Message], notifier_id: str) -> list[tuple[str, str, str]]:
    return [
        (e.subject_id, e.before, e.after)
        for m in plan_messages
        if m.notifier_id == notifier_id
        for e in m.events
    ]


def run_script(cfg: AlertsConfig, steps: list[list[Event]]) -> list[tuple[Message, ...]]:
    """Feed each step as one group; returns each step's messages."""
    problems: dict[tuple[str, str], Problem] = {}
    out = []
    for number, events in enumerate(steps):
        plan = plan_events(cfg, problems, SITE, events, T0 + number)
        for key, problem in plan.problems.items():
            if problem is None:
                problems.pop(key, None)
            else:
                problems[key] = problem
        out.append(plan.messages)
    assert problems == {}, "the script ends with everything resolved"
    return out


def test_scripted_sequence_per_notifier() -> None:
    steps = run_script(config(OPS, PAGER, QUIET, SOUTH), STEPS)
    # One message per notifier and step: the group is the unit, not the check.
    for messages in steps:
        ids = [m.notifier_id for m in messages]
        assert len(ids) == len(set(ids))
    assert "south" not in {m.notifier_id for step in steps for m in step}  # routed by site
    down, lost, back, restored = steps
    assert len(chosen(down, "ops")) == 4 and len(chosen(down, "quiet")) == 4
    # The pager takes CRIT only: no certificate WARN; AT RISK counts as CRIT.
    assert chosen(down, "pager") == [
        (f"{SITE}/fibre/tcp", "OK", "CRIT"),
        (f"{SITE}/fibre", "OK", "CRIT"),
        (SITE, "RESILIENT", "AT RISK"),
    ]
    assert chosen(lost, "pager")[-1] == (SITE, "AT RISK", "DOWN")
    # Recovery of the backup: resolutions, plus the group's (still open) step back to AT RISK.
    assert len(chosen(back, "pager")) == 3
    assert chosen(back, "quiet") == [(SITE, "DOWN", "AT RISK")]  # no resolution notices
    (pager_restored,) = [m for m in restored if m.notifier_id == "pager"]
    assert pager_restored.resolved
    assert len(pager_restored.events) == 3  # the certificate was never the pager's problem
    assert len(chosen(restored, "ops")) == 4
    assert "quiet" not in {m.notifier_id for m in restored}


def test_an_open_problem_is_followed_below_the_threshold() -> None:
    warn = ev(Subject.CHECK, f"{SITE}/fibre/tcp", "CRIT", "WARN", T0 + 1)
    steps = run_script(
        config(PAGER),
        [
            link_change("fibre", "OK", "CRIT", T0)[:1],
            [warn],
            [ev(Subject.CHECK, warn.subject_id, "WARN", "OK", T0 + 2)],
        ],
    )
    assert [len(messages) for messages in steps] == [1, 1, 1]
    assert steps[2][0].resolved


def test_recovery_of_something_never_notified_is_not_news() -> None:
    steps = run_script(config(PAGER), [[CERT_WARN], [CERT_OK]])
    assert steps == [(), ()]


def test_suppressed_and_soft_events_are_never_chosen() -> None:
    check = f"{SITE}/fibre/tcp"
    events = [
        ev(Subject.CHECK, check, "OK", "CRIT", T0, kind=EventKind.SOFT),
        ev(Subject.CHECK, check, "OK", "CRIT", T0, suppressed=(Suppression.MAINTENANCE,)),
        ev(Subject.LINK, f"{SITE}/lte", "OK", "CRIT", T0, suppressed=(Suppression.UNREACHABLE,)),
        ev(
            Subject.CHECK,
            check,
            "OK",
            "CRIT",
            T0,
            kind=EventKind.FLAPPING_START,
            suppressed=(Suppression.MAINTENANCE,),
        ),
    ]
    plan = plan_events(config(OPS), {}, SITE, events, T0)
    assert plan.messages == () and plan.problems == {}


def test_flapping_is_a_warning_that_opens_no_problem() -> None:
    flapping = ev(
        Subject.CHECK, f"{SITE}/fibre/tcp", "CRIT", "CRIT", T0, kind=EventKind.FLAPPING_START
    )
    assert chosen(plan_events(config(OPS), {}, SITE, [flapping], T0).messages, "ops")
    plan = plan_events(config(PAGER), {}, SITE, [flapping], T0)
    assert plan.messages == () and plan.problems == {}


def test_reminders_for_open_problems_only_when_due_and_not_suppressed() -> None:
    cfg = config(webhook("ops", "http://192.0.2.1/ops", renotify_interval=60.0))
    fibre, lte = link_change("fibre", "OK", "CRIT", T0)[1], link_change("lte", "OK", "CRIT", T0)[1]
    held = ev(Subject.LINK, f"{SITE}/cad", "OK", "CRIT", T0, suppressed=(Suppression.FLAPPING,))
    problems = {
        ("ops", "link:" + e.subject_id): Problem("ops", e, last_sent=T0 + offset)
        for e, offset in ((fibre, 0), (lte, 30), (held, 0))
    }
    assert next_reminder(cfg, problems) == T0 + 60
    assert plan_reminders(cfg, problems, T0 + 59).messages == ()
    plan = plan_reminders(cfg, problems, T0 + 60)
    (message,) = plan.messages
    assert message.kind is MessageKind.REMINDER and message.events == (fibre,)
    assert plan.problems[("ops", "link:" + fibre.subject_id)].renotified == 1
    # The next reminder of the same problem is a different message; a replay is the same one.
    again = plan_reminders(cfg, problems | dict(plan.problems), T0 + 120).messages
    assert {m.key for m in again}.isdisjoint({message.key})
    assert plan_reminders(cfg, problems, T0 + 60).messages[0].key == message.key


def test_an_acknowledged_problem_is_not_reminded_of_until_the_acknowledgement_expires() -> None:
    cfg = config(webhook("ops", "http://192.0.2.1/ops", renotify_interval=60.0))
    fibre, lte = link_change("fibre", "OK", "CRIT", T0)[1], link_change("lte", "OK", "CRIT", T0)[1]
    problems = {
        ("ops", "link:" + e.subject_id): Problem("ops", e, last_sent=T0) for e in (fibre, lte)
    }
    holds = {f"link:{fibre.subject_id}": T0 + 300}  # acknowledged for five minutes
    # Due at T0 + 60, the acknowledged one is not; the other is, as without holds.
    (message,) = plan_reminders(cfg, problems, T0 + 60, holds).messages
    assert message.events == (lte,)
    assert next_reminder(cfg, {k: p for k, p in problems.items() if "fibre" in k[1]}, holds) == (
        T0 + 300
    )
    assert plan_reminders(cfg, problems, T0 + 299, holds).messages[0].events == (lte,)
    # Once it expires, the reminder that fell due meanwhile goes out at once.
    late = plan_reminders(cfg, problems, T0 + 300, holds).messages
    assert {e.subject_id for m in late for e in m.events} == {fibre.subject_id, lte.subject_id}
    # Without the hold (withdrawn), it is due as ever.
    assert len(plan_reminders(cfg, problems, T0 + 60, {}).messages[0].events) == 2


def test_a_suppressed_recovery_closes_the_problem_silently() -> None:
    crit = link_change("fibre", "OK", "CRIT", T0)[1]
    ok = ev(
        Subject.LINK, crit.subject_id, "CRIT", "OK", T0 + 5, suppressed=(Suppression.MAINTENANCE,)
    )
    key = ("ops", "link:" + crit.subject_id)
    plan = plan_events(config(OPS), {key: Problem("ops", crit, T0)}, SITE, [ok], T0 + 5)
    assert plan.messages == () and plan.problems == {key: None}


def test_a_first_state_is_a_change_like_any_other() -> None:
    at_risk = group("PENDING", "AT RISK", T0)
    resilient = group("PENDING", "RESILIENT", T0)
    assert chosen(plan_events(config(PAGER), {}, SITE, [at_risk], T0).messages, "pager") == [
        (SITE, "PENDING", "AT RISK")
    ]
    assert plan_events(config(OPS), {}, SITE, [resilient], T0) == plan_events(
        config(OPS), {}, SITE, [], T0
    )


def test_the_state_a_notifier_was_last_told_of_is_not_news_again() -> None:
    """After a restart that lost the engine's state, the same AT RISK comes again as a first
    state: the pager was told, and is not paged twice; what follows is followed as before."""
    told = group("PENDING", "AT RISK", T0)
    again = group("PENDING", "AT RISK", T0 + 60)
    steps = run_script(
        config(PAGER, OPS), [[told], [again], [group("AT RISK", "RESILIENT", T0 + 90)]]
    )
    assert [chosen(messages, "pager") for messages in steps] == [
        [(SITE, "PENDING", "AT RISK")],
        [],
        [(SITE, "AT RISK", "RESILIENT")],
    ]


def test_a_problem_announced_after_its_hold_is_notified_once() -> None:
    """A change held (maintenance) and later announced by the engine (before == after): the
    notifier hears of it then, whether the hold had opened a problem or not."""
    crit = link_change("fibre", "OK", "CRIT", T0)[1]
    held = ev(Subject.LINK, crit.subject_id, "CRIT", "WARN", T0 + 5, suppressed=HELD)
    fresh = ev(Subject.LINK, crit.subject_id, "OK", "CRIT", T0 + 5, suppressed=HELD)
    for first, announced_as in ((crit, "WARN"), (fresh, "CRIT")):
        script = [[first, held] if first is crit else [first]]
        script.append([ev(Subject.LINK, crit.subject_id, announced_as, announced_as, T0 + 20)])
        script.append([ev(Subject.LINK, crit.subject_id, announced_as, "OK", T0 + 30)])
        steps = run_script(config(OPS), script)
        assert chosen(steps[1], "ops") == [(crit.subject_id, announced_as, announced_as)]
        assert chosen(steps[2], "ops") == [(crit.subject_id, announced_as, "OK")]


def test_grouper_windows_are_per_site_and_open_with_the_first_event() -> None:
    grouper = Grouper(window=5.0)
    south = ev(Subject.LINK, "radio-south/mw", "OK", "CRIT", T0, site="radio-south")
    assert grouper.add(PRIMARY_DOWN[:2], arrived=100.0)
    assert not grouper.add(PRIMARY_DOWN[2:], arrived=103.0)
    assert grouper.add([south], arrived=104.0)
    assert grouper.next_close() == 105.0
    assert grouper.due(104.9) == []
    assert grouper.due(105.0) == [(SITE, tuple(PRIMARY_DOWN))]
    assert grouper.due(109.0) == [("radio-south", (south,))]
    assert grouper.next_close() is None


def test_an_event_arriving_after_its_window_closed_opens_the_next_however_late_the_flush() -> None:
    """Membership is by arrival alone: a central that flushes late (busy, catching up on the
    stream) must group exactly as one that flushed on time, or their message keys differ."""
    first, late = PRIMARY_DOWN[0], PRIMARY_DOWN[1]
    grouper = Grouper(window=5.0)
    grouper.add([first], arrived=100.0)
    grouper.add([late], arrived=105.0)  # the window [100, 105) had closed
    assert grouper.next_close() == 105.0
    assert grouper.due(104.9) == []
    assert grouper.due(200.0) == [(SITE, (first,)), (SITE, (late,))]


def test_groupers_fed_the_same_arrivals_make_the_same_groups_whenever_they_flush() -> None:
    arrivals = [0.0, 1.0, 4.9, 5.0, 5.5, 12.0, 12.1, 30.0, 34.99, 35.0]
    events = [
        ev(Subject.CHECK, f"{SITE}/l/c{i}", "OK", "CRIT", T0 + i) for i in range(len(arrivals))
    ]
    prompt, late = Grouper(window=5.0), Grouper(window=5.0)
    flushed_promptly = []
    for event, arrived in zip(events, arrivals, strict=True):
        prompt.add([event], arrived)
        flushed_promptly += prompt.due(arrived)  # as a central keeping up flushes
        late.add([event], arrived)
    flushed_promptly += prompt.due(1000.0)
    flushed_late = late.due(1000.0)  # as one that took the whole backlog at once
    assert flushed_promptly == flushed_late
    assert [len(group) for _, group in flushed_late] == [3, 2, 2, 2, 1]


async def test_a_window_closed_by_the_clock_waits_for_the_horizon(db: Path) -> None:
    """A central flushes a window only once it has taken everything that reached the stream
    before the window closed (the horizon): until then a late event may still belong in it."""
    horizon = [T0]
    cfg = config(webhook("ops", "http://127.0.0.1:9/ops"), window=5.0)
    alerter = Alerter(cfg, db, clock=lambda: T0 + 100, horizon=lambda: horizon[0])
    await alerter.outbox.open()
    try:
        first, second = BACKUP_DOWN[0], BACKUP_DOWN[1]
        await alerter.submit([first], arrived=T0)
        await alerter.tick()
        assert await alerter.outbox.rows() == []  # closed by the clock, not by the horizon
        horizon[0] = T0 + 4
        await alerter.submit([second], arrived=T0 + 4)  # taken late, but arrived in time
        horizon[0] = T0 + 5
        await alerter.tick()
        (row,) = await alerter.outbox.rows()
        assert row.key == message_key((first, second))
    finally:
        await alerter.outbox.close()


# --- formats -------------------------------------------------------------------------------


def message(events: list[Event], kind: MessageKind = MessageKind.ALERT) -> Message:
    group_events = tuple(events)
    return Message("ops", message_key(group_events), kind, SITE, group_events, T0 + 1)


@pytest.fixture(scope="module")
def webhook_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / "monitor/output/schema/webhook.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_webhook_payload_follows_its_schema(webhook_schema: jsonschema.Validator) -> None:
    for events in (PRIMARY_DOWN, PRIMARY_UP, PRIMARY_DOWN[:1]):
        body = render(message(events), NotifierKind.WEBHOOK).body
        payload = json.loads(body)
        webhook_schema.validate(payload)
    payload = json.loads(render(message(PRIMARY_DOWN), NotifierKind.WEBHOOK).body)
    assert payload["group_key"] == f"site:{SITE}" and payload["severity"] == "CRIT"
    assert payload["events"][0]["subject"] == "group"  # the group leads
    assert payload["summary"].startswith(f"[AT RISK] {SITE}: group {SITE} RESILIENT → AT RISK")
    assert {e["event_id"] for e in payload["events"]} == {e.event_id for e in PRIMARY_DOWN}
    assert payload["id"] == message_key(tuple(PRIMARY_DOWN))
    resolved = json.loads(render(message(PRIMARY_UP), NotifierKind.WEBHOOK).body)
    assert resolved["resolved"] and resolved["summary"].startswith("[RESOLVED]")


def test_a_single_event_message_is_keyed_by_the_event_id() -> None:
    assert message(PRIMARY_DOWN[:1]).key == PRIMARY_DOWN[0].event_id
    assert message(PRIMARY_DOWN).key == message(list(reversed(PRIMARY_DOWN))).key


def test_slack_text_is_compact_and_escaped() -> None:
    odd = ev(Subject.LINK, f"{SITE}/fibre", "OK", "CRIT", T0, cause="<script> & co")
    text = json.loads(render(message([odd, *BACKUP_DOWN]), NotifierKind.SLACK).body)["text"]
    lines = text.splitlines()
    assert lines[0] == f"*[DOWN] {SITE}: group {SITE} AT RISK → DOWN (+3 more)*"
    assert len(lines) == 1 + 4 + 1
    assert "&lt;script&gt; &amp; co" in text and "<script>" not in text


def test_teams_card_names_every_change() -> None:
    payload = json.loads(render(message(BACKUP_UP), NotifierKind.TEAMS).body)
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    headline, facts, _ = card["body"]
    assert headline["color"] == "Attention"  # still AT RISK: not a resolution
    assert [f["title"] for f in facts["facts"]] == [
        f"group {SITE}",
        f"link {SITE}/lte",
        f"check {SITE}/lte/tcp",
    ]


# Peer text in a cause, a flapping check, and a group that lost its last link: every format's
# body in full, as receivers have always been sent it.
HOSTILE_CAUSE = ev(Subject.LINK, f"{SITE}/fibre", "OK", "CRIT", T0, cause="<script> & co\x1b[2J")
FLAPPING = ev(Subject.CHECK, f"{SITE}/lte/tcp", "OK", "CRIT", T0 + 5, kind=EventKind.FLAPPING_START)
MIXED = [HOSTILE_CAUSE, FLAPPING, *BACKUP_DOWN[1:]]
MIXED_KEY = message_key(tuple(MIXED))
MIXED_SUMMARY = f"[DOWN] {SITE}: group {SITE} AT RISK → DOWN (+3 more)"
BYLINE = f"commwatch · 2027-01-15T08:00:01.000+00:00 · {MIXED_KEY}"
FLAPPING_CHANGE = "is flapping: notifications held until it settles"


def rendered(
    events: list[Event], kind: NotifierKind, message_kind: MessageKind = MessageKind.ALERT
) -> Any:
    result = render(message(events, message_kind), kind)
    assert result.content_type == "application/json"
    payload = json.loads(result.body)
    # Compact UTF-8, not ASCII escapes: the arrow arrives as itself.
    assert result.body == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return payload


def webhook_event(event: Event, at: str, severity: str, resolved: bool) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "at": f"2027-01-15T08:00:{at}.000+00:00",
        "subject": str(event.subject),
        "subject_id": event.subject_id,
        "site_id": SITE,
        "kind": str(event.kind),
        "before": event.before,
        "after": event.after,
        "cause": event.cause,  # exact: JSON escapes what needs it
        "suppressed": [],
        "at_unix": event.at,
        "severity": severity,
        "resolved": resolved,
    }


def test_the_webhook_body_in_full(webhook_schema: jsonschema.Validator) -> None:
    payload = rendered(MIXED, NotifierKind.WEBHOOK)
    webhook_schema.validate(payload)
    lte = BACKUP_DOWN[1]
    assert payload == {
        "schema_version": 1,
        "id": MIXED_KEY,
        "notifier": "ops",
        "kind": "alert",
        "group_key": f"site:{SITE}",
        "site_id": SITE,
        "resolved": False,
        "severity": "CRIT",
        "summary": MIXED_SUMMARY,
        "created_at": "2027-01-15T08:00:01.000+00:00",
        # The group first, then links, then checks; the worst first within each.
        "events": [
            webhook_event(BACKUP_DOWN[2], "10", "CRIT", False),
            webhook_event(HOSTILE_CAUSE, "00", "CRIT", False),
            webhook_event(lte, "10", "CRIT", False),
            webhook_event(FLAPPING, "05", "WARN", False),  # flapping: a heads-up, not a page
        ],
    }
    reminder = rendered(PRIMARY_UP, NotifierKind.WEBHOOK, MessageKind.REMINDER)
    webhook_schema.validate(reminder)
    assert (reminder["kind"], reminder["resolved"], reminder["severity"]) == (
        "reminder",
        True,
        "OK",
    )
    assert reminder["summary"] == (
        f"Still unresolved: [RESOLVED] {SITE}: group {SITE} AT RISK → RESILIENT (+2 more)"
    )
    assert [e["resolved"] for e in reminder["events"]] == [True, True, True]


def test_the_slack_body_in_full() -> None:
    assert rendered(MIXED, NotifierKind.SLACK) == {
        "text": "\n".join(
            [
                f"*{MIXED_SUMMARY}*",
                f"• group {SITE}: AT RISK → DOWN (redundancy DOWN)",
                f"• link {SITE}/fibre: OK → CRIT (&lt;script&gt; &amp; co\\x1b[2J)",
                f"• link {SITE}/lte: OK → CRIT ({SITE}/lte is CRIT)",
                f"• check {SITE}/lte/tcp: {FLAPPING_CHANGE} ({SITE}/lte/tcp is CRIT)",
                f"_{BYLINE}_",
            ]
        )
    }


def test_the_teams_body_in_full() -> None:
    facts = [
        {"title": f"group {SITE}", "value": "AT RISK → DOWN (redundancy DOWN)"},
        {"title": f"link {SITE}/fibre", "value": "OK → CRIT (<script> & co\\x1b[2J)"},
        {"title": f"link {SITE}/lte", "value": f"OK → CRIT ({SITE}/lte is CRIT)"},
        {"title": f"check {SITE}/lte/tcp", "value": f"{FLAPPING_CHANGE} ({SITE}/lte/tcp is CRIT)"},
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": MIXED_SUMMARY,
                "weight": "Bolder",
                "color": "Attention",
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock", "text": BYLINE, "isSubtle": True, "size": "Small", "wrap": True},
        ],
    }
    assert rendered(MIXED, NotifierKind.TEAMS) == {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
    resolved = rendered(PRIMARY_UP, NotifierKind.TEAMS)["attachments"][0]["content"]["body"][0]
    assert resolved["color"] == "Good"


def test_every_kind_the_configuration_accepts_has_a_format_and_no_format_is_unreachable() -> None:
    assert set(FORMATS) == set(NotifierKind)


# --- configuration -------------------------------------------------------------------------


def test_parse_notifier_reads_urls_and_secrets_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_file = tmp_path / "slack-url"
    url_file.write_text(f"https://192.0.2.7/services/{TOKEN}\n")
    monkeypatch.setenv("OPS_HMAC", HMAC_SECRET)
    slack = parse_notifier(
        {
            "id": "chat",
            "kind": "slack",
            "url_file": str(url_file),
            "min_severity": "crit",
            "sites": [SITE],
            "renotify_interval": "30m",
            "send_resolved": False,
        }
    )
    assert slack.url == SecretRef("file", str(url_file))
    assert slack.min_severity is Severity.CRIT and slack.sites == (SITE,)
    assert slack.renotify_interval == 1800.0 and not slack.send_resolved
    assert slack.target == f"<secret file:{url_file}>"
    ops = parse_notifier(
        {
            "id": "ops",
            "kind": "webhook",
            "url": "https://192.0.2.8:8443/hook",
            "hmac_secret_env": "OPS_HMAC",
        }
    )
    assert (
        ops.hmac_secret == SecretRef("env", "OPS_HMAC") and ops.target == "https://192.0.2.8:8443"
    )
    config = parse_alerts(
        {
            "notifiers": [{"id": "a", "kind": "teams", "url": "https://192.0.2.9/x"}],
            "group_window": "2s",
            "retry_cap": "5m",
        }
    )
    assert config.group_window == 2.0 and config.retry.backoff_cap == 300.0


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"id": "a", "kind": "webhook"}, "url", "needs one of url"),
        ({"id": "a", "kind": "pager", "url": "http://192.0.2.1/"}, "kind", "not one of"),
        (
            {"id": "a", "kind": "slack", "url": "http://192.0.2.1/", "hmac_secret_env": "HOME"},
            "hmac_secret_env",
            "not signed",
        ),
        (
            {"id": "a", "kind": "webhook", "url": "http://192.0.2.1/", "min_severity": "ok"},
            "min_severity",
            "not one of",
        ),
        ({"id": "a", "kind": "webhook", "url_env": "NO_SUCH_VAR_4711"}, "url_env", "not set"),
        (
            {"id": "a", "kind": "webhook", "url": "http://192.0.2.1/", "colour": "red"},
            "colour",
            "unknown key",
        ),
    ],
)
def test_parse_notifier_faults_name_the_key(values: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(OptionError) as caught:
        parse_notifier(values)
    assert caught.value.key == key and words in str(caught.value)


def test_parse_alerts_places_faults_and_rejects_duplicate_ids() -> None:
    with pytest.raises(OptionError) as caught:
        parse_alerts({"notifiers": [{"id": "a", "kind": "webhook", "url": "gopher://192.0.2.1/x"}]})
    assert caught.value.key == "notifiers[0].url"
    twice = {"id": "a", "kind": "webhook", "url": "http://192.0.2.1/x"}
    with pytest.raises(OptionError, match="used twice"):
        parse_alerts({"notifiers": [twice, twice]})


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://192.0.2.1/services/{TOKEN}",
        f"https://user:{TOKEN}@192.0.2.1/hook",
        f"https://192.0.2.1:99999/services/{TOKEN}",
        f"https://192.0.2.1/hook?token={TOKEN}",
    ],
)
def test_a_url_token_never_appears_in_errors_or_reprs(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = TOKEN.split("/")[-1]
    monkeypatch.setenv("HOOK_URL", url)
    for values in ({"url": url}, {"url_env": "HOOK_URL"}):
        try:
            notifier = parse_notifier({"id": "a", "kind": "slack", **values})
        except OptionError as exc:
            assert secret not in str(exc) and secret not in repr(exc)
        else:
            assert secret not in repr(notifier) and secret not in notifier.target


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    peer = WebhookReceiver(secret=HMAC_SECRET)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "commwatch.db"


async def run_alerter(cfg: AlertsConfig, db: Path) -> Alerter:
    alerter = Alerter(cfg, db, jitter=lambda: 0.5)
    await alerter.start()
    return alerter


async def submit_as_storm(alerter: Alerter, events: list[Event]) -> None:
    """One event at a time, a little apart, as results come in."""
    for event in events:
        await alerter.submit([event])
        await asyncio.sleep(0.01)


def keys(received: Iterable[Received]) -> list[str]:
    return sorted(r.key or "" for r in received)


async def until_rows(alerter: Alerter, condition: Callable[[list[OutboxRow]], bool]) -> None:
    """Waits until the outbox's rows, oldest first, meet `condition`."""

    async def met() -> list[OutboxRow] | None:
        rows = await alerter.outbox.rows()
        return rows if condition(rows) else None

    await poll("the outbox's rows meeting the test's condition", met, timeout=30)


async def settled(alerter: Alerter) -> list[OutboxRow]:
    """Waits until every stored message is delivered; returns the rows."""

    async def delivered() -> list[OutboxRow] | None:
        rows = await alerter.outbox.rows()
        done = rows and all(r.status is RowStatus.DELIVERED for r in rows)
        return rows if done and not await alerter.outbox.waiting() else None

    return await poll("every stored message delivered", delivered, timeout=30)


async def test_scripted_failure_sequence_reaches_the_receiver_as_expected(
    db: Path, receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_HMAC", HMAC_SECRET)
    url_file = tmp_path / "pager-url"
    url_file.write_text(f"{receiver.base_url}/services/{TOKEN}")
    cfg = config(
        webhook("ops", f"{receiver.base_url}/signed/ops", hmac_secret=SecretRef("env", "OPS_HMAC")),
        webhook(
            "pager",
            SecretRef("file", str(url_file)),
            kind=NotifierKind.SLACK,
            min_severity=Severity.CRIT,
            sites=(SITE,),
        ),
        webhook(
            "quiet", f"{receiver.base_url}/teams", kind=NotifierKind.TEAMS, send_resolved=False
        ),
        webhook("south", f"{receiver.base_url}/south", sites=("radio-south",)),
        window=0.15,
    )
    alerter = await run_alerter(cfg, db)
    try:
        expected = 0
        for step, count in zip(STEPS, (3, 3, 3, 2), strict=True):
            await submit_as_storm(alerter, step)
            expected += count
            await receiver.wait_for(lambda r, n=expected: len(r.accepted) >= n)
        rows = await settled(alerter)
        await asyncio.sleep(0.2)
        assert await alerter.outbox.problems() == {}
    finally:
        await alerter.aclose()
    assert len(rows) == len(receiver.accepted) == 11 and receiver.duplicates == []
    ops = receiver.accepted_on("/signed/ops")
    assert len(ops) == 4 and all(r.signature_ok for r in ops)
    assert [len(r.json["events"]) for r in ops] == [4, 3, 3, 4]
    assert [{e["event_id"] for e in r.json["events"]} for r in ops] == [
        {e.event_id for e in step} for step in STEPS
    ]
    # What was stored is what arrived, byte for byte, under its message's key.
    assert sorted((r.key, r.body) for r in rows) == sorted(
        (r.key or "", r.body) for r in receiver.accepted.values()
    )
    assert [r.json["resolved"] for r in ops] == [False, False, False, True]
    assert [r.json["summary"].split(":")[0] for r in ops] == [
        f"[AT RISK] {SITE}",
        f"[DOWN] {SITE}",
        f"[AT RISK] {SITE}",
        f"[RESOLVED] {SITE}",
    ]
    pager = receiver.accepted_on("/services/")
    assert [r.json["text"].count("\n• ") for r in pager] == [3, 3, 3, 3]
    assert "tls" not in "".join(r.json["text"] for r in pager)  # WARN is below the pager's bar
    assert pager[-1].json["text"].startswith(f"*[RESOLVED] {SITE}")
    quiet = receiver.accepted_on("/teams")
    assert len(quiet) == 3  # no resolution notice
    assert receiver.accepted_on("/south") == []
    # Every request carried its message's idempotency key: the event's own id or the group's.
    assert ops[0].key == message_key(tuple(PRIMARY_DOWN))


async def test_reminders_repeat_until_resolved(db: Path, receiver: WebhookReceiver) -> None:
    cfg = config(webhook("ops", f"{receiver.base_url}/ops", renotify_interval=0.15), window=0.02)
    alerter = await run_alerter(cfg, db)
    try:
        await alerter.submit(BACKUP_DOWN)
        await receiver.wait_for(lambda r: len(r.accepted) >= 3)
        reminders = [r for r in receiver.accepted.values() if r.json["kind"] == "reminder"]
        assert reminders
        for reminder in reminders:
            assert {e["event_id"] for e in reminder.json["events"]} == {
                e.event_id for e in BACKUP_DOWN
            }
            assert reminder.json["summary"] == (
                f"Still unresolved: [DOWN] {SITE}: group {SITE} AT RISK → DOWN (+2 more)"
            )
        # The group passes AT RISK on its way back within one window: resolved all the same.
        await alerter.submit([*BACKUP_UP, group("AT RISK", "RESILIENT", T0 + 25)])
        await receiver.wait_for(lambda r: any(x.json["resolved"] for x in r.accepted.values()))
        count = len(receiver.accepted)
        await asyncio.sleep(0.45)  # three intervals: no more reminders once resolved
        assert len(receiver.accepted) == count
    finally:
        await alerter.aclose()
    kinds = [r.json["kind"] for r in receiver.accepted.values()]
    assert kinds[0] == "alert" and kinds.count("reminder") >= 2 and receiver.duplicates == []


async def test_reminders_are_held_while_acknowledged_and_resume_after(
    db: Path, receiver: WebhookReceiver
) -> None:
    cfg = config(webhook("ops", f"{receiver.base_url}/ops", renotify_interval=0.15), window=0.02)
    alerter = await run_alerter(cfg, db)

    def reminders() -> int:
        return sum(r.json["kind"] == "reminder" for r in receiver.accepted.values())

    try:
        await alerter.submit(BACKUP_DOWN)
        await receiver.wait_for(lambda _: reminders() >= 1)
        # Acknowledged: every subject of the problem, for a second.
        until = time.time() + 1.0
        alerter.hold_reminders({f"{e.subject}:{e.subject_id}": until for e in BACKUP_DOWN})
        await asyncio.sleep(0.1)  # a reminder already on its way may still land
        held = reminders()
        await asyncio.sleep(max(0.0, until - time.time() - 0.1))
        assert reminders() == held  # six intervals went by, none reminded of
        await receiver.wait_for(lambda _: reminders() >= held + 2)  # expired: reminded again
    finally:
        await alerter.aclose()
    assert receiver.duplicates == []


async def test_suppressed_and_soft_events_are_never_sent(
    db: Path, receiver: WebhookReceiver
) -> None:
    cfg = config(webhook("ops", f"{receiver.base_url}/ops", renotify_interval=0.1), window=0.02)
    check = f"{SITE}/fibre/tcp"
    alerter = await run_alerter(cfg, db)
    try:
        await alerter.submit(
            [
                ev(Subject.CHECK, check, "OK", "CRIT", T0, kind=EventKind.SOFT),
                ev(Subject.CHECK, check, "OK", "CRIT", T0 + 1, suppressed=(Suppression.FLAPPING,)),
                ev(
                    Subject.LINK,
                    f"{SITE}/lte",
                    "OK",
                    "CRIT",
                    T0 + 1,
                    suppressed=(Suppression.UNREACHABLE,),
                ),
                ev(
                    Subject.GROUP,
                    SITE,
                    "RESILIENT",
                    "DOWN",
                    T0 + 1,
                    suppressed=(Suppression.MAINTENANCE,),
                ),
            ]
        )
        await asyncio.sleep(0.3)
        assert receiver.requests == [] and await alerter.outbox.rows() == []
        # A problem notified, then recovered during maintenance: closed without a word.
        await alerter.submit([ev(Subject.LINK, f"{SITE}/cad", "OK", "CRIT", T0 + 2)])
        await receiver.wait_for(lambda r: len(r.accepted) >= 2)  # the alert and a reminder
        await alerter.submit(
            [
                ev(
                    Subject.LINK,
                    f"{SITE}/cad",
                    "CRIT",
                    "OK",
                    T0 + 3,
                    suppressed=(Suppression.MAINTENANCE,),
                )
            ]
        )

        # Once the recovery is taken (the problem closed in the store) and every message made
        # before it delivered, no reminder comes: three reminder intervals of quiet.
        async def taken() -> bool | None:
            pending = sum((await alerter.pending_messages()).values())
            return None if pending or await alerter.outbox.problems() else True

        await poll("the recovery taken and every message delivered", taken, timeout=30)
        count = len(receiver.accepted)
        await asyncio.sleep(0.35)
        assert len(receiver.accepted) == count
    finally:
        await alerter.aclose()
    assert not any(r.json["resolved"] for r in receiver.accepted.values())
    assert all(not e["suppressed"] for r in receiver.accepted.values() for e in r.json["events"])


async def test_a_failing_receiver_gets_every_message_exactly_once(
    db: Path, receiver: WebhookReceiver
) -> None:
    cfg = config(webhook("ops", f"{receiver.base_url}/ops"), window=0.02)
    alerter = await run_alerter(cfg, db)
    try:
        receiver.fail("500", 3)
        await alerter.submit(PRIMARY_DOWN)
        await receiver.wait_for(lambda r: [x.status for x in r.requests].count(500) == 3)
        receiver.fail("hang", 1)
        await alerter.submit(BACKUP_DOWN)
        await receiver.wait_for(lambda r: any(x.hung for x in r.requests))
        await receiver.stop()
        await alerter.submit(BACKUP_UP)
        # Tried while nobody listens: refused, and kept for later.
        await until_rows(alerter, lambda rows: len(rows) == 3 and rows[2].attempts >= 1)
        await receiver.start()
        await alerter.submit(STEPS[3])
        rows = await settled(alerter)
    finally:
        await alerter.aclose()
    assert keys(receiver.accepted.values()) == STEP_KEYS
    assert receiver.duplicates == []
    # Each failure cost one attempt more: three 500s, one hang, one refusal.
    assert sum(r.attempts for r in rows) >= len(rows) + 5, [r.attempts for r in rows]
    assert rows[0].attempts >= 4
    assert rows[2].attempts >= 2


async def test_a_restart_in_the_middle_delivers_what_was_pending_once(
    db: Path, receiver: WebhookReceiver
) -> None:
    cfg = config(webhook("ops", f"{receiver.base_url}/ops"), window=0.3)
    await receiver.stop()
    first = await run_alerter(cfg, db)
    await first.submit(PRIMARY_DOWN)
    deadline = time.monotonic() + 5
    while not any(r.attempts for r in await first.outbox.rows()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await first.submit(BACKUP_DOWN)  # still in its group window when the process stops
    await first.aclose()

    await receiver.start()
    second = await run_alerter(cfg, db)
    try:
        await receiver.wait_for(lambda r: len(r.accepted) == 2)
        # The state engine replays what it had: nothing is enqueued again.
        await second.submit(PRIMARY_DOWN + BACKUP_DOWN)
        await second.submit(BACKUP_UP)
        await receiver.wait_for(lambda r: len(r.accepted) == 3)
    finally:
        await second.aclose()

    third = await run_alerter(cfg, db)
    try:
        await third.submit(PRIMARY_DOWN + BACKUP_DOWN + BACKUP_UP)
        await third.submit(STEPS[3])
        await receiver.wait_for(lambda r: len(r.accepted) == 4)
        await asyncio.sleep(0.5)
        assert await third.outbox.problems() == {}
    finally:
        await third.aclose()
    assert keys(receiver.accepted.values()) == STEP_KEYS
    assert receiver.duplicates == []


async def test_alerting_says_which_stored_states_it_has_taken(db: Path) -> None:
    """What the engine may restore at start: states alerting accepted, or too old for its
    inbox to still hold; any other is evaluated afresh so that it reaches alerting."""
    cfg = dataclasses.replace(config(OPS), retention=3600.0)
    alerter = Alerter(cfg, db, clock=lambda: T0 + 7200)
    await alerter.start()
    try:
        taken, never = group("PENDING", "AT RISK", T0 + 7000), group("AT RISK", "DOWN", T0 + 7100)
        ancient = group("PENDING", "RESILIENT", T0)
        await alerter.submit([taken])
        assert await alerter.announced([taken, never, ancient]) == [taken, ancient]
    finally:
        await alerter.aclose()


async def until_logged(caplog: pytest.LogCaptureFixture, *words: str) -> None:
    """Waits until every one of `words` was logged (30 s at most)."""

    async def logged() -> bool | None:
        return True if all(word in caplog.text for word in words) else None

    await poll(f"{words} logged", logged, timeout=30)


async def test_a_url_token_never_reaches_logs_or_stored_errors(
    db: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = TOKEN.split("/")[-1]
    monkeypatch.setenv("CHAT_URL", f"{receiver.base_url}/services/{TOKEN}?token={secret}")
    chat = webhook("chat", SecretRef("env", "CHAT_URL"), kind=NotifierKind.SLACK, timeout=0.2)
    inline = webhook("inline", f"{receiver.base_url}/hook/{secret}", timeout=0.2)
    alerter = await run_alerter(config(chat, inline, window=0.02), db)
    try:
        receiver.fail("500", 2)
        receiver.fail("hang", 2)
        await alerter.submit(PRIMARY_DOWN)
        await until_logged(caplog, "HTTP 500", "no answer within")
        await receiver.stop()
        await alerter.submit(BACKUP_DOWN)
        await until_logged(caplog, "cannot connect")
        receiver.fail("404", 2)
        await receiver.start()
        await until_logged(caplog, "HTTP 404")
        rows = await alerter.outbox.rows()
    finally:
        await alerter.aclose()
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "HTTP 500" in logged and "no answer within" in logged and "cannot connect" in logged
    assert "HTTP 404" in logged
    assert f"http://127.0.0.1:{receiver.port}" in logged
    assert secret not in logged
    assert all(secret not in (r.last_error or "") for r in rows)
    assert {r.last_error is not None for r in rows} == {True}


async def test_signature_covers_timestamp_and_body(
    db: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIGHT", HMAC_SECRET)
    monkeypatch.setenv("WRONG", "not the secret")
    right = webhook(
        "right", f"{receiver.base_url}/signed/right", hmac_secret=SecretRef("env", "RIGHT")
    )
    wrong = webhook(
        "wrong", f"{receiver.base_url}/signed/wrong", hmac_secret=SecretRef("env", "WRONG")
    )
    alerter = await run_alerter(config(right, wrong, window=0.02), db)
    try:
        await alerter.submit(PRIMARY_DOWN)
        await receiver.wait_for(lambda r: len(r.requests) >= 2)
        await asyncio.sleep(0.3)
        rows = {r.notifier_id: r for r in await alerter.outbox.rows()}
    finally:
        await alerter.aclose()
    (good,) = receiver.accepted_on("/signed/right")
    timestamp = int(good.headers["X-Commwatch-Timestamp"])
    assert abs(timestamp - time.time()) < 5
    signature, key = good.headers["X-Commwatch-Signature"], good.headers["Idempotency-Key"]
    assert signature == sign(HMAC_SECRET, timestamp, key, None, good.body)
    # The timestamp, the key and the fencing token are each inside the signed string.
    assert signature != sign(HMAC_SECRET, timestamp + 1, key, None, good.body)
    assert signature != sign(HMAC_SECRET, timestamp, key + "0", None, good.body)
    assert signature != sign(HMAC_SECRET, timestamp, key, 7, good.body)
    assert rows["right"].status is RowStatus.DELIVERED
    # A rejected signature is the receiver refusing the message: recorded, not retried forever.
    assert rows["wrong"].status is RowStatus.FAILED and rows["wrong"].attempts == 1
    assert [r.status for r in receiver.requests if r.path == "/signed/wrong"] == [401]


async def test_a_hung_receiver_never_holds_up_submitting(
    db: Path, receiver: WebhookReceiver
) -> None:
    receiver.fail("hang", 10_000)
    cfg = config(webhook("ops", f"{receiver.base_url}/ops", timeout=5.0), window=0.01)
    alerter = await run_alerter(cfg, db)
    slowest = 0.0
    try:
        for number in range(40):
            site = f"site-{number % 8}"
            event = ev(Subject.LINK, f"{site}/fibre", "OK", "CRIT", T0 + number, site=site)
            started = time.monotonic()
            await alerter.submit([event])
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.005)
        await receiver.wait_for(lambda r: len(r.requests) >= 1)
        started = time.monotonic()
    finally:
        await alerter.aclose(grace=0.1)
    assert time.monotonic() - started < 1.0  # closing does not wait out the 5 s timeout
    assert slowest < 0.25
    reopened = await run_alerter(cfg, db)
    try:
        rows = await reopened.outbox.rows()
    finally:
        await reopened.aclose(grace=0.1)
    # One message per site and window, all still pending for the next start.
    assert len(rows) >= 8 and {r.status for r in rows} == {RowStatus.PENDING}
