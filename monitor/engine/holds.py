"""The rules of what holds a change back from being notified: dependencies (what is
unreachable), maintenance and flapping; and when a problem that was held is announced after all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from monitor.core.events import (
    PENDING,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Pending,
    State,
    Subject,
    Suppression,
)
from monitor.core.model import ProbeResult, Severity
from monitor.engine.checks import status_of
from monitor.engine.links import LINK_STATUS_OF_SEVERITY
from monitor.engine.state import EngineState, HoldKey
from monitor.engine.topology import Topology

# The states that need nobody: a held change to one of them has nothing to announce later.
HEALTHY: frozenset[State] = frozenset({CheckStatus.OK, LinkStatus.UP, GroupStatus.RESILIENT})

# Why a held problem is announced after all, by what held it.
RELEASED_BECAUSE: Mapping[Suppression, str] = MappingProxyType(
    {
        Suppression.MAINTENANCE: "maintenance is over",
        Suppression.FLAPPING: "flapping has stopped",
        Suppression.UNREACHABLE: "what it depends on works again",
    }
)


def _works(severity: Severity | Pending) -> bool:
    return severity is not PENDING and LINK_STATUS_OF_SEVERITY[severity] is LinkStatus.UP


def holds_back(subject_id: str, topology: Topology, state: EngineState) -> bool:
    """A parent holds back what depends on it unless it is known to work: confirmed working,
    and its latest results too (one that is failing may be about to be confirmed down)."""
    link = topology.links.get(subject_id)
    if link is not None:
        if state.links.get(subject_id) is not LinkStatus.UP:
            return True
        return not all(
            (check := state.checks.get(check_id)) is not None and _works(check.soft)
            for check_id in link.deciding_checks
        )
    check = state.checks.get(subject_id)
    return check is None or not (_works(check.hard) and _works(check.soft))


def unreachable(topology: Topology, state: EngineState) -> frozenset[str]:
    """Checks and links behind a parent that does not work (or is itself unreachable). A check
    inherits its link's dependencies: everything at a radio site sits behind its backhaul."""
    parents = topology.parents
    memo: dict[str, bool] = {}
    holding = {parent: holds_back(parent, topology, state) for parent in topology.parent_ids}

    def blocked(subject: str, trail: frozenset[str]) -> bool:
        if subject not in memo:
            memo[subject] = any(
                parent not in trail and (holding[parent] or blocked(parent, trail | {subject}))
                for parent in parents.get(subject, ())
            )
        return memo[subject]

    return frozenset(subject for subject in parents if blocked(subject, frozenset()))


def hold_reasons(
    topology: Topology, state: EngineState, subject: Subject, subject_id: str, at: float
) -> tuple[Suppression, ...]:
    """Why a change of the subject at `at` must not be notified, in the order events list it."""
    if subject is Subject.CHECK:
        flapping = state.checks[subject_id].flapping
    elif subject is Subject.LINK:
        flapping = state.tally(subject_id).flapping > 0
    else:
        links = topology.groups[subject_id].link_ids
        flapping = any(state.tally(link).flapping for link in links)
    reasons = []
    if flapping:
        reasons.append(Suppression.FLAPPING)
    if subject_id in state.unreachable or at < state.reachable_from(subject_id):
        reasons.append(Suppression.UNREACHABLE)
    if topology.in_maintenance(topology.own_ids(subject, subject_id), at):
        reasons.append(Suppression.MAINTENANCE)
    return tuple(reasons)


def is_held_problem(event: Event) -> bool:
    """A confirmed change to a state that needs somebody, held back from being notified."""
    return bool(event.suppressed) and event.after not in HEALTHY


def follow_holds(
    topology: Topology,
    state: EngineState,
    events: Sequence[Event],
    candidates: Sequence[HoldKey],
    result: ProbeResult,
) -> tuple[EngineState, list[Event]]:
    """Remember the problems this step's changes held; announce the held problems among
    `candidates` (the subjects the result concerns) that nothing holds any more and fresh
    results confirm."""
    if not events and not state.held:
        return state, []
    at, held = result.started_at, state.held
    changed: set[HoldKey] = set()
    for event in events:
        if event.kind is EventKind.HARD:
            key = (event.subject, event.subject_id)
            changed.add(key)
            held = held.set(key, event.suppressed) if is_held_problem(event) else held.delete(key)
    released: list[Event] = []
    for key in candidates:
        reasons_then = held.get(key)
        if reasons_then is None or key in changed:
            continue
        reasons = hold_reasons(topology, state, *key, at)
        if reasons:
            if reasons != reasons_then:
                held = held.set(key, reasons)
        elif _confirmed_afresh(topology, state, key):
            held = held.delete(key)
            released.append(_release(topology, state, key, reasons_then, result))
    if held is not state.held:
        state = replace(state, held=held)
    return state, released


def _confirmed_afresh(topology: Topology, state: EngineState, key: HoldKey) -> bool:
    """Every check deciding the subject agrees with its confirmed state in a result taken
    while nothing held the subject: the state is what trustworthy results say, not what a
    probe behind a down parent or inside a maintenance window said."""
    subject, subject_id = key
    ids = topology.own_ids(subject, subject_id)
    reachable_since = state.reachable_from(subject_id)
    return all(
        (check := state.checks.get(check_id)) is not None
        and not check.is_soft
        and check.last_at >= reachable_since
        and not topology.in_maintenance(ids, check.last_at)
        for check_id in topology.deciding_checks(subject, subject_id)
    )


def _release(
    topology: Topology,
    state: EngineState,
    key: HoldKey,
    reasons: tuple[Suppression, ...],
    result: ProbeResult,
) -> Event:
    """The event that announces a held problem: still the same state, now that nothing holds
    it."""
    subject, subject_id = key
    now: State
    if subject is Subject.CHECK:
        now = status_of(state.checks[subject_id].hard)
    elif subject is Subject.LINK:
        now = state.links[subject_id]
    else:
        now = state.groups[subject_id]
    why = " and ".join(RELEASED_BECAUSE[reason] for reason in reasons)
    cause = f"still {now} now that {why}"
    if subject is Subject.CHECK:
        cause += f": {result.summary()}"
    return Event(
        at=result.started_at,
        subject=subject,
        subject_id=subject_id,
        site_id=topology.site_of(subject, subject_id),
        kind=EventKind.HARD,
        before=now,
        after=now,
        cause=cause,
    )
