"""DNS servers on 127.0.0.1 that answer with what no well-behaved server sends: replies to other
queries, cut or looping messages, impossible counts, trickled TCP, text chosen to attack a
terminal. Each is a real UDP (or TCP) peer; the script gets the query's wire bytes and says
which datagrams to send back, after how long."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import dns.message
import dns.rrset

from tests.peers.dns_peers import free_port

LOCALHOST = "127.0.0.1"

# For one query: (delay in seconds, datagram) pairs, sent in order.
Script = Callable[[bytes], Sequence[tuple[float, bytes]]]


def response(query: bytes, *records: str, name: str | None = None) -> dns.message.Message:
    """A well-formed reply to `query` with `records` ("TYPE DATA") for the asked name, or for
    `name`."""
    request = dns.message.from_wire(query)
    reply = dns.message.make_response(request)
    owner = name or request.question[0].name.to_text()
    for record in records:
        rdtype, _, data = record.partition(" ")
        reply.answer.append(dns.rrset.from_text(owner, 60, "IN", rdtype, data))
    return reply


def with_id(wire: bytes, query_id: int) -> bytes:
    return struct.pack("!H", query_id) + wire[2:]


def header_only(query: bytes, answers: int) -> bytes:
    """A reply header to `query` that announces `answers` records, followed by nothing."""
    return query[:2] + struct.pack("!HHHHH", 0x8180, 0, answers, 0, 0)


def self_pointing_answer(query: bytes) -> bytes:
    """A reply whose answer's owner name is a compression pointer to itself: a decoder that
    followed pointers blindly would loop forever."""
    question_end = 12 + _question_length(query)
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    pointer_at = question_end
    pointer = struct.pack("!H", 0xC000 | pointer_at)
    record = pointer + struct.pack("!HHIH", 1, 1, 60, 4) + bytes((192, 0, 2, 1))
    return header + query[12:question_end] + record


def _question_length(query: bytes) -> int:
    position = 12
    while query[position]:
        position += query[position] + 1
    return position + 1 + 4 - 12


class _Server(asyncio.DatagramProtocol):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        for delay, datagram in self.script(data):
            loop.call_later(delay, self.transport.sendto, datagram, addr)


TcpHandler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted_server(script: Script, tcp: TcpHandler | None = None) -> AsyncIterator[str]:
    """A DNS server following `script` over UDP and, given `tcp`, a TCP listener on the same
    port that reads one length-prefixed query and hands it to `tcp` with the writer. Yields
    its `server` option value."""
    loop = asyncio.get_running_loop()
    port = free_port()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Server(script), local_addr=(LOCALHOST, port)
    )
    tasks: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert tcp is not None
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            await tcp(await reader.readexactly(length), writer)
        writer.close()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.ensure_future(serve(reader, writer)))

    listener = await asyncio.start_server(accept, LOCALHOST, port) if tcp else None
    try:
        yield f"{LOCALHOST}:{port}"
    finally:
        transport.close()
        for task in tasks:
            task.cancel()
        if listener is not None:
            listener.close()
            await listener.wait_closed()
