"""One poll of an snmp check: what to ask for, interface names resolved to indexes, and what
the answers mean with the memory of earlier polls (a reboot, counter rates).

Everything a poll needs is asked in one GET; interface names are resolved to ifIndex once by a
GETBULK walk of ifName/ifDescr/ifAlias and re-resolved only when the index stops matching (a
reboot may renumber interfaces) or, for a name not found, after `RESOLVE_AGAIN`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from monitor.core.model import ObservationValue
from probes.base import Observations
from probes.support import snmp_ups
from probes.support.snmp_engine import Endpoint, SnmpRuntime
from probes.support.snmp_memory import SnmpMemory, Where
from probes.support.snmp_options import OidCheck, SnmpOptions
from probes.support.snmp_values import (
    ABSENT,
    ADMIN_STATUS,
    IF_ALIAS,
    IF_COLUMNS,
    IF_DESCR,
    IF_NAME,
    OPER_STATUS,
    SYS_DESCR,
    SYS_NAME,
    SYS_UPTIME,
    TICKS,
    counter_rate,
    uptime_went_back,
)

ADMIN_DOWN = "admin down (maintenance)"
NOT_FOUND = "not found"
RESOLVE_AGAIN = 300.0  # seconds before a name not found is looked for again
UPTIME = "system.uptime_s"
OPER_SUFFIX = ".oper_status"  # of an interface's observations: if.<name>.oper_status


def endpoint(options: SnmpOptions, timeout: float) -> Endpoint:
    """Where the agent is, and how long each attempt may take within `timeout`."""
    # SNMPv3 keeps half the budget for a fresh engine-id discovery when the agent goes quiet.
    # The deadline leaves the runner's own timeout a margin, so that silence is explained.
    exchanges = (options.retransmits + 1) * (2 if options.version == "3" else 1)
    deadline = asyncio.get_running_loop().time() + timeout * 0.9
    return Endpoint(*options.target, timeout * 0.9 / exchanges, options.retransmits, deadline)


async def resolve(
    rt: SnmpRuntime,
    endpoint: Endpoint,
    options: SnmpOptions,
    names: list[str],
    memory: SnmpMemory,
) -> None:
    """Find the ifIndex (and the column that names it) of each interface given by name: ifName
    first, then ifDescr, then ifAlias; the lowest index where a column repeats a name."""
    reply = await rt.walk(endpoint, options.credentials(), (IF_NAME, IF_DESCR, IF_ALIAS))
    found: dict[tuple[str, str], Where] = {}
    for oid, value in reply.varbinds:
        column, _, index = oid.rpartition(".")
        if isinstance(value, str) and index.isdigit():
            found.setdefault((column, value), (int(index), column))
    resolved: dict[str, Where | None] = {}
    for name in names:
        hits = [found[c, name] for c in (IF_NAME, IF_DESCR, IF_ALIAS) if (c, name) in found]
        resolved[name] = hits[0] if hits else None
    memory.resolved(resolved, time.monotonic())


def _where(token: int | str, names: dict[str, Where | None]) -> tuple[int, str | None] | None:
    """An interface's index, and the column that names it (None when given by index)."""
    return (token, None) if isinstance(token, int) else names.get(token)


def plan(options: SnmpOptions, memory: SnmpMemory) -> list[str]:
    """The OIDs of one GET: the system group, each known interface's row, the UPS-MIB's
    scalars, the OID entries."""
    oids = [SYS_UPTIME]
    if options.system:
        oids += [SYS_NAME, SYS_DESCR]
    names = memory.if_index
    for token in options.interfaces:
        where = _where(token, names)
        if where is None:
            continue
        index, column = where
        oids += [f"{col}.{index}" for _, col, _ in IF_COLUMNS]
        if column is not None:
            oids.append(f"{column}.{index}")
    if options.ups:
        oids += snmp_ups.OIDS
    return oids + [entry.oid for entry in options.oids]


def stale(options: SnmpOptions, memory: SnmpMemory, values: dict[str, Any]) -> list[str]:
    """Names whose index is unknown, no longer names the interface (renumbered), or was not
    found a while ago (a module may have been inserted since)."""
    names = memory.if_index
    retry = time.monotonic() - memory.if_resolved_at > RESOLVE_AGAIN
    found: list[str] = []
    for token in options.interfaces:
        if isinstance(token, int):
            continue
        where = names.get(token)
        if token not in names or (where is None and retry):
            found.append(token)
        elif where is not None:
            index, column = where
            if values.get(f"{column}.{index}", token) != token:
                found.append(token)
    return found


