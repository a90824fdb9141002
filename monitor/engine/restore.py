"""The engine's state at start, from the last confirmed change of each subject in a previous run,
so that a restart neither forgets a problem nor announces it again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from monitor.core.events import (
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
    Suppression,
    parse_state,
)
from monitor.core.persistent import PersistentMap
from monitor.engine.checks import CheckState
from monitor.engine.holds import is_held_problem, unreachable
from monitor.engine.links import NO_TALLY, LinkTally, group_status
from monitor.engine.state import EngineState, HoldKey
from monitor.engine.topology import Topology


def restore(topology: Topology, last_hard: Iterable[Event] = ()) -> EngineState:
    """The engine's state at start: the confirmed states of a previous run from its last HARD
    event per subject, and what is unreachable before anything is known (everything behind a
    parent: none is known yet). Only subjects this topology evaluates are restored; a state
    this version does not know (written by a newer one) is left PENDING rather than guessed,
    and so is a group's that its restored links no longer give."""
    checks: dict[str, CheckState] = {}
    links: dict[str, LinkStatus] = {}
    groups: dict[str, GroupStatus] = {}
    held: dict[HoldKey, tuple[Suppression, ...]] = {}
    for event in sorted(last_hard, key=lambda e: e.at):
        if event.kind is not EventKind.HARD or not _restore_one(
            topology, event, checks, links, groups
        ):
            continue
        key = (event.subject, event.subject_id)
        if is_held_problem(event):
            held[key] = event.suppressed
        else:
            held.pop(key, None)
    for group_id in _rejudged(topology, links, groups):
        del groups[group_id]
        held.pop((Subject.GROUP, group_id), None)
    state = EngineState(
        checks=PersistentMap(checks),
        links=PersistentMap(links),
        groups=PersistentMap(groups),
        tallies=PersistentMap(_tallies(topology, checks)),
        held=PersistentMap(held),
    )
    return replace(state, unreachable=unreachable(topology, state))


def _restore_one(
    topology: Topology,
    event: Event,
    checks: dict[str, CheckState],
    links: dict[str, LinkStatus],
    groups: dict[str, GroupStatus],
) -> bool:
    """Take the state the event confirmed, if its subject is one this topology evaluates and
    the state one this version knows; whether it did."""
    state = parse_state(event.subject, event.after)
    subject_id = event.subject_id
    if isinstance(state, CheckStatus) and subject_id in topology.checks:
        severity = state.severity
        checks[subject_id] = CheckState(
            hard=severity, soft=severity, attempts=0, since=event.at, last_at=event.at
        )
    elif isinstance(state, LinkStatus) and subject_id in topology.evaluated_links:
        links[subject_id] = state
    elif isinstance(state, GroupStatus) and subject_id in topology.evaluated_groups:
        groups[subject_id] = state
    else:
        return False
    return True


def _rejudged(
    topology: Topology, links: dict[str, LinkStatus], groups: dict[str, GroupStatus]
) -> list[str]:
    """Groups whose restored state the restored links no longer give: the inventory changed
    what it rests on (min_up, the risks its links share). They are evaluated afresh, their
    first state an event like any other, so the change is told rather than kept unsaid."""
    return [
        group_id
        for group_id, restored in groups.items()
        if (now := group_status(topology.groups[group_id], links)) is not None
        and now is not restored
    ]


def _tallies(topology: Topology, checks: dict[str, CheckState]) -> dict[str, LinkTally]:
    tallies: dict[str, LinkTally] = {}
    for check_id, check in checks.items():
        link_id = topology.checks[check_id].link_id
        if topology.decides(check_id, link_id):
            tallies[link_id] = tallies.get(link_id, NO_TALLY).moved(None, check)
    return tallies
