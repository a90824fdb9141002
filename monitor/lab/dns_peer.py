"""The lab's DNS responder: answers built with dnspython from a small zone, over UDP and TCP,
on every resolver address of the lab. Authoritative for example.net: unknown names there get
NXDOMAIN, anything else REFUSED (it never recurses, so never sends a query anywhere)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from monitor.lab.listeners import Listeners

ZONE = dns.name.from_text("example.net")
TTL = 300
RECORDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cad.psap-north.example.net", "A"): ("127.0.10.2",),
    ("paging.dispatch.example.net", "A"): ("127.0.20.1",),
    ("sip.dispatch.example.net", "A"): ("127.0.20.5",),
    ("_sip._udp.dispatch.example.net", "SRV"): ("10 50 5060 sip.dispatch.example.net.",),
    ("dispatch.example.net", "TXT"): ('"commwatch demo lab"',),
}
_TCP_IDLE_SECONDS = 10.0


def answer(wire: bytes) -> bytes | None:
    """The response to one query, or None for what is not a query at all (dropped, as a
    server does with garbage)."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    if query.flags & dns.flags.QR or len(query.question) != 1:
        return None
    response = dns.message.make_response(query)
    question = query.question[0]
    name, rdtype = question.name, dns.rdatatype.to_text(question.rdtype)
    if not name.is_subdomain(ZONE):
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    response.flags |= dns.flags.AA
    key = (name.to_text(omit_final_dot=True).lower(), rdtype)
    if key in RECORDS:
        response.answer.append(
            dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rdtype, list(RECORDS[key]))
        )
    elif not any(known == key[0] for known, _ in RECORDS):
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(data)
        if reply is not None:
            self.transport.sendto(reply, addr)


class DnsPeer:
    def __init__(self) -> None:
        self._listeners = Listeners()

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Length-prefixed queries (RFC 1035 4.2.2) until the client leaves or idles out."""
        with (
            self._listeners.client(writer),
            contextlib.suppress(ConnectionError, TimeoutError, asyncio.IncompleteReadError),
        ):
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE_SECONDS)
                (size,) = struct.unpack("!H", prefix)
                query = await asyncio.wait_for(reader.readexactly(size), _TCP_IDLE_SECONDS)
                reply = answer(query)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()

    async def start(self, address: str, port: int) -> None:
        await self._listeners.udp(_Udp, address, port)
        await self._listeners.tcp(self._tcp, address, port)

    async def stop(self) -> None:
        await self._listeners.stop()
