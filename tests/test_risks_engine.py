"""Shared risks in the state engine: a group's events name the shared risk its state rests on,
a restart under an inventory whose risks changed judges the group afresh, and a real
`commwatch run` over real TCP links tells it in its events, its alerts and its API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jsonschema
import pytest
import referencing

from monitor.api.readers import inventory_from_document
from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import Event, EventKind, GroupStatus, Subject
from monitor.core.model import ProbeResult, Severity
from monitor.engine.restore import restore
from monitor.engine.state import EngineState
from monitor.engine.step import step
from monitor.engine.views import group_summaries, topology_of
from tests.conftest import REPO
from tests.peers.webhook_peers import WebhookReceiver
from tests.test_resilience_e2e import Link

SCHEMAS = REPO / "monitor/output/schema"
STATE_SCHEMA = json.loads((SCHEMAS / "state.schema.json").read_text())
RESULT_SCHEMA = json.loads((SCHEMAS / "result.schema.json").read_text())
REGISTRY = referencing.Registry().with_resources(
    [(s["$id"], referencing.Resource.from_contents(s)) for s in (STATE_SCHEMA, RESULT_SCHEMA)]
)

NORTH_AND_SOUTH = """\
sites:
  - id: north
    links:
      - id: fibre
        risks: [carrier:att, conduit:main-st]
        checks: [{{id: router, kind: tcp, target: "{fibre}"}}]
      - id: lte
        role: backup
        risks: [carrier:att]
        checks: [{{id: router, kind: tcp, target: "{lte}"}}]
  - id: south
    links:
      - id: a
        risks: [carrier:att]
        checks: [{{id: router, kind: tcp, target: "{a}"}}]
      - id: b
        risks: [carrier:att]
        checks: [{{id: router, kind: tcp, target: "{b}"}}]
      - id: c
        risks: [carrier:vz]
        checks: [{{id: router, kind: tcp, target: "{c}"}}]
