"""The state engine: a pure function from (topology, previous state, result) to (state, events).

No I/O, no clock: time comes from the result. It turns raw results into what matters to an
emergency network: confirmed (hard) states after `retries` agreeing results, flapping, the state
of each link, how much redundancy each group has left, and which subjects are unreachable
because something they depend on is not known to work. Every change is an `Event` with before,
after and cause. The tables below are the rules; the functions only look them up.

The rules that say what the engine does not know:

- Before its first confirmed state a check, link or group is PENDING. A first OK is confirmed at
  once (nothing needs to be waited for); a first problem needs `retries` agreeing results like
  any change, so one lost probe at start-up pages nobody. The first confirmed state is an event
  from PENDING like any other change: a site that starts AT RISK is news, one that starts
  RESILIENT is recorded and gives alerting nothing to say.
- A link has a status only once every check that decides it has a confirmed state, a group only
  once every link has one. A topology built for a selection of checks leaves the others out, so
  a link (and a group) that depends on an unselected check is never evaluated at all.
- A link is UNKNOWN when the worst of its deciding checks is; a group counts only links known
  to be up as up, and is UNKNOWN, not DOWN, when links nobody can see could make up the
  difference.
- A change is held (recorded and shown, not notified; the event says why) while its subject is
  in maintenance, flapping (a link or group: while a check deciding it flaps) or unreachable (a
  parent is down, not yet known, or its latest result fails; or the result started before the
  parent was seen working again). When nothing holds a problem any more and fresh results
  confirm it, one more event says so (before == after): a problem that began while held is
  announced once it is real, never left unsaid.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from monitor.config.inventory import FlapPolicy
from monitor.core.events import PENDING, Event, EventKind, Subject, Suppression
from monitor.core.model import ProbeResult, Severity
from monitor.core.persistent import PersistentMap


class LinkStatus(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class GroupStatus(enum.StrEnum):
    RESILIENT = "RESILIENT"  # every link up
    DEGRADED = "DEGRADED"  # redundancy reduced, more than min_up still up
    AT_RISK = "AT RISK"  # exactly min_up up: one more failure is an outage
    DOWN = "DOWN"  # fewer than min_up up
    UNKNOWN = "UNKNOWN"  # fewer than min_up known up, and unknown links could make up the rest


# A link is judged on the worst confirmed severity of the checks that decide its availability:
# a WARN (a slow path, a certificate due for renewal) still carries traffic.
LINK_STATUS_OF_SEVERITY: Mapping[Severity, LinkStatus] = MappingProxyType(
    {
        Severity.OK: LinkStatus.UP,
        Severity.WARN: LinkStatus.UP,
        Severity.CRIT: LinkStatus.DOWN,
        Severity.UNKNOWN: LinkStatus.UNKNOWN,
    }
)

# The states that need nobody: a held change to one of them has nothing to announce later.
HEALTHY: frozenset[str] = frozenset({Severity.OK.name, LinkStatus.UP, GroupStatus.RESILIENT})

# Why a held problem is announced after all, by what held it.
RELEASED_BECAUSE: Mapping[Suppression, str] = MappingProxyType(
    {
        Suppression.MAINTENANCE: "maintenance is over",
        Suppression.FLAPPING: "flapping has stopped",
        Suppression.UNREACHABLE: "what it depends on works again",
    }
)


def links_up_text(up: int, unknown: int, total: int, min_up: int) -> str:
    """`1 of 2 links up (needs 1)`, with `, 1 unknown` when some are."""
    unknown_text = f", {unknown} unknown" if unknown else ""
    return f"{up} of {total} links up{unknown_text} (needs {min_up})"


# --- topology: what the inventory says, reduced to what the rules need --------------------


@dataclass(frozen=True)
class CheckPolicy:
    check_id: str
    site_id: str
    link_id: str  # site/link
    confirmations: int  # agreeing results before a change is confirmed (`retries`, at least 1)
    depends_on: tuple[str, ...] = ()  # link or check ids


@dataclass(frozen=True)
class LinkPolicy:
    link_id: str  # site/link
    site_id: str
    deciding_checks: tuple[str, ...]  # the checks whose state decides whether the link is up
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupPolicy:
    group_id: str
    site_id: str  # the site it belongs to, or "" for a group across sites
    link_ids: tuple[str, ...]
    min_up: int = 1


@dataclass(frozen=True)
class Topology:
    """The checks the engine runs (all of the inventory's, or a selection), every link and
    group. Only links whose deciding checks are all here are evaluated, and only groups whose
    links all are."""

    checks: Mapping[str, CheckPolicy]
    links: Mapping[str, LinkPolicy]
    groups: Mapping[str, GroupPolicy]
    flap: FlapPolicy = FlapPolicy()
    # Maintenance: (subject ids that apply to a subject, time) -> in a window? Injected, so the
    # engine stays pure and calendar rules live in one module of their own.
    in_maintenance: Callable[[Iterable[str], float], bool] = lambda _ids, _at: False

    def groups_of(self, link_id: str) -> tuple[GroupPolicy, ...]:
        return self._groups_by_link.get(link_id, ())

    def decides(self, check_id: str, link_id: str) -> bool:
        return check_id in self._deciding[link_id]

    @functools.cached_property
    def evaluated_links(self) -> frozenset[str]:
        return frozenset(
            link.link_id
            for link in self.links.values()
            if all(check in self.checks for check in link.deciding_checks)
        )

    @functools.cached_property
    def evaluated_groups(self) -> frozenset[str]:
        return frozenset(
            group.group_id
            for group in self.groups.values()
            if all(link in self.evaluated_links for link in group.link_ids)
        )

    @functools.cached_property
    def observed_links(self) -> frozenset[str]:
        """Links with at least one check here, evaluated or not."""
        return frozenset(check.link_id for check in self.checks.values())

    @functools.cached_property
    def _groups_by_link(self) -> dict[str, tuple[GroupPolicy, ...]]:
        index: dict[str, list[GroupPolicy]] = {}
        for group in self.groups.values():
            for link_id in group.link_ids:
                index.setdefault(link_id, []).append(group)
        return {link_id: tuple(groups) for link_id, groups in index.items()}

    @functools.cached_property
    def parents(self) -> dict[str, tuple[str, ...]]:
        """What each subject that depends on anything depends on; a check inherits its link's
        dependencies. Subjects with none are left out: they can never be unreachable. So are
        parents this topology does not evaluate: never known, they must hold nothing back."""
        known = self.evaluated_links | self.checks.keys()
        found = {}
        for link in self.links.values():
            parents = tuple(p for p in link.depends_on if p in known)
            if parents and link.link_id in self.evaluated_links:
                found[link.link_id] = parents
        for check in self.checks.values():
            inherited = check.depends_on + self.links[check.link_id].depends_on
            parents = tuple(p for p in inherited if p in known)
            if parents:
                found[check.check_id] = parents
        return found

    @functools.cached_property
    def parent_ids(self) -> frozenset[str]:
        """Every subject something depends on: only whether they work matters."""
        return frozenset(parent for parents in self.parents.values() for parent in parents)

    @functools.cached_property
    def _deciding(self) -> dict[str, frozenset[str]]:
        return {link.link_id: frozenset(link.deciding_checks) for link in self.links.values()}


# --- state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckState:
    hard: str  # confirmed severity name, or PENDING before the first confirmed state
    soft: str  # the latest result's severity
    attempts: int  # consecutive results agreeing with `soft` while it differs from `hard`
    since: float  # when `hard` began
    last_at: float
    changes: tuple[bool, ...] = ()  # per recent result: did its severity differ from the one before
    flapping: bool = False

    @property
    def is_soft(self) -> bool:
        return self.soft != self.hard


@dataclass(frozen=True)
class LinkTally:
    """How many of a link's deciding checks are confirmed at each severity, and how many flap,
    kept up to date one result at a time so a link's state never needs a walk over its checks."""

    known: int = 0
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)  # by Severity value: OK, WARN, CRIT, UNKNOWN
    flapping: int = 0

    def moved(self, before: CheckState | None, after: CheckState) -> LinkTally:
        """The tally once one of its checks went from `before` to `after` (itself if no count
        changed)."""
        old = PENDING if before is None else before.hard
        was_flapping = before is not None and before.flapping
        if old == after.hard and was_flapping == after.flapping:
            return self
        counts, known = list(self.counts), self.known
        if old != PENDING:
            counts[Severity[old].value] -= 1
            known -= 1
        if after.hard != PENDING:
            counts[Severity[after.hard].value] += 1
            known += 1
        flapping = self.flapping + after.flapping - was_flapping
        return LinkTally(known, (counts[0], counts[1], counts[2], counts[3]), flapping)

    def worst(self) -> Severity:
        return Severity.worst(s for s in Severity if self.counts[s.value])


