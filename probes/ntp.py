"""`ntp`: what time does an NTP server keep, against this host's clock, and can it be trusted.

An NTPv4 client query (RFC 5905) over UDP, IPv4 or IPv6, or several `sample_interval` apart,
of which the reply with the smallest round-trip delay is judged (the least queued, so the
truest offset), as ntpdate and chrony choose. The offset is the server's clock minus this
host's: commwatch judges servers against its own clock, so it must run on a synchronised host.

Verdicts: the offset (ahead or behind alike), the stratum, the root distance (root delay / 2 +
root dispersion + delay / 2, RFC 5905's λ without the jitter terms a single query cannot
measure), and the delay as the latency. A server that says its clock is not synchronised (leap
indicator 3, stratum 16 or above, or stratum 0 without a kiss code to obey) is CRIT whatever its
offset. A kiss of death DENY or RSTR is refused (CRIT); RATE is refused too when no query got
an answer, else WARN: the server asks us to poll it less often.

No asyncio NTP client library is kept well enough to depend on (ntplib blocks), and the packet
is 48 bytes: probes/support/ntp_packet.py builds and reads it, probes/support/ntp_exchange.py
sends the queries and matches the replies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from monitor.core.conditions import Condition, Expectation, Explain, Finding, Threshold, said
from monitor.core.errors import RefusedFailure
from monitor.core.model import ObservationValue, ProbeResult, Severity, as_number
from monitor.core.options import (
    duration,
    format_host_port,
    host_port,
    integer,
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
from probes.support import ntp_exchange, ntp_packet
from probes.support.ntp_exchange import Exchange, Sample

LATENCY = "delay_ms"  # the round trip, less the server's holding time
OFFSET = "offset_s"
STRATUM = "stratum"
SYNCHRONISED = "synchronised"
NOT_SYNCHRONISED_BECAUSE = "unsynchronised_because"
RATE_LIMITED = "rate_limited"
KISS_CODE = "kiss_code"
MAX_SAMPLES = 8
# The budget the exchange gets of the check's timeout: the rest is the time to say why.
_BUDGET_SHARE = 0.95


def _target(value: Any) -> tuple[str, int]:
    return host_port(value, default_port=123)


def _seconds(default: str | None, help_text: str) -> Any:
    return option(default, parse=duration, metavar="DURATION", help=help_text)


def _stratum(help_text: str) -> Any:
    return option(None, parse=integer(1, 15), metavar="STRATUM", help=help_text)


@dataclass(frozen=True, kw_only=True)
class NtpOptions(LatencyOptions):
    target: tuple[str, int] = option(
        parse=_target,
        help="HOST[:PORT] of the NTP server, port 123 if left out",
        metavar="HOST[:PORT]",
    )
    samples: int = option(
        1,
        parse=integer(1, MAX_SAMPLES),
        metavar="N",
        help="queries per poll, sample_interval apart; the reply with the smallest delay is "
        "judged (queries the timeout leaves no room for are not sent)",
    )
    sample_interval: float = _seconds(
        "2s", "time between the queries of one poll (2s: what servers that rate-limit accept)"
    )
    offset_warn: float = _seconds(
        "100ms",
        "WARN when the server's clock is further than this from this host's, ahead or behind "
        "(a synchronised clock on a LAN keeps within milliseconds)",
    )
    offset_crit: float = _seconds(
        "1s",
        "CRIT beyond this offset: records of dispatch, radio and call recorders a second apart "
        "no longer line up",
    )
    stratum_warn: int | None = _stratum("WARN when the server's stratum is above this")
    stratum_crit: int | None = _stratum("CRIT when the server's stratum is above this")
    root_distance_warn: float | None = _seconds(
        None,
        "WARN when the server's root distance (its uncertainty, to its reference clock and back "
        "to us) is above this",
    )
    root_distance_crit: float = _seconds(
        "1.5s",
        "CRIT above this root distance (1.5s: RFC 5905's MAXDIST, beyond which an NTP client "
        "will not use the server)",
    )

    def validate(self) -> None:
        self.validate_latency()
        bounds_in_order("offset", self.offset_warn, self.offset_crit)
        bounds_in_order("stratum", self.stratum_warn, self.stratum_crit)
        bounds_in_order("root_distance", self.root_distance_warn, self.root_distance_crit)


async def _address(name: str, port: int) -> str:
    """The IP address to ask: the target itself, or what the system resolver says its name is
    (as for tcp and tls checks: an NTP server is often named, time.example.net)."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    found = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_DGRAM)
    return str(found[0][4][0])


async def measure(options: NtpOptions, ctx: ProbeContext) -> Observations:
    name, port = options.target
    address = await _address(name, port)
    done = await ntp_exchange.exchange(
        address, port, options.samples, options.sample_interval, ctx.timeout * _BUDGET_SHARE
    )
    timed = [s for s in done.samples if s.packet.kiss is None]
    kisses = [s.packet.kiss for s in done.samples if s.packet.kiss is not None]
    observations: Observations = {"address": address, **_tally(done, len(timed))}
    if timed:
        # Synchronised replies first, then the least delayed (the least queued).
        best = min(timed, key=lambda s: (_unsynchronised(s.packet) is not None, s.delay))
        observations.update(_judged(best))
    observations[KISS_CODE] = kisses[-1] if kisses else "none"
    refusal = next((code for code in kisses if code != "RATE"), None)
    if refusal is not None or (kisses and not timed):
        code = refusal or "RATE"
        if not timed:  # what the kiss itself says: no time, only its code
            observations.update({STRATUM: 0, "reference_id": code})
        advice = "; poll it less often" if code == "RATE" else ""
        raise RefusedFailure(
            f"kiss-of-death {code}: the server refused us ({ntp_packet.KISSES[code]}){advice}",
            observations,
        )
    if not timed:
        raise done.failure(ctx.timeout)
    observations[RATE_LIMITED] = bool(kisses)
    return observations