"""
LINKS = ("fibre", "lte", "a", "b", "c")
PLACES = {name: f"127.0.0.{i}:9" for i, name in enumerate(LINKS, 1)}


def write(folder: Path, text: str) -> Inventory:
    path = folder / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return load_inventory(path)


def result(inventory: Inventory, link: str, severity: Severity, at: float) -> ProbeResult:
    check = next(c for c in inventory.checks if c.ref.link_id == link)
    return ProbeResult(check.ref, at, 1.0, severity)


def group_events(events: list[Event]) -> list[tuple[str, str, str, str]]:
    return [
        (e.subject_id, str(e.before), str(e.after), e.cause)
        for e in events
        if e.subject is Subject.GROUP
    ]


def sweep(inventory: Inventory, state: EngineState, severities: dict[str, Severity], at: float):
    topology = topology_of(inventory, confirm_at_once=True)
    events: list[Event] = []
    for offset, (link, severity) in enumerate(severities.items()):
        state, new = step(topology, state, result(inventory, link, severity, at + offset))
        events += new
    return state, events


def test_a_groups_events_name_the_shared_risk_its_state_rests_on(tmp_path):
    inventory = write(tmp_path, NORTH_AND_SOUTH.format(**PLACES))
    all_up = dict.fromkeys(LINKS, Severity.OK)
    state, events = sweep(inventory, EngineState(), all_up, 10)
    assert group_events(events) == [
        (
            "north",
            "PENDING",
            "AT RISK",
            "link north/lte UP; 2 of 2 links up (needs 1), but fibre and lte both ride "
            "carrier:att (losing it leaves 0)",
        ),
        # Losing carrier:att leaves c: no single risk takes the south below min_up.
        ("south", "PENDING", "RESILIENT", "link south/c UP; 3 of 3 links up (needs 1)"),
    ]
    # The diverse link goes: two up of one needed would be DEGRADED, but both ride carrier:att.
    state, events = sweep(inventory, state, {"c": Severity.CRIT}, 20)
    assert group_events(events) == [
        (
            "south",
            "RESILIENT",
            "AT RISK",
            "link south/c DOWN; 2 of 3 links up (needs 1), but a and b both ride carrier:att "
            "(losing it leaves 0)",
        )
    ]
    summaries = {g.group_id: g for g in group_summaries(inventory, topology_of(inventory), state)}
    assert summaries["south"].describe() == (
        "2 of 3 links up (needs 1), but a and b both ride carrier:att (losing it leaves 0)"
    )
    assert (
        summaries["south"].risks.diverse_up == 1
        and summaries["south"].risks.exposed_by_design == ()
    )
    assert [e.risks for e in summaries["north"].risks.exposed_by_design] == [("carrier:att",)]


def test_a_restart_under_new_risks_judges_the_group_afresh_and_says_so(tmp_path):
    """Risks declared between two runs: the restored RESILIENT is not what the restored links
    give now; the first result of the new run tells the change instead of keeping it unsaid."""
    before = write(tmp_path, NORTH_AND_SOUTH.replace("risks:", "tags:").format(**PLACES))
    all_up = dict.fromkeys(LINKS, Severity.OK)
    _, first_run = sweep(before, EngineState(), all_up, 10)
    assert ("north", "PENDING", "RESILIENT") in [e[:3] for e in group_events(first_run)]
    last = [e for e in first_run if e.kind is EventKind.HARD]

    after = write(tmp_path, NORTH_AND_SOUTH.format(**PLACES))
    restored = restore(topology_of(after), last)
    assert "north" not in restored.groups  # evaluated afresh
    assert restored.groups["south"] is GroupStatus.RESILIENT  # what its links give: kept
    _, events = sweep(after, restored, {"fibre": Severity.OK}, 100)
    assert group_events(events) == [
        (
            "north",
            "PENDING",
            "AT RISK",
            "2 of 2 links up (needs 1), but fibre and lte both ride carrier:att (losing it "
            "leaves 0)",
        )
    ]
    # The same inventory again: restored as it was, nothing to say.
    again = restore(topology_of(after), [e for e in events if e.kind is EventKind.HARD] + last)
    assert again.groups["north"] is GroupStatus.AT_RISK
    _, quiet = sweep(after, again, {"fibre": Severity.OK}, 200)
    assert group_events(quiet) == []


def test_a_restart_under_a_new_min_up_judges_the_group_afresh(tmp_path):
    """The same for a changed min_up, risks or none: RESILIENT with one link needed is AT RISK
    with two needed, and the restored state must not hide it until a link changes."""
    two = "sites:\n  - id: s\n    min_up: {n}\n    links:\n" + "".join(
        f"      - {{id: {name}, checks: [{{id: c, kind: tcp, target: '127.0.0.{i}:9'}}]}}\n"
        for i, name in enumerate(("a", "b"), 1)
    )
    before = write(tmp_path, two.replace("{n}", "1"))
    _, first_run = sweep(before, EngineState(), {"a": Severity.OK, "b": Severity.OK}, 10)
    assert [e[2] for e in group_events(first_run)] == ["RESILIENT"]
    after = write(tmp_path, two.replace("{n}", "2"))
    restored = restore(topology_of(after), [e for e in first_run if e.kind is EventKind.HARD])
    _, events = sweep(after, restored, {"a": Severity.OK}, 100)
    assert group_events(events) == [("s", "PENDING", "AT RISK", "2 of 2 links up (needs 2)")]


# --- a real run ------------------------------------------------------------------------------


VIEWER = "viewer-token-of-the-risks-test"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


def alerted(receiver: WebhookReceiver) -> list[tuple[str, str, str, str]]:
    """(subject id, before, after, cause) of every group change the webhook was told of."""
    return [
        (event["subject_id"], event["before"], event["after"], event["cause"])
        for request in sorted(receiver.accepted_on("/noc"), key=lambda r: r.at)
        for event in request.json["events"]
        if event["subject"] == "group"
    ]


async def state_document(session: aiohttp.ClientSession, url: str) -> dict:
    headers = {"Authorization": f"Bearer {VIEWER}"}
    async with session.get(f"{url}/api/v1/state", headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def groups_once(session: aiohttp.ClientSession, url: str, judged) -> dict[str, dict]:
    """The state document's groups by id, once `judged(groups)` holds (within 30 s)."""
    async with asyncio.timeout(30):
        while True:
            document = await state_document(session, url)
            groups = {g["group_id"]: g for g in document["groups"]}
            if judged(groups):
                return groups
            await asyncio.sleep(0.1)


async def served_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    lines = []
    async with asyncio.timeout(30):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, "".join(lines)
            lines.append(line)
            if found := re.search(
                r"serving the engine on (http://127\.0\.0\.1:\d+)$", line.strip()
            ):
                return found.group(1)


