"""A TCP proxy of the test's own on loopback, between a client and a server of the test, that can
cut every connection through it and refuse new ones: a network link that breaks and mends."""

from __future__ import annotations

import asyncio
import contextlib

from yarl import URL

from tests.peers.ports import free_port

LOOPBACK = "127.0.0.1"


class CuttingProxy:
    """A TCP proxy on loopback in front of `upstream` (an engine, a hub's leaf node port: a
    WAN): `cut()` drops every connection through it and refuses new ones (the port closed)
    until `mend()`. Its port is chosen when it is made, its upstream may be named later."""

    def __init__(self, upstream: URL | None = None) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def url(self) -> URL:
        return URL(f"http://{LOOPBACK}:{self.port}")

    async def mend(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, LOOPBACK, self.port, reuse_address=True
        )

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)  # at once: a cut while connecting upstream cuts it too
        upstream = self.upstream
        assert upstream is not None and upstream.host is not None and upstream.port is not None
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream.host, upstream.port)
        except OSError:
            writer.transport.abort()
            return
        if writer not in self._writers:  # cut meanwhile
            up_writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}
