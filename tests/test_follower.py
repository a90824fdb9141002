"""The Follower against a scripted engine of the test (a real aiohttp server on loopback): what
it sends when it resumes, and what it does with a stream it cannot trust (an unreadable
message, one too large, one that is not an event stream, silence is left to the real engine's
tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from yarl import URL

from monitor.api.client import ApiClient, Connection, Follower
from monitor.api.sse import SseEvent
from tests.viewer_support import LOOPBACK


@dataclass
class ScriptedEngine:
    """Each state request answers the next epoch's document; each stream request plays the
    next script (bytes to send, then the stream ends), recording its Last-Event-ID."""

    scripts: list[bytes]
    documents: int = 0
    resumed_from: list[str | None] = field(default_factory=list)
    url: URL = field(default_factory=URL)

    async def state(self, _request: web.Request) -> web.Response:
        self.documents += 1
        return web.json_response({"stream": {"epoch": f"e{self.documents}", "seq": 0}})

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.resumed_from.append(request.headers.get("Last-Event-ID"))
        if not self.scripts:
            await asyncio.sleep(3600)  # the test ends first
        script = self.scripts.pop(0)
        if script == b"not a stream":
            return web.json_response({"not": "sse"})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(script)
        return response


@contextlib.asynccontextmanager
async def serving(engine: ScriptedEngine) -> AsyncIterator[ScriptedEngine]:
    app = web.Application()
    app.router.add_get("/api/v1/state", engine.state)
    app.router.add_get("/api/v1/events", engine.events)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    engine.url = URL(f"http://{LOOPBACK}:{runner.addresses[0][1]}")
    try:
        yield engine
    finally:
        await runner.cleanup()


async def follow(engine: ScriptedEngine, until: Any) -> list[tuple[str, dict[str, Any]]]:
    """Run a Follower (waits between attempts cut to nothing) until `until(engine)`."""
    seen: list[tuple[str, dict[str, Any]]] = []
    links: list[Connection] = []

    def message(event: SseEvent, payload: dict[str, Any]) -> None:
        seen.append((event.id, payload))

    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    async with ApiClient(engine.url) as client:
        follower = Follower(
            client,
            on_document=lambda _document: None,
            on_message=message,
            on_connection=links.append,
            sleep=no_wait,
        )
        task = asyncio.create_task(follower.run())
        try:
            async with asyncio.timeout(10):
                while not until(engine):
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return seen


async def test_a_broken_stream_resumes_after_the_last_event_it_delivered():
    scripts = [
        b'retry: 10\n\nid: e1.1\nevent: result\ndata: {"n": 1}\n\n'
        b'id: e1.2\nevent: result\ndata: {"n": 2}\n\n',
        b'id: e1.3\nevent: change\ndata: {"n": 3}\n\n',
    ]
    async with serving(ScriptedEngine(scripts)) as engine:
        seen = await follow(engine, lambda e: len(e.resumed_from) == 3)
    assert engine.resumed_from == ["e1.0", "e1.2", "e1.3"]
    assert seen == [("e1.1", {"n": 1}), ("e1.2", {"n": 2}), ("e1.3", {"n": 3})]
    assert engine.documents == 1  # resumed, never read again


async def test_what_cannot_be_trusted_sends_the_viewer_back_to_the_document():
    scripts = [
        b"id: e1.1\nevent: result\ndata: [1, 2]\n\n",  # JSON, but not a message
        b"id: e2.1\nevent: result\ndata: " + b"x" * (5 * 1024 * 1024) + b"\n\n",  # too large
        b'event: resync\ndata: {"reason": "another epoch"}\n\n',
        b"not a stream",
        b'id: e4.1\nevent: result\ndata: {"n": 1}\n\n',
    ]
    async with serving(ScriptedEngine(scripts)) as engine:
        seen = await follow(engine, lambda e: len(e.resumed_from) == 6)
    # Each untrustworthy stream was followed by a fresh document (a new epoch each time);
    # an answer that is no event stream is a failed attempt, resumed from where it was.
    assert engine.resumed_from == ["e1.0", "e2.0", "e3.0", "e4.0", "e4.0", "e4.1"]
    assert seen == [("e4.1", {"n": 1})]