HoldKey = tuple[Subject, str]


@dataclass(frozen=True)
class EngineState:
    checks: Mapping[str, CheckState] = field(default_factory=PersistentMap)
    links: Mapping[str, LinkStatus] = field(default_factory=PersistentMap)  # once fully known
    groups: Mapping[str, GroupStatus] = field(default_factory=PersistentMap)  # once fully known
    unreachable: frozenset[str] = frozenset()  # check and link ids behind a parent not working
    tallies: Mapping[str, LinkTally] = field(default_factory=PersistentMap)
    # Subjects whose latest confirmed change, a problem, was held; and why.
    held: Mapping[HoldKey, tuple[Suppression, ...]] = field(default_factory=PersistentMap)
    # When each subject that was unreachable last stopped being so: a result that started
    # before then was taken while its parent did not work, and is judged unreachable too.
    reachable_since: Mapping[str, float] = field(default_factory=PersistentMap)


# --- rules ---------------------------------------------------------------------------------


class _Step(enum.Enum):
    SETTLE = "settle"  # the result agrees with the confirmed state
    COUNT = "count"  # it agrees with the soft state: one more agreeing result
    RESTART = "restart"  # a new deviation: start counting again


# (result agrees with hard, result agrees with soft) -> step
CONFIRMATION: Mapping[tuple[bool, bool], _Step] = MappingProxyType(
    {
        (True, True): _Step.SETTLE,
        (True, False): _Step.SETTLE,
        (False, True): _Step.COUNT,
        (False, False): _Step.RESTART,
    }
)

