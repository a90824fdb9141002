"""The dashboard's model: every check's row state, in the inventory's site/link/check tree, the
state engine's view (confirmed and soft states, links, redundancy groups, held notifications),
plus what is only UI state (acknowledgements). No Textual here: the widgets ask it which rows
to show and in what order, and it answers from plain data.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from monitor.config.inventory import Check, Group, Inventory, Link, Site
from monitor.core.events import PENDING, Event, EventKind, Subject, Suppression
from monitor.core.model import ProbeResult, Severity
from monitor.engine.pipeline import NOT_EVALUATED, GroupSummary, group_summaries, topology_of
from monitor.engine.state import CheckState, EngineState, GroupStatus, LinkStatus
from tui.state import HistoryLine, RowState, advance, finished_at, preloaded

T = TypeVar("T")
Status = tuple[Severity | None, bool]  # a check's severity, and whether it is acknowledged


class Sort(enum.Enum):
    NAME = "name"
    SEVERITY = "severity"
    AGE = "age"


class Level(enum.Enum):
    GROUP = "group"  # a named redundancy group, across sites
    SITE = "site"
    LINK = "link"
    CHECK = "check"


@dataclass(frozen=True, slots=True)
class NamedGroup:
    """A redundancy group of the inventory's `groups:`, with the links of it this board shows."""

    group: Group
    links: tuple[Link, ...]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the tree: a named group, a site, one of its links, or one of that link's
    checks."""

    key: str
    level: Level
    site: Site | None = None  # None only for a named group
    link: Link | None = None
    check: Check | None = None
    group: NamedGroup | None = None

    @property
    def links(self) -> tuple[Link, ...]:
        """The links whose state the row sums up."""
        if self.link is not None:
            return (self.link,)
        if self.site is not None:
            return self.site.links
        assert self.group is not None
        return self.group.links

    @property
    def checks(self) -> tuple[Check, ...]:
        if self.check is not None:
            return (self.check,)
        return tuple(check for link in self.links for check in link.checks)

    @property
    def subject_id(self) -> str:
        """The state engine's id of what the row shows: check, link, or group (a site's own
        group has the site's id)."""
        if self.check is not None:
            return self.check.ref.check_id
        if self.link is not None:
            return self.link.full_id
        if self.site is not None:
            return self.site.id
        assert self.group is not None
        return self.group.group.id


def site_key(site: Site) -> str:
    return f"site:{site.id}"


def link_key(link: Link) -> str:
    return f"link:{link.site_id}/{link.id}"


def group_key(group: Group) -> str:
    return f"group:{group.id}"


