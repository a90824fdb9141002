"""The lab's SIP elements: SBCs that answer OPTIONS over UDP and TCP, one healthy (200 OK), one
in maintenance (503 with Retry-After), as a stateless server does (RFC 3261 §8.2.6): the
response copies Via, From, Call-ID and CSeq, and adds a tag to To. Any other method gets 405.

`answer` builds such a response; tests build their hostile peers' answers with it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Mapping, Sequence
from typing import cast

from monitor.lab.layout import Behaviour
from monitor.lab.listeners import Listeners

SERVER = "commwatch-lab-sbc/1.0"
RETRY_AFTER = 300  # the maintenance window the lab's SBC announces, in seconds
TO_TAG = "lab"
_COPIED = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
_REQUEST_LINE = re.compile(rb"([A-Z]+) \S+ SIP/2\.0")
_MAX_REQUEST = 8192
_TCP_IDLE_SECONDS = 10.0


def answer(
    request: bytes,
    status: int,
    reason: str,
    extra: Sequence[str] = (),
    replace: Mapping[str, str] | None = None,
    server: str = SERVER,
) -> bytes | None:
    """The response to `request` (None for what is not a request), with `extra` header lines;
    `replace` swaps a copied header's value (by its name as written here: "Call-ID")."""
    head = request.partition(b"\r\n\r\n")[0].split(b"\r\n")
    if _REQUEST_LINE.fullmatch(head[0]) is None:
        return None
    copied: list[tuple[str, str]] = []
    for line in head[1:]:
        name, colon, value = line.decode("utf-8", errors="replace").partition(":")
        key = _COMPACT.get(name.strip().lower(), name.strip().lower())
        if colon and key in _COPIED:
            copied.append((_COPIED[key], value.strip()))
    lines = [f"SIP/2.0 {status} {reason}"]
    for name, value in copied:
        if replace and name in replace:
            value = replace[name]
        elif name == "To" and ";tag=" not in value:
            value += f";tag={TO_TAG}"
        lines.append(f"{name}: {value}")
    lines += [f"Server: {server}", *extra, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _respond(behaviour: Behaviour, request: bytes) -> bytes | None:
    match = _REQUEST_LINE.match(request)
    if match is None:
        return None
    if match.group(1) != b"OPTIONS":
        return answer(request, 405, "Method Not Allowed", ["Allow: OPTIONS"])
    if behaviour is Behaviour.SIP_MAINTENANCE:
        return answer(request, 503, "Service Unavailable", [f"Retry-After: {RETRY_AFTER}"])
    return answer(request, 200, "OK", ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS"])


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = _respond(self.behaviour, data)
        if reply is not None:
            self.transport.sendto(reply, addr)


class SipPeers:
    def __init__(self) -> None:
        self._listeners = Listeners()

    async def _tcp(
        self, behaviour: Behaviour, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Requests framed by their header section (the lab's clients send no bodies) until
        the client leaves, idles out or sends one larger than the lab takes."""
        with (
            self._listeners.client(writer),
            contextlib.suppress(
                ConnectionError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ),
        ):
            while True:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TCP_IDLE_SECONDS)
                reply = _respond(behaviour, request.lstrip(b"\r\n"))
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()

    async def start(self, behaviour: Behaviour, address: str, port: int) -> None:
        await self._listeners.udp(lambda: _Udp(behaviour), address, port)
        await self._listeners.tcp(
            functools.partial(self._tcp, behaviour), address, port, limit=_MAX_REQUEST
        )

    async def stop(self) -> None:
        await self._listeners.stop()
