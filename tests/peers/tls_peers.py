"""Real TLS peers on 127.0.0.1 for the tls probe: one server per case, optionally behind a fake
STARTTLS exchange (SMTP, IMAP, POP3, FTP, LDAP, XMPP, PostgreSQL speaking just enough protocol).

The servers are blocking sockets in threads, not asyncio: OpenSSL then sends its alerts (protocol
version, certificate required, unknown CA) before the connection closes, as nginx or a mail
server would, where an asyncio server drops the connection without a word.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
_PEER_TIMEOUT = 2.0

Handler = Callable[[socket.socket], None]


@dataclass
class Seen:
    """What the peer saw of its clients: the SNI each sent (None without SNI)."""

    server_names: list[str | None] = field(default_factory=list)


@contextlib.contextmanager
def threaded_server(handler: Handler, host: str = LOOPBACK) -> Iterator[int]:
    """Runs `handler` on each accepted connection in a thread; yields the port."""
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve_one(sock: socket.socket) -> None:
        with contextlib.suppress(OSError), sock:
            sock.settimeout(_PEER_TIMEOUT)
            handler(sock)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(sock,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def _recv_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n") and len(line) < 4096:
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def _recv_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received and len(received) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def _smtp(sock: socket.socket) -> None:
    sock.sendall(b"220 mail.test ESMTP commwatch peer\r\n")
    _recv_line(sock)
    sock.sendall(b"250-mail.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
    _recv_line(sock)
    sock.sendall(b"220 2.0.0 Ready to start TLS\r\n")


def _smtp_without_starttls(sock: socket.socket) -> None:
    sock.sendall(b"220 mail.test ESMTP commwatch peer\r\n")
    _recv_line(sock)
    sock.sendall(b"250-mail.test\r\n250 8BITMIME\r\n")
    _recv_line(sock)


def _imap(sock: socket.socket) -> None:
    sock.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
    tag = _recv_line(sock).split(b" ", 1)[0]
    sock.sendall(b"* NOTE a line before the answer\r\n" + tag + b" OK Begin TLS negotiation\r\n")


def _pop3(sock: socket.socket) -> None:
    sock.sendall(b"+OK POP3 ready\r\n")
    _recv_line(sock)
    sock.sendall(b"+OK Begin TLS\r\n")


def _ftp(sock: socket.socket) -> None:
    sock.sendall(b"220-commwatch peer\r\n220 FTP ready\r\n")
    _recv_line(sock)
    sock.sendall(b"234 AUTH TLS successful\r\n")


def _ldap(sock: socket.socket) -> None:
    head = sock.recv(2)
    sock.recv(head[1])
    # LDAPMessage { messageID 1, extendedResp { success, matchedDN "", diagnosticMessage "" } }
    sock.sendall(bytes.fromhex("300c02010178070a010004000400"))


def _xmpp(sock: socket.socket) -> None:
    _recv_until(sock, b"version='1.0'>")
    sock.sendall(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' id='c2s1' from='xmpp.test' "
        b"version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
        b"<required/></starttls></stream:features>"
    )
    _recv_until(sock, b"/>")
    sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")


def _postgres(sock: socket.socket) -> None:
    sock.recv(8)
    sock.sendall(b"S")


def _postgres_refusing(sock: socket.socket) -> None:
    sock.recv(8)
    sock.sendall(b"N")


STARTTLS_SERVERS: dict[str, Handler] = {
    "smtp": _smtp,
    "imap": _imap,
    "pop3": _pop3,
    "ftp": _ftp,
    "ldap": _ldap,
    "xmpp": _xmpp,
    "postgres": _postgres,
}
REFUSING_SERVERS: dict[str, Handler] = {
    "smtp": _smtp_without_starttls,
    "postgres": _postgres_refusing,
}


def record_sni(context: ssl.SSLContext, seen: Seen) -> None:
    def callback(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        seen.server_names.append(name)

    context.sni_callback = callback


@contextlib.contextmanager
def tls_server(
    context: ssl.SSLContext,
    before_tls: Handler | None = None,
    seen: Seen | None = None,
    host: str = LOOPBACK,
) -> Iterator[int]:
    """A TLS server on `host` (a loopback address) presenting `context`'s certificate, after
    `before_tls` (a STARTTLS exchange) if given. It answers nothing after the handshake and
    closes when the client does."""
    if seen is not None:
        record_sni(context, seen)

    def handle(sock: socket.socket) -> None:
        if before_tls is not None:
            before_tls(sock)
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.recv(1)

    with threaded_server(handle, host) as port:
        yield port


@contextlib.contextmanager
def garbage_server() -> Iterator[int]:
    """Answers a ClientHello with bytes that are not TLS."""

    def handle(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(b"HTTP/1.0 400 this is not TLS\r\n\r\n" + bytes(range(256)))

    with threaded_server(handle) as port:
        yield port


def tls10_only(context: ssl.SSLContext) -> ssl.SSLContext:
    """Restrict a server context (made with legacy=True) to TLS 1.0, as old gear is."""
    with warnings.catch_warnings():
        # Deprecated on purpose: this peer plays the legacy device the probe must still read.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
    return context