class Board:
    def __init__(self, inventory: Inventory, checks: Iterable[Check] | None = None) -> None:
        self.inventory = inventory
        wanted = None if checks is None else {c.ref.check_id for c in checks}
        self.sites = _prune(inventory.sites, wanted)
        self.checks = {
            check.ref.check_id: check
            for site in self.sites
            for link in site.links
            for check in link.checks
        }
        shown_links = {link.full_id: link for site in self.sites for link in site.links}
        self.named_groups = tuple(
            NamedGroup(group, links)
            for group in inventory.resilience.groups
            if not group.site_id
            and (links := tuple(shown_links[i] for i in group.link_ids if i in shown_links))
        )
        # The groups with a row here (a site's own, named ones): what the summary counts.
        self._group_ids = {site.id for site in self.sites} | {
            named.group.id for named in self.named_groups
        }
        self.states: dict[str, RowState] = {cid: RowState() for cid in self.checks}
        self.acked: set[str] = set()
        groups_of_link: dict[str, list[str]] = {}
        for named in self.named_groups:
            for link in named.links:
                groups_of_link.setdefault(link.full_id, []).append(group_key(named.group))
        # Checks per (severity, acknowledged), for all checks ("") and per group, site and
        # link row, kept as results arrive: a site can hold thousands of checks, and its row,
        # the summary and the sort ask for these on every batch.
        self._within = {
            cid: ("", site_key(site), link_key(link), *groups_of_link.get(link.full_id, ()))
            for site in self.sites
            for link in site.links
            for cid in (check.ref.check_id for check in link.checks)
        }
        self._tally: dict[str, Counter[Status]] = {}
        for keys in self._within.values():
            for key in keys:
                self._tally.setdefault(key, Counter())[(None, False)] += 1
        self._last_change: float | None = None
        # The state engine's view, once it runs (None: rows show raw results, and a site or link
        # the worst below it).
        self.engine: EngineState | None = None
        self.groups: dict[str, GroupSummary] = {}
        # What the selection can judge, and which checks decide each link.
        self._topology = topology_of(inventory, self.checks.values())
        self.confirmations = {cid: max(1, c.retries) for cid, c in self.checks.items()}
        # Why notifications about a subject are held, from its latest confirmed change.
        self._held: dict[str, tuple[Suppression, ...]] = {}
        self._haystacks = {
            cid: " ".join(
                (
                    cid,
                    check.kind,
                    check.ref.target,
                    check.description,
                    *check.ref.tags,
                )
            ).lower()
            for cid, check in self.checks.items()
        }
        self._names = {
            site.id: " ".join((site.id, site.name, *site.tags)).lower() for site in self.sites
        }
        self._names.update(
            {
                link_key(link): " ".join((link.id, link.name, link.role, link.medium)).lower()
                for site in self.sites
                for link in site.links
            }
        )
        self._names.update(
            {
                group_key(named.group): f"{named.group.id} {named.group.name}".lower()
                for named in self.named_groups
            }
        )

    # --- results in ------------------------------------------------------------------------

    def apply(
        self, results: Iterable[ProbeResult], engine: EngineState | None = None
    ) -> tuple[set[str], list[Event]]:
        """Fold results in arrival order, with the state engine's state after them when it
        runs: rows then show confirmed severities. Returns the checks whose row changed and,
        without an engine, the changes of severity (a first one too) as events, oldest first
        (the engine reports its own). A change of severity ends an acknowledgement: nobody
        has seen it yet."""
        touched: set[str] = set()
        events: list[Event] = []
        if engine is not None:
            before_unreachable = self.engine.unreachable if self.engine else frozenset()
            self.engine = engine
            self.groups = {
                g.group_id: g
                for g in group_summaries(self.inventory, self._topology, engine)
                if g.group_id in self._group_ids
            }
            # A parent going down changes its dependents' rows too.
            touched |= (before_unreachable ^ engine.unreachable) & self.checks.keys()
        for result in results:
            check_id = result.check.check_id
            previous = self.states.get(check_id)
            if previous is None:
                continue  # not a check this board shows
            severity = result.severity
            confirmed = self.check_state(check_id)
            if confirmed is not None and confirmed.hard != PENDING:
                severity = Severity[confirmed.hard]
            elif engine is None and previous.severity is not severity:
                events.append(_change(result, previous.severity))
            state = advance(previous, result, severity)
            if confirmed is not None and confirmed.hard != PENDING:
                # The engine knows when the confirmed state began (a batch may hold several).
                state = replace(state, changed_at=confirmed.since)
            before = self._status(check_id)
            self.states[check_id] = state
            touched.add(check_id)
            if state.severity is not previous.severity:
                self.acked.discard(check_id)
            self._recount(check_id, before)
            if state.changed_at is not None and (
                self._last_change is None or state.changed_at > self._last_change
            ):
                self._last_change = state.changed_at
        return touched, events

    def note(self, events: Iterable[Event]) -> None:
        """Remember why notifications are held, per subject, from its confirmed changes."""
        for event in events:
            if event.kind is EventKind.HARD:
                self._held[event.subject_id] = event.suppressed

    def preload(
        self,
        latencies: dict[str, list[float | None]],
        history: dict[str, list[HistoryLine]],
    ) -> set[str]:
        """Put stored points (older than anything this run has seen) in front of each
        check's sparkline and history. Returns the checks that changed."""
        touched = set()
        for check_id in (latencies.keys() | history.keys()) & self.states.keys():
            self.states[check_id] = preloaded(
                self.states[check_id], latencies.get(check_id, ()), history.get(check_id, ())
            )
            touched.add(check_id)
        return touched

    # --- questions the screen asks ---------------------------------------------------------

    def check_state(self, check_id: str) -> CheckState | None:
        return None if self.engine is None else self.engine.checks.get(check_id)

    def link_status(self, link: Link) -> LinkStatus | None:
        return None if self.engine is None else self.engine.links.get(link.full_id)

    def link_label(self, link: Link) -> str | None:
        """The link's state (None while pending, or without an engine), or NOT EVALUATED when
        the selection leaves out checks that decide it."""
        if link.full_id not in self._topology.evaluated_links:
            return NOT_EVALUATED
        status = self.link_status(link)
        return None if status is None else str(status)

    def group_status(self, row: Row) -> GroupSummary | None:
        """The redundancy group a site or named-group row shows."""
        return None if row.level in (Level.LINK, Level.CHECK) else self.groups.get(row.subject_id)

    def cause(self, row: Row) -> str:
        """Why a link is not up, or a group not resilient, in a few words: which of its links
        are not up (or which deciding checks fail), or what it still waits for. Empty when all
        is well, and without the state engine (nothing to explain)."""
        if self.engine is None or row.level is Level.CHECK:
            return ""
        if row.link is not None:
            return self.link_cause(row.link)
        group = self.group_status(row)
        if group is None or group.status is GroupStatus.RESILIENT:
            return ""
        if not group.evaluated:
            return group.describe()
        named = row.site is None  # its links are in several sites: full ids
        states = [
            (link.full_id if named else link.id, self.link_status(link)) for link in row.links
        ]
        if group.status is None:
            return "waiting for " + ", ".join(name for name, status in states if status is None)
        return ", ".join(
            f"{name} {status}" for name, status in states if status not in (LinkStatus.UP, None)
        )

    def link_cause(self, link: Link) -> str:
        status = self.link_status(link)
        if status is LinkStatus.UP:
            return ""
        deciding = self._topology.links[link.full_id].deciding_checks
        if link.full_id not in self._topology.evaluated_links:
            left_out = [cid for cid in deciding if cid not in self._topology.checks]
            return "not selected: " + ", ".join(cid.rsplit("/", 1)[-1] for cid in left_out)
        states = [(cid.rsplit("/", 1)[-1], self.check_state(cid)) for cid in deciding]
        if status is None:
            return "waiting for " + ", ".join(name for name, state in states if state is None)
        failing = (Severity.CRIT.name, Severity.UNKNOWN.name)
        return ", ".join(
            f"{name} {state.hard}" for name, state in states if state and state.hard in failing
        )

    def held(self, subject_id: str) -> tuple[str, ...]:
        """Why the subject's notifications are held: flapping and unreachable as the engine
        sees them now, maintenance as its latest confirmed change said."""
        reasons = list(self._held.get(subject_id, ()))
        check = self.check_state(subject_id)
        live = {
            Suppression.FLAPPING: check is not None and check.flapping,
            Suppression.UNREACHABLE: self.engine is not None
            and subject_id in self.engine.unreachable,
        }
        for reason, now in live.items():
            if now and reason not in reasons:
                reasons.append(reason)
            elif not now and reason in reasons:
                reasons.remove(reason)
        return tuple(str(reason) for reason in reasons)

    def is_problem(self, check_id: str) -> bool:
        severity = self.states[check_id].severity
        return severity is not None and severity is not Severity.OK

    def needs_attention(self, check_id: str) -> bool:
        return self.is_problem(check_id) and check_id not in self.acked

    def acknowledge(self, check_id: str) -> bool:
        """Toggle the acknowledgement of a problem; returns whether it is now acknowledged.
        An OK or pending check cannot be acknowledged."""
        before = self._status(check_id)
        if check_id in self.acked:
            self.acked.discard(check_id)
        elif self.is_problem(check_id):
            self.acked.add(check_id)
        self._recount(check_id, before)
        return check_id in self.acked

    def _status(self, check_id: str) -> Status:
        return self.states[check_id].severity, check_id in self.acked

    def _recount(self, check_id: str, before: Status) -> None:
        after = self._status(check_id)
        if after != before:
            for key in self._within[check_id]:
                tally = self._tally[key]
                tally[before] -= 1
                tally[after] += 1

    def rows_above(self, check_id: str) -> tuple[str, ...]:
        """The keys of the site, link and group rows whose state a check's result can change."""
        return self._within[check_id][1:]

    def row_status(self, row_key: str) -> Status:
        """What a site, link or group row shows without the state engine: the worst severity
        below needing attention; when nothing does, the worst acknowledged problem, marked as
        acknowledged (never OK while a problem is there); None while nothing has reported."""
        attention = [
            severity
            for (severity, acked), n in self._tally[row_key].items()
            if n and severity is not None and not acked
        ]
        worst = Severity.worst(attention) if attention else None
        if worst is not None and worst is not Severity.OK:
            return worst, False
        acked = [severity for (severity, ack), n in self._tally[row_key].items() if n and ack]
        if acked:
            return Severity.worst(s for s in acked if s is not None), True
        return worst, False

    def row_tally(self, row_key: str) -> Counter[Severity | None]:
        """Checks per severity (None: pending) below a site or link row."""
        tally: Counter[Severity | None] = Counter()
        for (severity, _), n in self._tally[row_key].items():
            tally[severity] += n
        return +tally

    def counts(self) -> Counter[str]:
        """Checks per severity name needing attention, plus 'OK', 'pending' and 'ack'."""
        counts: Counter[str] = Counter()
        for (severity, acked), n in self._tally[""].items():
            label = "pending" if severity is None else "ack" if acked else severity.name
            counts[label] += n
        return +counts

    def last_change(self) -> float | None:
        return self._last_change

    def rows(
        self,
        text: str = "",
        problems_only: bool = False,
        sort: Sort = Sort.NAME,
        keep: str | None = None,
    ) -> list[Row]:
        """The tree as shown: named groups first, then sites; checks that pass the filter and
        the problems toggle, under their link and site rows, each level ordered by `sort`.
        The row `keep` (the selected one) stays whatever the toggle says: a problem that
        recovers does not vanish from under the cursor."""
        needle = text.strip().lower()
        rows: list[Row] = []
        for named in self._ordered(
            self.named_groups, sort, _group_checks, lambda g: g.group.name or g.group.id
        ):
            key, checks = group_key(named.group), _group_checks(named)
            wanted = not problems_only or any(self.is_problem(c.ref.check_id) for c in checks)
            matches = not needle or (
                needle in self._names[key] or any(needle in self._haystack(c) for c in checks)
            )
            if matches and (wanted or key == keep):
                rows.append(Row(key, Level.GROUP, group=named))
        for site in self._ordered(self.sites, sort, _site_checks, lambda s: s.id):
            site_rows: list[Row] = []
            for link in self._ordered(site.links, sort, lambda ln: ln.checks, lambda ln: ln.id):
                shown = [
                    check
                    for check in link.checks
                    if (
                        not problems_only
                        or self.is_problem(check.ref.check_id)
                        or check.ref.check_id == keep
                    )
                    and (not needle or needle in self._haystack(check))
                ]
                key = link_key(link)
                kept = key == keep and (not needle or needle in self._link_words(link))
                if not (shown or kept):
                    continue
                site_rows.append(Row(key, Level.LINK, site, link))
                site_rows.extend(
                    Row(check.ref.check_id, Level.CHECK, site, link, check)
                    for check in self._ordered(
                        shown, sort, lambda c: (c,), lambda c: c.ref.check_id
                    )
                )
            kept = site_key(site) == keep and (not needle or needle in self._names[site.id])
            if site_rows or kept:
                rows.append(Row(site_key(site), Level.SITE, site))
                rows.extend(site_rows)
        return rows

    def _link_words(self, link: Link) -> str:
        return f"{self._names[link.site_id]} {self._names[link_key(link)]}"

    def _haystack(self, check: Check) -> str:
        """What the filter matches a check by: its own words, its link's and its site's."""
        ref = check.ref
        words = self._names[f"link:{ref.site_id}/{ref.link_id}"]
        return f"{self._names[ref.site_id]} {words} {self._haystacks[ref.check_id]}"

    def _ordered(
        self,
        items: Iterable[T],
        sort: Sort,
        checks_of: Callable[[T], Iterable[Check]],
        name_of: Callable[[T], str],
    ) -> list[T]:
        if sort is Sort.NAME:
            return sorted(items, key=name_of)
        if sort is Sort.SEVERITY:
            return sorted(
                items, key=lambda item: (-self._attention(checks_of(item)), name_of(item))
            )
        return sorted(items, key=lambda item: (self._newest(checks_of(item)), name_of(item)))

    def _attention(self, checks: Iterable[Check]) -> float:
        """Unacknowledged problems first (CRIT, UNKNOWN, WARN), then acknowledged ones, then OK,
        then pending."""
        best = -1.0
        for check in checks:
            check_id = check.ref.check_id
            severity = self.states[check_id].severity
            if severity is None:
                continue
            if check_id in self.acked:
                best = max(best, 0.5)
            else:
                best = max(best, float(severity.rank) + (1 if severity.rank else 0))
        return best

    def _newest(self, checks: Iterable[Check]) -> float:
        """When the freshest result below arrived; never-run sorts first (the oldest)."""
        newest = float("-inf")
        for check in checks:
            result = self.states[check.ref.check_id].result
            if result is not None:
                newest = max(newest, finished_at(result))
        return newest


def _change(result: ProbeResult, before: Severity | None) -> Event:
    """A change of a check's raw severity, as the state engine would report it."""
    check = result.check
    return Event(
        finished_at(result),
        Subject.CHECK,
        check.check_id,
        check.site_id,
        EventKind.HARD,
        PENDING if before is None else before.name,
        result.severity.name,
        result.summary(),
    )


def _site_checks(site: Site) -> tuple[Check, ...]:
    return tuple(check for link in site.links for check in link.checks)


def _group_checks(named: NamedGroup) -> tuple[Check, ...]:
    return tuple(check for link in named.links for check in link.checks)


def _prune(sites: Sequence[Site], wanted: set[str] | None) -> tuple[Site, ...]:
    """The sites and links that hold at least one wanted check, holding only those."""
    if wanted is None:
        return tuple(sites)
    pruned = []
    for site in sites:
        links = []
        for link in site.links:
            checks = tuple(c for c in link.checks if c.ref.check_id in wanted)
            if checks:
                links.append(replace(link, checks=checks))
        if links:
            pruned.append(replace(site, links=tuple(links)))
    return tuple(pruned)
