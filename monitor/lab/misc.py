"""The lab's plain TCP peers: a router's SSH banner, and a peer that accepts and then hangs.

A closed port needs no peer: the lab reserves its address and binds nothing there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from monitor.lab.layout import Behaviour, PortTaken

SSH_BANNER = b"SSH-2.0-commwatch-lab\r\n"
HANG_IDLE_SECONDS = 120.0  # a hung peer still lets go of a client that went away long ago
_READ_CHUNK = 4096


async def _banner(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        writer.write(SSH_BANNER)
        await writer.drain()
    writer.close()


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads and discards (memory stays bounded) until the client leaves or idles out."""
    with contextlib.suppress(ConnectionError, TimeoutError):
        while await asyncio.wait_for(reader.read(_READ_CHUNK), HANG_IDLE_SECONDS):
            pass
    writer.close()


_HANDLERS: dict[Behaviour, Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]]
_HANDLERS = {Behaviour.SSH_BANNER: _banner, Behaviour.HANGING: _hang}


class TcpPeers:
    def __init__(self) -> None:
        self._servers: list[asyncio.Server] = []
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, behaviour: Behaviour, address: str, port: int) -> None:
        handler = _HANDLERS[behaviour]

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._clients.add(task)
            try:
                await handler(reader, writer)
            finally:
                self._clients.discard(task)

        try:
            self._servers.append(await asyncio.start_server(tracked, address, port))
        except OSError as exc:
            raise PortTaken(address, port, exc) from exc

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
