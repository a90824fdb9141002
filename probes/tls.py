"""`tls`: the certificate health of a TLS endpoint, direct or after STARTTLS.

One handshake in the normal case, with a context that verifies the chain against the system
store or `ca_file` but leaves names to probes/support/certificate_chain.py (SAN-only, IP SANs,
precisely named). Only when that handshake fails are others made (probes/support/
tls_handshake.py) to read the chain anyway and name the fault; if none completes, the first
failure is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.core.conditions import Condition, Expectation, Explain, Finding, said
from monitor.core.errors import TlsFailure
from monitor.core.model import ObservationValue, ProbeResult, Severity
from monitor.core.options import OptionError, choice, format_host_port, host, host_port, option
from probes.base import Headline, LatencyOptions, Observations, ProbeContext, ProbeKind
from probes.support import (
    certificate_chain,
    certificate_findings,
    certificate_options,
    certificates,
    starttls,
    tls_handshake,
)
from probes.support.certificate_reader import ParsedCertificate

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


async def measure(options: TlsOptions, ctx: ProbeContext) -> Observations:
    address, port = options.target
    name = judged_name(options)
    sni = None if certificate_chain.is_ip(name) else name
    peer = tls_handshake.Peer(address, port, sni, options.starttls)
    session, verification, legacy_reason = await tls_handshake.read_chain(peer, options, ctx)
    try:
        chain: list[ParsedCertificate] = await certificate_chain.parse_chain(session.served, ctx)
        wait = max(_CLIENT_AUTH_WAIT_MIN, _CLIENT_AUTH_WAIT_FACTOR * session.handshake_ms / 1000)
        client_auth = await tls_handshake.client_auth_outcome(session, wait)
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
