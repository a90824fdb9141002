"""SNMP traps and informs into a running engine: net-snmp's snmptrap and snmpinform send v2c
and SNMPv3 authPriv notifications to the engine's receiver on a free port of 127.0.0.1, and
net-snmp's snmpd is the device whose snmp check a trap concerns (and re-polls).

What is pinned: a linkDown of a watched interface is a CRIT result of its check at once (within
2 s, no poll in between), then a re-poll; linkUp the interface's recovery, with the rest of the
check as its last poll found it; coldStart and warmStart a reboot (WARN) and a re-poll; other
traps an event on the device and nothing else; informs acknowledged (snmpinform exits 0); v3
traps matched by source address or by the engine id the device's polls learnt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.core.events import EventKind, Subject
from monitor.core.model import ProbeResult, Severity
from tests.peers.snmp_peers import COMMUNITY, SnmpAgent, running_agent
from tests.traps_support import (
    COLD_START,
    LINK_DOWN,
    LINK_UP,
    SECRETS,
    WARM_START,
    is_poll,
    is_trap_event,
    is_trap_result,
    link,
    notification,
    one_device,
    received,
    running,
    send,
    snmp_check,
    v2c,
    v3,
)


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SECRETS, "CW_COMMUNITY": COMMUNITY}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgent]:
    with running_agent(tmp_path_factory.mktemp("snmpd")) as running_snmpd:
        yield running_snmpd


def lo_index(first: ProbeResult) -> int:
    index = first.observations["if.lo.index"]
    assert isinstance(index, int)
    return index


async def test_a_link_down_of_a_watched_interface_is_crit_at_once_then_re_polled(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    async with running(tmp_path, one_device(snmp_check(agent.target, "lo"))) as run:
        first = await run.wait_for(is_poll)
        assert first.severity is Severity.OK, first.summary()
        index = lo_index(first)
        scheduler = run.monitor.scheduler
        assert scheduler is not None and scheduler.figures().started == 1

        sent_at = time.time()
        status, said = await send("snmptrap", *v2c(run.port), *link(LINK_DOWN, index, oper=2))
        assert status == 0, said
        crit = await run.wait_for(lambda item: is_trap_result(item, "linkDown"))
        second = await run.wait_for(is_poll, count=2)

    # The trap's result, at once: the check's own condition on the interface, CRIT.
    assert isinstance(crit, ProbeResult)
    assert crit.severity is Severity.CRIT
    assert crit.started_at - sent_at < 2.0
    assert crit.duration_ms == 0
    state = {v.condition: v for v in crit.verdicts}["if.lo.state"]
    assert (state.severity, state.value) == (Severity.CRIT, "down while admin up")
    assert crit.observations["trap.source"].startswith("127.0.0.1:")
    assert crit.observations["trap.version"] == "2c"
    assert crit.observations["trap.inform"] is False
    # The rest of the result is its last poll's: the system group is still judged.
    assert "system.reboot" in {v.condition for v in crit.verdicts}
    # Shown in order: the trap on the device, its result, the confirmed change (retries: 1).
    order = [item for _, item in run.items]
    trap_event = next(item for item in order if is_trap_event(item))
    assert order.index(trap_event) < order.index(crit)
    assert trap_event.subject is Subject.CHECK and trap_event.subject_id == "psap/fibre/switch"
    assert (trap_event.before, trap_event.after) == ("OK", "OK")
    assert trap_event.cause == f"linkDown ifIndex {index} from 127.0.0.1 (v2c trap)"
    assert not trap_event.notifiable
    hard = [
        item
        for item in order
        if getattr(item, "kind", None) is EventKind.HARD and item.subject is Subject.CHECK
    ]
    assert [(e.before, e.after) for e in hard][:2] == [("PENDING", "OK"), ("OK", "CRIT")]
    # Then the re-poll, right after it (the check's interval is an hour): snmpd's lo is up.
    assert isinstance(second, ProbeResult)
    assert order.index(crit) < order.index(second)  # no poll in between
    assert 0 <= second.started_at - crit.started_at < 2.0
    assert second.severity is Severity.OK, second.summary()
    assert received(run) == {"linkDown": 1}


async def test_an_interface_named_by_the_trap_matches_a_check_watching_it_by_name(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    """ifDescr in the trap (as Cisco sends it) names the interface, whatever index the check's
    last poll knew; an interface the check does not watch gives it no result."""
    async with running(tmp_path, one_device(snmp_check(agent.target, "lo"))) as run:
        await run.wait_for(is_poll)
        unwatched = link(LINK_DOWN, 4000, oper=2, descr="eth7")
        assert (await send("snmptrap", *v2c(run.port), *unwatched))[0] == 0
        await run.wait_for(is_trap_event)
        await run.wait_for(is_poll, count=2)  # the device's re-poll
        named = link(LINK_DOWN, 4001, oper=7, descr="lo")  # lowerLayerDown
        assert (await send("snmptrap", *v2c(run.port), *named))[0] == 0
        crit = await run.wait_for(lambda item: is_trap_result(item, "linkDown"))

    events = run.seen(is_trap_event)
    assert [e.cause for e in events] == [
        "linkDown eth7 (ifIndex 4000) from 127.0.0.1 (v2c trap)",
        "linkDown lo (ifIndex 4001) from 127.0.0.1 (v2c trap)",
    ]
    assert len(run.seen(is_trap_result)) == 1
    assert crit.observations["if.lo.state"] == "lowerLayerDown while admin up"
    assert crit.severity is Severity.CRIT


async def test_link_up_recovers_the_interface_and_keeps_what_the_last_poll_found(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    """The check watches lo (up) and an interface the agent does not have (CRIT, not found):
    a linkUp of lo is lo's recovery, and the check stays CRIT for the other one."""
    check = snmp_check(agent.target, "lo", "nosuchif0")
    async with running(tmp_path, one_device(check)) as run:
        first = await run.wait_for(is_poll)
        assert first.severity is Severity.CRIT
        index = lo_index(first)
        down = link(LINK_DOWN, index, oper=2)
        assert (await send("snmptrap", *v2c(run.port), *down))[0] == 0
        went_down = await run.wait_for(lambda item: is_trap_result(item, "linkDown"))
        await run.wait_for(is_poll, count=2)
        up = link(LINK_UP, index, oper=1)
        assert (await send("snmptrap", *v2c(run.port), *up))[0] == 0
        came_up = await run.wait_for(lambda item: is_trap_result(item, "linkUp"))

    def verdicts(result: object) -> dict[str, Severity]:
        assert isinstance(result, ProbeResult)
        return {v.condition: v.severity for v in result.verdicts}

    assert verdicts(went_down)["if.lo.state"] is Severity.CRIT
    assert verdicts(came_up)["if.lo.state"] is Severity.OK
    assert verdicts(came_up)["if.nosuchif0.state"] is Severity.CRIT  # as last polled
    assert came_up.severity is Severity.CRIT


