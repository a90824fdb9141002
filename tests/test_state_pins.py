"""The state engine at the edges its table tests (tests/test_state.py) leave open, each found by
a surviving mutant (docs/mutation-testing.md): flapping exactly at `high` and `low`, links with
several deciding checks or in two groups, a dependency on a check and chains of dependencies,
what a held problem is released for, and the state restored after a restart."""

from __future__ import annotations

import pytest

from monitor.config.inventory import FlapPolicy
from monitor.core.events import Event, EventKind, GroupStatus, LinkStatus, Subject, Suppression
from monitor.core.model import CheckRef, ErrorClass, ProbeError, ProbeResult, Severity
from monitor.engine.checks import CheckState, confirm
from monitor.engine.restore import restore
from monitor.engine.step import step
from monitor.engine.topology import CheckPolicy, GroupPolicy, LinkPolicy, Topology
from tests.test_state import (
    BACKHAUL,
    CONSOLE,
    FIBRE,
    LTE,
    brief,
    lte_window,
    notified,
    result,
    run,
    settled,
    topology,
    two_check_topology,
)

OK, WARN, CRIT, UNKNOWN = Severity.OK, Severity.WARN, Severity.CRIT, Severity.UNKNOWN
ROUTER, SIP = "cad/wan/router", "cad/wan/sip"
F, T = False, True


def hard(subject: Subject, subject_id: str, site: str, after: str, at: float = 1.0) -> Event:
    """A confirmed change as a previous run's history gives it back."""
    return Event(at, subject, subject_id, site, EventKind.HARD, "PENDING", after, "?")


def refused(check_id: str, at: float) -> ProbeResult:
    """A CRIT result whose summary names its failure."""
    site, link, _ = check_id.split("/")
    ref = CheckRef(check_id, site, link, "tcp", "127.0.0.1:1", "127.0.0.1")
    error = ProbeError(ErrorClass.REFUSED, f"{check_id} refused")
    return ProbeResult(ref, at, 1.0, CRIT, error=error)


def engine(
    checks: list[CheckPolicy],
    links: list[LinkPolicy],
    groups: list[GroupPolicy] = (),
    maintenance=lambda ids, at: False,
) -> Topology:
    return Topology(
        {c.check_id: c for c in checks},
        {link.link_id: link for link in links},
        {g.group_id: g for g in groups},
        FlapPolicy(window=10, high=50, low=25),
        maintenance,
    )


# --- what events carry ------------------------------------------------------------------------


def test_events_carry_the_results_summary_and_their_site():
    topo = topology()
    state, events = settled(topo), []
    for at in range(1, 13):  # alternating: flapping starts on the fifth change, a failure
        state, new = step(topo, state, refused(FIBRE, at) if at % 2 else result(FIBRE, OK, at))
        events.extend(new)
    failing = f"refused: {FIBRE} refused"
    crit = [e.cause for e in events if e.kind is EventKind.HARD and e.after == "CRIT"]
    assert crit and set(crit) == {failing}
    start = next(e for e in events if e.kind is EventKind.FLAPPING_START)
    assert (start.at, start.cause) == (5, failing)
    assert {(e.subject, e.site_id) for e in events} == {
        (Subject.CHECK, "psap"),
        (Subject.LINK, "psap"),
        (Subject.GROUP, "psap"),
    }


def test_a_released_problem_is_a_hard_event_of_its_site():
    topo = topology(confirmations=2, maintenance=lte_window(0, 10))
    _, events = run(topo, [(5, LTE, CRIT), (6, LTE, CRIT), (12, LTE, CRIT)], settled(topo))
    released = [e for e in events if e.before == e.after]
    assert [(e.kind, e.subject, e.site_id) for e in released] == [
        (EventKind.HARD, Subject.CHECK, "psap"),
        (EventKind.HARD, Subject.LINK, "psap"),
    ]


# --- flapping at its bounds -------------------------------------------------------------------

