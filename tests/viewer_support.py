"""A real engine for the viewers' tests: `commwatch run INVENTORY --listen` in a process of its
own, on loopback, with a viewer and an operator token, watching TCP peers of the test that can
be switched off and on (and count who connects), and a TCP proxy of the test between viewers
and engine that can cut every connection (tests/peers/proxy.py)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import ssl
import struct
import sys
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from tests.peers.ports import free_port

LOOPBACK = "127.0.0.1"
VIEWER_ENV, OPERATOR_ENV = "COMMWATCH_TEST_VIEWER_TOKEN", "COMMWATCH_TEST_OPERATOR_TOKEN"
TOKENS = {VIEWER_ENV: "viewer-" + "v" * 24, OPERATOR_ENV: "operator-" + "o" * 24}
START_TIMEOUT = 20.0
ONCE = "{interval: 1h, timeout: 1s, retries: 1}"  # each check runs at start, then on request


@dataclass
class CountingPeer:
    """A TCP listener that accepts and closes, counting connections; `stop()` refuses them
    (the port closed, the check CRIT), `start()` on the same port accepts again."""

    port: int = field(default_factory=free_port)
    accepted: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self._server = await asyncio.start_server(accept, LOOPBACK, self.port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def _context(tls: tuple[Path, Path, Path] | None) -> ssl.SSLContext | bool:
    """The test's own requests trust the CA that signed the engine's certificate."""
    return True if tls is None else ssl.create_default_context(cafile=str(tls[2]))


@dataclass
class Engine:
    url: URL
    process: asyncio.subprocess.Process
    log: Path
    ssl: ssl.SSLContext | bool = True

    async def request(
        self, method: str, path: str, token: str = OPERATOR_ENV, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKENS[token]}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{self.url}{path}", headers=headers, ssl=self.ssl, **kwargs
            ) as response,
        ):
            body = await response.json() if response.status != 204 else None
            return response.status, body

    async def state(self) -> dict[str, Any]:
        status, document = await self.request("GET", "/api/v1/state", VIEWER_ENV)
        assert status == 200
        return document  # type: ignore[no-any-return]

    async def severities(self) -> dict[str, str]:
        """Each check's confirmed state as the engine holds it."""
        document = await self.state()
        return {cid: check["hard"] for cid, check in document["engine_state"]["checks"].items()}


def inventory_text(
    peers: dict[str, CountingPeer],
    port: int,
    history: Path,
    extra: str = "",
    tls: str = "",
    schedule: str = "",
) -> str:
    """One site, one link per peer, one tcp check each, run once at start (interval 1h):
    after that, only run-now makes the engine look, so every connection can be accounted for."""
    links = "".join(
        f'      - id: {name}\n        checks: [{{id: port, kind: tcp, target: "{peer.target}"}}]\n'
        for name, peer in peers.items()
    )
    return (
        f"history: {{path: {history}}}\n"
        "api:\n"
        f"  listen: {LOOPBACK}:{port}\n"
        f"{tls}"
        "  tokens:\n"
        f"    - {{role: viewer, token_env: {VIEWER_ENV}}}\n"
        f"    - {{role: operator, token_env: {OPERATOR_ENV}}}\n"
        f"defaults: {schedule or ONCE}\n"
        f"{extra}"
        "sites:\n"
        "  - id: psap\n"
        "    name: North PSAP\n"
        "    links:\n"
        f"{links}"
    )


def environment() -> dict[str, str]:
    return {**os.environ, **TOKENS}


@contextlib.asynccontextmanager
async def running_engine(
    tmp_path: Path,
    peers: dict[str, CountingPeer],
    extra: str = "",
    *,
    tls: tuple[Path, Path, Path] | None = None,
    schedule: str = ONCE,
) -> AsyncIterator[Engine]:
    """`commwatch run --listen`, ready (every check has run once) until the block ends;
    `tls`: its certificate, its key and the CA that signed it (https, verified by the test's
    own requests too)."""
    port = free_port()
    inventory = tmp_path / "engine.yaml"
    tls_line = "" if tls is None else f"  tls: {{cert_file: {tls[0]}, key_file: {tls[1]}}}\n"
    history = tmp_path / "history.sqlite3"
    inventory.write_text(inventory_text(peers, port, history, extra, tls_line, schedule))
    log = tmp_path / "engine.log"
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.cli",
            "run",
            str(inventory),
            "--listen",
            f"{LOOPBACK}:{port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
            env=environment(),
        )
    scheme = "http" if tls is None else "https"
    engine = Engine(URL(f"{scheme}://{LOOPBACK}:{port}"), process, log, ssl=_context(tls))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    status, _ = await engine.request("GET", "/readyz", VIEWER_ENV)
                    if status == 200 and len(await engine.severities()) == len(peers):
                        break
                assert process.returncode is None, log.read_text()
                await asyncio.sleep(0.1)
        yield engine
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


_ESCAPES = re.compile(
    rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)"
)


class PtyViewer:
    """`commwatch ARGS` on a pseudo-terminal of its own (120x40), as an engineer runs it; what
    it draws is collected, escapes removed, for the test to read."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.output = bytearray()
        self._master = -1
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self._master = master
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.cli",
            *self.args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**environment(), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
            start_new_session=True,
        )
        os.close(slave)
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            self.output += os.read(self._master, 65536)
        except OSError:  # the child is gone and the terminal with it
            asyncio.get_running_loop().remove_reader(self._master)

    def text(self) -> str:
        return _ESCAPES.sub(b"", bytes(self.output)).decode("utf-8", "replace")

    async def wait_for(self, *words: str, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not all(word in self.text() for word in words):
                assert self.process is not None and self.process.returncode is None, self.text()
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"q")
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = -1


async def commwatch(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`commwatch ARGS` to its end: the exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment() if env is None else env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
