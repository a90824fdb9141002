"""The probe registry: every probe kind, by name. Adding a kind is one module and one line here.

A kind's module is imported the first time the kind is asked for, so `commwatch probe tcp` never
loads the TLS, HTTP, DNS or SNMP machinery, and an inventory of tcp checks loads only tcp.
Membership, iteration over the names and a kind's one-line summary import nothing: the summary
is kept here, as data, so that `commwatch probe --help` can list every kind without loading one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # at run time probes.base loads with the first kind asked for, not before
    from monitor.core.model import ProbeResult
    from probes.base import Headline, ProbeKind


class Listing(NamedTuple):
    module: str  # the module under probes/ that defines the kind's `PROBE`
    summary: str  # what the kind checks, in one line of `commwatch probe --help`


_KINDS: dict[str, Listing] = {
    "tcp": Listing(
        "probes.tcp", "TCP connect: refused, timeout and unreachable told apart; connect time"
    ),
    "tls": Listing(
        "probes.tls",
        "TLS certificate health: expiry, names, chain, trust, keys, pins; STARTTLS too",
    ),
    "http": Listing(
        "probes.http",
        "HTTP(S) request: status, time to headers, body match; TLS verified by default",
    ),
    "dns": Listing(
        "probes.dns",
        "DNS query to a named server: rcode, expected answers, latency, DNSSEC; TCP fallback",
    ),
    "snmp": Listing(
        "probes.snmp",
        "SNMP v3/v2c: uptime and reboots, interface states, error rates, utilisation, OIDs",
    ),
    "ntp": Listing(
        "probes.ntp",
        "NTP server: offset from this host, stratum, root distance, leap, kiss-of-death",
    ),
    "sip": Listing(
        "probes.sip",
        "SIP OPTIONS over UDP, TCP or TLS: status, maintenance (503), round trip; RFC 3261 timers",
    ),
    "icmp": Listing(
        "probes.icmp",
        "ping: loss, round trips, jitter, don't-fragment MTU; late, duplicate, stray replies",
    ),
    "path": Listing(
        "probes.path",
        "route to a host with rising TTL (UDP or ICMP): hop list, reached, hop count changes",
    ),
}


class Registry(Mapping[str, "ProbeKind"]):
    def __init__(self, kinds: Mapping[str, Listing]) -> None:
        self._kinds = dict(kinds)
        self._loaded: dict[str, ProbeKind] = {}

    def __getitem__(self, kind: str) -> ProbeKind:
        if kind not in self._loaded:
            module = importlib.import_module(self._kinds[kind].module)  # KeyError: no such kind
            probe: ProbeKind = module.PROBE
            self._loaded[kind] = probe
        return self._loaded[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def summary(self, kind: str) -> str:
        """What `kind` checks, in one line, without importing its module."""
        return self._kinds[kind].summary


REGISTRY = Registry(_KINDS)


def headline(result: ProbeResult, now: float) -> Headline:
    """What the result's kind shows of it in a narrow column; nothing for a kind unknown here
    (a row of the history written by another version)."""
    if result.check.kind in REGISTRY:
        return REGISTRY[result.check.kind].headline(result, now)
    # Imported here, not above, so that reading the registry's names (`commwatch --help`)
    # loads no probe machinery; a result to show means probes.base is loaded already.
    from probes.base import Headline

    return Headline()


def main_latency(result: ProbeResult) -> float | None:
    """The latency the result's kind names its main one, in milliseconds, if measured."""
    if result.check.kind not in REGISTRY:
        return None
    return REGISTRY[result.check.kind].main_latency(result)
