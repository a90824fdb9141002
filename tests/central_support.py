"""What the central's tests share: a JetStream connection with the results stream made, results
published as an agent publishes them, a watcher of what an engine showed, and a central engine
in the test's own process with its API and a way to read its state document, and one run in the
test's loop that notes every result it shows (for tests of agents, outages and NATS clusters)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from monitor.api.server import ApiServer
from monitor.cluster import buckets, connection
from monitor.cluster.agent import Agent
from monitor.cluster.assignment import DEFAULT_POOL
from monitor.cluster.central import ResultConsumer, connect
from monitor.cluster.membership import Heartbeat, Member, encode
from monitor.cluster.spool import Spool
from monitor.cluster.stream import ensure_stream, outgoing
from monitor.config.api import ApiConfig, Listen, TokenConfig, TokenRole
from monitor.config.cluster import DEFAULT_HEARTBEAT_TTL, ClusterConfig
from monitor.config.inventory import Check, Inventory
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.core.secrets import SecretRef
from monitor.engine.pipeline import Monitor
from monitor.engine.runner import run_check
from monitor.engine.state import EngineState
from monitor.output.records import iso_time
from monitor.store.history import HistoryStore
from probes.base import SharedResources

STREAM = "COMMWATCH_RESULTS"
AGENT = "psap-north"
BASE = 1_800_000_000.0  # 2027-01-15T08:00:00Z
VIEWER_ENV, VIEWER = "CW_TEST_VIEWER", "viewer-token-of-the-central-test"  # set it in a fixture
TOKENS = (TokenConfig(TokenRole.VIEWER, SecretRef("env", VIEWER_ENV), "wall"),)


@contextlib.asynccontextmanager
async def jetstream(url: str, **auth: Any) -> AsyncIterator[JetStreamContext]:
    """A connection to the nats-server at `url` (`auth`: nats-py's credentials and TLS), the results
    stream made, and AGENT live in the pool default as an agent is (its heartbeat put at once
    and every second while the block runs): a central admits its results."""
    client = await nats.connect(url, allow_reconnect=False, **auth)
    context = client.jetstream()
    await ensure_stream(context, STREAM)
    member = Member(AGENT, frozenset({DEFAULT_POOL}), time.time(), 1)
    kv = await buckets.key_value(context, buckets.AGENTS, DEFAULT_HEARTBEAT_TTL)
    await kv.put(AGENT, encode(member, time.time()))
    beating = asyncio.create_task(Heartbeat(member, 1.0, DEFAULT_HEARTBEAT_TTL).beat(client))
    try:
        yield context
    finally:
        # Closed first: the heartbeat's loop ends with the connection. A cancellation alone can
        # be lost (asyncio.wait_for in Python 3.11, under nats-py's request, swallows one that
        # comes as the reply does), and the loop would go on for ever.
        await client.close()
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)


async def publish(
    js: JetStreamContext,
    *results: ProbeResult,
    agent: str = AGENT,
    headers: dict[str, str] | None = None,
) -> None:
    """As the agent publishes each result (monitor.cluster.stream.outgoing), with `headers`
    added to its own."""
    for each in results:
        message = outgoing(agent, each)
        await js.publish(
            message.subject, message.data, headers={**message.headers, **(headers or {})}
        )


class Seen:
    """A watcher of an engine (`Monitor.watch`): what it showed, and a way to wait for it."""

    def __init__(self, check_id: str) -> None:
        self.check_id = check_id
        self.items: list[ProbeResult | Event] = []
        self.changed = asyncio.Event()

    def __call__(self, item: ProbeResult | Event, _state: EngineState) -> None:
        self.items.append(item)
        self.changed.set()

    @property
    def results(self) -> list[ProbeResult]:
        return [item for item in self.items if isinstance(item, ProbeResult)]

    def check_events(self) -> list[tuple[EventKind, str]]:
        """The state changes of the check `check_id`: (kind, state after)."""
        return [
            (item.kind, str(item.after))
            for item in self.items
            if isinstance(item, Event) and item.subject_id == self.check_id
        ]

    async def until(self, done: Callable[[], bool], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Central:
    monitor: Monitor
    consumer: ResultConsumer
    seen: Seen
    api: ApiServer


@contextlib.asynccontextmanager
async def central(
    js: JetStreamContext, inv: Inventory, *, durable: str = "central", watched: str = "north/wan/c"
) -> AsyncIterator[Central]:
    """A central engine on the results stream, serving its API on loopback (the viewer token
    in VIEWER_ENV); `watched`: the check its `Seen` follows."""
    history = inv.resilience.history.path
    consumer = ResultConsumer(js, inv.checks, stream=STREAM, history=history, durable=durable)
    monitor = Monitor(
        inv,
        inv.checks,
        on_result=lambda _: None,
        on_event=lambda _: None,
        alerts=False,
        source=consumer,
    )
    seen = Seen(watched)
    monitor.watch(seen)
    api = ApiServer(monitor, ApiConfig(listen=Listen("127.0.0.1", 0), tokens=TOKENS))
    await api.start()
    running = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(10):
            await monitor.ready.wait()
        yield Central(monitor, consumer, seen, api)
    finally:
        monitor.stop()
        await asyncio.wait_for(running, 20)
        await consumer.aclose()
        await api.stop()


async def state_document(c: Central) -> Any:
    headers = {"Authorization": f"Bearer {VIEWER}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{c.api.url}/api/v1/state") as response,
    ):
        return json.loads(await response.text())


@dataclass
class RunningCentral:
    """A central engine (consumer and Monitor) running in the test's loop."""

    monitor: Monitor
    consumer: ResultConsumer
    client: Client
    shown: list[tuple[str, float]] = field(default_factory=list)  # (check, started_at) in order
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def runs(self, check_id: str) -> list[float]:
        return [at for shown_id, at in self.shown if shown_id == check_id]

    async def until(self, done: Callable[[], bool], what: str, timeout: float = 60) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"the central: {what}, not within {timeout}s") from None


