"""For the trap tests: net-snmp's snmptrap and snmpinform sending as a device would (to
127.0.0.1 only, from a chosen loopback address), and a real Monitor running an inventory with a
traps: section, keeping what it shows in order so a test can wait for what it expects."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monitor.config.inventory import Inventory
from monitor.config.loader import load_inventory
from monitor.core.events import Event, EventKind
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor

TRAP_COMMUNITY = "cw-trap-community-3f7a"
TRAP_USER = "cwtraps"
TRAP_AUTH = "cw-trap-auth-passphrase-9d2e"
TRAP_PRIV = "cw-trap-priv-passphrase-04bb"
# The device's SNMPv3 engine id, as snmpd makes it of `engineID cw-trap-device` (RFC 3411's
# text format: net-snmp's enterprise 8072, format 4, the text) and as snmptrap -e claims it.
DEVICE_ENGINE_TEXT = "cw-trap-device"
SENDER_ENGINE_ID = "80001f8804" + DEVICE_ENGINE_TEXT.encode().hex()
SECRETS = {
    "CW_TRAP_COMMUNITY": TRAP_COMMUNITY,
    "CW_TRAP_AUTH": TRAP_AUTH,
    "CW_TRAP_PRIV": TRAP_PRIV,
}
TRAPS_SECTION = f"""\
traps:
  listen: "127.0.0.1:{{port}}"
  communities: [{{community_env: CW_TRAP_COMMUNITY}}]
  users:
    - user: {TRAP_USER}
      auth_protocol: sha256
      auth_passphrase_env: CW_TRAP_AUTH
      priv_protocol: aes
      priv_passphrase_env: CW_TRAP_PRIV
      engine_id: "0x{SENDER_ENGINE_ID}"
"""

COLD_START, WARM_START = "1.3.6.1.6.3.1.1.5.1", "1.3.6.1.6.3.1.1.5.2"
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
IF_INDEX, IF_DESCR = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN, IF_OPER = "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8"
WAIT = 20.0  # seconds: generous, the machine is shared


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: the trap tests send with net-snmp's own tools "
            "(Debian/Ubuntu: apt-get install snmp)",
            pytrace=False,
        )
    return found


async def send(name: str, *args: str) -> tuple[int, str]:
    """Run snmptrap or snmpinform without blocking the loop (the receiver in it answers the
    inform); its exit status and what it said on stderr."""
    process = await asyncio.create_subprocess_exec(
        tool(name),
        *args,
        # No MIBs to load; its own state (SNMPv3 boots) in a folder of the run, not /var/lib.
        env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": tempfile.gettempdir()},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


def v2c(port: int, community: str = TRAP_COMMUNITY, source: str = "127.0.0.1") -> list[str]:
    """The arguments naming the receiver and the credentials, for snmptrap or snmpinform."""
    return ["-v", "2c", "-c", community, f"--clientaddr={source}", f"127.0.0.1:{port}"]


def v3(
    port: int,
    *,
    user: str = TRAP_USER,
    auth: str = TRAP_AUTH,
    priv: str = TRAP_PRIV,
    engine_id: str | None = SENDER_ENGINE_ID,
    source: str = "127.0.0.1",
) -> list[str]:
    """SNMPv3 authPriv (SHA-256, AES); `engine_id` the sender's (a trap's; an inform learns the
    receiver's by discovery, so it gives none)."""
    claimed = [] if engine_id is None else ["-e", f"0x{engine_id}"]
    return [
        "-v",
        "3",
        *claimed,
        "-u",
        user,
        "-l",
        "authPriv",
        "-a",
        "SHA-256",
        "-A",
        auth,
        "-x",
        "AES",
        "-X",
        priv,
        f"--clientaddr={source}",
        f"127.0.0.1:{port}",
    ]


def notification(trap_oid: str, *varbinds: tuple[str, str, str]) -> list[str]:
    """The uptime (the tool's own), the snmpTrapOID, and (OID, type, value) varbinds."""
    return ["", trap_oid, *(part for varbind in varbinds for part in varbind)]


