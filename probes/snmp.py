"""`snmp`: what the network gear says about itself: uptime and reboots, interface states, error
and discard rates, utilisation, and any numeric OID, over SNMPv2c or SNMPv3.

Everything a poll needs is asked in one GET; interface names are resolved to ifIndex once by a
GETBULK walk of ifName/ifDescr/ifAlias and re-resolved only when the index stops matching (a
reboot may renumber interfaces). Rates are per second between two polls, from the check's memory:
a counter that went down is a 32/64-bit wrap when that explains it with a small delta, else a
reset, which yields no rate for that poll rather than a spike; an agent restart (sysUpTime went
backwards) drops all previous counters. With `ups: true` the same GET reads the UPS-MIB
(probes/support/snmp_ups.py).

Verdicts: an interface that is admin up but not oper up is CRIT. An interface an operator shut
down (ifAdminStatus down) is maintenance, not an outage: its state is OK and its admin status is
WARN ("admin down (maintenance)"), or OK as well with `admin_down: ok`. A reboot (uptime went
backwards since the last poll) is WARN, with the time of the reboot, until `reboot_hold` after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from monitor.core.conditions import Condition, Expectation, Threshold, said
from monitor.core.model import ObservationValue, ProbeResult, Severity, as_number
from monitor.core.options import format_host_port, is_number
from monitor.core.text import duration_text
from probes.base import Headline, Observations, ProbeContext, ProbeKind
from probes.support import snmp_engine, snmp_poll, snmp_ups
from probes.support.snmp_memory import CLOCKS, SnmpMemory
from probes.support.snmp_options import SnmpOptions
from probes.support.snmp_poll import ADMIN_DOWN, OPER_SUFFIX, UPTIME


async def measure(options: SnmpOptions, ctx: ProbeContext) -> Observations:
    endpoint = snmp_poll.endpoint(options, ctx.timeout)  # first: the deadline counts from now
    rt = await snmp_engine.runtime(ctx.shared)
    credentials = options.credentials()
    memory = SnmpMemory(ctx.memory)
    values: dict[str, Any] = {}
    stale = snmp_poll.stale(options, memory, values)
    if stale:
        await snmp_poll.resolve(rt, endpoint, options, stale, memory)
    reply = await rt.get(endpoint, credentials, snmp_poll.plan(options, memory))
    values = dict(reply.varbinds)
    stale = snmp_poll.stale(options, memory, values)
    if stale:
        await snmp_poll.resolve(rt, endpoint, options, stale, memory)
        reply = await rt.get(endpoint, credentials, snmp_poll.plan(options, memory))
        values = dict(reply.varbinds)

    now, clock = time.time(), time.monotonic()
    observations: Observations = {}
    if reply.engine_id is not None:
        observations["snmp.engine_id"] = reply.engine_id
        observations["snmp.engine_id_changed"] = reply.engine_id_changed
    restarted = snmp_poll.system(options, values, now, memory, observations)
    snmp_poll.interfaces(options, values, clock, restarted, memory, observations)
    if options.ups:
        snmp_ups.observe(values, observations)
    for entry in options.oids:
        observations[entry.observation] = snmp_poll.oid_value(entry, values.get(entry.oid))
    return observations


def headline(result: ProbeResult, _now: float) -> Headline:
    """The uptime ("up 3d04h"), the interfaces: "if eth1 down" (which says their state
    verdicts too) or "if 4/4 up", and the UPS: "on battery 42 min 80%"."""
    facts, ups_tells = snmp_ups.facts(result.observations)
    uptime = as_number(result.observations.get(UPTIME))
    if uptime is not None:
        facts.append(f"up {duration_text(uptime)}")
    interfaces = {
        key[len("if.") : -len(OPER_SUFFIX)]: str(value)
        for key, value in result.observations.items()
        if key.startswith("if.") and key.endswith(OPER_SUFFIX)
    }
    down = [name for name, status in interfaces.items() if status != "up"]
    if down:
        facts.append("if " + ",".join(down) + " down")
    elif interfaces:
        facts.append(f"if {len(interfaces)}/{len(interfaces)} up")
    told = frozenset(f"if.{name}.{what}" for name in down for what in ("state", "admin_status"))
    return Headline(facts=tuple(facts), tells=told | ups_tells)


# --- judging -----------------------------------------------------------------------------------


def _same(expected: Any, value: ObservationValue) -> bool:
    if is_number(expected):
        return is_number(value) and value == expected
    return value == expected or str(value) == str(expected)


def _up_or_admin_down(value: ObservationValue) -> bool:
    return value in ("up", ADMIN_DOWN)


def _any_of(expected: tuple[Any, ...]) -> Callable[[ObservationValue], bool]:
    return lambda value: any(_same(e, value) for e in expected)


def conditions(options: SnmpOptions) -> tuple[Condition, ...]:
    judged: list[Condition] = []
    if options.system:
        judged.append(
            Expectation(
                condition="system.reboot",
                observation="system.rebooted_at",
                accepts=lambda value: value == "none",
                expected="no reboot (sysUpTime did not go backwards)",
                severity=Severity.WARN,
                passed=said("no reboot"),
                headline=True,
            )
        )
    for token in options.interfaces:
        key = f"if.{token}"
        judged.append(
            Expectation(
                condition=f"{key}.state",
                observation=f"{key}.state",
                accepts=_up_or_admin_down,
                expected="up (or admin down for maintenance)",
                headline=True,
            )
        )
        if options.admin_down == "warn":
            judged.append(
                Expectation(
                    condition=f"{key}.admin_status",
                    observation=f"{key}.admin_status",
                    accepts=lambda value: value != "down",
                    expected=f"up; down is {ADMIN_DOWN}",
                    severity=Severity.WARN,
                )
            )
        for field, what in (
            ("in_errors", "errors"),
            ("out_errors", "errors"),
            ("in_discards", "discards"),
            ("in_utilisation", "utilisation"),
            ("out_utilisation", "utilisation"),
        ):
            suffix, unit = ("_pct", "%") if what == "utilisation" else ("_per_s", "/s")
            judged.append(
                Threshold(
                    condition=f"{key}.{field}",
                    observation=f"{key}.{field}{suffix}",
                    warn=getattr(options, f"{what}_warn"),
                    crit=getattr(options, f"{what}_crit"),
                    unit=unit,
                    needs_history=True,
                )
            )
    if options.ups:
        judged += snmp_ups.conditions(
            (options.battery_minutes_warn, options.battery_minutes_crit),
            (options.battery_charge_warn, options.battery_charge_crit),
        )
    for entry in options.oids:
        if entry.expect:
            expected = entry.expect
            judged.append(
                Expectation(
                    condition=entry.observation,
                    observation=entry.observation,
                    accepts=_any_of(expected),
                    expected=" or ".join(str(e) for e in expected),
                )
            )
        elif entry.warn is not None or entry.crit is not None:
            judged.append(
                Threshold(
                    condition=entry.observation,
                    observation=entry.observation,
                    warn=entry.warn,
                    crit=entry.crit,
                    higher_is_worse=not entry.below,
                )
            )
    return tuple(judged)


PROBE = ProbeKind(
    kind="snmp",
    target_help="ADDRESS[:PORT]",
    options=SnmpOptions,
    measure=measure,
    conditions=conditions,
    target=lambda o: format_host_port(*o.target),
    host=lambda o: o.target[0],
    memory_clocks=CLOCKS,
    headline=headline,
)
