"""Path diversity as observed: where the routes that `path` checks trace for the links of one
redundancy group converge, and when a link's route changes. Pure: no I/O, no clock.

Two links are only as diverse as their routes. Each `path` result gives a route (the hop
addresses, "*" for a silent hop, "a|b" for a load-balanced one); the latest route a check
reached its destination by is kept. Within a group, an address that the routes of two or more
links pass beyond each link's own `edge_hops` (its router, its carrier's first hop: shared or not,
they are the link's own) is a convergence point: "site/a and site/b pass 198.51.100.1 at hop 3".
The destination of a trace is not one: two links to one data centre meet there by design.

A route that changes is an event of its link (EventKind.PATH_CHANGE, before and after the
routes): a reroute after a failover often removes diversity without anyone noticing. Silent hops
and load-balanced hops that share an address are no change; a trace that does not reach its
destination is the check's own problem (CRIT), not a new route.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.config.inventory import Inventory
from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import ObservationValue, ProbeResult
from monitor.core.persistent import PersistentMap
from monitor.output.report_paths import GroupPaths, TracedRoute

if TYPE_CHECKING:  # a reader is handed in: a one-shot run, which has none, loads no store
    from monitor.store.queries import HistoryReader

PATH_KIND = "path"
SILENT = "*"
ALSO = "|"

Hop = frozenset[str]  # the addresses that answered at one TTL; empty: silent


@dataclass(frozen=True, slots=True)
class Route:
    """A route a check traced to `destination`: its hops in order."""

    destination: str
    hops: tuple[Hop, ...]

    @classmethod
    def of(cls, result: ProbeResult) -> Route | None:
        """The route of a path result that reached its destination; None for any other."""
        return cls.observed(result.check.kind, result.observations)

    @classmethod
    def observed(cls, kind: str, observed: Mapping[str, ObservationValue]) -> Route | None:
        """The route of a path check's observations (a result's, or a stored one's)."""
        path, destination = observed.get("path"), observed.get("address")
        if kind != PATH_KIND or observed.get("destination_reached") is not True:
            return None
        if not isinstance(path, str) or not isinstance(destination, str):
            return None
        hops = tuple(
            frozenset() if hop == SILENT else frozenset(hop.split(ALSO)) for hop in path.split()
        )
        return cls(destination, hops)

    def text(self) -> str:
        return " ".join(ALSO.join(sorted(hop)) if hop else SILENT for hop in self.hops)

    def differs_from(self, other: Route) -> int | None:
        """The first hop at which this is another route than `other`, None if it is not: a hop
        where both heard answers and no address is common, or the hop one route ends after.
        A hop silent in either says nothing; another destination is another route."""
        if self.destination != other.destination:
            return 1
        pairs = zip(self.hops, other.hops, strict=False)
        for number, (mine, theirs) in enumerate(pairs, start=1):
            if mine and theirs and not mine & theirs:
                return number
        if len(self.hops) != len(other.hops):
            return min(len(self.hops), len(other.hops)) + 1
        return None

    def beyond(self, edge_hops: int) -> Iterable[tuple[str, int]]:
        """(address, hop number) past the first `edge_hops`, the destination left out."""
        for number, hop in enumerate(self.hops, start=1):
            if number > edge_hops:
                yield from ((address, number) for address in sorted(hop - {self.destination}))


@dataclass(frozen=True, slots=True)
class Convergence:
    """An address the routes of several links of one group pass: at which hop of each."""

    address: str
    links: tuple[tuple[str, int], ...]  # (link id, hop number), by link id

    def describe(self) -> str:
        """ "site/a and site/b pass 198.51.100.1 at hop 3" (or "at hops 3 and 4")."""
        names = [link for link, _ in self.links]
        numbers = sorted({number for _, number in self.links})
        who = ", ".join(names[:-1]) + f" and {names[-1]}"
        if len(numbers) == 1:
            where = f"at hop {numbers[0]}"
        else:
            where = "at hops " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
        return f"{who} pass {self.address} {where}"


@dataclass(frozen=True)
class PathPolicy:
    """What the inventory says about paths: each link's edge hops, which link each path check
    belongs to, and the links of each group."""

    edge_hops: Mapping[str, int] = field(default_factory=dict)  # link id: hops of its own
    link_of: Mapping[str, str] = field(default_factory=dict)  # path check id: link id
    site_of: Mapping[str, str] = field(default_factory=dict)  # link id: site id
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group: link ids


def path_policy(inventory: Inventory) -> PathPolicy:
    links = [link for site in inventory.sites for link in site.links]
    return PathPolicy(
        edge_hops={link.full_id: link.edge_hops for link in links},
        link_of={
            check.ref.check_id: link.full_id
            for link in links
            for check in link.checks
            if check.ref.kind == PATH_KIND
        },
        site_of={link.full_id: link.site_id for link in links},
        groups={group.id: group.link_ids for group in inventory.resilience.groups},
    )


