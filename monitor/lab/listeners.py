"""What a lab service holds open on its address and port (the DNS responder and the SBCs over
UDP and TCP, the master clock over UDP): its datagram endpoints, its TCP servers and their
clients, bound with a named error when a port is taken, and closed together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

from monitor.lab.layout import PortTaken

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Listeners:
    def __init__(self) -> None:
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.Server] = []
        self._clients: set[asyncio.StreamWriter] = set()

    async def udp(
        self, protocol: Callable[[], asyncio.DatagramProtocol], address: str, port: int
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(address, port))
        except OSError as exc:
            raise PortTaken(address, port, exc) from exc
        self._transports.append(transport)

    async def tcp(
        self, handler: StreamHandler, address: str, port: int, limit: int = 2**16
    ) -> None:
        try:
            server = await asyncio.start_server(handler, address, port, limit=limit)
        except OSError as exc:
            raise PortTaken(address, port, exc) from exc
        self._servers.append(server)

    @contextlib.contextmanager
    def client(self, writer: asyncio.StreamWriter) -> Iterator[None]:
        """Holds `writer` for the block (a stop closes it), and closes it after."""
        self._clients.add(writer)
        try:
            yield
        finally:
            self._clients.discard(writer)
            writer.close()

    async def stop(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for writer in self._clients:
            writer.close()
        for server in self._servers:
            await server.wait_closed()
        self._transports.clear()
        self._servers.clear()
