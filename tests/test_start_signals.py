"""A long-running command stopped by SIGTERM the moment it says it started (as a supervisor
may, or a test): a real `commwatch agent`, `central` and `run` process, reading its stderr through
a pipe."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from tests.conftest import REPO
from tests.peers.tcp_peers import closed_port
from tests.test_cluster_agent import inventory_text, tcp_peers

NATS_DOWN = ("--nats", "nats://127.0.0.1:{closed}", "--name", "north-1")


@pytest.mark.parametrize(
    ("command", "started", "code", "stopped"),
    [
        (("agent", *NATS_DOWN), "checks, results to", 0, "stopped; 0 results published"),
        (("central", *NATS_DOWN), "results from", 3, "stopped before NATS answered"),
        (("run", "--listen", "127.0.0.1:0", "--no-alerts"), "serving the engine on", 0, ""),
        (("run", "--workers", "2", "--no-alerts"), "commwatch run: ", 0, ""),
    ],
    ids=["agent", "central", "run-listen", "run-workers"],
)
async def test_a_sigterm_as_soon_as_it_said_it_started_stops_it_cleanly(
    tmp_path, command, started, code, stopped
):
    """A supervisor may stop it the moment it says it started: the signal stops it as
    SIGTERM always does (its last line said, its spool closed), it is never killed by it.
    Read through a pipe, the signal came within the few milliseconds between the start line
    and the handlers every time (exit -15), before the handlers came first."""
    closed = closed_port()
    async with tcp_peers(2) as ports:
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text(ports))
        verb, *flags = (part.format(closed=closed) for part in command)
        for _ in range(5):
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "monitor.cli", verb, str(path), *flags),
                cwd=REPO,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            assert process.stderr is not None
            async with asyncio.timeout(60):
                while started not in (line := (await process.stderr.readline()).decode()):
                    assert line, "it ended before its start line"
                process.send_signal(signal.SIGTERM)
                said = (await process.stderr.read()).decode()
                assert await process.wait() == code, said
            assert stopped in said
