"""The state engine: a pure function from (topology, previous state, result) to (state, events).

No I/O, no clock: time comes from the result. It turns raw results into what matters to an
emergency network: confirmed (hard) states after `retries` agreeing results, flapping, the state
of each link, how much redundancy each group has left, and which subjects are unreachable
because something they depend on is down. Every change is an `Event` with before, after and
cause. The tables below are the rules; the functions only look them up.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from monitor.events import Event, EventKind, Subject, Suppression
from monitor.model import ProbeResult, Severity
from monitor.persistent import PersistentMap

PENDING = "PENDING"


class LinkStatus(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class GroupStatus(enum.StrEnum):
    RESILIENT = "RESILIENT"  # every link up
    DEGRADED = "DEGRADED"  # redundancy reduced, more than min_up still up
    AT_RISK = "AT RISK"  # exactly min_up up: one more failure is an outage
    DOWN = "DOWN"  # fewer than min_up up


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


# --- topology: what the inventory says, reduced to what the rules need --------------------


@dataclass(frozen=True)
class FlapPolicy:
    """Nagios-style flap detection: the weighted share of state changes over the last `window`
    results; flapping starts above `high` percent and ends below `low` percent."""

    window: int = 21
    high: float = 50.0
    low: float = 25.0


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
    def _groups_by_link(self) -> dict[str, tuple[GroupPolicy, ...]]:
        index: dict[str, list[GroupPolicy]] = {}
        for group in self.groups.values():
            for link_id in group.link_ids:
                index.setdefault(link_id, []).append(group)
        return {link_id: tuple(groups) for link_id, groups in index.items()}

    @functools.cached_property
    def parents(self) -> dict[str, tuple[str, ...]]:
        """What each subject that depends on anything depends on; a check inherits its link's
        dependencies. Subjects with none are left out: they can never be unreachable."""
        found = {link.link_id: link.depends_on for link in self.links.values() if link.depends_on}
        for check in self.checks.values():
            inherited = check.depends_on + self.links[check.link_id].depends_on
            if inherited:
                found[check.check_id] = inherited
        return found

    @functools.cached_property
    def parent_ids(self) -> frozenset[str]:
        """Every subject something depends on: only their going down or up matters."""
        return frozenset(parent for parents in self.parents.values() for parent in parents)

    @functools.cached_property
    def _deciding(self) -> dict[str, frozenset[str]]:
        return {link.link_id: frozenset(link.deciding_checks) for link in self.links.values()}


# --- state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckState:
    hard: str  # confirmed severity name, or PENDING before the first result
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
    """How many of a link's deciding checks are confirmed at each severity, kept up to date
    one result at a time so a link's state never needs a walk over all its checks."""

    known: int = 0
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)  # by Severity value: OK, WARN, CRIT, UNKNOWN

    def moved(self, old: str | None, new: str) -> LinkTally:
        counts = list(self.counts)
        known = self.known
        if old is None or old == PENDING:
            known += 1
        else:
            counts[Severity[old].value] -= 1
        counts[Severity[new].value] += 1
        return LinkTally(known, (counts[0], counts[1], counts[2], counts[3]))

    def worst(self) -> Severity:
        return Severity.worst(s for s in Severity if self.counts[s.value])


@dataclass(frozen=True)
class EngineState:
    checks: Mapping[str, CheckState] = field(default_factory=PersistentMap)
    links: Mapping[str, LinkStatus] = field(default_factory=PersistentMap)  # once fully known
    groups: Mapping[str, GroupStatus] = field(default_factory=PersistentMap)  # once fully known
    unreachable: frozenset[str] = frozenset()  # check and link ids behind a down parent
    tallies: Mapping[str, LinkTally] = field(default_factory=PersistentMap)


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


def _flap_share(changes: tuple[bool, ...], window: int) -> float:
    """Weighted percentage of changes over the window, recent ones weighing more (0.8 oldest ..
    1.2 newest). Results not yet seen count as steady, so a new check cannot start flapping on
    its second result."""
    padded = (False,) * (window - len(changes)) + changes
    weights = [0.8 + 0.4 * i / max(window - 1, 1) for i in range(window)]
    return 100.0 * sum(w for w, c in zip(weights, padded, strict=True) if c) / sum(weights)


