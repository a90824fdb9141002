"""Which rows the table shows, and in what order: named groups first, then sites, each with the
links and checks that pass the filter and the problems toggle, every level sorted.

The words the filter matches by are gathered (and lowered) once; the rows are asked for again on
every rebuild, with the checks' states as they are then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import TypeVar

from monitor.config.inventory import Check, Link, Site
from tui.rows import Level, NamedGroup, Row, Sort, group_key, link_key, site_key
from tui.state import RowState, finished_at

T = TypeVar("T")


class Outline:
    def __init__(self, sites: tuple[Site, ...], named_groups: tuple[NamedGroup, ...]) -> None:
        self.sites = sites
        self.named_groups = named_groups
        self._haystacks = {
            check.ref.check_id: " ".join(
                (
                    check.ref.check_id,
                    check.kind,
                    check.ref.target,
                    check.description,
                    *check.ref.tags,
                )
            ).lower()
            for site in sites
            for link in site.links
            for check in link.checks
        }
        self._names = {
            site.id: " ".join((site.id, site.name, *site.tags)).lower() for site in sites
        }
        self._names.update(
            {
                link_key(link): " ".join((link.id, link.name, link.role, link.medium)).lower()
                for site in sites
                for link in site.links
            }
        )
        self._names.update(
            {
                group_key(named.group): f"{named.group.id} {named.group.name}".lower()
                for named in named_groups
            }
        )

    def rows(
        self,
        states: Mapping[str, RowState],
        acked: AbstractSet[str],
        text: str = "",
        problems_only: bool = False,
        sort: Sort = Sort.NAME,
        keep: str | None = None,
    ) -> list[Row]:
        """The tree as shown: checks that pass the filter `text` and the problems toggle, under
        their link and site rows, each level ordered by `sort`. The row `keep` (the selected
        one) stays whatever the toggle says: a problem that recovers does not vanish from under
        the cursor."""
        needle = text.strip().lower()
        order = _Order(states, acked, sort)
        rows: list[Row] = []
        for named in order(self.named_groups, _group_checks, lambda g: g.group.name or g.group.id):
            key, checks = group_key(named.group), _group_checks(named)
            wanted = not problems_only or any(states[c.ref.check_id].is_problem for c in checks)
            matches = not needle or (
                needle in self._names[key] or any(needle in self._haystack(c) for c in checks)
            )
            if matches and (wanted or key == keep):
                rows.append(Row(key, Level.GROUP, group=named))
        for site in order(self.sites, _site_checks, lambda s: s.id):
            site_rows: list[Row] = []
            for link in order(site.links, lambda ln: ln.checks, lambda ln: ln.id):
                shown = [
                    check
                    for check in link.checks
                    if (
                        not problems_only
                        or states[check.ref.check_id].is_problem
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
                    for check in order(shown, lambda c: (c,), lambda c: c.ref.check_id)
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


class _Order:
    """Sorts groups, sites, links or checks by `sort`, from the checks' states at one moment."""

    def __init__(self, states: Mapping[str, RowState], acked: AbstractSet[str], sort: Sort) -> None:
        self._states = states
        self._acked = acked
        self._sort = sort

    def __call__(
        self,
        items: Iterable[T],
        checks_of: Callable[[T], Iterable[Check]],
        name_of: Callable[[T], str],
    ) -> list[T]:
        if self._sort is Sort.NAME:
            return sorted(items, key=name_of)
        if self._sort is Sort.SEVERITY:
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
            severity = self._states[check_id].severity
            if severity is None:
                continue
            if check_id in self._acked:
                best = max(best, 0.5)
            else:
                best = max(best, float(severity.rank) + (1 if severity.rank else 0))
        return best

    def _newest(self, checks: Iterable[Check]) -> float:
        """When the freshest result below arrived; never-run sorts first (the oldest)."""
        newest = float("-inf")
        for check in checks:
            result = self._states[check.ref.check_id].result
            if result is not None:
                newest = max(newest, finished_at(result))
        return newest


def _site_checks(site: Site) -> tuple[Check, ...]:
    return tuple(check for link in site.links for check in link.checks)


def _group_checks(named: NamedGroup) -> tuple[Check, ...]:
    return tuple(check for link in named.links for check in link.checks)
