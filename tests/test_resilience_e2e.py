"""End to end: a real `commwatch run` with history and alerts, real links that fail and
recover, a real webhook receiver, and a restart of commwatch in the middle."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.peers.webhook_peers import WebhookReceiver


class Link:
    """A TCP service that can be taken down and brought back on the same port."""

    def __init__(self, host: str) -> None:
        self.host, self.port = host, 0
        self._server: asyncio.Server | None = None

    async def up(self) -> None:
        async def drop(_reader, writer) -> None:
            writer.close()

        self._server = await asyncio.start_server(drop, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def commwatch_run(inventory: Path, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        "run",
        *flags,
        str(inventory),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, stderr.decode()


def group_changes(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    return [
        (event["before"], event["after"])
        for request in sorted(receiver.accepted_on("/noc"), key=lambda r: r.at)
        for event in request.json["events"]
        if event["subject"] == "group"
    ]


@pytest.fixture
async def receiver():
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


async def test_failures_and_recoveries_are_notified_exactly_once_across_a_restart(
    tmp_path, receiver
):
    primary, backup = Link("127.0.0.1"), Link("127.0.0.2")
    await primary.up()
    await backup.up()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""\
history: {{path: {tmp_path}/history.sqlite3}}
alerts:
  group_window: 300ms
  retry_base: 100ms
  notifiers:
    - {{id: noc, kind: webhook, url: "{receiver.base_url}/noc", send_resolved: true}}
defaults: {{interval: 300ms, timeout: 250ms, retries: 2, retry_interval: 100ms}}
sites:
  - id: psap
    links:
      - id: fibre
        role: primary
        checks: [{{id: router, kind: tcp, target: "127.0.0.1:{primary.port}"}}]
      - id: lte
        role: backup
        checks: [{{id: router, kind: tcp, target: "127.0.0.2:{backup.port}"}}]
""")
    process = await commwatch_run(inventory)
    await asyncio.sleep(1.5)
    assert receiver.requests == []  # all is well: nothing to say

    await primary.down()
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 1, timeout=10)
    first = receiver.accepted_on("/noc")[0].json
    assert first["site_id"] == "psap" and not first["resolved"]
    assert group_changes(receiver) == [("RESILIENT", "AT RISK")]
    subjects = {(e["subject"], e["subject_id"], e["after"]) for e in first["events"]}
    assert ("link", "psap/fibre", "DOWN") in subjects  # one message for the site, not one each

    await stop(process)  # a restart in the middle...
    process = await commwatch_run(inventory)
    await asyncio.sleep(1.5)
    assert len(receiver.accepted_on("/noc")) == 1  # ...neither forgets nor repeats

    await backup.down()
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 2, timeout=10)
    assert group_changes(receiver)[-1] == ("AT RISK", "DOWN")

    await backup.up()
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 3, timeout=10)
    await primary.up()
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 4, timeout=10)
    await asyncio.sleep(1.0)
    await stop(process)

    assert group_changes(receiver) == [
        ("RESILIENT", "AT RISK"),
        ("AT RISK", "DOWN"),
        ("DOWN", "AT RISK"),
        ("AT RISK", "RESILIENT"),
    ]
    last = max(receiver.accepted_on("/noc"), key=lambda r: r.at)
    assert last.json["resolved"] is True
    assert receiver.duplicates == []
    # Stored: the first state too (not notified: a site that starts RESILIENT is no news).
    assert stored_group_changes(tmp_path) == [
        ("PENDING", "RESILIENT"),
        ("RESILIENT", "AT RISK"),
        ("AT RISK", "DOWN"),
        ("DOWN", "AT RISK"),
        ("AT RISK", "RESILIENT"),
    ]


