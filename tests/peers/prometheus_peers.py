"""A real Prometheus server (Debian's `prometheus` package) on 127.0.0.1, with a configuration
and a storage folder of the test's own; it scrapes only what that configuration names, on
loopback, and sends nothing anywhere else (no remote write, no remote read, no alertmanager)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from tests.peers.binaries import installed
from tests.peers.ports import free_port

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


def prometheus_binary(name: str = "prometheus") -> str:
    return installed(
        name,
        "the metrics tests scrape a running engine with a real Prometheus",
        "prometheus",
    )


async def poll(what: str, attempt: Callable[[], Awaitable[T | None]], timeout: float = 60.0) -> T:
    """`attempt()` again, with growing pauses (10 ms doubling to 0.5 s), until it gives
    something; fails naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + timeout, 0.01
    while True:
        found = await attempt()
        if found is not None:
            return found
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {timeout}s", pytrace=False)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


@dataclass
class Prometheus:
    url: str
    session: aiohttp.ClientSession
    process: subprocess.Popen[bytes]
    log: Path

    async def api(self, path: str, **params: str) -> Any:
        """The `data` of an API answer; fails on an error answer."""
        async with self.session.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expression: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expression)
        result: list[dict[str, Any]] = data["result"]
        return result


@contextlib.asynccontextmanager
async def running_prometheus(folder: Path, config: str) -> AsyncIterator[Prometheus]:
    """Prometheus with `config` as its prometheus.yml (files it names relative to `folder`),
    ready to answer queries."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(config)
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(folder)},
            start_new_session=True,
        )
    session = aiohttp.ClientSession(trust_env=False)
    url = f"http://{LOOPBACK}:{port}"
    try:

        async def ready() -> bool | None:
            if process.poll() is not None:
                pytest.fail(
                    f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}",
                    pytrace=False,
                )
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/-/ready") as response:
                    return True if response.status == 200 else None
            return None

        await poll("prometheus ready", ready)
        yield Prometheus(url, session, process, log)
    finally:
        await session.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