def link(trap_oid: str, index: int, *, oper: int, admin: int = 1, descr: str | None = None):
    """A linkDown or linkUp as IF-MIB defines it: ifIndex, ifAdminStatus, ifOperStatus (and
    ifDescr, as Cisco gear adds)."""
    varbinds = [
        (f"{IF_INDEX}.{index}", "i", str(index)),
        (f"{IF_ADMIN}.{index}", "i", str(admin)),
        (f"{IF_OPER}.{index}", "i", str(oper)),
    ]
    if descr is not None:
        varbinds.append((f"{IF_DESCR}.{index}", "s", descr))
    return notification(trap_oid, *varbinds)


def is_trap_result(item: object, kind: str | None = None) -> bool:
    return (
        isinstance(item, ProbeResult)
        and "trap.kind" in item.observations
        and (kind is None or item.observations["trap.kind"] == kind)
    )


def is_poll(item: object) -> bool:
    return isinstance(item, ProbeResult) and "trap.kind" not in item.observations


def is_trap_event(item: object) -> bool:
    return isinstance(item, Event) and item.kind is EventKind.TRAP


@dataclass
class Running:
    """A Monitor running; what it showed, in order, each with the time it was shown."""

    monitor: Monitor
    inventory: Inventory
    port: int
    items: list[tuple[float, ProbeResult | Event]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def shown(self, item: ProbeResult | Event) -> None:
        self.items.append((time.time(), item))
        self.arrived.set()

    def seen(self, predicate: Callable[[object], bool]) -> list[ProbeResult | Event]:
        return [item for _, item in self.items if predicate(item)]

    async def wait_for(
        self, predicate: Callable[[object], bool], count: int = 1, timeout: float = WAIT
    ) -> Any:
        """The `count`-th item `predicate` takes, once it was shown."""
        async with asyncio.timeout(timeout):
            while len(found := self.seen(predicate)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return found[count - 1]

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Until `condition` holds (what shows nothing: a refusal, counted), looked at every
        20 ms."""
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    folder: Path, inventory_text: str, *, history: bool = False
) -> AsyncIterator[Running]:
    """The engine of `inventory_text` (its traps: section's port in `{port}` is filled with a
    free one), running until the block ends."""
    from tests.peers.snmp_peers import free_udp_port

    port = free_udp_port()
    path = folder / "inventory.yaml"
    path.write_text(inventory_text.replace("{port}", str(port)))
    inventory = load_inventory(path)
    holder: list[Running] = []
    monitor = Monitor(
        inventory,
        inventory.checks,
        on_result=lambda item: holder[0].shown(item),
        on_event=lambda item: holder[0].shown(item),
        history=history,
        alerts=False,
        traps=inventory.traps,
    )
    holder.append(Running(monitor, inventory, port))
    task = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(WAIT):
            ready = asyncio.create_task(monitor.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
        if task.done():
            task.result()  # it failed to start: say why
        yield holder[0]
    finally:
        monitor.stop()
        await asyncio.wait_for(task, 30)


def snmp_check(target: str, *interfaces: str | int, **keys: str) -> str:
    """An snmp check of `target` over v2c (tests.peers.snmp_peers' community in CW_COMMUNITY),
    polled once an hour: any second poll is a re-poll."""
    listed = ", ".join(str(i) for i in interfaces)
    extra = "".join(f", {key}: {value}" for key, value in keys.items())
    return (
        f'{{id: switch, kind: snmp, target: "{target}", version: 2c, community_env: CW_COMMUNITY,'
        f" interfaces: [{listed}], interval: 1h, timeout: 3s, retries: 1{extra}}}"
    )


def one_device(*checks: str, traps: str = TRAPS_SECTION) -> str:
    lines = "\n".join(f"          - {check}" for check in checks)
    return f"""\
{traps}sites:
  - id: psap
    links:
      - id: fibre
        checks:
{lines}
"""


def reasons(run: Running) -> dict[str, int]:
    figures = run.monitor.figures().traps
    assert figures is not None
    return {reason: count for reason, count in figures.rejected.items() if count}


def received(run: Running) -> dict[str, int]:
    figures = run.monitor.figures().traps
    assert figures is not None
    return {kind: count for kind, count in figures.received.items() if count}