@contextlib.asynccontextmanager
async def running_central(
    cluster: ClusterConfig, inventory: Inventory
) -> AsyncIterator[RunningCentral]:
    """As `commwatch central` runs: connected to `cluster.nats` (every server it names), in
    `cluster.domain`'s JetStream, the stream made if missing (sourcing `cluster.leaf_domains`),
    the durable consumer into an
    engine with the inventory's history and no alerts; stopped and drained at the end."""
    client = await connect(cluster.nats)
    try:
        js = connection.jetstream(client, cluster.domain)
        await ensure_stream(js, cluster.stream, cluster.replicas, leaves=cluster.leaf_domains)
        history = inventory.resilience.history.path
        consumer = ResultConsumer(js, inventory.checks, stream=cluster.stream, history=history)
        monitor = Monitor(
            inventory,
            inventory.checks,
            on_result=lambda _: None,
            on_event=lambda _: None,
            alerts=False,
            source=consumer,
        )
        central = RunningCentral(monitor, consumer, client)

        def shown(item: ProbeResult | Event, _state: EngineState) -> None:
            if isinstance(item, ProbeResult):
                central.shown.append((item.check.check_id, item.started_at))
                central.changed.set()

        monitor.watch(shown)
        running = asyncio.create_task(monitor.run())
        try:
            yield central
        finally:
            monitor.stop()
            await asyncio.wait_for(running, 30)
            await consumer.aclose()
    finally:
        await client.drain()


def stored_runs(inventory: Inventory) -> dict[str, list[float]]:
    """Each check's results in the inventory's history, by start time, oldest first."""
    with HistoryStore(inventory.resilience.history.path) as store:
        return {
            check.ref.check_id: [
                r.started_at for r in store.recent_results(check.ref.check_id, 100_000)
            ]
            for check in inventory.checks
        }


class Runs:
    """The real runner, each run it hands the agent `agent` noted: what must reach the
    central."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.made: list[tuple[str, float]] = []
        self.msg_ids: set[str] = set()

    async def __call__(
        self, check: Check, shared: SharedResources, memory: dict[str, Any]
    ) -> ProbeResult:
        result = await run_check(check, shared, memory)
        self.made.append((result.check.check_id, result.started_at))
        self.msg_ids.add(outgoing(self.agent, result).msg_id)
        return result


def counted_agent(
    folder: Path, name: str, inventory: Inventory, cluster: ClusterConfig
) -> tuple[Agent, Runs]:
    """An agent of `inventory`'s checks on `cluster` with a spool in `folder`, every check at
    once from its start, and the runs it makes noted."""
    spool = Spool(folder / "spool.sqlite3", max_age=3600, max_bytes=10 * 1024**2)
    runs = Runs(name)
    agent = Agent(
        name, inventory.checks, inventory.concurrency, cluster, spool, start_spread=0, runner=runs
    )
    return agent, runs


def assert_every_run_once(
    inventory: Inventory, made: list[tuple[str, float]], shown: list[tuple[str, float]]
) -> None:
    """Every run made was shown by the central once, in order per check, and stored once.
    Start times are compared as the result record carries them, to the millisecond."""
    assert Counter(runs(shown)) == Counter(runs(made)), "a result lost, shown twice, or made up"
    stored = stored_runs(inventory)
    for check in inventory.checks:
        check_id = check.ref.check_id
        of_check = [at for shown_id, at in shown if shown_id == check_id]
        assert of_check == sorted(of_check), f"{check_id}: out of order"
        expected = sorted(iso_time(at) for made_id, at in made if made_id == check_id)
        assert [iso_time(at) for at in stored[check_id]] == expected, f"{check_id}: stored"


def runs(pairs: Iterable[tuple[str, float]]) -> list[tuple[str, str]]:
    return [(check_id, iso_time(at)) for check_id, at in pairs]
