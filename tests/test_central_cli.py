"""`commwatch central` as a user runs it: a real process on a real nats-server with JetStream,
results published into the stream as agents publish them, its JSON lines and its API; stopped
and started again, and killed with SIGKILL in the middle of a burst: every result is stored
once, none twice. Without nats-py it says the one command that installs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
from nats.js.client import JetStreamContext

from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult, Severity
from tests.central_support import AGENT, BASE, jetstream, publish
from tests.conftest import REPO, StartCentral
from tests.peers.nats_peers import NatsServer, running_nats
from tests.peers.webhook_peers import WebhookReceiver


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with running_nats(tmp_path / "nats") as running:
        yield running


@pytest.fixture
async def js(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    async with jetstream(server.url) as context:
        yield context


def inventory_file(tmp_path: Path, checks: int = 1) -> Path:
    path = tmp_path / "inventory.yaml"
    lines = "".join(
        f"          - {{id: c{i}, kind: tcp, target: '127.0.0.1:9', retries: 2}}\n"
        for i in range(checks)
    )
    path.write_text(
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        "sites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n" + lines
    )
    return path


def results(inv: Inventory, *runs: tuple[int, Severity, float]) -> list[ProbeResult]:
    return [
        ProbeResult(check=inv.checks[check].ref, started_at=at, duration_ms=1.0, severity=severity)
        for check, severity, at in runs
    ]


async def lines_until(process: asyncio.subprocess.Process, count: int) -> list[dict]:
    """The next `count` JSON lines of its stdout, results and state changes."""
    assert process.stdout is not None
    lines = []
    async with asyncio.timeout(30):
        while len(lines) < count:
            line = await process.stdout.readline()
            assert line, "commwatch central ended early"
            lines.append(json.loads(line))
    return lines


async def stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


def stored_results(tmp_path: Path) -> list[tuple[str, float]]:
    with closing(sqlite3.connect(tmp_path / "history.sqlite3")) as db:
        return db.execute(
            "SELECT check_id, started_at FROM results ORDER BY check_id, started_at"
        ).fetchall()


async def test_central_takes_results_shows_them_and_resumes_after_a_restart(
    tmp_path: Path, server: NatsServer, js: JetStreamContext, start_central: StartCentral
) -> None:
    path = inventory_file(tmp_path)
    inv = load_inventory(path)
    process = await start_central(path, server.url, "--listen", "127.0.0.1:0")
    await publish(js, *results(inv, (0, Severity.OK, BASE), (0, Severity.CRIT, BASE + 1)))
    shown = await lines_until(process, 2 + 4)  # two results; check, link and site HARD, SOFT
    assert [line["started_at"] for line in shown if line["type"] == "result"] == [
        "2027-01-15T08:00:00.000+00:00",
        "2027-01-15T08:00:01.000+00:00",
    ]
    assert any(line.get("subject_id") == "north/wan/c0" for line in shown)
    stderr = await stop(process)
    assert "serving the engine on http://127.0.0.1:" in stderr
    await publish(js, *results(inv, (0, Severity.CRIT, BASE + 2)))  # while no central runs
    process = await start_central(path, server.url)
    shown = await lines_until(process, 1)
    # Only the new one: the durable consumer remembered what the first run acknowledged.
    assert shown[0]["type"] == "result" and shown[0]["started_at"].startswith("2027-01-15T08:00:02")
    await stop(process)
    assert stored_results(tmp_path) == [("north/wan/c0", BASE + i) for i in range(3)]


async def test_a_central_killed_in_a_burst_stores_every_result_once(
    tmp_path: Path, server: NatsServer, js: JetStreamContext, start_central: StartCentral
) -> None:
    path = inventory_file(tmp_path, checks=20)
    inv = load_inventory(path)
    process = await start_central(path, server.url)
    runs = [(check, Severity.OK, BASE + step) for step in range(25) for check in range(20)]
    publishing = asyncio.create_task(publish(js, *results(inv, *runs)))
    await lines_until(process, 100)  # in the middle of taking the burst
    process.kill()  # SIGKILL: stored results may not be acknowledged yet
    await process.wait()
    await publishing
    process = await start_central(path, server.url)
    async with asyncio.timeout(60):
        while len(stored_results(tmp_path)) < len(runs):
            await asyncio.sleep(0.2)
    await stop(process)
    expected = sorted((inv.checks[check].ref.check_id, at) for check, _, at in runs)
    assert stored_results(tmp_path) == expected  # every one, none twice


def test_without_nats_py_central_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        "class NoNats:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'nats' or name.startswith('nats.'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoNats())\n"
        "from monitor.cli.main import main\n"
        f"sys.exit(main(['central', {str(inventory_file(tmp_path))!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert done.stderr == "commwatch central needs nats-py: pip install 'commwatch[cluster]'\n"
    assert done.stdout == ""


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


async def test_agent_to_nats_to_central_notifies_an_outage_once(
    tmp_path: Path, server: NatsServer, receiver: WebhookReceiver, start_central: StartCentral
) -> None:
    """End to end: `commwatch agent` probes a link of the test, nats-server carries its
    results, `commwatch central` judges them and its webhook tells the receiver, once."""
    link = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = link.sockets[0].getsockname()[1]
    path = tmp_path / "inventory.yaml"
    path.write_text(f"""\
