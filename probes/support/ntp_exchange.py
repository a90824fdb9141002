"""The UDP exchange of an ntp check: queries sent on their schedule, replies matched to them,
everything else counted and ignored.

One connected UDP socket per check: the kernel drops datagrams from any other address or port,
and a closed port's ICMP error comes back as ConnectionRefusedError at once instead of waiting
out the timeout. Each query's transmit timestamp is 64 random bits, not our clock (chrony does
the same: the server learns nothing of our clock, and a forger off the path must guess them).
A server echoes it as the reply's origin timestamp; a reply that does not (a late answer to
another query, a forgery, garbage) is counted and ignored while the real one is awaited
(RFC 5905 §8). Our own send and receive times are kept here, never put on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import cast

from monitor.core.errors import ProtocolFailure
from probes.support import ntp_packet
from probes.support.ntp_packet import Packet

# The poll exponent our queries carry: 64 s, ntpd's default minimum. Servers echo it or
# ignore it; none should take a monitoring query for a client that polls every second.
QUERY_POLL = 6
# A query is sent only while this share of the time budget is left for its reply.
_REPLY_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Sample:
    """One reply to one of our queries, with our clock's readings around it."""

    packet: Packet
    sent: int  # T1: our clock when the query left, as an NTP timestamp
    received: int  # T4: our clock when the reply arrived

    @property
    def offset(self) -> float:
        """θ: how far the server's clock is ahead of ours, in seconds (RFC 5905 §8)."""
        there = ntp_packet.seconds_between(self.packet.receive, self.sent)
        back = ntp_packet.seconds_between(self.packet.transmit, self.received)
        return (there + back) / 2

    @property
    def delay(self) -> float:
        """δ: the round trip less the server's own holding time, in seconds; never negative
        (a server that claims to have held the query longer than the round trip lies)."""
        round_trip = ntp_packet.seconds_between(self.received, self.sent)
        held = ntp_packet.seconds_between(self.packet.transmit, self.packet.receive)
        return max(0.0, round_trip - held)


@dataclass
class Ignored:
    """Datagrams that arrived but answered none of our queries, by why."""

    short: int = 0  # too short to be NTP at all
    strays: int = 0  # another origin timestamp: not a reply to any query of ours
    duplicates: int = 0  # a second reply to a query already answered
    bogus: int = 0  # a reply to our query that no server could send (wrong mode, version...)
    first_fault: str = ""

    @property
    def total(self) -> int:
        return self.short + self.strays + self.duplicates + self.bogus

    def words(self) -> str:
        counts = (
            (self.short, "too short for NTP"),
            (self.strays, "with another origin timestamp, answering no query of ours"),
            (self.duplicates, "repeating a reply already taken"),
            (self.bogus, f"that no server sends ({self.first_fault})"),
        )
        return ", ".join(
            f"{count} datagram{'' if count == 1 else 's'} {what}" for count, what in counts if count
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    samples: tuple[Sample, ...]  # every valid reply, in order of arrival; kisses of death too
    sent: int
    ignored: Ignored

    def failure(self, timeout: float) -> Exception:
        """Why no sample came, when none did."""
        asked = f"{self.sent} quer{'y' if self.sent == 1 else 'ies'}"
        if self.ignored.short or self.ignored.bogus:
            return ProtocolFailure(f"no valid reply to {asked}: {self.ignored.words()}")
        if self.ignored.total:
            return TimeoutError(
                f"no reply to {asked} within {timeout:g}s; ignored {self.ignored.words()}"
            )
        return TimeoutError(f"no reply to {asked} within {timeout:g}s")


@dataclass(eq=False)  # a protocol is one endpoint, not a value
class _Client(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport | None = None
    waiting: dict[int, int] = field(default_factory=dict)  # our transmit nonce -> T1
    answered: set[int] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)
    ignored: Ignored = field(default_factory=Ignored)
    error: OSError | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport on 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send(self) -> None:
        assert self.transport is not None
        nonce = secrets.randbits(64) or 1  # zero is what a query's own origin field holds
        self.waiting[nonce] = ntp_packet.timestamp(time.time_ns())
        self.transport.sendto(ntp_packet.request(nonce, QUERY_POLL))

    def datagram_received(self, data: bytes, _addr: tuple[str, int]) -> None:
        received = ntp_packet.timestamp(time.time_ns())
        try:
            packet = ntp_packet.parse(data)
        except ValueError:
            self.ignored.short += 1
            return
        sent = self.waiting.pop(packet.origin, None)
        if sent is None:
            if packet.origin in self.answered:
                self.ignored.duplicates += 1
            else:
                self.ignored.strays += 1
            return
        self.answered.add(packet.origin)
        fault = packet.fault()
        if fault is None:
            self.samples.append(Sample(packet, sent, received))
        else:
            self.ignored.bogus += 1
            self.ignored.first_fault = self.ignored.first_fault or fault
        self.changed.set()

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc
            self.changed.set()

    @property
    def told_to_stop(self) -> bool:
        """A kiss of death says stop (DENY, RSTR) or slow down (RATE): no more queries."""
        return any(sample.packet.kiss is not None for sample in self.samples)


async def exchange(
    address: str, port: int, samples: int, interval: float, budget: float
) -> Exchange:
    """Up to `samples` queries `interval` apart, and the replies that came within `budget`
    seconds. Raises the socket's error (a refused port) when it came before any reply."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_Client, remote_addr=(address, port))
    try:
        started = loop.time()
        deadline = started + budget
        last_send = deadline - budget * _REPLY_SHARE
        sent = 0
        while client.error is None and not client.told_to_stop:
            now = loop.time()
            due = started + sent * interval
            more = sent < samples and due <= last_send
            if more and now >= due:
                client.send()
                sent += 1
                continue
            if now >= deadline or not (more or client.waiting):
                break
            client.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(min(due, deadline) if more else deadline):
                    await client.changed.wait()
    finally:
        transport.close()
    if client.error is not None and not client.samples:
        raise client.error
    return Exchange(tuple(client.samples), sent, client.ignored)
