"""`path`: the route to a target, hop by hop, as traceroute finds it.

Probes with a rising TTL (hop limit, IPv6), `probes_per_hop` of them per hop: UDP datagrams to
ports nobody listens on (33434 up, classic traceroute; the destination answers port
unreachable) or ICMP echo requests (`method: icmp`; the destination answers echo reply). Each
router on the way answers time exceeded. The trace stops at the destination, at a router that
says it is unreachable (host unreachable, administratively prohibited: "!H", "!X" of
traceroute), after `max_hops`, or when the check's timeout is spent.

The hop list is the result's observations: `path` (the hop addresses in order, "*" for a
silent hop, "a|b" where a load-balanced hop answered from several), `hop_N` and `hop_N_ms` per
hop. The engine compares the paths of the links of one redundancy group (monitor.engine.paths):
where they converge beyond each link's own edge hops, and when a link's path changes.

Verdicts: CRIT when the destination is not reached (with who said why, or where the answers
stopped), the hop count against `hops_warn`/`hops_crit`, its change since the previous poll
against `hop_change_warn`/`hop_change_crit` (a reroute), and the destination's round trip as
the latency. The socket layer is probes/support/path_socket.py (IP_RECVERR: no privilege for
udp), the loop over the hops probes/support/path_trace.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from monitor.core.conditions import Condition, Expectation, Threshold, said
from monitor.core.errors import AnswerTimeout
from monitor.core.model import ObservationValue, ProbeResult, as_number
from monitor.core.options import choice, duration, host, integer, option
from probes.base import (
    Headline,
    LatencyOptions,
    Observations,
    ProbeContext,
    ProbeKind,
    bounds_in_order,
)
from probes.support.path_socket import TraceSocket
from probes.support.path_trace import Hop, Trace, trace

LATENCY = "rtt_ms"  # the destination's round trip: the best of its hop's probes
PATH = "path"
HOPS = "hops"
REACHED = "destination_reached"
NOT_REACHED_BECAUSE = "unreached_because"
HOP_CHANGE = "hop_change"
SILENT = "*"
ALSO = "|"  # between the addresses of a load-balanced hop
MAX_HOPS = 255
_MEMORY_HOPS = "hops"
_BUDGET_SHARE = 0.95


def hop_key(ttl: int) -> str:
    return f"hop_{ttl}"


@dataclass(frozen=True, kw_only=True)
class PathOptions(LatencyOptions):
    target: str = option(
        parse=host, metavar="HOST", help="the destination whose route is traced, a name or address"
    )
    method: str = option(
        "udp",
        parse=choice("udp", "icmp", why="udp: datagrams to high ports, as traceroute (no "
                     "privilege needed); icmp: echo requests, which firewalls pass more often"),
        metavar="udp|icmp",
        help="what is sent with rising TTL: udp (traceroute's, needs no privilege) or icmp (echo "
        "requests: a group in net.ipv4.ping_group_range, or root for a raw socket)",
    )  # fmt: skip
    max_hops: int = option(
        30, parse=integer(1, MAX_HOPS), metavar="N", help="the highest TTL tried (traceroute's 30)"
    )
    probes_per_hop: int = option(
        3,
        parse=integer(1, 10),
        metavar="N",
        help="probes sent at each TTL (3: a load-balanced hop shows its several routers)",
    )
    wait: float = option(
        "1s",
        parse=duration,
        metavar="DURATION",
        help="how long a hop's answers are waited for before the next TTL: what a silent hop costs",
    )
    hops_warn: int | None = option(
        None, parse=integer(1, MAX_HOPS), metavar="N", help="WARN when the path is longer"
    )
    hops_crit: int | None = option(
        None, parse=integer(1, MAX_HOPS), metavar="N", help="CRIT when the path is longer"
    )
    hop_change_warn: int | None = option(
        None,
        parse=integer(0, MAX_HOPS),
        metavar="N",
        help="WARN when the hop count moved by more than N since the previous poll (0: any "
        "change), a reroute",
    )
    hop_change_crit: int | None = option(
        None,
        parse=integer(0, MAX_HOPS),
        metavar="N",
        help="CRIT when the hop count moved by more than N since the previous poll",
    )

    def validate(self) -> None:
        self.validate_latency()
        bounds_in_order("hops", self.hops_warn, self.hops_crit)
        bounds_in_order("hop_change", self.hop_change_warn, self.hop_change_crit)


async def _address(name: str) -> tuple[int, str]:
    """The family and address to trace: the target itself, or the system resolver's first
    answer for its name (as tcp and ntp checks do)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        found = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_DGRAM)
        family, *_rest, sockaddr = found[0]
        return family, str(sockaddr[0])
    return (socket.AF_INET if address.version == 4 else socket.AF_INET6), str(address)


