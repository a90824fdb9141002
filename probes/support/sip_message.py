"""SIP messages as the sip probe sends and reads them (RFC 3261): the OPTIONS request it builds
and the messages it reads back, bounded in size, header lines and line length, and framed by
Content-Length on stream transports (§18.3).

Peer text is kept as received (UTF-8; an undecodable byte becomes a `\\xNN` escape) and cut to
`TEXT_LIMIT` characters: renderers for people make it printable, JSON keeps it exact.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from monitor import __version__
from monitor.core.text import bounded_message

USER_AGENT = f"commwatch/{__version__}"
BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7: marks a branch made by the RFC's rules
MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 4096
TEXT_LIMIT = 256
_EXCERPT = 40

# RFC 3261 §7.3.3: the compact forms of header field names.
_COMPACT = {
    "c": "content-type",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "s": "subject",
    "t": "to",
    "v": "via",
}
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?", re.IGNORECASE)
_REQUEST_LINE = re.compile(r"([A-Za-z]+) \S+ SIP/2\.0", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_LINE_END = re.compile(rb"\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LEADING_BLANK = re.compile(rb"(?:\r?\n)+")
_DIGITS = re.compile(r"\s*([0-9]{1,10})")


class MalformedMessage(ValueError):
    """What came back is not a SIP message (or not one that can be read)."""


class OversizedMessage(MalformedMessage):
    """A message over the configured size, or with too many or too long header lines."""


def clip(text: str) -> str:
    """Peer text as an observation keeps it: at most TEXT_LIMIT characters."""
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def _excerpt(raw: bytes | bytearray) -> str:
    """The start of what a peer sent, for an error message: printable, short, quoted."""
    shown = _text(bytes(raw[:_EXCERPT])) + ("…" if len(raw) > _EXCERPT else "")
    return f"'{bounded_message(shown)}'"


@dataclass(frozen=True)
class OptionsRequest:
    """One OPTIONS request, its identifiers made afresh for every poll (`new_options`)."""

    request_uri: str
    from_uri: str
    transport: str  # as Via names it: UDP, TCP or TLS
    sent_by: str  # our host:port ([v6]:port), where the response is to come back
    branch: str
    tag: str
    call_id: str
    cseq: int = 1

    def encode(self) -> bytes:
        contact_transport = "" if self.transport == "UDP" else f";transport={self.transport}"
        lines = (
            f"OPTIONS {self.request_uri} SIP/2.0",
            # rport (RFC 3581): answer to the address and port this came from, across a NAT.
            f"Via: SIP/2.0/{self.transport} {self.sent_by};branch={self.branch};rport",
            "Max-Forwards: 70",
            f"From: <{self.from_uri}>;tag={self.tag}",
            f"To: <{self.request_uri}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} OPTIONS",
            f"Contact: <sip:commwatch@{self.sent_by}{contact_transport.lower()}>",
            "Accept: application/sdp",
            f"User-Agent: {USER_AGENT}",
            "Content-Length: 0",
        )
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def sent_by(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def new_options(
    request_uri: str, from_uri: str | None, transport: str, local: tuple[str, int]
) -> OptionsRequest:
    """An OPTIONS request from `local` (our socket's address and port), with a random branch,
    From tag and Call-ID; `from_uri` defaults to sip:commwatch@ our address."""
    address = local[0].partition("%")[0]  # a link-local address's zone is ours, not the peer's
    host = f"[{address}]" if ":" in address else address
    return OptionsRequest(
        request_uri=request_uri,
        from_uri=from_uri or f"sip:commwatch@{host}",
        transport=transport,
        sent_by=sent_by(address, local[1]),
        branch=BRANCH_COOKIE + secrets.token_hex(12),
        tag=secrets.token_hex(8),
        call_id=secrets.token_hex(16),
    )


@dataclass(frozen=True)
class Request:
    """A request the peer sent us instead of a response: counted and ignored."""

    method: str


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # full lower-case names, in the order received

    def first(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def every(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def answers(self, request: OptionsRequest) -> bool:
        """RFC 3261 §17.1.3, and the Call-ID: the top Via's branch, the Call-ID and the
        CSeq (number and method) are the request's."""
        via, call_id, cseq = self.first("via"), self.first("call-id"), self.first("cseq")
        return (
            via is not None
            and _branch(_first_value(via)) == request.branch
            and call_id is not None
            and call_id.strip() == request.call_id
            and cseq is not None
            and cseq.split() == [str(request.cseq), "OPTIONS"]
        )

    @property
    def retry_after(self) -> int | None:
        """Retry-After's delta-seconds (RFC 3261 §20.33), when it has some."""
        value = self.first("retry-after")
        match = _DIGITS.match(value) if value is not None else None
        return int(match.group(1)) if match else None

    def text_of(self, name: str) -> str | None:
        """Every header of that name, joined as one (RFC 3261 §7.3.1), clipped."""
        values = self.every(name)
        return clip(", ".join(values)) if values else None


def _first_value(header: str) -> str:
    """The first of the comma-separated values of a header (the top Via), quotes respected."""
    quoted = False
    for position, char in enumerate(header):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return header[:position]
    return header


def _branch(via: str) -> str | None:
    for parameter in via.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "branch":
            return value.strip()
    return None


Message = Response | Request


def _header_lines(head: bytes) -> list[bytes]:
    lines = _LINE_END.split(head)
    if len(lines) > MAX_HEADER_LINES + 1:
        raise OversizedMessage(f"more than {MAX_HEADER_LINES} header lines")
    for line in lines:
        if len(line) > MAX_LINE_BYTES:
            raise OversizedMessage(f"a line over {MAX_LINE_BYTES} bytes")
    return lines


def _headers(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and headers:
            # A folded line continues the header before it (RFC 3261 §7.3.1).
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {_text(line).strip()}")
            continue
        raw_name, colon, raw_value = line.partition(b":")
        name = _text(raw_name).strip()
        if not colon or _TOKEN.fullmatch(name) is None:
            raise MalformedMessage(f"a header line that is not NAME: VALUE: {_excerpt(line)}")
        lowered = name.lower()
        headers.append((_COMPACT.get(lowered, lowered), _text(raw_value).strip()))
    return tuple(headers)


def _content_length(headers: tuple[tuple[str, str], ...]) -> int | None:
    values = [value for name, value in headers if name == "content-length"]
    if not values:
        return None
    if len(set(values)) > 1 or not values[0].isascii() or not values[0].isdigit():
        raise MalformedMessage(f"a Content-Length that is not one number: {values[0][:_EXCERPT]!r}")
    if len(values[0]) > 10:
        raise OversizedMessage(f"Content-Length {values[0][:_EXCERPT]}")
    return int(values[0])


def _start(line: bytes | bytearray) -> Response | Request:
    """What a start line says, the headers yet to come; raises for what is no start line."""
    text = _text(bytes(line))
    status = _STATUS_LINE.fullmatch(text)
    if status is not None:
        return Response(int(status.group(1)), clip(status.group(2) or ""), ())
    request = _REQUEST_LINE.fullmatch(text)
    if request is not None:
        return Request(request.group(1))
    raise MalformedMessage(f"not a SIP message: it starts {_excerpt(line)}")


def _first_line(data: bytes | bytearray) -> bytes | bytearray | None:
    """The start line, once it is whole: garbage is named as soon as it shows."""
    end = _LINE_END.search(data)
    if end is None:
        return None if len(data) <= MAX_LINE_BYTES else data[:MAX_LINE_BYTES]
    return data[: end.start()]


def _parse_head(head: bytes) -> tuple[Message, tuple[tuple[str, str], ...]]:
    start, *rest = _header_lines(head)
    message = _start(start)
    headers = _headers(rest)
    if isinstance(message, Response):
        return Response(message.status, message.reason, headers), headers
    return message, headers


def parse_datagram(data: bytes, limit: int) -> Message | None:
    """One UDP datagram as a message; None for a keepalive (blank lines, RFC 5626)."""
    if len(data) > limit:
        raise OversizedMessage(f"{len(data)} bytes, over the {limit} allowed")
    data = data[_blank_prefix(data) :]
    if not data:
        return None
    _start(_first_line(data) or data)
    end = _HEAD_END.search(data)
    if end is None:
        raise MalformedMessage(f"no end of the header section: {_excerpt(data)}")
    message, headers = _parse_head(data[: end.start()])
    length = _content_length(headers)
    body = len(data) - end.end()
    if length is not None and length > body:
        raise MalformedMessage(f"Content-Length {length}, but the datagram holds {body} bytes")
    return message


def _blank_prefix(data: bytes | bytearray) -> int:
    """RFC 3261 §7.5: blank lines before a start line are ignored."""
    match = _LEADING_BLANK.match(data)
    return match.end() if match else 0


class StreamFramer:
    """Messages out of a TCP or TLS byte stream, each one `limit` bytes at most; Content-Length
    is required there, as it is what ends a message (RFC 3261 §18.3)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> Message | None:
        """The next whole message, or None until more bytes arrive."""
        del self._buffer[: _blank_prefix(self._buffer)]
        first = _first_line(self._buffer)
        if first is not None:
            _start(first)
        end = _HEAD_END.search(self._buffer)
        if (end.start() if end else len(self._buffer)) > self._limit:
            raise OversizedMessage(f"no end of its header section within {self._limit} bytes")
        if end is None:
            return None
        message, headers = _parse_head(bytes(self._buffer[: end.start()]))
        length = _content_length(headers)
        if length is None:
            raise MalformedMessage("no Content-Length, which a stream transport requires")
        total = end.end() + length
        if total > self._limit:
            raise OversizedMessage(
                f"{total} bytes by its Content-Length, over the {self._limit} allowed"
            )
        if len(self._buffer) < total:
            return None
        del self._buffer[:total]
        return message
