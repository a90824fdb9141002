"""`tls`: the certificate health of a TLS endpoint, direct or after STARTTLS.

One handshake in the normal case, with a context that verifies the chain against the system
store or `ca_file` but leaves names to `probes.support.certificates` (SAN-only, IP SANs, precisely
named). Only when that handshake fails is a second, relaxed one made (no verification, TLS 1.0
and weak ciphers allowed) to read the chain anyway and name the fault; if even that fails, the
first failure is reported.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import weakref
from dataclasses import dataclass
from typing import Any

from monitor.core.conditions import Condition, Expectation, Explain, Finding, said
from monitor.core.errors import ConfigFailure, TlsFailure
from monitor.core.model import ObservationValue, ProbeResult, Severity
from monitor.core.options import OptionError, choice, format_host_port, host, host_port, option
from probes.base import Headline, LatencyOptions, Observations, ProbeContext, ProbeKind
from probes.support import (
    certificate_chain,
    certificate_findings,
    certificate_options,
    certificates,
    ssl_compat,
    starttls,
)
from probes.support.certificate_chain import Verification
from probes.support.certificate_reader import ParsedCertificate, Served

# Protocol versions as OpenSSL names them, oldest first.
VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
MODERN = "TLSv1.2"  # the oldest version that needs no legacy settings
LATENCY = "handshake_ms"  # the TLS handshake alone, after the TCP connect
# How long to listen after a TLS 1.3 handshake for the server's verdict on our (missing) client
# certificate, as a multiple of the handshake time, with a floor for very fast links.
_CLIENT_AUTH_WAIT_FACTOR = 2.0
_CLIENT_AUTH_WAIT_MIN = 0.02


def _target(value: Any) -> tuple[str, int]:
    return host_port(value, default_port=443)


def _version(value: Any) -> str:
    """A protocol version: TLSv1.2 as OpenSSL writes it, or just 1.2 (1.0 for TLSv1)."""
    wanted = str(value).strip().lower().removeprefix("tlsv").removeprefix("tls")
    for version in VERSIONS:
        number = version.removeprefix("TLSv")
        if wanted in (number.lower(), "1.0" if number == "1" else number):
            return version
    raise OptionError(f"{value!r} is not a TLS version", "use one of: " + ", ".join(VERSIONS))


@dataclass(frozen=True, kw_only=True)
class TlsOptions(LatencyOptions, certificate_options.CertificateOptions):
    target: tuple[str, int] = option(
        parse=_target, help="HOST:PORT to connect to (port 443 if left out)", metavar="HOST:PORT"
    )
    server_name: str | None = option(
        None,
        parse=host,
        metavar="NAME",
        help="name sent as SNI and required in the certificate (default: the target host)",
    )
    min_tls_version: str = option(
        MODERN,
        parse=_version,
        metavar="VERSION",
        help="WARN below this protocol version; TLSv1 or TLSv1.1 accepts legacy gear (and the "
        "legacy handshake it needs) for good",
    )
    starttls: str = option(
        "none",
        parse=choice(*starttls.PROTOCOLS),
        metavar="PROTOCOL",
        help="plain-text protocol to upgrade first: " + ", ".join(starttls.PROTOCOLS),
    )

    def validate(self) -> None:
        self.validate_latency()
        self.validate_certificates()


def judged_name(options: TlsOptions) -> str:
    return options.server_name or options.target[0]


# --- contexts ------------------------------------------------------------------------------


def strict_context(ca_file: str | None, options: Any) -> ssl.SSLContext:
    """Verifies the chain; names are judged by probes.support.certificates, hence no
    check_hostname."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.check_hostname = False
        certificate_options.load_client_certificate(context, options)
    except (OSError, ValueError) as exc:
        # Checked at load time; at run time it means a file changed (or a wrong passphrase).
        raise ConfigFailure(f"cannot set up TLS: {getattr(exc, 'reason', None) or exc}") from exc
    return context


