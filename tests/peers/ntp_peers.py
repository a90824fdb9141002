"""NTP servers for the ntp probe tests, on loopback only: Debian's chronyd serving its local
clock, and scripted UDP servers that answer what chronyd never would (kisses of death, an
unsynchronised or hour-off clock, replies to other queries, garbage, floods, silence).

chronyd is started so that it cannot touch anything beyond its port on loopback: its
configuration holds no `server`, `pool`, `peer`, `refclock` or `sourcedir` line (it has no
source to ask, so it never sends a packet of its own), `-x` leaves the system clock alone, and
`chronyd -p`, chronyd's own reading of the configuration, is checked to hold nothing but the
directives written here before the daemon is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from monitor.core.options import format_host_port
from monitor.lab.ntp_peer import ServerClock, answer
from probes.support import ntp_packet
from tests.peers import ports
from tests.peers.binaries import installed

LOCALHOST = "127.0.0.1"
LOCALHOST6 = "::1"
# What the chronyd of these tests may be configured with, and nothing else.
CHRONY_DIRECTIVES = frozenset(
    {"port", "bindaddress", "allow", "local", "cmdport", "bindcmdaddress", "driftfile", "pidfile"}
)


def free_udp_port() -> int:
    """A UDP port free on both 127.0.0.1 and ::1 (chronyd serves on both)."""
    return ports.free_port(ports.UDP, (LOCALHOST, LOCALHOST6))


def chronyd_binary() -> str:
    return installed("chronyd", "the ntp probe tests need a real NTP server", "chrony")


def chrony_config(folder: Path, port: int, local_stratum: int | None) -> str:
    """A chronyd that serves on `port` of 127.0.0.1 and ::1 to loopback clients only, from its
    own clock (`local stratum N`; without it, unsynchronised), with no source to ask. Its
    command port is off (`cmdport 0`) and so is its Unix command socket (`bindcmdaddress /`),
    which would otherwise be the one /run/chrony/chronyd.sock of every chronyd on the host."""
    lines = [
        f"port {port}",
        f"bindaddress {LOCALHOST}",
        f"bindaddress {LOCALHOST6}",
        f"allow {LOCALHOST}",
        f"allow {LOCALHOST6}",
        "cmdport 0",
        "bindcmdaddress /",
        f"driftfile {folder / 'chrony.drift'}",
        f"pidfile {folder / 'chronyd.pid'}",
    ]
    if local_stratum is not None:
        lines.append(f"local stratum {local_stratum}")
    return "\n".join(lines) + "\n"


def _checked_by_chronyd(binary: str, config: Path) -> None:
    """chronyd's own reading of `config` (`-p` prints it and exits) names only the allowed
    directives: no source of any kind."""
    shown = subprocess.run(
        [binary, "-p", "-f", str(config)], capture_output=True, text=True, timeout=10
    )
    assert shown.returncode == 0, shown.stderr
    directives = {line.split()[0] for line in shown.stdout.splitlines() if line.strip()}
    assert directives <= CHRONY_DIRECTIVES, directives - CHRONY_DIRECTIVES


@contextlib.contextmanager
def running_chronyd(folder: Path, local_stratum: int | None = 8) -> Iterator[int]:
    """chronyd serving on a free port of 127.0.0.1 and ::1 until the block ends; yields the
    port once it answers."""
    binary = chronyd_binary()
    for attempt in range(3):
        port = free_udp_port()
        config = folder / f"chrony-{attempt}.conf"
        config.write_text(chrony_config(folder, port, local_stratum), encoding="utf-8")
        _checked_by_chronyd(binary, config)
        log_path = folder / f"chronyd-{attempt}.log"
        # -x: never adjust the system clock; -d: stay in the foreground, log to stderr;
        # -u root: no switch to the _chrony user, who could not write to this folder.
        command = [binary, "-x", "-d", "-f", str(config), "-u", "root"]
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            if _answers(process, port):
                yield port
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
        f"chronyd did not start: {' '.join(command)}\n{log_path.read_text()}", pytrace=False
    )


def _answers(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + 10
    query = ntp_packet.request(0x0123456789ABCDEF, 6)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.connect((LOCALHOST, port))
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                sock.send(query)
                if ntp_packet.parse(sock.recv(1024)).origin == 0x0123456789ABCDEF:
                    return True
            time.sleep(0.05)
    return False


# --- scripted servers ----------------------------------------------------------------------

# For one query: (delay in seconds, datagram) pairs, sent in order; a datagram may be made
# only when it is sent.
Datagram = bytes | Callable[[], bytes]
Script = Callable[[bytes], Sequence[tuple[float, Datagram]]]


def serving(clock: ServerClock | None = None, delay: float = 0.0) -> Script:
    """Answers every query as a server with `clock` would. The reply is made when the query
    arrives and sent `delay` later: the wait adds to the round trip, all of it on the way back
    (so it takes delay / 2 off the offset the client computes, as a queue would)."""
    served = clock or ServerClock()

    def script(query: bytes) -> list[tuple[float, Datagram]]:
        reply = answer(query, served, time.time())
        return [] if reply is None else [(delay, reply)]

    return script


def held(query: bytes, clock: ServerClock | None = None) -> Callable[[], bytes]:
    """The reply to `query` of a server that holds it until it is sent: its receive timestamp
    says when the query came, its transmit one when the reply left, so the time held is no
    part of the delay or the offset the client computes."""
    arrived = time.time()

    def made() -> bytes:
        reply = answer(query, clock or ServerClock(), arrived)
        assert reply is not None
        return reply

    return made


def kiss(code: str) -> ServerClock:
    """A kiss of death: stratum 0, its code as the reference id."""
    return ServerClock(stratum=0, reference_id=code.encode("ascii"), leap=3)


def with_origin(reply: bytes, origin: int) -> bytes:
    return reply[:24] + origin.to_bytes(8, "big") + reply[32:]


def with_first_byte(reply: bytes, first: int) -> bytes:
    return bytes([first]) + reply[1:]


def with_transmit(reply: bytes, transmit: int) -> bytes:
    return reply[:40] + transmit.to_bytes(8, "big")


def origin_of(reply: bytes) -> int:
    return ntp_packet.parse(reply).origin


def stray(reply: bytes) -> bytes:
    """`reply` as if to another query: its origin timestamp is not the query's."""
    return with_origin(reply, origin_of(reply) ^ 0x5A5A5A5A5A5A5A5A)


