"""STARTTLS: the plain-text exchange that precedes the TLS handshake on mail, directory, chat and
database ports. `negotiate()` speaks just enough of each protocol to ask for TLS and hears the
server agree; the caller then runs `writer.start_tls(...)` on the same connection.

Every read is bounded (line length, line count, message size): a hostile server that talks
forever or sends one endless line fails with a ProtocolFailure, never eats memory. The time
budget is the caller's (the runner's timeout).
"""

from __future__ import annotations

import asyncio
import re
import struct

from monitor.core.errors import ProtocolFailure

PROTOCOLS = ("none", "smtp", "imap", "pop3", "ftp", "ldap", "xmpp", "postgres")

_MAX_LINE = 4096
# The StreamReader limit the caller opens the connection with, so no line can grow beyond it.
READ_LIMIT = _MAX_LINE
_MAX_LINES = 100
_MAX_XML = 16384
_EHLO_NAME = "commwatch.invalid"
_LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_POSTGRES_SSL_REQUEST = struct.pack("!II", 8, 80877103)


async def _line(reader: asyncio.StreamReader, protocol: str) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise ProtocolFailure(f"{protocol}: line longer than {_MAX_LINE} bytes") from None
    except asyncio.IncompleteReadError as exc:
        raise ProtocolFailure(f"{protocol}: server closed the connection") from exc
    if len(raw) > _MAX_LINE:
        raise ProtocolFailure(f"{protocol}: line longer than {_MAX_LINE} bytes")
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _shown(line: str) -> str:
    """A server line for a message: printable and short."""
    clean = "".join(c if c.isprintable() else "?" for c in line)
    return clean[:120]


async def _reply(reader: asyncio.StreamReader, protocol: str) -> tuple[str, list[str]]:
    """An SMTP/FTP-style reply: `123-more` lines, then `123 last`. Returns (code, lines)."""
    lines = []
    for _ in range(_MAX_LINES):
        line = await _line(reader, protocol)
        lines.append(line)
        match = re.match(r"(\d{3})([ -]|$)", line)
        if match is None:
            raise ProtocolFailure(f"{protocol}: not a reply line: {_shown(line)!r}")
        if match.group(2) != "-":
            return match.group(1), lines
    raise ProtocolFailure(f"{protocol}: reply longer than {_MAX_LINES} lines")


def _expect(protocol: str, what: str, code: str, lines: list[str], wanted: str) -> None:
    if code != wanted:
        raise ProtocolFailure(f"{protocol}: {what} refused: {_shown(lines[-1])!r}")


async def _smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    code, lines = await _reply(reader, "smtp")
    _expect("smtp", "greeting", code, lines, "220")
    writer.write(f"EHLO {_EHLO_NAME}\r\n".encode())
    code, lines = await _reply(reader, "smtp")
    _expect("smtp", "EHLO", code, lines, "250")
    if not any(line[4:].strip().upper() == "STARTTLS" for line in lines):
        raise ProtocolFailure("smtp: server does not offer STARTTLS")
    writer.write(b"STARTTLS\r\n")
    code, lines = await _reply(reader, "smtp")
    _expect("smtp", "STARTTLS", code, lines, "220")


async def _ftp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    code, lines = await _reply(reader, "ftp")
    _expect("ftp", "greeting", code, lines, "220")
    writer.write(b"AUTH TLS\r\n")
    code, lines = await _reply(reader, "ftp")
    _expect("ftp", "AUTH TLS", code, lines, "234")


async def _imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    greeting = await _line(reader, "imap")
    if not greeting.upper().startswith("* OK"):
        raise ProtocolFailure(f"imap: unexpected greeting {_shown(greeting)!r}")
    writer.write(b"cw1 STARTTLS\r\n")
    for _ in range(_MAX_LINES):
        line = await _line(reader, "imap")
        if line.startswith("cw1 "):
            if line[4:].upper().startswith("OK"):
                return
            raise ProtocolFailure(f"imap: STARTTLS refused: {_shown(line)!r}")
    raise ProtocolFailure(f"imap: no answer to STARTTLS within {_MAX_LINES} lines")


async def _pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    greeting = await _line(reader, "pop3")
    if not greeting.startswith("+OK"):
        raise ProtocolFailure(f"pop3: unexpected greeting {_shown(greeting)!r}")
    writer.write(b"STLS\r\n")
    answer = await _line(reader, "pop3")
    if not answer.startswith("+OK"):
        raise ProtocolFailure(f"pop3: STLS refused: {_shown(answer)!r}")


