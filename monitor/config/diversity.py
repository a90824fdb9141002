"""Shared risks and what they mean for a redundancy group: pure, the group's links and what each
rides (`risks:`, monitor.config.risks) in, frozen values out. The state engine counts with it
(monitor.engine.links); `check` and `report` tell what it finds by design. It sits with the
inventory, not in the engine, because it needs nothing but the inventory: `check` judges a
design without loading the engine, and the report (a layer below the engine) tells it too.

The rules, for a group of links of which `min_up` must be up, over the links counted as up
(those known to be up now; by design, all of them):

- A risk is *shared* when two or more of the group's links ride it. A risk one link alone rides
  costs no more than that link failing, which the count of links allows for already.
- Losing a risk loses every link that rides it, at once. The group is *exposed* to a shared
  risk when two or more of the up links ride it and fewer than `min_up` of the up links do not:
  that risk alone takes the group below `min_up`. Risks the same up links ride are one
  exposure ("fibre and lte both ride carrier:att and conduit:main-st").
- Risk-diverse counting (`diverse_up`): the up links, the most of them that ride any one risk
  counted as one path. A group is AT RISK when that count is at most `min_up`, as it is when
  exactly `min_up` links are up: one event (a link failing, or a shared risk lost) leaves it
  below `min_up`. With more than `min_up` links up, it is at most `min_up` exactly when the
  group is exposed. Without shared risks it is the number of up links: nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from monitor.config.inventory import Group, Inventory
from monitor.core.text import printable


@dataclass(frozen=True, slots=True)
class SharedRisk:
    risk: str
    link_ids: tuple[str, ...]  # the group's links that ride it, in the group's order: two or more


@dataclass(frozen=True, slots=True)
class Exposure:
    """Shared risks any one of which, lost, leaves fewer than `min_up` of a group's links up."""

    risks: tuple[str, ...]  # ridden by the same links
    link_ids: tuple[str, ...]  # the links counted as up that ride them
    left: int  # links still up once they are lost
    min_up: int


def shared_risks(
    link_ids: Sequence[str], risks_of: Mapping[str, Sequence[str]]
) -> tuple[SharedRisk, ...]:
    """The risks two or more of `link_ids` ride, in the order they are first written."""
    riders: dict[str, list[str]] = {}
    for link_id in dict.fromkeys(link_ids):
        for risk in risks_of.get(link_id, ()):
            riders.setdefault(risk, []).append(link_id)
    return tuple(SharedRisk(risk, tuple(ids)) for risk, ids in riders.items() if len(ids) > 1)


def _riding(shared: SharedRisk, up: AbstractSet[str]) -> tuple[str, ...]:
    return tuple(link_id for link_id in shared.link_ids if link_id in up)


def diverse_up(shared: Iterable[SharedRisk], up: AbstractSet[str]) -> int:
    """The links in `up` with the most of them that ride one risk counted as one path."""
    if not up:
        return 0
    most = max((len(_riding(s, up)) for s in shared), default=1)
    return len(up) - max(most, 1) + 1


def exposures(
    shared: Iterable[SharedRisk], up: AbstractSet[str], min_up: int
) -> tuple[Exposure, ...]:
    """The group's exposures with the links `up` counted as up, worst first; none while fewer
    than `min_up` are up (it is down already: no single risk is what would take it down)."""
    if len(up) < min_up:
        return ()
    by_riders: dict[tuple[str, ...], list[str]] = {}
    for risk in shared:
        riding = _riding(risk, up)
        if len(riding) > 1 and len(up) - len(riding) < min_up:
            by_riders.setdefault(riding, []).append(risk.risk)
    found = [
        Exposure(tuple(risks), riding, len(up) - len(riding), min_up)
        for riding, risks in by_riders.items()
    ]
    return tuple(sorted(found, key=lambda e: e.left))


# --- in words --------------------------------------------------------------------------------


