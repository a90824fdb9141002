"""`sip`: does a SIP element answer an OPTIONS request (RFC 3261 §11), with what, and how fast.

The way the field checks an SBC, a proxy or an ESRP: UDP (the default), TCP or TLS, IPv4 or
IPv6. On UDP the request is retransmitted by the RFC's timer rules, within the check's timeout
(probes/support/sip_transaction.py); only a response whose top Via branch, Call-ID and CSeq
are the request's answers it. Over TLS the certificate is judged as a `tls` check judges it
(probes/support/sip_tls.py), and the check is in `commwatch audit certs`.

What the answer means, by default: 2xx is OK; 3xx and 4xx are WARN, since the element is alive
and its SIP stack answered (many SBCs answer a ping with 404, 405, 403 or 483), but not as
expected: list the codes your gear answers in `ok_codes`; 503 is "in maintenance" (or
overloaded, RFC 3261 §21.5.4), WARN by `maintenance_status`, with its Retry-After; every other
code (5xx, 6xx) is CRIT: the element refuses service.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.core.conditions import Condition, Expectation, Explain, Finding
from monitor.core.errors import AnswerTimeout
from monitor.core.model import ObservationValue, ProbeResult, Severity
from monitor.core.options import (
    OptionError,
    choice,
    duration,
    format_host_port,
    host,
    host_port,
    integer,
    option,
    text,
)
from probes.base import Headline, LatencyOptions, Observations, ProbeContext, ProbeKind
from probes.support import certificate_options, sip_message, sip_transaction
from probes.support.status_codes import (
    StatusRanges,
    covers,
    describe_statuses,
    status_ranges_parser,
)

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
MAINTENANCE_STATUSES = ("warn", "crit", "ok")
MAINTENANCE_CODE = 503
LATENCY = "rtt_ms"  # from the request's first transmission to the final response
STATUS = "status"
# Timer F (RFC 3261 §17.1.2.2): a non-INVITE transaction gives up after 64*T1.
_TIMER_F_FACTOR = 64
# The transaction ends a little before the runner's timeout, so its own words say why.
_TIMEOUT_SHARE = 0.95
_URI = re.compile(r"(sips?):[!#-;=?-~]+", re.IGNORECASE)  # printable ASCII but space " < >
_URI_LIMIT = 256

status_codes = status_ranges_parser("a SIP status code", 699)


def _target(value: Any) -> tuple[str, int]:
    """HOST[:PORT]; port 0 stands for the transport's default (5060, or 5061 for TLS)."""
    return host_port(value, default_port=0)


def _sip_uri(value: Any) -> str:
    raw = text(value).strip()
    if len(raw) > _URI_LIMIT or _URI.fullmatch(raw) is None:
        raise OptionError(
            f"{raw[:_URI_LIMIT]!r} is not a SIP URI",
            "write sip:HOST[:PORT] or sip:USER@HOST, in ASCII, without spaces, quotes or <>",
        )
    return raw