# (confirmed state, result) -> agreeing results needed to confirm, where not `confirmations`:
# a first OK has nothing to be confirmed against.
FIRST_CONFIRMATIONS: Mapping[tuple[str, str], int] = MappingProxyType(
    {(PENDING, Severity.OK.name): 1}
)


def _flap_share(changes: tuple[bool, ...], window: int) -> float:
    """Weighted percentage of changes over the window, recent ones weighing more (0.8 oldest ..
    1.2 newest). Results not yet seen count as steady, so a new check cannot start flapping on
    its second result."""
    padded = (False,) * (window - len(changes)) + changes
    weights = _flap_weights(window)
    return 100.0 * sum(w for w, c in zip(weights, padded, strict=True) if c) / sum(weights)


@functools.cache
def _flap_weights(window: int) -> tuple[float, ...]:
    return tuple(0.8 + 0.4 * i / max(window - 1, 1) for i in range(window))


def _is_flapping(was: bool, changes: tuple[bool, ...], policy: FlapPolicy) -> bool:
    share = _flap_share(changes, policy.window)
    return share >= policy.low if was else share > policy.high


def confirm(
    previous: CheckState | None, severity: str, at: float, policy: CheckPolicy, flap: FlapPolicy
) -> CheckState:
    """The check's next state after a result of `severity`."""
    if previous is None:
        previous = CheckState(hard=PENDING, soft=PENDING, attempts=0, since=at, last_at=at)
        changes: tuple[bool, ...] = ()  # a first result is no change
    else:
        changes = (*previous.changes, severity != previous.soft)[-flap.window :]
    flapping = _is_flapping(previous.flapping, changes, flap)
    step = CONFIRMATION[(severity == previous.hard, severity == previous.soft)]
    hard, since = previous.hard, previous.since
    attempts = 0
    if step is _Step.COUNT:
        attempts = previous.attempts + 1
    elif step is _Step.RESTART:
        attempts = 1
    needed = FIRST_CONFIRMATIONS.get((previous.hard, severity), policy.confirmations)
    if step is not _Step.SETTLE and attempts >= needed:
        hard, since, attempts = severity, at, 0
    return CheckState(hard, severity, attempts, since, at, changes, flapping)