def relaxed_context(options: Any, ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """Accepts legacy gear: every protocol version and cipher this OpenSSL still has
    (SECLEVEL=0 re-enables TLS 1.0/1.1, SHA-1 and small keys), verifying the chain or not."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.check_hostname = False
        if not verify:
            context.verify_mode = ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        # MINIMUM_SUPPORTED rather than TLSv1: the same floor without a deprecation warning.
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        certificate_options.load_client_certificate(context, options)
    except (OSError, ValueError) as exc:
        raise ConfigFailure(f"cannot set up TLS: {getattr(exc, 'reason', None) or exc}") from exc
    return context


@dataclass(frozen=True)
class Contexts:
    strict: ssl.SSLContext  # modern protocols only, chain verified
    legacy: ssl.SSLContext  # legacy protocols and ciphers allowed, chain verified
    unverified: ssl.SSLContext  # legacy allowed, nothing verified: reads any chain


# Connections whose server sent a CertificateRequest. Only those can still be refused for want
# of a client certificate after the handshake, so only those are worth listening to; waiting on
# every connection would hold each check's slot for a round trip or more.
_asked_for_certificate: weakref.WeakSet[ssl.SSLObject] = weakref.WeakSet()


def _note_certificate_request(
    conn: ssl.SSLObject,
    direction: str,
    _version: int,
    content_type: int,
    message: int,
    _data: bytes,
) -> None:
    if (
        direction == "read"
        and content_type == ssl_compat.HANDSHAKE
        and message == ssl_compat.CERTIFICATE_REQUEST
    ):
        _asked_for_certificate.add(conn)


def watch_certificate_requests(context: ssl.SSLContext) -> ssl.SSLContext:
    """Python's ssl has no public hook for this: the one place a client sees the server's
    handshake messages is a private message callback (probes/support/ssl_compat.py)."""
    ssl_compat.watch_handshake_messages(context, _note_certificate_request)
    return context


async def shared_contexts(options: Any, ctx: ProbeContext) -> Contexts:
    """The contexts of a check, built once per run for each CA bundle and client certificate
    (a context, with its CA store, costs far more than a handshake)."""
    secret = options.client_key_passphrase_env or options.client_key_passphrase_file
    ca_file = options.ca_file
    key = f"tls.ctx:{ca_file}:{options.client_cert}:{options.client_key}:{secret}"

    async def build() -> Contexts:
        return Contexts(
            watch_certificate_requests(strict_context(ca_file, options)),
            watch_certificate_requests(relaxed_context(options, ca_file, verify=True)),
            watch_certificate_requests(relaxed_context(options, ca_file, verify=False)),
        )

    return await ctx.shared.get(key, build)


@dataclass(frozen=True)
class Session:
    """A completed handshake, its timings and what it showed of the server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    connect_ms: float
    handshake_ms: float
    version: str
    cipher: str
    served: list[Served]
    verified: list[bytes]
    certificate_requested: bool


class HandshakeError(Exception):
    """The TLS handshake itself failed (as opposed to the connect or the STARTTLS exchange)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def handshake(
    address: str,
    port: int,
    context: ssl.SSLContext,
    sni: str | None,
    protocol: str = "none",
) -> Session:
    """Connect, upgrade with STARTTLS if asked, and run the TLS handshake."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(address, port, limit=starttls.READ_LIMIT)
    try:
        connected = time.perf_counter()
        await starttls.negotiate(protocol, reader, writer, sni or address)
        tls_started = time.perf_counter()
        try:
            # server_hostname only sets SNI here (check_hostname is off); an IP literal sends none.
            await writer.start_tls(context, server_hostname=sni or address)
        except (ssl.SSLError, ConnectionError, EOFError) as exc:
            raise HandshakeError(exc) from exc
        done = time.perf_counter()
        ssl_object = writer.get_extra_info("ssl_object")
        served, verified = ssl_compat.served_chain(ssl_object)
        cipher = ssl_object.cipher()
    except BaseException:
        writer.close()
        raise
    return Session(
        reader=reader,
        writer=writer,
        connect_ms=round((connected - started) * 1000, 3),
        handshake_ms=round((done - tls_started) * 1000, 3),
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        served=served,
        verified=verified,
        certificate_requested=ssl_object in _asked_for_certificate,
    )


async def client_auth_outcome(session: Session, timeout: float) -> str:
    """In TLS 1.3 a server refuses a client certificate (or its absence) only after the
    client's handshake is done, in an alert that arrives on the first read; listen briefly,
    when the server asked for a certificate at all."""
    if session.version != "TLSv1.3" or not session.certificate_requested:
        return "ok"
    try:
        async with asyncio.timeout(timeout):
            await session.reader.read(1)
    except TimeoutError:
        return "ok"
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", "") or "")
        if "CERTIFICATE_REQUIRED" in reason:
            return "server requires a client certificate"
        if "ALERT" in reason:
            return "client certificate rejected: " + reason.split("ALERT_", 1)[-1].lower()
        return "ok"
    except ConnectionError:
        return "ok"
    return "ok"


def describe_handshake_failure(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)
    if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        return (
            "handshake failure alert from the server (no common protocol or cipher, or a "
            "client certificate it requires)"
        )
    if reason == "WRONG_VERSION_NUMBER":
        return "the server does not speak TLS here (wrong version number)"
    if reason:
        return reason.replace("_", " ").lower()
    if isinstance(exc, ConnectionResetError):
        return "connection reset during the handshake"
    if isinstance(exc, EOFError | ConnectionError):
        return "connection closed during the handshake"
    return str(exc) or type(exc).__name__


async def read_chain(
    address: str,
    port: int,
    sni: str | None,
    protocol: str,
    options: Any,
    ctx: ProbeContext,
) -> tuple[Session, Verification, str | None]:
    """Handshakes until the chain is read: (session, OpenSSL's verdict on the chain, why a
    modern handshake failed when only a legacy one worked).

    Strict first. A verification failure goes straight to `read_refused_chain`. Any other
    handshake failure (protocol version, ciphers, a reset) is retried with legacy settings,
    still verifying, and if the chain fails there, the same. When nothing completes, the strict
    handshake's failure is the one reported.
    """
    contexts = await shared_contexts(options, ctx)
    legacy_reason: str | None = None
    try:
        session = await handshake(address, port, contexts.strict, sni, protocol)
        return session, Verification(trusted=True, verified=tuple(session.verified)), None
    except HandshakeError as exc:
        first = exc.cause
    failure = first
    try:
        if not isinstance(first, ssl.SSLCertVerificationError):
            try:
                session = await handshake(address, port, contexts.legacy, sni, protocol)
                legacy_reason = describe_handshake_failure(first)
                return session, Verification(True, tuple(session.verified)), legacy_reason
            except HandshakeError as exc:
                if not isinstance(exc.cause, ssl.SSLCertVerificationError):
                    raise
                failure = exc.cause
                legacy_reason = describe_handshake_failure(first)
        assert isinstance(failure, ssl.SSLCertVerificationError)
        session, verification = await read_refused_chain(
            address, port, sni, protocol, options, ctx, failure
        )
    except HandshakeError as exc:
        raise TlsFailure(f"TLS handshake failed: {describe_handshake_failure(first)}") from exc
    return session, verification, legacy_reason


# OpenSSL verify codes for faults judged apart from trust: validity dates (expiry and
# not_yet_valid), names (hostname, when a verifying client such as aiohttp checked them) and
# key and digest strength below OpenSSL's security level (weak_key, weak_signature).
_JUDGED_APART = frozenset(
    {
        9,  # X509_V_ERR_CERT_NOT_YET_VALID
        10,  # X509_V_ERR_CERT_HAS_EXPIRED
        62,  # X509_V_ERR_HOSTNAME_MISMATCH
        64,  # X509_V_ERR_IP_ADDRESS_MISMATCH
        66,  # X509_V_ERR_EE_KEY_TOO_SMALL
        67,  # X509_V_ERR_CA_KEY_TOO_SMALL
        68,  # X509_V_ERR_CA_MD_TOO_WEAK
    }
)
_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME, which ssl.VerifyFlags does not name


async def _undated_context(options: Any, ctx: ProbeContext) -> ssl.SSLContext:
    """Verifies the chain as the legacy context does (names left to us, any key size), but
    not its dates."""
    secret = options.client_key_passphrase_env or options.client_key_passphrase_file
    key = f"tls.ctx.undated:{options.ca_file}:{options.client_cert}:{options.client_key}:{secret}"

    async def build() -> ssl.SSLContext:
        context = relaxed_context(options, options.ca_file, verify=True)
        context.verify_flags |= _NO_CHECK_TIME
        return watch_certificate_requests(context)

    return await ctx.shared.get(key, build)


async def read_refused_chain(
    address: str,
    port: int,
    sni: str | None,
    protocol: str,
    options: Any,
    ctx: ProbeContext,
    failure: ssl.SSLCertVerificationError,
) -> tuple[Session, Verification]:
    """The chain OpenSSL refused with `failure`, and whether it is trusted after all.

    A refusal for dates or names alone says nothing about trust, which is then asked again of
    a handshake that verifies the chain without them: an expired certificate of a trusted CA
    is one finding (expiry), not two. Otherwise, or if that refuses too (the fault behind the
    dates), an unverified handshake reads the chain to name the fault.
    """
    if failure.verify_code in _JUDGED_APART:
        undated = await _undated_context(options, ctx)
        try:
            session = await handshake(address, port, undated, sni, protocol)
            return session, Verification(trusted=True, verified=tuple(session.verified))
        except HandshakeError as exc:
            if not isinstance(exc.cause, ssl.SSLCertVerificationError):
                raise
            failure = exc.cause
    contexts = await shared_contexts(options, ctx)
    session = await handshake(address, port, contexts.unverified, sni, protocol)
    verdict = Verification(
        trusted=False, code=failure.verify_code, message=failure.verify_message or ""
    )
    return session, verdict


async def measure(options: TlsOptions, ctx: ProbeContext) -> Observations:
    address, port = options.target
    name = judged_name(options)
    sni = None if certificate_chain.is_ip(name) else name
    session, verification, legacy_reason = await read_chain(
        address, port, sni, options.starttls, options, ctx
    )
    try:
        chain: list[ParsedCertificate] = await certificate_chain.parse_chain(session.served, ctx)
        wait = max(_CLIENT_AUTH_WAIT_MIN, _CLIENT_AUTH_WAIT_FACTOR * session.handshake_ms / 1000)
        client_auth = await client_auth_outcome(session, wait)
    finally:
        # No close_notify exchange: it costs the monitored server and us a round of work and
        # tells us nothing.
        session.writer.transport.abort()
    if not chain:
        raise TlsFailure("the server sent no certificate")
    observations: dict[str, ObservationValue] = {
        "connect_ms": session.connect_ms,
        LATENCY: session.handshake_ms,
        "tls_version": session.version,
        "cipher": session.cipher,
        "legacy_handshake": legacy_reason is not None,
        "client_auth": client_auth,
    }
    if legacy_reason is not None:
        observations["strict_handshake_error"] = legacy_reason
    observations.update(await certificates.judge_chain(chain, verification, name, options, ctx))
    return observations


def _negotiated(value: ObservationValue, _about: str) -> Finding:
    return Finding(str(value))


def _old_version(accepted: tuple[str, ...]) -> Explain:
    def explain(value: ObservationValue, _about: str) -> Finding:
        gist = f"old protocol {value}"
        return Finding(gist, f"{gist} (accepted: {', '.join(accepted)}; see min_tls_version)")

    return explain


def _legacy_accepted(minimum: str) -> Explain:
    def explain(value: ObservationValue, about: str) -> Finding:
        if value is True:
            gist = "legacy handshake accepted"
            return Finding(gist, f"{gist} (min_tls_version {minimum}): {about}")
        return Finding("current protocols and ciphers")

    return explain


def _client_refused(value: ObservationValue, _about: str) -> Finding:
    return Finding(str(value).partition(":")[0], str(value))


def headline(result: ProbeResult, now: float) -> Headline:
    """The certificate's days, when nothing is wrong (what is wrong says itself)."""
    return Headline(when_ok=certificate_findings.expiry_fact(result, now))


def conditions(options: TlsOptions) -> tuple[Condition, ...]:
    accepted = VERSIONS[VERSIONS.index(options.min_tls_version) :]
    # An operator who names an old minimum has accepted old gear: the legacy settings it needs
    # are then expected, not a warning that could never clear.
    legacy_accepted = VERSIONS.index(options.min_tls_version) < VERSIONS.index(MODERN)
    return (
        options.latency(LATENCY),
        Expectation(
            condition="tls_version",
            observation="tls_version",
            accepts=lambda value: value in accepted,
            expected=" or ".join(accepted),
            severity=Severity.WARN,
            failed=_old_version(accepted),
            passed=_negotiated,
            headline=True,
        ),
        Expectation(
            condition="legacy_handshake",
            observation="legacy_handshake",
            accepts=lambda value: value is False or legacy_accepted,
            expected="a handshake with current protocol versions and ciphers",
            severity=Severity.WARN,
            about="strict_handshake_error",
            failed=said("legacy handshake only"),
            passed=_legacy_accepted(options.min_tls_version),
        ),
        Expectation(
            condition="client_auth",
            observation="client_auth",
            accepts=lambda value: value == "ok",
            expected="the server to accept the connection",
            failed=_client_refused,
            passed=said("connection accepted"),
        ),
        *certificate_findings.certificate_conditions(options, judged_name(options)),
    )


PROBE = ProbeKind(
    kind="tls",
    summary="TLS certificate health: expiry, names, chain, trust, keys, pins; STARTTLS too",
    target_help="HOST:PORT",
    options=TlsOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: format_host_port(*o.target),
    host=lambda o: o.target[0],
    presents_certificates=lambda _o: True,
    headline=headline,
    latency=LATENCY,
)
