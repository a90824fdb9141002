"""Local HTTP peers for the http probe tests, all bound to 127.0.0.1 on ephemeral ports.

`http_server()` serves an aiohttp app with one handler per behaviour a probe must tell apart;
the raw servers misbehave below HTTP (silence, garbage). Every peer is an async context manager
so a test fixture tears it down even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

LOOPBACK = "127.0.0.1"
OK_BODY = "commwatch peer: link up\n"
SLOW_SECONDS = 0.2
HUGE_BYTES = 50 * 1024 * 1024
SECRET_HEADER = "X-Api-Token"
_CHUNK = b"x" * 65536


@dataclass
class Seen:
    """What the peer received, for tests to assert on the request side."""

    methods: list[str] = field(default_factory=list)
    secret_values: list[str | None] = field(default_factory=list)
    # Every request that reached a handler, in order: (method, path).
    requests: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class HttpPeer:
    url: str
    seen: Seen


def _app(seen: Seen, release: asyncio.Event) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        seen.methods.append(request.method)
        return web.Response(text=OK_BODY)

    async def odd_charset(request: web.Request) -> web.Response:
        return web.Response(body=OK_BODY.encode(), content_type="text/plain", charset="x-made-up")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page\n")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_SECONDS)
        return web.Response(text=OK_BODY)

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late\n")

    async def redirect(request: web.Request) -> web.Response:
        hops = int(request.match_info["hops"])
        raise web.HTTPFound("/ok" if hops <= 1 else f"/redirect/{hops - 1}")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def huge(request: web.Request) -> web.StreamResponse:
        # Generated as it is sent: the peer must not hold the body in memory either.
        response = web.StreamResponse(headers={"Content-Length": str(HUGE_BYTES)})
        await response.prepare(request)
        # The probe hangs up once it has read its cap; that is the expected end here.
        with contextlib.suppress(ConnectionError):
            for _ in range(HUGE_BYTES // len(_CHUNK)):
                await response.write(_CHUNK)
        return response

    async def secret(request: web.Request) -> web.Response:
        value = request.headers.get(SECRET_HEADER)
        seen.secret_values.append(value)
        return web.Response(status=200 if value else 401, text="checked\n")

    @web.middleware
    async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.requests.append((request.method, request.path))
        return await handler(request)

    app = web.Application(middlewares=[note])
    app.router.add_get("/ok", ok)
    app.router.add_get("/odd-charset", odd_charset)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/redirect/{hops}", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/huge", huge)
    app.router.add_get("/secret", secret)
    return app


@contextlib.asynccontextmanager
async def http_server(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[HttpPeer]:
    """An aiohttp server; the peer's `url` has no trailing slash (append `/ok` etc.)."""
    seen, release = Seen(), asyncio.Event()
    runner = web.AppRunner(_app(seen, release), access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    try:
        yield HttpPeer(f"{scheme}://{LOOPBACK}:{port}", seen)
    finally:
        release.set()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(reply: bytes | None) -> AsyncIterator[str]:
    """A TCP server below HTTP: sends `reply` and closes, or with None accepts and stays silent.
    Yields the base URL."""
    connections: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        if reply is not None:
            await reader.read(65536)
            writer.write(reply)
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port on 127.0.0.1 that was just free: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]
