"""SNMP agents that lie, loop or flood: each ends in a classified error within its timeout, with
a message that says what the agent did, and a flood of garbage costs a log line, not a traceback
per datagram."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from monitor.config.checks import adhoc_check
from monitor.config.inventory import Check
from monitor.core.model import ErrorClass, ProbeResult, Severity
from monitor.engine.runner import run_check
from probes.base import SharedResources
from probes.support.snmp_engine import MAX_WALK_ROWS
from probes.support.snmp_noise import NoiseLog
from tests.hostile.snmp_agents import (
    COMMUNITY,
    DECODER_CRASH,
    IF_NAME,
    IF_OPER,
    SYS_UPTIME,
    V2C,
    Behaviour,
    healthy_system,
    interface,
    random_garbage,
    scripted_agent,
)

COUNTER_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"


@pytest.fixture(autouse=True)
def community(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_HOSTILE_COMMUNITY", COMMUNITY)


def snmp_check(target: str, timeout: str, **values: Any) -> Check:
    return adhoc_check(
        "snmp",
        {
            "target": target,
            "version": "2c",
            "community_env": "CW_HOSTILE_COMMUNITY",
            "timeout": timeout,
            **values,
        },
    )


async def poll(
    shared: SharedResources, behaviour: Behaviour, timeout: str = "2s", **values: Any
) -> tuple[ProbeResult, float, int]:
    """One poll of a scripted agent: the result, how long it took, how many requests it got."""
    async with scripted_agent(behaviour) as agent:
        check = snmp_check(agent.target, timeout, **values)
        started = time.monotonic()
        result = await run_check(check, shared)
        return result, time.monotonic() - started, agent.seen.requests


def endless_names(oid: str) -> tuple[str, Any]:
    """An ifName column that never ends: after ifName.N comes ifName.N+1, forever."""
    if oid == IF_NAME:
        return f"{IF_NAME}.1", V2C.OctetString(b"if1")
    index = int(oid.rpartition(".")[2]) + 1
    return f"{IF_NAME}.{index}", V2C.OctetString(f"if{index}".encode())


@pytest.mark.parametrize(
    ("oid", "wrong", "what"),
    [
        (SYS_UPTIME, V2C.OctetString(b"123456"), "sysUpTime"),
        (f"{IF_OPER}.1", V2C.OctetString(b"up"), "ifOperStatus"),
        (f"{COUNTER_IN_OCTETS}.1", V2C.Integer(5), "ifHCInOctets"),
    ],
)
async def test_a_value_of_the_wrong_type_is_a_protocol_error(
    shared: SharedResources, oid: str, wrong: Any, what: str
) -> None:
    values = {**healthy_system(), **interface(1, "eth0"), oid: wrong}
    result, _, _ = await poll(shared, Behaviour(values=values), interfaces=["eth0"])

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert result.severity is Severity.CRIT
    assert f"{oid} ({what}) with {type(wrong).__name__}" in result.error.message


async def test_a_walk_that_never_advances_fails_at_once(shared: SharedResources) -> None:
    def same_again(oid: str) -> tuple[str, Any]:
        return f"{IF_NAME}.1", V2C.OctetString(b"eth0")

    behaviour = Behaviour(values=healthy_system(), next_of=same_again)
    result, elapsed, requests = await poll(shared, behaviour, timeout="5s", interfaces=["eth0"])

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert "does not advance the walk of ifName" in result.error.message
    # Seen on the second row of the first answer, not after thousands of repeated rows.
    assert requests == 1
    assert elapsed < 2


async def test_an_endless_walk_stops_at_the_row_cap(shared: SharedResources) -> None:
    behaviour = Behaviour(values=healthy_system(), next_of=endless_names)
    result, elapsed, requests = await poll(shared, behaviour, timeout="20s", interfaces=["eth0"])

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert f"more than {MAX_WALK_ROWS} table cells" in result.error.message
    assert requests <= MAX_WALK_ROWS // 25 + 2
    assert elapsed < 20


async def test_a_walk_cut_short_by_the_timeout_says_how_far_it_got(
    shared: SharedResources,
) -> None:
    behaviour = Behaviour(values=healthy_system(), next_of=endless_names, delay=0.05)
    result, elapsed, requests = await poll(shared, behaviour, timeout="1s", interfaces=["eth0"])

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert requests > 1
    assert "answered" in result.error.message
    assert "table cells" in result.error.message
    assert "wrong community" not in result.error.message
    assert elapsed < 1.5


async def test_answers_to_no_request_of_ours_are_not_a_wrong_community(
    shared: SharedResources,
) -> None:
    behaviour = Behaviour(values=healthy_system(), request_id_shift=7)
    result, elapsed, _ = await poll(shared, behaviour, timeout="1s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.TIMEOUT
    assert "SNMP messages, but none answered a request of ours in time" in result.error.message
    assert "wrong community" not in result.error.message
    assert elapsed < 1.3


async def test_garbage_the_decoder_chokes_on_is_reported_as_garbage(
    shared: SharedResources,
) -> None:
    behaviour = Behaviour(garbage=(DECODER_CRASH,), answer=False)
    result, _, _ = await poll(shared, behaviour, timeout="1s")

    assert result.error is not None
    assert result.error.error_class is ErrorClass.PROTOCOL
    assert "datagrams that are not SNMP" in result.error.message


async def test_a_garbage_flood_is_one_log_line_per_sender(
    shared: SharedResources, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    garbage = (DECODER_CRASH,) * 200 + random_garbage(200)
    behaviour = Behaviour(values=healthy_system(), garbage=garbage)
    async with scripted_agent(behaviour) as agent:
        check = snmp_check(agent.target, "3s")
        first = await run_check(check, shared)
        second = await run_check(check, shared)

    # The real answer follows the garbage each time, and is read.
    assert first.severity is Severity.OK, first.summary()
    assert second.severity is Severity.OK, second.summary()
    about_agent = [r for r in caplog.records if agent.target in r.getMessage()]
    assert len(about_agent) == 1, [r.getMessage() for r in about_agent]
    assert about_agent[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.name == "asyncio"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_garbage_from_many_senders_is_a_few_lines_an_interval(
    shared: SharedResources, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(NoiseLog, "INTERVAL", 1.0)
    caplog.set_level(logging.WARNING)
    behaviour = Behaviour(values=healthy_system(), garbage_senders=60)
    async with scripted_agent(behaviour) as agent:
        check = snmp_check(agent.target, "3s")
        first = await run_check(check, shared)
        lines_first = [r.getMessage() for r in caplog.records]
        await asyncio.sleep(1.1)
        second = await run_check(check, shared)

    assert first.severity is Severity.OK and second.severity is Severity.OK
    assert len(lines_first) == NoiseLog.MAX_SENDERS_LOGGED, lines_first
    # The rest of the first flood, in one line when the next interval begins.
    summary = [r.getMessage() for r in caplog.records if "senders reported" in r.getMessage()]
    assert len(summary) == 1
    unlogged = 60 - NoiseLog.MAX_SENDERS_LOGGED
    assert summary[0].startswith(f"SNMP: {unlogged} more datagrams that are not SNMP in the last")