def system(
    options: SnmpOptions,
    values: dict[str, Any],
    now: float,
    memory: SnmpMemory,
    obs: Observations,
) -> bool:
    """Record the system group; True when the agent restarted since the last poll."""
    ticks = values.get(SYS_UPTIME)
    restarted = False
    if isinstance(ticks, int):
        previous = memory.uptime
        if previous is not None:
            restarted = uptime_went_back(*previous, ticks, now)
        if restarted:
            memory.rebooted_at = now - ticks / TICKS
        memory.uptime = (ticks, now)
    if options.system:
        obs[UPTIME] = ticks / TICKS if isinstance(ticks, int) else ticks
        obs["system.name"] = values.get(SYS_NAME)
        obs["system.descr"] = values.get(SYS_DESCR)
        rebooted_at = memory.rebooted_at
        # Text either way, so the verdict line reads "system.reboot none (...)".
        obs["system.rebooted_at"] = "none"
        if rebooted_at is not None and (restarted or now - rebooted_at < options.reboot_hold):
            obs["system.rebooted_at"] = _timestamp(rebooted_at)
    return restarted


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def interfaces(
    options: SnmpOptions,
    values: dict[str, Any],
    clock: float,
    restarted: bool,
    memory: SnmpMemory,
    obs: Observations,
) -> None:
    """Each interface's state, speed and, from the counters of the last poll, its rates."""
    names = memory.if_index
    previous = {} if restarted else memory.counters
    counters_at = memory.counters_at
    seconds = clock - (clock if counters_at is None else counters_at)
    counters: dict[str, int] = {}
    for token in options.interfaces:
        key = f"if.{token}"
        where = _where(token, names)
        row = {} if where is None else {f: values.get(f"{c}.{where[0]}") for f, c, _ in IF_COLUMNS}
        if where is None or row["oper"] in ABSENT or row["admin"] in ABSENT:
            obs.update({f"{key}.state": NOT_FOUND, f"{key}.admin_status": None})
            continue
        obs[f"{key}.index"] = where[0]
        speed = interface_state(key, row, obs)
        rates = {}
        for field, _, bits in IF_COLUMNS:
            if bits is None:
                continue
            counter_key, count = f"{token}@{where[0]}.{field}", row[field]
            if isinstance(count, int):
                counters[counter_key] = count
            rate = counter_rate(previous.get(counter_key), count, bits, seconds)
            if rate is not None:
                rates[field] = rate
        for field in ("in_errors", "out_errors", "in_discards"):
            if field in rates:
                obs[f"{key}.{field}_per_s"] = round(rates[field], 3)
        for direction in ("in", "out"):
            if f"{direction}_octets" in rates and speed:
                percent = rates[f"{direction}_octets"] * 8 / (speed * 1e6) * 100
                obs[f"{key}.{direction}_utilisation_pct"] = round(percent, 2)
    memory.read_counters(counters, clock)


def interface_state(key: str, row: dict[str, Any], obs: Observations) -> int | None:
    """An interface's admin and oper status, its state in a word, and its speed (returned):
    from a poll's row, or from what a linkDown or linkUp trap said (snmp_notifications)."""
    admin = ADMIN_STATUS.get(row["admin"], f"invalid({row['admin']})")
    oper = OPER_STATUS.get(row["oper"], f"invalid({row['oper']})")
    obs[f"{key}.admin_status"] = admin
    obs[f"{key}{OPER_SUFFIX}"] = oper
    if admin == "down":
        obs[f"{key}.state"] = ADMIN_DOWN
    elif admin == "up" and oper == "up":
        obs[f"{key}.state"] = "up"
    else:
        obs[f"{key}.state"] = f"{oper} while admin {admin}"
    speed = row["speed_mbps"] if isinstance(row["speed_mbps"], int) else None
    obs[f"{key}.speed_mbps"] = speed
    return speed


def oid_value(entry: OidCheck, value: ObservationValue) -> ObservationValue:
    """An OID entry's value; text read as a number when the entry has thresholds."""
    thresholds = entry.warn is not None or entry.crit is not None
    if thresholds and isinstance(value, str) and value not in ABSENT:
        # Agents often give gauges as text (UCD-SNMP's laLoad "0.42"): judge them as numbers.
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    return value
