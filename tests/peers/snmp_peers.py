"""SNMP agents for the snmp probe tests and the sweep benchmark, all on loopback: net-snmp's real
snmpd with a generated configuration (and, by `pass`, a UPS-MIB whose values the test sets), a UDP
socket that never answers, one that answers garbage, and a veth pair whose interfaces are admin up
but oper down, and admin down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import ports
from tests.peers.binaries import installed

LOCALHOST = "127.0.0.1"
COMMUNITY = "cw-community-9b1f"
PRIV_USER = "cwpriv"
AUTH_USER = "cwauth"
AUTH_PASSPHRASE = "cw-auth-passphrase-51d3"
PRIV_PASSPHRASE = "cw-priv-passphrase-a7e0"
AUTH_ONLY_PASSPHRASE = "cw-authonly-passphrase-3c88"
# The check options of PRIV_USER at authPriv, its passphrases in these environment variables.
AUTH_PRIV_ENV = {"CW_AUTH": AUTH_PASSPHRASE, "CW_PRIV": PRIV_PASSPHRASE}
AUTH_PRIV = {
    "version": 3,
    "user": PRIV_USER,
    "auth_protocol": "sha256",
    "auth_passphrase_env": "CW_AUTH",
    "priv_protocol": "aes",
    "priv_passphrase_env": "CW_PRIV",
}
AES256_USER = "cwaes256"  # SHA-1 + AES-256: the key must be extended, as net-snmp does
# In the machine's own namespace, where snmpd reads its interface table: named for this test
# process, so the suite's other processes (pytest-xdist) never remove or remake this pair.
VETH_UP, VETH_DOWN = f"cwu{os.getpid()}", f"cwd{os.getpid()}"


def snmpd_binary() -> str:
    return installed("snmpd", "the snmp probe tests need net-snmp's real agent", "snmpd")


def free_udp_port(address: str = LOCALHOST) -> int:
    return ports.free_port(ports.UDP, (address,))


UPS_MIB = ".1.3.6.1.2.1.33"
# snmpd's `pass` protocol: asked "-g OID", print the OID, its type and its value, or nothing
# (noSuchObject). The values are the lines "OID TYPE VALUE" of the file named by $1, which the
# test rewrites between polls; GETNEXT ("-n") is not served, as the probe only GETs.
_UPS_PASS_SCRIPT = """#!/bin/sh
[ "$2" = "-g" ] || exit 0
while read -r oid type value; do
  if [ "$oid" = "$3" ]; then printf '%s\\n%s\\n%s\\n' "$oid" "$type" "$value"; exit 0; fi
