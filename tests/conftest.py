"""Shared fixtures. Peers live in tests/peers; every one of them listens on loopback only."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from probes.base import SharedResources

REPO = Path(__file__).resolve().parent.parent
HYPOTHESIS_HOME = "HYPOTHESIS_STORAGE_DIRECTORY"


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis keeps caches (constants it reads from the source, at collection) in
    `.hypothesis` of the working folder unless told otherwise: a folder of the run's instead."""
    os.environ.setdefault(HYPOTHESIS_HOME, tempfile.mkdtemp(prefix="commwatch-hypothesis-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.get(HYPOTHESIS_HOME, "")
    if Path(home).name.startswith("commwatch-hypothesis-"):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def shared() -> AsyncIterator[SharedResources]:
    resources = SharedResources()
    yield resources
    await resources.aclose()


# start_central(INVENTORY, NATS_URL, *FLAGS, log=LEVEL): `commwatch central` started.
StartCentral = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def start_central() -> AsyncIterator[StartCentral]:
    """Starts `commwatch central INVENTORY --nats URL FLAGS...` (its output piped; `log` sets
    COMMWATCH_LOG); whatever a test leaves running (a failed assertion before its stop) is
    killed at its end, so that no central outlives its test."""
    started: list[asyncio.subprocess.Process] = []

    async def start(
        inventory: Path, url: str, *flags: str, log: str | None = None
    ) -> asyncio.subprocess.Process:
        env = {**os.environ, "NO_COLOR": "1"} | ({"COMMWATCH_LOG": log} if log else {})
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "monitor.cli", "central", str(inventory), "--nats", url),
            *flags,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture(autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """The history store defaults to $XDG_STATE_HOME: never the real one from a test (commands
    run as subprocesses inherit this too)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