def _is_flapping(was: bool, changes: tuple[bool, ...], policy: FlapPolicy) -> bool:
    share = _flap_share(changes, policy.window)
    return share >= policy.low if was else share > policy.high


def confirm(
    previous: CheckState | None, severity: str, at: float, policy: CheckPolicy, flap: FlapPolicy
) -> CheckState:
    """The check's next state after a result of `severity`."""
    if previous is None:
        # Nothing was known: the first result is the state (there is nothing to confirm against).
        return CheckState(hard=severity, soft=severity, attempts=0, since=at, last_at=at)
    changes = (*previous.changes, severity != previous.soft)[-flap.window :]
    flapping = _is_flapping(previous.flapping, changes, flap)
    step = CONFIRMATION[(severity == previous.hard, severity == previous.soft)]
    hard, since = previous.hard, previous.since
    attempts = 0
    if step is _Step.COUNT:
        attempts = previous.attempts + 1
    elif step is _Step.RESTART:
        attempts = 1
    if step is not _Step.SETTLE and attempts >= policy.confirmations:
        hard, since, attempts = severity, at, 0
    return CheckState(hard, severity, attempts, since, at, changes, flapping)


def link_status(policy: LinkPolicy, tally: LinkTally) -> LinkStatus | None:
    """None until every deciding check has reported: a half-known link has no status yet."""
    if tally.known < len(policy.deciding_checks):
        return None
    return LINK_STATUS_OF_SEVERITY[tally.worst()]


def group_status(policy: GroupPolicy, links: Mapping[str, LinkStatus]) -> GroupStatus | None:
    """None until every link has a status. Only a link known to be up counts as up: an
    emergency network is never assumed resilient. A single-link group is AT RISK by nature."""
    if any(link not in links for link in policy.link_ids):
        return None
    up = sum(1 for link in policy.link_ids if links[link] is LinkStatus.UP)
    if up < policy.min_up:
        return GroupStatus.DOWN
    if up == policy.min_up:
        return GroupStatus.AT_RISK
    if up == len(policy.link_ids):
        return GroupStatus.RESILIENT
    return GroupStatus.DEGRADED


def _is_down(subject_id: str, state: EngineState) -> bool:
    if subject_id in state.links:
        return state.links[subject_id] is LinkStatus.DOWN
    check = state.checks.get(subject_id)
    return check is not None and check.hard == Severity.CRIT.name


def unreachable(topology: Topology, state: EngineState) -> frozenset[str]:
    """Checks and links behind a parent that is down (or itself unreachable). A check inherits
    its link's dependencies: everything at a radio site sits behind its backhaul router."""
    parents = topology.parents
    memo: dict[str, bool] = {}

    def blocked(subject: str, trail: frozenset[str]) -> bool:
        if subject not in memo:
            memo[subject] = any(
                parent not in trail
                and (_is_down(parent, state) or blocked(parent, trail | {subject}))
                for parent in parents.get(subject, ())
            )
        return memo[subject]

    return frozenset(subject for subject in parents if blocked(subject, frozenset()))


# --- the step ------------------------------------------------------------------------------


