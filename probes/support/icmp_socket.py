"""The sockets an icmp check sends its echo requests on, and what arrives on them.

Two ways to send ICMP on Linux, tried in this order (as ping does):

- An ICMP datagram socket (SOCK_DGRAM, IPPROTO_ICMP or IPPROTO_ICMPV6), open to any process
  whose group is in `net.ipv4.ping_group_range` (the one sysctl governs IPv6 too). The kernel
  sets the echo identifier to the socket's port and hands each socket only the echo replies
  with its identifier, so every check has a socket of its own. ICMP errors about its echoes
  come through the socket's error queue (IP_RECVERR), with the reporter's address.
- A raw socket (SOCK_RAW), for root or CAP_NET_RAW. Every raw ICMP socket gets a copy of every
  ICMP packet the host receives, so one engine shares one per family, source address and
  don't-fragment setting among all its checks (`RawChannels`, in the engine's
  SharedResources), each check leasing an identifier of its own: a thousand checks in flight
  cost a thousand copies of each reply otherwise. The kernel's ICMP filters keep out what is
  neither an echo reply nor an error.

When neither can be had, the failure names the sysctl to change. Arrival times are the
kernel's (SO_TIMESTAMPNS), not the event loop's, so a busy loop does not lengthen the RTTs.
The socket options are Linux's (<linux/in.h>, <linux/in6.h>, <linux/errqueue.h>), which
Python's socket module does not all name.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from monitor.core.errors import ConfigFailure
from probes.base import SharedResources
from probes.support import icmp_packet
from probes.support.icmp_packet import EchoReply, IcmpError

IP_MTU_DISCOVER, IP_RECVERR, IP_MTU = 10, 11, 14
IP_PMTUDISC_DONT, IP_PMTUDISC_DO = 0, 2
IPV6_MTU_DISCOVER, IPV6_MTU, IPV6_RECVERR, IPV6_DONTFRAG = 23, 24, 25, 62
IPV6_PMTUDISC_DO = 2
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33  # Linux: SO_RCVBUF beyond net.core.rmem_max, for CAP_NET_ADMIN
# The kernel's queue of a raw socket. One raw socket hears every echo reply of every check of
# the engine (its filter narrows the ICMP types, not the checks): at hundreds of echoes a
# second the default queue (about 208 KiB, some 200 replies) fills in one stall of the event
# loop, and every reply the kernel drops there would be reported as the link's loss.
_RAW_QUEUE = 4 * 1024 * 1024
SOL_RAW, ICMP_FILTER, ICMP6_FILTER = 255, 1, 1
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EXTENDED_ERROR = struct.Struct("=IBBBBII")  # struct sock_extended_err
_TIMESPEC = struct.Struct("@ll")
_RECEIVE_BUFFER = 65536  # the largest IP packet and then some: nothing is ever truncated
_ANCILLARY = 512
_BATCH = 64  # datagrams read per wakeup: a flood cannot keep the event loop to itself
PING_GROUP_RANGE = "net.ipv4.ping_group_range"
_PING_GROUP_RANGE_FILE = "/proc/sys/net/ipv4/ping_group_range"
_PROTOCOL: dict[int, int] = {
    socket.AF_INET: socket.IPPROTO_ICMP,
    socket.AF_INET6: socket.IPPROTO_ICMPV6,
}
_FOREVER_GROUPS = "0 2147483647"
_FAMILY: dict[int, str] = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}


@dataclass(frozen=True, slots=True)
class Arrival:
    """An echo reply or an ICMP error, who sent it, and when it arrived (time.time_ns(), the
    kernel's reading when it gave one) and when we read it (time.perf_counter_ns())."""

    message: EchoReply | IcmpError
    source: str
    arrived_ns: int
    read_ns: int


Deliver = Callable[[Arrival], None]


class Endpoint(Protocol):
    """Where one check sends its echoes and from which it hears what came back for them."""

    kind: str  # "datagram" or "raw"
    ident: int

    def send(self, packet: bytes, address: tuple[str, int] | tuple[str, int, int, int]) -> None:
        """Sends now; raises the OSError the kernel refused the packet with."""

    def close(self) -> None: ...


def _settle(sock: socket.socket, family: int, source: str | None, dont_fragment: bool) -> None:
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if family == socket.AF_INET:
        discover = IP_PMTUDISC_DO if dont_fragment else IP_PMTUDISC_DONT
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, discover)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, int(dont_fragment))
        if dont_fragment:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
    if source is not None or sock.type == socket.SOCK_DGRAM:
        try:
            # A datagram socket's port is its echo identifier: bound now, it is known now.
            sock.bind((source or "", 0))
        except socket.gaierror:  # an address of the other family
            raise ConfigFailure(
                f"source {source} is not an address of this host in {_FAMILY[family]}"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EINVAL):
                raise
            raise ConfigFailure(
                f"source {source} is not an address of this host: {os.strerror(exc.errno)}"
            ) from None


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


