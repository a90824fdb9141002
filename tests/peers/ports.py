"""Free ports on loopback for the real peers: a port the kernel gives one socket, checked free
for every other (family, socket type) the peer will bind, as far as can be told now (another
test may take it before the peer binds; peers that can tell retry elsewhere)."""

from __future__ import annotations

import socket
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"

TCP = (socket.SOCK_STREAM,)
UDP = (socket.SOCK_DGRAM,)
UDP_AND_TCP = (socket.SOCK_DGRAM, socket.SOCK_STREAM)


def free_port(kinds: Sequence[int] = TCP, addresses: Sequence[str] = (LOOPBACK,)) -> int:
    """A port free for each of `kinds` (socket types) on each of `addresses`."""
    return free_ports(1, kinds, addresses)[0]


def free_ports(
    count: int, kinds: Sequence[int] = TCP, addresses: Sequence[str] = (LOOPBACK,)
) -> list[int]:
    """`count` different ports, each free for each of `kinds` on each of `addresses`."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(_family(addresses[0]), kinds[0]) as probe:
            probe.bind((addresses[0], 0))
            candidate = int(probe.getsockname()[1])
        if candidate not in ports and _free_everywhere(candidate, kinds, addresses):
            ports.append(candidate)
    return ports


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _free_everywhere(port: int, kinds: Sequence[int], addresses: Sequence[str]) -> bool:
    for address in addresses:
        for kind in kinds:
            with socket.socket(_family(address), kind) as sock:
                try:
                    sock.bind((address, port))
                except OSError:
                    return False
    return True