def link_status(policy: LinkPolicy, tally: LinkTally) -> LinkStatus | None:
    """None until every deciding check is confirmed: a half-known link has no status yet."""
    if tally.known < len(policy.deciding_checks):
        return None
    return LINK_STATUS_OF_SEVERITY[tally.worst()]


def group_status(policy: GroupPolicy, links: Mapping[str, LinkStatus]) -> GroupStatus | None:
    """None until every link has a status. Only a link known to be up counts as up: an
    emergency network is never assumed resilient. Nor is it declared DOWN on links nobody can
    see: when unknown links could make up for the missing ones, it is UNKNOWN. A single-link
    group is AT RISK by nature."""
    if any(link not in links for link in policy.link_ids):
        return None
    up = sum(1 for link in policy.link_ids if links[link] is LinkStatus.UP)
    if up < policy.min_up:
        unknown = sum(1 for link in policy.link_ids if links[link] is LinkStatus.UNKNOWN)
        return GroupStatus.UNKNOWN if up + unknown >= policy.min_up else GroupStatus.DOWN
    if up == policy.min_up:
        return GroupStatus.AT_RISK
    if up == len(policy.link_ids):
        return GroupStatus.RESILIENT
    return GroupStatus.DEGRADED


def _works(severity: str) -> bool:
    return severity != PENDING and LINK_STATUS_OF_SEVERITY[Severity[severity]] is LinkStatus.UP


def _holds_back(subject_id: str, topology: Topology, state: EngineState) -> bool:
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
    holding = {parent: _holds_back(parent, topology, state) for parent in topology.parent_ids}

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
        flapping = _tally(state, subject_id).flapping > 0
    else:
        links = topology.groups[subject_id].link_ids
        flapping = any(_tally(state, link).flapping for link in links)
    reasons = []
    if flapping:
        reasons.append(Suppression.FLAPPING)
    if subject_id in state.unreachable or at < state.reachable_since.get(subject_id, -math.inf):
        reasons.append(Suppression.UNREACHABLE)
    if topology.in_maintenance(_own_ids(topology, subject, subject_id), at):
        reasons.append(Suppression.MAINTENANCE)
    return tuple(reasons)


def _own_ids(topology: Topology, subject: Subject, subject_id: str) -> tuple[str, ...]:
    """The subject's id and those of what contains it: what a maintenance window may name."""
    if subject is Subject.CHECK:
        check = topology.checks[subject_id]
        return (subject_id, check.link_id, check.site_id)
    if subject is Subject.LINK:
        return (subject_id, topology.links[subject_id].site_id)
    site_id = topology.groups[subject_id].site_id
    return (subject_id, site_id) if site_id else (subject_id,)


def _deciding_checks(topology: Topology, subject: Subject, subject_id: str) -> Iterable[str]:
    if subject is Subject.CHECK:
        return (subject_id,)
    if subject is Subject.LINK:
        return topology.links[subject_id].deciding_checks
    return (
        check_id
        for link_id in topology.groups[subject_id].link_ids
        for check_id in topology.links[link_id].deciding_checks
    )


def _tally(state: EngineState, link_id: str) -> LinkTally:
    return state.tallies.get(link_id, _NO_TALLY)


_NO_TALLY = LinkTally()


# --- the step ------------------------------------------------------------------------------


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
    after = confirm(before, result.severity.name, at, policy, topology.flap)
    link = topology.links[policy.link_id]
    tallies, links, groups = state.tallies, state.links, state.groups
    if topology.decides(policy.check_id, link.link_id):
        old_tally = _tally(state, link.link_id)
        tally = old_tally.moved(before, after)
        if tally is not old_tally:
            tallies = tallies.set(link.link_id, tally)
            status = link_status(link, tally)
            if status is not None and links.get(link.link_id) is not status:
                links = links.set(link.link_id, status)
                for group in topology.groups_of(link.link_id):
                    group_now = group_status(group, links)
                    if group_now is not None and groups.get(group.group_id) is not group_now:
                        groups = groups.set(group.group_id, group_now)
    new = EngineState(
        state.checks.set(policy.check_id, after),
        links,
        groups,
        state.unreachable,
        tallies,
        state.held,
        state.reachable_since,
    )
    parents = topology.parent_ids
    if (
        policy.check_id in parents
        and _holds_back(policy.check_id, topology, state)
        != _holds_back(policy.check_id, topology, new)
    ) or (
        link.link_id in parents
        and _holds_back(link.link_id, topology, state) != _holds_back(link.link_id, topology, new)
    ):
        # Only whether a parent works can change what sits behind it.
        now = unreachable(topology, new)
        since = new.reachable_since
        for subject in new.unreachable - now:
            since = since.set(subject, at)
        new = replace(new, unreachable=now, reachable_since=since)
    events = [
        *_check_events(topology, new, policy, before, after, result),
        *_link_and_group_events(topology, state, new, link, policy.check_id, at),
    ]
    new, released = _follow_holds(topology, new, events, policy, link, result)
    return new, (*events, *released)


