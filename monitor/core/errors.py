"""Typed failures a probe raises when it could not measure.

Probes raise these (or let standard socket, TLS and DNS exceptions through); the runner's single
classification table turns either into an `ErrorClass` and a severity. A probe never decides a
severity for a failure itself.
"""

from __future__ import annotations

from monitor.core.model import ObservationValue


class ProbeFailure(Exception):
    """Base of the typed probe failures; may carry what was measured before it failed."""

    def __init__(self, message: str, observations: dict[str, ObservationValue] | None = None):
        super().__init__(message)
        self.observations = observations or {}


class ProtocolFailure(ProbeFailure):
    """The peer answered, but not in the protocol expected (garbage, truncated, oversized)."""


class AnswerTimeout(ProbeFailure):
    """No (final) answer came in the time allowed; it may carry what was seen meanwhile
    (retransmissions made, provisional answers, answers to other requests)."""


class DnsFailure(ProbeFailure):
    """The target's own name could not be resolved."""


class TlsFailure(ProbeFailure):
    """The TLS handshake failed."""


class RefusedFailure(ProbeFailure):
    """The peer answered that it will not serve us (an NTP kiss-of-death DENY): it is alive, and
    closed to us, as a port that refuses connections is."""


class UnreachableFailure(ProbeFailure):
    """The network said the peer cannot be reached from here (an ICMP destination unreachable,
    fragmentation needed, time exceeded), or this host refused to send towards it."""


class AuthFailure(ProbeFailure):
    """The peer answered and rejected our credentials (an SNMPv3 report of an unknown user or a
    wrong digest): it is alive, but nothing it knows about its own health can be read."""


class ConfigFailure(ProbeFailure):
    """The check cannot run as configured (e.g. a referenced secret vanished after loading)."""
