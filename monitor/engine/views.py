"""What the state engine sees of an inventory and what a selection of its checks can judge:
the `Topology` of a selection, each redundancy group's summary, and the state one sweep
shows. The continuous engine (monitor.engine.pipeline) and the one-shot outputs share them."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from monitor.config import maintenance
from monitor.config.inventory import Check, Inventory
from monitor.core.events import PENDING, GroupStatus, LinkStatus, Pending
from monitor.core.model import ProbeResult
from monitor.engine import paths
from monitor.engine.links import NO_RISKS, RiskStanding, links_up_text, risk_standing
from monitor.engine.restore import restore
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.topology import CheckPolicy, LinkPolicy, Topology, group_policies


def topology_of(
    inventory: Inventory, checks: Iterable[Check] | None = None, *, confirm_at_once: bool = False
) -> Topology:
    """The state engine's view of the inventory, for `checks` (a selection; None: all of
    them). Links whose deciding checks the selection leaves out stay unevaluated, and so do
    groups with such a link: their state is never made up from part of what decides it.
    `confirm_at_once` treats every result as confirmed, for a one-shot sweep where there is no
    second result to wait for."""
    selected = None if checks is None else {check.ref.check_id for check in checks}
    policies, links = {}, {}
    for link in inventory.links:
        check_ids = tuple(c.ref.check_id for c in link.checks)
        links[link.full_id] = LinkPolicy(
            link_id=link.full_id,
            site_id=link.site_id,
            deciding_checks=link.availability_from or check_ids,
            depends_on=link.depends_on,
        )
        for check in link.checks:
            if selected is not None and check.ref.check_id not in selected:
                continue
            policies[check.ref.check_id] = CheckPolicy(
                check_id=check.ref.check_id,
                site_id=link.site_id,
                link_id=link.full_id,
                confirmations=1 if confirm_at_once else max(1, check.retries),
                depends_on=check.depends_on,
            )
    resilience = inventory.resilience
    groups = group_policies(inventory)
    windows = resilience.maintenance
    return Topology(
        checks=policies,
        links=links,
        groups=groups,
        flap=resilience.flapping,
        in_maintenance=lambda ids, at: maintenance.in_maintenance(windows, ids, at),
    )


class Unevaluated(enum.StrEnum):
    """The label of a group a selection of checks cannot judge: no state, not even PENDING."""

    NOT_EVALUATED = "NOT EVALUATED"


NOT_EVALUATED: Final = Unevaluated.NOT_EVALUATED


@dataclass(frozen=True)
class GroupSummary:
    """A redundancy group as far as a selection of checks can judge it."""

    group_id: str
    name: str
    site_id: str
    status: GroupStatus | None  # None: not evaluated, or a link has no status yet
    up: int
    unknown: int
    total: int
    min_up: int
    not_evaluated: tuple[str, ...] = ()  # links whose deciding checks are not all selected
    waiting: tuple[str, ...] = ()  # evaluated links with no status yet
    # Where its links' traced routes meet beyond their edge hops (monitor.engine.paths).
    converging: tuple[str, ...] = ()
    risks: RiskStanding = NO_RISKS  # the shared risks that would take it below min_up

    @property
    def evaluated(self) -> bool:
        return not self.not_evaluated

    @property
    def label(self) -> GroupStatus | Pending | Unevaluated:
        """The status; NOT EVALUATED, or PENDING while a link has no status yet."""
        if not self.evaluated:
            return NOT_EVALUATED
        return PENDING if self.status is None else self.status

    def describe(self) -> str:
        """What the label rests on, in a few words."""
        if not self.evaluated:
            return f"checks deciding {', '.join(self.not_evaluated)} are not selected"
        if self.status is None:
            return f"no state yet for {', '.join(self.waiting)}"
        up_text = links_up_text(self.up, self.unknown, self.total, self.min_up)
        return "; ".join((up_text + self.risks.text, *self.converging))


def group_summaries(
    inventory: Inventory,
    topology: Topology,
    state: EngineState,
    routes: paths.PathState | None = None,
) -> tuple[GroupSummary, ...]:
    """Every group the topology's checks touch; one they do not touch at all is not part of
    what was asked, and is left out. With `routes`, where each group's paths converge."""
    summaries = []
    policy = None if routes is None else paths.path_policy(inventory)
    for g in inventory.resilience.groups:
        if not any(link in topology.observed_links for link in g.link_ids):
            continue
        not_evaluated = tuple(lid for lid in g.link_ids if lid not in topology.evaluated_links)
        statuses = [state.links.get(lid) for lid in g.link_ids]
        summaries.append(
            GroupSummary(
                group_id=g.id,
                name=g.name,
                site_id=g.site_id,
                status=None if not_evaluated else state.groups.get(g.id),
                up=statuses.count(LinkStatus.UP),
                unknown=statuses.count(LinkStatus.UNKNOWN),
                total=len(g.link_ids),
                min_up=g.min_up,
                not_evaluated=not_evaluated,
                waiting=tuple(
                    lid for lid, status in zip(g.link_ids, statuses, strict=True) if status is None
                ),
                converging=()
                if policy is None or routes is None
                else tuple(c.describe() for c in paths.convergences(policy, routes, g.id)),
                risks=risk_standing(topology.groups[g.id], state.links),
            )
        )
    return tuple(summaries)


def sweep_state(
    inventory: Inventory, checks: Iterable[Check], results: Iterable[ProbeResult]
) -> tuple[Topology, EngineState]:
    """The state one sweep of `checks` shows, every result taken as confirmed."""
    topology = topology_of(inventory, checks, confirm_at_once=True)
    state = restore(topology)
    for result in results:
        state, _ = step(topology, state, result)
    return topology, state
