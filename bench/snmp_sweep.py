"""Benchmark: one sweep of N snmp checks through the commwatch Scheduler, beside a bare pysnmp
floor, for SNMPv3 authPriv (SHA-256 + AES) and for SNMPv2c.

Each check reads the system group (sysUpTime, sysName, sysDescr) and two interface rows (8
columns each): 19 varbinds in one GET. The floor is a bare `get_cmd` loop on one shared engine
with the same 19 varbinds, the same targets and the same concurrency, run in the same run. Every
measurement runs in its own child process, so that its peak RSS is its own; the snmpd agents run
in this process's children and are shared by all measurements.

    python bench/snmp_sweep.py                   # N = 500 per version, 4 agents
    python bench/snmp_sweep.py --targets 200 --concurrency 128

Agents listen on up to 128 loopback addresses each (127.0.1xx.y); nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.peers.snmp_peers import (  # noqa: E402
    AUTH_PASSPHRASE,
    COMMUNITY,
    PRIV_PASSPHRASE,
    PRIV_USER,
    running_agent,
)

PER_AGENT = 128
ENV = {"BENCH_AUTH": AUTH_PASSPHRASE, "BENCH_PRIV": PRIV_PASSPHRASE, "BENCH_COMMUNITY": COMMUNITY}
SYSTEM = ("1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.1.0")


def interface_indexes() -> list[int]:
    """Two ifIndexes that exist here (lo is 1; the next one the kernel has)."""
    found = sorted(int((p / "ifindex").read_text()) for p in Path("/sys/class/net").iterdir())
    if len(found) < 2:
        raise SystemExit("the bench needs two network interfaces in this namespace")
    return found[:2]


def write_inventory(path: Path, targets: list[str], version: str, concurrency: int) -> None:
    indexes = interface_indexes()
    lines = [
        "version: 1",
        "credentials:",
        f"  v3: {{version: 3, user: {PRIV_USER}, auth_protocol: sha256,"
        " auth_passphrase_env: BENCH_AUTH, priv_protocol: aes, priv_passphrase_env: BENCH_PRIV}",
        "  v2c: {version: 2c, community_env: BENCH_COMMUNITY}",
        f"defaults: {{interval: 5m, timeout: 10s, credentials: {version}}}",
        f"concurrency: {{global: {concurrency}, per_host: 4}}",
        "sites:",
        "  - id: bench",
        "    links:",
        "      - id: loopback",
        "        checks:",
    ]
    lines += [
        f'          - {{id: c{i}, kind: snmp, target: "{target}", interfaces: {indexes}}}'
        for i, target in enumerate(targets)
    ]
    path.write_text("\n".join(lines) + "\n")


# --- the two measurements, each run in a child process -------------------------------------------


async def measure_engine(inventory_path: str) -> dict[str, float]:
    from common import engine_sweep

    from monitor.inventory import load_inventory

    polls = len(load_inventory(inventory_path).checks)
    elapsed, lost = await engine_sweep(Path(inventory_path))
    varbinds = len(SYSTEM) + 2 * 8
    return {"elapsed": elapsed, "polls": polls, "lost": lost, "varbinds": varbinds}


async def measure_floor(targets: list[str], version: str, concurrency: int) -> dict[str, float]:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        get_cmd,
        usmAesCfb128Protocol,
        usmHMAC192SHA256AuthProtocol,
    )

    columns = ("7", "8", "14", "20", "13")
    xcolumns = ("6", "10", "15")
    oids = list(SYSTEM)
    for index in interface_indexes():
        oids += [f"1.3.6.1.2.1.2.2.1.{c}.{index}" for c in columns]
        oids += [f"1.3.6.1.2.1.31.1.1.1.{c}.{index}" for c in xcolumns]
    if version == "v3":
        auth = UsmUserData(
            PRIV_USER,
            AUTH_PASSPHRASE,
            PRIV_PASSPHRASE,
            authProtocol=usmHMAC192SHA256AuthProtocol,
            privProtocol=usmAesCfb128Protocol,
        )
    else:
        auth = CommunityData(COMMUNITY, mpModel=1)
    engine = SnmpEngine()
    gate = asyncio.Semaphore(concurrency)
    lost = 0

    async def one(target: str) -> None:
        nonlocal lost
        address, port = target.split(":")
        async with gate:
            transport = await UdpTransportTarget.create(
                (address, int(port)), timeout=4.5, retries=1
            )
            indication, status, _, varbinds = await get_cmd(
                engine,
                auth,
                transport,
                ContextData(),
                *(ObjectType(ObjectIdentity(oid)) for oid in oids),
                lookupMib=False,
            )
            if indication or status or len(varbinds) != len(oids):
                lost += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in targets))
    elapsed = time.perf_counter() - started
    engine.close_dispatcher()
    return {"elapsed": elapsed, "polls": len(targets), "lost": lost, "varbinds": len(oids)}


def child(arguments: list[str]) -> None:
    mode, version, concurrency, inventory_path, targets_path = arguments
    targets = Path(targets_path).read_text().split()
    if mode == "engine":
        outcome = asyncio.run(measure_engine(inventory_path))
    else:
        outcome = asyncio.run(measure_floor(targets, version, int(concurrency)))
    outcome["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(outcome))


def run_child(*arguments: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *arguments],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    sys.stderr.write(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(label: str, outcome: dict[str, float]) -> str:
    rate = outcome["polls"] / outcome["elapsed"]
    varbinds = rate * outcome["varbinds"]
    return (
        f"  {label:<10} {outcome['elapsed']:7.2f} s  {rate:7.0f} polls/s"
        f"  {varbinds:8.0f} varbinds/s  peak RSS {outcome['peak_rss_mib']:6.1f} MiB"
        f"  lost {int(outcome['lost'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=500, help="checks per version (500)")
    parser.add_argument("--agents", type=int, default=4, help="snmpd processes (4)")
    parser.add_argument("--concurrency", type=int, default=256, help="requests in flight (256)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    per_agent = -(-args.targets // args.agents)
    if per_agent > PER_AGENT:
        raise SystemExit(
            f"{args.targets} targets need at least {-(-args.targets // PER_AGENT)} agents"
        )
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        targets: list[str] = []
        for a in range(args.agents):
            addresses = [f"127.0.{100 + a}.{i}" for i in range(1, per_agent + 1)]
            agent = stack.enter_context(running_agent(Path(folder) / f"agent{a}", addresses))
            targets += [f"{address}:{agent.port}" for address in addresses]
        targets = targets[: args.targets]
        targets_path = Path(folder) / "targets.txt"
        targets_path.write_text("\n".join(targets))
        print(
            f"{len(targets)} targets on {args.agents} snmpd agents, 19 varbinds a poll,"
            f" {args.concurrency} in flight, one sweep each"
        )
        for version in ("v3", "v2c"):
            inventory_path = Path(folder) / f"{version}.yaml"
            write_inventory(inventory_path, targets, version, args.concurrency)
            common = (version, str(args.concurrency), str(inventory_path), str(targets_path))
            floor = run_child("floor", *common)
            engine = run_child("engine", *common)
            name = "SNMPv3 authPriv (SHA-256, AES)" if version == "v3" else "SNMPv2c"
            print(name)
            print(report("pysnmp", floor))
            print(report("commwatch", engine))
            print(f"  ratio      {engine['elapsed'] / floor['elapsed']:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
