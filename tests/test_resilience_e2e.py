"""End to end: a real `commwatch run` with history and alerts, real links that fail and
recover, a real webhook receiver, and a restart of commwatch in the middle."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest

from monitor.config.loader import load_inventory
from monitor.engine.pipeline import Monitor
from tests.conftest import REPO
from tests.peers.webhook_peers import WebhookReceiver

RESULT_SCHEMA = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())


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


async def commwatch_run(
    inventory: Path, *flags: str, stdout: int = asyncio.subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        "run",
        *flags,
        str(inventory),
        cwd=REPO,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )


async def running(inventory: Path, *flags: str) -> asyncio.subprocess.Process:
    """`commwatch run` once it has judged every check of `redundant_site` (a result line of
    each on its stdout): it is past its start, SIGTERM handled, and a notification it would
    send about its first judgement is due."""
    process = await commwatch_run(inventory, *flags, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    seen: set[str] = set()
    while len(seen) < 2:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "commwatch run ended before it judged every check"
        record = json.loads(line)
        if record.get("type") == "result":
            seen.add(record["check_id"])
    return process


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


async def test_failures_and_recoveries_are_notified_exactly_once_across_a_restart(
    tmp_path, receiver
):
    primary, backup = Link("127.0.0.1"), Link("127.0.0.2")
    await primary.up()
    await backup.up()
    inventory = redundant_site(tmp_path, receiver, primary, backup)
    process = await running(inventory)
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
    process = await running(inventory)
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
    return [(before, after) for _, before, after in stored_changes(folder, "group")]


def stored_changes(folder: Path, subject: str) -> list[tuple[str, str, str]]:
    """(subject id, before, after) of the subject kind's stored HARD events (none before
    commwatch has created the store)."""
    path = folder / "history.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        try:
            return db.execute(
                "SELECT subject_id, before, after FROM events"
                " WHERE subject = ? AND kind = 'hard' ORDER BY at, id",
                (subject,),
            ).fetchall()
        except sqlite3.OperationalError:  # the tables are still being created
            return []


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
        process = await running(inventory)
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


async def test_without_history_a_restart_does_not_notify_the_same_state_again(tmp_path, receiver):
    """No history to restore from: every start evaluates afresh, and alerting (its outbox is
    kept all the same) knows what it told."""
    primary, backup = Link("127.0.0.1"), await closed_link("127.0.0.2")
    await primary.up()
    inventory = redundant_site(tmp_path, receiver, primary, backup)
    for _ in range(2):
        process = await commwatch_run(inventory, "--no-history")
        await receiver.wait_for(lambda r: len(r.accepted_on("/noc")) == 1, timeout=10)
        await asyncio.sleep(1.5)
        await stop(process)
    assert group_changes(receiver) == [("PENDING", "AT RISK")]
    assert receiver.duplicates == []


async def test_a_problem_stored_without_alerting_is_notified_when_alerting_starts(
    tmp_path, receiver
):
    """History knows the site is AT RISK, alerting was never told (a run with --no-alerts, or
    a crash between the two): the next run evaluates it afresh and notifies it."""
    primary, backup = Link("127.0.0.1"), await closed_link("127.0.0.2")
    await primary.up()
    inventory = redundant_site(tmp_path, receiver, primary, backup)
    process = await running(inventory, "--no-alerts")
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
    from monitor.output.records import iso_time

    assert all((c, at) in {(cid, iso_time(s)) for cid, s in stored_keys} for c, at in printed)


# --- a selection of checks ---------------------------------------------------------------------


def mixed_site(folder: Path, fibre: Link, lte: Link, fibre_decided_by: str = "") -> Path:
    """psap: fibre (a tcp router and an http API behind it), lte (a tcp router); radio: http
    only. The http targets refuse: a selection of tcp checks never probes them."""
    api_port = 9  # discard: nothing listens on loopback there
    decided = f"availability_from: [{fibre_decided_by}]" if fibre_decided_by else ""
    inventory = folder / "inventory.yaml"
    inventory.write_text(f"""\
history: {{path: {folder}/history.sqlite3}}
defaults: {{interval: 300ms, timeout: 250ms, retries: 2, retry_interval: 100ms}}
sites:
  - id: psap
    links:
      - id: fibre
        role: primary
        {decided}
        checks:
          - {{id: router, kind: tcp, target: "{fibre.host}:{fibre.port}"}}
          - {{id: api, kind: http, target: "http://127.0.0.1:{api_port}/health"}}
      - id: lte
        role: backup
        checks: [{{id: router, kind: tcp, target: "{lte.host}:{lte.port}"}}]
  - id: radio
    links:
      - id: console
        checks: [{{id: api, kind: http, target: "http://127.0.0.1:{api_port}/console"}}]