def _tally(done: Exchange, answered: int) -> Observations:
    return {
        "samples_sent": done.sent,
        "samples_answered": answered,
        "ignored_datagrams": done.ignored.total,
    }


def _unsynchronised(packet: ntp_packet.Packet) -> str | None:
    """Why the server's time cannot be trusted by its own account, if it cannot."""
    if packet.leap == ntp_packet.LEAP_ALARM:
        return "leap indicator 3 (alarm)"
    if packet.stratum >= ntp_packet.UNSYNCHRONISED:
        return f"stratum {packet.stratum}"
    if packet.stratum == 0:
        code = ntp_packet.reference_text(0, packet.reference_id)
        return f"stratum 0, kiss code {code or 'none'}"
    return None


def _judged(sample: Sample) -> Observations:
    packet = sample.packet
    root_distance = packet.root_delay / 2 + packet.root_dispersion + sample.delay / 2
    observations: dict[str, ObservationValue] = {
        OFFSET: round(sample.offset, 6),
        LATENCY: round(sample.delay * 1000, 3),
        STRATUM: packet.stratum,
        "reference_id": ntp_packet.reference_text(packet.stratum, packet.reference_id),
        "leap": ntp_packet.LEAP[packet.leap],
        SYNCHRONISED: _unsynchronised(packet) is None,
        "root_delay_s": round(packet.root_delay, 6),
        "root_dispersion_s": round(packet.root_dispersion, 6),
        "root_distance_s": round(root_distance, 6),
        "precision_log2": packet.precision,
        "poll_log2": packet.poll,
        "version": packet.version,
    }
    reason = _unsynchronised(packet)
    if reason is not None:
        observations[NOT_SYNCHRONISED_BECAUSE] = reason
    return observations


def seconds_text(seconds: float, sign: str = "") -> str:
    """Seconds in ms below one, to the microsecond: 0.412ms, 3600.002s; `sign` "+" for an
    offset, whose sign says which clock is ahead."""
    if abs(seconds) < 1:
        return f"{seconds * 1000:{sign}.3f}ms"
    return f"{seconds:{sign}.3f}s"


def _in_seconds(label: str, sign: str = "") -> Explain:
    def explain(value: ObservationValue, _about: str) -> Finding:
        number = as_number(value)
        return Finding(label if number is None else f"{label} {seconds_text(number, sign)}")

    return explain


def _not_synchronised(_value: ObservationValue, about: str) -> Finding:
    return Finding("unsynchronised", f"unsynchronised: {about}" if about else "")


def headline(result: ProbeResult, _now: float) -> Headline:
    """The offset when all is well ("offset +0.412ms") and the stratum always ("stratum 2"),
    which says its verdict too."""
    offset = as_number(result.observations.get(OFFSET))
    stratum = result.observations.get(STRATUM)
    facts = (f"stratum {stratum}",) if isinstance(stratum, int) and stratum else ()
    when_ok = (f"offset {seconds_text(offset, '+')}",) if offset is not None else ()
    return Headline(facts=facts, when_ok=when_ok, tells=frozenset({STRATUM}))


def conditions(options: NtpOptions) -> tuple[Condition, ...]:
    return (
        Expectation(
            condition="synchronised",
            observation=SYNCHRONISED,
            accepts=lambda value: value is True,
            expected="a server whose clock is synchronised",
            about=NOT_SYNCHRONISED_BECAUSE,
            failed=_not_synchronised,
            passed=said("synchronised"),
        ),
        Expectation(
            condition="rate_limited",
            observation=RATE_LIMITED,
            accepts=lambda value: value is False,
            expected="no kiss-of-death RATE",
            severity=Severity.WARN,
            failed=said("rate limited", "the server sent a kiss-of-death RATE: poll it less often"),
            passed=said("not rate limited"),
        ),
        Threshold(
            condition="offset",
            observation=OFFSET,
            warn=options.offset_warn,
            crit=options.offset_crit,
            unit="s",
            explain=_in_seconds("offset", "+"),
            headline=True,
            magnitude=True,
        ),
        Threshold(
            condition="stratum",
            observation=STRATUM,
            warn=options.stratum_warn,
            crit=options.stratum_crit,
            headline=True,
        ),
        Threshold(
            condition="root_distance",
            observation="root_distance_s",
            warn=options.root_distance_warn,
            crit=options.root_distance_crit,
            unit="s",
            explain=_in_seconds("root distance"),
        ),
        options.latency(LATENCY),
    )


PROBE = ProbeKind(
    kind="ntp",
    target_help="HOST[:PORT]",
    options=NtpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: format_host_port(*o.target),
    host=lambda o: o.target[0],
    headline=headline,
    latency=LATENCY,
)
