"""What a line of the dashboard's table stands for: a named redundancy group, a site, one of its
links or one of that link's checks, each under a key of its own; and the orders rows come in."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace

from monitor.config.inventory import Check, Group, Link, Site


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


def prune(sites: Sequence[Site], wanted: AbstractSet[str] | None) -> tuple[Site, ...]:
    """The sites and links that hold at least one wanted check, holding only those (None: every
    site as it is)."""
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
