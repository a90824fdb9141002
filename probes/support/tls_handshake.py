"""TLS handshakes with a server, until its chain is read whatever is wrong with it.

Strict first (modern protocols, the chain verified). Only when that fails is another made:
legacy protocols and ciphers, still verifying; a verification refused for dates or names alone
verifies again without them; otherwise an unverified handshake reads the chain to name the
fault. If nothing completes, the strict handshake's failure is the one reported.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any

from monitor.core.errors import TlsFailure
from probes.base import ProbeContext
from probes.support import ssl_compat, starttls, tls_contexts
from probes.support.certificate_chain import Verification
from probes.support.certificate_reader import Served


@dataclass(frozen=True)
class Peer:
    """Where a handshake goes: the address, the SNI (None for an IP literal), and the plain-text
    protocol to upgrade with STARTTLS first ("none" for TLS at once)."""

    address: str
    port: int
    sni: str | None
    protocol: str = "none"


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


async def handshake(peer: Peer, context: ssl.SSLContext) -> Session:
    """Connect, upgrade with STARTTLS if asked, and run the TLS handshake."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        peer.address, peer.port, limit=starttls.READ_LIMIT
    )
    try:
        connected = time.perf_counter()
        await starttls.negotiate(peer.protocol, reader, writer, peer.sni or peer.address)
        tls_started = time.perf_counter()
        try:
            # server_hostname only sets SNI here (check_hostname is off); an IP literal sends none.
            await writer.start_tls(context, server_hostname=peer.sni or peer.address)
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
        certificate_requested=tls_contexts.certificate_requested(ssl_object),
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
    reason: str | None = getattr(exc, "reason", None)  # OpenSSL's, on an SSLError
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
    peer: Peer, options: Any, ctx: ProbeContext
) -> tuple[Session, Verification, str | None]:
    """Handshakes until the chain is read: (session, OpenSSL's verdict on the chain, why a
    modern handshake failed when only a legacy one worked).

    Strict first. A verification failure goes straight to `read_refused_chain`. Any other
    handshake failure (protocol version, ciphers, a reset) is retried with legacy settings,
    still verifying, and if the chain fails there, the same. When nothing completes, the strict
    handshake's failure is the one reported.
    """
    contexts = await tls_contexts.shared_contexts(options, ctx)
    legacy_reason: str | None = None
    try:
        session = await handshake(peer, contexts.strict)
        return session, Verification(trusted=True, verified=tuple(session.verified)), None
    except HandshakeError as exc:
        first = exc.cause
    failure = first
    try:
        if not isinstance(first, ssl.SSLCertVerificationError):
            try:
                session = await handshake(peer, contexts.legacy)
                legacy_reason = describe_handshake_failure(first)
                return session, Verification(True, tuple(session.verified)), legacy_reason
            except HandshakeError as exc:
                if not isinstance(exc.cause, ssl.SSLCertVerificationError):
                    raise
                failure = exc.cause
                legacy_reason = describe_handshake_failure(first)
        assert isinstance(failure, ssl.SSLCertVerificationError)
        session, verification = await read_refused_chain(peer, options, ctx, failure)
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


async def read_refused_chain(
    peer: Peer, options: Any, ctx: ProbeContext, failure: ssl.SSLCertVerificationError
) -> tuple[Session, Verification]:
    """The chain OpenSSL refused with `failure`, and whether it is trusted after all.

    A refusal for dates or names alone says nothing about trust, which is then asked again of
    a handshake that verifies the chain without them: an expired certificate of a trusted CA
    is one finding (expiry), not two. Otherwise, or if that refuses too (the fault behind the
    dates), an unverified handshake reads the chain to name the fault.
    """
    if failure.verify_code in _JUDGED_APART:
        undated = await tls_contexts.undated_context(options, ctx)
        try:
            session = await handshake(peer, undated)
            return session, Verification(trusted=True, verified=tuple(session.verified))
        except HandshakeError as exc:
            if not isinstance(exc.cause, ssl.SSLCertVerificationError):
                raise
            failure = exc.cause
    contexts = await tls_contexts.shared_contexts(options, ctx)
    session = await handshake(peer, contexts.unverified)
    verdict = Verification(
        trusted=False, code=failure.verify_code, message=failure.verify_message or ""
    )
    return session, verdict
