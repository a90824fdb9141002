"""The classification table row by row, and the line each failure is described with: errnos
that decide a class, libraries named by module and attribute, the words of a timeout, a TLS
error and an aiohttp connection error. The exceptions are the ones the libraries raise (a real
TLS client fed a plain-text answer through memory BIOs); no network is involved."""

from __future__ import annotations

import errno
import socket
import ssl

import aiohttp
import dns.exception
import pytest
from aiohttp.client_reqrep import ConnectionKey

from monitor.core.errors import (
    AnswerTimeout,
    AuthFailure,
    ConfigFailure,
    DnsFailure,
    ProbeFailure,
    ProtocolFailure,
    TlsFailure,
    UnreachableFailure,
)
from monitor.core.failures import _loaded, classify, describe_error
from monitor.core.model import ErrorClass
from monitor.core.options import OptionError


def tls_error_from_a_plain_text_peer() -> ssl.SSLError:
    """What a TLS client raises when the peer answers in HTTP: OpenSSL names a reason."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="peer.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    incoming.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(ssl.SSLError) as raised:
        client.do_handshake()
    return raised.value


def connector_error(cause: OSError) -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, cause)


@pytest.mark.parametrize(
    ("exc", "error_class"),
    [
        (AuthFailure("bad community"), ErrorClass.AUTH),
        (ConfigFailure("no such file"), ErrorClass.CONFIG),
        (OptionError("bad", "hint"), ErrorClass.CONFIG),
        (DnsFailure("NXDOMAIN"), ErrorClass.DNS),
        (TlsFailure("handshake"), ErrorClass.TLS),
        (ProtocolFailure("garbage"), ErrorClass.PROTOCOL),
        (AnswerTimeout("only provisional answers"), ErrorClass.TIMEOUT),
        (UnreachableFailure("fragmentation needed, next-hop MTU 1280"), ErrorClass.UNREACHABLE),
        (dns.exception.Timeout(), ErrorClass.TIMEOUT),
        (TimeoutError(), ErrorClass.TIMEOUT),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), ErrorClass.DNS),
        (ssl.SSLError(), ErrorClass.TLS),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ErrorClass.REFUSED),
        (OSError(errno.ECONNREFUSED, "refused"), ErrorClass.REFUSED),
        (OSError(errno.EHOSTUNREACH, "no route"), ErrorClass.UNREACHABLE),
        (OSError(errno.ENETUNREACH, "network unreachable"), ErrorClass.UNREACHABLE),
        (OSError(errno.EADDRNOTAVAIL, "cannot assign"), ErrorClass.UNREACHABLE),
        (OSError(errno.ETIMEDOUT, "timed out"), ErrorClass.TIMEOUT),
        (OSError(errno.ECONNRESET, "reset"), ErrorClass.PROTOCOL),
        (OSError("no errno"), ErrorClass.PROTOCOL),
        (connector_error(OSError(errno.EHOSTUNREACH, "no route")), ErrorClass.UNREACHABLE),
        (aiohttp.ClientPayloadError("truncated"), ErrorClass.PROTOCOL),
        (dns.exception.DNSException("bad packet"), ErrorClass.PROTOCOL),
        (ProbeFailure("odd"), ErrorClass.PROTOCOL),
        (EOFError(), ErrorClass.PROTOCOL),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), ErrorClass.PROTOCOL),
        (ValueError("a bug of ours"), ErrorClass.INTERNAL),
    ],
)
def test_each_exception_has_exactly_its_class(exc, error_class):
    assert classify(exc) is error_class


def test_a_library_class_is_found_only_if_loaded_and_an_exception():
    assert _loaded(("ssl", "SSLError")) is ssl.SSLError
    assert _loaded(("commwatch.never.imported", "Error")) is None
    assert _loaded(("ssl", "NoSuchError")) is None  # an older version without it
    assert _loaded(("ssl", "wrap_socket_was_removed")) is None
    assert _loaded(("ssl", "create_default_context")) is None  # a function
    assert _loaded(("ssl", "SSLContext")) is None  # a class, but no exception


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (TimeoutError("peer stalled after its banner"), "peer stalled after its banner"),
        (TimeoutError("timed out"), "no answer within 2.5s"),
        (TimeoutError(), "no answer within 2.5s"),
        (ssl.SSLError(), "TLS: SSLError"),
        (OSError(errno.EHOSTUNREACH, "the kernel's words"), "No route to host"),  # strerror
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "name lookup failed: Name or service not known",
        ),
        # aiohttp's own OSErrors keep aiohttp's words, errno and all.
        (
            aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
            "[Errno 104] Connection reset by peer",
        ),
        (EOFError(), "EOFError"),
        (ProtocolFailure("line one\n   line two"), "line one line two"),
    ],
)
def test_each_failure_is_one_line_a_person_can_act_on(exc, line):
    assert describe_error(exc, classify(exc), 2.5) == line


def test_a_tls_error_is_named_by_openssls_reason():
    exc = tls_error_from_a_plain_text_peer()
    assert exc.reason == "WRONG_VERSION_NUMBER"
    assert describe_error(exc, classify(exc), 5) == "TLS: WRONG_VERSION_NUMBER"


def test_an_aiohttp_connection_error_is_described_by_its_cause_not_its_connection_key():
    exc = connector_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"))
    assert classify(exc) is ErrorClass.REFUSED
    assert describe_error(exc, ErrorClass.REFUSED, 5) == "Connection refused"
    timed_out = connector_error(TimeoutError("stalled in connect"))
    assert describe_error(timed_out, ErrorClass.TIMEOUT, 5) == "stalled in connect"