def _check_events(
    topology: Topology,
    new: EngineState,
    policy: CheckPolicy,
    before: CheckState | None,
    after: CheckState,
    result: ProbeResult,
) -> list[Event]:
    at, summary = after.last_at, result.summary()
    previous_hard = before.hard if before else PENDING

    def event(
        kind: EventKind, old: str, now: str, cause: str, suppressed: tuple[Suppression, ...] = ()
    ) -> Event:
        return Event(
            at, Subject.CHECK, policy.check_id, policy.site_id, kind, old, now, cause, suppressed
        )

    events = []
    if before is not None and after.flapping != before.flapping:
        kind = EventKind.FLAPPING_START if after.flapping else EventKind.FLAPPING_STOP
        events.append(event(kind, before.hard, after.hard, summary))
    if after.hard != previous_hard:
        reasons = hold_reasons(topology, new, Subject.CHECK, policy.check_id, at)
        events.append(event(EventKind.HARD, previous_hard, after.hard, summary, reasons))
    elif after.is_soft and (before is None or after.soft != before.soft):
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
    """Changes of the link and its groups, the first status of each (from PENDING) included."""
    events = []
    old_link, new_link = old.links.get(link.link_id), new.links.get(link.link_id)
    if new_link is None or new_link == old_link:
        return events
    events.append(
        Event(
            at,
            Subject.LINK,
            link.link_id,
            link.site_id,
            EventKind.HARD,
            old_link or PENDING,
            new_link,
            _deciding_cause(link, new, check_id),
            hold_reasons(topology, new, Subject.LINK, link.link_id, at),
        )
    )
    for group in topology.groups_of(link.link_id):
        old_group, new_group = old.groups.get(group.group_id), new.groups.get(group.group_id)
        if new_group is not None and new_group != old_group:
            statuses = [new.links.get(lid) for lid in group.link_ids]
            up = statuses.count(LinkStatus.UP)
            unknown = statuses.count(LinkStatus.UNKNOWN)
            counted = links_up_text(up, unknown, len(group.link_ids), group.min_up)
            events.append(
                Event(
                    at,
                    Subject.GROUP,
                    group.group_id,
                    group.site_id,
                    EventKind.HARD,
                    old_group or PENDING,
                    new_group,
                    f"link {link.link_id} {new_link}; {counted}",
                    hold_reasons(topology, new, Subject.GROUP, group.group_id, at),
                )
            )
    return events


def _deciding_cause(link: LinkPolicy, state: EngineState, check_id: str) -> str:
    """`site/link/check is CRIT`: a check at the link's worst, the one just seen if it is."""
    worst = _tally(state, link.link_id).worst().name
    if state.checks[check_id].hard != worst:
        check_id = next(c for c in link.deciding_checks if state.checks[c].hard == worst)
    return f"{check_id} is {worst}"


def _follow_holds(
    topology: Topology,
    state: EngineState,
    events: list[Event],
    policy: CheckPolicy,
    link: LinkPolicy,
    result: ProbeResult,
) -> tuple[EngineState, list[Event]]:
    """Remember the problems this step's changes held; announce the held problems of the
    check, its link and their groups that nothing holds any more and fresh results confirm."""
    if not events and not state.held:
        return state, []
    at, held = result.started_at, state.held
    changed: set[HoldKey] = set()
    for event in events:
        if event.kind is EventKind.HARD:
            key = (event.subject, event.subject_id)
            changed.add(key)
            if event.suppressed and event.after not in HEALTHY:
                held = held.set(key, event.suppressed)
            else:
                held = held.delete(key)
    candidates: list[HoldKey] = [(Subject.CHECK, policy.check_id), (Subject.LINK, link.link_id)]
    candidates += [(Subject.GROUP, group.group_id) for group in topology.groups_of(link.link_id)]
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
    return (state if held is state.held else replace(state, held=held)), released