class _Reader:
    """Reads what a socket received, parsed, until it has nothing more (or a batch is done)."""

    def __init__(self, sock: socket.socket, family: int, with_ip_header: bool) -> None:
        self.sock = sock
        self.family = family
        self.with_ip_header = with_ip_header
        self._buffer = bytearray(_RECEIVE_BUFFER)
        self._view = memoryview(self._buffer)

    def read(self, deliver: Callable[[Arrival], None]) -> None:
        for _ in range(_BATCH):
            try:
                size, ancillary, flags, address = self.sock.recvmsg_into([self._buffer], _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error reported as the socket's pending error; its details were in
                # the error queue, already read.
                continue
            read_ns = time.perf_counter_ns()
            if flags & socket.MSG_TRUNC:
                continue
            message = icmp_packet.parse(
                self.family, bytes(self._view[:size]), with_ip_header=self.with_ip_header
            )
            if message is not None:
                arrived = _timestamp(ancillary) or time.time_ns()
                deliver(Arrival(message, str(address[0]), arrived, read_ns))


class DatagramEndpoint:
    """A check's own ICMP datagram socket. Raises PermissionError when the process's group is
    outside net.ipv4.ping_group_range."""

    kind = "datagram"

    def __init__(
        self, family: int, source: str | None, dont_fragment: bool, deliver: Deliver
    ) -> None:
        sock = socket.socket(family, socket.SOCK_DGRAM, _PROTOCOL[family])
        try:
            _settle(sock, family, source, dont_fragment)
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        except BaseException:
            sock.close()
            raise
        self.ident = int(sock.getsockname()[1])
        self._sock = sock
        self._family = family
        self._deliver = deliver
        self._reader = _Reader(sock, family, with_ip_header=False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def send(self, packet: bytes, address: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self._sock.sendto(packet, address)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _readable(self) -> None:
        self._read_errors()
        self._reader.read(self._deliver)

    def _read_errors(self) -> None:
        """The ICMP errors about our echoes, from the error queue: the kernel's reading of the
        error (type, code, MTU), the reporter, and the echo it quotes. Local errors (a packet
        too big to send) are the send's own exception already."""
        for _ in range(_BATCH):
            try:
                data, ancillary, _, address = self._sock.recvmsg(
                    _RECEIVE_BUFFER, _ANCILLARY, socket.MSG_ERRQUEUE
                )
            except OSError:  # EAGAIN: the queue is empty
                return
            read_ns = time.perf_counter_ns()
            for level, kind, cmsg in ancillary:
                if (level, kind) not in (
                    (socket.IPPROTO_IP, IP_RECVERR),
                    (socket.IPPROTO_IPV6, IPV6_RECVERR),
                ):
                    continue
                error = self._queued_error(cmsg, data, str(address[0]))
                if error is not None:
                    message, reporter = error
                    arrived = _timestamp(ancillary) or time.time_ns()
                    self._deliver(Arrival(message, reporter, arrived, read_ns))

    def _queued_error(
        self, cmsg: bytes, quoted: bytes, destination: str
    ) -> tuple[IcmpError, str] | None:
        if len(cmsg) < _EXTENDED_ERROR.size:
            return None
        _, origin, kind, code, _, info, _ = _EXTENDED_ERROR.unpack_from(cmsg)
        if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            return None
        if kind not in icmp_packet.ERROR_TYPES[self._family]:
            return None  # a redirect or a source quench: nothing about reachability
        mtu = info if info else None
        message = icmp_packet.quoted_error(self._family, kind, code, mtu, quoted, destination)
        if message is None:
            return None
        return message, _offender(cmsg[_EXTENDED_ERROR.size :], destination)


def _offender(sockaddr: bytes, fallback: str) -> str:
    """The address in the struct sockaddr after a sock_extended_err: who reported it."""
    if len(sockaddr) >= 8 and struct.unpack_from("=H", sockaddr)[0] == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])
    if len(sockaddr) >= 24 and struct.unpack_from("=H", sockaddr)[0] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])
    return fallback


def _deepen_queue(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RAW_QUEUE)
    except PermissionError:  # without CAP_NET_ADMIN: as deep as net.core.rmem_max allows
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RAW_QUEUE)


