"""Table tests of the state engine: pure, no I/O, time from the results."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.config.inventory import FlapPolicy
from monitor.core.events import (
    PENDING,
    STATES,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
    Suppression,
)
from monitor.core.model import CheckRef, ProbeResult, Severity
from monitor.core.persistent import PersistentMap
from monitor.engine.checks import confirm
from monitor.engine.links import group_status
from monitor.engine.restore import restore
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.topology import CheckPolicy, GroupPolicy, LinkPolicy, Topology

OK, WARN, CRIT, UNKNOWN = Severity.OK, Severity.WARN, Severity.CRIT, Severity.UNKNOWN
HELD_MAINTENANCE = (Suppression.MAINTENANCE,)
HELD_UNREACHABLE = (Suppression.UNREACHABLE,)


def topology(
    confirmations: int = 1,
    maintenance=lambda ids, at: False,
    only: tuple[str, ...] | None = None,
) -> Topology:
    """A PSAP with two links (fibre, lte) in one group, and a radio site whose console sits
    behind its backhaul. `only`: the checks selected (None: all)."""
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
    if only is not None:
        checks = {check_id: policy for check_id, policy in checks.items() if check_id in only}
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


def two_check_topology(maintenance=lambda ids, at: False) -> Topology:
    """One site, one link decided by two checks (router and sip), in a group of its own."""
    checks = {
        cid: CheckPolicy(cid, "cad", "cad/wan", 1) for cid in ("cad/wan/router", "cad/wan/sip")
    }
    links = {"cad/wan": LinkPolicy("cad/wan", "cad", tuple(checks))}
    groups = {"cad": GroupPolicy("cad", "cad", ("cad/wan",), 1)}
    return Topology(checks, links, groups, FlapPolicy(window=10, high=50, low=25), maintenance)


def result(check_id: str, severity: Severity, at: float) -> ProbeResult:
    site, link, _ = check_id.split("/")
    ref = CheckRef(check_id, site, link, "tcp", "127.0.0.1:1", "127.0.0.1")
    return ProbeResult(ref, at, 1.0, severity)


def run(topo: Topology, sequence, state: EngineState | None = None, start: float = 1.0):
    """Feed (check_id, severity) pairs one second apart, from `start`; or (at, check_id,
    severity) triples where the time matters."""
    state = restore(topo) if state is None else state
    events = []
    for index, item in enumerate(sequence):
        at, check_id, severity = item if len(item) == 3 else (start + index, *item)
        state, new = step(topo, state, result(check_id, severity, float(at)))
        events.extend(new)
    return state, events


ALL_OK = [
    ("psap/fibre/router", OK),
    ("psap/lte/router", OK),
    ("radio/backhaul/router", OK),
    ("radio/console/rfss", OK),
]


def settled(topo: Topology, warm_up=ALL_OK) -> EngineState:
    """The state once every check has reported (first states are tested on their own)."""
    return run(topo, warm_up, start=-100.0)[0]


def brief(events):
    return [(e.subject.value, e.subject_id, e.kind.value, e.before, e.after) for e in events]


def notified(events):
    return [(e.subject.value, e.subject_id, e.before, e.after) for e in events if e.notifiable]


@pytest.mark.parametrize(
    ("confirmations", "severities", "hard_after_each", "soft_after_each"),
    [
        (1, [OK, CRIT, OK], ["OK", "CRIT", "OK"], ["OK", "CRIT", "OK"]),
        (3, [OK, CRIT, CRIT, CRIT], ["OK", "OK", "OK", "CRIT"], ["OK", "CRIT", "CRIT", "CRIT"]),
        (3, [OK, CRIT, CRIT, OK, CRIT], ["OK"] * 5, ["OK", "CRIT", "CRIT", "OK", "CRIT"]),
        (2, [OK, CRIT, WARN, WARN], ["OK", "OK", "OK", "WARN"], ["OK", "CRIT", "WARN", "WARN"]),
        # Before the first confirmed state: PENDING. A first OK needs no confirming, a first
        # problem does, like any change.
        (2, [CRIT, OK, OK], ["PENDING", "OK", "OK"], ["CRIT", "OK", "OK"]),
        (2, [CRIT, CRIT, OK], ["PENDING", "CRIT", "CRIT"], ["CRIT", "CRIT", "OK"]),
        (1, [CRIT, OK], ["CRIT", "OK"], ["CRIT", "OK"]),
        (3, [WARN, OK], ["PENDING", "OK"], ["WARN", "OK"]),
    ],
)
def test_soft_and_hard_states(confirmations, severities, hard_after_each, soft_after_each):
    policy = CheckPolicy("s/l/c", "s", "s/l", confirmations)
    state = None
    for at, (severity, hard, soft) in enumerate(
        zip(severities, hard_after_each, soft_after_each, strict=True)
    ):
        state = confirm(state, severity, float(at), policy, FlapPolicy())
        assert state.hard is (PENDING if hard == "PENDING" else Severity[hard])
        assert state.soft is Severity[soft]
    assert state.since == max(
        i
        for i, h in enumerate(hard_after_each)
        if h == hard_after_each[-1] and (i == 0 or hard_after_each[i - 1] != h)
    )


def test_soft_events_say_how_far_confirmation_has_got():
    topo = topology(confirmations=3)
    _, events = run(topo, [("psap/fibre/router", CRIT)] * 3, settled(topo))
    assert brief(events) == [
        ("check", "psap/fibre/router", "soft", "OK", "CRIT"),
        ("check", "psap/fibre/router", "hard", "OK", "CRIT"),
        ("link", "psap/fibre", "hard", "UP", "DOWN"),
        ("group", "psap", "hard", "RESILIENT", "AT RISK"),
    ]
    assert events[0].cause.endswith("(1 of 3 to confirm)")
    assert not events[0].notifiable and events[1].notifiable


FIBRE, LTE = "psap/fibre/router", "psap/lte/router"


@pytest.mark.parametrize(
    ("confirmations", "sequence", "expected"),
    [
        # A site that starts healthy: every first state is an event (nothing to notify, which
        # alerting decides: an OK change of something never notified is not news).
        (
            1,
            [(FIBRE, OK), (LTE, OK)],
            [
                ("check", FIBRE, "hard", "PENDING", "OK"),
                ("link", "psap/fibre", "hard", "PENDING", "UP"),
                ("check", LTE, "hard", "PENDING", "OK"),
                ("link", "psap/lte", "hard", "PENDING", "UP"),
                ("group", "psap", "hard", "PENDING", "RESILIENT"),
            ],
        ),
        # A site that is AT RISK when commwatch starts says so at once.
        (
            1,
            [(FIBRE, OK), (LTE, CRIT)],
            [
                ("check", FIBRE, "hard", "PENDING", "OK"),
                ("link", "psap/fibre", "hard", "PENDING", "UP"),
                ("check", LTE, "hard", "PENDING", "CRIT"),
                ("link", "psap/lte", "hard", "PENDING", "DOWN"),
                ("group", "psap", "hard", "PENDING", "AT RISK"),
            ],
        ),
        # ... once its problem is confirmed, like any problem.
        (
            2,
            [(LTE, CRIT), (FIBRE, OK), (LTE, CRIT)],
            [
                ("check", LTE, "soft", "PENDING", "CRIT"),
                ("check", FIBRE, "hard", "PENDING", "OK"),
                ("link", "psap/fibre", "hard", "PENDING", "UP"),
                ("check", LTE, "hard", "PENDING", "CRIT"),
                ("link", "psap/lte", "hard", "PENDING", "DOWN"),
                ("group", "psap", "hard", "PENDING", "AT RISK"),
            ],
        ),
        # A lost probe at start-up is never confirmed: nobody is paged for it.
        (
            2,
            [(LTE, CRIT), (FIBRE, OK), (LTE, OK)],
            [
                ("check", LTE, "soft", "PENDING", "CRIT"),
                ("check", FIBRE, "hard", "PENDING", "OK"),
                ("link", "psap/fibre", "hard", "PENDING", "UP"),
                ("check", LTE, "hard", "PENDING", "OK"),
                ("link", "psap/lte", "hard", "PENDING", "UP"),
                ("group", "psap", "hard", "PENDING", "RESILIENT"),
            ],
        ),
        # Both links down from the start: the site is DOWN, never shown before it is known.
        (
            1,
            [(FIBRE, CRIT), (LTE, CRIT)],
            [
                ("check", FIBRE, "hard", "PENDING", "CRIT"),
                ("link", "psap/fibre", "hard", "PENDING", "DOWN"),
                ("check", LTE, "hard", "PENDING", "CRIT"),
                ("link", "psap/lte", "hard", "PENDING", "DOWN"),
                ("group", "psap", "hard", "PENDING", "DOWN"),
            ],
        ),
    ],
)
def test_first_states_are_events_from_pending(confirmations, sequence, expected):
    state, events = run(topology(confirmations), sequence)
    assert brief(events) == expected
    assert all(e.notifiable for e in events if e.kind is EventKind.HARD)
    assert "psap" in state.groups


def test_a_group_has_no_state_until_every_link_has_one():
    state, events = run(topology(), [(FIBRE, CRIT)])
    assert "psap" not in state.groups
    assert [e.subject for e in events] == [Subject.CHECK, Subject.LINK]


def test_redundancy_primary_down_at_risk_backup_down_down_and_recovery():
    topo = topology()
    sequence = [
        ("psap/fibre/router", CRIT),  # primary down -> AT RISK
        ("psap/lte/router", CRIT),  # backup down -> DOWN
        ("psap/lte/router", OK),  # backup back -> AT RISK
        ("psap/fibre/router", OK),  # primary back -> RESILIENT
    ]
    state, events = run(topo, sequence, settled(topo))
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
        (["UP"], 1, GroupStatus.AT_RISK),
        # Only a link known to be up counts as up...
        (["UP", "UNKNOWN", "UP"], 1, GroupStatus.DEGRADED),
        (["UP", "UNKNOWN"], 1, GroupStatus.AT_RISK),
        # ... but links nobody can see never make a group DOWN: they might be up.
        (["UNKNOWN", "UNKNOWN"], 1, GroupStatus.UNKNOWN),
        (["DOWN", "UNKNOWN"], 1, GroupStatus.UNKNOWN),
        (["UNKNOWN"], 1, GroupStatus.UNKNOWN),
        (["UP", "UNKNOWN", "DOWN"], 2, GroupStatus.UNKNOWN),
        (["UP", "DOWN", "DOWN", "UNKNOWN"], 3, GroupStatus.DOWN),  # even all of them: too few
    ],
)
def test_group_status_table(links, min_up, expected):
    ids = tuple(f"s/l{i}" for i in range(len(links)))
    policy = GroupPolicy("g", "s", ids, min_up)
    assert (
        group_status(policy, {i: LinkStatus(s) for i, s in zip(ids, links, strict=True)})
        is expected
    )


@pytest.mark.parametrize(
    ("router", "sip", "expected"),
    [
        (OK, OK, LinkStatus.UP),
        (OK, WARN, LinkStatus.UP),
        (OK, UNKNOWN, LinkStatus.UNKNOWN),
        (UNKNOWN, UNKNOWN, LinkStatus.UNKNOWN),
        (CRIT, UNKNOWN, LinkStatus.DOWN),  # one check known down decides it
    ],
)
def test_link_status_from_its_deciding_checks(router, sip, expected):
    state, _ = run(two_check_topology(), [("cad/wan/router", router), ("cad/wan/sip", sip)])
    assert state.links["cad/wan"] is expected


def test_a_link_change_names_a_check_that_decides_it():
    _, events = run(two_check_topology(), [("cad/wan/router", UNKNOWN), ("cad/wan/sip", OK)])
    (link,) = [e for e in events if e.subject is Subject.LINK]
    assert (link.after, link.cause) == ("UNKNOWN", "cad/wan/router is UNKNOWN")


def test_a_site_whose_links_nobody_can_see_is_unknown_not_down():
    topo = topology()
    _, events = run(topo, [(FIBRE, UNKNOWN), (LTE, UNKNOWN)], settled(topo))
    groups = [(e.before, e.after, e.cause) for e in events if e.subject is Subject.GROUP]
    assert groups == [
        ("RESILIENT", "AT RISK", "link psap/fibre UNKNOWN; 1 of 2 links up, 1 unknown (needs 1)"),
        ("AT RISK", "UNKNOWN", "link psap/lte UNKNOWN; 0 of 2 links up, 2 unknown (needs 1)"),
    ]


def test_a_warning_keeps_a_link_up():
    topo = topology()
    state, events = run(topo, [("psap/fibre/router", WARN)], settled(topo))
    assert state.links["psap/fibre"] is LinkStatus.UP
    assert state.groups["psap"] is GroupStatus.RESILIENT
    assert brief(events) == [("check", "psap/fibre/router", "hard", "OK", "WARN")]


# --- dependencies ----------------------------------------------------------------------------

BACKHAUL, CONSOLE = "radio/backhaul/router", "radio/console/rfss"


def test_dependents_of_a_down_parent_are_unreachable_and_not_alerted():
    topo = topology()
    state, events = run(
        topo,
        [
            (BACKHAUL, CRIT),  # backhaul down
            (CONSOLE, CRIT),  # so the console behind it fails too
            (BACKHAUL, OK),
        ],
        settled(topo),
    )
    console = [e for e in events if e.subject_id.startswith("radio/console")]
    assert [(e.subject_id, e.after, e.suppressed) for e in console] == [
        (CONSOLE, "CRIT", HELD_UNREACHABLE),
        ("radio/console", "DOWN", HELD_UNREACHABLE),
    ]
    backhaul = [e for e in events if e.subject_id == BACKHAUL]
    assert all(e.notifiable for e in backhaul)
    assert CONSOLE not in state.unreachable  # the parent is back


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        # commwatch starts and the console reports before its backhaul: held until the
        # backhaul is known, then announced by a fresh result...
        (
            [(1, CONSOLE, CRIT), (2, BACKHAUL, OK), (3, CONSOLE, CRIT), (4, CONSOLE, CRIT)],
            [
                ("check", BACKHAUL, "PENDING", "OK"),
                ("link", "radio/backhaul", "PENDING", "UP"),
                ("check", CONSOLE, "CRIT", "CRIT"),
                ("link", "radio/console", "DOWN", "DOWN"),
            ],
        ),
        # ... or never, when the backhaul turns out to be down.
        (
            [(1, CONSOLE, CRIT), (2, BACKHAUL, CRIT), (3, CONSOLE, CRIT)],
            [("check", BACKHAUL, "PENDING", "CRIT"), ("link", "radio/backhaul", "PENDING", "DOWN")],
        ),
        # A console that recovers with its backhaul was never a problem of its own.
        (
            [(1, CONSOLE, CRIT), (2, BACKHAUL, OK), (3, CONSOLE, OK)],
            [
                ("check", BACKHAUL, "PENDING", "OK"),
                ("link", "radio/backhaul", "PENDING", "UP"),
                ("check", CONSOLE, "CRIT", "OK"),
                ("link", "radio/console", "DOWN", "UP"),
            ],
        ),
    ],
)
def test_a_dependent_is_held_until_its_parent_is_known_to_work(sequence, expected):
    _, events = run(topology(), sequence)
    assert notified(events) == expected


def test_a_parent_whose_latest_result_fails_holds_its_dependents_back():
    topo = topology(confirmations=2)
    state = settled(topo)
    _, events = run(
        topo,
        [
            (BACKHAUL, CRIT),  # not yet confirmed: but the console's failures are suspect
            (CONSOLE, CRIT),
            (CONSOLE, CRIT),  # confirmed, and held
            (BACKHAUL, OK),  # a blip after all
            (CONSOLE, CRIT),  # so the console's own problem is announced
        ],
        state,
    )
    assert notified(events) == [
        ("check", CONSOLE, "CRIT", "CRIT"),
        ("link", "radio/console", "DOWN", "DOWN"),
    ]
    held = next(e for e in events if e.kind is EventKind.HARD and e.after == "CRIT")
    assert held.suppressed == HELD_UNREACHABLE
    release = notified(events) and next(e for e in events if e.before == e.after == "CRIT")
    assert release.cause == "still CRIT now that what it depends on works again: OK"


def test_a_result_taken_while_the_parent_was_down_stays_unreachable():
    """A probe that started while the backhaul was down and ends after it is back (a timeout
    longer than the backhaul's recovery) says nothing about the console itself."""
    topo = topology()
    state = settled(topo)
    _, events = run(
        topo,
        [
            (10, BACKHAUL, CRIT),
            (20, BACKHAUL, OK),
            (19, CONSOLE, CRIT),  # started before the backhaul was seen back
            (30, CONSOLE, CRIT),  # a fresh result: the console's own problem
        ],
        state,
    )
    console = [(e.at, e.before, e.after, e.suppressed) for e in events if e.subject_id == CONSOLE]
    assert console == [(19, "OK", "CRIT", HELD_UNREACHABLE), (30, "CRIT", "CRIT", ())]


def test_a_parent_the_selection_leaves_out_holds_nothing_back():
    topo = topology(only=(CONSOLE,))
    _, events = run(topo, [(CONSOLE, CRIT)])
    assert notified(events) == [
        ("check", CONSOLE, "PENDING", "CRIT"),
        ("link", "radio/console", "PENDING", "DOWN"),
    ]


# --- maintenance -----------------------------------------------------------------------------


def lte_window(start: float, end: float):
    return lambda ids, at: "psap/lte" in ids and start <= at <= end


def test_maintenance_suppresses_alerts_not_state():
    topo = topology(maintenance=lte_window(3, 4))
    _, events = run(topo, [(LTE, CRIT), (LTE, OK), (LTE, CRIT)], settled(topo), start=3)
    suppressed = [
        (e.subject_id, e.after, e.suppressed) for e in events if e.subject is not Subject.GROUP
    ]
    assert suppressed == [
        (LTE, "CRIT", HELD_MAINTENANCE),
        ("psap/lte", "DOWN", HELD_MAINTENANCE),
        (LTE, "OK", HELD_MAINTENANCE),
        ("psap/lte", "UP", HELD_MAINTENANCE),
        (LTE, "CRIT", ()),
        ("psap/lte", "DOWN", ()),
    ]


def test_a_problem_that_outlasts_maintenance_is_announced_once_fresh_results_confirm_it():
    topo = topology(confirmations=2, maintenance=lte_window(0, 10))
    _, events = run(
        topo,
        [
            (5, LTE, CRIT),
            (6, LTE, CRIT),  # confirmed inside the window: held
            (9, LTE, CRIT),  # a result from inside the window says nothing new
            (11, LTE, OK),  # the window is over, but this result is not confirmed yet
            (12, LTE, CRIT),  # fresh and confirming the problem: announce it
            (13, LTE, CRIT),  # once
        ],
        settled(topo),
    )
    assert notified(events) == [
        ("group", "psap", "RESILIENT", "AT RISK"),  # the group was never in maintenance
        ("check", LTE, "CRIT", "CRIT"),
        ("link", "psap/lte", "DOWN", "DOWN"),
    ]
    released = [e for e in events if e.before == e.after]
    assert [e.at for e in released] == [12, 12]
    assert released[0].cause == "still CRIT now that maintenance is over: OK"
    assert released[1].cause == "still DOWN now that maintenance is over"


def test_a_problem_that_ends_within_maintenance_is_never_announced():
    topo = topology(maintenance=lte_window(0, 10))
    _, events = run(topo, [(5, LTE, CRIT), (8, LTE, OK), (12, LTE, OK)], settled(topo))
    assert [e for e in events if e.notifiable and e.subject is not Subject.GROUP] == []


def test_a_link_is_announced_after_maintenance_only_once_every_deciding_check_is_fresh():
    topo = two_check_topology(maintenance=lambda ids, at: "cad/wan" in ids and at <= 10)
    state = run(topo, [("cad/wan/router", OK), ("cad/wan/sip", OK)], start=-10)[0]
    _, events = run(
        topo,
        [
            (5, "cad/wan/sip", CRIT),  # the link goes down inside the window
            (11, "cad/wan/router", OK),  # after it: but sip has said nothing since
            (12, "cad/wan/sip", CRIT),  # now every deciding check is fresh
        ],
        state,
    )
    assert [(e.at, e.subject_id, e.before, e.after) for e in events if e.notifiable] == [
        (5, "cad", "AT RISK", "DOWN"),  # the window is on the link, not on the site
        (12, "cad/wan/sip", "CRIT", "CRIT"),
        (12, "cad/wan", "DOWN", "DOWN"),
    ]


# --- flapping --------------------------------------------------------------------------------


def test_flapping_starts_holds_notifications_and_stops():
    alternating = [(FIBRE, OK if i % 2 else CRIT) for i in range(12)]
    steady = [(FIBRE, OK)] * 12
    topo = topology()
    _, events = run(topo, [*alternating, *steady], settled(topo))
    check_events = [e for e in events if e.subject is Subject.CHECK]
    kinds = [e.kind for e in check_events]
    assert EventKind.FLAPPING_START in kinds and EventKind.FLAPPING_STOP in kinds
    start = kinds.index(EventKind.FLAPPING_START)
    held = [e for e in check_events[start:] if e.kind is EventKind.HARD]
    # Flapping starts on the fifth change (55.6% > 50%), so that change and the seven after it.
    assert len(held) == 8 and all(Suppression.FLAPPING in e.suppressed for e in held)
    stop = next(e for e in events if e.kind is EventKind.FLAPPING_STOP)
    assert stop.notifiable and stop.after == "OK"
    assert not [e for e in events if e.before == e.after and e.kind is EventKind.HARD]


def test_a_flapping_check_holds_its_link_and_group_too_until_it_settles_down():
    alternating = [(FIBRE, OK if i % 2 else CRIT) for i in range(12)]
    steady = [(FIBRE, CRIT)] * 12
    topo = topology()
    _, events = run(topo, [*alternating, *steady], settled(topo))
    start = next(i for i, e in enumerate(events) if e.kind is EventKind.FLAPPING_START)
    stop = next(i for i, e in enumerate(events) if e.kind is EventKind.FLAPPING_STOP)
    flips = [e for e in events[start:stop] if e.subject is not Subject.CHECK]
    assert flips and all(e.suppressed == (Suppression.FLAPPING,) for e in flips)
    # It settled down, and down: now that is announced, once.
    assert notified(events[stop + 1 :]) == [
        ("check", FIBRE, "CRIT", "CRIT"),
        ("link", "psap/fibre", "DOWN", "DOWN"),
        ("group", "psap", "AT RISK", "AT RISK"),
    ]


# --- a selection of checks -------------------------------------------------------------------


def test_links_and_groups_a_selection_cannot_judge_are_never_evaluated():
    topo = topology(only=(FIBRE, BACKHAUL))
    assert topo.evaluated_links == {"psap/fibre", "radio/backhaul"}
    assert topo.evaluated_groups == frozenset()
    state, events = run(topo, [(FIBRE, CRIT), (BACKHAUL, OK), ("psap/lte/router", OK)])
    assert "psap" not in state.groups
    assert {e.subject_id for e in events} == {FIBRE, "psap/fibre", BACKHAUL, "radio/backhaul"}


def test_restore_leaves_out_what_a_selection_cannot_judge():
    full = topology()
    _, events = run(full, [(FIBRE, OK), (LTE, CRIT)])
    partial = restore(topology(only=(FIBRE,)), events)
    assert dict(partial.links) == {"psap/fibre": LinkStatus.UP}
    assert dict(partial.groups) == {}
    assert set(partial.checks) == {FIBRE}


# --- restart ---------------------------------------------------------------------------------


def test_restore_after_restart_neither_forgets_nor_repeats():
    topo = topology()
    _, events = run(topo, [(FIBRE, OK), (LTE, OK), (FIBRE, CRIT)])
    restored = restore(topo, events)
    assert restored.checks[FIBRE].hard is CRIT
    assert restored.groups["psap"] is GroupStatus.AT_RISK
    _, again = run(topo, [(FIBRE, CRIT), (LTE, OK)], restored)
    assert again == []
    _, recovered = run(topo, [(FIBRE, OK), (LTE, OK)], restored)
    assert ("group", "psap", "hard", "AT RISK", "RESILIENT") in brief(recovered)


def test_a_problem_held_before_a_restart_is_announced_after_it():
    """Maintenance ended while commwatch was stopped: the held problem is still announced."""
    topo = topology(maintenance=lte_window(0, 10))
    _, events = run(topo, [(FIBRE, OK), (5, LTE, CRIT)])
    restored = restore(topo, events)
    _, after = run(topo, [(20, LTE, CRIT)], restored)
    assert notified(after) == [("check", LTE, "CRIT", "CRIT"), ("link", "psap/lte", "DOWN", "DOWN")]


def test_restore_skips_states_it_does_not_know():
    later = Event(1.0, Subject.GROUP, "psap", "psap", EventKind.HARD, "PENDING", "SPLIT", "?")
    odd_check = Event(1.0, Subject.CHECK, FIBRE, "psap", EventKind.HARD, "OK", "PENDING", "?")
    # A link's state is no check's, even where the words agree ("UNKNOWN" is both).
    link_word = Event(1.0, Subject.CHECK, LTE, "psap", EventKind.HARD, "OK", "DOWN", "?")
    restored = restore(topology(), [later, odd_check, link_word])
    assert dict(restored.groups) == {} and dict(restored.checks) == {}


def test_restore_takes_states_as_a_store_gives_them_back_as_text():
    stored = [
        Event(1.0, Subject.CHECK, FIBRE, "psap", EventKind.HARD, "PENDING", "CRIT", "?"),
        Event(1.0, Subject.LINK, "psap/fibre", "psap", EventKind.HARD, "PENDING", "UNKNOWN", "?"),
        Event(1.0, Subject.GROUP, "psap", "psap", EventKind.HARD, "PENDING", "AT RISK", "?"),
    ]
    restored = restore(topology(), stored)
    assert restored.checks[FIBRE].hard is CRIT and restored.checks[FIBRE].soft is CRIT
    assert restored.links["psap/fibre"] is LinkStatus.UNKNOWN
    assert restored.groups["psap"] is GroupStatus.AT_RISK


def test_events_carry_the_states_of_their_subject_as_members_not_words():
    """Consumers compare members (`is GroupStatus.AT_RISK`); the words stay what every output
    and store has always written."""
    topo = topology(confirmations=2)
    sequence = [(FIBRE, OK), (LTE, CRIT), (LTE, CRIT), (FIBRE, CRIT), (FIBRE, CRIT)]
    _, events = run(topo, sequence * 2)
    assert {event.subject for event in events} == set(Subject)
    for event in events:
        for state in (event.before, event.after):
            assert state is PENDING or type(state) is STATES[event.subject], event
    first = next(e for e in events if e.subject is Subject.GROUP)
    assert (first.before, first.after) == (PENDING, GroupStatus.AT_RISK)
    assert f"{first.before}|{first.after}" == "PENDING|AT RISK"
    assert first.event_id == replace(first, before="PENDING", after="AT RISK").event_id
    soft = next(e for e in events if e.kind is EventKind.SOFT)
    assert soft.after is CheckStatus.CRIT and str(soft.after) == "CRIT"


def test_unknown_checks_change_nothing():
    state = EngineState()
    new, events = step(topology(), state, result("other/x/y", CRIT, 1.0))
    assert new is state and events == ()


def test_persistent_map_delete_leaves_the_original_alone():
    original = PersistentMap({"a": 1, "b": 2})
    smaller = original.delete("a")
    assert dict(smaller) == {"b": 2} and len(smaller) == 1
    assert dict(original) == {"a": 1, "b": 2}
    assert smaller.delete("missing") is smaller


def test_persistent_map_changed_keys_names_set_deleted_and_added_keys_only():
    many = PersistentMap({f"k{i}": i for i in range(1000)})
    assert many.changed_keys(many) == set()
    changed = many.set("k1", 100).delete("k2").set("new", 0)
    assert changed.changed_keys(many) == {"k1", "k2", "new"}
    assert many.changed_keys(changed) == {"k1", "k2", "new"}
    # A key set again to the very same object is no change; an equal but new object may be.
    assert many.set("k3", many["k3"]).changed_keys(many) == set()
    assert PersistentMap({"a": 1}).changed_keys(PersistentMap()) == {"a"}
