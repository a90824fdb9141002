"""A real NATS server with JetStream (Debian's `nats-server` package) on 127.0.0.1, with a store
folder of the test's own. It can be stopped and started again on the same port with the same
store, as an outage and a recovery look to its clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers.prometheus_peers import LOOPBACK, free_port, poll


def nats_binary() -> str:
    found = shutil.which("nats-server")
    if found is None:
        pytest.fail(
            "nats-server is not installed: the cluster tests run a real NATS with JetStream "
            "(Debian/Ubuntu: apt-get install nats-server)",
            pytrace=False,
        )
    return found


class PortTaken(Exception):
    """Something else bound the free port first (another test's server, between our look and
    nats-server's bind)."""


@dataclass
class NatsServer:
    folder: Path
    port: int
    user: str | None = None
    password: str | None = None
    token: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_start: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "nats-server.log"

    def _config(self) -> Path:
        # A file, not flags: a password on the command line is in every `ps` listing.
        lines = [
            f"listen: {LOOPBACK}:{self.port}",
            f"jetstream {{ store_dir: {json.dumps(str(self.folder / 'store'))} }}",
        ]
        if self.user is not None:
            lines.append(
                f"authorization {{ user: {json.dumps(self.user)}, "
                f"password: {json.dumps(self.password)} }}"
            )
        elif self.token is not None:
            lines.append(f"authorization {{ token: {json.dumps(self.token)} }}")
        config = self.folder / "nats-server.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    async def start(self) -> None:
        """Start it (again: same port, same store) and return once it serves JetStream."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self._config()
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [nats_binary(), "-c", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await poll("nats-server ready", self._ready, timeout=30)

    async def _ready(self) -> bool | None:
        process = self.process
        assert process is not None
        if process.poll() is not None:
            said = self.log.read_text()[self._log_start :]
            if "address already in use" in said:
                raise PortTaken(said)
            pytest.fail(f"nats-server exited {process.returncode}: {said[-2000:]}", pytrace=False)
        # The server's first line is INFO {json}; JetStream is on once it says so.
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, self.port)
        except OSError:
            return None
        try:
            async with asyncio.timeout(2):
                line = await reader.readline()
        except TimeoutError:
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not line.startswith(b"INFO "):
            return None
        info = json.loads(line[5:])
        return True if info.get("jetstream") else None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s; or SIGKILL at once) and wait for it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def running_nats(
    folder: Path,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> AsyncIterator[NatsServer]:
    """nats-server with JetStream on a free loopback port, authenticating clients by user and
    password or by token when given; stopped at the end."""
    for attempt in range(3):
        server = NatsServer(folder, free_port(), user=user, password=password, token=token)
        try:
            await server.start()
            break
        except PortTaken:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()