def _confirmed_afresh(topology: Topology, state: EngineState, key: HoldKey) -> bool:
    """Every check deciding the subject agrees with its confirmed state in a result taken
    while nothing held the subject: the state is what trustworthy results say, not what a
    probe behind a down parent or inside a maintenance window said."""
    subject, subject_id = key
    ids = _own_ids(topology, subject, subject_id)
    reachable_since = state.reachable_since.get(subject_id, -math.inf)
    return all(
        (check := state.checks.get(check_id)) is not None
        and not check.is_soft
        and check.last_at >= reachable_since
        and not topology.in_maintenance(ids, check.last_at)
        for check_id in _deciding_checks(topology, subject, subject_id)
    )


def _release(
    topology: Topology,
    state: EngineState,
    key: HoldKey,
    reasons: tuple[Suppression, ...],
    result: ProbeResult,
) -> Event:
    subject, subject_id = key
    if subject is Subject.CHECK:
        site_id, now = topology.checks[subject_id].site_id, state.checks[subject_id].hard
    elif subject is Subject.LINK:
        site_id, now = topology.links[subject_id].site_id, str(state.links[subject_id])
    else:
        site_id, now = topology.groups[subject_id].site_id, str(state.groups[subject_id])
    why = " and ".join(RELEASED_BECAUSE[reason] for reason in reasons)
    cause = f"still {now} now that {why}"
    if subject is Subject.CHECK:
        cause += f": {result.summary()}"
    return Event(result.started_at, subject, subject_id, site_id, EventKind.HARD, now, now, cause)


_KNOWN_STATES: Mapping[Subject, frozenset[str]] = MappingProxyType(
    {
        Subject.CHECK: frozenset(Severity.__members__),
        Subject.LINK: frozenset(LinkStatus),
        Subject.GROUP: frozenset(GroupStatus),
    }
)


def restore(topology: Topology, last_hard: Iterable[Event] = ()) -> EngineState:
    """The engine's state at start: the confirmed states of a previous run from its last HARD
    event per subject, so a restart neither forgets a problem nor announces it again, and what
    is unreachable before anything is known (everything behind a parent: none is known yet).
    Only subjects this topology evaluates are restored; a state this version does not know
    (written by a newer one) is left PENDING rather than guessed."""
    checks: dict[str, CheckState] = {}
    links: dict[str, LinkStatus] = {}
    groups: dict[str, GroupStatus] = {}
    held: dict[HoldKey, tuple[Suppression, ...]] = {}
    for event in sorted(last_hard, key=lambda e: e.at):
        if event.kind is not EventKind.HARD or event.after not in _KNOWN_STATES[event.subject]:
            continue
        if event.subject is Subject.CHECK and event.subject_id in topology.checks:
            checks[event.subject_id] = CheckState(event.after, event.after, 0, event.at, event.at)
        elif event.subject is Subject.LINK and event.subject_id in topology.evaluated_links:
            links[event.subject_id] = LinkStatus(event.after)
        elif event.subject is Subject.GROUP and event.subject_id in topology.evaluated_groups:
            groups[event.subject_id] = GroupStatus(event.after)
        else:
            continue
        key = (event.subject, event.subject_id)
        if event.suppressed and event.after not in HEALTHY:
            held[key] = event.suppressed
        else:
            held.pop(key, None)
    tallies: dict[str, LinkTally] = {}
    for check_id, check in checks.items():
        link_id = topology.checks[check_id].link_id
        if topology.decides(check_id, link_id):
            tallies[link_id] = tallies.get(link_id, _NO_TALLY).moved(None, check)
    state = EngineState(
        PersistentMap(checks),
        PersistentMap(links),
        PersistentMap(groups),
        tallies=PersistentMap(tallies),
        held=PersistentMap(held),
    )
    return replace(state, unreachable=unreachable(topology, state))
