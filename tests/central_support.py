"""What the central's tests share: a JetStream connection with the results stream made, results
published as an agent publishes them, and a watcher of what an engine showed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import nats
from nats.js.client import JetStreamContext

from monitor.cluster.stream import ensure_stream, outgoing
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.engine.state import EngineState

STREAM = "COMMWATCH_RESULTS"
AGENT = "psap-north"
BASE = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@contextlib.asynccontextmanager
async def jetstream(url: str, **auth: str) -> AsyncIterator[JetStreamContext]:
    """A connection to the nats-server at `url` (`auth`: user and password), the results
    stream made."""
    client = await nats.connect(url, allow_reconnect=False, **auth)
    context = client.jetstream()
    await ensure_stream(context, STREAM)
    try:
        yield context
    finally:
        await client.close()


async def publish(js: JetStreamContext, *results: ProbeResult, agent: str = AGENT) -> None:
    """As the agent publishes each result (monitor.cluster.stream.outgoing)."""
    for each in results:
        message = outgoing(agent, each)
        await js.publish(message.subject, message.data, headers=message.headers)


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