# Window 5 weighs its results 0.8, 0.9, 1.0, 1.1, 1.2 (oldest first) out of 5.0: changes at the
# second and fourth are exactly 40 %, one change in the middle exactly 20 %.
FLAP = FlapPolicy(window=5, high=40, low=20)
POLICY = CheckPolicy("s/l/c", "s", "s/l", 1)


def flapped(changes: tuple[bool, ...], flapping: bool, severity: Severity) -> bool:
    """Whether an OK check whose last results changed as `changes` say (and which flapped or
    not) flaps after one more result of `severity`."""
    previous = CheckState(OK, OK, 0, 0.0, 0.0, changes=changes, flapping=flapping)
    return confirm(previous, severity, 1.0, POLICY, FLAP).flapping


@pytest.mark.parametrize(
    ("changes", "was", "severity", "expected"),
    [
        ((F, T, F, T), False, OK, False),  # exactly `high` (40 %): not above it, not flapping
        ((F, T, F, T), False, CRIT, True),  # one more change: 64 %
        ((F, F, T, F), True, OK, True),  # exactly `low` (20 %): not below it, still flapping
        ((T, F, F, T), True, OK, True),  # 38 %: between the bounds, flapping goes on...
        ((T, F, F, T), False, OK, False),  # ... and does not start
        ((T, F, F, F), True, OK, False),  # 16 %: below `low`, it stops
    ],
)
def test_flapping_starts_above_high_and_goes_on_until_the_share_drops_below_low(
    changes, was, severity, expected
):
    assert flapped(changes, was, severity) is expected


def test_a_first_result_never_flaps_even_when_low_is_zero():
    first = confirm(None, CRIT, 1.0, POLICY, FlapPolicy(window=5, high=40, low=0))
    assert first.flapping is False


def test_attempts_count_only_while_a_deviation_awaits_confirmation():
    policy = CheckPolicy("s/l/c", "s", "s/l", 2)
    state, attempts = None, []
    for at, severity in enumerate([OK, CRIT, CRIT, CRIT, OK, CRIT]):
        state = confirm(state, severity, float(at), policy, FlapPolicy())
        attempts.append(state.attempts)
    assert attempts == [0, 1, 0, 0, 1, 0]


# --- links with several deciding checks, links in two groups ----------------------------------


def three_check_link() -> Topology:
    ids = ("cad/wan/a", "cad/wan/b", "cad/wan/c")
    return engine(
        [CheckPolicy(c, "cad", "cad/wan", 1) for c in ids],
        [LinkPolicy("cad/wan", "cad", ids)],
        [GroupPolicy("cad", "cad", ("cad/wan",))],
    )


def test_a_link_decided_by_three_checks_goes_down_when_one_fails():
    topo = three_check_link()
    state, _ = run(topo, [("cad/wan/a", OK), ("cad/wan/b", OK), ("cad/wan/c", OK)])
    state, events = run(topo, [("cad/wan/b", CRIT)], state, start=10)
    assert state.links["cad/wan"] is LinkStatus.DOWN
    assert ("link", "cad/wan", "hard", "UP", "DOWN") in brief(events)


def test_a_link_has_no_status_while_a_deciding_check_is_pending_however_often_another_changes():
    state, events = run(two_check_topology(), [(ROUTER, OK), (ROUTER, CRIT), (ROUTER, OK)])
    assert "cad/wan" not in state.links
    assert {e.subject for e in events} == {Subject.CHECK}


def test_a_link_stays_down_while_any_of_its_deciding_checks_is_down():
    topo = two_check_topology()
    state, _ = run(topo, [(ROUTER, CRIT), (SIP, CRIT), (ROUTER, OK)])
    assert state.links["cad/wan"] is LinkStatus.DOWN
    state, _ = run(topo, [(SIP, OK)], state, start=10)
    assert state.links["cad/wan"] is LinkStatus.UP


