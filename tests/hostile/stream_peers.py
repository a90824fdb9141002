"""TCP peers on 127.0.0.1 that abuse a client's patience and memory: they accept and say nothing,
trickle a response a byte at a time, never end their headers or their body, send garbage, or
cut a TLS record short. Each is an asyncio server running `behaviour(reader, writer)` per
connection; `serving` yields the ports of several at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

LOCALHOST = "127.0.0.1"
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
_FOREVER = 3600.0


async def _request(reader: asyncio.StreamReader) -> None:
    """Read what a client sends first (an HTTP request head, a ClientHello), up to 64 KiB."""
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        await asyncio.wait_for(reader.read(65536), 5)


async def hang_after_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(_FOREVER)


async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A status line, then a header one byte every 100 ms, never finished."""
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.1)


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Header lines, each short and valid, as fast as the client reads them, forever."""
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\n")
    number = 0
    while True:
        writer.write(b"".join(b"X-H%d: v\r\n" % (number + i) for i in range(1000)))
        number += 1000
        await writer.drain()


async def huge_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One header line of 64 MiB."""
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Huge: ")
    for _ in range(1024):
        writer.write(b"a" * 65536)
        await writer.drain()
    writer.write(b"\r\n\r\n")
    await writer.drain()


async def endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked body that never ends: 64 KiB chunks, forever."""
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    while True:
        writer.write(chunk)
        await writer.drain()


async def huge_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A body announced as 8 GiB, sent as fast as it is read."""
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8589934592\r\n\r\n")
    block = b"y" * 65536
    while True:
        writer.write(block)
        await writer.drain()


async def endless_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Random bytes, forever, whatever was asked."""
    await _request(reader)
    while True:
        writer.write(os.urandom(65536))
        await writer.drain()


async def truncated_tls_record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A TLS handshake record header that announces 16 KiB, then 10 bytes of it, then silence."""
    await _request(reader)
    writer.write(bytes((0x16, 0x03, 0x03, 0x40, 0x00)) + b"\x02" + b"\x00" * 9)
    await writer.drain()
    await asyncio.sleep(_FOREVER)


async def cut_tls_record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The same cut record, then the connection closed."""
    await _request(reader)
    writer.write(bytes((0x16, 0x03, 0x03, 0x40, 0x00)) + b"\x02" + b"\x00" * 9)
    await writer.drain()


async def endless_tls_records(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Well-framed TLS handshake records of random content, forever."""
    await _request(reader)
    while True:
        writer.write(bytes((0x16, 0x03, 0x03, 0x40, 0x00)) + os.urandom(0x4000))
        await writer.drain()


@contextlib.asynccontextmanager
async def serving(behaviours: Mapping[str, Behaviour]) -> AsyncIterator[dict[str, int]]:
    """A server per behaviour; yields their ports by name. Connections are dropped on exit."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()
    ports: dict[str, int] = {}

    def start(behaviour: Behaviour) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                await behaviour(reader, writer)
            writer.close()

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(run(reader, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return accept

    try:
        for name, behaviour in behaviours.items():
            server = await asyncio.start_server(start(behaviour), LOCALHOST, 0)
            servers.append(server)
            ports[name] = server.sockets[0].getsockname()[1]
        yield ports
    finally:
        for task in list(tasks):
            task.cancel()
        for server in servers:
            server.close()
            await server.wait_closed()
