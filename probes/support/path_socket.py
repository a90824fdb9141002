"""The socket a path check sends its rising-TTL probes on, and the answers that come back.

One mechanism serves both methods, IPv4 and IPv6, root or not: Linux's IP_RECVERR (and
IPV6_RECVERR), which queues every ICMP error about a socket's datagrams on the socket's error
queue with the address of the router that sent it (as tracepath reads it). So no raw socket is
needed, and no process sees the answers to another's probes.

- `udp`: a UDP socket, unconnected, one datagram per probe to a port of its own (33434 up, as
  traceroute), told apart on return by the destination port the error queue hands back. Time
  exceeded from a router, port unreachable from the destination.
- `icmp`: an ICMP datagram socket (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6), echo requests whose
  sequence number tells them apart; open to a process whose group is in
  `net.ipv4.ping_group_range` (root's too: the kernel checks the group, not the capability).
  Time exceeded arrives on the error queue, the echo reply as a datagram. Where the group is
  not in the range, a raw socket for root (CAP_NET_RAW): it sees every ICMP packet the host
  gets, so our echoes carry an identifier of their own and the answers are told by it (the
  echo reply's, or the one quoted in a time exceeded or unreachable).

The packets are the icmp kind's (probes/support/icmp_packet.py). Its sockets are not: they
keep one raw socket per family among many checks and match echo replies to leases, where a
trace needs TTLs set per probe and the error queue's offender address, for UDP too.
"""

from __future__ import annotations

import errno
import random
import socket
import struct
import time
from dataclasses import dataclass

from monitor.core.errors import ConfigFailure
from probes.support import icmp_packet

SOL_IP, SOL_IPV6 = 0, 41
IP_RECVERR, IPV6_RECVERR = 11, 25
IP_TTL, IPV6_UNICAST_HOPS = 2, 16
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EXTENDED_ERROR = struct.Struct("=IBBBBII")  # struct sock_extended_err (<linux/errqueue.h>)
BASE_PORT = 33434  # traceroute's: the first of the ports nobody listens on
_BUFFER = 2048
_ANCILLARY = 512
_BATCH = 64  # reads per wakeup: a flood of answers cannot keep the event loop to itself
_PENDING_ERRORS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPROTO, errno.EACCES}
)
PING_GROUP_RANGE = "net.ipv4.ping_group_range"