def test_a_link_that_comes_up_warning_names_the_warning_check():
    topo = two_check_topology()
    _, events = run(topo, [(ROUTER, WARN), (SIP, UNKNOWN), (SIP, OK)])
    links = [(e.before, e.after, e.cause) for e in events if e.subject is Subject.LINK]
    assert links == [
        ("PENDING", "UNKNOWN", f"{SIP} is UNKNOWN"),
        ("UNKNOWN", "UP", f"{ROUTER} is WARN"),
    ]


def test_a_link_change_that_leaves_its_group_as_it_was_is_no_group_event():
    topo = topology()
    state, _ = run(topo, [(FIBRE, CRIT)], settled(topo))
    _, events = run(topo, [(FIBRE, UNKNOWN)], state, start=10)
    assert brief(events) == [
        ("check", FIBRE, "hard", "CRIT", "UNKNOWN"),
        ("link", "psap/fibre", "hard", "DOWN", "UNKNOWN"),
    ]


def test_a_link_in_two_groups_changes_each():
    """The fibre is one of the PSAP's two links and the only link of its uplink group: a change
    that leaves the first group as it was still changes the second."""
    base = topology()
    groups = {**base.groups, "uplink": GroupPolicy("uplink", "psap", ("psap/fibre",))}
    topo = Topology(base.checks, base.links, groups, base.flap, base.in_maintenance)
    state, events = run(topo, [(FIBRE, CRIT)], settled(topo))
    groups_changed = [
        (e.subject_id, e.before, e.after) for e in events if e.subject is Subject.GROUP
    ]
    assert groups_changed == [("psap", "RESILIENT", "AT RISK"), ("uplink", "AT RISK", "DOWN")]
    state, events = run(topo, [(FIBRE, UNKNOWN)], state, start=10)
    groups_changed = [
        (e.subject_id, e.before, e.after) for e in events if e.subject is Subject.GROUP
    ]
    assert groups_changed == [("uplink", "DOWN", "UNKNOWN")]
    assert state.groups["psap"] is GroupStatus.AT_RISK


# --- dependencies -----------------------------------------------------------------------------


def check_dependency() -> Topology:
    """The phones' ATA depends on the SIP check of the WAN, which does not decide the WAN (its
    router does), and needs two agreeing results."""
    return engine(
        [
            CheckPolicy(ROUTER, "cad", "cad/wan", 1),
            CheckPolicy(SIP, "cad", "cad/wan", 2),
            CheckPolicy("cad/phones/ata", "cad", "cad/phones", 1, depends_on=(SIP,)),
        ],
        [
            LinkPolicy("cad/wan", "cad", (ROUTER,)),
            LinkPolicy("cad/phones", "cad", ("cad/phones/ata",)),
        ],
    )


def test_a_dependency_on_a_check_holds_back_while_its_latest_result_fails():
    topo = check_dependency()
    state, _ = run(topo, [(ROUTER, OK), (SIP, OK), ("cad/phones/ata", OK)], start=-10)
    state, events = run(
        topo,
        [
            (1, SIP, CRIT),  # not confirmed, but the ATA's failures are suspect now
            (2, "cad/phones/ata", CRIT),
            (3, SIP, OK),  # a blip
            (4, "cad/phones/ata", CRIT),  # the ATA's own problem
        ],
        state,
    )
    ata = [
        (e.at, e.before, e.after, e.suppressed) for e in events if e.subject_id == "cad/phones/ata"
    ]
    assert ata == [
        (2, "OK", "CRIT", (Suppression.UNREACHABLE,)),
        (4, "CRIT", "CRIT", ()),
    ]
    assert "cad/phones/ata" not in state.unreachable


def test_a_dependency_on_a_working_check_holds_nothing_back():
    topo = check_dependency()
    state, _ = run(topo, [(ROUTER, OK), (SIP, OK)], start=-10)
    _, events = run(topo, [("cad/phones/ata", CRIT)], state)
    assert notified(events) == [
        ("check", "cad/phones/ata", "PENDING", "CRIT"),
        ("link", "cad/phones", "PENDING", "DOWN"),
    ]


