"""STARTTLS negotiation against hostile plain-text servers: every one must end in a
ProtocolFailure with a plain message, quickly, without reading without bound."""

from __future__ import annotations

import asyncio
import socket

import pytest

from monitor.core.errors import ProtocolFailure
from probes.support import starttls
from tests.peers.tls_peers import LOOPBACK, Handler, threaded_server


def _endless_line(sock: socket.socket) -> None:
    try:
        for _ in range(1000):
            sock.sendall(b"220" + b"x" * 8192)
    except OSError:
        return


def _endless_reply(sock: socket.socket) -> None:
    try:
        for _ in range(100000):
            sock.sendall(b"220-still talking\r\n")
    except OSError:
        return


def _endless_xml(sock: socket.socket) -> None:
    try:
        for _ in range(1000):
            sock.sendall(b"<stream:stream>" + b"<x/>" * 2048)
    except OSError:
        return


def _hang_up(sock: socket.socket) -> None:
    """Closes before the greeting (the threaded server closes the socket on return)."""


def _ldap_garbage(sock: socket.socket) -> None:
    sock.recv(64)
    sock.sendall(b"\x30\x03\x02\x01")


def _ldap_refusal(sock: socket.socket) -> None:
    sock.recv(64)
    # extendedResp with resultCode 2 (protocolError)
    sock.sendall(bytes.fromhex("300c02010178070a010204000400"))


def _imap_no(sock: socket.socket) -> None:
    sock.sendall(b"* OK ready\r\n")
    sock.recv(64)
    sock.sendall(b"cw1 NO STARTTLS disabled\r\n")


def _postgres_odd(sock: socket.socket) -> None:
    sock.recv(8)
    sock.sendall(b"E")


@pytest.mark.parametrize(
    ("protocol", "server", "message"),
    [
        ("smtp", _endless_line, "smtp: line longer than 4096 bytes"),
        ("ftp", _endless_reply, "ftp: reply longer than 100 lines"),
        ("xmpp", _endless_xml, "xmpp: stream header longer than 16384 bytes"),
        ("pop3", _hang_up, "pop3: server closed the connection"),
        ("smtp", _hang_up, "smtp: server closed the connection"),
        ("ldap", _ldap_garbage, "ldap: server closed the connection"),
        ("ldap", _ldap_refusal, "ldap: StartTLS refused with result code 2"),
        ("imap", _imap_no, "imap: STARTTLS refused: 'cw1 NO STARTTLS disabled'"),
        ("postgres", _postgres_odd, "postgres: unexpected answer b'E' to SSLRequest"),
    ],
)
async def test_hostile_servers_fail_with_a_plain_message(
    protocol: str, server: Handler, message: str
) -> None:
    with threaded_server(server) as port:
        reader, writer = await asyncio.open_connection(LOOPBACK, port, limit=starttls.READ_LIMIT)
        try:
            async with asyncio.timeout(3):
                with pytest.raises(ProtocolFailure) as caught:
                    await starttls.negotiate(protocol, reader, writer, "mail.example.net")
        finally:
            writer.close()

    assert str(caught.value) == message


async def test_none_sends_nothing() -> None:
    received: list[bytes] = []

    def record(sock: socket.socket) -> None:
        sock.settimeout(0.2)
        try:
            received.append(sock.recv(64))
        except TimeoutError:
            received.append(b"")

    with threaded_server(record) as port:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        await starttls.negotiate("none", reader, writer, "mail.example.net")
        await asyncio.sleep(0.3)
        writer.close()

    assert received == [b""]
