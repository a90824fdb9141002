"""The lab's NTP server: answers client queries (mode 3) with this host's time, as a primary
server disciplined by GPS would (stratum 1, reference "GPS"). It never asks any server itself.

`ServerClock` says what a reply claims, so tests can make servers that lie in one field each
(an hour off, unsynchronised, a kiss of death) from the same code.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass
from typing import cast

from monitor.lab.listeners import Listeners

# RFC 5905 §7.3: LI/VN/Mode, stratum, poll, precision, root delay, root dispersion, reference
# id, then the reference, origin, receive and transmit timestamps.
_HEADER = struct.Struct("!BBbbII4sQQQQ")
_NTP_UNIX_EPOCH = 2_208_988_800  # 1970 in seconds since 1900
_CLIENT, _SERVER = 3, 4


@dataclass(frozen=True)
class ServerClock:
    """What the server's replies say about its clock."""

    stratum: int = 1
    reference_id: bytes = b"GPS\0"
    leap: int = 0
    offset: float = 0.0  # seconds the served time is ahead of this host's clock
    precision: int = -20  # log2 seconds, about a microsecond
    root_delay: float = 0.0  # seconds
    root_dispersion: float = 0.0002
    synchronised_ago: float = 16.0  # seconds since its reference last set it


def _timestamp(unix_seconds: float) -> int:
    return round((unix_seconds + _NTP_UNIX_EPOCH) * 2**32) % 2**64


def _short(seconds: float) -> int:
    return min(round(seconds * 65536), 2**32 - 1)


def answer(query: bytes, clock: ServerClock, received: float) -> bytes | None:
    """The reply to `query`, received at `received` (time.time()), or None for anything that
    is not a client query (a server drops those)."""
    if len(query) < _HEADER.size:
        return None
    first = query[0]
    version, mode = first >> 3 & 7, first & 7
    if mode != _CLIENT or version not in (3, 4):
        return None
    poll = struct.unpack_from("!b", query, 2)[0]
    (transmitted,) = struct.unpack_from("!Q", query, 40)
    served = clock.offset + received
    return _HEADER.pack(
        clock.leap << 6 | version << 3 | _SERVER,
        clock.stratum,
        poll,
        clock.precision,
        _short(clock.root_delay),
        _short(clock.root_dispersion),
        clock.reference_id,
        _timestamp(served - clock.synchronised_ago),
        transmitted,  # the origin timestamp: the client's own transmit, echoed
        _timestamp(served),
        _timestamp(clock.offset + time.time()),
    )


class _Server(asyncio.DatagramProtocol):
    def __init__(self, clock: ServerClock) -> None:
        self.clock = clock

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport on 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(data, self.clock, time.time())
        if reply is not None:
            self.transport.sendto(reply, addr)


class NtpPeer:
    def __init__(self, clock: ServerClock | None = None) -> None:
        self.clock = clock or ServerClock()
        self._listeners = Listeners()

    async def start(self, address: str, port: int) -> None:
        """Raises PortTaken when the address and port are in use."""
        await self._listeners.udp(lambda: _Server(self.clock), address, port)

    async def stop(self) -> None:
        await self._listeners.stop()
