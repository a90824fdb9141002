"""DNS servers for the dns probe tests, all on 127.0.0.1: a real dnsmasq, and small scripted
UDP responders for what dnsmasq will not do (stay silent, SERVFAIL, garbage, delays, spoofs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import pytest

from tests.peers import ports
from tests.peers.binaries import installed

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 (DNS serves on both)."""
    return ports.free_port(ports.UDP_AND_TCP)


def dnsmasq_binary() -> str:
    return installed("dnsmasq", "the dns probe tests need a real DNS server", "dnsmasq-base")


def dnsmasq_command(port_number: int, zone: str, records: Sequence[str]) -> list[str]:
    """A dnsmasq that answers only from `records` and never forwards a query anywhere."""
    return [
        dnsmasq_binary(),
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--pid-file=",
        "--log-facility=-",
        "--bind-interfaces",
        f"--listen-address={LOCALHOST}",
        f"--port={port_number}",
        # Unknown names in the zone get NXDOMAIN here instead of REFUSED for lack of upstreams.
        f"--local=/{zone}/",
        "--local-ttl=300",
        *records,
    ]


@contextlib.contextmanager
def running_dnsmasq(
    zone: str, records: Sequence[str], probe_name: str, log_dir: Path
) -> Iterator[int]:
    """Start dnsmasq on a free port, wait until it answers `probe_name`, yield the port."""
    for attempt in range(3):
        port_number = free_port()
        command = dnsmasq_command(port_number, zone, records)
        log_path = log_dir / f"dnsmasq-{attempt}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            if _wait_until_answering(process, port_number, probe_name):
                yield port_number
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if "Address already in use" not in log_path.read_text():
            break
    pytest.fail(
        f"dnsmasq did not start: {' '.join(command)}\n{log_path.read_text()}", pytrace=False
    )


def _wait_until_answering(process: subprocess.Popen[bytes], port_number: int, name: str) -> bool:
    deadline = time.monotonic() + 10
    query = dns.message.make_query(name, "A")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            response = dns.query.udp(query, LOCALHOST, timeout=0.2, port=port_number)
        except (dns.exception.Timeout, OSError):
            continue
        if response.rcode() == dns.rcode.NOERROR and response.answer:
            return True
    return False


# --- scripted responders -------------------------------------------------------------------

Reply = Callable[[bytes], bytes | None]


def silent(query: bytes) -> None:
    return None


def garbage(query: bytes) -> bytes:
    return os.urandom(64)


def answer(rcode: dns.rcode.Rcode = dns.rcode.NOERROR, addresses: Sequence[str] = ()) -> Reply:
    """Replies a well-formed response with `rcode` and, for NOERROR, A records for `addresses`."""

    def reply(query: bytes) -> bytes:
        request = dns.message.from_wire(query)
        response = dns.message.make_response(request)
        response.set_rcode(rcode)
        if addresses:
            name = request.question[0].name
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", *addresses))
        return response.to_wire()

    return reply


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, reply: Reply, delay: float, copies: int) -> None:
        self.reply = reply
        self.delay = delay
        self.copies = copies
        self.queries: list[dns.message.Message] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.sender: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport on 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries.append(dns.message.from_wire(data))
        wire = self.reply(data)
        sender = self.sender or self.transport
        if wire is None or sender is None:
            return
        for _ in range(self.copies):
            asyncio.get_running_loop().call_later(self.delay, sender.sendto, wire, addr)


@contextlib.asynccontextmanager
async def udp_responder(
    reply: Reply, *, delay: float = 0.0, copies: int = 1, from_other_port: bool = False
) -> AsyncIterator[tuple[str, _Responder]]:
    """A UDP DNS server on 127.0.0.1; yields its `server` option value and the responder,
    whose `queries` lists what it was asked. `from_other_port` sends every reply from a second
    socket, as an off-path spoofer would."""
    loop = asyncio.get_running_loop()
    responder = _Responder(reply, delay, copies)
    transport, _ = await loop.create_datagram_endpoint(lambda: responder, local_addr=(LOCALHOST, 0))
    other = None
    if from_other_port:
        other, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(LOCALHOST, 0)
        )
        responder.sender = other
    try:
        port_number = transport.get_extra_info("sockname")[1]
        yield f"{LOCALHOST}:{port_number}", responder
    finally:
        transport.close()
        if other is not None:
            other.close()
