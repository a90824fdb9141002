"""`dns`: what does a named DNS server answer for a name, with which rcode, and how fast.

The query always goes to the configured server, never through the system resolver: commwatch
checks that a specific server (a PSAP's internal resolver, an authoritative server) answers.
UDP first; a truncated answer is asked again over TCP, as a stub resolver would.

With `dnssec: true` the query carries the DO bit (EDNS0, 1232 bytes) and the answer's chain of
trust is walked from `trust_anchor`, asking the same server for each DS and DNSKEY
(probes/support/dnssec_chain.py); a validating resolver's SERVFAIL is asked again with
checking disabled, to say why.

Expected answers are written the way dnspython renders the record data, and compared after
normalisation: names are case-insensitive and the trailing dot is optional ("10 mail.example.net"
matches "10 Mail.Example.NET."), addresses compare by value ("2001:db8::1" matches
"2001:DB8:0::1"). TXT is the exception: write the record's text without quotes; a record split into
several strings is compared as their concatenation, and the comparison is exact (TXT carries data
such as DKIM keys, where case matters).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.txtbase
from dns._asyncbackend import DatagramSocket  # the type of dnspython's public sockets

from monitor.core.conditions import Condition, Expectation
from monitor.core.errors import ProbeFailure, ProtocolFailure
from monitor.core.model import ObservationValue, ProbeResult
from monitor.core.options import (
    OptionError,
    boolean,
    choice,
    each,
    format_host_port,
    ip_port,
    option,
    text,
)
from probes.base import Headline, LatencyOptions, Observations, ProbeContext, ProbeKind
from probes.support import dnssec_findings
from probes.support.dnssec_anchor import load_anchors
from probes.support.dnssec_options import DnssecOptions
from probes.support.dnssec_words import EDNS_PAYLOAD

RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT")
RCODES = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP")
EXPECT_MODES = ("any", "all")
ANSWER_LIMIT = 200
_SEPARATOR = ", "
RCODE = "rcode"
LATENCY = "latency_ms"  # until the answer arrived


def _query_name(value: Any) -> str:
    name = text(value).strip()
    hint = "write a DNS name such as www.example.net or _sip._udp.example.net"
    if any(c.isspace() for c in name):
        raise OptionError(f"{name!r} is not a DNS name: it contains white space", hint)
    try:
        return dns.name.from_text(name).to_text()
    except dns.exception.DNSException as exc:
        raise OptionError(f"{name!r} is not a DNS name: {exc}", hint) from None


def _server(value: Any) -> tuple[str, int]:
    return ip_port(
        value,
        53,
        "give the address of the DNS server to ask, e.g. 192.0.2.53 or [2001:db8::53]:5353;"
        " commwatch never asks the system resolver",
    )


def _record_type(value: Any) -> str:
    name = text(value).strip().upper()
    if name not in RECORD_TYPES:
        raise OptionError(
            f"{value!r} is not a supported record type", "use one of: " + ", ".join(RECORD_TYPES)
        )
    return name


def _rcode(value: Any) -> str:
    name = text(value).strip().upper()
    if name not in RCODES:
        raise OptionError(f"{value!r} is not a DNS rcode", "use one of: " + ", ".join(RCODES))
    return name


@dataclass(frozen=True, kw_only=True)
class DnsOptions(LatencyOptions, DnssecOptions):
    target: str = option(parse=_query_name, help="the DNS name to query", metavar="NAME")
    server: tuple[str, int] = option(
        parse=_server,
        help="IP address of the DNS server to ask, port 53 unless given",
        metavar="ADDRESS[:PORT]",
    )
    type: str = option(
        "A",
        parse=_record_type,
        help="record type to ask for: " + ", ".join(RECORD_TYPES),
        metavar="TYPE",
    )
    expect: tuple[str, ...] = option(
        (),
        parse=each(text),
        help="an expected answer, as dnspython renders it (TXT: the text, unquoted)",
        metavar="ANSWER",
        repeatable=True,
    )
    expect_mode: str = option(
        "any",
        parse=choice(*EXPECT_MODES),
        help="any: one expected answer must be present; all: every one must be",
        metavar="MODE",
    )
    expect_rcode: str = option(
        "NOERROR", parse=_rcode, help="the rcode the server should answer with", metavar="RCODE"
    )
    recurse: bool = option(
        True, parse=boolean, help="ask for recursion (the RD flag)", metavar="BOOL"
    )
    tcp: bool = option(False, parse=boolean, help="query over TCP only", metavar="BOOL")

    def validate(self) -> None:
        self.validate_latency()
        if self.expect and self.expect_rcode != "NOERROR":
            raise OptionError(
                f"expect lists answers but expect_rcode is {self.expect_rcode}",
                "only a NOERROR answer carries records: drop expect or expect_rcode",
                key="expect",
            )
        # Parsed here so a malformed expected answer fails at load time, not at every poll.
        expected_renderings(self.type, self.expect)
        self.validate_dnssec(self.target)


def _render_rdata(rdata: dns.rdata.Rdata) -> str:
    """The normalised text of one answer: what `expect` values are compared against."""
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
        return _render_txt(b"".join(rdata.strings).decode("utf-8", errors="backslashreplace"))
    return rdata.to_text(origin=dns.name.root, relativize=True).lower()


def _render_txt(content: str) -> str:
    # JSON quoting escapes every quote inside the text, so a rendered TXT answer can never
    # contain the separator followed by a quote: `_accepts` cannot match across answers.
    return json.dumps(content, ensure_ascii=False)


def expected_renderings(record_type: str, expect: tuple[str, ...]) -> tuple[str, ...]:
    """The configured answers in the normalised form `_render_rdata` gives real answers."""
    if record_type == "TXT":
        return tuple(_render_txt(value) for value in expect)
    rdtype = dns.rdatatype.from_text(record_type)
    rendered = []
    for value in expect:
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root)
        except (dns.exception.DNSException, ValueError) as exc:
            raise OptionError(
                f"expected answer {value!r} is not {record_type} record data: {exc}",
                "write it as a zone file would, e.g. 192.0.2.10 or 10 mail.example.net",
                key="expect",
            ) from None
        rendered.append(_render_rdata(rdata))
    return tuple(rendered)


def _compact_answer(rendered: list[str], first: tuple[str, ...]) -> str:
    """The answers joined, those in `first` leading and never cut, the rest up to the limit.

    A cut answer ends in an ellipsis, so it can never pass for an expected answer in `_accepts`.
    """
    wanted = set(first)
    ordered = [r for r in rendered if r in wanted] + [r for r in rendered if r not in wanted]
    shown: list[str] = []
    length = 0
    for item in ordered:
        room = ANSWER_LIMIT - length
        if item not in wanted and len(item) > room:
            if room > 0:
                shown.append(item[:room] + "…")
            hidden = len(ordered) - len(shown)
            if hidden:
                shown.append(f"+{hidden} more")
            break
        shown.append(item)
        length += len(item) + len(_SEPARATOR)
    return _SEPARATOR.join(shown)


async def _ask(
    query: dns.message.Message, options: DnsOptions, timeout: float
) -> tuple[dns.message.Message, str, bool]:
    """The server's answer, the transport that carried it, and whether UDP came back truncated."""
    address, port_number = options.server
    if options.tcp:
        return await dns.asyncquery.tcp(query, address, timeout, port_number), "tcp", False
    # dnspython's clock for deadlines; a margin before the runner's own timeout leaves the
    # time to say why no answer came.
    expiration = time.time() + timeout * 0.95
    # A connected socket: the kernel drops datagrams from any other address (noise, off-path
    # spoofs), and a closed port's ICMP error comes back as ConnectionRefusedError at once
    # instead of waiting out the timeout.
    backend = dns.asyncbackend.get_default_backend()
    # dnspython leaves its backends' make_socket unannotated.
    sock: DatagramSocket = await backend.make_socket(  # type: ignore[no-untyped-call]
        dns.inet.af_for_address(address), socket.SOCK_DGRAM, 0, None, (address, port_number)
    )
    async with sock:
        await dns.asyncquery.send_udp(sock, query.to_wire(), None, expiration)
        response = await _answer(sock, query, expiration, timeout)
    if response is None:
        remaining = expiration - time.time()
        if remaining <= 0:
            # dnspython leaves Timeout's __init__ unannotated.
            raise dns.exception.Timeout(timeout=timeout)  # type: ignore[no-untyped-call]
        return await dns.asyncquery.tcp(query, address, remaining, port_number), "tcp", True
    return response, "udp", False


