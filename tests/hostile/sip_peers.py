"""SIP peers on loopback that answer OPTIONS the way no well-behaved element does: garbage,
oversized messages, responses to other requests, provisional responses forever, text chosen to
attack a terminal, nothing at all. Each is a real UDP or TCP peer; its script gets each request
as it arrived (and, on UDP, how many came before it) and says what to send back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from monitor.lab.sip_peer import SERVER, answer

LOCALHOST = "127.0.0.1"

# (the request's bytes, how many requests came before it) -> what to send back, in order.
Script = Callable[[bytes, int], Sequence[bytes]]


def reply(
    request: bytes, status: int, reason: str, *extra: str, server: str = SERVER, **replace: str
) -> bytes:
    """A response to `request`; `replace` swaps copied headers (`Call_ID="x"` for Call-ID)."""
    swapped = {name.replace("_", "-"): value for name, value in replace.items()}
    made = answer(request, status, reason, extra, swapped, server)
    assert made is not None, request
    return made


@dataclass
class Seen:
    """What a peer received: each request, and when (time.monotonic())."""

    requests: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    port: int = 0

    def intervals(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.times, self.times[1:], strict=False)]


class _Scripted(asyncio.DatagramProtocol):
    def __init__(self, script: Script, seen: Seen) -> None:
        self.script, self.seen = script, seen
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        before = len(self.seen.requests)
        self.seen.requests.append(data)
        self.seen.times.append(time.monotonic())
        assert self.transport is not None
        for datagram in self.script(data, before):
            self.transport.sendto(datagram, addr)


@contextlib.asynccontextmanager
async def udp_peer(script: Script, address: str = LOCALHOST) -> AsyncIterator[Seen]:
    seen = Seen()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Scripted(script, seen), local_addr=(address, 0)
    )
    seen.port = transport.get_extra_info("sockname")[1]
    try:
        yield seen
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def tcp_peer(
    script: Script, address: str = LOCALHOST, close_after: bool = False
) -> AsyncIterator[Seen]:
    """Reads each request's header section, writes what the script says (each item a write of
    its own, so one response may arrive in pieces), and closes if `close_after`."""
    seen = Seen()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                before = len(seen.requests)
                seen.requests.append(request)
                seen.times.append(time.monotonic())
                for piece in script(request, before):
                    writer.write(piece)
                    await writer.drain()
                if close_after:
                    break
        writer.close()

    server = await asyncio.start_server(serve, address, 0)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