def stored_group_changes(folder: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(folder / "history.sqlite3") as db:
        return db.execute(
            "SELECT before, after FROM events WHERE subject = 'group' ORDER BY at, id"
        ).fetchall()


def redundant_site(folder: Path, receiver: WebhookReceiver, primary: Link, backup: Link) -> Path:
    inventory = folder / "inventory.yaml"
    inventory.write_text(f"""\
history: {{path: {folder}/history.sqlite3}}
alerts:
  group_window: 300ms
  retry_base: 100ms
  notifiers:
    - {{id: noc, kind: webhook, url: "{receiver.base_url}/noc", send_resolved: true}}
defaults: {{interval: 300ms, timeout: 250ms, retries: 2, retry_interval: 100ms}}
sites:
  - id: psap
    links:
      - id: fibre
        role: primary
        checks: [{{id: router, kind: tcp, target: "{primary.host}:{primary.port}"}}]
      - id: lte
        role: backup
        checks: [{{id: router, kind: tcp, target: "{backup.host}:{backup.port}"}}]
""")
    return inventory


async def closed_link(host: str) -> Link:
    """A link that is down from the start: its port refuses."""
    link = Link(host)
    await link.up()
    await link.down()
    return link


async def test_a_site_at_risk_when_commwatch_starts_is_notified_once_across_restarts(
    tmp_path, receiver
):
    primary, backup = Link("127.0.0.1"), await closed_link("127.0.0.2")
    await primary.up()
    inventory = redundant_site(tmp_path, receiver, primary, backup)
    process = await commwatch_run(inventory)
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 1, timeout=10)
    assert group_changes(receiver) == [("PENDING", "AT RISK")]
    await asyncio.sleep(1.0)
    await stop(process)

    for _ in range(2):  # restarts: the store knows it was told
        process = await commwatch_run(inventory)
        await asyncio.sleep(1.5)
        await stop(process)
    assert len(receiver.accepted_on("/noc")) == 1

    process = await commwatch_run(inventory)
    await backup.up()
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 2, timeout=10)
    await stop(process)
    assert group_changes(receiver) == [("PENDING", "AT RISK"), ("AT RISK", "RESILIENT")]
    assert receiver.duplicates == []
    assert stored_group_changes(tmp_path) == [("PENDING", "AT RISK"), ("AT RISK", "RESILIENT")]


async def test_a_problem_stored_without_alerting_is_notified_when_alerting_starts(
    tmp_path, receiver
):
    """History knows the site is AT RISK, alerting was never told (a run with --no-alerts, or
    a crash between the two): the next run evaluates it afresh and notifies it."""
    primary, backup = Link("127.0.0.1"), await closed_link("127.0.0.2")
    await primary.up()
    inventory = redundant_site(tmp_path, receiver, primary, backup)
    process = await commwatch_run(inventory, "--no-alerts")
    await asyncio.sleep(1.5)
    await stop(process)
    assert stored_group_changes(tmp_path) == [("PENDING", "AT RISK")]
    assert receiver.requests == []

    process = await commwatch_run(inventory)
    await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 1, timeout=10)
    await asyncio.sleep(1.0)
    await stop(process)
    assert group_changes(receiver) == [("PENDING", "AT RISK")]
    assert receiver.duplicates == []


async def test_sigkill_loses_nothing_reported_as_stored(tmp_path):
    """Every line `commwatch run` prints is already durably stored, so after SIGKILL the store
    is intact and holds every result that was printed."""
    link = Link("127.0.0.1")
    await link.up()
    inventory = tmp_path / "inventory.yaml"
    checks = "\n".join(
        f'          - {{id: c{i}, kind: tcp, target: "127.0.0.1:{link.port}"}}' for i in range(20)
    )
    inventory.write_text(
        f"history: {{path: {tmp_path}/history.sqlite3}}\n"
        "defaults: {interval: 100ms, timeout: 90ms}\n"
        f"sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n{checks}\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        "run",
        str(inventory),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    printed = []
    while len(printed) < 300:
        record = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
        if record["type"] == "result":
            printed.append((record["check_id"], record["started_at"]))
    process.kill()
    await process.wait()
    await link.down()
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = db.execute("SELECT check_id, started_at FROM results").fetchall()
    assert len(stored) >= len(printed)
    stored_keys = {(check_id, started) for check_id, started in stored}
    from monitor.output import iso_time

    assert all((c, at) in {(cid, iso_time(s)) for cid, s in stored_keys} for c, at in printed)