async def _answer(
    sock: DatagramSocket,
    query: dns.message.Message,
    expiration: float,
    timeout: float,
) -> dns.message.Message | None:
    """The reply to `query`, or None when it came truncated (ask again over TCP).

    A well-formed reply to another query (another id or question: a late answer to an earlier
    poll, a spoof) is ignored while the real one is awaited, as stub resolvers do (RFC 5452);
    a reply to this query that is not well formed is the server's fault, at once."""
    strays = 0
    while True:
        try:
            response: dns.message.Message
            response, _, _ = await dns.asyncquery.receive_udp(
                sock, None, expiration, raise_on_truncation=True, query=query
            )
        except dns.message.Truncated as exc:
            # dnspython stops parsing a truncated reply where it can (and leaves this unannotated).
            partial: dns.message.Message = exc.message()  # type: ignore[no-untyped-call]
            if query.is_response(partial):
                return None
            if not _earlier_reply(partial, query):
                raise ProtocolFailure("the reply is not a well-formed DNS message") from None
            strays += 1
            continue
        except dns.exception.Timeout:
            if not strays:
                raise
            raise TimeoutError(
                f"no answer within {timeout:g}s; ignored {strays} repl"
                f"{'y' if strays == 1 else 'ies'} to other queries (another id or question)"
            ) from None
        except dns.exception.DNSException as exc:
            raise ProtocolFailure(f"the reply is not a well-formed DNS message: {exc}") from None
        if query.is_response(response):
            return response
        strays += 1