def chain() -> Topology:
    """Dispatch depends on the console, which depends on the backhaul."""
    base = topology()
    checks = {
        **base.checks,
        "radio/dispatch/desk": CheckPolicy("radio/dispatch/desk", "radio", "radio/dispatch", 1),
    }
    links = {
        **base.links,
        "radio/dispatch": LinkPolicy(
            "radio/dispatch", "radio", ("radio/dispatch/desk",), depends_on=("radio/console",)
        ),
    }
    return Topology(checks, links, base.groups, base.flap, base.in_maintenance)


def test_a_chain_of_dependencies_holds_back_everything_behind_the_parent_that_fails():
    topo = chain()
    state = settled(topo, [*[(c, OK) for c in topo.checks]])
    state, events = run(topo, [(BACKHAUL, CRIT), ("radio/dispatch/desk", CRIT)], state)
    assert {CONSOLE, "radio/console", "radio/dispatch/desk", "radio/dispatch"} <= state.unreachable
    desk = [e.suppressed for e in events if e.subject_id == "radio/dispatch/desk"]
    assert desk == [(Suppression.UNREACHABLE,)]


def test_a_dependency_cycle_the_loader_would_refuse_does_not_hang_the_engine():
    """resilience.py refuses cycles; a Topology built by hand may still have one. (Which
    subjects of a cycle are unreachable once one fails depends on the order they are visited
    in: no rule is pinned for a topology the loader never builds.)"""
    topo = engine(
        [CheckPolicy("s/a/c", "s", "s/a", 1), CheckPolicy("s/b/c", "s", "s/b", 1)],
        [
            LinkPolicy("s/a", "s", ("s/a/c",), depends_on=("s/b",)),
            LinkPolicy("s/b", "s", ("s/b/c",), depends_on=("s/a",)),
        ],
    )
    state, events = run(topo, [("s/a/c", OK), ("s/b/c", OK)])
    assert state.unreachable == frozenset()
    assert [e.after for e in events if e.subject is Subject.LINK] == ["UP", "UP"]


# --- holds and their release ------------------------------------------------------------------


def test_a_held_link_is_released_by_a_fresh_result_of_a_check_that_was_never_held():
    topo = two_check_topology(maintenance=lambda ids, at: "cad/wan" in ids and 0 <= at <= 10)
    state, _ = run(topo, [(ROUTER, OK), (SIP, OK)], start=-10)
    _, events = run(
        topo,
        [
            (5, ROUTER, CRIT),  # down inside the window: the router and the link are held
            (6, SIP, OK),  # sip says nothing new (nothing held on sip itself)
            (11, ROUTER, CRIT),  # the router's problem is announced; sip's word is stale
            (12, SIP, OK),  # now both are fresh: the link is announced
        ],
        state,
    )
    released = [(e.at, e.subject_id, e.after) for e in events if e.before == e.after]
    assert released == [(11, ROUTER, "CRIT"), (12, "cad/wan", "DOWN")]


def test_a_released_problem_names_what_held_it_last():
    """Held for maintenance, then (the window over) because its backhaul is down: released,
    it says it was the backhaul."""
    window = lambda ids, at: "radio/console" in ids and 0 <= at <= 10  # noqa: E731
    topo = topology(maintenance=window)
    _, events = run(
        topo,
        [
            (5, CONSOLE, CRIT),
            (8, BACKHAUL, CRIT),
            (12, CONSOLE, CRIT),
            (13, BACKHAUL, OK),
            (14, CONSOLE, CRIT),
        ],
        settled(topo),
    )
    released = [(e.at, e.subject_id, e.cause) for e in events if e.before == e.after]
    assert released == [
        (14, CONSOLE, "still CRIT now that what it depends on works again: OK"),
        (14, "radio/console", "still DOWN now that what it depends on works again"),
    ]