def _ber_length(data: bytes, offset: int) -> tuple[int, int]:
    """A BER definite length at `offset`: (length, offset of the contents)."""
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    if not 1 <= count <= 3:
        raise ProtocolFailure("ldap: unsupported BER length")
    return int.from_bytes(data[offset + 1 : offset + 1 + count], "big"), offset + 1 + count


async def _ldap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    # LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0] OID } }
    request_name = b"\x80" + bytes([len(_LDAP_STARTTLS_OID)]) + _LDAP_STARTTLS_OID
    body = b"\x02\x01\x01" + b"\x77" + bytes([len(request_name)]) + request_name
    writer.write(b"\x30" + bytes([len(body)]) + body)
    try:
        head = await reader.readexactly(2)
        if head[0] != 0x30:
            raise ProtocolFailure("ldap: answer is not an LDAP message")
        extra = head[1] & 0x7F if head[1] & 0x80 else 0
        if extra > 3:
            raise ProtocolFailure("ldap: unsupported BER length")
        head += await reader.readexactly(extra)
        length, _ = _ber_length(head, 1)
        if length > _MAX_XML:
            raise ProtocolFailure(f"ldap: answer longer than {_MAX_XML} bytes")
        message = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolFailure("ldap: server closed the connection") from exc
    # messageID INTEGER, then extendedResp [APPLICATION 24] { resultCode ENUMERATED, ... }
    try:
        id_length, offset = _ber_length(message, 1)
        offset += id_length
        if message[offset] != 0x78:
            raise ProtocolFailure("ldap: answer is not an extended response")
        _, offset = _ber_length(message, offset + 1)
        if message[offset] != 0x0A:
            raise ProtocolFailure("ldap: extended response without a result code")
        code_length, offset = _ber_length(message, offset + 1)
        result_code = int.from_bytes(message[offset : offset + code_length], "big")
    except IndexError:
        raise ProtocolFailure("ldap: truncated extended response") from None
    if result_code != 0:
        raise ProtocolFailure(f"ldap: StartTLS refused with result code {result_code}")


async def _xml_until(reader: asyncio.StreamReader, pattern: re.Pattern[bytes]) -> bytes:
    received = b""
    while not pattern.search(received):
        chunk = await reader.read(_MAX_XML)
        if not chunk:
            raise ProtocolFailure("xmpp: server closed the stream")
        received += chunk
        if len(received) > _MAX_XML:
            raise ProtocolFailure(f"xmpp: stream header longer than {_MAX_XML} bytes")
    return received


_XMPP_FEATURES_END = re.compile(rb"</(?:stream:)?features>|<stream:error")
_XMPP_TLS_ANSWER = re.compile(rb"<(?:proceed|failure)\b")


async def _xmpp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    writer.write(
        (
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' "
            f"to='{name}' version='1.0'>"
        ).encode()
    )
    features = await _xml_until(reader, _XMPP_FEATURES_END)
    if b"<stream:error" in features:
        raise ProtocolFailure("xmpp: server answered with a stream error")
    if b"<starttls" not in features:
        raise ProtocolFailure("xmpp: server does not offer STARTTLS")
    writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    answer = await _xml_until(reader, _XMPP_TLS_ANSWER)
    if b"<proceed" not in answer:
        raise ProtocolFailure("xmpp: STARTTLS refused")


async def _postgres(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    writer.write(_POSTGRES_SSL_REQUEST)
    try:
        answer = await reader.readexactly(1)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolFailure("postgres: server closed the connection") from exc
    if answer == b"N":
        raise ProtocolFailure("postgres: server does not accept SSL")
    if answer != b"S":
        raise ProtocolFailure(f"postgres: unexpected answer {answer!r} to SSLRequest")


_NEGOTIATORS = {
    "smtp": _smtp,
    "imap": _imap,
    "pop3": _pop3,
    "ftp": _ftp,
    "ldap": _ldap,
    "xmpp": _xmpp,
    "postgres": _postgres,
}


async def negotiate(
    protocol: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str
) -> None:
    """Ask for TLS in `protocol` on a fresh plain connection; `name` is the server's name (XMPP
    addresses its stream to it). Raises ProtocolFailure when the server will not switch."""
    if protocol == "none":
        return
    await _NEGOTIATORS[protocol](reader, writer, name)
    await writer.drain()