""")
    return inventory


async def sweep(inventory: Path, *flags: str) -> tuple[str, str]:
    process = await commwatch_run(inventory, "--once", *flags, stdout=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    return stdout.decode(), stderr.decode()


@pytest.fixture
async def links():
    fibre, lte = Link("127.0.0.1"), Link("127.0.0.2")
    await fibre.up()
    await lte.up()
    yield fibre, lte
    await fibre.down()
    await lte.down()


async def test_a_sweep_of_a_selection_never_judges_redundancy_it_cannot_see(tmp_path, links):
    inventory = mixed_site(tmp_path, *links)
    stdout, _ = await sweep(inventory, "--kind", "tcp")
    document = json.loads(stdout)
    jsonschema.validate(document, RESULT_SCHEMA)
    # radio has no tcp check: not part of what was asked. psap's fibre is decided by its API
    # too, which was not selected: psap is not evaluated, and says why (no "0 of 2 links up").
    assert document["groups"] == [
        {
            "group_id": "psap",
            "name": "psap",
            "site_id": "psap",
            "status": None,
            "evaluated": False,
            "not_evaluated": ["psap/fibre"],
            "up": None,
            "unknown": None,
            "links": 2,
            "min_up": 1,
            "converging": [],
        }
    ]
    table, _ = await sweep(inventory, "--kind", "tcp", "--format", "table")
    assert table.splitlines()[-2:] == [
        "REDUNDANCY",
        "  NOT EVALUATED psap                     checks deciding psap/fibre are not selected",
    ]


async def test_a_selection_that_holds_every_deciding_check_is_judged(tmp_path, links):
    inventory = mixed_site(tmp_path, *links, fibre_decided_by="router")
    document = json.loads((await sweep(inventory, "--kind", "tcp"))[0])
    (psap,) = document["groups"]
    assert (psap["status"], psap["evaluated"], psap["up"]) == ("RESILIENT", True, 2)
    table, _ = await sweep(inventory, "--kind", "tcp", "--format", "table")
    assert " ".join(table.splitlines()[-1].split()) == "RESILIENT psap 2 of 2 links up (needs 1)"


async def test_a_continuous_run_of_a_selection_never_uses_states_it_does_not_refresh(
    tmp_path, links
):
    """A full run stored the fibre's API as CRIT (it refuses). A run of the tcp checks alone
    must not judge the fibre, nor psap, from that stored, no longer refreshed state."""
    fibre, lte = links
    inventory = mixed_site(tmp_path, fibre, lte)
    process = await commwatch_run(inventory, "--no-alerts")
    api_down = ("psap/fibre/api", "PENDING", "CRIT")
    deadline = asyncio.get_running_loop().time() + 10
    while api_down not in stored_changes(tmp_path, "check"):
        assert asyncio.get_running_loop().time() < deadline, stored_changes(tmp_path, "check")
        await asyncio.sleep(0.1)
    await stop(process)

    process = await commwatch_run(
        inventory, "--no-alerts", "--kind", "tcp", stdout=asyncio.subprocess.PIPE
    )
    records: list[dict] = []
    lte_router = "psap/lte/router"

    async def read_until(what: str, done: Callable[[dict], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while not any(done(r) for r in records):
            assert asyncio.get_running_loop().time() < deadline, f"never saw {what}"
            records.append(json.loads(await asyncio.wait_for(process.stdout.readline(), 10)))

    await read_until(
        "lte up", lambda r: (r.get("check_id"), r.get("severity")) == (lte_router, "OK")
    )
    await lte.down()
    await read_until("lte down", lambda r: r["type"] == "event" and r["subject_id"] == "psap/lte")
    for _ in range(6):  # a little longer: whatever the change would set off has come out
        records.append(json.loads(await asyncio.wait_for(process.stdout.readline(), 10)))
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, stderr.decode()
    events = [(r["subject"], r["subject_id"]) for r in records if r["type"] == "event"]
    assert ("link", "psap/lte") in events
    assert not [e for e in events if e[0] == "group" or e[1] == "psap/fibre"]
    assert stderr.decode().splitlines() == [
        "commwatch: redundancy not evaluated for psap: the selection leaves out checks that"
        " decide some of their links"
    ]


async def test_a_monitor_whose_alerting_cannot_start_leaves_nothing_running(tmp_path):
    """Alerting fails to start (its tables in the shared file are damaged): the run fails with
    the error, and what it had started is stopped, not left running behind the caller's back:
    no writer thread heartbeating a run that watches nothing, no outbox thread, the run ended."""
    database = tmp_path / "history.sqlite3"
    with closing(sqlite3.connect(database)) as db:
        # The outbox's own table, as some other program left it: its index cannot be made.
        db.execute("CREATE TABLE alert_inbox (event_id TEXT PRIMARY KEY)")
    inventory_path = tmp_path / "inventory.yaml"
    inventory_path.write_text(f"""\
history: {{path: {database}}}
alerts:
  notifiers: [{{id: noc, kind: webhook, url: "http://127.0.0.1:9/never"}}]
sites:
  - id: s
    links:
      - id: l
        checks: [{{id: c, kind: tcp, target: "127.0.0.1:9"}}]
""")
    inventory = load_inventory(inventory_path)
    before = set(threading.enumerate())
    monitor = Monitor(
        inventory, inventory.checks, on_result=lambda _: None, on_event=lambda _: None
    )
    with pytest.raises(sqlite3.OperationalError, match="flushed_at"):
        await asyncio.wait_for(monitor.run(), 30)
    # Threads of commwatch's own (the loop's default executor is the test's).
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert [name for name in left if name.startswith("commwatch")] == []
    with closing(sqlite3.connect(database)) as db:
        runs = db.execute("SELECT started_at, ended_at FROM runs").fetchall()
    assert len(runs) == 1 and runs[0][1] is not None
