"""`http`: does the URL answer with the expected status (and body), and how fast."""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from monitor.core.conditions import Condition, Expectation, Finding, said
from monitor.core.errors import ConfigFailure, DnsFailure, ProtocolFailure, TlsFailure
from monitor.core.model import ObservationValue, ProbeResult
from monitor.core.options import (
    OptionError,
    boolean,
    choice,
    host,
    integer,
    option,
    text,
)
from monitor.core.patterns import Pattern, regex
from monitor.core.secrets import SecretRef, headers
from monitor.core.text import one_line
from probes.base import Headline, LatencyOptions, Observations, ProbeContext, ProbeKind
from probes.support import (
    certificate_chain,
    certificate_findings,
    certificate_options,
    certificates,
)
from probes.support.ssl_compat import served_chain
from probes.support.status_codes import (
    covers,
    describe_statuses,
    status_ranges_parser,
)
from probes.support.tls_handshake import HandshakeError, Peer, read_refused_chain

USER_AGENT = "commwatch/0.1.0"
_MIB = 1024 * 1024
_READ_CHUNK = 65536

LATENCY = "latency_ms"  # until the response headers arrived
STATUS = "status"


def _url(value: Any) -> str:
    raw = text(value).strip()
    hint = "write a full URL such as https://192.0.2.10/health"
    try:
        url = URL(raw)
        url_port = url.port
    except ValueError as exc:
        raise OptionError(f"{raw!r} is not a URL: {exc}", hint) from None
    if url.scheme not in ("http", "https"):
        raise OptionError(f"{raw!r} is not an http:// or https:// URL", hint)
    if not url.host:
        raise OptionError(f"{raw!r} has no host", hint)
    if url.user is not None or url.password is not None:
        # The target is printed with every result; credentials belong in a secret header.
        raise OptionError(
            f"{url.with_user(None)} carries credentials in the URL",
            "remove them and use headers: {Authorization: {env: NAME}}",
        )
    host(url.raw_host)
    if url_port is None or not 1 <= url_port <= 65535:
        raise OptionError(f"{raw!r} has no valid port", "use a port from 1 to 65535")
    return raw


status_ranges = status_ranges_parser("an HTTP status code", 599)


def _method(value: Any) -> str:
    method: str = choice("get", "head")(value)
    return method.upper()


@dataclass(frozen=True, kw_only=True)
class HttpOptions(LatencyOptions, certificate_options.CertificateOptions):
    target: str = option(parse=_url, help="http:// or https:// URL to request", metavar="URL")
    method: str = option("GET", parse=_method, help="GET or HEAD", metavar="METHOD")
    expect_status: tuple[tuple[int, int], ...] = option(
        "200-399",
        parse=status_ranges,
        metavar="STATUS",
        repeatable=True,
        help="CRIT unless the final status is one of these codes or ranges (e.g. 200-299)",
    )
    body_contains: str | None = option(
        None, parse=text, metavar="TEXT", help="CRIT unless the body contains this text"
    )
    body_regex: Pattern | None = option(
        None,
        parse=regex,
        metavar="REGEX",
        help="CRIT unless the body matches this expression (RE2 syntax, matched in linear time)",
    )
    max_body_bytes: int = option(
        _MIB,
        parse=integer(1, 64 * _MIB),
        metavar="BYTES",
        help="read at most this much of the body; body checks judge what was read",
    )
    follow_redirects: bool = option(
        True, parse=boolean, metavar="BOOL", help="follow redirects; if false a 3xx is final"
    )
    max_redirects: int = option(
        5, parse=integer(1, 30), metavar="N", help="protocol error after more redirects"
    )
    headers: tuple[tuple[str, str | SecretRef], ...] = option(
        (),
        parse=headers,
        metavar="'NAME: VALUE'",
        repeatable=True,
        help="extra request headers; a value may be {env: NAME} or {file: PATH}",
    )
    verify_tls: bool = option(
        True, parse=boolean, metavar="BOOL", help="verify the server certificate and name"
    )
    user_agent: str = option(
        USER_AGENT, parse=text, metavar="TEXT", help="User-Agent header to send"
    )

    def validate(self) -> None:
        self.validate_latency()
        self.validate_certificates()
        if self.body_regex is not None:
            self.body_regex.check_work(
                self.max_body_bytes, key="body_regex", bytes_key="max_body_bytes"
            )
        if self.method == "HEAD" and (self.body_contains or self.body_regex):
            raise OptionError(
                "a HEAD request has no body to check",
                "use method GET with body_contains or body_regex",
                key="body_contains" if self.body_contains else "body_regex",
            )