class _RawChannel:
    """One raw socket and the checks listening on it, by echo identifier."""

    def __init__(self, family: int, source: str | None, dont_fragment: bool) -> None:
        sock = socket.socket(family, socket.SOCK_RAW, _PROTOCOL[family])
        try:
            _settle(sock, family, source, dont_fragment)
            _filter(sock, family)
            _deepen_queue(sock)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.listeners: dict[int, Deliver] = {}
        self._reader = _Reader(sock, family, with_ip_header=family == socket.AF_INET)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        self._reader.read(self._dispatch)

    def _dispatch(self, arrival: Arrival) -> None:
        listener = self.listeners.get(arrival.message.ident)
        if listener is not None:  # else someone else's ping: not ours to count
            listener(arrival)

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _filter(sock: socket.socket, family: int) -> None:
    """Let in echo replies and errors only: a raw socket would see every ICMP packet, our own
    echo requests to loopback among them. Set bits block (Linux's ICMP_FILTER, ICMP6_FILTER)."""
    passed = {icmp_packet.ECHO_REPLY[family], *icmp_packet.ERROR_TYPES[family]}
    if family == socket.AF_INET:
        mask = 0xFFFFFFFF & ~sum(1 << kind for kind in passed)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", mask))
        return
    words = [0xFFFFFFFF] * 8
    for kind in passed:
        words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))


@dataclass(eq=False)
class RawLease:
    """A check's identifier on a shared raw socket."""

    channel: _RawChannel
    ident: int
    taken: set[int]  # the identifiers leased in its family
    kind: str = "raw"

    def send(self, packet: bytes, address: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self.channel.sock.sendto(packet, address)

    def close(self) -> None:
        self.channel.listeners.pop(self.ident, None)
        self.taken.discard(self.ident)


class RawChannels:
    """The raw sockets of one engine, opened when first needed. Identifiers are unique per
    family across them: each raw socket of a family sees the replies meant for all of them."""

    def __init__(self) -> None:
        self._channels: dict[tuple[int, str | None, bool], _RawChannel] = {}
        self._taken: dict[int, set[int]] = {socket.AF_INET: set(), socket.AF_INET6: set()}
        self._next = int.from_bytes(os.urandom(2), "big")

    def lease(
        self, family: int, source: str | None, dont_fragment: bool, deliver: Deliver
    ) -> RawLease:
        """Raises PermissionError without root or CAP_NET_RAW."""
        key = (family, source, dont_fragment)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _RawChannel(family, source, dont_fragment)
        taken = self._taken[family]
        if len(taken) >= 0xFFFF:
            raise ConfigFailure("every ICMP echo identifier is in use by this engine's checks")
        while True:
            self._next = self._next % 0xFFFF + 1  # 1 to 65535, in turn: reused last
            if self._next not in taken:
                break
        taken.add(self._next)
        channel.listeners[self._next] = deliver
        return RawLease(channel, self._next, taken)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


async def _raw_channels() -> RawChannels:
    return RawChannels()


async def _close_raw_channels(channels: RawChannels) -> None:
    channels.close()


async def open_endpoint(
    family: int,
    source: str | None,
    dont_fragment: bool,
    deliver: Deliver,
    shared: SharedResources,
) -> Endpoint:
    """A datagram socket of the check's own if the system allows one, else a lease on the
    engine's raw socket; ConfigFailure naming the sysctl when neither can be had."""
    try:
        return DatagramEndpoint(family, source, dont_fragment, deliver)
    except PermissionError:
        pass  # the group is outside ping_group_range: a raw socket, if we may
    except OSError as exc:
        if exc.errno == errno.EAFNOSUPPORT:
            raise ConfigFailure(f"{_FAMILY[family]} is not available on this host") from None
        if exc.errno not in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
            raise
    channels = await shared.get("icmp.raw", _raw_channels, _close_raw_channels)
    try:
        return channels.lease(family, source, dont_fragment, deliver)
    except PermissionError:
        raise no_icmp_socket() from None


def no_icmp_socket() -> ConfigFailure:
    """Why this process may open no ICMP socket at all, and what to change."""
    group = os.getegid()
    try:
        with open(_PING_GROUP_RANGE_FILE, encoding="ascii") as allowed:
            now = " ".join(allowed.read().split())
    except OSError:
        now = "unreadable"
    return ConfigFailure(
        f"cannot open an ICMP socket: group {group} is outside {PING_GROUP_RANGE} ({now}), "
        "which datagram ICMP sockets need, and raw ones need root or CAP_NET_RAW; allow the "
        f"group with sysctl -w {PING_GROUP_RANGE}='{group} {group}' "
        f"('{_FOREVER_GROUPS}': every group), or run as root"
    )


def path_mtu(family: int, address: tuple[str, int] | tuple[str, int, int, int]) -> int | None:
    """The MTU this host knows for the path to `address` (the interface's, or a smaller one
    learnt from the network), read from a connected UDP socket: nothing is sent."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address[0], 9, *address[2:]))
            if family == socket.AF_INET:
                return int(probe.getsockopt(socket.IPPROTO_IP, IP_MTU))
            return int(probe.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU))
    except OSError:
        return None