def _earlier_reply(message: dns.message.Message, query: dns.message.Message) -> bool:
    """Whether a truncated message that does not answer `query` is a reply to an earlier query
    for the same question (a poll before this one): half of all random datagrams have the TC
    bit set, and those must count as garbage, not as strays."""
    return (
        bool(message.flags & dns.flags.QR)
        and message.opcode() == dns.opcode.QUERY
        and message.question == query.question
    )


def _query(options: DnsOptions, checking_disabled: bool = False) -> dns.message.QueryMessage:
    flags = (dns.flags.RD if options.recurse else 0) | (dns.flags.CD if checking_disabled else 0)
    if not options.dnssec:
        return dns.message.make_query(options.target, options.type, flags=flags)
    return dns.message.make_query(
        options.target,
        options.type,
        use_edns=0,
        want_dnssec=True,
        payload=EDNS_PAYLOAD,
        flags=flags,
    )


async def measure(options: DnsOptions, ctx: ProbeContext) -> Observations:
    query = _query(options)
    started = time.perf_counter()
    # The chain's queries share what the answer leaves of the time, less a margin in which to
    # say which of them failed.
    deadline = time.monotonic() + ctx.timeout * 0.9
    response, transport, truncated = await _ask(query, options, ctx.timeout)
    latency_ms = (time.perf_counter() - started) * 1000
    rcode = dns.rcode.to_text(response.rcode())
    rendered: list[str] = []
    ttl: int | None = None
    if response.rcode() == dns.rcode.NOERROR and isinstance(response, dns.message.QueryMessage):
        # Follows CNAMEs in the answer section to the RRset of the asked type, if any (a reply
        # to a query is parsed as a QueryMessage: dnspython checks its opcode is the query's).
        answer = response.resolve_chaining().answer
        if answer is not None:
            rendered = [_render_rdata(rdata) for rdata in answer]
            ttl = answer.ttl
    observations: Observations = {
        RCODE: rcode,
        "answers": len(rendered),
        "answer": _compact_answer(rendered, expected_renderings(options.type, options.expect)),
        "ttl": ttl,
        LATENCY: round(latency_ms, 3),
        "transport": transport,
        "truncated_fallback": truncated,
    }
    if options.dnssec:
        observations["ad"] = bool(response.flags & dns.flags.AD)
        try:
            observations.update(await _dnssec(options, response, deadline))
        except ProbeFailure as exc:  # a chain query failed: what the answer said still counts
            raise type(exc)(str(exc), {**observations, **exc.observations}) from None
    return observations


