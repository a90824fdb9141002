"""One result applied to the engine's state (monitor.engine.state says the rules): the check's
confirmation, its link's and groups' statuses, what is unreachable, and the events it causes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from monitor.core.events import (
    PENDING,
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
from monitor.core.persistent import PersistentMap
from monitor.engine.checks import CheckState, confirm, status_of
from monitor.engine.holds import follow_holds, hold_reasons, holds_back, unreachable
from monitor.engine.links import group_status, group_text, link_status
from monitor.engine.state import EngineState, HoldKey
from monitor.engine.topology import CheckPolicy, GroupPolicy, LinkPolicy, Topology


def step(
    topology: Topology, state: EngineState, result: ProbeResult
) -> tuple[EngineState, tuple[Event, ...]]:
    """Apply one result. A check not in the topology changes nothing. Every structure is
    updated for the one check, link and groups concerned: a step's cost does not grow with the
    inventory."""
    policy = topology.checks.get(result.check.check_id)
    if policy is None:
        return state, ()
    at = result.started_at
    before = state.checks.get(policy.check_id)
    after = confirm(before, result.severity, at, policy, topology.flap)
    link = topology.links[policy.link_id]
    new = _judged(topology, state, link, policy.check_id, before, after)
    new = _reachability(topology, state, new, (policy.check_id, link.link_id), at)
    events = [
        *_check_events(topology, new, policy, before, after, result),
        *_link_and_group_events(topology, state, new, link, policy.check_id, at),
    ]
    concerned: list[HoldKey] = [(Subject.CHECK, policy.check_id), (Subject.LINK, link.link_id)]
    concerned += [(Subject.GROUP, group.group_id) for group in topology.groups_of(link.link_id)]
    new, released = follow_holds(topology, new, events, concerned, result)
    return new, (*events, *released)


def _judged(
    topology: Topology,
    state: EngineState,
    link: LinkPolicy,
    check_id: str,
    before: CheckState | None,
    after: CheckState,
) -> EngineState:
    """The state with the check's new one, and what it decides: its link's tally and status,
    and the statuses of the link's groups."""
    tallies, links, groups = state.tallies, state.links, state.groups
    if topology.decides(check_id, link.link_id):
        old_tally = state.tally(link.link_id)
        tally = old_tally.moved(before, after)
        if tally is not old_tally:
            tallies = tallies.set(link.link_id, tally)
            status = link_status(link, tally)
            if status is not None and links.get(link.link_id) is not status:
                links = links.set(link.link_id, status)
                groups = _regrouped(groups, links, topology.groups_of(link.link_id))
    if link.link_id in links:
        # A group without a state whose links have theirs is judged now: one restore left to
        # be evaluated afresh (the inventory changed what it rests on), or one only waiting.
        unjudged = [
            group
            for group in topology.groups_of(link.link_id)
            if group.group_id not in groups and group.group_id in topology.evaluated_groups
        ]
        if unjudged:
            groups = _regrouped(groups, links, unjudged)
    return EngineState(
        checks=state.checks.set(check_id, after),
        links=links,
        groups=groups,
        unreachable=state.unreachable,
        tallies=tallies,
        held=state.held,
        reachable_since=state.reachable_since,
    )


def _regrouped(
    groups: PersistentMap[str, GroupStatus],
    links: PersistentMap[str, LinkStatus],
    judged: Iterable[GroupPolicy],
) -> PersistentMap[str, GroupStatus]:
    """The statuses of the groups `judged` once a link's status changed."""
    for group in judged:
        status = group_status(group, links)
        if status is not None and groups.get(group.group_id) is not status:
            groups = groups.set(group.group_id, status)
    return groups


def _reachability(
    topology: Topology, old: EngineState, new: EngineState, subject_ids: tuple[str, ...], at: float
) -> EngineState:
    """`new` with what is unreachable brought up to date, when one of `subject_ids` (the check
    and its link) is a parent whose working changed: nothing else can change what sits behind
    a parent."""
    parents = topology.parent_ids
    if not any(
        subject_id in parents
        and holds_back(subject_id, topology, old) != holds_back(subject_id, topology, new)
        for subject_id in subject_ids
    ):
        return new
    now = unreachable(topology, new)
    since = new.reachable_since
    for subject in new.unreachable - now:
        since = since.set(subject, at)
    return replace(new, unreachable=now, reachable_since=since)


