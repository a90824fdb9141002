"""Table tests of the state engine: pure, no I/O, time from the results."""

from __future__ import annotations

import pytest

from monitor.events import EventKind, Subject, Suppression
from monitor.model import CheckRef, ProbeResult, Severity
from monitor.state import (
    CheckPolicy,
    EngineState,
    FlapPolicy,
    GroupPolicy,
    GroupStatus,
    LinkPolicy,
    LinkStatus,
    Topology,
    confirm,
    group_status,
    restore,
    step,
)

OK, WARN, CRIT, UNKNOWN = Severity.OK, Severity.WARN, Severity.CRIT, Severity.UNKNOWN


def topology(confirmations: int = 1, maintenance=lambda ids, at: False) -> Topology:
    checks = {
        "psap/fibre/router": CheckPolicy("psap/fibre/router", "psap", "psap/fibre", confirmations),
        "psap/lte/router": CheckPolicy("psap/lte/router", "psap", "psap/lte", confirmations),
        "radio/backhaul/router": CheckPolicy(
            "radio/backhaul/router", "radio", "radio/backhaul", confirmations
        ),
        "radio/console/rfss": CheckPolicy(
            "radio/console/rfss", "radio", "radio/console", confirmations
        ),
    }
    links = {
        "psap/fibre": LinkPolicy("psap/fibre", "psap", ("psap/fibre/router",)),
        "psap/lte": LinkPolicy("psap/lte", "psap", ("psap/lte/router",)),
        "radio/backhaul": LinkPolicy("radio/backhaul", "radio", ("radio/backhaul/router",)),
        "radio/console": LinkPolicy(
            "radio/console", "radio", ("radio/console/rfss",), depends_on=("radio/backhaul",)
        ),
    }
    groups = {"psap": GroupPolicy("psap", "psap", ("psap/fibre", "psap/lte"), 1)}
    return Topology(checks, links, groups, FlapPolicy(window=10, high=50, low=25), maintenance)


def result(check_id: str, severity: Severity, at: float) -> ProbeResult:
    site, link, _ = check_id.split("/")
    ref = CheckRef(check_id, site, link, "tcp", "127.0.0.1:1", "127.0.0.1")
    return ProbeResult(ref, at, 1.0, severity)


def run(topo: Topology, sequence, state: EngineState | None = None):
    state = state or EngineState()
    events = []
    for at, (check_id, severity) in enumerate(sequence, start=1):
        state, new = step(topo, state, result(check_id, severity, float(at)))
        events.extend(new)
    return state, events


def brief(events):
    return [(e.subject.value, e.subject_id, e.kind.value, e.before, e.after) for e in events]


@pytest.mark.parametrize(
    ("confirmations", "severities", "hard_after_each", "soft_after_each"),
    [
        (1, [OK, CRIT, OK], ["OK", "CRIT", "OK"], ["OK", "CRIT", "OK"]),
        (3, [OK, CRIT, CRIT, CRIT], ["OK", "OK", "OK", "CRIT"], ["OK", "CRIT", "CRIT", "CRIT"]),
        (3, [OK, CRIT, CRIT, OK, CRIT], ["OK"] * 5, ["OK", "CRIT", "CRIT", "OK", "CRIT"]),
        (2, [OK, CRIT, WARN, WARN], ["OK", "OK", "OK", "WARN"], ["OK", "CRIT", "WARN", "WARN"]),
        (2, [CRIT, OK, OK], ["CRIT", "CRIT", "OK"], ["CRIT", "OK", "OK"]),
    ],
)
def test_soft_and_hard_states(confirmations, severities, hard_after_each, soft_after_each):
    policy = CheckPolicy("s/l/c", "s", "s/l", confirmations)
    state = None
    for at, (severity, hard, soft) in enumerate(
        zip(severities, hard_after_each, soft_after_each, strict=True)
    ):
        state = confirm(state, severity.name, float(at), policy, FlapPolicy())
        assert (state.hard, state.soft) == (hard, soft)
    assert state.since == max(
        i
        for i, h in enumerate(hard_after_each)
        if h == hard_after_each[-1] and (i == 0 or hard_after_each[i - 1] != h)
    )


