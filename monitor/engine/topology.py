"""What the inventory says, reduced to what the state engine's rules need: the checks it runs,
every link and redundancy group, what depends on what, and the policies of confirmation,
flapping and maintenance."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from monitor.config.diversity import SharedRisk, risks_by_link, shared_risks
from monitor.config.inventory import FlapPolicy, Inventory
from monitor.core.events import Subject
from monitor.store.runs import maintenance_ids


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
    # The risks two or more of its links ride (monitor.config.diversity): counted as one path.
    shared_risks: tuple[SharedRisk, ...] = ()


def group_policies(inventory: Inventory) -> dict[str, GroupPolicy]:
    """The rules' view of every group of the inventory, with the risks its links share."""
    risks_of = risks_by_link(inventory)
    return {
        group.id: GroupPolicy(
            group_id=group.id,
            site_id=group.site_id,
            link_ids=group.link_ids,
            min_up=group.min_up,
            shared_risks=shared_risks(group.link_ids, risks_of),
        )
        for group in inventory.resilience.groups
    }


def _never_in_maintenance(_ids: Iterable[str], _at: float) -> bool:
    return False


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
    in_maintenance: Callable[[Iterable[str], float], bool] = _never_in_maintenance

    def groups_of(self, link_id: str) -> tuple[GroupPolicy, ...]:
        return self._groups_by_link.get(link_id, ())

    def decides(self, check_id: str, link_id: str) -> bool:
        return check_id in self._deciding[link_id]

    def site_of(self, subject: Subject, subject_id: str) -> str:
        """The site a check, link or group belongs to ("" for a group across sites)."""
        if subject is Subject.CHECK:
            return self.checks[subject_id].site_id
        if subject is Subject.LINK:
            return self.links[subject_id].site_id
        return self.groups[subject_id].site_id

    def own_ids(self, subject: Subject, subject_id: str) -> tuple[str, ...]:
        """The subject's id and those of what contains it: what a maintenance window may name."""
        return maintenance_ids(subject, subject_id, self.site_of(subject, subject_id))

    def deciding_checks(self, subject: Subject, subject_id: str) -> Iterable[str]:
        """The checks whose states decide the subject's: itself, a link's deciding checks, or
        those of every link of a group."""
        if subject is Subject.CHECK:
            return (subject_id,)
        if subject is Subject.LINK:
            return self.links[subject_id].deciding_checks
        return (
            check_id
            for link_id in self.groups[subject_id].link_ids
            for check_id in self.links[link_id].deciding_checks
        )

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