@dataclass(frozen=True, kw_only=True)
class SipOptions(LatencyOptions, certificate_options.CertificateOptions):
    target: tuple[str, int] = option(
        parse=_target,
        help="HOST[:PORT] of the SIP element (port 5060, or 5061 for TLS, if left out)",
        metavar="HOST[:PORT]",
    )
    transport: str = option(
        "udp", parse=choice(*TRANSPORTS), metavar="TRANSPORT", help="udp, tcp or tls"
    )
    request_uri: str | None = option(
        None,
        parse=_sip_uri,
        metavar="URI",
        help="the Request-URI and To of the OPTIONS request (default sip:HOST:PORT); a user "
        "part such as sip:ping@HOST reaches the route an SBC keeps for it",
    )
    from_uri: str | None = option(
        None,
        parse=_sip_uri,
        metavar="URI",
        help="the From of the request, for SBCs that admit known senders only "
        "(default sip:commwatch@ the local address)",
    )
    ok_codes: StatusRanges = option(
        "200-299",
        parse=status_codes,
        metavar="CODES",
        repeatable=True,
        help="final responses that are OK, e.g. 200-299 or 200, 404 (an SBC that answers "
        "OPTIONS with 404 is alive)",
    )
    warn_codes: StatusRanges = option(
        "300-499",
        parse=status_codes,
        metavar="CODES",
        repeatable=True,
        help="final responses that are WARN (alive, but not as expected) unless in ok_codes; "
        "every other code but 503 is CRIT",
    )
    maintenance_status: str = option(
        "warn",
        parse=choice(*MAINTENANCE_STATUSES),
        metavar="SEVERITY",
        help="what a 503 (maintenance or overload, with or without Retry-After) is: warn, crit "
        "or ok",
    )
    server_name: str | None = option(
        None,
        parse=host,
        metavar="NAME",
        help="TLS: the name sent as SNI and required in the certificate (default: the target host)",
    )
    t1: float = option(
        "500ms",
        parse=duration,
        metavar="DURATION",
        help="UDP: RFC 3261 T1, the first retransmission interval (doubling up to t2); "
        "the transaction also ends at Timer F, 64*t1",
    )
    t2: float = option(
        "4s", parse=duration, metavar="DURATION", help="UDP: the longest retransmission interval"
    )
    max_response_bytes: int = option(
        16384,
        parse=integer(1024, 65535),
        metavar="BYTES",
        help="CRIT (oversized response) for a longer message",
    )

    @property
    def address(self) -> str:
        return self.target[0]

    @property
    def port(self) -> int:
        return self.target[1] or DEFAULT_PORTS[self.transport]

    def validate(self) -> None:
        self.validate_latency()
        self.validate_certificates()
        if self.t1 > self.t2:
            raise OptionError(
                "t1 is above t2",
                "retransmissions start at t1 and double up to t2: make t1 <= t2",
                key="t1",
            )
        for key in ("ok_codes", "warn_codes"):
            if covers(getattr(self, key), MAINTENANCE_CODE):
                raise OptionError(
                    f"{key} covers 503, which maintenance_status judges",
                    "leave 503 out (e.g. 500-502, 504-599) and set maintenance_status: "
                    "warn, crit or ok",
                    key=key,
                )
        for key in ("request_uri", "from_uri"):
            uri = getattr(self, key)
            if uri is not None and uri.lower().startswith("sips:") and self.transport != "tls":
                raise OptionError(
                    f"{key} is a sips: URI, which asks for TLS",
                    "use transport: tls, or a sip: URI",
                    key=key,
                )


def judged_name(options: SipOptions) -> str:
    return options.server_name or options.address


def _request_uri(options: SipOptions) -> str:
    return options.request_uri or f"sip:{format_host_port(options.address, options.port)}"


def _request_for(options: SipOptions) -> Callable[[tuple[Any, ...]], sip_message.OptionsRequest]:
    """The request of one poll, made once the socket's own address (a sockname, two items for
    IPv4, four for IPv6) is known: the Via and Contact name it."""

    def make(local: tuple[Any, ...]) -> sip_message.OptionsRequest:
        return sip_message.new_options(
            _request_uri(options), options.from_uri, options.transport.upper(), local[:2]
        )

    return make


def _timers(options: SipOptions, ctx: ProbeContext) -> sip_transaction.Timers:
    timer_f = _TIMER_F_FACTOR * options.t1
    budget = min(ctx.timeout * _TIMEOUT_SHARE, timer_f)
    deadline = asyncio.get_running_loop().time() + budget
    return sip_transaction.Timers(
        options.t1, options.t2, deadline, round(budget, 3), timer_f=budget == timer_f
    )


async def _connect(
    options: SipOptions, ctx: ProbeContext, timers: sip_transaction.Timers
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Observations]:
    """A TCP connection, or a TLS session with its certificate judged, within the budget."""
    stage = "TCP connection" if options.transport == "tcp" else "TLS session"
    try:
        async with asyncio.timeout_at(timers.deadline):
            if options.transport == "tls":
                # Only TLS checks load the certificate machinery.
                from probes.support import sip_tls

                return await sip_tls.open_session(options, ctx, judged_name(options))
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection(options.address, options.port)
    except TimeoutError:
        raise AnswerTimeout(
            f"no {stage} within {timers.budget:g}s", {"transport": options.transport}
        ) from None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # An RST instead of a FIN: thousands of polls leave no TIME_WAIT sockets behind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return reader, writer, {"connect_ms": round((time.perf_counter() - started) * 1000, 3)}