def _suppressions(
    topology: Topology,
    state: EngineState,
    subject_ids: tuple[str, ...],
    at: float,
    flapping: bool = False,
) -> tuple[Suppression, ...]:
    reasons = []
    if flapping:
        reasons.append(Suppression.FLAPPING)
    if subject_ids[0] in state.unreachable:
        reasons.append(Suppression.UNREACHABLE)
    if topology.in_maintenance(subject_ids, at):
        reasons.append(Suppression.MAINTENANCE)
    return tuple(reasons)


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
    hard_changed = before is None or before.hard != after.hard
    if hard_changed and topology.decides(policy.check_id, link.link_id):
        tally = tallies.get(link.link_id, LinkTally()).moved(before and before.hard, after.hard)
        tallies = tallies.set(link.link_id, tally)
        status = link_status(link, tally)
        if status is not None and links.get(link.link_id) is not status:
            links = links.set(link.link_id, status)
            for group in topology.groups_of(link.link_id):
                group_now = group_status(group, links)
                if group_now is not None and groups.get(group.group_id) is not group_now:
                    groups = groups.set(group.group_id, group_now)
    new = EngineState(
        state.checks.set(policy.check_id, after), links, groups, state.unreachable, tallies
    )
    was_down = before is not None and before.hard == Severity.CRIT.name
    check_flipped = (after.hard == Severity.CRIT.name) != was_down
    link_flipped = links is not state.links
    if (check_flipped and policy.check_id in topology.parent_ids) or (
        link_flipped and link.link_id in topology.parent_ids
    ):
        # Only a parent's going down or up can change what sits behind it.
        new = replace(new, unreachable=unreachable(topology, new))
    events = [
        *_check_events(topology, new, policy, before, after, result),
        *_link_and_group_events(topology, state, new, link, policy.check_id, at),
    ]
    return new, tuple(events)


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
    ids = (policy.check_id, policy.link_id, policy.site_id)

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
    if after.hard != previous_hard and not (before is None and after.hard == Severity.OK.name):
        # A first result that is OK says nothing new; a first problem is news.
        events.append(
            event(
                EventKind.HARD,
                previous_hard,
                after.hard,
                summary,
                _suppressions(topology, new, ids, at, after.flapping),
            )
        )
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
    """Changes of an already-known link or group; the first status of each is not news."""
    events = []
    old_link, new_link = old.links.get(link.link_id), new.links.get(link.link_id)
    if old_link is not None and new_link != old_link:
        events.append(
            Event(
                at,
                Subject.LINK,
                link.link_id,
                link.site_id,
                EventKind.HARD,
                old_link,
                new_link,
                f"{check_id} is {new.checks[check_id].hard}",
                _suppressions(topology, new, (link.link_id, link.site_id), at),
            )
        )
    for group in topology.groups_of(link.link_id):
        old_group, new_group = old.groups.get(group.group_id), new.groups.get(group.group_id)
        if old_group is not None and new_group != old_group:
            ids = (group.group_id, group.site_id) if group.site_id else (group.group_id,)
            up = sum(1 for lid in group.link_ids if new.links.get(lid) is LinkStatus.UP)
            cause = (
                f"link {link.link_id} {new_link}; {up} of {len(group.link_ids)} links up "
                f"(needs {group.min_up})"
            )
            events.append(
                Event(
                    at,
                    Subject.GROUP,
                    group.group_id,
                    group.site_id,
                    EventKind.HARD,
                    old_group,
                    new_group,
                    cause,
                    _suppressions(topology, new, ids, at),
                )
            )
    return events


def restore(topology: Topology, last_hard: Iterable[Event]) -> EngineState:
    """The confirmed states of a previous run, from its last HARD event per subject, so a
    restart neither forgets a problem nor announces it again."""
    state = EngineState()
    for event in sorted(last_hard, key=lambda e: e.at):
        if event.kind is not EventKind.HARD:
            continue
        if event.subject is Subject.CHECK and event.subject_id in topology.checks:
            checks = state.checks.set(
                event.subject_id, CheckState(event.after, event.after, 0, event.at, event.at)
            )
            state = replace(state, checks=checks)
        elif event.subject is Subject.LINK and event.subject_id in topology.links:
            state = replace(state, links=state.links.set(event.subject_id, LinkStatus(event.after)))
        elif event.subject is Subject.GROUP and event.subject_id in topology.groups:
            groups = state.groups.set(event.subject_id, GroupStatus(event.after))
            state = replace(state, groups=groups)
    tallies: dict[str, LinkTally] = {}
    for check_id, check in state.checks.items():
        link_id = topology.checks[check_id].link_id
        if topology.decides(check_id, link_id):
            tallies[link_id] = tallies.get(link_id, LinkTally()).moved(None, check.hard)
    state = replace(state, tallies=PersistentMap(tallies))
    return replace(state, unreachable=unreachable(topology, state))
