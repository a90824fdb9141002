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

from monitor.events import Event, EventKind, Subject, Suppression
from monitor.inventory import Check, Inventory, Link, Site
from monitor.model import ProbeResult, Severity
from monitor.pipeline import GroupSummary, group_summaries
from monitor.state import PENDING, CheckState, EngineState, LinkStatus
from tui.state import HistoryLine, RowState, advance, finished_at, preloaded

T = TypeVar("T")
Status = tuple[Severity | None, bool]  # a check's severity, and whether it is acknowledged


class Sort(enum.Enum):
    NAME = "name"
    SEVERITY = "severity"
    AGE = "age"


class Level(enum.IntEnum):
    SITE = 0
    LINK = 1
    CHECK = 2


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the tree: a site, one of its links, or one of that link's checks."""

    key: str
    level: Level
    site: Site
    link: Link | None = None
    check: Check | None = None

    @property
    def checks(self) -> tuple[Check, ...]:
        if self.check is not None:
            return (self.check,)
        if self.link is not None:
            return self.link.checks
        return tuple(check for link in self.site.links for check in link.checks)


def site_key(site: Site) -> str:
    return f"site:{site.id}"


def link_key(link: Link) -> str:
    return f"link:{link.site_id}/{link.id}"


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
        self.states: dict[str, RowState] = {cid: RowState() for cid in self.checks}
        self.acked: set[str] = set()
        # Checks per (severity, acknowledged), for all checks ("") and per site and link row,
        # kept as results arrive: a site can hold thousands of checks, and its row, the
        # summary and the sort ask for these on every batch.
        self._within = {
            cid: ("", site_key(site), link_key(link))
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

    # --- results in ------------------------------------------------------------------------

    def apply(
        self, results: Iterable[ProbeResult], engine: EngineState | None = None
    ) -> tuple[set[str], list[Event]]:
        """Fold results in arrival order, with the state engine's state after them when it
        runs: rows then show confirmed severities. Returns the checks whose row changed and,
        without an engine, the changes of severity as events, oldest first (the engine reports
        its own). A change of severity ends an acknowledgement: nobody has seen it yet."""
        touched: set[str] = set()
        events: list[Event] = []
        if engine is not None:
            before_unreachable = self.engine.unreachable if self.engine else frozenset()
            self.engine = engine
            self.groups = {g.group_id: g for g in group_summaries(self.inventory, engine)}
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
            elif engine is None and _is_news(previous.severity, severity):
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

    def row_severity(self, row_key: str) -> Severity | None:
        """The worst severity needing attention below a site or link row (acknowledged
        problems count as OK); None while none of its checks has reported."""
        seen = [
            Severity.OK if acked else severity
            for (severity, acked), n in self._tally[row_key].items()
            if n and severity is not None
        ]
        return Severity.worst(seen) if seen else None

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
        self, text: str = "", problems_only: bool = False, sort: Sort = Sort.NAME
    ) -> list[Row]:
        """The tree as shown: checks that pass the filter and the problems toggle, under their
        link and site rows, each level ordered by `sort`."""
        needle = text.strip().lower()
        rows: list[Row] = []
        for site in self._ordered(self.sites, sort, _site_checks, lambda s: s.id):
            site_rows: list[Row] = []
            for link in self._ordered(site.links, sort, lambda ln: ln.checks, lambda ln: ln.id):
                context = f"{self._names[site.id]} {self._names[link_key(link)]}"
                shown = [
                    check
                    for check in link.checks
                    if (not problems_only or self.is_problem(check.ref.check_id))
                    and (not needle or needle in f"{context} {self._haystacks[check.ref.check_id]}")
                ]
                if not shown:
                    continue
                site_rows.append(Row(link_key(link), Level.LINK, site, link))
                site_rows.extend(
                    Row(check.ref.check_id, Level.CHECK, site, link, check)
                    for check in self._ordered(
                        shown, sort, lambda c: (c,), lambda c: c.ref.check_id
                    )
                )
            if site_rows:
                rows.append(Row(site_key(site), Level.SITE, site))
                rows.extend(site_rows)
        return rows

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


def _is_news(before: Severity | None, after: Severity) -> bool:
    """A change of severity, except a first result that is OK: that says nothing new."""
    return before is not after and not (before is None and after is Severity.OK)


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
                links.append(
                    Link(
                        link.id, link.site_id, link.name, link.role, link.medium, link.tags, checks
                    )
                )
        if links:
            pruned.append(Site(site.id, site.name, site.tags, tuple(links)))
    return tuple(pruned)