history: {{path: {tmp_path}/history.sqlite3}}
cluster: {{spool: {{path: {tmp_path}/spool.sqlite3}}}}
alerts:
  group_window: 200ms
  retry_base: 100ms
  notifiers:
    - {{id: noc, kind: webhook, url: "{receiver.base_url}/noc"}}
defaults: {{interval: 300ms, timeout: 250ms, retries: 2, retry_interval: 100ms}}
sites:
  - id: north
    links:
      - id: wan
        checks: [{{id: router, kind: tcp, target: "127.0.0.1:{port}"}}]
""")
    central = await start_central(path, server.url)
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "monitor.cli", "agent", str(path), "--nats", server.url, "--name", AGENT),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await lines_until(central, 4)  # results of the agent's probes reach the central
        link.close()
        await link.wait_closed()
        await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 2, timeout=30)
        await asyncio.sleep(2)  # more results of the same outage: nothing more to say
    finally:
        agent.send_signal(signal.SIGTERM)
        _, agent_err = await asyncio.wait_for(agent.communicate(), 20)
        await stop(central)
    assert agent.returncode == 0, agent_err.decode()
    messages = [
        {(e["subject_id"], e["after"]) for e in m.json["events"]}
        for m in sorted(receiver.accepted_on("/noc"), key=lambda m: m.at)
    ]
    # A site of one link is AT RISK from its first state (as in `commwatch run`); then the
    # outage, told once.
    assert messages == [
        {("north", "AT RISK")},
        {("north", "DOWN"), ("north/wan", "DOWN"), ("north/wan/router", "CRIT")},
    ]
    assert receiver.duplicates == []


async def test_a_central_waits_for_nats_and_a_signal_ends_the_wait(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = inventory_file(tmp_path)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "monitor.cli", "central", str(path)),
        *("--nats", f"nats://127.0.0.1:{port}"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while b"cannot reach NATS" not in await process.stderr.readline():
            pass
    process.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 3
    assert "stopped before NATS answered" in err.decode() and out == b""


@pytest.mark.parametrize("right", [True, False])
async def test_a_central_authenticates_and_never_shows_its_password(
    tmp_path: Path, right: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "central-secret-9b2f7e1d"
    secret = password if right else "wrong-" + password
    monkeypatch.setenv("CW_NATS_SECRET", secret)  # the central's, and the test's inventory's
    async with running_nats(tmp_path / "nats", user="noc", password=password) as server:
        path = inventory_file(tmp_path)
        path.write_text(
            "cluster: {nats: {credentials: {user: noc, password_env: CW_NATS_SECRET}}}\n"
            + path.read_text()
        )
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "monitor.cli", "central", str(path), "--nats", server.url),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COMMWATCH_LOG": "DEBUG"},
        )
        if right:
            async with jetstream(server.url, user="noc", password=password) as js:
                await publish(js, *results(load_inventory(path), (0, Severity.OK, BASE)))
                line = (await lines_until(process, 1 + 3))[0]
        else:
            assert process.stderr is not None
            async with asyncio.timeout(30):
                while b"refused this central's credentials" not in await process.stderr.readline():
                    pass
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert secret not in out.decode() + err.decode()
    if right:
        assert line["type"] == "result" and process.returncode == 0
