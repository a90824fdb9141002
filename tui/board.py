"""The dashboard's model: every check's row state, in the inventory's site/link/check tree, the
state engine's view (confirmed and soft states, links, redundancy groups, held notifications),
plus the acknowledgements the engine holds (of checks, links and groups). No Textual here: the
widgets ask it which rows to show and in what order (its `Outline`), how many checks are in
which state (its `Tally`), and why a row is in its state, and it answers from plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from monitor.config.inventory import Check, Inventory, Link
from monitor.core.events import (
    PENDING,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
    Suppression,
)
from monitor.core.model import ProbeResult, Severity
from monitor.engine import paths
from monitor.engine.checks import CheckState
from monitor.engine.state import EngineState
from monitor.engine.views import (
    NOT_EVALUATED,
    GroupSummary,
    Unevaluated,
    group_summaries,
    topology_of,
)
from tui.outline import Outline
from tui.rows import Level, NamedGroup, Row, Sort, group_key, link_key, prune, site_key
from tui.state import AckShown, HistoryLine, RowState, advance, finished_at, preloaded
from tui.tally import ALL, Status, Tally


class Board:
    """The rows' state: results and the engine's state go in (`apply`), questions come out."""

    def __init__(
        self,
        inventory: Inventory,
        checks: Iterable[Check] | None = None,
        judged_by: Iterable[Check] | None = None,
    ) -> None:
        """The rows of `checks` (None: all of the inventory's). Links and groups are judged as
        the engine judges them from `judged_by`, the checks it runs (None: those shown; a
        viewer of an engine shows a selection of what the engine runs)."""
        self.inventory = inventory
        wanted = None if checks is None else {c.ref.check_id for c in checks}
        self.sites = prune(inventory.sites, wanted)
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
        # The engine's acknowledgements, by subject id; of them, the checks whose problem is
        # acknowledged (their rows dimmed, counted apart).
        self.acks: dict[str, AckShown] = {}
        self.acked: set[str] = set()
        # The checks below each link and group subject: their rows and those above them show
        # its acknowledgement.
        self._checks_below: dict[str, tuple[str, ...]] = {}
        for site in self.sites:
            self._checks_below[site.id] = tuple(c.ref.check_id for c in _checks(site.links))
            for link in site.links:
                self._checks_below[link.full_id] = tuple(c.ref.check_id for c in link.checks)
        for named in self.named_groups:
            self._checks_below[named.group.id] = tuple(c.ref.check_id for c in _checks(named.links))
        groups_of_link: dict[str, list[str]] = {}
        for named in self.named_groups:
            for link in named.links:
                groups_of_link.setdefault(link.full_id, []).append(group_key(named.group))
        # Per check, the rows it counts in: all checks, its site, its link, its named groups.
        self.tally = Tally(
            {
                cid: (ALL, site_key(site), link_key(link), *groups_of_link.get(link.full_id, ()))
                for site in self.sites
                for link in site.links
                for cid in (check.ref.check_id for check in link.checks)
            }
        )
        self._last_change: float | None = None
        # The state engine's view, once it runs (None: rows show raw results, and a site or link
        # the worst below it).
        self.engine: EngineState | None = None
        self.groups: dict[str, GroupSummary] = {}
        # What the selection can judge, and which checks decide each link.
        self._topology = topology_of(
            inventory, self.checks.values() if judged_by is None else judged_by
        )
        self.confirmations = {cid: max(1, c.retries) for cid, c in self.checks.items()}
        # Why notifications about a subject are held, from its latest confirmed change.
        self._held: dict[str, tuple[Suppression, ...]] = {}
        self.outline = Outline(self.sites, self.named_groups)
        # The latest route of each path check, for convergence and each link's hops.
        self._path_policy = paths.path_policy(inventory)
        self.routes = paths.PathState()

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
        results = list(results)
        for result in results:
            self.routes, _ = paths.observe(self._path_policy, self.routes, result)
        if engine is not None:
            before_unreachable = self.engine.unreachable if self.engine else frozenset()
            self.engine = engine
            self.groups = {
                g.group_id: g
                for g in group_summaries(self.inventory, self._topology, engine, self.routes)
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
            if confirmed is not None and confirmed.hard is not PENDING:
                severity = confirmed.hard
            elif engine is None and previous.severity is not severity:
                events.append(_change(result, previous.severity))
            state = advance(previous, result, severity)
            if confirmed is not None and confirmed.hard is not PENDING:
                # The engine knows when the confirmed state began (a batch may hold several).
                state = replace(state, changed_at=confirmed.since)
            before = self._status(check_id)
            self.states[check_id] = state
            touched.add(check_id)
            if state.severity is not previous.severity:
                # A new state is news again (the engine ends its acknowledgement too).
                self.acked.discard(check_id)
                self.acks.pop(check_id, None)
            self.tally.move(check_id, before, self._status(check_id))
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

    def link_label(self, link: Link) -> LinkStatus | Unevaluated | None:
        """The link's state (None while pending, or without an engine), or NOT EVALUATED when
        the selection leaves out checks that decide it."""
        if link.full_id not in self._topology.evaluated_links:
            return NOT_EVALUATED
        return self.link_status(link)

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

    def hops(self, link: Link) -> tuple[tuple[str, paths.Route], ...]:
        """The latest route of each of the link's path checks: (check id, route)."""
        return paths.hops_of(self._path_policy, self.routes, link.full_id)

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
            # A check seen but not confirmed yet is awaited too: "cad-api CRIT 1/3".
            return "waiting for " + ", ".join(
                name
                if state is None
                else f"{name} {state.soft.name} {state.attempts}/{self.confirmations[cid]}"
                for (name, state), cid in zip(states, deciding, strict=True)
                if state is None or state.hard is PENDING
            )
        failing = (Severity.CRIT, Severity.UNKNOWN)
        return ", ".join(
            f"{name} {state.hard.name}" for name, state in states if state and state.hard in failing
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
        return self.states[check_id].is_problem

    def needs_attention(self, check_id: str) -> bool:
        return self.is_problem(check_id) and check_id not in self.acked

    def subject_ids(self) -> frozenset[str]:
        """Every check, link and group the board has a row for, by the engine's ids."""
        return frozenset(self.checks.keys() | self._checks_below.keys())

    def problem_of(self, row: Row) -> str | None:
        """The problem a row's subject has, in words ("CRIT", "DOWN", "AT RISK"), for an
        acknowledgement; None when it has none (or no confirmed state: nothing to
        acknowledge)."""
        if row.level is Level.CHECK:
            state = self.states[row.key]
            return None if not state.is_problem or state.severity is None else state.severity.name
        if row.link is not None:
            link_status = self.link_status(row.link)
            return None if link_status in (None, LinkStatus.UP) else str(link_status)
        group = self.group_status(row)
        if group is None or group.status in (None, GroupStatus.RESILIENT):
            return None
        return str(group.status)

    def acknowledged(self, acks: Mapping[str, AckShown]) -> set[str]:
        """Make these the acknowledgements in force (by subject id; of checks, only those that
        are problems count: an OK or pending check cannot be acknowledged). Returns the checks
        whose rows (or the rows above them) now show something else."""
        changed_subjects = {
            sid for sid in acks.keys() | self.acks.keys() if acks.get(sid) != self.acks.get(sid)
        }
        self.acks = dict(acks)
        touched = {
            cid
            for sid in changed_subjects
            if sid not in self.states
            for cid in self._checks_below.get(sid, ())
        }
        wanted = {cid for cid in acks if cid in self.states and self.is_problem(cid)}
        changed = wanted ^ self.acked
        touched |= changed | (changed_subjects & self.states.keys())
        for check_id in changed:
            before = self._status(check_id)
            if check_id in self.acked:
                self.acked.discard(check_id)
            else:
                self.acked.add(check_id)
            self.tally.move(check_id, before, self._status(check_id))
        return touched

    def _status(self, check_id: str) -> Status:
        return self.states[check_id].severity, check_id in self.acked

    def last_change(self) -> float | None:
        return self._last_change

    def rows(
        self,
        text: str = "",
        problems_only: bool = False,
        sort: Sort = Sort.NAME,
        keep: str | None = None,
    ) -> list[Row]:
        """The rows the table shows for a filter, the problems toggle and a sort (`Outline`)."""
        return self.outline.rows(self.states, self.acked, text, problems_only, sort, keep)


def _change(result: ProbeResult, before: Severity | None) -> Event:
    """A change of a check's raw severity, as the state engine would report it."""
    check = result.check
    return Event(
        finished_at(result),
        Subject.CHECK,
        check.check_id,
        check.site_id,
        EventKind.HARD,
        PENDING if before is None else CheckStatus.of(before),
        CheckStatus.of(result.severity),
        result.summary(),
    )


def _checks(links: Iterable[Link]) -> Iterable[Check]:
    return (check for link in links for check in link.checks)
