"""`GET /api/v1/state` and `GET /api/v1/events`: the picture, then everything that follows it.

The event stream is Server-Sent Events: each message has `id: EPOCH.SEQ` (SEQ the id the
history store gave the item, EPOCH the store's own id: monitor.store.numbering), `event: TYPE`
and one `data:` line of compact JSON (the types and their data: monitor.api.feed, and the
`$defs` of `monitor/output/schema/state.schema.json`). It begins with `retry: 2000`; a
`: keepalive` comment goes out after 15 s without a message, so proxies and clients see a live
connection. With `Last-Event-ID` (the header, or `?last_event_id=` for clients that cannot set
it) it resumes after that item, from memory or from the store, across restarts of the engine
too; a position it cannot resume from gets one `resync` message and the end of the stream: the
client refetches the state document and resumes from its position.

Bounded: at most `max_stream_clients` streams (503 beyond), each with a queue of at most
`stream_queue` items; a client that falls that far behind is disconnected, never buffered for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final, Protocol

from aiohttp import web

from monitor.api.control import ack_record
from monitor.api.document import state_document
from monitor.api.errors import error_response
from monitor.api.feed import RING_SIZE, BadEventId, Feed, Message, Snapshot, Subscription
from monitor.api.roles import Role, requires
from monitor.engine.pipeline import Monitor
from monitor.output.records import json_line

KEEPALIVE: Final = 15.0  # seconds without a message before a keepalive comment
RETRY_MS: Final = 2000  # how long an EventSource waits before reconnecting
# Messages already queued go out in one write: a client that fell a little behind catches up
# in a few writes, not one per message.
WRITE_BATCH: Final = 100
# How long a request waits for a starting engine to open its history (and so its numbering).
OPEN_WAIT: Final = 30.0

FEED: Final = web.AppKey("commwatch_feed", Feed)


class StreamConfig(Protocol):
    """What the stream reads of the API's configuration (monitor/config/api.py's ApiConfig)."""

    @property
    def max_stream_clients(self) -> int: ...
    @property
    def stream_queue(self) -> int: ...


def frame(message: Message) -> bytes:
    """One message as SSE: the data is one line (JSON escapes every line break)."""
    lines = [f"id: {message.event_id}\n"] if message.event_id else []
    lines += [f"event: {message.type}\n", f"data: {message.data}\n\n"]
    return "".join(lines).encode()


def attach(
    app: web.Application,
    monitor: Monitor,
    config: StreamConfig,
    *,
    keepalive: float = KEEPALIVE,
    ring_size: int = RING_SIZE,
) -> Feed:
    """Keep what `monitor` publishes from now on, acknowledgements and pauses included, and
    serve it on `app`."""

    def document(snapshot: Snapshot) -> dict[str, Any]:
        acks = [ack_record(ack) for ack in monitor.acks]
        return state_document(monitor, snapshot, acks, time.time())

    feed, unwatch = Feed.attach(monitor, document, ring_size)
    app[FEED] = feed

    async def opened() -> None:
        try:
            await asyncio.wait_for(feed.wait_open(), OPEN_WAIT)
        except TimeoutError:
            raise web.HTTPServiceUnavailable(
                text="the engine has not opened its history yet", headers={"Retry-After": "5"}
            ) from None

    @requires(Role.VIEWER)
    async def state(request: web.Request) -> web.StreamResponse:
        await opened()
        return web.json_response(
            document(feed.snapshot()), dumps=json_line, headers={"Cache-Control": "no-store"}
        )

    @requires(Role.VIEWER)
    async def events(request: web.Request) -> web.StreamResponse:
        await opened()
        last_event_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        if len(feed.subscriptions) >= config.max_stream_clients:
            return error_response(
                503,
                f"the event stream serves at most {config.max_stream_clients} clients",
                {"Retry-After": "10"},
            )
        try:
            subscription = feed.subscribe(last_event_id or None, config.stream_queue)
        except BadEventId as exc:
            return error_response(400, str(exc))
        return await _stream(request, subscription, keepalive)

    async def stop_streams(_app: web.Application) -> None:
        feed.close()

    async def unwatch_monitor(_app: web.Application) -> None:
        unwatch()

    app.router.add_get("/api/v1/state", state)
    app.router.add_get("/api/v1/events", events)
    app.on_shutdown.append(stop_streams)
    app.on_cleanup.append(unwatch_monitor)
    return feed


async def _stream(
    request: web.Request, subscription: Subscription, keepalive: float
) -> web.StreamResponse:
    """Serve one subscription as Server-Sent Events until it ends or the client goes."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a reverse proxy must not hold messages back
        }
    )
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        transport = request.transport
        if transport is not None:
            # Dropped for falling behind: a write may be waiting on a reader that does not
            # read, so the connection goes at once, and that write with it.
            subscription.on_drop = transport.abort
        while True:
            try:
                batch = await asyncio.wait_for(subscription.take(WRITE_BATCH), keepalive)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if not batch:
                break
            await response.write(b"".join(frame(message) for message in batch))
    except ConnectionError:
        pass  # the client went away; its reconnect resumes
    finally:
        subscription.close()
    return response