def test_a_problem_held_for_two_reasons_is_released_naming_both():
    window = lambda ids, at: "radio/console" in ids and 0 <= at <= 10  # noqa: E731
    topo = topology(maintenance=window)
    _, events = run(
        topo,
        [(4, BACKHAUL, CRIT), (5, CONSOLE, CRIT), (12, BACKHAUL, OK), (14, CONSOLE, CRIT)],
        settled(topo),
    )
    held = next(e for e in events if e.subject_id == CONSOLE)
    assert held.suppressed == (Suppression.UNREACHABLE, Suppression.MAINTENANCE)
    released = next(e for e in events if e.before == e.after)
    assert released.cause == (
        "still CRIT now that what it depends on works again and maintenance is over: OK"
    )


def test_a_result_taken_at_the_instant_the_parent_is_seen_back_is_fresh():
    topo = topology()
    _, events = run(
        topo,
        [(10, BACKHAUL, CRIT), (11, CONSOLE, CRIT), (20, BACKHAUL, OK), (20, CONSOLE, CRIT)],
        settled(topo),
    )
    console = [(e.at, e.before, e.after, e.suppressed) for e in events if e.subject_id == CONSOLE]
    assert console == [(11, "OK", "CRIT", (Suppression.UNREACHABLE,)), (20, "CRIT", "CRIT", ())]


def test_a_link_behind_a_parent_is_released_only_once_every_deciding_check_is_fresh():
    """Each deciding check must have a result that started after the parent was seen back."""
    topo = engine(
        [
            CheckPolicy("s/up/r", "s", "s/up", 1),
            CheckPolicy("s/wan/a", "s", "s/wan", 1),
            CheckPolicy("s/wan/b", "s", "s/wan", 1),
        ],
        [
            LinkPolicy("s/up", "s", ("s/up/r",)),
            LinkPolicy("s/wan", "s", ("s/wan/a", "s/wan/b"), depends_on=("s/up",)),
        ],
    )
    state, _ = run(topo, [("s/up/r", OK), ("s/wan/a", OK), ("s/wan/b", OK)], start=-10)
    _, events = run(
        topo,
        [
            (1, "s/up/r", CRIT),
            (2, "s/wan/a", CRIT),  # the link goes down behind its parent: held
            (3, "s/wan/b", CRIT),
            (10, "s/up/r", OK),  # the parent is back at 10
            (9, "s/wan/b", CRIT),  # started before: says nothing
            (11, "s/wan/a", CRIT),  # fresh, but b's latest is not
            (12, "s/wan/b", CRIT),  # now the link's state is what fresh results say
        ],
        state,
    )
    released = [(e.at, e.subject_id) for e in events if e.before == e.after]
    assert released == [(11, "s/wan/a"), (12, "s/wan/b"), (12, "s/wan")]


# --- maintenance through the topology ---------------------------------------------------------


def test_a_topology_without_maintenance_holds_nothing():
    base = topology()
    topo = Topology(base.checks, base.links, base.groups, base.flap)
    _, events = run(topo, [(LTE, CRIT)], settled(topo))
    assert events and all(e.suppressed == () for e in events)


def test_a_window_on_a_site_holds_its_checks_links_and_groups():
    topo = topology(maintenance=lambda ids, at: "psap" in ids)
    _, events = run(topo, [(LTE, CRIT)], settled(topo))
    assert [(e.subject, e.suppressed) for e in events] == [
        (Subject.CHECK, (Suppression.MAINTENANCE,)),
        (Subject.LINK, (Suppression.MAINTENANCE,)),
        (Subject.GROUP, (Suppression.MAINTENANCE,)),
    ]


# --- restart ----------------------------------------------------------------------------------


