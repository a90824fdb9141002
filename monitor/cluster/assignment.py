"""Which agent serves which vantage point of which check: pure functions of the inventory and
of the live agents (a `Roster`), so that every agent and every central, seeing the same
heartbeats, reach the same answer without talking to each other.

A check's vantage points are its `vantage:` entries (none: the pool `default`). An agent
serves entry E of check C when E is the agent's own name, or E is one of its pools and it wins
the rendezvous hash (highest random weight) of C's target host among the live members of pool
E, ties going to the name first in order. The key is the host, not the check: every check of
one host lands on one agent of the pool, so the per-host concurrency cap holds across the pool,
and when an agent joins or leaves only the hosts it wins or held move. The same hashing
(`winner`) shares one machine's checks among the probe processes of `run --workers` (their
indexes are its candidates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.config.inventory import Check

DEFAULT_POOL = "default"


def vantage_points(check: Check) -> tuple[str, ...]:
    return check.vantage or (DEFAULT_POOL,)


def implied_vantage(check: Check, agent: str) -> str:
    """The vantage point of a result that names none (no Commwatch-Vantage header): the
    agent's own name; for a check with one vantage point that is not the agent, that one (an
    agent of before pools sends no header, and its checks were the pool default's)."""
    points = vantage_points(check)
    return points[0] if len(points) == 1 and agent not in points else agent


def weight(host: str, agent: str) -> int:
    """The agent's rendezvous weight for the host: the same on every machine and Python (no
    `hash()`, which is salted per process)."""
    digest = hashlib.blake2b(f"{host}\0{agent}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winner(host: str, candidates: Iterable[str]) -> str | None:
    """The candidate the host goes to; None when there is none."""
    best: tuple[int, str] | None = None
    for agent in candidates:
        key = (-weight(host, agent), agent)
        if best is None or key < best:
            best = key
    return None if best is None else best[1]


@dataclass(frozen=True)
class Roster:
    """The live agents, each with its pools: one view of the heartbeats."""

    pools_of: Mapping[str, frozenset[str]]  # agent name -> its pools
    _members: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    # (pool, host) -> its holder: a central asks for every result, an agent for every check.
    _holders: dict[tuple[str, str], str | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        members: dict[str, list[str]] = {}
        for agent, pools in self.pools_of.items():
            for pool in pools:
                members.setdefault(pool, []).append(agent)
        object.__setattr__(self, "_members", {p: tuple(sorted(a)) for p, a in members.items()})

    @classmethod
    def of(cls, pools_of: Mapping[str, Iterable[str]]) -> Roster:
        return cls({agent: frozenset(pools) for agent, pools in pools_of.items()})

    def members(self, pool: str) -> tuple[str, ...]:
        return self._members.get(pool, ())

    def holder(self, pool: str, host: str) -> str | None:
        """The live agent of `pool` that the host goes to."""
        key = (pool, host)
        if key not in self._holders:
            self._holders[key] = winner(host, self.members(pool))
        return self._holders[key]


def serves(agent: str, entry: str, check: Check, roster: Roster) -> bool:
    """Whether `agent` serves vantage point `entry` of `check` in `roster`'s view (an entry
    the check does not have is served by nobody)."""
    if entry not in vantage_points(check):
        return False
    return entry == agent or roster.holder(entry, check.ref.host) == agent


def served_entry(agent: str, check: Check, roster: Roster) -> str | None:
    """The vantage point of `check` that `agent` serves, the first in the inventory's order
    when it serves more than one (it runs the check once); None when it serves none."""
    for entry in vantage_points(check):
        if serves(agent, entry, check, roster):
            return entry
    return None


def share(agent: str, checks: Iterable[Check], roster: Roster) -> dict[str, str]:
    """The checks `agent` runs: check id -> the vantage point it serves, in `checks`' order."""
    shared: dict[str, str] = {}
    for check in checks:
        entry = served_entry(agent, check, roster)
        if entry is not None:
            shared[check.ref.check_id] = entry
    return shared
