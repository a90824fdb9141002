"""An agent: the scheduler and the runner over its checks, every result published to the
results stream (monitor.cluster.stream), no state engine, history or alerts of its own.

Whatever NATS does, probing goes on. A result is published while NATS takes it; once a publish
fails or the connection is down, it and every result after it go to the spool
(monitor.cluster.spool) and, once NATS is back, are replayed oldest first before anything newer
is published: the order of each check's results holds across an outage. A result whose publish
timed out may still reach the server and then come again from the spool; its message id makes
the server store it once.

Publishes are pipelined: up to IN_FLIGHT wait for their acknowledgements at once (one at a time
was a round trip per result, and the agent fell behind its own probes), sent in order, but
never two of one check: a check's next result waits for its last one's acknowledgement, so a
refused publish is always followed into the spool by every later result of its check.

Which checks it runs is its share of its vantage points (monitor.cluster.assignment), kept up
to date as agents come and go (monitor.cluster.membership): it waits up to one heartbeat for
the first view of the live agents before it probes, and without NATS it counts itself alone.

Behind a site's NATS leaf node with JetStream of its own (`--leaf-domain`), results go to the
stream of the leaf's domain, which keeps them through a WAN outage and which the hub's stream
sources (monitor.cluster.stream); the heartbeats still go to the hub's domain.

Connecting is nats-py's: it retries for ever (the first connection too) and the agent is told
of each disconnect and reconnect. Credentials are read from their references when connecting
and handed to nats-py alone; nothing here logs them, and a log line about NATS says what
happened in commwatch's words, not the library's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.cluster.assignment import DEFAULT_POOL, Roster, share
from monitor.cluster.connection import (
    connect_options,
    connected_server,
    inbox_prefix,
    jetstream,
    trouble,
    unpublished,
)
from monitor.cluster.membership import Heartbeat, Member, Membership, roster_text, take_part
from monitor.cluster.spool import Spool, SpoolError
from monitor.cluster.stream import (
    QUEUED_PREFIX,
    QUEUED_SUBJECTS,
    SUBJECT_PREFIX,
    SUBJECTS,
    Outgoing,
    StreamError,
    ensure_stream,
    outgoing,
    sources_leaf,
    under,
)
from monitor.config.cluster import ClusterConfig
from monitor.config.inventory import Check, Concurrency
from monitor.core.logs import Throttle
from monitor.core.model import ProbeResult
from monitor.core.tasks import cancelled
from monitor.engine.runner import run_check
from monitor.engine.scheduler import CheckRunner, Scheduler

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

log = logging.getLogger("commwatch.agent")

PUBLISH_TIMEOUT = 5.0  # seconds for the server's acknowledgement
RECONNECT_WAIT = 1  # seconds between nats-py's attempts
REPLAY_BATCH = 200  # spooled entries read per step of a replay
PUBLISH_BATCH = 1_000  # pending results taken per step of publishing
IN_FLIGHT = 128  # publishes awaiting the server's acknowledgement at once, at most
PENDING_LIMIT = 10_000  # results waiting in memory beyond which they go to the spool
RETRY_FIRST, RETRY_LAST = 1.0, 30.0  # seconds before retrying a refused publish, doubling
_LOG_EVERY = 60.0  # seconds: one line per kind of trouble at most


@dataclass(frozen=True)
class AgentFigures:
    """What an agent has done since it started, for its status and (later) its metrics."""

    connected: bool
    published: int  # results the stream acknowledged, first publishes and replays
    duplicates: int  # of those, the ones the server had already (a replay after a lost ack)
    replayed: int  # results published from the spool
    spooled: int  # results waiting in the spool now
    dropped: int  # ever dropped from the spool (its bounds), across restarts
    # When the oldest result not yet published was made (a spooled one: spooled), Unix time;
    # None when every result is published.
    oldest_unpublished: float | None
    # When the heartbeats' bucket last took this agent's heartbeat, Unix time; None: not yet.
    heartbeat_put_at: float | None


class Agent:
    def __init__(
        self,
        name: str,
        checks: Sequence[Check],
        concurrency: Concurrency,
        cluster: ClusterConfig,
        spool: Spool,
        *,
        pools: Sequence[str] = (DEFAULT_POOL,),
        start_spread: float | None = None,
        runner: CheckRunner = run_check,
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.spool = spool
        self.member = Member(name, frozenset(pools), time.time(), concurrency.global_limit)
        self._heartbeat = Heartbeat(
            self.member, cluster.heartbeat, cluster.heartbeat_ttl, domain=cluster.domain
        )
        self.membership = Membership(
            cluster.heartbeat_ttl, own=self.member, on_change=self._reassign, domain=cluster.domain
        )
        self._selected = tuple(checks)
        self._vantage: dict[str, str] = {}  # check id -> the vantage point it is run for
        self.scheduler = Scheduler(
            self._share(self.membership.roster()),
            concurrency,
            self._collected,
            start_spread=start_spread,
            runner=runner,
        )
        self._presence: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._pending: deque[tuple[float, Outgoing]] = deque()  # (made at, the result)
        self._wake = asyncio.Event()
        self._stopping = False
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._prefix = SUBJECT_PREFIX if cluster.leaf_domain is None else QUEUED_PREFIX
        self._sourcing: asyncio.Task[None] | None = None  # asking whether the hub sources it
        self._retry = RETRY_FIRST
        self._published = 0
        self._duplicates = 0
        self._replayed = 0
        self._throttle = Throttle(_LOG_EVERY)
        self._was_connected = False
        self._server = cluster.nats.url  # the server last connected to (of a cluster: a node)
        self._probing = False

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Probe, publish and spool until `stop()`; then publish or spool what is left and
        close the connection. The credentials are read first: one that cannot be had
        (OptionError) or a TLS file that does not load (ssl.SSLError) ends it before it probes."""
        options = connect_options(self.cluster.nats)
        connecting = asyncio.create_task(self._connect(options))
        publishing = asyncio.create_task(self._publish_loop())
        self._probing = True
        try:
            await self._first_view()
            await self.scheduler.run()
        finally:
            self._probing = False
            self._stopping = True
            self._wake.set()
            await cancelled(connecting)  # nats-py may swallow one cancellation
            if self._presence is not None:
                self._presence.cancel()  # the heartbeat withdrawn: its checks move at once
                await asyncio.gather(self._presence, return_exceptions=True)
            await publishing
            if self._sourcing is not None:
                await cancelled(self._sourcing)
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await self._nc.close()

    def stop(self) -> None:
        self._stopped.set()
        self.scheduler.stop()

    @property
    def probing(self) -> bool:
        """Between the start of `run()` and the end of its probing: what /healthz answers."""
        return self._probing

    def figures(self) -> AgentFigures:
        made = [at for at in (self.spool.oldest_at(), self._pending_since()) if at is not None]
        return AgentFigures(
            connected=self._connected(),
            published=self._published,
            duplicates=self._duplicates,
            replayed=self._replayed,
            spooled=self.spool.depth,
            dropped=self.spool.figures().dropped,
            oldest_unpublished=min(made, default=None),
            heartbeat_put_at=self._heartbeat.put_at,
        )

    def _pending_since(self) -> float | None:
        return self._pending[0][0] if self._pending else None

    # --- results in -------------------------------------------------------------------------

    def _collected(self, result: ProbeResult) -> None:
        vantage = self._vantage.get(result.check.check_id, DEFAULT_POOL)
        self._pending.append((time.time(), outgoing(self.name, result, vantage, self._prefix)))
        self._wake.set()

    # --- its share of the checks ----------------------------------------------------------------

    async def _first_view(self) -> None:
        """Wait for the first view of the live agents, a heartbeat at most (or a stop): an
        agent that starts among others does not run their checks meanwhile."""
        waits = [asyncio.create_task(e.wait()) for e in (self.membership.ready, self._stopped)]
        await asyncio.wait(
            waits, timeout=self.cluster.heartbeat, return_when=asyncio.FIRST_COMPLETED
        )
        for wait in waits:
            wait.cancel()

    def _share(self, roster: Roster) -> list[Check]:
        shared = share(self.name, self._selected, roster)
        # A check that left keeps its vantage point here: a run of it may still report.
        self._vantage.update(shared)
        return [check for check in self._selected if check.ref.check_id in shared]

    def _reassign(self, roster: Roster) -> None:
        checks = self._share(roster)
        self.scheduler.replace_checks(checks)
        log.warning(
            "live agents: %s; this agent runs %d of its %d checks",
            roster_text(roster, sorted(self.member.pools)),
            len(checks),
            len(self._selected),
        )

    # --- NATS ---------------------------------------------------------------------------------

    async def _connect(self, options: dict[str, Any]) -> None:
        from nats.aio.client import Client

        # Made before connecting, so that a stop while the first connection is still being
        # tried closes it (nats-py retries inside connect()).
        self._nc = Client()
        await self._nc.connect(
            self.cluster.nats.servers,
            name=f"commwatch-agent {self.name}",
            # Replies to this agent only under its own prefix: its NATS user may be allowed to
            # subscribe to _INBOX_NAME.> alone, never to the replies of others (the central's
            # fetched results among them).
            inbox_prefix=inbox_prefix(self.name),
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # the first connection too: keep probing and spooling
            reconnect_time_wait=RECONNECT_WAIT,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            **options,
        )
        self._js = jetstream(self._nc, self.cluster.leaf_domain or self.cluster.domain)
        self._presence = asyncio.create_task(
            take_part(self._nc, self._heartbeat, self.membership), name="presence"
        )
        await self._on_reconnected()

    def _connected(self) -> bool:
        # _js is set once connect() has returned: nats-py says connected a moment before.
        return self._nc is not None and self._js is not None and self._nc.is_connected

    async def _on_error(self, exc: Exception) -> None:
        what = trouble(exc, self.cluster.nats.url, "agent")
        held = self._throttle.let_through(what)
        if held is not None:
            log.warning("%s; spooling results (%d in the spool)", what, self.spool.depth)

    async def _on_disconnected(self) -> None:
        if self._was_connected and not self._stopping:
            self._was_connected = False
            log.warning("disconnected from NATS at %s; spooling results", self._server)
        self._wake.set()

    async def _on_reconnected(self) -> None:
        self._was_connected = True
        self._retry = RETRY_FIRST
        waiting = f"; replaying {self.spool.depth} spooled results" if self.spool.depth else ""
        assert self._nc is not None  # made before connecting
        self._server = connected_server(self._nc, self.cluster.nats)
        log.warning("connected to NATS at %s%s", self._server, waiting)
        self._wake.set()

    # --- results out --------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        try:
            while True:
                self._wake.clear()
                refused = await self._drain()
                if self._stopping:
                    self._spool_pending()
                    return
                timeout = self._retry if refused else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                if refused:
                    self._retry = min(self._retry * 2, RETRY_LAST)
        except SpoolError:
            # Nowhere left to keep results (a full disk, a file gone): probing on would lose
            # them unseen. run() ends, and the error reaches whoever started it.
            self.scheduler.stop()
            raise

    async def _drain(self) -> bool:
        """Publish what is spooled, then what is pending, in order, while NATS takes it; spool
        the rest. True when NATS is connected but refused (retry after a pause)."""
        while True:
            if not self._connected():
                self._spool_pending()
                return False
            if len(self._pending) > PENDING_LIMIT:
                self._spool_pending()  # NATS is slower than the probes: keep memory bounded
            if not await self._stream():
                self._spool_pending()
                return True
            if self.spool.depth:
                self._spool_pending()  # behind the spool, so that the order holds
                if not await self._replay():
                    return True
                continue
            if not self._pending:
                return False
            if not await self._publish_pending():
                # Refused or unanswered, it and every later result wait on disk, not in memory.
                self._spool_pending()
                return True

    async def _publish_pending(self) -> bool:
        """Publish the oldest pending results; those NATS did not take go back to the front,
        in order. False when one was not taken."""
        batch = [entry for _, entry in itertools.islice(self._pending, PUBLISH_BATCH)]
        taken = await self._publish_all(batch)
        # Only _collected touches the deque meanwhile, and it appends: the batch is its front.
        done = [self._pending.popleft() for _ in batch]
        self._pending.extendleft(
            reversed([item for item, ok in itertools.zip_longest(done, taken) if not ok])
        )
        return len(taken) == len(batch) and all(taken)

    async def _publish_all(self, entries: Sequence[Outgoing]) -> list[bool]:
        """Publish `entries` in order, up to IN_FLIGHT at once and one per check at a time;
        after one that NATS did not take, no further one is begun. Whether each one begun was
        taken: `entries`' first ones (all of them, unless one was not taken)."""
        flights: deque[asyncio.Task[bool]] = deque()
        busy: set[str] = set()  # the checks of the publishes in flight
        taken: list[bool] = []
        begun = 0
        refused = False
        try:
            while flights or (begun < len(entries) and not refused):
                while not refused and begun < len(entries) and len(flights) < IN_FLIGHT:
                    check = entries[begun].check_key
                    if check in busy:
                        break  # its last result first: the order per check
                    busy.add(check)
                    flights.append(asyncio.create_task(self._publish(entries[begun])))
                    begun += 1
                ok = await flights.popleft()  # awaited in the order they were sent
                busy.discard(entries[len(taken)].check_key)
                taken.append(ok)
                refused = refused or not ok
        finally:
            for flight in flights:
                flight.cancel()  # only when cancelled itself: these are not counted as taken
        return taken

    async def _stream(self) -> bool:
        if self._stream_ready:
            return True
        assert self._js is not None
        leaf = self.cluster.leaf_domain
        # A leaf node's stream is of one server, the leaf node.
        replicas, subjects = (
            (self.cluster.replicas, SUBJECTS) if leaf is None else (1, QUEUED_SUBJECTS)
        )
        try:
            differs = await ensure_stream(
                self._js, self.cluster.stream, replicas, subjects=subjects
            )
        except StreamError as exc:
            self._warn("stream", "%s", exc)
            return False
        except Exception as exc:  # nats-py's errors, a timeout, a closed connection
            self._warn(
                "stream",
                "cannot make sure stream %s exists (%s)",
                self.cluster.stream,
                type(exc).__name__,
            )
            return False
        if differs is not None:
            self._warn("replicas", "%s", differs)
        self._stream_ready = True
        if leaf is not None and self._sourcing is None:
            self._sourcing = asyncio.create_task(self._hub_sources(leaf), name="hub-sources")
        return True

    async def _hub_sources(self, leaf: str) -> None:
        """Say so when the hub's stream does not source the leaf's: results would wait at the
        site for ever. Asked once, across the WAN: a hub that does not answer is not judged."""
        assert self._nc is not None  # connected: the leaf's stream answered
        try:
            info = await jetstream(self._nc, self.cluster.domain).stream_info(self.cluster.stream)
        except Exception:  # nats-py's errors, a timeout: the WAN or the hub away
            return
        if not sources_leaf(info.config, leaf):
            log.warning(
                "stream %s of JetStream domain %s does not source this leaf node's (domain "
                "%s): results wait at the site until it does; add %s to cluster: "
                "leaf_domains: and restart a central",
                self.cluster.stream,
                self.cluster.domain,
                leaf,
                leaf,
            )

    async def _replay(self) -> bool:
        """Publish the oldest spooled entries in order; False at the first one refused."""
        batch = self.spool.oldest(REPLAY_BATCH)
        taken = await self._publish_all(
            [
                dataclasses.replace(entry, subject=under(entry.subject, self._prefix))
                for _, entry in batch
            ]
        )
        # Up to the first one not taken: any taken after it is published again from the spool
        # later, and the server drops it by its message id.
        replayed = len(taken) if all(taken) else taken.index(False)
        if replayed:
            self.spool.remove_through(batch[replayed - 1][0])
            self._replayed += replayed
        if replayed < len(batch):
            return False
        if not self.spool.depth:
            log.warning("the spool is replayed: publishing as results come")
        return True

    async def _publish(self, entry: Outgoing) -> bool:
        js = self._js
        assert js is not None
        try:
            ack = await js.publish(
                entry.subject,
                entry.data,
                timeout=PUBLISH_TIMEOUT,
                stream=self.cluster.stream,
                headers=entry.headers,
            )
        except Exception as exc:  # nats-py's errors, a timeout, a closed connection
            self._warn("publish", "NATS did not take a result (%s); spooling", unpublished(exc))
            self._stream_ready = False  # it may have been deleted: make sure of it again
            return False
        self._published += 1
        self._duplicates += bool(ack.duplicate)
        self._retry = RETRY_FIRST
        return True

    def _spool_pending(self) -> None:
        while self._pending:
            dropped = self.spool.append(self._pending.popleft()[1])
            if dropped:
                self._warn(
                    "dropped",
                    "the spool is full (%s): %d oldest results dropped, %d ever",
                    self.spool.path,
                    dropped,
                    self.spool.figures().dropped,
                )

    def _warn(self, key: str, message: str, *args: object) -> None:
        if self._throttle.let_through(key) is not None:
            log.warning(message, *args)
