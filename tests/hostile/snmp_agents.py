"""Scripted SNMPv2c agents on 127.0.0.1 that misbehave where net-snmp's snmpd never would: values
of the wrong type, walks that never advance or never end, answers buried in garbage.

Each agent is a real UDP peer speaking BER-encoded SNMP (pysnmp's protocol module encodes and
decodes; nothing of commwatch is involved). It answers GET from a table of values and GETNEXT /
GETBULK by walking that table in OID order, unless a behaviour says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

LOCALHOST = "127.0.0.1"
COMMUNITY = "cw-hostile-community"
V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]

SYS_DESCR, SYS_UPTIME, SYS_NAME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"
IF_DESCR, IF_ADMIN, IF_OPER = "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8"
IF_NAME, IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.31.1.1.1.18"


def oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def healthy_system(descr: str = "scripted agent", name: str = "agent") -> dict[str, Any]:
    return {
        SYS_DESCR: V2C.OctetString(descr.encode()),
        SYS_UPTIME: V2C.TimeTicks(123456),
        SYS_NAME: V2C.OctetString(name.encode()),
    }


def interface(index: int, name: str, alias: str = "", descr: str = "") -> dict[str, Any]:
    """One interface row, admin and oper up, with the IF-MIB columns the probe reads."""
    base = {
        f"{IF_NAME}.{index}": V2C.OctetString(name.encode()),
        f"{IF_DESCR}.{index}": V2C.OctetString((descr or name).encode()),
        f"{IF_ALIAS}.{index}": V2C.OctetString(alias.encode()),
        f"{IF_ADMIN}.{index}": V2C.Integer(1),
        f"{IF_OPER}.{index}": V2C.Integer(1),
    }
    counters = {
        "1.3.6.1.2.1.2.2.1.14": V2C.Counter32(0),
        "1.3.6.1.2.1.2.2.1.20": V2C.Counter32(0),
        "1.3.6.1.2.1.2.2.1.13": V2C.Counter32(0),
        "1.3.6.1.2.1.31.1.1.1.6": V2C.Counter64(0),
        "1.3.6.1.2.1.31.1.1.1.10": V2C.Counter64(0),
        "1.3.6.1.2.1.31.1.1.1.15": V2C.Gauge32(1000),
    }
    return base | {f"{column}.{index}": value for column, value in counters.items()}


# The variable after an OID in the agent's view, or None past its end (GETNEXT, GETBULK).
Walker = Callable[[str], tuple[str, Any] | None]

# A datagram pysnmp's BER decoder raises TypeError on (rather than counting a parse error).
DECODER_CRASH = bytes.fromhex("a230")


@dataclass
class Behaviour:
    """How a scripted agent answers. `values` serves GET; `next_of` (default: the next OID of
    `values`) serves GETNEXT/GETBULK; `garbage` datagrams precede every answer; `answer`
    False sends only the garbage; `garbage_senders` more sockets send one garbage datagram each
    (a flood from many sources); `delay` seconds pass before each answer; `request_id_shift`
    answers with another request id than the request's."""

    values: Mapping[str, Any] = field(default_factory=dict)
    next_of: Walker | None = None
    garbage: tuple[bytes, ...] = ()
    garbage_senders: int = 0
    answer: bool = True
    delay: float = 0.0
    request_id_shift: int = 0


def random_garbage(count: int, size: int = 48) -> tuple[bytes, ...]:
    return tuple(os.urandom(size) for _ in range(count))


@dataclass
class Seen:
    requests: int = 0


class _Agent(asyncio.DatagramProtocol):
    def __init__(self, behaviour: Behaviour, seen: Seen) -> None:
        self.behaviour = behaviour
        self.seen = seen
        self.ordered = sorted(behaviour.values, key=oid_key)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.seen.requests += 1
        for datagram in self.behaviour.garbage:
            self.transport.sendto(datagram, addr)
        for _ in range(self.behaviour.garbage_senders):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.bind((LOCALHOST, 0))
                sender.sendto(os.urandom(48), addr)
        if not self.behaviour.answer:
            return
        message, _ = decoder.decode(data, asn1Spec=V2C.Message())
        if bytes(V2C.apiMessage.get_community(message)) != COMMUNITY.encode():
            return  # as a real v2c agent does: silence
        response = self._response(message)
        asyncio.get_running_loop().call_later(self.behaviour.delay, self._send, response, addr)

    def _send(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(datagram, addr)

    def _response(self, message: Any) -> bytes:
        request = V2C.apiMessage.get_pdu(message)
        response_message = V2C.apiMessage.get_response(message)
        response = V2C.apiMessage.get_pdu(response_message)
        names = [str(name) for name, _ in V2C.apiPDU.get_varbinds(request)]
        if request.isSameTypeWith(V2C.GetRequestPDU()):
            values = self.behaviour.values
            varbinds = [(name, values.get(name, V2C.NoSuchObject())) for name in names]
        else:
            repetitions = 1
            if request.isSameTypeWith(V2C.GetBulkRequestPDU()):
                repetitions = max(1, int(V2C.apiBulkPDU.get_max_repetitions(request)))
            varbinds = []
            cursors = list(names)
            for _ in range(repetitions):
                for position, cursor in enumerate(cursors):
                    found = self._next(cursor)
                    varbinds.append(found or (cursor, V2C.EndOfMibView()))
                    cursors[position] = found[0] if found else cursor
        V2C.apiPDU.set_varbinds(response, [(V2C.ObjectIdentifier(n), v) for n, v in varbinds])
        if self.behaviour.request_id_shift:
            request_id = int(V2C.apiPDU.get_request_id(request))
            V2C.apiPDU.set_request_id(response, request_id + self.behaviour.request_id_shift)
        return encoder.encode(response_message)

    def _next(self, oid: str) -> tuple[str, Any] | None:
        if self.behaviour.next_of is not None:
            return self.behaviour.next_of(oid)
        key = oid_key(oid)
        for name in self.ordered:
            if oid_key(name) > key:
                return name, self.behaviour.values[name]
        return None


@dataclass
class ScriptedAgent:
    port: int
    seen: Seen

    @property
    def target(self) -> str:
        return f"{LOCALHOST}:{self.port}"


@contextlib.asynccontextmanager
async def scripted_agent(behaviour: Behaviour) -> AsyncIterator[ScriptedAgent]:
    loop = asyncio.get_running_loop()
    seen = Seen()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Agent(behaviour, seen), local_addr=(LOCALHOST, 0)
    )
    try:
        yield ScriptedAgent(transport.get_extra_info("sockname")[1], seen)
    finally:
        transport.close()
