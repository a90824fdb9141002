"""The one classification table: every exception a probe lets through becomes exactly one
`ErrorClass`, with a severity and a line a person can act on.

Library exceptions are named by module and attribute, not imported: a library that was never
loaded cannot have raised, so a `commwatch probe tcp` pays for neither aiohttp nor dnspython.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import sys

from monitor.core import logs
from monitor.core.errors import (
    AnswerTimeout,
    AuthFailure,
    ConfigFailure,
    DnsFailure,
    ProbeFailure,
    ProtocolFailure,
    RefusedFailure,
    TlsFailure,
    UnreachableFailure,
)
from monitor.core.model import ErrorClass, Severity
from monitor.core.options import OptionError

_UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}
)

ExceptionType = type[BaseException] | tuple[str, str]  # a class, or (module, attribute) of one

# First match wins, so specific types come before their bases.
# (exception type, errnos it must carry or None for any, class)
_CLASSIFICATION: tuple[tuple[ExceptionType, frozenset[int] | None, ErrorClass], ...] = (
    (AuthFailure, None, ErrorClass.AUTH),
    (ConfigFailure, None, ErrorClass.CONFIG),
    (OptionError, None, ErrorClass.CONFIG),
    (DnsFailure, None, ErrorClass.DNS),
    (TlsFailure, None, ErrorClass.TLS),
    (ProtocolFailure, None, ErrorClass.PROTOCOL),
    (RefusedFailure, None, ErrorClass.REFUSED),
    (AnswerTimeout, None, ErrorClass.TIMEOUT),
    (UnreachableFailure, None, ErrorClass.UNREACHABLE),
    (("dns.exception", "Timeout"), None, ErrorClass.TIMEOUT),
    (TimeoutError, None, ErrorClass.TIMEOUT),
    (("aiohttp", "ClientConnectorDNSError"), None, ErrorClass.DNS),
    (socket.gaierror, None, ErrorClass.DNS),
    (("aiohttp", "ClientSSLError"), None, ErrorClass.TLS),
    (ssl.SSLError, None, ErrorClass.TLS),
    (ssl.CertificateError, None, ErrorClass.TLS),
    (ConnectionRefusedError, None, ErrorClass.REFUSED),
    (OSError, frozenset({errno.ECONNREFUSED}), ErrorClass.REFUSED),
    (OSError, _UNREACHABLE_ERRNOS, ErrorClass.UNREACHABLE),
    (OSError, frozenset({errno.ETIMEDOUT}), ErrorClass.TIMEOUT),
    (OSError, None, ErrorClass.PROTOCOL),
    (("aiohttp", "ClientError"), None, ErrorClass.PROTOCOL),
    (("dns.exception", "DNSException"), None, ErrorClass.PROTOCOL),
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


def _loaded(exception_type: ExceptionType) -> type[BaseException] | None:
    """The class, if its library is loaded (else nothing raised can be an instance of it)."""
    if isinstance(exception_type, type):
        return exception_type
    module_name, attribute = exception_type
    module = sys.modules.get(module_name)
    found = getattr(module, attribute, None) if module is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _is(exc: BaseException, exception_type: ExceptionType) -> bool:
    found = _loaded(exception_type)
    return found is not None and isinstance(exc, found)


def classify(exc: BaseException) -> ErrorClass:
    for exception_type, errnos, error_class in _CLASSIFICATION:
        if _is(exc, exception_type) and (errnos is None or getattr(exc, "errno", None) in errnos):
            return error_class
    return ErrorClass.INTERNAL


def describe_error(exc: BaseException, error_class: ErrorClass, timeout: float) -> str:
    """One line a person can act on; never the repr of a library object."""
    if error_class is ErrorClass.INTERNAL:
        # Nobody foresaw it, so nobody vetted its message: libraries put their inputs there.
        return logs.unexpected(exc)
    if _is(exc, ("aiohttp", "ClientConnectorError")):
        # aiohttp's text wraps the cause in the connection key (with an SSLContext repr).
        exc = exc.os_error  # type: ignore[attr-defined]
    if error_class is ErrorClass.TIMEOUT:
        detail = str(exc)
        return detail if detail and "timed out" not in detail else f"no answer within {timeout:g}s"
    if isinstance(exc, ssl.SSLError):
        # An SSLError's errno is OpenSSL's, not the C library's: os.strerror would lie.
        return f"TLS: {getattr(exc, 'reason', None) or exc.strerror or type(exc).__name__}"
    if isinstance(exc, socket.gaierror):
        return f"name lookup failed: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno and not _is(exc, ("aiohttp", "ClientError")):
        return os.strerror(exc.errno)
    return " ".join(str(exc).split()) or type(exc).__name__