def one_by_one(*scripts: Script) -> Script:
    """The first query answered by the first script, the second by the second, and so on; the
    last answers the rest."""
    asked: list[bytes] = []

    def script(query: bytes) -> Sequence[tuple[float, Datagram]]:
        asked.append(query)
        return scripts[min(len(asked), len(scripts)) - 1](query)

    return script


@dataclass(eq=False)  # a protocol is one endpoint, not a value
class _Server(asyncio.DatagramProtocol):
    script: Script
    queries: list[bytes] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    sender: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport on 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries.append(data)
        loop = asyncio.get_running_loop()
        for delay, datagram in self.script(data):
            loop.call_later(delay, self._send, datagram, addr)

    def _send(self, datagram: Datagram, addr: tuple[str, int]) -> None:
        sender = self.sender or self.transport
        assert sender is not None
        sender.sendto(datagram if isinstance(datagram, bytes) else datagram(), addr)


@contextlib.asynccontextmanager
async def scripted_server(
    script: Script, *, address: str = LOCALHOST, from_other_port: bool = False
) -> AsyncIterator[tuple[str, _Server]]:
    """A UDP server on `address` answering by `script`; yields its `target` value and the
    server, whose `queries` lists what it was sent. `from_other_port` sends every reply from
    a second socket, as a forger (or a server behind a broken NAT) would."""
    loop = asyncio.get_running_loop()
    server = _Server(script)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=(address, 0))
    other = None
    if from_other_port:
        other, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(address, 0)
        )
        server.sender = cast(asyncio.DatagramTransport, other)
    try:
        yield format_host_port(address, transport.get_extra_info("sockname")[1]), server
    finally:
        transport.close()
        if other is not None:
            other.close()
