"""The central's judgement of who may report what: a result of check C from agent A for the
vantage point E (its `Commwatch-Vantage` header) is admitted when E is one of C's vantage
points and A is E, or A serves E (monitor.cluster.assignment) among the live agents of the
`commwatch_agents` bucket (monitor.cluster.membership) as they were when the result started.

The grace: the central keeps each view of the live agents with when it began here, and
admits a result when A served E in any view that held within one heartbeat TTL of the
result's start. Checks moving from one agent to another overlap briefly, an agent and the
central hear of a change a moment apart, and a result replayed from a spool started when its
agent held the check. A result that started before the central's first view (the stream's
backlog from before it started) cannot be judged against the heartbeats and is admitted on its
vantage point alone. The result's start is the agent's clock and the views are the central's:
keep them in step (NTP); a difference within the grace does no harm.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from monitor.cluster.assignment import Roster, serves, vantage_points
from monitor.cluster.membership import Membership
from monitor.config.cluster import ClusterConfig
from monitor.config.inventory import Check

if TYPE_CHECKING:
    from nats.aio.client import Client

KEEP = 24 * 3600.0  # seconds of views kept: an agent's spool replayed within it is judged
MAX_VIEWS = 10_000  # however often agents come and go, memory stays bounded


class Admission:
    def __init__(self, grace: float, *, clock: Callable[[], float] = time.time) -> None:
        self.grace = grace
        self._clock = clock
        # The views in the order they began, and when each began on this machine's clock.
        self._since: list[float] = []
        self._rosters: list[Roster] = []

    def changed(self, roster: Roster) -> None:
        """A new view of the live agents, from now on."""
        now = self._clock()
        self._since.append(now)
        self._rosters.append(roster)
        # The newest view older than KEEP still holds: it stays.
        old = bisect.bisect_left(self._since, now - KEEP) - 1
        drop = max(old, len(self._since) - MAX_VIEWS)
        if drop > 0:
            del self._since[:drop], self._rosters[:drop]

    def refusal(self, check: Check, agent: str, vantage: str, started_at: float) -> str | None:
        """Why the result is not admitted; None when it is."""
        if vantage not in vantage_points(check):
            return f"{vantage!r} is not a vantage point of {check.ref.check_id!r}"
        if vantage == agent or not self._since or started_at + self.grace < self._since[0]:
            return None
        if any(serves(agent, vantage, check, roster) for roster in self._held(started_at)):
            return None
        return f"{agent!r} does not serve {vantage!r} for {check.ref.check_id!r}"

    def _held(self, started_at: float) -> list[Roster]:
        """The views that held at some time within the grace of `started_at`."""
        first = bisect.bisect_right(self._since, started_at - self.grace) - 1
        last = bisect.bisect_right(self._since, started_at + self.grace)
        return self._rosters[max(first, 0) : last]


@contextlib.asynccontextmanager
async def admitting(nc: Client, cluster: ClusterConfig) -> AsyncIterator[Admission]:
    """An admission kept up to date from the heartbeats while the block runs. It begins once
    the bucket is read (a heartbeat TTL at most: without NATS there is nothing to read), so
    that the first results are judged against the heartbeats, not admitted unjudged."""
    admission = Admission(cluster.heartbeat_ttl)
    membership = Membership(
        cluster.heartbeat_ttl, on_change=admission.changed, domain=cluster.domain
    )
    following = asyncio.create_task(membership.follow(nc), name="membership")
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cluster.heartbeat_ttl):
                await membership.ready.wait()
        yield admission
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
