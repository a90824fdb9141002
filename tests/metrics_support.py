"""A served engine for the metrics tests: a real Monitor with `/metrics` attached, on a real
aiohttp server on 127.0.0.1, probing real peers on loopback: a TCP listener, a closed port, a
TLS server with a certificate made here, and net-snmp's snmpd (v2c, the loopback interface).

Its inventory: site psap has link fibre (tcp, tls and snmp checks, all answering) and link lte
(a refused port): psap is AT RISK. Site depot has one link whose only check is refused: DOWN.
Alerts go to a webhook on a closed port, so messages stay pending in the outbox. It listens
for SNMP traps on a free port of 127.0.0.1 (community TRAP_COMMUNITY).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from monitor.api import metrics
from monitor.config.loader import load_inventory
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor
from monitor.engine.state import EngineState
from tests.peers.pki import make_ca, make_leaf, server_context
from tests.peers.snmp_peers import COMMUNITY, free_udp_port, running_agent
from tests.peers.tcp_peers import accepting_listener, closed_port
from tests.peers.tls_peers import tls_server

HOOK_SECRET = "cw-hook-secret-5e21"  # in the webhook's query: must never reach the metrics
COMMUNITY_ENV = "CW_METRICS_COMMUNITY"
TRAP_COMMUNITY = "cw-metrics-traps-61c0"  # accepted by the engine's trap receiver
TRAP_COMMUNITY_ENV = "CW_METRICS_TRAP_COMMUNITY"
ENGINE_WAIT = 60.0  # seconds: generous, the machine is shared


@dataclass
class Served:
    url: str  # of the aiohttp server: http://127.0.0.1:PORT
    monitor: Monitor
    leaf_not_after: float
    targets: tuple[str, ...]  # every host:port the inventory names
    traps: int  # the UDP port on 127.0.0.1 where the engine takes traps (TRAP_COMMUNITY)
    authorizations: list[str | None] = field(default_factory=list)  # as requests brought them


def _inventory(tmp_path: Path, tcp: int, tls: int, snmp: str, refused: int, traps: int) -> str:
    return f"""\
history: {{path: {tmp_path / "history.sqlite3"}}}
traps: {{listen: "127.0.0.1:{traps}", communities: [{{community_env: {TRAP_COMMUNITY_ENV}}}]}}
alerts:
  group_window: 1s
  notifiers:
    - {{id: noc, kind: webhook, url: "http://127.0.0.1:{refused}/hook?token={HOOK_SECRET}"}}
defaults: {{interval: 1s, timeout: 1s, retries: 1}}
sites:
  - id: psap
    links:
      - id: fibre
        checks:
          - {{id: router, kind: tcp, target: "127.0.0.1:{tcp}"}}
          - {{id: gw, kind: tls, target: "127.0.0.1:{tls}", ca_file: {tmp_path / "ca.pem"}}}
          - id: switch
            kind: snmp
            target: "{snmp}"
            version: 2c
            community_env: {COMMUNITY_ENV}
            interfaces: [lo]
      - id: lte
        checks:
          - {{id: router, kind: tcp, target: "127.0.0.1:{refused}"}}
  - id: depot
    links:
      - id: radio
        checks:
          - {{id: mast, kind: tcp, target: "127.0.0.1:{refused}"}}
"""


def idle_monitor(tmp_path: Path) -> Monitor:
    """A Monitor of one tcp check, without history or alerts, that is never run."""
    (tmp_path / "inventory.yaml").write_text(
        "sites:\n  - id: s\n    links:\n      - id: l\n"
        '        checks: [{id: c, kind: tcp, target: "127.0.0.1:9"}]\n'
    )
    inventory = load_inventory(tmp_path / "inventory.yaml")
    return Monitor(
        inventory,
        inventory.checks,
        on_result=lambda _: None,
        on_event=lambda _: None,
        history=False,
        alerts=False,
    )


def _complete(latest: dict[str, ProbeResult], check_ids: set[str]) -> bool:
    """Every check has a result, and the snmp check's rates (from its second poll) are in."""
    if set(latest) != check_ids:
        return False
    return "if.lo.in_errors_per_s" in latest["psap/fibre/switch"].observations


@contextlib.asynccontextmanager
async def served_engine(tmp_path: Path, monkeypatch) -> AsyncIterator[Served]:
    """The engine running and serving, once every check has reported (and snmp twice)."""
    monkeypatch.setenv(COMMUNITY_ENV, COMMUNITY)
    monkeypatch.setenv(TRAP_COMMUNITY_ENV, TRAP_COMMUNITY)
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("metrics test CA", not_after=now + dt.timedelta(days=3650))
    leaf = make_leaf(ca, ["127.0.0.1"], not_after=now + dt.timedelta(days=40))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "tls").mkdir()
    refused = closed_port()
    async with contextlib.AsyncExitStack() as stack:
        tcp = await stack.enter_async_context(accepting_listener())
        tls = stack.enter_context(tls_server(server_context(leaf, tmp_path / "tls")))
        agent = stack.enter_context(running_agent(tmp_path / "snmpd"))
        traps = free_udp_port()
        text = _inventory(tmp_path, tcp, tls, agent.target, refused, traps)
        (tmp_path / "inventory.yaml").write_text(text)
        inventory = load_inventory(tmp_path / "inventory.yaml")
        monitor = Monitor(
            inventory,
            inventory.checks,
            on_result=lambda _: None,
            on_event=lambda _: None,
            traps=inventory.traps,
        )
        served = Served(
            url="",
            monitor=monitor,
            leaf_not_after=leaf.certificate.not_valid_after_utc.timestamp(),
            targets=tuple(re.findall(r'target: "([^"]+)"', text)),
            traps=traps,
        )

        @web.middleware
        async def seen(request: web.Request, handler):  # what the scraper sends, to check it
            served.authorizations.append(request.headers.get("Authorization"))
            return await handler(request)

        app = web.Application(middlewares=[seen])
        metrics.attach(app, monitor, None)
        runner = web.AppRunner(app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        served.url = f"http://127.0.0.1:{port}"

        latest: dict[str, ProbeResult] = {}
        complete = asyncio.Event()
        check_ids = {check.ref.check_id for check in inventory.checks}

        def watch(item: ProbeResult | Event, _state: EngineState) -> None:
            if isinstance(item, ProbeResult):
                latest[item.check.check_id] = item
                if _complete(latest, check_ids):
                    complete.set()

        monitor.watch(watch)
        running = asyncio.create_task(monitor.run())

        async def stop() -> None:
            monitor.stop()
            await asyncio.wait_for(running, 30)

        stack.push_async_callback(stop)
        waiting = asyncio.create_task(complete.wait())
        done, _ = await asyncio.wait(
            {waiting, running}, timeout=ENGINE_WAIT, return_when="FIRST_COMPLETED"
        )
        waiting.cancel()
        if running in done:
            running.result()  # the engine failed: say why
        assert complete.is_set(), (
            f"not every check reported within {ENGINE_WAIT}s: {sorted(latest)}"
        )
        yield served
