"""ICMP echo messages (RFC 792, RFC 4443 §4) and the errors that answer them (RFC 792, RFC 1191,
RFC 4443 §3): built and read here, nothing sent.

What a socket hands over differs: a raw IPv4 socket gives the IP header too, a datagram IPv4
socket and every IPv6 socket the ICMP message alone. An error quotes the packet it answers:
the IP header and at least the first 8 bytes of our echo request (its identifier and sequence),
which is how it is told apart from errors about anyone else's packets.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
HEADER_SIZE = _HEADER.size
ECHO_REQUEST: dict[int, int] = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}
# The largest echo payload an IP packet carries: 65535 less the IPv4 and ICMP headers.
MAX_PAYLOAD = 65535 - 20 - HEADER_SIZE

_UNREACHABLE_V4 = {
    0: "destination network unreachable",
    1: "destination host unreachable",
    2: "destination protocol unreachable",
    3: "destination port unreachable",
    5: "source route failed",
    6: "destination network unknown",
    7: "destination host unknown",
    8: "source host isolated",
    9: "destination network administratively prohibited",
    10: "destination host administratively prohibited",
    11: "destination network unreachable for the type of service",
    12: "destination host unreachable for the type of service",
    13: "communication administratively prohibited (filtered)",
    14: "host precedence violation",
    15: "precedence cutoff in effect",
}
_UNREACHABLE_V6 = {
    0: "no route to destination",
    1: "communication administratively prohibited",
    2: "beyond the scope of the source address",
    3: "address unreachable",
    4: "port unreachable",
    5: "source address failed ingress/egress policy",
    6: "reject route to destination",
}
_EXCEEDED = {0: "exceeded in transit", 1: "fragment reassembly time exceeded"}
# The error types of each family: destination unreachable, packet too big (IPv6), time
# exceeded, parameter problem. Redirects and source quench say nothing about reachability.
V4_UNREACHABLE, V4_EXCEEDED, V4_PARAMETER = 3, 11, 12
V6_UNREACHABLE, V6_TOO_BIG, V6_EXCEEDED, V6_PARAMETER = 1, 2, 3, 4
FRAGMENTATION_NEEDED = 4  # the IPv4 unreachable code of RFC 1191
ERROR_TYPES: dict[int, frozenset[int]] = {
    socket.AF_INET: frozenset({V4_UNREACHABLE, V4_EXCEEDED, V4_PARAMETER}),
    socket.AF_INET6: frozenset({V6_UNREACHABLE, V6_TOO_BIG, V6_EXCEEDED, V6_PARAMETER}),
}


@dataclass(frozen=True, slots=True)
class EchoReply:
    ident: int
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error about one of our echo requests, as far as its quote tells."""

    family: int
    type: int
    code: int
    mtu: int | None  # next-hop MTU (IPv4 fragmentation needed) or MTU (IPv6 packet too big)
    ident: int
    seq: int
    quoted: bytes  # what it quotes of our echo's payload: all, part or nothing
    destination: str | None  # where the echo it answers was going, when the quote says

    def words(self) -> str:
        """What happened, as ping and an engineer say it."""
        return error_words(self.family, self.type, self.code, self.mtu)


def error_words(family: int, kind: int, code: int, mtu: int | None) -> str:
    if family == socket.AF_INET:
        if kind == V4_UNREACHABLE and code == FRAGMENTATION_NEEDED:
            # RFC 1191: a router too old to say its next-hop MTU sends 0.
            return f"fragmentation needed, next-hop MTU {mtu}" if mtu else "fragmentation needed"
        if kind == V4_UNREACHABLE:
            return _UNREACHABLE_V4.get(code, f"destination unreachable (code {code})")
        if kind == V4_EXCEEDED:
            return f"time to live {_EXCEEDED.get(code, f'exceeded (code {code})')}"
    else:
        if kind == V6_TOO_BIG:
            return f"packet too big, MTU {mtu}"
        if kind == V6_UNREACHABLE:
            return f"destination unreachable: {_UNREACHABLE_V6.get(code, f'code {code}')}"
        if kind == V6_EXCEEDED:
            return f"hop limit {_EXCEEDED.get(code, f'exceeded (code {code})')}"
    return f"parameter problem (code {code})"


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request. IPv4's checksum is ours to make (a datagram socket remakes it); the
    kernel makes ICMPv6's, whose pseudo-header holds a source address chosen at sending."""
    message = _HEADER.pack(ECHO_REQUEST[family], 0, 0, ident, seq) + payload
    if family == socket.AF_INET6:
        return message
    return message[:2] + struct.pack("!H", checksum(message)) + message[4:]


def parse(family: int, data: bytes, with_ip_header: bool) -> EchoReply | IcmpError | None:
    """An echo reply or an error about an echo request; None for anything else (echo
    requests, redirects, neighbour discovery, truncated or foreign packets)."""
    if with_ip_header:
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < HEADER_SIZE:
        return None
    kind, code, _, ident, seq = _HEADER.unpack_from(data)
    if kind == ECHO_REPLY[family] and code == 0:
        return EchoReply(ident, seq, data[HEADER_SIZE:])
    if kind not in ERROR_TYPES[family]:
        return None
    mtu = _mtu(family, kind, code, data)
    quote = _quote_v4(data[HEADER_SIZE:]) if family == socket.AF_INET else _quote_v6(data)
    if quote is None:
        return None
    destination, echo = quote
    return quoted_error(family, kind, code, mtu, echo, destination)


def quoted_error(
    family: int, kind: int, code: int, mtu: int | None, echo: bytes, destination: str | None
) -> IcmpError | None:
    """The error, given the echo request it quotes (from its ICMP header on); None when the
    quote is no echo request of any identifier."""
    if len(echo) < HEADER_SIZE or echo[0] != ECHO_REQUEST[family]:
        return None
    _, _, _, ident, seq = _HEADER.unpack_from(echo)
    return IcmpError(family, kind, code, mtu, ident, seq, echo[HEADER_SIZE:], destination)


def _mtu(family: int, kind: int, code: int, message: bytes) -> int | None:
    if family == socket.AF_INET and kind == V4_UNREACHABLE and code == FRAGMENTATION_NEEDED:
        return int(struct.unpack_from("!H", message, 6)[0])
    if family == socket.AF_INET6 and kind == V6_TOO_BIG:
        return int(struct.unpack_from("!I", message, 4)[0])
    return None


def _quote_v4(quote: bytes) -> tuple[str, bytes] | None:
    """The quoted IPv4 packet's destination and its ICMP message, if it was ICMP."""
    if len(quote) < 20 or quote[0] >> 4 != 4 or quote[9] != socket.IPPROTO_ICMP:
        return None
    return str(ipaddress.IPv4Address(quote[16:20])), quote[(quote[0] & 0x0F) * 4 :]


def _quote_v6(message: bytes) -> tuple[str, bytes] | None:
    """The quoted IPv6 packet's destination and its ICMPv6 message, if nothing stood between
    its header and the ICMPv6 one (an echo request of ours carries no extension header)."""
    quote = message[HEADER_SIZE:]
    if len(quote) < 40 or quote[0] >> 4 != 6 or quote[6] != socket.IPPROTO_ICMPV6:
        return None
    return str(ipaddress.IPv6Address(quote[24:40])), quote[40:]
