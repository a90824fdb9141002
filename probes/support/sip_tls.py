"""SIP over TLS: the session the OPTIONS request goes over, and its certificate judged exactly as
a `tls` check judges one (probes/support/tls_handshake.py reads the chain whatever is wrong
with it; probes/support/certificates.py and certificate_findings.py judge it).

A chain that fails verification is judged and reported, and the OPTIONS request still goes over
the session that read it: it carries nothing secret, and an engineer wants to know both that
the certificate expired and whether the SBC behind it still answers. Imported only by checks
whose transport is TLS, so a UDP check loads none of this machinery.
"""

from __future__ import annotations

import asyncio
from typing import Any

from monitor.core.conditions import Condition
from monitor.core.errors import TlsFailure
from monitor.core.model import ObservationValue, ProbeResult
from probes.base import ProbeContext
from probes.support import certificate_chain, certificate_findings, certificates, tls_handshake


async def open_session(
    options: Any, ctx: ProbeContext, name: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, ObservationValue]]:
    """A TLS session with the target, and what it showed: timings, protocol, the judged chain.
    `name` is what the leaf must cover (and the SNI, unless it is an IP literal)."""
    address, port = options.address, options.port
    sni = None if certificate_chain.is_ip(name) else name
    peer = tls_handshake.Peer(address, port, sni)
    session, verification, legacy_reason = await tls_handshake.read_chain(peer, options, ctx)
    try:
        chain = await certificate_chain.parse_chain(session.served, ctx)
        if not chain:
            raise TlsFailure("the server sent no certificate")
        observations: dict[str, ObservationValue] = {
            "connect_ms": session.connect_ms,
            "handshake_ms": session.handshake_ms,
            "tls_version": session.version,
            "cipher": session.cipher,
            "legacy_handshake": legacy_reason is not None,
        }
        observations.update(await certificates.judge_chain(chain, verification, name, options, ctx))
    except BaseException:
        session.writer.transport.abort()
        raise
    return session.reader, session.writer, observations


def conditions(options: Any, name: str) -> tuple[Condition, ...]:
    return certificate_findings.certificate_conditions(options, name)


def expiry_fact(result: ProbeResult, now: float) -> tuple[str, ...]:
    return certificate_findings.expiry_fact(result, now)
