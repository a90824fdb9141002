"""Pins the private behaviour of Python's ssl that probes/support/ssl_compat.py relies on,
against a real TLS server on 127.0.0.1: when a Python upgrade changes it, these fail and say
what changed, before a probe misreads a server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probes.support import ssl_compat
from tests.peers.pki import Issued, make_ca, make_leaf, server_context
from tests.peers.tls_peers import LOOPBACK, tls_server

Message = tuple[object, str, int, int, int]


@dataclass(frozen=True)
class Chain:
    root: Issued
    intermediate: Issued
    leaf: Issued
    root_file: Path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = make_ca("compat root", path_length=None)
    intermediate = make_ca("compat intermediate", issuer=root)
    leaf = make_leaf(intermediate, [LOOPBACK])
    root_file = tmp_path_factory.mktemp("compat") / "root.pem"
    root_file.write_bytes(root.cert_pem)
    return Chain(root, intermediate, leaf, root_file)


@pytest.fixture
def server(chain: Chain, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[int]:
    """A server sending leaf and intermediate; asking for a client certificate when the test
    is parametrised with True."""
    context = server_context(chain.leaf, tmp_path, (chain.intermediate,))
    if getattr(request, "param", False):
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(chain.root_file)
    with tls_server(context) as port:
        yield port


def _der(issued: Issued) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


async def _connect(
    port: int, context: ssl.SSLContext
) -> tuple[ssl.SSLObject, asyncio.StreamWriter]:
    _, writer = await asyncio.open_connection(LOOPBACK, port, ssl=context, server_hostname=LOOPBACK)
    return writer.get_extra_info("ssl_object"), writer


def _client(chain: Chain, version: ssl.TLSVersion, verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(chain.root_file))
    context.check_hostname = False
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    return context


async def _messages(port: int, chain: Chain, version: ssl.TLSVersion) -> list[Message]:
    seen: list[Message] = []
    context = _client(chain, version)
    ssl_compat.watch_handshake_messages(
        context,
        lambda conn, direction, v, kind, message, _data: seen.append(
            (conn, direction, v, kind, message)
        ),
    )
    ssl_object, writer = await _connect(port, context)
    writer.close()
    # The callback's first argument must be the connection's own SSLObject: the probe keeps
    # the connections that were asked for a certificate by it.
    assert seen and all(conn is ssl_object for conn, *_ in seen), (
        "the message callback no longer receives the connection's SSLObject"
    )
    return seen


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("server", [True], indirect=True)
async def test_the_message_callback_sees_the_servers_certificate_request(
    server: int, chain: Chain, version: ssl.TLSVersion
) -> None:
    seen = await _messages(server, chain, version)
    asked = ("read", ssl_compat.HANDSHAKE, ssl_compat.CERTIFICATE_REQUEST)
    requests = [m for m in seen if (m[1], m[3], m[4]) == asked]
    assert len(requests) == 1, (
        "the message callback did not report the server's CertificateRequest as"
        f" (read, {ssl_compat.HANDSHAKE}, {ssl_compat.CERTIFICATE_REQUEST}) in plain numbers;"
        f" it saw {[m[1:] for m in seen]}"
    )


@pytest.mark.parametrize("server", [False], indirect=True)
async def test_no_certificate_request_is_seen_where_none_was_sent(
    server: int, chain: Chain
) -> None:
    seen = await _messages(server, chain, ssl.TLSVersion.TLSv1_3)
    assert any(m[1] == "read" and m[3] == ssl_compat.HANDSHAKE for m in seen)
    assert not [m for m in seen if m[3:] == (ssl_compat.HANDSHAKE, ssl_compat.CERTIFICATE_REQUEST)]


async def test_the_chain_methods_give_the_served_and_the_verified_chain(
    server: int, chain: Chain
) -> None:
    ssl_object, writer = await _connect(server, _client(chain, ssl.TLSVersion.TLSv1_3))
    served, verified = ssl_compat.served_chain(ssl_object)
    writer.close()
    assert [s.der for s in served] == [_der(chain.leaf), _der(chain.intermediate)], (
        "_sslobj.get_unverified_chain() no longer gives the chain as served, leaf first"
    )
    assert verified == [_der(chain.leaf), _der(chain.intermediate), _der(chain.root)], (
        "_sslobj.get_verified_chain() no longer gives the path up to the trust anchor"
    )
    # OpenSSL's own reading, which covers what cryptography refuses to read.
    reading = served[0].openssl() if served[0].openssl is not None else {}
    leaf = x509.load_der_x509_certificate(served[0].der)
    # OpenSSL writes whole bytes: a serial of odd hex length gains a leading 0.
    assert int(reading["serialNumber"], 16) == leaf.serial_number, (
        "get_info() no longer gives OpenSSL's decoded reading of the certificate"
    )
    assert ("IP Address", LOOPBACK) in reading["subjectAltName"]
    assert reading["notAfter"] and reading["subject"]


async def test_nothing_is_verified_without_verification(server: int, chain: Chain) -> None:
    ssl_object, writer = await _connect(
        server, _client(chain, ssl.TLSVersion.TLSv1_3, verify=False)
    )
    served, verified = ssl_compat.served_chain(ssl_object)
    writer.close()
    assert [s.der for s in served] == [_der(chain.leaf), _der(chain.intermediate)]
    assert verified == []


def test_a_serial_read_by_openssl_is_the_serial_cryptography_reads(chain: Chain) -> None:
    # A certificate only OpenSSL can read (the malformed fallback) must show the serial the
    # other reading shows: OpenSSL pads to whole bytes, so 0xA1B reads "0A1B" there.
    from probes.support.certificate_reader import _openssl_serial

    assert _openssl_serial("0A1B") == format(0xA1B, "x") == "a1b"
    number = x509.load_der_x509_certificate(_der(chain.leaf)).serial_number
    assert _openssl_serial(format(number, "X").rjust(40, "0")) == format(number, "x")
    assert _openssl_serial("not hex") == "not hex"
    assert _openssl_serial(None) == ""