def _check_events(
    topology: Topology,
    new: EngineState,
    policy: CheckPolicy,
    before: CheckState | None,
    after: CheckState,
    result: ProbeResult,
) -> list[Event]:
    """The check's confirmed change (or the progress of one), and its flapping starting or
    stopping."""
    at, summary = after.last_at, result.summary()
    previous_hard = PENDING if before is None else before.hard

    def event(
        kind: EventKind,
        old: Severity | Pending,
        now: Severity | Pending,
        cause: str,
        suppressed: tuple[Suppression, ...] = (),
    ) -> Event:
        return Event(
            at=at,
            subject=Subject.CHECK,
            subject_id=policy.check_id,
            site_id=policy.site_id,
            kind=kind,
            before=status_of(old),
            after=status_of(now),
            cause=cause,
            suppressed=suppressed,
        )

    events = []
    if before is not None and after.flapping != before.flapping:
        kind = EventKind.FLAPPING_START if after.flapping else EventKind.FLAPPING_STOP
        events.append(event(kind, before.hard, after.hard, summary))
    if after.hard is not previous_hard:
        reasons = hold_reasons(topology, new, Subject.CHECK, policy.check_id, at)
        events.append(event(EventKind.HARD, previous_hard, after.hard, summary, reasons))
    elif after.is_soft and (before is None or after.soft is not before.soft):
        progress = f"{after.attempts} of {policy.confirmations} to confirm"
        events.append(event(EventKind.SOFT, after.hard, after.soft, f"{summary} ({progress})"))
    return events


def _link_and_group_events(
    topology: Topology,
    old: EngineState,
    new: EngineState,
    link: LinkPolicy,
    check_id: str,
    at: float,
) -> list[Event]:
    """Changes of the link and its groups, the first status of each (from PENDING) included. A
    group's cause says what its state rests on, the shared risks that would take it below
    min_up included."""
    old_link, new_link = old.links.get(link.link_id), new.links.get(link.link_id)
    changed = new_link if new_link is not old_link else None  # the link's new status
    if changed is None and new.groups is old.groups:
        return []
    events = []
    if changed is not None:
        cause = _deciding_cause(link, new, check_id)
        events.append(
            _hard(topology, new, at, Subject.LINK, link.link_id, old_link, changed, cause)
        )
    for group in topology.groups_of(link.link_id):
        old_group, new_group = old.groups.get(group.group_id), new.groups.get(group.group_id)
        if new_group is None or new_group is old_group:
            continue
        counted = group_text(group, new.links)
        cause = counted if changed is None else f"link {link.link_id} {changed}; {counted}"
        events.append(
            _hard(topology, new, at, Subject.GROUP, group.group_id, old_group, new_group, cause)
        )
    return events


def _hard(
    topology: Topology,
    state: EngineState,
    at: float,
    subject: Subject,
    subject_id: str,
    before: State | None,
    after: State,
    cause: str,
) -> Event:
    """A confirmed change of a link or group (from PENDING, before its first status), held for
    whatever holds the subject now."""
    return Event(
        at=at,
        subject=subject,
        subject_id=subject_id,
        site_id=topology.site_of(subject, subject_id),
        kind=EventKind.HARD,
        before=PENDING if before is None else before,
        after=after,
        cause=cause,
        suppressed=hold_reasons(topology, state, subject, subject_id, at),
    )


def _deciding_cause(link: LinkPolicy, state: EngineState, check_id: str) -> str:
    """`site/link/check is CRIT`: a check at the link's worst, the one just seen if it is."""
    worst = state.tally(link.link_id).worst()
    if state.checks[check_id].hard is not worst:
        check_id = next(c for c in link.deciding_checks if state.checks[c].hard is worst)
    return f"{check_id} is {worst.name}"