@dataclass(frozen=True, slots=True)
class PathState:
    routes: PersistentMap[str, Route] = field(default_factory=PersistentMap)  # by check id


def observe(
    policy: PathPolicy, state: PathState, result: ProbeResult
) -> tuple[PathState, tuple[Event, ...]]:
    """The state once `result` is taken, and the event of its link's route changing, if it
    did (none for a first route: nothing changed)."""
    check_id = result.check.check_id
    link_id = policy.link_of.get(check_id)
    route = Route.of(result)
    if link_id is None or route is None:
        return state, ()
    before = state.routes.get(check_id)
    if before == route:
        return state, ()
    after = PathState(routes=state.routes.set(check_id, route))
    first = None if before is None else route.differs_from(before)
    if before is None or first is None:
        return after, ()
    return after, (_changed(policy, after, result, link_id, before, route, first),)


def observed(policy: PathPolicy, results: Iterable[ProbeResult]) -> PathState:
    """The routes a sweep's results show."""
    state = PathState()
    for result in results:
        state, _ = observe(policy, state, result)
    return state


def _changed(
    policy: PathPolicy, state: PathState, result: ProbeResult, link_id: str, before: Route,
    route: Route, first: int,
) -> Event:  # fmt: skip
    cause = (
        f"path to {route.destination} changed at hop {first}: "
        f"{len(before.hops)} hops -> {len(route.hops)}"
    )
    meeting = [
        found.describe()
        for group, links in policy.groups.items()
        if link_id in links
        for found in convergences(policy, state, group)
        if any(link == link_id for link, _ in found.links)
    ]
    if meeting:
        cause += "; now " + "; ".join(meeting)
    return Event(
        at=result.started_at,
        subject=Subject.LINK,
        subject_id=link_id,
        site_id=policy.site_of.get(link_id, result.check.site_id),
        kind=EventKind.PATH_CHANGE,
        before=before.text(),
        after=route.text(),
        cause=cause,
    )


def convergences(policy: PathPolicy, state: PathState, group_id: str) -> tuple[Convergence, ...]:
    """Where the latest routes of the group's links meet beyond their edge hops, the nearest
    first; nothing for a group with fewer than two links traced."""
    links = policy.groups.get(group_id, ())
    passing: dict[str, dict[str, int]] = {}  # address: link id: the nearest hop it is at
    for check_id, route in state.routes.items():
        link_id = policy.link_of.get(check_id)
        if link_id not in links:
            continue
        for address, number in route.beyond(policy.edge_hops.get(link_id, 0)):
            at = passing.setdefault(address, {})
            at[link_id] = min(number, at.get(link_id, number))
    found = [
        Convergence(address, tuple(sorted(at.items())))
        for address, at in passing.items()
        if len(at) > 1
    ]
    return tuple(sorted(found, key=lambda c: (min(n for _, n in c.links), c.address)))


def hops_of(policy: PathPolicy, state: PathState, link_id: str) -> tuple[tuple[str, Route], ...]:
    """The latest route of each path check of `link_id`, by check id: what a detail pane lists."""
    return tuple(
        (check_id, route)
        for check_id, route in sorted(state.routes.items())
        if policy.link_of.get(check_id) == link_id
    )


# The results of a check a report looks back through for one that reached its destination.
_REPORT_LOOKBACK = 50


def report_paths(
    inventory: Inventory, store: HistoryReader, since: float, until: float
) -> tuple[GroupPaths, ...]:
    """`commwatch report`'s paths: per group whose links path checks trace, where their latest
    routes in [since, until) converge, each route, and its link's path changes."""
    policy = path_policy(inventory)
    state, traced_at = PathState(), {}
    for check_id in policy.link_of:
        stored = store.recent_results(check_id, limit=_REPORT_LOOKBACK, since=since)
        for result in reversed([r for r in stored if r.started_at < until]):
            route = Route.observed(result.kind, result.observations)
            if route is not None:
                state = PathState(routes=state.routes.set(check_id, route))
                traced_at[check_id] = result.started_at
                break
    kinds = [EventKind.PATH_CHANGE]
    changes = Counter(e.subject_id for e in store.events_since(since, until, kinds=kinds))
    groups = []
    for group_id, links in policy.groups.items():
        routes = tuple(
            TracedRoute(check_id, link_id, route.destination, route.text(), traced_at[check_id],
                        changes[link_id])
            for link_id in links
            for check_id, route in hops_of(policy, state, link_id)
        )  # fmt: skip
        if routes:
            meeting = tuple(c.describe() for c in convergences(policy, state, group_id))
            groups.append(GroupPaths(group_id, meeting, routes))
    return tuple(groups)
