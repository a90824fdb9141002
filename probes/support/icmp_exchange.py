"""The echoes of one icmp check: requests sent on their schedule, each reply matched to its
request, everything else counted and not trusted.

A reply is the answer to a request when it carries the request's identifier and sequence
number, comes from the address asked, and echoes its payload byte for byte: the payload begins
with 8 random bytes of this check's, so no other process's echo with the same identifier
passes for ours (a datagram socket's identifier is its port, which the kernel chose; a raw
socket's is leased by the engine). What fails a test is counted apart and never timed:

- late: the first reply to a request, but after `reply_timeout` (counted as lost, as a voice
  or radio stream would lose it);
- duplicates: a second reply to a request (a bridging loop, a retransmitting middlebox);
- wrong source: our identifier, sequence and payload, from another address;
- corrupted: our identifier, sequence and cookie, with a payload that differs after it;
- strays: our identifier, but a sequence or cookie we never sent.

ICMP errors about a request (unreachable, fragmentation needed, time exceeded) answer it too:
it is lost, for the reason the error names.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import ipaddress
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from probes.base import SharedResources
from probes.support import icmp_packet, icmp_socket
from probes.support.icmp_packet import IcmpError
from probes.support.icmp_socket import Arrival, Endpoint

COOKIE_SIZE = 8
_IP_HEADER: dict[int, int] = {socket.AF_INET: 20, socket.AF_INET6: 40}
# A kernel arrival time later than our own reading by more than this is another clock's.
_CLOCK_SLACK_NS = 1_000_000

SockAddr = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class EchoPlan:
    count: int
    interval: float  # seconds from one request to the next
    size: int  # payload bytes
    reply_timeout: float  # seconds: a reply slower than this is late
    dont_fragment: bool
    source: str | None

    @property
    def duration(self) -> float:
        """The longest the echoes take: the last is sent, and its reply awaited."""
        return (self.count - 1) * self.interval + self.reply_timeout


@dataclass(frozen=True, slots=True)
class Exchange:
    socket_kind: str  # "datagram" or "raw"
    sent: int
    rtts_ms: tuple[float, ...]  # the valid replies', in the order of their sequence numbers
    late: int
    duplicates: int
    wrong_source: int
    wrong_source_address: str  # the first such reply's, "" when none came
    corrupted: int
    strays: int
    errors: tuple[tuple[str, int], ...]  # "what, reported by whom", and for how many requests
    unsent: tuple[tuple[str, int], ...]  # why the kernel refused to send, and how many

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    def refusals(self) -> str:
        """The ICMP errors and the refusals to send, most frequent first, in words."""
        return "; ".join(
            f"{what} ({count} of {self.sent})" if count != self.sent else what
            for what, count in (*self.errors, *self.unsent)
        )

    def ignored(self) -> str:
        """The replies counted and not trusted, in words."""
        counts = (
            (self.late, "late"),
            (self.duplicates, "duplicated"),
            (self.wrong_source, f"from another address ({self.wrong_source_address})"),
            (self.corrupted, "with a corrupted payload"),
            (self.strays, "answering no request of this check"),
        )
        return ", ".join(f"{count} {what}" for count, what in counts if count)


class _State(enum.Enum):
    WAITING = "waiting"
    ANSWERED = "answered"
    LATE = "late"
    FAILED = "failed"  # an ICMP error answered it
    UNSENT = "unsent"


@dataclass(slots=True)
class _Request:
    sent_ns: int  # time.time_ns(), to compare with the kernel's arrival time
    sent_perf_ns: int  # time.perf_counter_ns(), in case the wall clock stepped meanwhile
    due: float  # the event loop's time when its reply is late
    state: _State = _State.WAITING
    rtt_ms: float = 0.0


@dataclass(eq=False)
class _Tally:
    family: int
    target: ipaddress.IPv4Address | ipaddress.IPv6Address
    plan: EchoPlan
    payload: bytes
    requests: dict[int, _Request] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a request was answered
    counts: Counter[str] = field(default_factory=Counter)
    wrong_source_address: str = ""
    errors: Counter[str] = field(default_factory=Counter)
    unsent: Counter[str] = field(default_factory=Counter)

    def send(self, endpoint: Endpoint, seq: int, address: SockAddr, now: float) -> None:
        packet = icmp_packet.echo_request(self.family, endpoint.ident, seq, self.payload)
        due = now + self.plan.reply_timeout
        request = self.requests[seq] = _Request(time.time_ns(), time.perf_counter_ns(), due)
        try:
            endpoint.send(packet, address)
        except OSError as exc:
            request.state = _State.UNSENT
            self.unsent[self._refused(exc, len(packet), address)] += 1
            return

    def _refused(self, exc: OSError, size: int, address: SockAddr) -> str:
        if exc.errno != errno.EMSGSIZE:
            said = os.strerror(exc.errno) if exc.errno else str(exc)
            return said[:1].lower() + said[1:]  # "network is unreachable", mid-sentence
        packet = size + _IP_HEADER[self.family]
        mtu = icmp_socket.path_mtu(self.family, address)
        limit = f"the path MTU {mtu} known here" if mtu else "the path MTU known here"
        flagged = " with don't-fragment" if self.plan.dont_fragment else ""
        return f"message too long: {packet}-byte packets{flagged} exceed {limit}"

    def arrived(self, arrival: Arrival) -> None:
        message = arrival.message
        request = self.requests.get(message.seq)
        if isinstance(message, IcmpError):
            self._failed(message, request, arrival.source)
            return
        if request is None or not message.payload.startswith(self.payload[:COOKIE_SIZE]):
            self.counts["strays"] += 1
        elif message.payload != self.payload:
            self.counts["corrupted"] += 1
        elif not _same_address(arrival.source, self.target):
            self.counts["wrong_source"] += 1
            self.wrong_source_address = self.wrong_source_address or arrival.source
        elif request.state in (_State.ANSWERED, _State.LATE):
            self.counts["duplicates"] += 1
        else:
            self._answered(request, arrival)

    def _answered(self, request: _Request, arrival: Arrival) -> None:
        local = arrival.read_ns - request.sent_perf_ns
        kernel = arrival.arrived_ns - request.sent_ns
        rtt_ns = kernel if 0 <= kernel <= local + _CLOCK_SLACK_NS else local
        if rtt_ns > self.plan.reply_timeout * 1e9:
            self.counts["late"] += 1
            request.state = _State.LATE
        else:
            request.state, request.rtt_ms = _State.ANSWERED, rtt_ns / 1e6
        self.changed.set()

    def _failed(self, error: IcmpError, request: _Request | None, reporter: str) -> None:
        cookie = self.payload[: min(COOKIE_SIZE, len(error.quoted))]
        foreign = error.destination is not None and not _same_address(
            error.destination, self.target
        )
        if request is None or foreign or not error.quoted.startswith(cookie):
            self.counts["strays"] += 1
        elif request.state is _State.WAITING:
            request.state = _State.FAILED
            self.errors[f"{error.words()}, reported by {reporter}"] += 1
            self.changed.set()

    async def wait(self, limit: float) -> None:
        """Until no request is waiting for a reply that would still be on time (a lost one is
        not waited for beyond its own reply timeout), or `limit` (the event loop's time)."""
        loop = asyncio.get_running_loop()
        while True:
            waiting = [r.due for r in self.requests.values() if r.state is _State.WAITING]
            deadline = min(limit, max(waiting, default=0.0))
            if loop.time() >= deadline:
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self.changed.wait()

    def result(self, socket_kind: str) -> Exchange:
        answered = [self.requests[seq] for seq in sorted(self.requests)]
        return Exchange(
            socket_kind=socket_kind,
            sent=len(self.requests),
            rtts_ms=tuple(r.rtt_ms for r in answered if r.state is _State.ANSWERED),
            late=self.counts["late"],
            duplicates=self.counts["duplicates"],
            wrong_source=self.counts["wrong_source"],
            wrong_source_address=self.wrong_source_address,
            corrupted=self.counts["corrupted"],
            strays=self.counts["strays"],
            errors=tuple(self.errors.most_common()),
            unsent=tuple(self.unsent.most_common()),
        )


def _same_address(address: str, target: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address == target.compressed:  # as the kernel writes it: no parsing, nearly always
        return True
    try:
        return ipaddress.ip_address(address.partition("%")[0]) == target
    except ValueError:
        return False


def payload(size: int) -> bytes:
    """A fresh cookie, then ping's filler pattern (bytes counting up from 0x10, wrapping)."""
    cookie = os.urandom(COOKIE_SIZE)
    return cookie + bytes((0x10 + i) & 0xFF for i in range(size - COOKIE_SIZE))


async def exchange(
    family: int, address: SockAddr, plan: EchoPlan, shared: SharedResources, budget: float
) -> Exchange:
    """`plan.count` echo requests to `address`, `plan.interval` apart, and what came back
    until no reply still on time is awaited; stops at `budget` seconds whatever is awaited."""
    loop = asyncio.get_running_loop()
    target = ipaddress.ip_address(address[0].partition("%")[0])
    tally = _Tally(family, target, plan, payload(plan.size))
    endpoint = await icmp_socket.open_endpoint(
        family, plan.source, plan.dont_fragment, tally.arrived, shared
    )
    try:
        started = loop.time()
        for seq in range(1, plan.count + 1):
            wait = started + (seq - 1) * plan.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            tally.send(endpoint, seq, address, loop.time())
        await tally.wait(started + budget)
    finally:
        endpoint.close()
    return tally.result(endpoint.kind)