def listed(names: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def link_name(site_id: str, link_id: str) -> str:
    """A link as a group names it: its own id in its site's group, its full id elsewhere."""
    prefix = f"{site_id}/"
    return link_id.removeprefix(prefix) if site_id else link_id


def riders_text(exposure: Exposure, name: Callable[[str], str]) -> str:
    """`fibre and lte both ride carrier:att`. Printable: a viewer's risks come from the
    engine's document, not from a file this process checked."""
    riders = [printable(name(link_id)) for link_id in exposure.link_ids]
    quantity = "both" if len(riders) == 2 else "all"
    return f"{listed(riders)} {quantity} ride {risks_text(exposure.risks)}"


def risks_text(risks: Iterable[str]) -> str:
    """`carrier:att and co:downtown`, each once, printable."""
    return listed([printable(risk) for risk in dict.fromkeys(risks)])


def loss_text(exposure: Exposure) -> str:
    """`losing it leaves 0`."""
    which = "it" if len(exposure.risks) == 1 else "any one of them"
    return f"losing {which} leaves {exposure.left}"


def exposures_clause(found: Sequence[Exposure], name: Callable[[str], str]) -> str:
    """What follows a group's count of links up: `, but fibre and lte both ride carrier:att
    (losing it leaves 0)`; empty without exposures."""
    if not found:
        return ""
    return ", but " + "; ".join(f"{riders_text(e, name)} ({loss_text(e)})" for e in found)


# --- by design: what `check` and `report` tell -----------------------------------------------


@dataclass(frozen=True)
class GroupRisks:
    """A redundancy group's shared risks by design, every link up."""

    group: Group
    declared: bool  # whether any of its links rides a declared risk
    exposures: tuple[Exposure, ...]

    def link_name(self, link_id: str) -> str:
        return link_name(self.group.site_id, link_id)

    @property
    def label(self) -> str:
        """`site north`, `group county-paths`."""
        return f"{'site' if self.group.site_id else 'group'} {self.group.id}"

    def findings(self) -> tuple[str, ...]:
        """`site north: links fibre and lte both ride carrier:att; losing it leaves 0 of min_up
        1`, one per exposure."""
        return tuple(
            f"{self.label}: links {riders_text(e, self.link_name)}; "
            f"{loss_text(e)} of min_up {e.min_up}"
            for e in self.exposures
        )


def risks_by_link(inventory: Inventory) -> dict[str, tuple[str, ...]]:
    return {link.full_id: link.risks for link in inventory.links}


def design_risks(inventory: Inventory) -> tuple[GroupRisks, ...]:
    """Every group's exposures with all its links up, in the inventory's order."""
    risks_of = risks_by_link(inventory)
    return tuple(
        GroupRisks(
            group=group,
            declared=any(risks_of.get(link_id) for link_id in group.link_ids),
            exposures=exposures(
                shared_risks(group.link_ids, risks_of), set(group.link_ids), group.min_up
            ),
        )
        for group in inventory.resilience.groups
    )


_SPELLING = re.compile(r"[\s_-]+")


def lookalike_risks(inventory: Inventory) -> tuple[tuple[str, ...], ...]:
    """Risks written differently that differ only in case, spaces, '-' or '_' (carrier:ATT and
    carrier:att, conduit:main-st and conduit:Main St): compared exactly, each is a risk of its
    own, and a risk two links share would go unseen."""
    spellings: dict[str, dict[str, None]] = {}
    for link in inventory.links:
        for risk in link.risks:
            spellings.setdefault(_SPELLING.sub("-", risk.casefold()), {})[risk] = None
    return tuple(tuple(found) for found in spellings.values() if len(found) > 1)


def inventory_findings(inventory: Inventory) -> tuple[str, ...]:
    """What `check` tells of the inventory's risks: look-alike spellings, then every group's
    exposures by design. Findings, not faults: the inventory is valid."""
    lookalikes = tuple(
        f"risks {listed(found)} differ only in case, spaces, '-' or '_': each counts as a risk "
        "of its own; write them alike if they are one"
        for found in lookalike_risks(inventory)
    )
    return lookalikes + tuple(f for g in design_risks(inventory) for f in g.findings())