async def measure(options: SipOptions, ctx: ProbeContext) -> Observations:
    timers = _timers(options, ctx)
    seen: dict[str, ObservationValue] = {"transport": options.transport}
    limit = options.max_response_bytes
    if options.transport == "udp":
        answer = await sip_transaction.over_udp(
            options.address, options.port, _request_for(options), limit, timers, seen
        )
    else:
        reader, writer, opened = await _connect(options, ctx, timers)
        seen.update(opened)
        try:
            request = _request_for(options)(writer.get_extra_info("sockname"))
            answer = await sip_transaction.over_stream(reader, writer, request, limit, timers, seen)
        finally:
            # No close_notify, no FIN: an OPTIONS ping owes the server nothing more.
            writer.transport.abort()
    return {**seen, **_described(answer.response), LATENCY: answer.rtt_ms, **answer.counts}


def _described(response: sip_message.Response) -> Observations:
    """The final response as observations: the code, the words and headers around it."""
    observations: dict[str, ObservationValue] = {
        STATUS: response.status,
        "reason": response.reason,
        "maintenance": response.status == MAINTENANCE_CODE,
    }
    if response.retry_after is not None:
        observations["retry_after"] = response.retry_after
    for header, key in (("server", "server"), ("user-agent", "user_agent"), ("allow", "allow")):
        value = response.text_of(header)
        if value is not None:
            observations[key] = value
    return observations


def _status_words(expected: str) -> Explain:
    def explain(value: ObservationValue, reason: str) -> Finding:
        gist = f"SIP {value} {reason}".strip()
        return Finding(gist, f"{gist} (expected {expected})")

    return explain


def _passed_status(value: ObservationValue, reason: str) -> Finding:
    return Finding(f"SIP {value} {reason}".strip())


def _maintenance_words(accepted: bool) -> Explain:
    def explain(value: ObservationValue, retry_after: str) -> Finding:
        if value is not True:
            return Finding("not in maintenance")
        retry = f"Retry-After {retry_after}s" if retry_after else "no Retry-After"
        gist = "in maintenance (accepted: maintenance_status ok)" if accepted else "in maintenance"
        return Finding(gist, f"{gist}: SIP 503, {retry}")

    return explain


def conditions(options: SipOptions) -> tuple[Condition, ...]:
    ok_codes, warn_codes = options.ok_codes, options.warn_codes
    expected = describe_statuses(ok_codes)
    maintenance_ok = options.maintenance_status == "ok"
    judged: list[Condition] = [
        Expectation(
            condition="status",
            observation=STATUS,
            # A 503 is the maintenance condition's to judge.
            accepts=lambda code: covers(ok_codes, code) or code == MAINTENANCE_CODE,
            expected=expected,
            grade=lambda code: Severity.WARN if covers(warn_codes, code) else Severity.CRIT,
            about="reason",
            failed=_status_words(expected),
            passed=_passed_status,
            headline=True,
        ),
        Expectation(
            condition="maintenance",
            observation="maintenance",
            accepts=lambda value: value is False or maintenance_ok,
            expected="no 503 (maintenance or overload)",
            severity=Severity.CRIT if options.maintenance_status == "crit" else Severity.WARN,
            about="retry_after",
            failed=_maintenance_words(False),
            passed=_maintenance_words(True),
        ),
        options.latency(LATENCY, headline=True),
    ]
    if options.transport == "tls":
        from probes.support import sip_tls

        judged.extend(sip_tls.conditions(options, judged_name(options)))
    return tuple(judged)


def headline(result: ProbeResult, now: float) -> Headline:
    """The status, as "SIP 404" (which says the status verdict too); over TLS, the
    certificate's days when all is well."""
    when_ok: tuple[str, ...] = ()
    if result.observations.get("transport") == "tls":
        from probes.support import sip_tls

        when_ok = sip_tls.expiry_fact(result, now)
    status = result.observations.get(STATUS)
    if not isinstance(status, int):
        return Headline(when_ok=when_ok)
    return Headline(facts=(f"SIP {status}",), when_ok=when_ok, tells=frozenset({STATUS}))


def _describe(options: SipOptions) -> str:
    return f"{format_host_port(options.address, options.port)}/{options.transport}"


PROBE = ProbeKind(
    kind="sip",
    target_help="HOST[:PORT]",
    options=SipOptions,
    measure=measure,
    conditions=conditions,
    target=_describe,
    host=lambda o: o.address,
    presents_certificates=lambda o: o.transport == "tls",
    headline=headline,
    latency=LATENCY,
)
