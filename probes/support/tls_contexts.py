"""The SSL contexts of TLS-bearing checks, built once per run for each CA bundle and client
certificate (a context, with its CA store, costs far more than a handshake).

Every context leaves names to probes/support/certificate_chain.py (SAN-only, IP SANs, precisely
named), and watches for the server's CertificateRequest: only a connection whose server asked
for a client certificate can still be refused for want of one after the handshake.
"""

from __future__ import annotations

import ssl
import weakref
from dataclasses import dataclass
from typing import Any

from monitor.core.errors import ConfigFailure
from probes.base import ProbeContext
from probes.support import certificate_options, ssl_compat

_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME, which ssl.VerifyFlags does not name


def strict_context(ca_file: str | None, options: Any) -> ssl.SSLContext:
    """Verifies the chain; names are judged by probes.support.certificate_chain, hence no
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
    ca_file = options.ca_file

    async def build() -> Contexts:
        return Contexts(
            watch_certificate_requests(strict_context(ca_file, options)),
            watch_certificate_requests(relaxed_context(options, ca_file, verify=True)),
            watch_certificate_requests(relaxed_context(options, ca_file, verify=False)),
        )

    return await ctx.shared.get(_key("tls.ctx", options), build)


async def undated_context(options: Any, ctx: ProbeContext) -> ssl.SSLContext:
    """Verifies the chain as the legacy context does (names left to us, any key size), but
    not its dates."""

    async def build() -> ssl.SSLContext:
        context = relaxed_context(options, options.ca_file, verify=True)
        context.verify_flags |= _NO_CHECK_TIME
        return watch_certificate_requests(context)

    return await ctx.shared.get(_key("tls.ctx.undated", options), build)


def certificate_requested(ssl_object: ssl.SSLObject) -> bool:
    """Whether the server of this connection sent a CertificateRequest."""
    return ssl_object in _asked_for_certificate


def _key(prefix: str, options: Any) -> str:
    """What makes contexts differ: the CA bundle and the client certificate (its passphrase
    named by reference, never by value)."""
    secret = options.client_key_passphrase_env or options.client_key_passphrase_file
    return f"{prefix}:{options.ca_file}:{options.client_cert}:{options.client_key}:{secret}"