def test_soft_events_say_how_far_confirmation_has_got():
    _, events = run(
        topology(confirmations=3),
        [
            ("psap/fibre/router", OK),
            ("psap/fibre/router", CRIT),
            ("psap/fibre/router", CRIT),
            ("psap/fibre/router", CRIT),
        ],
    )
    assert brief(events) == [
        ("check", "psap/fibre/router", "soft", "OK", "CRIT"),
        ("check", "psap/fibre/router", "hard", "OK", "CRIT"),
        ("link", "psap/fibre", "hard", "UP", "DOWN"),
    ]
    assert events[0].cause.endswith("(1 of 3 to confirm)")
    assert not events[0].notifiable and events[1].notifiable


def test_redundancy_primary_down_at_risk_backup_down_down_and_recovery():
    topo = topology()
    sequence = [
        ("psap/fibre/router", OK),
        ("psap/lte/router", OK),  # RESILIENT, no news
        ("psap/fibre/router", CRIT),  # primary down -> AT RISK
        ("psap/lte/router", CRIT),  # backup down -> DOWN
        ("psap/lte/router", OK),  # backup back -> AT RISK
        ("psap/fibre/router", OK),  # primary back -> RESILIENT
    ]
    state, events = run(topo, sequence)
    groups = [(e.before, e.after) for e in events if e.subject is Subject.GROUP]
    assert groups == [
        ("RESILIENT", "AT RISK"),
        ("AT RISK", "DOWN"),
        ("DOWN", "AT RISK"),
        ("AT RISK", "RESILIENT"),
    ]
    assert state.groups["psap"] is GroupStatus.RESILIENT
    links = [(e.subject_id, e.after) for e in events if e.subject is Subject.LINK]
    assert links == [
        ("psap/fibre", "DOWN"),
        ("psap/lte", "DOWN"),
        ("psap/lte", "UP"),
        ("psap/fibre", "UP"),
    ]
    at_risk = next(e for e in events if e.after == "AT RISK")
    assert at_risk.cause == "link psap/fibre DOWN; 1 of 2 links up (needs 1)"


@pytest.mark.parametrize(
    ("links", "min_up", "expected"),
    [
        (["UP", "UP", "UP"], 1, GroupStatus.RESILIENT),
        (["UP", "UP", "DOWN"], 1, GroupStatus.DEGRADED),
        (["UP", "DOWN", "DOWN"], 1, GroupStatus.AT_RISK),
        (["DOWN", "DOWN", "DOWN"], 1, GroupStatus.DOWN),
        (["UP", "UP", "DOWN"], 2, GroupStatus.AT_RISK),
        (["UP", "DOWN", "DOWN"], 2, GroupStatus.DOWN),
        (["UP", "UNKNOWN", "UP"], 1, GroupStatus.DEGRADED),
        (["UP"], 1, GroupStatus.AT_RISK),
    ],
)
def test_group_status_table(links, min_up, expected):
    ids = tuple(f"s/l{i}" for i in range(len(links)))
    policy = GroupPolicy("g", "s", ids, min_up)
    assert (
        group_status(policy, {i: LinkStatus(s) for i, s in zip(ids, links, strict=True)})
        is expected
    )


def test_a_warning_keeps_a_link_up():
    state, events = run(
        topology(),
        [("psap/fibre/router", OK), ("psap/lte/router", OK), ("psap/fibre/router", WARN)],
    )
    assert state.links["psap/fibre"] is LinkStatus.UP
    assert state.groups["psap"] is GroupStatus.RESILIENT
    assert brief(events) == [("check", "psap/fibre/router", "hard", "OK", "WARN")]