async def test_cold_and_warm_start_are_a_reboot_and_a_re_poll_and_informs_are_acknowledged(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    async with running(tmp_path, one_device(snmp_check(agent.target, "lo"))) as run:
        await run.wait_for(is_poll)
        status, said = await send("snmpinform", *v2c(run.port), *notification(COLD_START))
        assert status == 0, said  # acknowledged
        cold = await run.wait_for(lambda item: is_trap_result(item, "coldStart"))
        await run.wait_for(is_poll, count=2)
        assert (await send("snmptrap", *v2c(run.port), *notification(WARM_START)))[0] == 0
        warm = await run.wait_for(lambda item: is_trap_result(item, "warmStart"))
        await run.wait_for(is_poll, count=3)

    for result, trap in ((cold, "coldStart"), (warm, "warmStart")):
        assert isinstance(result, ProbeResult)
        assert result.severity is Severity.WARN
        reboot = {v.condition: v for v in result.verdicts}["system.reboot"]
        assert reboot.severity is Severity.WARN
        assert str(reboot.value).endswith(f"({trap})")
    assert cold.observations["trap.inform"] is True
    # snmpd did not restart: each re-poll says so, and the check is OK again.
    polls = run.seen(is_poll)
    assert [p.severity for p in polls] == [Severity.OK] * 3
    assert received(run) == {"coldStart": 1, "warmStart": 1}


async def test_other_traps_are_events_on_the_device_that_change_nothing(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    async with running(tmp_path, one_device(snmp_check(agent.target, "lo"))) as run:
        await run.wait_for(is_poll)
        before = run.monitor.state.checks["psap/fibre/switch"]
        enterprise = notification(
            "1.3.6.1.4.1.8072.2.3.0.1",
            ("1.3.6.1.4.1.8072.2.3.2.1", "i", "42"),
            ("1.3.6.1.4.1.8072.2.3.2.2", "s", "fan 2 failed"),
        )
        assert (await send("snmptrap", *v2c(run.port), *enterprise))[0] == 0
        event = await run.wait_for(is_trap_event)
        auth_failure = notification("1.3.6.1.6.3.1.1.5.5")
        assert (await send("snmptrap", *v2c(run.port), *auth_failure))[0] == 0
        await run.wait_for(is_trap_event, count=2)
        after = run.monitor.state.checks["psap/fibre/switch"]
        scheduler = run.monitor.scheduler
        assert scheduler is not None

    assert event.cause == (
        "trap 1.3.6.1.4.1.8072.2.3.0.1: 1.3.6.1.4.1.8072.2.3.2.1=42,"
        " 1.3.6.1.4.1.8072.2.3.2.2=fan 2 failed from 127.0.0.1 (v2c trap)"
    )
    assert after == before  # no result, no state change
    assert not run.seen(is_trap_result)
    assert len(run.seen(is_poll)) == 1 and scheduler.figures().started == 1  # no re-poll
    assert received(run) == {"other": 1, "authenticationFailure": 1}


async def test_snmpv3_authpriv_traps_and_informs_are_taken(tmp_path: Path, agent: SnmpAgent):
    async with running(tmp_path, one_device(snmp_check(agent.target, "lo"))) as run:
        first = await run.wait_for(is_poll)
        index = lo_index(first)
        status, said = await send("snmptrap", *v3(run.port), *link(LINK_DOWN, index, oper=2))
        assert status == 0, said
        trap = await run.wait_for(lambda item: is_trap_result(item, "linkDown"))
        inform = v3(run.port, engine_id=None)  # it learns the receiver's engine id
        status, said = await send("snmpinform", *inform, *link(LINK_UP, index, oper=1))
        assert status == 0, said  # acknowledged, at authPriv
        recovered = await run.wait_for(lambda item: is_trap_result(item, "linkUp"))

    assert trap.severity is Severity.CRIT and trap.observations["trap.version"] == "3"
    assert recovered.observations["trap.inform"] is True
    assert [e.cause.rsplit(" from ", 1)[1] for e in run.seen(is_trap_event)] == [
        "127.0.0.1 (v3 user cwtraps trap)",
        "127.0.0.1 (v3 user cwtraps inform)",
    ]


@pytest.fixture(scope="module")
def v3_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgent]:
    """snmpd with the engine id the trap tests' sender claims (snmptrap -e)."""
    from tests.traps_support import DEVICE_ENGINE_TEXT

    folder = tmp_path_factory.mktemp("snmpd-v3")
    with running_agent(folder, engine_id=DEVICE_ENGINE_TEXT) as running_snmpd:
        yield running_snmpd


async def test_a_v3_trap_from_another_address_is_matched_by_the_engine_id_polls_learnt(
    tmp_path: Path, v3_agent: SnmpAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polled at 127.0.0.1 over SNMPv3, the device sends its traps from 127.0.0.2 (a loopback
    interface of its own, as routers do): its engine id says who it is. The same trap from
    an engine nobody polls is from a stranger."""
    from tests.peers.snmp_peers import AUTH_PRIV, AUTH_PRIV_ENV
    from tests.traps_support import SENDER_ENGINE_ID, TRAP_USER, reasons

    v3_keys = {key: str(value) for key, value in AUTH_PRIV.items()}
    check = (
        f'{{id: switch, kind: snmp, target: "{v3_agent.target}", interfaces: [lo],'
        f" interval: 1h, timeout: 3s, retries: 1, version: 3, user: {v3_keys['user']},"
        f" auth_protocol: {v3_keys['auth_protocol']}, auth_passphrase_env: CW_AUTH,"
        f" priv_protocol: {v3_keys['priv_protocol']}, priv_passphrase_env: CW_PRIV}}"
    )
    other_engine = "8000000001020304cd"
    inventory = one_device(check).replace(
        f'engine_id: "0x{SENDER_ENGINE_ID}"',
        f'engine_id: ["0x{SENDER_ENGINE_ID}", "0x{other_engine}"]',
    )
    for name, value in AUTH_PRIV_ENV.items():
        monkeypatch.setenv(name, value)
    async with running(tmp_path, inventory) as run:
        first = await run.wait_for(is_poll)
        assert first.observations["snmp.engine_id"] == SENDER_ENGINE_ID, first.summary()
        index = lo_index(first)
        trap = link(LINK_DOWN, index, oper=2)
        status, said = await send("snmptrap", *v3(run.port, source="127.0.0.2"), *trap)
        assert status == 0, said
        matched = await run.wait_for(lambda item: is_trap_result(item, "linkDown"))
        stranger = v3(run.port, source="127.0.0.2", engine_id=other_engine)
        assert (await send("snmptrap", *stranger, *trap))[0] == 0
        await run.until(lambda: reasons(run).get("unknown_source") == 1)

    assert matched.check.check_id == "psap/fibre/switch"
    assert matched.observations["trap.source"].startswith("127.0.0.2:")
    assert [e.cause.rsplit(" from ", 1)[1] for e in run.seen(is_trap_event)] == [
        f"127.0.0.2 (v3 user {TRAP_USER} trap)"
    ]


async def test_a_paused_check_keeps_its_state_and_is_not_re_polled(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    """An operator paused the check: the trap is recorded on it, but neither a trap result
    nor a re-poll changes what the operator holds."""
    async with running(tmp_path, one_device(snmp_check(agent.target, "lo"))) as run:
        first = await run.wait_for(is_poll)
        run.monitor.pause("psap/fibre/switch")
        before = run.monitor.state.checks["psap/fibre/switch"]
        trap = link(LINK_DOWN, lo_index(first), oper=2)
        assert (await send("snmptrap", *v2c(run.port), *trap))[0] == 0
        await run.wait_for(is_trap_event)
        scheduler = run.monitor.scheduler
        assert scheduler is not None
        started = scheduler.figures().started
        after = run.monitor.state.checks["psap/fibre/switch"]
    assert after == before
    assert not run.seen(is_trap_result)
    assert started == 1 and len(run.seen(is_poll)) == 1


async def test_traps_in_a_burst_build_on_each_other_before_the_store_shows_them(
    tmp_path: Path, agent: SnmpAgent
) -> None:
    """With history on, a result is shown once stored. Two traps back to back, a linkUp of
    one watched interface and a linkDown of the other: the second result has the first's
    word on the first interface, not its last poll's."""
    import socket

    check = snmp_check(agent.target, "lo", "nosuchif0")
    async with running(tmp_path, one_device(check), history=True) as run:
        first = await run.wait_for(is_poll)
        assert first.observations["if.nosuchif0.state"] == "not found"
        up = link(LINK_UP, 4000, oper=1, descr="nosuchif0")
        down = link(LINK_DOWN, lo_index(first), oper=2)
        datagrams = [await captured(v2c(0), trap) for trap in (up, down)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
            for datagram in datagrams:
                device.sendto(datagram, ("127.0.0.1", run.port))
        second = await run.wait_for(is_trap_result, count=2)
    verdicts = {v.condition: (v.severity, v.value) for v in second.verdicts}
    assert verdicts["if.lo.state"] == (Severity.CRIT, "down while admin up")
    assert verdicts["if.nosuchif0.state"] == (Severity.OK, "up")  # named by ifDescr


async def captured(receiver: list[str], trap: list[str]) -> bytes:
    """The datagram snmptrap sends with `receiver`'s credentials (its target replaced)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture:
        capture.bind(("127.0.0.1", 0))
        capture.setblocking(False)
        target = [
            f"127.0.0.1:{capture.getsockname()[1]}" if a == "127.0.0.1:0" else a for a in receiver
        ]
        status, said = await send("snmptrap", *target, *trap)
        assert status == 0, said
        return capture.recv(65536)


async def test_a_poll_that_began_before_a_trap_is_not_what_the_next_trap_builds_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow agent: a poll is under way when eth1's linkDown comes, and comes back saying
    eth1 is up (it read the device before the news). The coldStart that follows builds on the
    trap's word, eth1 down, not on that poll's."""
    from tests.hostile.snmp_agents import COMMUNITY as SCRIPTED
    from tests.hostile.snmp_agents import Behaviour, healthy_system, interface, scripted_agent

    monkeypatch.setenv("CW_COMMUNITY", SCRIPTED)
    behaviour = Behaviour(values={**healthy_system(), **interface(1, "eth1")})
    async with scripted_agent(behaviour) as device:
        check = snmp_check(device.target, "eth1")
        async with running(tmp_path, one_device(check)) as run:
            await run.wait_for(is_poll)
            behaviour.delay = 1.0  # within an attempt's 1.35 s
            run.monitor.run_now("psap/fibre/switch")
            await run.until(lambda: device.seen.requests >= 2)  # the poll is under way
            trap = link(LINK_DOWN, 1, oper=2)
            assert (await send("snmptrap", *v2c(run.port), *trap))[0] == 0
            await run.wait_for(lambda item: is_trap_result(item, "linkDown"))
            stale = await run.wait_for(is_poll, count=2)
            assert stale.severity is Severity.OK  # what the agent said before its news
            assert (await send("snmptrap", *v2c(run.port), *notification(COLD_START)))[0] == 0
            cold = await run.wait_for(lambda item: is_trap_result(item, "coldStart"))
    assert cold.observations["if.eth1.state"] == "down while admin up"
    assert cold.severity is Severity.CRIT
