"""Runs one attempt of one check: timeout, timing, error classification and judgement.

This is the only place that turns exceptions into `ErrorClass`es (`classify`, one table) and the
only place that applies a probe's conditions to its observations.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import socket
import ssl
import time
from typing import Any

import aiohttp
import dns.exception

from monitor.config.inventory import Check
from monitor.core import logs
from monitor.core.conditions import Condition, evaluate
from monitor.core.errors import (
    AuthFailure,
    ConfigFailure,
    DnsFailure,
    ProbeFailure,
    ProtocolFailure,
    TlsFailure,
)
from monitor.core.model import ErrorClass, ProbeError, ProbeResult, Severity
from monitor.core.options import OptionError
from probes.base import ProbeContext, ProbeKind, SharedResources

log = logging.getLogger(__name__)


_UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}
)

# The one classification table: first match wins, so specific types come before their bases.
# (exception type, errnos it must carry or None for any, class)
_CLASSIFICATION: tuple[tuple[type[BaseException], frozenset[int] | None, ErrorClass], ...] = (
    (AuthFailure, None, ErrorClass.AUTH),
    (ConfigFailure, None, ErrorClass.CONFIG),
    (OptionError, None, ErrorClass.CONFIG),
    (DnsFailure, None, ErrorClass.DNS),
    (TlsFailure, None, ErrorClass.TLS),
    (ProtocolFailure, None, ErrorClass.PROTOCOL),
    (dns.exception.Timeout, None, ErrorClass.TIMEOUT),
    (TimeoutError, None, ErrorClass.TIMEOUT),
    (aiohttp.ClientConnectorDNSError, None, ErrorClass.DNS),
    (socket.gaierror, None, ErrorClass.DNS),
    (aiohttp.ClientSSLError, None, ErrorClass.TLS),
    (ssl.SSLError, None, ErrorClass.TLS),
    (ssl.CertificateError, None, ErrorClass.TLS),
    (ConnectionRefusedError, None, ErrorClass.REFUSED),
    (OSError, frozenset({errno.ECONNREFUSED}), ErrorClass.REFUSED),
    (OSError, _UNREACHABLE_ERRNOS, ErrorClass.UNREACHABLE),
    (OSError, frozenset({errno.ETIMEDOUT}), ErrorClass.TIMEOUT),
    (OSError, None, ErrorClass.PROTOCOL),
    (aiohttp.ClientError, None, ErrorClass.PROTOCOL),
    (dns.exception.DNSException, None, ErrorClass.PROTOCOL),
    (ProbeFailure, None, ErrorClass.PROTOCOL),
    (EOFError, None, ErrorClass.PROTOCOL),
    (UnicodeDecodeError, None, ErrorClass.PROTOCOL),
)

# A failure to measure is CRIT when it means the service is not usable from here, UNKNOWN when it
# says nothing about the service (our configuration, our bug).
SEVERITY_OF_ERROR: dict[ErrorClass, Severity] = {
    ErrorClass.TIMEOUT: Severity.CRIT,
    ErrorClass.REFUSED: Severity.CRIT,
    ErrorClass.UNREACHABLE: Severity.CRIT,
    ErrorClass.DNS: Severity.CRIT,
    ErrorClass.TLS: Severity.CRIT,
    ErrorClass.PROTOCOL: Severity.CRIT,
    # The peer answered, so it is up; whether it is healthy is what we could not learn.
    ErrorClass.AUTH: Severity.UNKNOWN,
    ErrorClass.CONFIG: Severity.UNKNOWN,
    ErrorClass.INTERNAL: Severity.UNKNOWN,
}


def classify(exc: BaseException) -> ErrorClass:
    for exc_type, errnos, error_class in _CLASSIFICATION:
        if isinstance(exc, exc_type) and (errnos is None or getattr(exc, "errno", None) in errnos):
            return error_class
    return ErrorClass.INTERNAL


def describe_error(exc: BaseException, error_class: ErrorClass, timeout: float) -> str:
    """One line a person can act on; never the repr of a library object."""
    if error_class is ErrorClass.INTERNAL:
        # Nobody foresaw it, so nobody vetted its message: libraries put their inputs there.
        return logs.unexpected(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # aiohttp's text wraps the cause in the connection key (with an SSLContext repr).
        exc = exc.os_error
    if error_class is ErrorClass.TIMEOUT:
        detail = str(exc)
        return detail if detail and "timed out" not in detail else f"no answer within {timeout:g}s"
    if isinstance(exc, ssl.SSLError):
        # An SSLError's errno is OpenSSL's, not the C library's: os.strerror would lie.
        return f"TLS: {getattr(exc, 'reason', None) or exc.strerror or type(exc).__name__}"
    if isinstance(exc, socket.gaierror):
        return f"name lookup failed: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, aiohttp.ClientError):
        return os.strerror(exc.errno)
    return " ".join(str(exc).split()) or type(exc).__name__


@functools.lru_cache(maxsize=65536)
def _conditions(probe: ProbeKind, options: Any) -> tuple[Condition, ...]:
    """A check's conditions depend on its options alone: built once, not on every attempt."""
    return probe.conditions(options)


async def _bug_log() -> logs.BugLog:
    """One per engine run: a bug hit on every poll is logged once per interval, not per poll."""
    return logs.BugLog(log)


async def run_check(
    check: Check, shared: SharedResources, memory: dict[str, Any] | None = None
) -> ProbeResult:
    """One attempt of `check`. Never raises for anything the target or the probe does."""
    ctx = ProbeContext(
        timeout=check.timeout, shared=shared, memory=memory if memory is not None else {}
    )
    started_at = time.time()
    started = time.perf_counter()
    observations: dict[str, Any] = {}
    error: ProbeError | None = None
    try:
        async with asyncio.timeout(check.timeout):
            observations = await check.probe.measure(check.options, ctx)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error_class = classify(exc)
        if error_class is ErrorClass.INTERNAL:
            bugs = await shared.get("runner.bugs", _bug_log)
            bugs.report(f"probe {check.ref.check_id} ({check.kind}) failed", exc)
        error = ProbeError(error_class, describe_error(exc, error_class, check.timeout))
        if isinstance(exc, ProbeFailure):
            observations = dict(exc.observations)
    duration_ms = (time.perf_counter() - started) * 1000
    conditions = _conditions(check.probe, check.options)
    if error is not None:
        # A failed attempt is judged only on what it did measure before failing.
        conditions = tuple(c for c in conditions if c.observation in observations)
    verdicts = evaluate(conditions, observations)
    severities = [v.severity for v in verdicts]
    if error is not None:
        severities.append(SEVERITY_OF_ERROR[error.error_class])
    return ProbeResult(
        check=check.ref,
        started_at=started_at,
        duration_ms=round(duration_ms, 3),
        severity=Severity.worst(severities),
        observations=observations,
        verdicts=verdicts,
        error=error,
        certificates=tuple(ctx.certificates),
    )
