"""`icmp`: does the target answer ping, how much is lost, and how long and how evenly it takes.

`count` echo requests (RFC 792, RFC 4443), `echo_interval` apart, of `size` payload bytes,
with don't-fragment set if asked (an MTU black hole after a failover is a classic: small
packets pass and big ones vanish), over IPv4 or IPv6. Judged: the loss (a late reply is lost),
the average round trip (the latency keys every kind shares: `latency_warn`, `latency_crit`) and
the jitter; observed besides: ping's min/avg/max/mdev, and the replies counted and not trusted
(late, duplicated, from another address, corrupted). No reply at all is CRIT "no echo replies",
naming the ICMP error that came instead (destination unreachable, fragmentation needed with
the next-hop MTU, time exceeded) or this host's refusal to send (message too long).

No library fits: icmplib's async_ping waits for each reply before the next request, reads
1024 bytes at most, drops what it cannot match unseen (duplicates, late and wrong-source
replies go uncounted), gives the async caller no source address, has no don't-fragment and
takes one raw socket per call. probes/support/icmp_socket.py opens the sockets (a datagram
ICMP socket where net.ipv4.ping_group_range allows, else the engine's shared raw ones),
icmp_packet.py reads and writes the messages, icmp_exchange.py sends and matches, and
icmp_stats.py adds the round trips up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

from monitor.core.conditions import Condition, Explain, Finding, Threshold
from monitor.core.errors import AnswerTimeout, ConfigFailure, UnreachableFailure
from monitor.core.model import ObservationValue, ProbeResult, as_number
from monitor.core.options import (
    OptionError,
    boolean,
    duration,
    format_number,
    host,
    integer,
    latency_duration,
    number,
    option,
)
from probes.base import (
    Headline,
    LatencyOptions,
    Observations,
    ProbeContext,
    ProbeKind,
    bounds_in_order,
)
from probes.support import icmp_exchange, icmp_stats
from probes.support.icmp_exchange import COOKIE_SIZE, EchoPlan, Exchange, SockAddr
from probes.support.icmp_packet import MAX_PAYLOAD

LATENCY = "rtt_avg_ms"
LOSS = "loss_pct"
JITTER = "jitter_ms"
REPLIES = "replies"  # how many of how many answered, in words, and what was not trusted
RTT = "rtt"  # ping's summary: min/avg/max/mdev
MAX_COUNT = 1000
USER_MIN_INTERVAL = 0.2  # what ping allows a user other than root
# The budget the echoes get of the check's timeout: the rest is the time to say why.
_BUDGET_SHARE = 0.95
# What the replies counted and not trusted are called, short, for a narrow column.
_UNTRUSTED = (
    ("late", "late"),
    ("duplicates", "duplicated"),
    ("wrong_source", "from another address"),
    ("corrupted", "corrupted"),
)


def _address(value: Any) -> str:
    name = host(value)
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        raise OptionError(
            f"{name!r} is not an IP address", "write an address of this host"
        ) from None


def _version(name: str) -> int | None:
    """4 or 6 for an IP address, None for a name."""
    try:
        return ipaddress.ip_address(name).version
    except ValueError:
        return None


def _percent(default: float, help_text: str) -> Any:
    return option(default, parse=number(0, 100), metavar="PERCENT", help=help_text)


def _jitter(help_text: str) -> Any:
    return option(None, parse=latency_duration, metavar="DURATION", help=help_text)


@dataclass(frozen=True, kw_only=True)
class IcmpOptions(LatencyOptions):
    target: str = option(
        parse=host,
        metavar="HOST",
        help="the address to ping (IPv4 or IPv6), or a name the system resolver knows",
    )
    count: int = option(
        5, parse=integer(1, MAX_COUNT), metavar="N", help="echo requests per poll (ping -c)"
    )
    echo_interval: float = option(
        "1s",
        parse=duration,
        metavar="DURATION",
        help="time from one echo request to the next (ping -i); below 200ms only as root, as "
        "ping allows",
    )
    size: int = option(
        56,
        parse=integer(COOKIE_SIZE, MAX_PAYLOAD),
        metavar="BYTES",
        help="payload bytes of each request (ping -s; 56 makes 84-byte IPv4 packets), at least "
        "8: they tell this check's replies from any other's",
    )
    dont_fragment: bool = option(
        False,
        parse=boolean,
        help="set don't-fragment (ping -M do): a request bigger than the path's MTU is refused "
        "on the way, not fragmented, so an MTU black hole shows as loss with the MTU named",
    )
    reply_timeout: float = option(
        "2s",
        parse=duration,
        metavar="DURATION",
        help="a reply slower than this is late: counted, and lost (ping -W)",
    )
    source: str | None = option(
        None,
        parse=_address,
        metavar="ADDRESS",
        help="send from this address of this host (ping -I ADDRESS): the link to test",
    )
    loss_warn: float = _percent(
        20.0, "WARN when more than this share of the requests is lost (one in five: not yet)"
    )
    loss_crit: float = _percent(60.0, "CRIT when more than this share is lost")
    jitter_warn: float | None = _jitter(
        "WARN when the jitter (RFC 3550's, of the round trips) is above this, e.g. 30ms; "
        "needs count 2 or more"
    )
    jitter_crit: float | None = _jitter("CRIT when the jitter is above this")

    def validate(self) -> None:
        self.validate_latency()
        family = _version(self.target)  # a name's is known once resolved
        if self.source is not None and family is not None and _version(self.source) != family:
            raise OptionError(
                f"source {self.source} cannot send to {self.target}",
                "give a source address of the target's family (IPv4 or IPv6)",
                key="source",
            )
        bounds_in_order("loss", self.loss_warn, self.loss_crit)
        bounds_in_order("jitter", self.jitter_warn, self.jitter_crit)
        if self.count < 2 and (self.jitter_warn is not None or self.jitter_crit is not None):
            raise OptionError(
                "jitter needs two replies, and count is 1",
                "set count to 2 or more, or leave jitter_warn and jitter_crit out",
                key="count",
            )

    def plan(self) -> EchoPlan:
        return EchoPlan(
            count=self.count,
            interval=self.echo_interval,
            size=self.size,
            reply_timeout=self.reply_timeout,
            dont_fragment=self.dont_fragment,
            source=self.source,
        )


async def _resolve(name: str) -> tuple[int, SockAddr]:
    """The family and socket address to ping: the target itself, or what the system resolver
    says its name is (as for tcp and ntp checks)."""
    try:
        literal = ipaddress.ip_address(name)
    except ValueError:
        found = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_RAW)
        address = found[0][4]
        if len(address) == 4:
            return socket.AF_INET6, (str(address[0]), 0, int(address[2]), int(address[3]))
        return socket.AF_INET, (str(address[0]), 0)
    if literal.version == 4:
        return socket.AF_INET, (name, 0)
    scope = literal.scope_id
    try:
        index = socket.if_nametoindex(scope) if scope else 0
    except OSError:
        raise ConfigFailure(f"{name} names no interface of this host ({scope})") from None
    return socket.AF_INET6, (name.partition("%")[0], 0, 0, index)


def _permitted(options: IcmpOptions, timeout: float) -> float:
    """The time the echoes may take; ConfigFailure when the check cannot run as configured."""
    if options.echo_interval < USER_MIN_INTERVAL and os.geteuid() != 0:
        raise ConfigFailure(
            f"echo_interval {format_number(options.echo_interval * 1000)}ms is below 200ms, the "
            "least ping allows a user other than root: lengthen echo_interval or run as root"
        )
    budget = timeout * _BUDGET_SHARE
    plan = options.plan()
    if plan.duration > budget:
        raise ConfigFailure(
            f"{plan.count} echo requests {format_number(plan.interval)}s apart and "
            f"{format_number(plan.reply_timeout)}s for the last reply take "
            f"{format_number(plan.duration)}s, more than the timeout "
            f"({format_number(timeout)}s) leaves: lengthen timeout, or lower count, "
            "echo_interval or reply_timeout"
        )
    return budget


async def measure(options: IcmpOptions, ctx: ProbeContext) -> Observations:
    family, address = await _resolve(options.target)
    budget = _permitted(options, ctx.timeout)
    done = await icmp_exchange.exchange(family, address, options.plan(), ctx.shared, budget)
    observations = _observations(str(address[0]), done)
    if not done.received:
        said = f"no echo replies ({done.sent} sent)"
        details = "; ".join(d for d in (done.refusals(), done.ignored()) if d)
        text = f"{said}: {details}" if details else said
        if done.errors or done.unsent:
            raise UnreachableFailure(text, observations)
        raise AnswerTimeout(text, observations)
    return observations


def _observations(address: str, done: Exchange) -> Observations:
    lost = done.sent - done.received
    observations: Observations = {
        "address": address,
        "socket": done.socket_kind,
        "sent": done.sent,
        "received": done.received,
        LOSS: round(lost / done.sent * 100, 2),
        "late": done.late,
        "duplicates": done.duplicates,
        "wrong_source": done.wrong_source,
        "corrupted": done.corrupted,
        "strays": done.strays,
        "icmp_errors": sum(count for _, count in done.errors),
        "unsent": sum(count for _, count in done.unsent),
    }
    # Where the lost requests went: the errors too, unless the failure names them already.
    told = [f"{done.received} of {done.sent} answered", done.ignored()]
    if done.received:
        told.append(done.refusals())
    observations[REPLIES] = "; ".join(part for part in told if part)
    if done.errors or done.unsent:
        observations["errors"] = done.refusals()
    if done.wrong_source_address:
        observations["wrong_source_address"] = done.wrong_source_address
    summary = icmp_stats.round_trips(done.rtts_ms)
    if summary is not None:
        line = (summary.minimum, summary.average, summary.maximum, summary.mdev)
        observations.update(
            {
                "rtt_min_ms": round(summary.minimum, 3),
                LATENCY: round(summary.average, 3),
                "rtt_max_ms": round(summary.maximum, 3),
                "rtt_mdev_ms": round(summary.mdev, 3),
                RTT: "/".join(f"{value:.3f}" for value in line) + " ms",
            }
        )
        if summary.jitter is not None:
            observations[JITTER] = round(summary.jitter, 3)
    return observations


def _milliseconds(value: ObservationValue) -> str:
    number_value = as_number(value)
    return "?" if number_value is None else f"{format_number(round(number_value, 3))}ms"


def _loss(value: ObservationValue, about: str) -> Finding:
    reason = f"loss {format_number(as_number(value) or 0)}%"
    return Finding(reason, f"{reason} ({about})" if about else reason)


def _rtt(value: ObservationValue, about: str) -> Finding:
    reason = f"rtt {_milliseconds(value)}"
    return Finding(reason, f"rtt min/avg/max/mdev {about}" if about else reason)


def _said_in_ms(label: str) -> Explain:
    def explain(value: ObservationValue, _about: str) -> Finding:
        return Finding(f"{label} {_milliseconds(value)}")

    return explain


def headline(result: ProbeResult, _now: float) -> Headline:
    """The loss always ("loss 0%", which says its verdict), the average round trip when all
    is well, and the replies not trusted, if any came ("1 late")."""
    seen = result.observations
    loss = as_number(seen.get(LOSS))
    facts = [] if loss is None else [f"loss {format_number(loss)}%"]
    facts += [f"{seen[key]} {what}" for key, what in _UNTRUSTED if as_number(seen.get(key))]
    rtt = seen.get(LATENCY)
    when_ok = (f"rtt {_milliseconds(rtt)}",) if as_number(rtt) is not None else ()
    return Headline(facts=tuple(facts), when_ok=when_ok, tells=frozenset({LOSS}))


def _in_ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def conditions(options: IcmpOptions) -> tuple[Condition, ...]:
    judged: list[Condition] = [
        Threshold(
            condition="loss",
            observation=LOSS,
            warn=options.loss_warn,
            crit=options.loss_crit,
            unit="%",
            about=REPLIES,
            explain=_loss,
            headline=True,
        ),
        # The latency keys of every kind, on the average round trip, in ping's words.
        dataclasses.replace(options.latency(LATENCY, headline=True), about=RTT, explain=_rtt),
    ]
    if options.jitter_warn is not None or options.jitter_crit is not None:
        judged.append(
            Threshold(
                condition="jitter",
                observation=JITTER,
                warn=_in_ms(options.jitter_warn),
                crit=_in_ms(options.jitter_crit),
                unit="ms",
                explain=_said_in_ms("jitter"),
            )
        )
    return tuple(judged)


PROBE = ProbeKind(
    kind="icmp",
    target_help="HOST",
    options=IcmpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: o.target,
    host=lambda o: o.target,
    headline=headline,
    latency=LATENCY,
)