def hop_text(hop: Hop) -> str:
    return ALSO.join(hop.addresses) if hop.addresses else SILENT


async def measure(options: PathOptions, ctx: ProbeContext) -> Observations:
    family, address = await _address(options.target)
    sock = TraceSocket(family, address, options.method)
    try:
        done = await trace(
            sock,
            options.max_hops,
            options.probes_per_hop,
            options.wait,
            ctx.timeout * _BUDGET_SHARE,
        )
    finally:
        sock.close()
    observations = _observed(done, address, options.method)
    observations["socket"] = sock.kind
    previous = ctx.memory.get(_MEMORY_HOPS)
    if done.reached:
        if isinstance(previous, int):
            observations[HOP_CHANGE] = len(done.hops) - previous
        ctx.memory[_MEMORY_HOPS] = len(done.hops)
    if not any(not hop.silent for hop in done.hops):
        raise AnswerTimeout(
            f"no answer from any hop to {address} within {len(done.hops)} hops", observations
        )
    return observations


def _observed(done: Trace, address: str, method: str) -> Observations:
    observations: dict[str, ObservationValue] = {
        "address": address,
        "method": method,
        HOPS: len(done.hops),
        REACHED: done.reached,
        PATH: " ".join(hop_text(hop) for hop in done.hops),
        "silent_hops": sum(1 for hop in done.hops if hop.silent),
        "probes_sent": sum(hop.sent for hop in done.hops),
        "probes_answered": sum(len(hop.rtts_ms) for hop in done.hops),
    }
    for hop in done.hops:
        observations[hop_key(hop.ttl)] = hop_text(hop)
        if hop.rtts_ms:
            observations[f"{hop_key(hop.ttl)}_ms"] = min(hop.rtts_ms)
    if done.reached:
        observations[LATENCY] = min(done.hops[-1].rtts_ms)
    else:
        observations[NOT_REACHED_BECAUSE] = _why_not(done, address)
    return observations


def _why_not(done: Trace, address: str) -> str:
    if done.stopped_by is not None:
        hop = done.stopped_by
        return f"{hop.said} from {hop_text(hop)} at hop {hop.ttl}"
    answered = [hop for hop in done.hops if not hop.silent]
    last = (
        f"; the last answer from {hop_text(answered[-1])} at hop {answered[-1].ttl}"
        if answered
        else ""
    )
    bound = "the timeout" if done.out_of_time else f"{len(done.hops)} hops"
    return f"no answer from {address} within {bound}{last}"


def headline(result: ProbeResult, _now: float) -> Headline:
    """ "5 hops" always; the destination's round trip when all is well."""
    hops = result.observations.get(HOPS)
    rtt = as_number(result.observations.get(LATENCY))
    facts = (f"{hops} hops",) if isinstance(hops, int) and result.observations.get(REACHED) else ()
    when_ok = (f"rtt {rtt:.1f}ms",) if rtt is not None else ()
    return Headline(facts=facts, when_ok=when_ok, tells=frozenset({HOPS}))


def conditions(options: PathOptions) -> tuple[Condition, ...]:
    return (
        Expectation(
            condition="reached",
            observation=REACHED,
            accepts=lambda value: value is True,
            expected="the destination answers",
            about=NOT_REACHED_BECAUSE,
            failed=said("not reached"),
            passed=said("reached"),
        ),
        Threshold(
            condition="hops", observation=HOPS, warn=options.hops_warn, crit=options.hops_crit
        ),
        Threshold(
            condition="hop_change",
            observation=HOP_CHANGE,
            warn=options.hop_change_warn,
            crit=options.hop_change_crit,
            needs_history=True,
            magnitude=True,
        ),
        options.latency(LATENCY),
    )


def _target(options: PathOptions) -> str:
    return options.target


PROBE = ProbeKind(
    kind="path",
    target_help="HOST",
    options=PathOptions,
    measure=measure,
    conditions=conditions,
    target=_target,
    host=_target,
    headline=headline,
    latency=LATENCY,
)