async def test_a_real_run_tells_the_shared_risk_in_its_alerts_events_and_state(tmp_path, receiver):
    links = {name: Link(f"127.0.0.{i}") for i, name in enumerate(LINKS, 1)}
    for link in links.values():
        await link.up()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"""\
history: {{path: {tmp_path}/history.sqlite3}}
alerts:
  group_window: 300ms
  retry_base: 100ms
  notifiers:
    - {{id: noc, kind: webhook, url: "{receiver.base_url}/noc", send_resolved: true}}
defaults: {{interval: 1s, timeout: 1s, retries: 2, retry_interval: 100ms}}
api:
  tokens:
    - {{role: viewer, token_env: CW_RISKS_VIEWER}}
"""
        + NORTH_AND_SOUTH.format(
            **{name: f"{link.host}:{link.port}" for name, link in links.items()}
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        "run",
        "--listen",
        "127.0.0.1:0",
        str(inventory),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "CW_RISKS_VIEWER": VIEWER},
    )
    try:
        url = await served_url(process)
        # Both of the north's links up: it starts AT RISK, and that is news.
        await receiver.wait_for(lambda r: alerted(r), timeout=30)
        # Whichever link's first result came last is the one the cause names.
        [(group, before, after, cause)] = alerted(receiver)
        assert (group, before, after) == ("north", "PENDING", "AT RISK")
        assert re.fullmatch(
            r"link north/(fibre|lte) UP; 2 of 2 links up \(needs 1\), but fibre and lte both "
            r"ride carrier:att \(losing it leaves 0\)",
            cause,
        ), cause
        async with aiohttp.ClientSession() as session:
            groups = await groups_once(session, url, lambda g: g["south"]["status"] is not None)
            document = await state_document(session, url)
            jsonschema.Draft202012Validator(STATE_SCHEMA, registry=REGISTRY).validate(document)
            assert groups["north"]["status"] == "AT RISK"
            assert groups["north"]["risk_diverse_up"] == 1
            exposure = {"risks": ["carrier:att"], "links": ["north/fibre", "north/lte"], "left": 0}
            assert groups["north"]["exposed"] == groups["north"]["exposed_by_design"] == [exposure]
            assert groups["south"]["status"] == "RESILIENT" and groups["south"]["exposed"] == []
            site = document["inventory"]["sites"][0]
            assert [link["risks"] for link in site["links"]] == [
                ["carrier:att", "conduit:main-st"],
                ["carrier:att"],
            ]
            # A viewer (tui --connect, web) reads them back: its rows judge with the same risks.
            viewed = inventory_from_document(document, url)
            assert {link.full_id: link.risks for link in viewed.links} == {
                "north/fibre": ("carrier:att", "conduit:main-st"),
                "north/lte": ("carrier:att",),
                "south/a": ("carrier:att",),
                "south/b": ("carrier:att",),
                "south/c": ("carrier:vz",),
            }

            # The south's diverse link goes: two up of one needed, but both ride carrier:att.
            await links["c"].down()
            await receiver.wait_for(lambda r: len(alerted(r)) == 2, timeout=30)
            assert alerted(receiver)[-1] == (
                "south",
                "RESILIENT",
                "AT RISK",
                "link south/c DOWN; 2 of 3 links up (needs 1), but a and b both ride "
                "carrier:att (losing it leaves 0)",
            )
            south = await groups_once(session, url, lambda g: g["south"]["status"] == "AT RISK")
            assert south["south"]["exposed"] == [
                {"risks": ["carrier:att"], "links": ["south/a", "south/b"], "left": 0}
            ]

            # One of the north's links goes: still AT RISK, now by count alone.
            await links["fibre"].down()
            await receiver.wait_for(
                lambda r: any(
                    e["subject_id"] == "north/fibre" and e["after"] == "DOWN"
                    for request in r.accepted_on("/noc")
                    for e in request.json["events"]
                ),
                timeout=30,
            )
            north = await groups_once(session, url, lambda g: g["north"]["up"] == 1)
            assert north["north"]["status"] == "AT RISK" and north["north"]["risk_diverse_up"] == 1
            assert north["north"]["exposed"] == []
            assert north["north"]["exposed_by_design"] == [exposure]
            await links["lte"].down()
            await receiver.wait_for(lambda r: len(alerted(r)) == 3, timeout=30)
            assert alerted(receiver)[-1] == (
                "north",
                "AT RISK",
                "DOWN",
                "link north/lte DOWN; 0 of 2 links up (needs 1)",
            )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    # The run's own stream carries the same causes as the alerts.
    causes = [
        record["cause"]
        for record in map(json.loads, stdout.decode().splitlines())
        if record["type"] == "event" and record["subject"] == "group"
    ]
    told = [cause for *_, cause in alerted(receiver)]
    assert [cause for cause in causes if "ride" in cause] == [c for c in told if "ride" in c]
    assert receiver.duplicates == []
