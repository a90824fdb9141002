"""Starts and stops every peer of the demo lab, in one event loop, or on a thread of its own.

`Lab` runs in the caller's loop (tests). `LabThread` gives the lab a loop and thread of its own,
for `commwatch demo`: the dashboard (Textual runs its own loop) or the headless engine then
shares nothing with it, and a slow frame in one never shows up as latency in the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from monitor.core.paths import state_dir
from monitor.lab import tls_peers
from monitor.lab.dns_peer import DnsPeer
from monitor.lab.http_peers import HttpPeers
from monitor.lab.layout import SERVICES, Behaviour
from monitor.lab.misc import TcpPeers
from monitor.lab.ntp_peer import NtpPeer
from monitor.lab.sip_peer import SipPeers
from monitor.lab.snmp_agent import Cycles, DeviceClock, SnmpAgent, SnmpSecrets, lab_device

SNMP_USER = "commwatch-lab"
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class SnmpEnv:
    """The environment variables the lab's SNMP secrets are exported to, and that its
    inventory's checks name (`community_env`, `auth_passphrase_env`, `priv_passphrase_env`)."""

    community: str = "COMMWATCH_LAB_SNMP_COMMUNITY"
    auth_passphrase: str = "COMMWATCH_LAB_SNMP_AUTH_PASSPHRASE"
    priv_passphrase: str = "COMMWATCH_LAB_SNMP_PRIV_PASSPHRASE"


SNMP_ENV = SnmpEnv()
_HTTP = (Behaviour.HTTP_HEALTHY, Behaviour.HTTP_SLOW, Behaviour.HTTP_FLAKY)
_SIP = (Behaviour.SIP_HEALTHY, Behaviour.SIP_MAINTENANCE)
_TLS = (
    Behaviour.TLS_HEALTHY,
    Behaviour.TLS_EXPIRING,
    Behaviour.TLS_EXPIRED,
    Behaviour.TLS_WRONG_HOST,
    Behaviour.TLS_UNTRUSTED,
)


def _secret() -> str:
    return secrets.token_urlsafe(18)


class Lab:
    """Every peer of `monitor.lab.layout.SERVICES`, on its fixed port plus `port_offset`."""

    def __init__(self, *, port_offset: int = 0, clock: DeviceClock | None = None) -> None:
        """`clock` drives the SNMP devices' cycles (tests pass short ones, or a fake time)."""
        self.port_offset = port_offset
        self.snmp_secrets = SnmpSecrets(_secret(), SNMP_USER, _secret(), _secret())
        self.clock = clock or DeviceClock(Cycles())
        self.started_in: float | None = None  # seconds the last start took
        self._http = HttpPeers()
        self._tcp = TcpPeers()
        self._dns = DnsPeer()
        self._ntp = NtpPeer()
        self._sip = SipPeers()
        self._agents: list[SnmpAgent] = []

    async def start(self) -> None:
        """Raises PortTaken (having stopped whatever did start) when a port is in use."""
        began = time.perf_counter()
        offset = self.port_offset
        contexts = tls_peers.server_contexts(
            [(s.behaviour, s.address) for s in SERVICES if s.behaviour in _TLS]
        )
        try:
            for s in SERVICES:
                if s.behaviour in _HTTP:
                    self._http.add(s.behaviour, s.address, s.port(offset))
                elif s.behaviour in _TLS:
                    context = contexts[(s.behaviour, s.address)]
                    self._http.add(s.behaviour, s.address, s.port(offset), context)
                elif s.behaviour in (Behaviour.SSH_BANNER, Behaviour.HANGING):
                    await self._tcp.start(s.behaviour, s.address, s.port(offset))
                elif s.behaviour is Behaviour.DNS:
                    await self._dns.start(s.address, s.port(offset))
                elif s.behaviour is Behaviour.NTP:
                    await self._ntp.start(s.address, s.port(offset))
                elif s.behaviour in _SIP:
                    await self._sip.start(s.behaviour, s.address, s.port(offset))
                elif s.behaviour is Behaviour.SNMP:
                    agent = SnmpAgent(
                        lab_device(s.name, s.address), s.port(offset), self.snmp_secrets, self.clock
                    )
                    agent.start()
                    self._agents.append(agent)
            await self._http.start()
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.perf_counter() - began

    async def stop(self) -> None:
        for agent in self._agents:
            agent.close()
        self._agents.clear()
        await self._http.stop()
        await self._tcp.stop()
        await self._dns.stop()
        await self._ntp.stop()
        await self._sip.stop()

    async def __aenter__(self) -> Lab:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def export_secrets(self, environ: MutableMapping[str, str] = os.environ) -> None:
        """Put the SNMP secrets where the lab inventory's `*_env` keys look for them."""
        environ.update(self._secret_variables())

    def _secret_variables(self) -> dict[str, str]:
        return {
            SNMP_ENV.community: self.snmp_secrets.community,
            SNMP_ENV.auth_passphrase: self.snmp_secrets.auth_passphrase,
            SNMP_ENV.priv_passphrase: self.snmp_secrets.priv_passphrase,
        }

    def env_file_text(self) -> str:
        """The secrets as `NAME=value` lines that sh (`set -a; . FILE; set +a`), systemd's
        EnvironmentFile= and `docker --env-file` all read alike: the values need no quoting."""
        lines = [
            "# The SNMP secrets of the running `commwatch demo` lab; removed when it stops.",
            "# Load them into a shell with: set -a; . THIS-FILE; set +a",
        ]
        for name, value in self._secret_variables().items():
            assert re.fullmatch(r"[A-Za-z0-9_-]+", value), "a secret that would need quoting"
            lines.append(f"{name}={value}")
        return "\n".join(lines) + "\n"

    def describe(self) -> list[str]:
        """One line per service: where it is and what it does."""
        width = max(len(s.name) for s in SERVICES)
        return [
            f"  {s.endpoint(self.port_offset):<17} {s.name:<{width}}  {s.behaviour.value}"
            for s in SERVICES
        ]


def env_file_path(port_offset: int = 0) -> Path:
    """Where a running lab leaves its secrets for commwatch in other terminals: commwatch's
    state folder, one file per port offset (two labs never share one: their ports collide)."""
    suffix = f"-{port_offset}" if port_offset else ""
    return state_dir() / f"demo-lab{suffix}.env"


@contextlib.contextmanager
def secrets_env_file(lab: Lab, path: Path) -> Iterator[Path]:
    """`path` holds the lab's secrets (mode 0600, never readable by others, not even for a
    moment) until the block ends; then it is removed, unless another lab has replaced it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = lab.env_file_text()
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)  # left by a process of the same id that was killed
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == text:
                path.unlink()


@contextlib.contextmanager
def lab_thread(lab: Lab) -> Iterator[Lab]:
    """Runs `lab` on a thread with its own event loop until the block ends. Start errors
    (PortTaken) are raised here, in the caller's thread."""
    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()

    async def serve() -> None:
        try:
            await lab.start()
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        try:
            await stopping.wait()
        finally:
            await lab.stop()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="commwatch-lab", daemon=True
    )
    thread.start()
    ready.wait(_START_TIMEOUT)
    try:
        if failure:
            raise failure[0]
        yield lab
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(_START_TIMEOUT)
        loop.close()