def test_a_restored_check_is_settled_at_the_time_of_its_event():
    restored = restore(topology(), [hard(Subject.CHECK, FIBRE, "psap", "CRIT", at=7.0)])
    assert restored.checks[FIBRE] == CheckState(CRIT, CRIT, attempts=0, since=7.0, last_at=7.0)


def test_a_restored_link_of_two_checks_comes_up_when_both_do():
    topo = two_check_topology()
    restored = restore(
        topo,
        [
            hard(Subject.CHECK, ROUTER, "cad", "CRIT"),
            hard(Subject.CHECK, SIP, "cad", "CRIT"),
            hard(Subject.LINK, "cad/wan", "cad", "DOWN"),
        ],
    )
    state, _ = run(topo, [(ROUTER, OK)], restored, start=10)
    assert state.links["cad/wan"] is LinkStatus.DOWN
    state, events = run(topo, [(SIP, OK)], state, start=11)
    assert state.links["cad/wan"] is LinkStatus.UP
    assert ("link", "cad/wan", "hard", "DOWN", "UP") in brief(events)


def test_a_restored_link_keeps_its_status_until_every_deciding_check_is_known():
    """The previous run's history has the link but not one of its checks (added since)."""
    topo = two_check_topology()
    restored = restore(
        topo, [hard(Subject.CHECK, ROUTER, "cad", "OK"), hard(Subject.LINK, "cad/wan", "cad", "UP")]
    )
    state, events = run(topo, [(ROUTER, CRIT)], restored, start=10)
    assert state.links["cad/wan"] is LinkStatus.UP
    # No change of the link; its group, which the history did not have, is judged from it.
    assert [(e.subject, e.before, e.after) for e in events] == [
        (Subject.CHECK, "OK", "CRIT"),
        (Subject.GROUP, "PENDING", "AT RISK"),
    ]


def test_a_restored_group_keeps_its_status_until_every_link_is_known():
    topo = topology()
    restored = restore(
        topo,
        [
            hard(Subject.CHECK, FIBRE, "psap", "CRIT"),
            hard(Subject.LINK, "psap/fibre", "psap", "DOWN"),
            hard(Subject.GROUP, "psap", "psap", "AT RISK"),
        ],
    )
    state, _ = run(topo, [(FIBRE, OK)], restored, start=10)
    assert state.links["psap/fibre"] is LinkStatus.UP
    assert state.groups["psap"] is GroupStatus.AT_RISK


def test_restore_reads_on_past_events_it_skips():
    restored = restore(
        topology(),
        [
            Event(1.0, Subject.CHECK, FIBRE, "psap", EventKind.SOFT, "OK", "CRIT", "?"),
            hard(Subject.GROUP, "psap", "psap", "SPLIT", at=2.0),  # a newer version's word
            hard(Subject.CHECK, LTE, "psap", "CRIT", at=3.0),
        ],
    )
    assert dict(restored.checks) == {LTE: CheckState(CRIT, CRIT, 0, 3.0, 3.0)}


def test_a_problem_no_longer_held_before_the_restart_is_not_announced_after_it():
    topo = topology(maintenance=lte_window(0, 10))
    held = Event(5.0, Subject.CHECK, LTE, "psap", EventKind.HARD, "OK", "CRIT", "?",
                 (Suppression.MAINTENANCE,))  # fmt: skip
    unheld = Event(20.0, Subject.CHECK, LTE, "psap", EventKind.HARD, "CRIT", "OK", "?")
    restored = restore(topo, [held, unheld])
    assert dict(restored.held) == {}
    _, events = run(topo, [(30, LTE, OK)], restored)
    assert events == []


def test_restore_holds_nothing_for_what_the_selection_leaves_out():
    full = topology(maintenance=lte_window(0, 10))
    _, events = run(full, [(FIBRE, OK), (5, LTE, CRIT)])
    assert any(e.suppressed for e in events)
    partial = restore(topology(only=(FIBRE,)), events)
    assert dict(partial.held) == {}