done < "$1"
"""


def agent_config(
    addresses: Sequence[str],
    port_number: int,
    *,
    auth_passphrase: str = AUTH_PASSPHRASE,
    engine_id: str | None = None,
    ups_values: str | None = None,
) -> str:
    """An snmpd.conf: v2c read-only community, authPriv users (SHA-256 + AES, SHA + AES-256)
    and an authNoPriv user, listening on `addresses` only; with `ups_values`, the UPS-MIB
    answered from that file (see `UpsValues`)."""
    # UDP is snmpd's default transport; leaving out "udp:" keeps 128 addresses within the
    # length snmpd accepts for the list.
    listen = ",".join(f"{address}:{port_number}" for address in addresses)
    lines = [
        f"agentAddress {listen}",
        f"rocommunity {COMMUNITY} 127.0.0.0/8",
        f'createUser {PRIV_USER} SHA-256 "{auth_passphrase}" AES "{PRIV_PASSPHRASE}"',
        f'createUser {AUTH_USER} SHA-256 "{AUTH_ONLY_PASSPHRASE}"',
        f'createUser {AES256_USER} SHA "{auth_passphrase}" AES-256 "{PRIV_PASSPHRASE}"',
        f"rouser {PRIV_USER} priv",
        f"rouser {AUTH_USER} auth",
        f"rouser {AES256_USER} priv",
    ]
    if engine_id is not None:
        lines.append(f"engineID {engine_id}")
    if ups_values is not None:
        script = Path(ups_values).with_suffix(".sh")
        script.write_text(_UPS_PASS_SCRIPT)
        lines.append(f"pass {UPS_MIB} /bin/sh {script} {ups_values}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class UpsValues:
    """The file snmpd's `pass` answers the UPS-MIB from: `set` replaces its lines atomically,
    so a poll sees the old values or the new, never half a file."""

    path: Path

    def set(self, values: dict[str, tuple[str, str | int]]) -> None:
        """`values`: UPS-MIB scalar (e.g. "1.4.1.0", under upsObjects) -> (pass type, value)."""
        lines = [f"{UPS_MIB}.1.{oid} {kind} {value}" for oid, (kind, value) in values.items()]
        partial = self.path.with_suffix(".new")
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(self.path)


def _v2c_get_uptime() -> bytes:
    """A v2c GET of sysUpTime.0, BER-encoded by hand: the readiness probe needs no engine."""

    def tlv(tag: int, body: bytes) -> bytes:
        assert len(body) < 128
        return bytes((tag, len(body))) + body

    oid = tlv(0x06, bytes((0x2B, 6, 1, 2, 1, 1, 3, 0)))
    varbinds = tlv(0x30, tlv(0x30, oid + b"\x05\x00"))
    pdu = tlv(0xA0, tlv(0x02, b"\x01") + tlv(0x02, b"\x00") + tlv(0x02, b"\x00") + varbinds)
    return tlv(0x30, tlv(0x02, b"\x01") + tlv(0x04, COMMUNITY.encode()) + pdu)


@dataclass
class SnmpAgent:
    """A running snmpd in the foreground, restartable with the same or a changed config."""

    addresses: tuple[str, ...]
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self, **config: str | None) -> None:
        conf = self.folder / "snmpd.conf"
        conf.write_text(agent_config(self.addresses, self.port, **config))  # type: ignore[arg-type]
        persistent = self.folder / "persistent"
        persistent.mkdir(exist_ok=True)
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(persistent), "MIBS": ""}
        log = (self.folder / "snmpd.log").open("ab")
        self.process = subprocess.Popen(
            [snmpd_binary(), "-f", "-Lo", "-C", "-c", str(conf), "-p", str(self.folder / "pid")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_until_answering()

    def _wait_until_answering(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.1)
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    break
                sock.sendto(_v2c_get_uptime(), (self.address, self.port))
                with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                    if sock.recv(4096):
                        return
        log = (self.folder / "snmpd.log").read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"snmpd did not answer on {self.target}; its log ends:\n{log}", pytrace=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, **config: str | None) -> None:
        self.stop()
        self.start(**config)


@contextlib.contextmanager
def running_agent(
    folder: Path, addresses: Sequence[str] = (LOCALHOST,), **config: str | None
) -> Iterator[SnmpAgent]:
    folder.mkdir(parents=True, exist_ok=True)
    agent = SnmpAgent(tuple(addresses), free_udp_port(addresses[0]), folder)
    agent.start(**config)
    try:
        yield agent
    finally:
        agent.stop()


@contextlib.contextmanager
def veth_pair() -> Iterator[str | None]:
    """VETH_UP admin up with its peer VETH_DOWN admin down: no carrier, so VETH_UP is oper down; no
    addresses, so nothing can flow. Yields None, or why the pair could not be made."""
    ip = installed("ip", "the interface tests make a veth pair", "iproute2")
    subprocess.run([ip, "link", "del", VETH_UP], capture_output=True, check=False)
    steps = (
        [ip, "link", "add", VETH_UP, "type", "veth", "peer", "name", VETH_DOWN],
        [ip, "link", "set", VETH_UP, "up"],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run([ip, "link", "del", VETH_UP], capture_output=True, check=False)
            yield f"`{' '.join(step[1:])}` failed: {done.stderr.strip() or done.returncode}"
            return
    try:
        yield None
    finally:
        subprocess.run([ip, "link", "del", VETH_UP], capture_output=True, check=False)


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.random = random.Random(4)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.answer and self.transport is not None:
            self.transport.sendto(self.random.randbytes(self.random.randint(1, 300)), addr)


@contextlib.asynccontextmanager
async def udp_peer(answer_garbage: bool) -> AsyncIterator[int]:
    """A UDP port that swallows every request, or answers each with random bytes."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Responder(answer_garbage), local_addr=(LOCALHOST, 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()
