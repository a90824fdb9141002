"""The paths part of `commwatch report`'s diversity section: where the routes that path checks
traced for each group's links converge, each link's latest route and how often it changed in
the period. Plain data, built by monitor.engine.paths (`report_paths`) from the history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.core.text import printable


@dataclass(frozen=True, slots=True)
class TracedRoute:
    check_id: str
    link_id: str
    destination: str
    route: str  # the hops, "*" silent, "a|b" load balanced
    traced_at: float
    changes: int  # path_change events of its link in the period


@dataclass(frozen=True, slots=True)
class GroupPaths:
    group_id: str
    converging: tuple[str, ...]  # "site/a and site/b pass 198.51.100.1 at hop 3"
    routes: tuple[TracedRoute, ...]


def lines(groups: Sequence[GroupPaths] | None) -> list[str]:
    """The section's lines for the table: per group with traced routes, where they converge,
    then each route."""
    if not groups:
        return []
    found = ["Paths (the latest route each path check reached its destination by):"]
    for group in groups:
        meeting = "; ".join(group.converging) or "no convergence beyond the links' edge hops"
        found.append(f"  {printable(group.group_id)}: {printable(meeting)}")
        for traced in group.routes:
            changed = f" ({traced.changes} changes in the period)" if traced.changes else ""
            found.append(
                f"    {printable(traced.check_id)} → {printable(traced.destination)}: "
                f"{printable(traced.route)}{changed}"
            )
    return ["", *found]


def to_dict(groups: Sequence[GroupPaths] | None) -> list[dict[str, Any]] | None:
    if groups is None:
        return None
    return [
        {
            "group_id": group.group_id,
            "converging": list(group.converging),
            "routes": [
                {
                    "check_id": r.check_id,
                    "link_id": r.link_id,
                    "destination": r.destination,
                    "route": r.route,
                    "traced_at": r.traced_at,
                    "changes": r.changes,
                }
                for r in group.routes
            ],
        }
        for group in groups
    ]
