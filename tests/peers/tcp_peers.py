"""Real TCP peers on loopback: a listener that accepts, one that never completes a handshake,
and a port that is certainly closed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator


@contextlib.asynccontextmanager
async def accepting_listener(host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Accepts connections and keeps them open without a word (a 'silent' service)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.contextmanager
def blackhole_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port whose connects hang: the listener's accept queue is full and never drained, so
    the kernel drops further SYNs, as a firewall that silently drops would."""
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect((host, port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released, so nothing else holds it now)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
