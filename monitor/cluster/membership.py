"""Who is alive: the agents' heartbeats in the `commwatch_agents` bucket (monitor.cluster.buckets).

Each agent puts its record under its name every `cluster: heartbeat:` (`Heartbeat`) and deletes
it on a clean stop:

    {"agent": NAME, "pools": [...], "started_at": T, "at": T, "capacity": N}

(`capacity`: its global concurrency cap, for people reading the bucket; the assignment does not
weigh it). Whoever needs to know who is live, an agent to share its pools, a central to judge
who may report what, follows the bucket with a watch (`Membership`): an agent is live from its
first record until its key is deleted or `heartbeat_ttl` passes without a record. The bucket's
own TTL drops a key on the server too, but nats-server (before 2.11) tells no watcher of that,
so each follower expires what it holds by itself.

What a follower cannot hear about it does not judge: while its connection to NATS is down
nothing expires, so an outage of NATS moves no checks; nor, for an agent, while its heartbeat
finds no JetStream to take it though connected (its NATS leaf node cut off from the hub). Once
it is back the watch starts again from what the bucket holds, the time spent away counted
against nobody. The age of a record seen when a watch starts is the server's timestamp
against this machine's clock (keep clocks in step with NTP), never more than the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.cluster import buckets
from monitor.cluster.assignment import Roster
from monitor.cluster.connection import jetstream
from monitor.config.cluster import vantage_name
from monitor.core.logs import Throttle
from monitor.core.options import OptionError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue

log = logging.getLogger("commwatch.membership")

TICK = 0.25  # seconds between looks at the connection and at what expired
OPERATION_TIMEOUT = 2.0  # seconds for one put or delete
# A heartbeat that did not go (a timeout on a busy server, a bucket not made yet) is tried again
# this soon, not a heartbeat later: three missed in a row, and the agent's checks move away.
PUT_RETRY = 1.0
_LOG_EVERY = 60.0
_GONE = ("DEL", "PURGE")  # the KV operations that end a key


@dataclass(frozen=True)
class Member:
    """One agent as its heartbeat says."""

    name: str
    pools: frozenset[str]
    started_at: float
    capacity: int


def encode(member: Member, at: float) -> bytes:
    record = {
        "agent": member.name,
        "pools": sorted(member.pools),
        "started_at": member.started_at,
        "at": at,
        "capacity": member.capacity,
    }
    return json.dumps(record, separators=(",", ":")).encode()


def decode(key: str, data: bytes) -> Member:
    """The member a record under `key` describes; ValueError saying what is wrong with it."""
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("it is not JSON") from None
    if not isinstance(record, dict):
        raise ValueError("it is not a heartbeat record")
    if record.get("agent") != key:
        raise ValueError("its agent is not the key it is under")
    pools, started_at, capacity = (record.get(k) for k in ("pools", "started_at", "capacity"))
    if not isinstance(pools, list) or not pools:
        raise ValueError("it names no pools")
    try:
        vantage_name(key)
        member_of = frozenset(vantage_name(pool) for pool in pools)
    except OptionError:
        raise ValueError("it holds a name that is not an agent or pool name") from None
    if not isinstance(started_at, int | float) or not isinstance(capacity, int):
        raise ValueError("its started_at or capacity is not a number")
    return Member(key, member_of, float(started_at), capacity)


class Membership:
    """The live agents, as the bucket says and as this process last heard. `own`: this
    agent, live whatever the bucket says while it runs. `on_change` is called with the new
    roster once the first watch has read the whole bucket, and after that whenever who is live,
    or in which pools, changes. `domain`: the JetStream domain of the bucket
    (monitor.cluster.connection.jetstream)."""

    def __init__(
        self,
        ttl: float,
        *,
        own: Member | None = None,
        on_change: Callable[[Roster], None] | None = None,
        domain: str | None = None,
    ) -> None:
        self.ttl = ttl
        self.domain = domain
        self.ready = asyncio.Event()  # set once the first watch has read the whole bucket
        self._own = own
        self._on_change = on_change
        self._members: dict[str, Member] = {}
        self._deadlines: dict[str, float] = {}  # loop time each member is gone by
        self._roster = self._make_roster()
        self._throttle = Throttle(_LOG_EVERY)

    def roster(self) -> Roster:
        return self._roster

    def members(self) -> Mapping[str, Member]:
        return dict(self._members)

    async def follow(self, nc: Client, heartbeat: Heartbeat | None = None) -> None:
        """Follow the bucket until cancelled, through every outage of the connection; and, with
        this agent's `heartbeat`, through every outage of JetStream its puts meet while
        connected (a leaf node cut off from its hub: the others' records cannot reach this
        agent either, so they are not judged meanwhile)."""
        while not nc.is_closed and not _cancelling():
            try:
                await self._watch(nc, heartbeat)
            except Exception as exc:  # nats-py's errors, timeouts, a bucket being remade
                if nc.is_connected and self._throttle.let_through("watch") is not None:
                    log.warning(
                        "cannot follow the agents' heartbeats (%s); trying again",
                        type(exc).__name__,
                    )
            await self._away(nc, heartbeat)

    async def _watch(self, nc: Client, heartbeat: Heartbeat | None) -> None:
        import nats.errors

        kv = await buckets.key_value(jetstream(nc, self.domain), buckets.AGENTS, self.ttl)
        reconnects = nc.stats["reconnects"]
        # nats-py leaves the watcher's methods without types.
        watcher: Any = await kv.watchall()
        loop = asyncio.get_running_loop()
        initial = True
        try:
            while (
                nc.is_connected
                and nc.stats["reconnects"] == reconnects
                and not _unanswered(heartbeat)
                and not _cancelling()
            ):
                try:
                    entry = await watcher.updates(timeout=TICK)
                except nats.errors.TimeoutError:
                    entry = False  # nothing new: time to look at what expired
                if entry is None:
                    initial = False  # the whole bucket is read
                    self._read_through()
                elif entry is not False:
                    self._heard(entry, initial, loop.time())
                self._expire(loop.time())
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    def _read_through(self) -> None:
        if self.ready.is_set():
            self._changed()
            return
        self.ready.set()
        self._roster = self._make_roster()
        if self._on_change is not None:
            self._on_change(self._roster)  # the first view, changed or not

    def _heard(self, entry: KeyValue.Entry, initial: bool, now: float) -> None:
        key = entry.key
        if entry.operation in _GONE:
            self._deadlines.pop(key, None)
            if self._members.pop(key, None) is not None and not initial:
                self._changed()
            return
        try:
            member = decode(key, entry.value or b"")
        except ValueError as exc:
            if self._throttle.let_through(("record", key)) is not None:
                log.warning("ignored the heartbeat under %s: %s", key, exc)
            return
        age = 0.0
        # nats-py gives the server's timestamp as a datetime (its annotation says int).
        created: Any = entry.created
        if initial and isinstance(created, datetime.datetime):
            age = min(max(time.time() - created.timestamp(), 0.0), self.ttl)
        # Only a live process puts records: one under this agent's name not its own is a twin.
        own = self._own
        twin = own is not None and key == own.name and member.started_at != own.started_at
        if twin and not initial and self._throttle.let_through("twin") is not None:
            log.warning(
                "another agent is running under the name %s: give each agent its own --name, "
                "or both run the same checks",
                key,
            )
        deadline = now + self.ttl - age
        if deadline <= now:
            return
        self._deadlines[key] = max(deadline, self._deadlines.get(key, deadline))
        if self._members.get(key) != member:
            self._members[key] = member
            if not initial:  # the whole bucket read is one change
                self._changed()

    def _expire(self, now: float) -> None:
        gone = [name for name, deadline in self._deadlines.items() if deadline <= now]
        for name in gone:
            del self._deadlines[name]
            del self._members[name]
        if gone:
            self._changed()

    async def _away(self, nc: Client, heartbeat: Heartbeat | None) -> None:
        """Wait for the connection (and JetStream's answer to the heartbeat), the clock stopped
        for every member meanwhile."""
        loop = asyncio.get_running_loop()
        left = loop.time()
        if _unanswered(heartbeat) and self._throttle.let_through("unanswered") is not None:
            log.warning(
                "no JetStream takes this agent's heartbeat, so it cannot hear the others': "
                "nobody is counted gone (no checks move) until it does"
            )
        await asyncio.sleep(TICK)  # not at once: a failure while connected is tried again
        while (not nc.is_connected or _unanswered(heartbeat)) and not nc.is_closed:
            await asyncio.sleep(TICK)
        away = loop.time() - left
        self._deadlines = {name: at + away for name, at in self._deadlines.items()}

    def _changed(self) -> None:
        roster = self._make_roster()
        if roster == self._roster:
            return
        self._roster = roster
        if self._on_change is not None:
            self._on_change(roster)

    def _make_roster(self) -> Roster:
        pools = {name: member.pools for name, member in self._members.items()}
        if self._own is not None:
            pools[self._own.name] = self._own.pools
        return Roster(pools)


class Heartbeat:
    """An agent's record, put every `interval` while connected; withdrawn on a clean stop.
    `domain`: the JetStream domain of the bucket (monitor.cluster.connection.jetstream)."""

    def __init__(
        self, member: Member, interval: float, ttl: float, *, domain: str | None = None
    ) -> None:
        self.member = member
        self.interval = interval
        self.ttl = ttl
        self.domain = domain
        # False while the last put found no JetStream to answer it though connected (a leaf
        # node cut off from its hub): what this agent cannot tell, it cannot hear either.
        self.answered = True
        # When the bucket last took the record (Unix time); None: not yet. Across a WAN the
        # hub's bucket is the one thing an agent behind a leaf node with JetStream still
        # misses while its results go to the leaf.
        self.put_at: float | None = None
        self._throttle = Throttle(_LOG_EVERY)

    async def beat(self, nc: Client) -> None:
        """Put the record every interval until cancelled, and at once after a reconnection:
        the others' clocks for this agent ran on only until their own connections broke."""
        loop = asyncio.get_running_loop()
        due, reconnects = loop.time(), nc.stats["reconnects"]
        while not nc.is_closed and not _cancelling():
            if nc.is_connected and (loop.time() >= due or nc.stats["reconnects"] != reconnects):
                reconnects = nc.stats["reconnects"]
                put = await self._put(nc)
                due = loop.time() + (self.interval if put else min(self.interval, PUT_RETRY))
            # Never less than a tick while disconnected: the put stays due until it is made.
            await asyncio.sleep(min(TICK, max(due - loop.time(), 0.0)) or TICK)

    async def _put(self, nc: Client) -> bool:
        """Whether the record was put."""
        from nats.errors import NoRespondersError
        from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

        try:
            kv = await buckets.key_value(jetstream(nc, self.domain), buckets.AGENTS, self.ttl)
            now = time.time()
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await kv.put(self.member.name, encode(self.member, now))
        except Exception as exc:  # nats-py's errors, timeouts
            # Nobody there to answer; a timeout may be a refusal (permissions) and is not this.
            unanswered = (ServiceUnavailableError, NoRespondersError, NoStreamResponseError)
            self.answered = not isinstance(exc, unanswered)
            if self._throttle.let_through("put") is not None:
                log.warning("cannot put this agent's heartbeat (%s)", type(exc).__name__)
            return False
        self.answered = True
        self.put_at = now
        return True

    async def withdraw(self, nc: Client) -> None:
        """Delete the record, so that the agent's checks move at once rather than after the
        TTL; a failure is only logged (the TTL then does it)."""
        if not nc.is_connected:
            return
        try:
            kv = await buckets.key_value(jetstream(nc, self.domain), buckets.AGENTS, self.ttl)
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await kv.delete(self.member.name)
        except Exception as exc:  # nats-py's errors, timeouts
            log.warning(
                "cannot withdraw this agent's heartbeat (%s): its checks move after %gs",
                type(exc).__name__,
                self.ttl,
            )


async def take_part(nc: Client, heartbeat: Heartbeat, membership: Membership) -> None:
    """An agent's part in the pool: its heartbeat put and the others' followed, until
    cancelled; then its record withdrawn."""
    tasks = [
        asyncio.create_task(heartbeat.beat(nc), name="heartbeat"),
        asyncio.create_task(membership.follow(nc, heartbeat), name="membership"),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await heartbeat.withdraw(nc)


def roster_text(roster: Roster, pools: Iterable[str]) -> str:
    """The live agents of `pools`, for a log line."""
    return "; ".join(f"pool {pool}: {', '.join(roster.members(pool)) or 'none'}" for pool in pools)


def _unanswered(heartbeat: Heartbeat | None) -> bool:
    return heartbeat is not None and not heartbeat.answered


def _cancelling() -> bool:
    """This task was asked to stop. Python 3.11's `asyncio.wait_for`, inside nats-py's
    requests, can swallow the CancelledError of a cancellation that comes with the reply, so a
    loop that stops only by cancellation would run on for ever (an agent's SIGTERM hung)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
