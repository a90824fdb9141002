"""Benchmark: one sweep of N snmp checks through the commwatch Scheduler, beside a bare pysnmp
floor, for SNMPv3 authPriv (SHA-256 + AES) and for SNMPv2c.

Each check reads the system group (sysUpTime, sysName, sysDescr) and two interface rows (8
columns each): 19 varbinds in one GET. The floor is a bare `get_cmd` loop on one shared engine
with the same 19 varbinds, the same targets and the same concurrency, run in the same run. Every
measurement runs in its own child process, which imports only what it measures, so that its
peak RSS is its own; the snmpd agents run in this process's children and are shared by all
measurements. One JSON line per version. Polls lost (no answer within the timeout, an error) are
counted on each side: UDP agents on a loaded machine drop requests, and a sweep that waited
out timeouts says so rather than passing for a slow one. A side that lost every poll measured
nothing, and ends the run.

    python bench/snmp_sweep.py                   # N = 500 per version, 4 agents
    python bench/snmp_sweep.py --targets 200 --concurrency 128
    python bench/snmp_sweep.py --smoke           # N = 4 on 2 agents: that it runs, no figures

Agents listen on up to 128 loopback addresses each (127.0.1xx.y); nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PER_AGENT = 128
# The children read the agents' credentials from these (the inventory names them too).
USER, AUTH, PRIV, COMMUNITY = "BENCH_USER", "BENCH_AUTH", "BENCH_PRIV", "BENCH_COMMUNITY"
SYSTEM = ("1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.1.0")


def interface_indexes() -> list[int]:
    """Two ifIndexes that exist here (lo is 1; the next one the kernel has)."""
    found = sorted(int((p / "ifindex").read_text()) for p in Path("/sys/class/net").iterdir())
    if len(found) < 2:
        raise SystemExit("the bench needs two network interfaces in this namespace")
    return found[:2]


@dataclass(frozen=True)
class Size:
    targets: int  # checks per version
    agents: int
    concurrency: int  # requests in flight


FULL = Size(targets=500, agents=4, concurrency=256)
SMOKE = Size(targets=4, agents=2, concurrency=4)  # more than one agent, both versions


def write_inventory(
    path: Path, targets: list[str], version: str, concurrency: int, user: str
) -> None:
    indexes = interface_indexes()
    lines = [
        "version: 1",
        "credentials:",
        f"  v3: {{version: 3, user: {user}, auth_protocol: sha256,"
        f" auth_passphrase_env: {AUTH}, priv_protocol: aes, priv_passphrase_env: {PRIV}}}",
        f"  v2c: {{version: 2c, community_env: {COMMUNITY}}}",
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
    from common import engine_sweep, load_inventory

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
            os.environ[USER],
            os.environ[AUTH],
            os.environ[PRIV],
            authProtocol=usmHMAC192SHA256AuthProtocol,
            privProtocol=usmAesCfb128Protocol,
        )
    else:
        auth = CommunityData(os.environ[COMMUNITY], mpModel=1)
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
    print(json.dumps(outcome))


def run_child(env: dict[str, str], *arguments: str) -> dict[str, float]:
    from common import measure_process

    done = measure_process([sys.executable, __file__, "--child", *arguments], env=env)
    if done.returncode != 0:
        raise SystemExit(f"the {arguments[0]} measurement exited {done.returncode}")
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    if outcome["lost"] == outcome["polls"]:
        # Not a slow sweep but a broken one (credentials, OIDs, the probe): nothing to report.
        raise SystemExit(f"every poll of the {arguments[0]} measurement was lost")
    outcome["peak_rss_mib"] = done.peak_rss_mib
    return outcome


def report(version: str, size: Size, floor: dict[str, float], engine: dict[str, float]) -> None:
    figures: dict[str, object] = {
        "version": version,
        "checks": int(engine["polls"]),
        "agents": size.agents,
        "concurrency": size.concurrency,
        "varbinds_per_poll": int(engine["varbinds"]),
        "floor_s": round(floor["elapsed"], 3),
        "sweep_s": round(engine["elapsed"], 3),
        "ratio": round(engine["elapsed"] / floor["elapsed"], 3),  # target <= 1.3
    }
    for side, outcome in (("floor", floor), ("sweep", engine)):
        rate = outcome["polls"] / outcome["elapsed"]
        figures[f"{side}_polls_per_s"] = round(rate)
        figures[f"{side}_varbinds_per_s"] = round(rate * outcome["varbinds"])
        figures[f"{side}_peak_rss_mib"] = round(outcome["peak_rss_mib"], 1)
        figures[f"{side}_lost"] = int(outcome["lost"])
    print(json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=FULL.targets, help="checks per version")
    parser.add_argument("--agents", type=int, default=FULL.agents, help="snmpd processes")
    parser.add_argument(
        "--concurrency", type=int, default=FULL.concurrency, help="requests in flight"
    )
    parser.add_argument("--smoke", action="store_true", help="4 checks on 2 agents")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    size = SMOKE if args.smoke else Size(args.targets, args.agents, args.concurrency)
    per_agent = -(-size.targets // size.agents)
    if per_agent > PER_AGENT:
        raise SystemExit(
            f"{size.targets} targets need at least {-(-size.targets // PER_AGENT)} agents"
        )
    # Only this process starts agents: the measuring children never import the test peers.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.peers import snmp_peers

    env = {
        **os.environ,
        USER: snmp_peers.PRIV_USER,
        AUTH: snmp_peers.AUTH_PASSPHRASE,
        PRIV: snmp_peers.PRIV_PASSPHRASE,
        COMMUNITY: snmp_peers.COMMUNITY,
    }
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        targets: list[str] = []
        for a in range(size.agents):
            addresses = [f"127.0.{100 + a}.{i}" for i in range(1, per_agent + 1)]
            agent_folder = Path(folder) / f"agent{a}"
            agent = stack.enter_context(snmp_peers.running_agent(agent_folder, addresses))
            targets += [f"{address}:{agent.port}" for address in addresses]
        targets = targets[: size.targets]
        targets_path = Path(folder) / "targets.txt"
        targets_path.write_text("\n".join(targets))
        for version in ("v3", "v2c"):
            inventory_path = Path(folder) / f"{version}.yaml"
            write_inventory(
                inventory_path, targets, version, size.concurrency, snmp_peers.PRIV_USER
            )
            measured = (version, str(size.concurrency), str(inventory_path), str(targets_path))
            floor = run_child(env, "floor", *measured)
            engine = run_child(env, "engine", *measured)
            report(version, size, floor, engine)


if __name__ == "__main__":
    main()
