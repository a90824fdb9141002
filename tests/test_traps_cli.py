"""Traps through the faces: a real `commwatch run` (JSON lines and the table, history on)
taking net-snmp's snmptrap from snmpd's address, and the dashboard driving a real engine,
whose event log shows the trap and whose summary line counts what was taken and refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest

from monitor.config.loader import load_inventory
from tests.conftest import REPO
from tests.peers.snmp_peers import COMMUNITY, SnmpAgent, free_udp_port, running_agent
from tests.traps_support import (
    LINK_DOWN,
    SECRETS,
    link,
    notification,
    one_device,
    send,
    snmp_check,
    v2c,
)
from tests.tui_support import log_lines, until
from tui.app import CommwatchApp
from tui.widgets.summary_bar import SummaryBar

RESULT_SCHEMA = json.loads((REPO / "monitor/output/schema/result.schema.json").read_text())


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SECRETS, "CW_COMMUNITY": COMMUNITY}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgent]:
    with running_agent(tmp_path_factory.mktemp("snmpd")) as running_snmpd:
        yield running_snmpd


def inventory_file(folder: Path, agent: SnmpAgent, port: int) -> Path:
    text = f"history: {{path: {folder / 'history.sqlite3'}}}\n" + one_device(
        snmp_check(agent.target, "lo")
    ).replace("{port}", str(port))
    path = folder / "inventory.yaml"
    path.write_text(text)
    return path


async def lines_until(stream: asyncio.StreamReader, done, timeout: float = 30.0) -> list[str]:
    """Lines of `stream` until `done(lines)` holds."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while not done(lines):
            line = await stream.readline()
            assert line, f"the run ended; it said: {lines}"
            lines.append(line.decode())
    return lines


async def commwatch_run(inventory: Path, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        "run",
        *flags,
        str(inventory),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )


async def stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


async def test_run_streams_the_trap_and_its_result_as_json_and_stores_them(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    port = free_udp_port()
    process = await commwatch_run(inventory_file(tmp_path, agent, port))
    assert process.stdout is not None
    try:
        first = await lines_until(process.stdout, lambda lines: '"type":"result"' in "".join(lines))
        index = json.loads(next(line for line in first if '"result"' in line))["observations"][
            "if.lo.index"
        ]
        status, said = await send("snmptrap", *v2c(port), *link(LINK_DOWN, index, oper=2))
        assert status == 0, said
        later = await lines_until(
            process.stdout, lambda lines: sum('"type":"result"' in line for line in lines) >= 2
        )
    finally:
        stderr = await stop(process)

    records = [json.loads(line) for line in first + later]
    for record in records:
        jsonschema.validate(record, RESULT_SCHEMA)
    trap = next(r for r in records if r["type"] == "event" and r["kind"] == "trap")
    assert trap["subject"] == "check" and trap["subject_id"] == "psap/fibre/switch"
    assert trap["cause"] == f"linkDown ifIndex {index} from 127.0.0.1 (v2c trap)"
    assert (trap["before"], trap["after"], trap["notifiable"]) == ("OK", "OK", False)
    result = next(r for r in records if r["type"] == "result" and "trap.kind" in r["observations"])
    assert result["severity"] == "CRIT"
    assert result["observations"]["trap.kind"] == "linkDown"
    assert f"commwatch: listening for SNMP traps and informs on 127.0.0.1:{port}" in stderr
    assert COMMUNITY not in stderr and SECRETS["CW_TRAP_COMMUNITY"] not in stderr
    with closing(sqlite3.connect(tmp_path / "history.sqlite3")) as db:
        stored = db.execute("SELECT subject_id, kind, cause FROM events WHERE kind = 'trap'")
        assert stored.fetchall() == [("psap/fibre/switch", "trap", trap["cause"])]


async def test_the_table_says_trap_not_a_change_of_state(tmp_path: Path, agent: SnmpAgent):
    port = free_udp_port()
    process = await commwatch_run(inventory_file(tmp_path, agent, port), "--format", "table")
    assert process.stdout is not None
    try:
        await lines_until(process.stdout, lambda lines: any(" OK " in line for line in lines))
        hostile = notification("1.3.6.1.4.1.8072.2.3.0.1", ("1.3.6.1.4.1.8072.9", "s", "a\x1b]0;x"))
        assert (await send("snmptrap", *v2c(port), *hostile))[0] == 0
        lines = await lines_until(process.stdout, lambda lines: any("trap" in ln for ln in lines))
    finally:
        await stop(process)
    [line] = [ln for ln in lines if "trap" in ln]
    assert line.split("  ", 1)[1] == (
        "check psap/fibre/switch: trap  trap 1.3.6.1.4.1.8072.2.3.0.1:"
        " 1.3.6.1.4.1.8072.9=61:1b:5d:30:3b:78 from 127.0.0.1 (v2c trap)\n"
    )
    assert "\x1b" not in "".join(lines)


async def test_the_dashboard_logs_the_trap_and_counts_taken_and_refused(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    port = free_udp_port()
    inventory = load_inventory(inventory_file(tmp_path, agent, port))
    app = CommwatchApp(inventory, history=False, alerts=False, traps=inventory.traps)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: any("switch" in line for line in log_lines(app)), 30)
        first = app.board.states["psap/fibre/switch"].result
        assert first is not None
        index = first.observations["if.lo.index"]
        assert isinstance(index, int)
        assert (await send("snmptrap", *v2c(port), *link(LINK_DOWN, index, oper=2)))[0] == 0
        assert (
            await send("snmptrap", *v2c(port, "cw-not-the-community"), *notification(LINK_DOWN))
        )[0] == 0
        summary = app.dashboard.query_one(SummaryBar)

        def counted() -> bool:
            return "traps 1, 1 refused" in str(summary.render())

        await until(pilot, counted, 30)
        await until(pilot, lambda: any("✉ trap" in line for line in log_lines(app)), 30)
        [line] = [line for line in log_lines(app) if "✉ trap" in line]
        await pilot.press("q")
    assert f"psap/fibre/switch  linkDown ifIndex {index} from 127.0.0.1 (v2c trap)" in line


async def test_with_probe_processes_the_re_poll_reaches_the_worker_that_runs_the_check(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    """`run --workers 2`: the checks run in two processes, the trap is taken in the engine's,
    and its re-poll is ordered to the worker that owns the check."""
    port = free_udp_port()
    process = await commwatch_run(inventory_file(tmp_path, agent, port), "--workers", "2")
    assert process.stdout is not None
    try:
        first = await lines_until(process.stdout, lambda lines: '"type":"result"' in "".join(lines))
        index = json.loads(next(line for line in first if '"result"' in line))["observations"][
            "if.lo.index"
        ]
        assert (await send("snmptrap", *v2c(port), *link(LINK_DOWN, index, oper=2)))[0] == 0
        later = await lines_until(
            process.stdout, lambda lines: sum('"type":"result"' in line for line in lines) >= 2
        )
    finally:
        stderr = await stop(process)
    results = [json.loads(line) for line in first + later if '"type":"result"' in line]
    assert [("trap.kind" in r["observations"], r["severity"]) for r in results] == [
        (False, "OK"),
        (True, "CRIT"),
        (False, "OK"),  # the re-poll, from the worker
    ]
    assert stderr.startswith("commwatch run: probing in 1 processes (worker 0: 1 checks"), stderr
