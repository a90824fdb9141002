"""Pins the private behaviour of pysnmp that probes/support/pysnmp_compat.py relies on, against
net-snmp's snmpd and UDP peers of the test on 127.0.0.1: when a pysnmp upgrade changes it, these
fail and say what changed, before a probe misjudges an agent."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, Udp6TransportTarget, UdpTransportTarget

from monitor.config.checks import adhoc_check
from probes.base import SharedResources
from probes.support import pysnmp_compat, snmp_engine
from probes.support.snmp_engine import SnmpRuntime
from probes.support.snmp_poll import endpoint as snmp_endpoint
from probes.support.snmp_values import SYS_UPTIME
from tests.peers.snmp_peers import AUTH_PRIV, AUTH_PRIV_ENV, LOCALHOST, SnmpAgent, running_agent

# Not BER at all; a BER sequence whose version field says SNMP version 10.
GARBAGE = (b"GET / HTTP/1.0\r\n", b"\x30\x03\x02\x01\x09")
# pysnmp keeps an engine id this long (its expiry, counted in timer ticks).
ENGINE_ID_LIFETIME = 300.0


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AUTH_PRIV_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    with running_agent(tmp_path / "snmpd") as agent:
        yield agent


async def _runtime_knowing(agent: SnmpAgent, shared: SharedResources) -> tuple[SnmpRuntime, Any]:
    """A runtime that has talked SNMPv3 to `agent`, and the agent's endpoint."""
    options = adhoc_check("snmp", {"target": agent.target, **AUTH_PRIV}).options
    endpoint = snmp_endpoint(options, 5.0)
    runtime = await snmp_engine.runtime(shared)
    reply = await runtime.get(endpoint, options.credentials(), [SYS_UPTIME])
    assert reply.engine_id is not None
    return runtime, endpoint


async def test_the_engine_id_cache_is_the_one_pysnmp_answers_from(
    agent: SnmpAgent, shared: SharedResources
) -> None:
    runtime, endpoint = await _runtime_knowing(agent, shared)
    engine_ids = pysnmp_compat.EngineIds(runtime.engine)
    key = (endpoint.domain, endpoint.transport_address)
    learnt = engine_ids.get(*key)
    assert learnt is not None
    cache = getattr(runtime.engine.message_processing_subsystems[3], pysnmp_compat._ENGINE_IDS)
    assert cache[key]["securityEngineId"] == learnt, (
        "pysnmp's engine-id cache is no longer keyed by (domain, address)"
    )
    engine_ids.forget(*key)
    assert engine_ids.get(*key) is None, "forgetting no longer makes pysnmp discover again"


async def test_a_forgotten_engine_id_does_not_stop_the_engines_timer(
    agent: SnmpAgent, shared: SharedResources
) -> None:
    """pysnmp deletes each expiring engine id without looking: one forgotten (an agent gone
    quiet) and not learnt again must leave nothing to expire, or its timer task dies with a
    KeyError, and with it every request timeout and retransmission of the engine."""
    runtime, endpoint = await _runtime_knowing(agent, shared)
    agent.stop()  # gone quiet: its engine id is not learnt again
    runtime.forget_engine_id(endpoint)
    dispatcher = runtime.engine.transport_dispatcher
    model = runtime.engine.message_processing_subsystems[3]
    # Bring pysnmp's expiry clock to the id's last tick, as 300 s of its own ticks would.
    for _ in range(int(ENGINE_ID_LIFETIME / dispatcher.get_timer_resolution()) - 1):
        model.receive_timer_tick(runtime.engine, time.time())
    # Then let the engine's own timer task tick past it.
    await asyncio.sleep(dispatcher.get_timer_resolution() * 5)
    task = dispatcher.loopingcall
    assert not task.done(), f"pysnmp's timer task ended: {task.exception()!r}"


async def test_a_target_is_made_as_create_makes_it() -> None:
    """create() is __new__, the resolved address set, then __init__: the same steps, without
    resolving an address that is already a literal."""

    class Literal(UdpTransportTarget):  # create() itself, minus the resolution
        async def _resolve_address(self, address: tuple[str, int]) -> tuple[str, int]:
            return address

    made = await Literal.create((LOCALHOST, 1161), timeout=0.7, retries=2)
    built = pysnmp_compat.transport_target((LOCALHOST, 1161), ipv6=False, timeout=0.7, retries=2)
    assert type(built) is UdpTransportTarget
    assert vars(built) == vars(made), "UdpTransportTarget is no longer made as create() makes it"
    assert built.get_transport_info() == (udp.DOMAIN_NAME, (LOCALHOST, 1161))
    v6 = pysnmp_compat.transport_target(("::1", 1161, 0, 0), ipv6=True, timeout=0.7, retries=2)
    assert type(v6) is Udp6TransportTarget and v6.transport_address == ("::1", 1161, 0, 0)
    with pytest.raises(Exception, match="create"):
        UdpTransportTarget(timeout=1)  # why it is built by hand: __init__ needs the address


async def test_each_datagram_goes_through_the_watch_and_garbage_is_counted() -> None:
    engine = SnmpEngine()
    seen: list[bytes] = []

    def wrap(receive: pysnmp_compat.Receive) -> pysnmp_compat.Receive:
        def watched(snmp_engine: Any, domain: Any, address: Any, message: bytes) -> Any:
            seen.append(message)
            return receive(snmp_engine, domain, address, message)

        return watched

    # Watched before the transport exists, as the runtime does it.
    pysnmp_compat.watch_received(engine, wrap)
    counters = pysnmp_compat.undecodable_counters(engine)
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind((LOCALHOST, 0))
    listener.setblocking(False)
    transport = udp.UdpAsyncioTransport().open_server_mode(sock=listener)
    config.add_transport(engine, udp.DOMAIN_NAME, transport)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for datagram in GARBAGE:
                sender.sendto(datagram, listener.getsockname())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while len(seen) < len(GARBAGE) and loop.time() < deadline:
                await asyncio.sleep(0.01)
        assert seen == list(GARBAGE), "the engine no longer calls receive_message per datagram"
        assert [int(counter.syntax) for counter in counters] == [1, 1], (
            "pysnmp no longer counts what it cannot decode in __SNMPv2-MIB's"
            " snmpInASNParseErrs (not BER) and snmpInBadVersions (SNMP version 10)"
        )
        assert pysnmp_compat.undecodable(counters) == 2
    finally:
        engine.close_dispatcher()


def test_a_missing_private_attribute_is_named() -> None:
    with pytest.raises(pysnmp_compat.PysnmpChanged, match=r"object\.nothing_here .*adapted"):
        pysnmp_compat._private(object(), "nothing_here", "test")