async def _new_session() -> aiohttp.ClientSession:
    # force_close: every check measures a fresh connection, never a kept-alive one.
    # limit=0: the engine already caps concurrency. No cookie jar: checks must not see each
    # other's cookies through the shared session.
    return aiohttp.ClientSession(
        connector=_Connector(force_close=True, limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _ssl_context(verify: bool, ca_file: str | None, options: HttpOptions) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file if verify else None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        certificate_options.load_client_certificate(context, options)
    except (OSError, ValueError) as exc:
        # Checked when the inventory was loaded; at run time it means a file changed since.
        raise ConfigFailure(f"cannot set up TLS with CA file {ca_file}: {exc}") from exc
    return context


async def _shared_ssl_context(options: HttpOptions, ctx: ProbeContext) -> ssl.SSLContext:
    # Building a context (and reading a CA bundle) costs far more than a request: one per run.
    verify, ca_file = options.verify_tls, options.ca_file if options.verify_tls else None
    secret = options.client_key_passphrase_env or options.client_key_passphrase_file
    client = f"{options.client_cert}:{options.client_key}:{secret}"

    async def build() -> ssl.SSLContext:
        return _ssl_context(verify, ca_file, options)

    return await ctx.shared.get(f"http.ssl:{verify}:{ca_file}:{client}", build)


def _request_headers(options: HttpOptions) -> dict[str, str]:
    result = {"User-Agent": options.user_agent}
    for name, value in options.headers:
        revealed = value.reveal() if isinstance(value, SecretRef) else value
        if "\r" in revealed or "\n" in revealed:
            # Named by reference: the error message must not carry the value.
            raise ConfigFailure(f"header {name} from {value} contains a line break")
        result[name] = revealed
    return result


# Where the connector reports the TLS version of the connection a measurement opened; aiohttp
# releases a connection as soon as a short body has arrived, before the probe could look at it.
_connection_tls: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "http_connection_tls"
)


class _Connector(aiohttp.TCPConnector):
    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Any:
        connection = await super().connect(req, traces, timeout)
        record = _connection_tls.get(None)
        if record is not None:
            transport = connection.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            # Each redirect hop overwrites it: the final connection is the one reported.
            record["tls_version"] = ssl_object.version() if ssl_object else None
            record["chain"] = served_chain(ssl_object) if ssl_object else None
        return connection


async def _read_body(
    response: aiohttp.ClientResponse, limit: int, keep: bool
) -> tuple[int, bool, bytes]:
    """Read at most `limit` bytes; one byte more tells whether the body was cut off."""
    received = 0
    kept = bytearray()
    while received <= limit:
        chunk = await response.content.read(min(_READ_CHUNK, limit + 1 - received))
        if not chunk:
            break
        received += len(chunk)
        if keep:
            kept += chunk
    return min(received, limit), received > limit, bytes(kept[:limit])


def _decode(body: bytes, charset: str | None) -> str:
    """Text to match against; a charset the server made up must not fail the check."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _payload_fault(exc: aiohttp.ClientPayloadError) -> str:
    """What the body's parser said; aiohttp's own text embeds that error's repr."""
    said = getattr(exc.__cause__, "message", None)
    return one_line(str(said if isinstance(said, str) and said else exc))


def _connector_failure(exc: aiohttp.ClientConnectorError) -> Exception:
    """The same error class the runner gives `exc`, with a one-line message.

    aiohttp's own text prints the connection key (with our SSLContext's repr) around the cause,
    and a bare ssl.SSLError would be described by its errno ("Operation not permitted").
    """
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DnsFailure(f"cannot resolve {exc.host}: {exc.strerror or exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        detail = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
        return TlsFailure(f"TLS certificate verify failed: {detail or cause}")
    if isinstance(exc, aiohttp.ClientSSLError):
        cause = exc.os_error
        return TlsFailure(f"TLS handshake failed: {getattr(cause, 'reason', None) or cause}")
    # The OSError underneath carries the errno the runner classifies on, and a plain message.
    return exc.os_error


async def measure(options: HttpOptions, ctx: ProbeContext) -> Observations:
    session = await ctx.shared.get("http.session", _new_session, _close_session)
    ssl_context = await _shared_ssl_context(options, ctx)
    request_headers = _request_headers(options)
    observations: dict[str, ObservationValue] = {}
    connection_tls: dict[str, Any] = {}
    token = _connection_tls.set(connection_tls)
    started = time.perf_counter()
    try:
        async with session.request(
            options.method,
            URL(options.target),
            headers=request_headers,
            ssl=ssl_context,
            allow_redirects=options.follow_redirects,
            # aiohttp counts the redirect that exceeds its limit against it: one more lets
            # exactly max_redirects hops through.
            max_redirects=options.max_redirects + 1,
            timeout=aiohttp.ClientTimeout(total=ctx.timeout),
        ) as response:
            observations[LATENCY] = round((time.perf_counter() - started) * 1000, 3)
            observations[STATUS] = response.status
            observations["url"] = str(response.url.with_user(None))
            observations["redirects"] = len(response.history)
            if connection_tls.get("tls_version"):
                observations["tls_version"] = connection_tls["tls_version"]
            keep = options.body_contains is not None or options.body_regex is not None
            try:
                body_bytes, truncated, body = await _read_body(
                    response, options.max_body_bytes, keep
                )
            except aiohttp.ClientPayloadError as exc:
                raise ProtocolFailure(
                    f"response body broken off: {_payload_fault(exc)}", observations
                ) from exc
    except aiohttp.TooManyRedirects as exc:
        raise ProtocolFailure(f"too many redirects ({options.max_redirects})") from exc
    except aiohttp.ServerDisconnectedError as exc:
        # Its text is the repr of aiohttp's half-parsed response.
        raise ProtocolFailure(
            "the server closed the connection before a complete response"
        ) from exc
    except aiohttp.NonHttpUrlRedirectClientError as exc:
        raise ProtocolFailure(
            f"redirected to {exc}, which is not an http:// or https:// URL"
        ) from exc
    except aiohttp.ClientResponseError as exc:
        # aiohttp reports a malformed response as a made-up status 400; it is not one.
        raise ProtocolFailure(f"malformed HTTP response: {one_line(exc.message)}") from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        failure = _connector_failure(exc)
        if isinstance(failure, TlsFailure) and _judges_certificates(options):
            failure.observations.update(await _unverified_chain(options, exc, ctx))
        raise failure from exc
    except aiohttp.ClientConnectorError as exc:
        raise _connector_failure(exc) from exc
    finally:
        _connection_tls.reset(token)
    if connection_tls.get("chain") and _judges_certificates(options):
        served, verified = connection_tls["chain"]
        verification = certificate_chain.Verification(trusted=True, verified=tuple(verified))
        chain = await certificate_chain.parse_chain(served, ctx)
        observations.update(
            await certificates.judge_chain(chain, verification, _host(options), options, ctx)
        )
    observations["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
    observations["body_bytes"] = body_bytes
    observations["body_truncated"] = truncated
    if keep:
        # Up to max_body_bytes of decoding and matching: off the event loop, so the timing of
        # every other check in flight is not this body's to decide.
        observations.update(await asyncio.to_thread(_judge_body, body, response.charset, options))
    return observations


def _judge_body(body: bytes, charset: str | None, options: HttpOptions) -> Observations:
    decoded = _decode(body, charset)
    judged: dict[str, ObservationValue] = {}
    if options.body_contains is not None:
        judged["body_contains_match"] = options.body_contains in decoded
    if options.body_regex is not None:
        judged["body_regex_match"] = options.body_regex.search(decoded)
    return judged


def _host(options: HttpOptions) -> str:
    return URL(options.target).host or ""


def _judges_certificates(options: HttpOptions) -> bool:
    """https with verification on: with verify_tls off the certificate is deliberately ignored.
    A redirect to another scheme or host is not followed by the certificate judgement."""
    return options.verify_tls and URL(options.target).scheme == "https"


async def _unverified_chain(
    options: HttpOptions, exc: aiohttp.ClientConnectorCertificateError, ctx: ProbeContext
) -> dict[str, ObservationValue]:
    """The chain a server sent when verification failed, read again (as the tls probe does)
    so the fault is named and the certificates recorded."""
    url = URL(options.target)
    cause = exc.certificate_error
    name = _host(options)
    if not isinstance(cause, ssl.SSLCertVerificationError):
        return {}
    sni = None if certificate_chain.is_ip(name) else name
    try:
        peer = Peer(url.raw_host or "", url.port or 443, sni)
        session, verification = await read_refused_chain(peer, options, ctx, cause)
    except (OSError, HandshakeError):
        # The verification failure stays the result; the chain is a bonus not to be had.
        return {}
    session.writer.transport.abort()
    if not session.served:
        return {}
    chain = await certificate_chain.parse_chain(session.served, ctx)
    return await certificates.judge_chain(chain, verification, name, options, ctx)


def headline(result: ProbeResult, now: float) -> Headline:
    """The status, as "HTTP 503" (which says its verdict too); the certificate's days when all
    is well."""
    status = result.observations.get(STATUS)
    if not isinstance(status, int):
        return Headline(when_ok=certificate_findings.expiry_fact(result, now))
    return Headline(
        facts=(f"HTTP {status}",),
        when_ok=certificate_findings.expiry_fact(result, now),
        tells=frozenset({STATUS}),
    )


def conditions(options: HttpOptions) -> tuple[Condition, ...]:
    ranges = options.expect_status
    expected = describe_statuses(ranges)
    declared: list[Condition] = [
        Expectation(
            condition="status",
            observation=STATUS,
            accepts=lambda value: covers(ranges, value),
            expected=expected,
            failed=lambda value, _: Finding(f"HTTP {value}", f"HTTP {value} (expected {expected})"),
            passed=lambda value, _: Finding(f"HTTP {value}"),
            headline=True,
        ),
        options.latency(LATENCY, headline=True),
    ]
    if options.body_contains is not None:
        wanted = repr(options.body_contains)
        declared.append(
            Expectation(
                condition="body_contains",
                observation="body_contains_match",
                accepts=lambda value: value is True,
                expected=f"body containing {wanted}",
                failed=said("text not in body", f"the body does not contain {wanted}"),
                passed=said(f"body contains {wanted}"),
            )
        )
    if options.body_regex is not None:
        pattern = repr(options.body_regex.pattern)
        declared.append(
            Expectation(
                condition="body_regex",
                observation="body_regex_match",
                accepts=lambda value: value is True,
                expected=f"body matching {pattern}",
                failed=said("body does not match", f"the body does not match {pattern}"),
                passed=said(f"body matches {pattern}"),
            )
        )
    if _judges_certificates(options):
        declared.extend(certificate_findings.certificate_conditions(options, _host(options)))
    return tuple(declared)


PROBE = ProbeKind(
    kind="http",
    target_help="URL",
    options=HttpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: o.target,
    host=lambda o: URL(o.target).host or "",
    presents_certificates=lambda o: URL(o.target).scheme == "https",
    headline=headline,
    latency=LATENCY,
)