def test_dependents_of_a_down_parent_are_unreachable_and_not_alerted():
    state, events = run(
        topology(),
        [
            ("radio/backhaul/router", OK),
            ("radio/console/rfss", OK),
            ("radio/backhaul/router", CRIT),  # backhaul down
            ("radio/console/rfss", CRIT),  # so the console behind it fails too
            ("radio/backhaul/router", OK),
        ],
    )
    console = [e for e in events if e.subject_id.startswith("radio/console")]
    assert [(e.subject_id, e.after, e.suppressed) for e in console] == [
        ("radio/console/rfss", "CRIT", (Suppression.UNREACHABLE,)),
        ("radio/console", "DOWN", (Suppression.UNREACHABLE,)),
    ]
    backhaul = [e for e in events if e.subject_id == "radio/backhaul/router"]
    assert all(e.notifiable for e in backhaul)
    assert "radio/console/rfss" not in state.unreachable  # the parent is back


def test_maintenance_suppresses_alerts_not_state():
    in_window = lambda ids, at: "psap/lte" in ids and 3 <= at <= 4  # noqa: E731
    _, events = run(
        topology(maintenance=in_window),
        [
            ("psap/fibre/router", OK),
            ("psap/lte/router", OK),
            ("psap/lte/router", CRIT),
            ("psap/lte/router", OK),
            ("psap/lte/router", CRIT),
        ],
    )
    suppressed = [
        (e.subject_id, e.after, e.suppressed) for e in events if e.subject is not Subject.GROUP
    ]
    assert suppressed == [
        ("psap/lte/router", "CRIT", (Suppression.MAINTENANCE,)),
        ("psap/lte", "DOWN", (Suppression.MAINTENANCE,)),
        ("psap/lte/router", "OK", (Suppression.MAINTENANCE,)),
        ("psap/lte", "UP", (Suppression.MAINTENANCE,)),
        ("psap/lte/router", "CRIT", ()),
        ("psap/lte", "DOWN", ()),
    ]


def test_flapping_starts_holds_notifications_and_stops():
    alternating = [("psap/fibre/router", OK if i % 2 else CRIT) for i in range(12)]
    steady = [("psap/fibre/router", OK)] * 12
    _, events = run(topology(), [("psap/lte/router", OK), *alternating, *steady])
    check_events = [e for e in events if e.subject is Subject.CHECK]
    kinds = [e.kind for e in check_events]
    assert EventKind.FLAPPING_START in kinds and EventKind.FLAPPING_STOP in kinds
    start = kinds.index(EventKind.FLAPPING_START)
    held = [e for e in check_events[start:] if e.kind is EventKind.HARD]
    assert len(held) == 7 and all(Suppression.FLAPPING in e.suppressed for e in held)
    stop = next(e for e in events if e.kind is EventKind.FLAPPING_STOP)
    assert stop.notifiable and stop.after == "OK"


def test_first_results_announce_problems_only():
    _, events = run(topology(), [("psap/fibre/router", OK), ("psap/lte/router", CRIT)])
    assert brief(events) == [("check", "psap/lte/router", "hard", "PENDING", "CRIT")]


def test_restore_after_restart_neither_forgets_nor_repeats():
    topo = topology()
    _, events = run(
        topo, [("psap/fibre/router", OK), ("psap/lte/router", OK), ("psap/fibre/router", CRIT)]
    )
    restored = restore(topo, events)
    assert restored.checks["psap/fibre/router"].hard == "CRIT"
    assert restored.groups["psap"] is GroupStatus.AT_RISK
    _, again = run(topo, [("psap/fibre/router", CRIT), ("psap/lte/router", OK)], restored)
    assert again == []
    _, recovered = run(topo, [("psap/fibre/router", OK), ("psap/lte/router", OK)], restored)
    assert ("group", "psap", "hard", "AT RISK", "RESILIENT") in brief(recovered)


def test_unknown_checks_change_nothing():
    state = EngineState()
    new, events = step(topology(), state, result("other/x/y", CRIT, 1.0))
    assert new is state and events == ()
