"""The rules of links and redundancy groups: a link's status from the confirmed states of the
checks that decide it, a group's from the statuses of its links and the risks they share
(monitor.config.diversity)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from monitor.config.diversity import Exposure, diverse_up, exposures, exposures_clause, link_name
from monitor.core.events import PENDING, GroupStatus, LinkStatus
from monitor.core.model import Severity
from monitor.engine.checks import CheckState
from monitor.engine.topology import GroupPolicy, LinkPolicy

# A link is judged on the worst confirmed severity of the checks that decide its availability:
# a WARN (a slow path, a certificate due for renewal) still carries traffic.
LINK_STATUS_OF_SEVERITY: Mapping[Severity, LinkStatus] = MappingProxyType(
    {
        Severity.OK: LinkStatus.UP,
        Severity.WARN: LinkStatus.UP,
        Severity.CRIT: LinkStatus.DOWN,
        Severity.UNKNOWN: LinkStatus.UNKNOWN,
    }
)


def links_up_text(up: int, unknown: int, total: int, min_up: int) -> str:
    """`1 of 2 links up (needs 1)`, with `, 1 unknown` when some are."""
    unknown_text = f", {unknown} unknown" if unknown else ""
    return f"{up} of {total} links up{unknown_text} (needs {min_up})"


def up_links(policy: GroupPolicy, links: Mapping[str, LinkStatus]) -> frozenset[str]:
    """The group's links known to be up: the only ones that count as up."""
    return frozenset(link for link in policy.link_ids if links.get(link) is LinkStatus.UP)


@dataclass(frozen=True)
class RiskStanding:
    """What the risks a group's links share mean for it (monitor.config.diversity): those that
    would take it below min_up counting the links up now, and by design (every link up)."""

    exposed: tuple[Exposure, ...] = ()
    exposed_by_design: tuple[Exposure, ...] = ()
    diverse_up: int = 0  # the links up, the most that ride one risk counted as one
    site_id: str = ""  # the group's site: its links are named by their own ids

    @property
    def text(self) -> str:
        """What follows the count of links up: `, but fibre and lte both ride carrier:att
        (losing it leaves 0)`; empty when nothing is exposed now."""
        return exposures_clause(self.exposed, lambda link_id: link_name(self.site_id, link_id))


NO_RISKS = RiskStanding()


def risk_standing(policy: GroupPolicy, links: Mapping[str, LinkStatus]) -> RiskStanding:
    up = up_links(policy, links)
    shared = policy.shared_risks
    return RiskStanding(
        exposed=exposures(shared, up, policy.min_up),
        exposed_by_design=exposures(shared, frozenset(policy.link_ids), policy.min_up),
        diverse_up=diverse_up(shared, up),
        site_id=policy.site_id,
    )


def group_text(policy: GroupPolicy, links: Mapping[str, LinkStatus]) -> str:
    """What a group's state rests on: its count of links up and the shared risks that would
    take it below min_up now, `2 of 2 links up (needs 1), but fibre and lte both ride
    carrier:att (losing it leaves 0)`."""
    statuses = [links.get(link_id) for link_id in policy.link_ids]
    up, unknown = statuses.count(LinkStatus.UP), statuses.count(LinkStatus.UNKNOWN)
    counted = links_up_text(up, unknown, len(policy.link_ids), policy.min_up)
    return counted + risk_standing(policy, links).text


@dataclass(frozen=True, slots=True)
class LinkTally:
    """How many of a link's deciding checks are confirmed at each severity, and how many flap,
    kept up to date one result at a time so a link's state never needs a walk over its checks."""

    known: int = 0
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)  # by Severity value: OK, WARN, CRIT, UNKNOWN
    flapping: int = 0

    def moved(self, before: CheckState | None, after: CheckState) -> LinkTally:
        """The tally once one of its checks went from `before` to `after` (itself if no count
        changed)."""
        old = PENDING if before is None else before.hard
        was_flapping = before is not None and before.flapping
        if old is after.hard and was_flapping == after.flapping:
            return self
        counts, known = list(self.counts), self.known
        if old is not PENDING:
            counts[old.value] -= 1
            known -= 1
        if after.hard is not PENDING:
            counts[after.hard.value] += 1
            known += 1
        flapping = self.flapping + after.flapping - was_flapping
        return LinkTally(
            known=known, counts=(counts[0], counts[1], counts[2], counts[3]), flapping=flapping
        )

    def worst(self) -> Severity:
        return Severity.worst(s for s in Severity if self.counts[s.value])


NO_TALLY = LinkTally()


def link_status(policy: LinkPolicy, tally: LinkTally) -> LinkStatus | None:
    """None until every deciding check is confirmed: a half-known link has no status yet."""
    if tally.known < len(policy.deciding_checks):
        return None
    return LINK_STATUS_OF_SEVERITY[tally.worst()]


def group_status(policy: GroupPolicy, links: Mapping[str, LinkStatus]) -> GroupStatus | None:
    """None until every link has a status. Only a link known to be up counts as up: an
    emergency network is never assumed resilient. Nor is it declared DOWN on links nobody can
    see: when unknown links could make up for the missing ones, it is UNKNOWN. A single-link
    group is AT RISK by nature, and so is one whose up links are too few once those that share
    a risk count as one: "2 of 2 links up, but both ride carrier:att"."""
    if any(link not in links for link in policy.link_ids):
        return None
    up = sum(1 for link in policy.link_ids if links[link] is LinkStatus.UP)
    if up < policy.min_up:
        unknown = sum(1 for link in policy.link_ids if links[link] is LinkStatus.UNKNOWN)
        return GroupStatus.UNKNOWN if up + unknown >= policy.min_up else GroupStatus.DOWN
    if (
        up == policy.min_up
        or diverse_up(policy.shared_risks, up_links(policy, links)) <= policy.min_up
    ):
        return GroupStatus.AT_RISK
    if up == len(policy.link_ids):
        return GroupStatus.RESILIENT
    return GroupStatus.DEGRADED