# What an ICMP error says of a probe: a router on the way, the destination, or the words of
# why the destination cannot be reached (icmp_packet's, as ping says them).
TIME_EXCEEDED = "time exceeded"
REACHED = "reached"
_PORT_UNREACHABLE: dict[int, int] = {socket.AF_INET: 3, socket.AF_INET6: 4}
_EXCEEDED: dict[int, int] = {
    socket.AF_INET: icmp_packet.V4_EXCEEDED,
    socket.AF_INET6: icmp_packet.V6_EXCEEDED,
}
_UNREACHABLE: dict[int, int] = {
    socket.AF_INET: icmp_packet.V4_UNREACHABLE,
    socket.AF_INET6: icmp_packet.V6_UNREACHABLE,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for probe `sequence`: from `source`, `kind` one of TIME_EXCEEDED,
    REACHED, or the words of an unreachable code; `read_at` time.perf_counter()."""

    sequence: int
    source: str
    kind: str
    read_at: float


def _answer_kind(family: int, icmp_type: int, code: int, method: str) -> str | None:
    if icmp_type == _EXCEEDED[family]:
        return TIME_EXCEEDED
    if icmp_type == _UNREACHABLE[family] and code == _PORT_UNREACHABLE[family] and method == "udp":
        return REACHED  # port unreachable: the destination itself said so
    if icmp_type not in icmp_packet.ERROR_TYPES[family]:
        return None
    return icmp_packet.error_words(family, icmp_type, code, None)


class TraceSocket:
    """One check's socket: `send(ttl, sequence)`, then `answers()` whenever it is readable."""

    def __init__(self, family: int, address: str, method: str) -> None:
        self.family, self.address, self.method = family, address, method
        self.sock = _open(family, method)
        self.raw = self.sock.type == socket.SOCK_RAW
        self.ident = random.getrandbits(16)  # a raw socket's echoes: ours among all the host's
        try:
            level, option = (
                (SOL_IP, IP_RECVERR) if family == socket.AF_INET else (SOL_IPV6, IPV6_RECVERR)
            )
            self.sock.setsockopt(level, option, 1)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    @property
    def kind(self) -> str:
        """ "udp", or the ICMP socket's kind: "datagram" or "raw"."""
        if self.method == "udp":
            return "udp"
        return "raw" if self.raw else "datagram"

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, ttl: int, sequence: int) -> None:
        if self.family == socket.AF_INET:
            self.sock.setsockopt(SOL_IP, IP_TTL, ttl)
        else:
            self.sock.setsockopt(SOL_IPV6, IPV6_UNICAST_HOPS, ttl)
        if self.method == "udp":
            datagram = struct.pack("!HH", ttl, sequence) + bytes(28)
            destination = (self.address, BASE_PORT + sequence)
        else:
            datagram = self._echo(sequence)
            destination = (self.address, 0)
        try:
            self.sock.sendto(datagram, destination)
        except OSError as exc:
            # The socket's pending error (an earlier probe's ICMP error, queued already) is
            # reported by the next send instead of sending: send again. A second failure is
            # this host's own (no route), and the check's.
            if exc.errno not in _PENDING_ERRORS:
                raise
            self.sock.sendto(datagram, destination)

    def _echo(self, sequence: int) -> bytes:
        # The kernel sets a datagram socket's identifier; a raw socket's echoes carry ours.
        return icmp_packet.echo_request(
            self.family, self.ident if self.raw else 0, sequence, bytes(32)
        )

    def answers(self) -> list[Answer]:
        """Every answer waiting: the error queue, then the datagrams (echo replies)."""
        found: list[Answer] = []
        for _ in range(_BATCH):
            answer = self._error()
            if answer is None:
                break
            if answer.sequence >= 0:
                found.append(answer)
        for _ in range(_BATCH):
            try:
                data, source = self.sock.recvfrom(_BUFFER)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the pending error of an answer the queue held: read already
                continue
            found.extend(self._datagram(data, source[0]))
        return found

    def _datagram(self, data: bytes, source: str) -> list[Answer]:
        # A UDP answer from the destination (something listens on that port) reaches it too,
        # but says nothing of which probe it answers: the first unanswered one will do.
        if self.method == "udp":
            return (
                [Answer(-1, source, REACHED, time.perf_counter())] if source == self.address else []
            )
        found = icmp_packet.parse(self.family, data, self.raw and self.family == socket.AF_INET)
        if found is None or (self.raw and found.ident != self.ident):
            return []  # another process's, on a raw socket that sees every ICMP packet
        if isinstance(found, icmp_packet.EchoReply):
            return [Answer(found.seq, source, REACHED, time.perf_counter())]
        kind = _answer_kind(self.family, found.type, found.code, self.method)
        return [] if kind is None else [Answer(found.seq, source, kind, time.perf_counter())]

    def _error(self) -> Answer | None:
        """One entry of the error queue (sequence -1 for one that is not ours), None if empty."""
        try:
            data, ancillary, _flags, original = self.sock.recvmsg(
                _BUFFER, _ANCILLARY, socket.MSG_ERRQUEUE
            )
        except (BlockingIOError, InterruptedError):
            return None
        read_at = time.perf_counter()
        for level, kind, payload in ancillary:
            if kind not in (IP_RECVERR, IPV6_RECVERR) or level not in (SOL_IP, SOL_IPV6):
                continue
            if len(payload) < _EXTENDED_ERROR.size:
                continue
            _err, origin, icmp_type, code, _pad, _info, _data = _EXTENDED_ERROR.unpack_from(payload)
            if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
                continue
            answer = _answer_kind(self.family, icmp_type, code, self.method)
            sequence = self._sequence(data, original)
            source = _offender(payload[_EXTENDED_ERROR.size :])
            if answer is None or sequence is None or source is None:
                continue
            return Answer(sequence, source, answer, read_at)
        return Answer(-1, "", "", read_at)

    def _sequence(self, data: bytes, original: object) -> int | None:
        if self.method == "udp":
            # msg_name: where the probe was going, port and all (ip(7), IP_RECVERR).
            if not isinstance(original, tuple) or len(original) < 2:
                return None
            return int(original[1]) - BASE_PORT
        # The quoted echo request, header first.
        quoted = icmp_packet.quoted_error(self.family, 0, 0, None, data, None)
        return None if quoted is None else quoted.seq


def _offender(sockaddr: bytes) -> str | None:
    """The address of whoever sent the ICMP error (SO_EE_OFFENDER: a sockaddr after the
    struct)."""
    if len(sockaddr) < 2:
        return None
    family = struct.unpack_from("=H", sockaddr)[0]
    if family == socket.AF_INET and len(sockaddr) >= 8:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])
    if family == socket.AF_INET6 and len(sockaddr) >= 24:
        return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])
    return None


def _open(family: int, method: str) -> socket.socket:
    if method == "udp":
        return socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    protocol = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    refused = (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT)
    try:
        return socket.socket(family, socket.SOCK_DGRAM, protocol)
    except OSError as exc:
        if exc.errno not in refused:
            raise
    try:
        return socket.socket(family, socket.SOCK_RAW, protocol)
    except OSError as exc:
        if exc.errno not in refused:
            raise
        raise ConfigFailure(
            "no ICMP socket for this process: neither is its group in "
            f"{PING_GROUP_RANGE} (sysctl -w {PING_GROUP_RANGE}='0 2147483647') nor may it "
            "open a raw socket (root or CAP_NET_RAW); method: udp needs neither"
        ) from None
