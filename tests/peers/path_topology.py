"""A routed network in namespaces for path tests: a site with two uplinks, forwarding routers,
and a destination host with two target addresses, IPv4 and IPv6 alike.

    site ─1─ ea ─3─ ma ─5─ dst        link A: site → ea → ma → dst (10.90.100.1)
      └──2── eb ─4─ mb ─6─ dst        link B: site → eb → mb → dst (10.90.100.2)
                   ma ─7─ x ─9─ dst   x: the one router both can be sent through
                   mb ─8─ x

Segment k is 10.90.k.0/24 and fd00:90:k::/64, its left end .1 (::1), its right end .2 (::2).
`diverse()` routes A through ma and B through mb straight to dst; `converge()` sends both
through x, `reroute()` one of them. x answers from one address (10.90.7.2, fd00:90:7::2)
whichever way its answer leaves, as a router whose ICMP comes from one interface does. ICMP
rate limits are off in every namespace, so each probe is answered and the paths are what the
routes say, never what a token bucket let through; but for the unreachables of a route of
type unreachable or prohibit, whose bucket (net.ipv4.route.error_cost) is the host's: five
at once, then one a second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from tests.peers.netns import Namespace, namespaces, veth

ROLES = ("site", "ea", "eb", "ma", "mb", "x", "dst")
ROUTERS = ("ea", "eb", "ma", "mb", "x")
# segment: (left, right)
SEGMENTS = {
    1: ("ea", "site"),
    2: ("eb", "site"),
    3: ("ea", "ma"),
    4: ("eb", "mb"),
    5: ("ma", "dst"),
    6: ("mb", "dst"),
    7: ("ma", "x"),
    8: ("mb", "x"),
    9: ("x", "dst"),
}
TARGETS = {"a": ("10.90.100.1", "fd00:90:100::1"), "b": ("10.90.100.2", "fd00:90:100::2")}


def left(segment: int, v6: bool = False) -> str:
    return f"fd00:90:{segment}::1" if v6 else f"10.90.{segment}.1"


def right(segment: int, v6: bool = False) -> str:
    return f"fd00:90:{segment}::2" if v6 else f"10.90.{segment}.2"


@dataclass(frozen=True)
class Network:
    ns: dict[str, Namespace]

    def route(
        self, role: str, destination: str, via: str, replace: bool = False, src: str = ""
    ) -> None:
        family = "-6" if ":" in via else "-4"
        source = ("src", src) if src else ()
        verb = "replace" if replace else "add"
        self.ns[role].ip(family, "route", verb, destination, "via", via, *source)

    def reroute(self, role: str, target: str, segment: int) -> None:
        """Sends `role`'s traffic to `target` (a, b) towards the right end of `segment`."""
        for v6, address in enumerate(TARGETS[target]):
            self.route(role, address, right(segment, bool(v6)), replace=True)

    def diverse(self) -> None:
        for role, target, segment in (("ma", "a", 5), ("mb", "b", 6)):
            self.reroute(role, target, segment)

    def converge(self) -> None:
        for role, target, segment in (("ma", "a", 7), ("mb", "b", 8)):
            self.reroute(role, target, segment)

    def probe(self, *args: str) -> list[str]:
        """A command run in the site namespace."""
        return self.ns["site"].command(*args)


def _wire(net: Network) -> None:
    ns = net.ns
    for segment, (a, b) in SEGMENTS.items():
        veth(ns[a], f"s{segment}{a}", ns[b], f"s{segment}{b}")
        ns[a].address(f"s{segment}{a}", f"{left(segment)}/24", f"{left(segment, True)}/64")
        ns[b].address(f"s{segment}{b}", f"{right(segment)}/24", f"{right(segment, True)}/64")
    for address in TARGETS["a"] + TARGETS["b"]:
        ns["dst"].address("lo", f"{address}/{128 if ':' in address else 32}")


def _route(net: Network) -> None:
    for v6 in (False, True):
        prefix = "fd00:90:100::/64" if v6 else "10.90.100.0/24"
        site_a = "fd00:90:1::/64" if v6 else "10.90.1.0/24"
        site_b = "fd00:90:2::/64" if v6 else "10.90.2.0/24"
        # The site: target a through link A, target b through link B.
        net.route("site", TARGETS["a"][v6], left(1, v6))
        net.route("site", TARGETS["b"][v6], left(2, v6))
        # Edge routers: onwards to their middle router; back home through the site segment.
        net.route("ea", prefix, right(3, v6))
        net.route("eb", prefix, right(4, v6))
        # Middle routers: home through their edge router (the target routes come later).
        net.route("ma", site_a, left(3, v6))
        net.route("mb", site_b, left(4, v6))
        # x: home the way each link came, answering from one address whoever asks (a router
        # whose ICMP comes from its loopback or first interface answers so).
        net.route("x", site_a, left(7, v6), src=right(7, v6))
        net.route("x", site_b, left(8, v6), src=right(7, v6))
        net.route("x", prefix, right(9, v6))
        # The destination answers link A's probes through ma, link B's through mb.
        net.route("dst", site_a, left(5, v6))
        net.route("dst", site_b, left(6, v6))


@contextlib.contextmanager
def network() -> Iterator[Network]:
    """The network with diverse paths, removed afterwards whatever happens."""
    with namespaces(*ROLES) as ns:
        for role in ROLES:
            # No ICMP type rate-limited per peer (icmp_ratelimit 0 would do it too, and would
            # zero the per-peer tokens that the unreachables of routes share).
            ns[role].sysctl("net.ipv4.icmp_ratemask", "0")
            ns[role].sysctl("net.ipv6.icmp.ratelimit", "0")
        for role in ROUTERS:
            ns[role].sysctl("net.ipv4.ip_forward", "1")
            ns[role].sysctl("net.ipv6.conf.all.forwarding", "1")
        net = Network(ns)
        _wire(net)
        _route(net)
        net.diverse()
        yield net