async def _dnssec(
    options: DnsOptions, response: dns.message.Message, deadline: float
) -> Observations:
    assert options.trust_anchor is not None  # validate() makes dnssec need it
    # Here, not at the top: DNSSEC code and the cryptography library load for checks that
    # validate, and a plain dns check or plugin run pays for neither.
    from probes.support import dnssec_chain

    async def ask(query: dns.message.Message, timeout: float) -> dns.message.Message:
        return (await _ask(query, options, timeout))[0]

    retried = response.rcode() == dns.rcode.SERVFAIL
    if retried:
        remaining = deadline - time.monotonic()
        asked = f"{options.target} {options.type} with CD"
        response = await dnssec_chain.asked(ask, _query(options, True), remaining, asked)
    validation = await dnssec_chain.validate(
        response,
        dns.rdatatype.from_text(options.type),
        load_anchors(options.trust_anchor),
        ask,
        deadline,
        options.recurse,
    )
    return dnssec_findings.observations(validation, time.time(), retried)


def _accepts(expected: tuple[str, ...], mode: str) -> Callable[[ObservationValue], bool]:
    """Judges the compact answer: `_compact_answer` always shows every expected answer found."""

    def accepts(value: ObservationValue) -> bool:
        if not isinstance(value, str):
            return False
        answered = f"{_SEPARATOR}{value}{_SEPARATOR}"
        found = [f"{_SEPARATOR}{item}{_SEPARATOR}" in answered for item in expected]
        return all(found) if mode == "all" else any(found)

    return accepts


def headline(result: ProbeResult, _now: float) -> Headline:
    """The rcode ("NXDOMAIN"), which says its verdict too; with DNSSEC, when all is well, the
    chain's state and its first signature's days ("DNSSEC secure, RRSIG 9.5d")."""
    rcode = result.observations.get(RCODE)
    if not isinstance(rcode, str):
        return Headline()
    when_ok = dnssec_findings.headline(result.observations)
    return Headline(facts=(rcode,), when_ok=when_ok, tells=frozenset({RCODE}))


def conditions(options: DnsOptions) -> tuple[Condition, ...]:
    rcode = options.expect_rcode
    judged: list[Condition] = [
        Expectation(
            condition="rcode",
            observation=RCODE,
            accepts=lambda value: value == rcode,
            expected=rcode,
        )
    ]
    if options.expect:
        expected = expected_renderings(options.type, options.expect)
        judged.append(
            Expectation(
                condition="answer",
                observation="answer",
                accepts=_accepts(expected, options.expect_mode),
                expected=f"{options.expect_mode} of {_SEPARATOR.join(expected)}",
            )
        )
    judged.append(options.latency(LATENCY))
    return (*judged, *dnssec_findings.conditions(options))


def _describe(options: DnsOptions) -> str:
    name = dns.name.from_text(options.target).to_text(omit_final_dot=True)
    return f"{name} {options.type} @{format_host_port(*options.server)}"


PROBE = ProbeKind(
    kind="dns",
    target_help="NAME (with server: ADDRESS[:PORT])",
    options=DnsOptions,
    measure=measure,
    conditions=conditions,
    target=_describe,
    host=lambda o: o.server[0],
    headline=headline,
    latency=LATENCY,
)
